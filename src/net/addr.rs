//! Address resolution: literal addresses resolve at once, host names on the blocking pool.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::blocking::unblock;

/// Types that name one or more socket addresses, for `bind`, `connect` and `send_to`.
///
/// Implemented for socket addresses, `(ip, port)` pairs, `"host:port"` strings and
/// `(host, port)` pairs. Literal IP addresses never touch the blocking pool; host names are
/// resolved there with the system resolver (`getaddrinfo`), so the loop never blocks on DNS.
pub trait ToSocketAddrs {
    /// Turns `self` into a resolution request; an implementation detail of untangle.
    #[doc(hidden)]
    fn to_resolution(&self) -> Resolution;
}

/// What a [`ToSocketAddrs`] value resolves to; an implementation detail of untangle.
#[doc(hidden)]
#[derive(Debug)]
pub enum Resolution {
    /// Already resolved.
    Ready(Vec<SocketAddr>),
    /// A `host:port` name for the resolver.
    Lookup(String),
}

impl ToSocketAddrs for SocketAddr {
    fn to_resolution(&self) -> Resolution {
        Resolution::Ready(vec![*self])
    }
}

impl ToSocketAddrs for SocketAddrV4 {
    fn to_resolution(&self) -> Resolution {
        Resolution::Ready(vec![SocketAddr::V4(*self)])
    }
}

impl ToSocketAddrs for SocketAddrV6 {
    fn to_resolution(&self) -> Resolution {
        Resolution::Ready(vec![SocketAddr::V6(*self)])
    }
}

impl ToSocketAddrs for (IpAddr, u16) {
    fn to_resolution(&self) -> Resolution {
        Resolution::Ready(vec![SocketAddr::new(self.0, self.1)])
    }
}

impl ToSocketAddrs for (Ipv4Addr, u16) {
    fn to_resolution(&self) -> Resolution {
        Resolution::Ready(vec![SocketAddr::new(self.0.into(), self.1)])
    }
}

impl ToSocketAddrs for (Ipv6Addr, u16) {
    fn to_resolution(&self) -> Resolution {
        Resolution::Ready(vec![SocketAddr::new(self.0.into(), self.1)])
    }
}

impl ToSocketAddrs for [SocketAddr] {
    fn to_resolution(&self) -> Resolution {
        Resolution::Ready(self.to_vec())
    }
}

impl ToSocketAddrs for str {
    fn to_resolution(&self) -> Resolution {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Resolution::Ready(vec![addr]),
            Err(_) => Resolution::Lookup(self.to_owned()),
        }
    }
}

impl ToSocketAddrs for String {
    fn to_resolution(&self) -> Resolution {
        self.as_str().to_resolution()
    }
}

impl ToSocketAddrs for (&str, u16) {
    fn to_resolution(&self) -> Resolution {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Resolution::Ready(vec![SocketAddr::new(ip, self.1)]),
            Err(_) => Resolution::Lookup(format!("{}:{}", self.0, self.1)),
        }
    }
}

impl ToSocketAddrs for (String, u16) {
    fn to_resolution(&self) -> Resolution {
        (self.0.as_str(), self.1).to_resolution()
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_resolution(&self) -> Resolution {
        (**self).to_resolution()
    }
}

/// Resolves `addr` to a non-empty list of socket addresses.
pub(crate) async fn resolve<A: ToSocketAddrs>(addr: A) -> io::Result<Vec<SocketAddr>> {
    let addrs = match addr.to_resolution() {
        Resolution::Ready(addrs) => addrs,
        Resolution::Lookup(name) => {
            unblock(move || std::net::ToSocketAddrs::to_socket_addrs(&name).map(Vec::from_iter))
                .await?
        }
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        ));
    }
    Ok(addrs)
}

//! Unix-domain datagram sockets: [`UnixDatagram`].

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;

use super::unix::socket_addr;
use crate::io::Async;

/// A Unix-domain datagram socket: message boundaries are kept, delivery is reliable and in
/// order, and a sender waits (instead of dropping) when the receiver's queue is full.
///
/// Paths follow [`UnixListener::bind`](crate::net::UnixListener::bind): a path that starts
/// with a NUL byte is an abstract name (Linux and Android).
///
/// Sends and receives each have their own waker, so any number of tasks may use one socket
/// (through `&UnixDatagram`, an `Rc` or an `Arc`) at once.
///
/// # Example
/// ```
/// use untangle::net::UnixDatagram;
///
/// untangle::block_on(async {
///     let (a, b) = UnixDatagram::pair()?;
///     a.send(b"ping").await?;
///     let mut buf = [0; 16];
///     let n = b.recv(&mut buf).await?;
///     assert_eq!(&buf[..n], b"ping");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct UnixDatagram {
    inner: Async<std::os::unix::net::UnixDatagram>,
}

impl UnixDatagram {
    /// A socket bound to `path` (a socket file, which must not exist, or an abstract name).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::bind_addr(&socket_addr(path.as_ref())?)
    }

    /// A socket bound to `addr`, like std's `UnixDatagram::bind_addr`.
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::try_from(std::os::unix::net::UnixDatagram::bind_addr(addr)?)
    }

    /// A socket bound to no address: it can send, and receive replies only once connected
    /// (a peer cannot address an unnamed socket).
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::try_from(std::os::unix::net::UnixDatagram::unbound()?)
    }

    /// A pair of connected, unnamed sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::try_from(a)?, UnixDatagram::try_from(b)?))
    }

    /// Sets the default destination of [`send`](UnixDatagram::send) and the only source
    /// [`recv`](UnixDatagram::recv) accepts. Connecting a datagram socket never waits, so
    /// this is not `async` (as in tokio and async-net).
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.connect_addr(&socket_addr(path.as_ref())?)
    }

    /// [`connect`](UnixDatagram::connect) to a std socket address.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        self.inner.get_ref().connect_addr(addr)
    }

    /// Sends a datagram to the connected peer; waits while the peer's queue is full.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_with(|s| s.send(buf)).await
    }

    /// Receives a datagram from the connected peer (truncated to `buf.len()`).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.recv(buf)).await
    }

    /// Sends a datagram to the socket at `path` (or the abstract name it spells).
    pub async fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let addr = socket_addr(path.as_ref())?;
        self.send_to_addr(buf, &addr).await
    }

    /// Sends a datagram to `addr`.
    pub async fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.inner.write_with(|s| s.send_to_addr(buf, addr)).await
    }

    /// Receives a datagram (truncated to `buf.len()`) and the address of its sender (unnamed
    /// when the sender is not bound).
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_with(|s| s.recv_from(buf)).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// Shuts down the read half, the write half or both. Later sends fail with `BrokenPipe`;
    /// unlike a stream's, a datagram socket's receives do not end at a shut-down read half (on
    /// Linux they go on waiting for datagrams that can no longer come).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }
}

impl TryFrom<std::os::unix::net::UnixDatagram> for UnixDatagram {
    type Error = io::Error;

    fn try_from(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            inner: Async::new(socket)?,
        })
    }
}

impl AsFd for UnixDatagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UnixDatagram")
            .field(self.inner.get_ref())
            .finish()
    }
}

//! Async networking: TCP, UDP and Unix-domain (stream and datagram) sockets driven by the
//! current thread's loop.
//!
//! Each type wraps the std socket in [`Async`](crate::Async); converting from the std type
//! (`TryFrom`) puts it in non-blocking mode and registers it.

mod addr;
mod sys;
mod tcp;
mod udp;
mod unix;
mod unix_datagram;

#[doc(hidden)]
pub use addr::Resolution;
pub use addr::ToSocketAddrs;
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixIncoming, UnixListener, UnixStream};
pub use unix_datagram::UnixDatagram;

pub use std::net::{Shutdown, SocketAddr};

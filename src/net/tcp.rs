//! TCP: [`TcpListener`] and [`TcpStream`].

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::Stream;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrAny, SocketType};

use super::addr::{resolve, ToSocketAddrs};
use super::sys;
use crate::io::Async;
use crate::reactor::{READ, WRITE};

/// The listen backlog: connections the kernel queues before `accept` (capped by `somaxconn`).
const BACKLOG: i32 = 1024;

fn new_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    sys::socket(family, SocketType::STREAM)
}

/// Tries each address in turn; returns the first success or the last error.
async fn each_addr<A, T, F, Fut>(addr: A, mut f: F) -> io::Result<T>
where
    A: ToSocketAddrs,
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last = None;
    for addr in resolve(addr).await? {
        match f(addr).await {
            Ok(value) => return Ok(value),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address")))
}

/// A TCP socket listening for connections.
///
/// Cloning gives another handle to the same socket.
///
/// # Example
/// ```
/// use untangle::net::{TcpListener, TcpStream};
///
/// untangle::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     let client = TcpStream::connect(addr).await?;
///     let (server, peer) = listener.accept().await?;
///     assert_eq!(peer, client.local_addr()?);
///     assert_eq!(server.peer_addr()?, client.local_addr()?);
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct TcpListener {
    inner: Arc<Async<std::net::TcpListener>>,
}

impl TcpListener {
    /// Binds to `addr` (with `SO_REUSEADDR`, backlog 1024) and starts listening.
    ///
    /// A host name is resolved off the loop; each resolved address is tried in turn.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(
            addr,
            |addr| async move { TcpListener::listen_on(addr, false) },
        )
        .await
    }

    /// Like [`bind`](TcpListener::bind), with `SO_REUSEPORT` too: several listeners (on
    /// several threads, or processes of the same user) may bind the same address, and the kernel
    /// spreads new connections between them. This is how each loop of a thread-per-core server
    /// gets its own listener (see [`Server::threads`](crate::http::Server::threads)).
    ///
    /// Every socket sharing the port must set `SO_REUSEPORT`: binding here next to a listener
    /// from [`bind`](TcpListener::bind) fails with `AddrInUse`. With port 0, bind the first
    /// listener, then the others to its [`local_addr`](TcpListener::local_addr).
    ///
    /// # Example
    /// ```
    /// use untangle::net::{TcpListener, TcpStream};
    ///
    /// untangle::block_on(async {
    ///     let first = TcpListener::bind_reuse_port("127.0.0.1:0").await?;
    ///     let addr = first.local_addr()?;
    ///     let second = TcpListener::bind_reuse_port(addr).await?;
    ///     assert_eq!(second.local_addr()?, addr);
    ///     let _client = TcpStream::connect(addr).await?; // accepted by one of the two
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn bind_reuse_port<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(
            addr,
            |addr| async move { TcpListener::listen_on(addr, true) },
        )
        .await
    }

    /// A listening socket on one resolved address: `SO_REUSEADDR`, `SO_REUSEPORT` when asked,
    /// bind, listen.
    fn listen_on(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
        let fd = new_socket(&addr)?;
        rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
        if reuse_port {
            rustix::net::sockopt::set_socket_reuseport(&fd, true)?;
        }
        rustix::net::bind(&fd, &addr)?;
        rustix::net::listen(&fd, BACKLOG)?;
        let listener = std::net::TcpListener::from(fd);
        Ok(TcpListener {
            inner: Arc::new(Async::new_nonblocking(listener, false)?),
        })
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// The accepted socket is non-blocking and close-on-exec from the start (`accept4`).
    ///
    /// Any number of tasks may wait in `accept` on one listener (clones share it): each has
    /// its own waker, every one is woken when a connection arrives, and those that find none
    /// left wait again (as tokio's and async-io's `accept`).
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, addr) = self.inner.read_with(|l| sys::accept(l)).await?;
        accepted(fd, addr)
    }

    /// Polls for a connection. Unlike [`accept`](TcpListener::accept), this keeps a single
    /// waker (like `poll_read`): of several tasks polling it at once, only the last is woken.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.inner
            .poll_op(READ, cx, |l| sys::accept(l), |_| false)
            .map(|result| result.and_then(|(fd, addr)| accepted(fd, addr)))
    }

    /// A stream of incoming connections: `accept` in a loop.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Sets the IP time-to-live (`IP_TTL`) of the listening socket, which the sockets it
    /// accepts inherit.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.get_ref().set_ttl(ttl)
    }

    /// The IP time-to-live of the listening socket (see [`set_ttl`](TcpListener::set_ttl)).
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.get_ref().ttl()
    }
}

impl TryFrom<std::net::TcpListener> for TcpListener {
    type Error = io::Error;

    fn try_from(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            inner: Arc::new(Async::new(listener)?),
        })
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TcpListener")
            .field(self.inner.get_ref())
            .finish()
    }
}

/// An accepted socket as a `TcpStream`, with the peer's address (asked of the socket when the
/// OS did not report it).
fn accepted(fd: OwnedFd, addr: Option<SocketAddrAny>) -> io::Result<(TcpStream, SocketAddr)> {
    let stream = std::net::TcpStream::from(fd);
    let addr = match addr.and_then(|a| SocketAddr::try_from(a).ok()) {
        Some(addr) => addr,
        None => stream.peer_addr()?,
    };
    // Optimistic readiness: the request often arrives before the accept.
    Ok((TcpStream::from_nonblocking(stream, true)?, addr))
}

/// Stream of connections returned by [`TcpListener::incoming`]. It never ends; accept errors
/// are yielded as items.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Stream for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.listener
            .poll_accept(cx)
            .map(|r| Some(r.map(|(stream, _)| stream)))
    }
}

/// A TCP connection.
///
/// Implements `AsyncRead` and `AsyncWrite`, on `TcpStream` and on `&TcpStream`, so one task can
/// read while another writes. Cloning gives another handle to the same socket. Each direction
/// keeps one waker: two tasks *reading* the same stream at once is not supported (the last one
/// to poll is woken).
///
/// # Example
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use untangle::net::{TcpListener, TcpStream};
///
/// untangle::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let mut client = TcpStream::connect(listener.local_addr()?).await?;
///     let (mut server, _) = listener.accept().await?;
///     client.write_all(b"hello").await?;
///     let mut buf = [0; 5];
///     server.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hello");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct TcpStream {
    inner: Arc<Async<std::net::TcpStream>>,
}

impl TcpStream {
    fn from_nonblocking(stream: std::net::TcpStream, ready: bool) -> io::Result<TcpStream> {
        // Every stream, whoever made its socket (a user's `TryFrom`): Apple has no
        // `MSG_NOSIGNAL`, so the option keeps writes from raising SIGPIPE.
        #[cfg(target_vendor = "apple")]
        rustix::net::sockopt::set_socket_nosigpipe(&stream, true)?;
        Ok(TcpStream {
            inner: Arc::new(Async::new_nonblocking(stream, ready)?),
        })
    }

    /// Connects to `addr`, trying each resolved address in turn.
    ///
    /// A literal IP address connects at once; a host name is resolved on the blocking pool.
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, connect_addr).await
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.get_ref().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.get_ref().nodelay()
    }

    /// Sets the IP time-to-live (`IP_TTL`) of outgoing packets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.get_ref().set_ttl(ttl)
    }

    /// The IP time-to-live of outgoing packets.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.get_ref().ttl()
    }

    /// Shuts down the read half, the write half (sends FIN) or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    /// Receives data without removing it from the socket's queue.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.peek(buf)).await
    }

    /// Waits until the stream may be readable.
    pub async fn readable(&self) -> io::Result<()> {
        self.inner.readable().await
    }

    /// Waits until the stream may be writable.
    pub async fn writable(&self) -> io::Result<()> {
        self.inner.writable().await
    }

    fn poll_read_inner(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // A short read clears read readiness (unless the peer's FIN was seen): see
        // `Async::poll_read_stream`.
        let len = buf.len();
        self.inner.poll_read_stream(cx, len, |mut s| s.read(buf))
    }

    fn poll_read_vectored_inner(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        // One call takes at most `IOV_MAX` buffers; a read that fills them all is not short
        // (whatever the buffers after them could have held), so `len` counts only those.
        let capped = bufs.len().min(sys::IOV_MAX);
        let bufs = &mut bufs[..capped];
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        self.inner
            .poll_read_stream(cx, len, |mut s| s.read_vectored(bufs))
    }

    fn poll_write_inner(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let len = buf.len();
        // A short write filled the send buffer.
        self.inner
            .poll_op(WRITE, cx, |s| sys::send(s, buf), |&n| n < len)
    }

    fn poll_write_vectored_inner(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // As for reads: only the first `IOV_MAX` buffers go out, and only they make a short
        // write short.
        let bufs = &bufs[..bufs.len().min(sys::IOV_MAX)];
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        self.inner
            .poll_op(WRITE, cx, |s| sys::send_vectored(s, bufs), |&n| n < len)
    }
}

async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
    let fd = new_socket(&addr)?;
    let in_progress = match rustix::net::connect(&fd, &addr) {
        Ok(()) => false,
        Err(Errno::INPROGRESS) | Err(Errno::INTR) => true,
        Err(err) => return Err(err.into()),
    };
    let stream = TcpStream::from_nonblocking(std::net::TcpStream::from(fd), !in_progress)?;
    if in_progress {
        // The first event after a non-blocking connect says it finished, one way or the other.
        stream.inner.writable().await?;
        if let Err(err) = rustix::net::sockopt::socket_error(&*stream.inner)? {
            return Err(err.into());
        }
    }
    Ok(stream)
}

impl TryFrom<std::net::TcpStream> for TcpStream {
    type Error = io::Error;

    fn try_from(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: Arc::new(Async::new(stream)?),
        })
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TcpStream")
            .field(self.inner.get_ref())
            .finish()
    }
}

macro_rules! impl_stream_io {
    ($ty:ty) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_read_inner(cx, buf)
            }

            fn poll_read_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &mut [IoSliceMut<'_>],
            ) -> Poll<io::Result<usize>> {
                self.poll_read_vectored_inner(cx, bufs)
            }
        }

        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_inner(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_vectored_inner(cx, bufs)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                // Sockets have no user-space buffer to flush.
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(match self.shutdown(Shutdown::Write) {
                    Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
                    other => other,
                })
            }
        }
    };
}

pub(crate) use impl_stream_io;

impl_stream_io!(TcpStream);
impl_stream_io!(&TcpStream);

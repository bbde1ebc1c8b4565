//! Unix-domain stream sockets: [`UnixListener`] and [`UnixStream`].
//!
//! Both bind and connect by a path (a socket file or, on Linux and Android, an abstract name
//! written with a leading NUL byte) or by a std [`SocketAddr`].

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::Stream;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};

use super::sys;
use super::tcp::impl_stream_io;
use crate::io::Async;
use crate::reactor::{READ, WRITE};

#[cfg(target_os = "android")]
use std::os::android::net::SocketAddrExt;
#[cfg(target_os = "linux")]
use std::os::linux::net::SocketAddrExt;

/// The address `path` names. A path starting with a NUL byte is an abstract name (the bytes
/// after the NUL), the convention of tokio and async-io for `bind(path)`/`connect(path)`, since
/// `Path` has no other way to spell one; std's `from_pathname` would reject it for containing a
/// NUL. Any other path names a socket file.
pub(super) fn socket_addr(path: &Path) -> io::Result<SocketAddr> {
    match path.as_os_str().as_bytes() {
        [0, name @ ..] => abstract_addr(name),
        _ => SocketAddr::from_pathname(path),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract Unix socket names (a path starting with a NUL byte) exist only on Linux and Android",
    ))
}

/// std's address as rustix's, for the non-blocking `connect` that std does not offer.
fn connect_target(addr: &SocketAddr) -> io::Result<SocketAddrUnix> {
    if let Some(path) = addr.as_pathname() {
        return Ok(SocketAddrUnix::new(path)?);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(name) = addr.as_abstract_name() {
        return Ok(SocketAddrUnix::new_abstract_name(name)?);
    }
    // An unnamed address (a socket from `pair`, or an unbound client) cannot be connected to.
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "cannot connect to an unnamed Unix socket address",
    ))
}

/// A Unix-domain socket listening for connections.
///
/// # Example
/// ```
/// use untangle::net::{UnixListener, UnixStream};
///
/// untangle::block_on(async {
///     let dir = std::env::temp_dir().join(format!("untangle-doc-{}", std::process::id()));
///     std::fs::create_dir_all(&dir)?;
///     let path = dir.join("sock");
///     let _ = std::fs::remove_file(&path);
///     let listener = UnixListener::bind(&path)?;
///     let _client = UnixStream::connect(&path).await?;
///     let (_server, _addr) = listener.accept().await?;
///     std::fs::remove_dir_all(&dir)
/// })
/// .unwrap();
/// ```
pub struct UnixListener {
    inner: Async<std::os::unix::net::UnixListener>,
}

impl UnixListener {
    /// Binds to the socket file at `path` and starts listening (the file must not exist).
    ///
    /// # Abstract names (Linux, Android)
    ///
    /// A `path` that starts with a NUL byte binds the abstract name made of the bytes after it
    /// (as `SocketAddrExt::from_abstract_name` does, and as tokio and async-io read such a
    /// path). No file is created: the name lives in the network namespace, is released when
    /// the socket closes, and [`local_addr`](UnixListener::local_addr) reports it through
    /// `SocketAddrExt::as_abstract_name`. On other systems such a path fails with
    /// [`ErrorKind::Unsupported`](io::ErrorKind::Unsupported).
    ///
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// use std::os::linux::net::SocketAddrExt;
    /// use untangle::net::{UnixListener, UnixStream};
    ///
    /// untangle::block_on(async {
    ///     let path = format!("\0untangle-doc-bind-{}", std::process::id());
    ///     let name = &path.as_bytes()[1..];
    ///     let listener = UnixListener::bind(&path)?;
    ///     assert_eq!(listener.local_addr()?.as_abstract_name(), Some(name));
    ///     let client = UnixStream::connect(&path).await?;
    ///     assert_eq!(client.peer_addr()?.as_abstract_name(), Some(name));
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// # }
    /// ```
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::bind_addr(&socket_addr(path.as_ref())?)
    }

    /// Binds to `addr` (a socket file, or an abstract name on Linux and Android) and starts
    /// listening, like std's `UnixListener::bind_addr`.
    ///
    /// # Example
    /// ```
    /// use std::os::unix::net::SocketAddr;
    /// use untangle::net::{UnixListener, UnixStream};
    ///
    /// untangle::block_on(async {
    ///     let dir = std::env::temp_dir().join(format!("untangle-doc-addr-{}", std::process::id()));
    ///     std::fs::create_dir_all(&dir)?;
    ///     let path = dir.join("sock");
    ///     let _ = std::fs::remove_file(&path);
    ///     let listener = UnixListener::bind_addr(&SocketAddr::from_pathname(&path)?)?;
    ///     let client = UnixStream::connect_addr(&listener.local_addr()?).await?;
    ///     assert_eq!(client.peer_addr()?.as_pathname(), Some(path.as_path()));
    ///     std::fs::remove_dir_all(&dir)
    /// })
    /// .unwrap();
    /// ```
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::try_from(std::os::unix::net::UnixListener::bind_addr(addr)?)
    }

    /// Waits for a connection.
    ///
    /// Any number of tasks may wait in `accept` on one listener: each has its own waker and
    /// every one is woken when a connection arrives (see [`TcpListener::accept`]).
    ///
    /// [`TcpListener::accept`]: crate::net::TcpListener::accept
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, addr) = self.inner.read_with(|l| l.accept()).await?;
        Ok((accepted(stream)?, addr))
    }

    /// Polls for a connection; a single waker, like `poll_read` (of several tasks polling at
    /// once, only the last is woken).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        self.inner
            .poll_op(READ, cx, |l| l.accept(), |_| false)
            .map(|result| result.and_then(|(stream, addr)| Ok((accepted(stream)?, addr))))
    }

    /// A stream of incoming connections.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The local address: a path (`as_pathname`) or an abstract name (`as_abstract_name`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }
}

impl TryFrom<std::os::unix::net::UnixListener> for UnixListener {
    type Error = io::Error;

    fn try_from(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            inner: Async::new(listener)?,
        })
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UnixListener")
            .field(self.inner.get_ref())
            .finish()
    }
}

/// An accepted socket (std's `accept` sets only close-on-exec) as a non-blocking `UnixStream`.
fn accepted(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
    rustix::io::ioctl_fionbio(&stream, true)?;
    UnixStream::from_nonblocking(stream, true)
}

/// Stream of connections returned by [`UnixListener::incoming`].
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Stream for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.listener
            .poll_accept(cx)
            .map(|r| Some(r.map(|(stream, _)| stream)))
    }
}

/// A Unix-domain stream connection; `AsyncRead`/`AsyncWrite` on the value and on `&UnixStream`.
/// Cloning gives another handle to the same socket.
///
/// # Example
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use untangle::net::UnixStream;
///
/// untangle::block_on(async {
///     let (mut a, mut b) = UnixStream::pair()?;
///     a.write_all(b"hi").await?;
///     let mut buf = [0; 2];
///     b.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hi");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct UnixStream {
    inner: Arc<Async<std::os::unix::net::UnixStream>>,
}

impl UnixStream {
    fn from_nonblocking(
        stream: std::os::unix::net::UnixStream,
        ready: bool,
    ) -> io::Result<UnixStream> {
        // Every stream, whoever made its socket (std's `pair` and `accept`, a user's
        // `TryFrom`): Apple has no `MSG_NOSIGNAL`, so the option keeps writes from raising
        // SIGPIPE.
        #[cfg(target_vendor = "apple")]
        rustix::net::sockopt::set_socket_nosigpipe(&stream, true)?;
        Ok(UnixStream {
            inner: Arc::new(Async::new_nonblocking(stream, ready)?),
        })
    }

    /// Connects to the socket at `path`; a `path` that starts with a NUL byte is an abstract
    /// name, as in [`UnixListener::bind`].
    pub async fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_addr(&socket_addr(path.as_ref())?).await
    }

    /// Connects to the socket at `addr` (a path, or an abstract name on Linux and Android),
    /// like std's `UnixStream::connect_addr`; see [`UnixListener::bind_addr`] for an example.
    /// An unnamed address fails with [`ErrorKind::InvalidInput`](io::ErrorKind::InvalidInput).
    ///
    /// A listener whose backlog is full makes Linux refuse a non-blocking connect at once with
    /// `EAGAIN`, and nothing would announce when there is room again: that error is returned,
    /// as [`ErrorKind::WouldBlock`](io::ErrorKind::WouldBlock) (as tokio does), for the caller
    /// to retry later; it never means the stream is connected.
    pub async fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        let addr = connect_target(addr)?;
        let fd = sys::socket(AddressFamily::UNIX, SocketType::STREAM)?;
        let in_progress = match rustix::net::connect(&fd, &addr) {
            Ok(()) => false,
            Err(Errno::INPROGRESS) | Err(Errno::INTR) => true,
            Err(err) => return Err(err.into()),
        };
        let stream = std::os::unix::net::UnixStream::from(fd);
        let stream = UnixStream::from_nonblocking(stream, !in_progress)?;
        if in_progress {
            stream.inner.writable().await?;
            if let Err(err) = rustix::net::sockopt::socket_error(&*stream.inner)? {
                return Err(err.into());
            }
        }
        Ok(stream)
    }

    /// A connected pair of sockets.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::try_from(a)?, UnixStream::try_from(b)?))
    }

    /// The local address (unnamed for a connecting socket, which binds nothing).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// The peer's address: for a connected client, the path or abstract name its listener is
    /// bound to; for an accepted stream, usually unnamed (clients rarely bind).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// Shuts down the read half, the write half or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    /// Waits until the stream may be readable (as [`TcpStream::readable`]).
    ///
    /// [`TcpStream::readable`]: crate::net::TcpStream::readable
    pub async fn readable(&self) -> io::Result<()> {
        self.inner.readable().await
    }

    /// Waits until the stream may be writable.
    pub async fn writable(&self) -> io::Result<()> {
        self.inner.writable().await
    }

    fn poll_read_inner(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_read_vectored_inner(cx, &mut [IoSliceMut::new(buf)])
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
        // A short read clears read readiness (unless the peer's FIN was seen), as in
        // `Async::poll_read_stream`, but not one that stopped at a message carrying file
        // descriptors (`MSG_CTRUNC`, see `sys::recv_stream`): data may be queued behind it.
        self.inner
            .poll_op(
                READ,
                cx,
                |s| sys::recv_stream(s, bufs),
                |&(n, cut)| n > 0 && n < len && !cut,
            )
            .map_ok(|(n, _)| n)
    }

    fn poll_write_inner(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let len = buf.len();
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

impl TryFrom<std::os::unix::net::UnixStream> for UnixStream {
    type Error = io::Error;

    fn try_from(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            inner: Arc::new(Async::new(stream)?),
        })
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UnixStream")
            .field(self.inner.get_ref())
            .finish()
    }
}

impl_stream_io!(UnixStream);
impl_stream_io!(&UnixStream);

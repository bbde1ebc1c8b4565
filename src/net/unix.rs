//! Unix-domain stream sockets: [`UnixListener`] and [`UnixStream`].

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::Stream;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use super::tcp::impl_stream_io;
use crate::io::Async;
use crate::reactor::{READ, WRITE};

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
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::try_from(std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Waits for a connection.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        futures_lite::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        match self.inner.poll_op(READ, cx, |l| l.accept(), |_| false) {
            Poll::Ready(Ok((stream, addr))) => Poll::Ready(
                rustix::io::ioctl_fionbio(&stream, true)
                    .map_err(io::Error::from)
                    .and_then(|()| UnixStream::from_nonblocking(stream, true))
                    .map(|s| (s, addr)),
            ),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// A stream of incoming connections.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The local address.
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
        Ok(UnixStream {
            inner: Arc::new(Async::new_nonblocking(stream, ready)?),
        })
    }

    /// Connects to the socket at `path`.
    pub async fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let addr = SocketAddrUnix::new(path.as_ref())?;
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)?;
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

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// Shuts down the read half, the write half or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    fn poll_read_inner(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // A short read clears read readiness (unless the peer's FIN was seen): see
        // `Async::poll_read_stream`. (A peer passing fds with SCM_RIGHTS could make a plain
        // read stop early at a message boundary; this type offers no way to receive fds, so
        // such peers are not supported.)
        let len = buf.len();
        self.inner.poll_read_stream(cx, len, |mut s| s.read(buf))
    }

    fn poll_read_vectored_inner(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
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
        self.inner
            .poll_op(WRITE, cx, |mut s| s.write(buf), |&n| n < len)
    }

    fn poll_write_vectored_inner(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        self.inner
            .poll_op(WRITE, cx, |mut s| s.write_vectored(bufs), |&n| n < len)
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

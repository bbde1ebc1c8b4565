//! [`Async<T>`]: an I/O object registered with the loop's reactor, with readiness futures and
//! the futures-io `AsyncRead`/`AsyncWrite` traits.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};

use crate::executor;
use crate::reactor::{Source, READ, WRITE};

/// An I/O object (socket, pipe, …) in non-blocking mode, registered with the current thread's
/// loop.
///
/// Operations try the syscall when the fd may be ready and park the task on `WouldBlock` until
/// the reactor reports readiness. The fd is registered once, when the `Async` is created, and
/// deregistered when it is dropped.
///
/// # Threads
/// An `Async` is driven by the loop that polls it. Created on one thread's loop and then polled
/// on another's (it is `Send` when `T` is; a task spawned with [`Handle::spawn`](crate::Handle)
/// may carry it), it moves its registration to the loop that polls it the first time it has to
/// wait there — one deregistration and one registration — and keeps working whether the first
/// loop is busy, idle or gone. Polled concurrently from two loops (through `&Async`), it moves
/// back and forth, which works but costs a move per wait. Polled where no untangle loop runs
/// (outside [`block_on`](crate::block_on)), an operation that would have to wait fails with an
/// `io::Error` instead of hanging. One that can complete at once completes only if a loop has
/// already seen the fd ready (its cached readiness says so): an fd no loop has reported on
/// yet fails like one that would wait, even with data queued.
///
/// # Example
/// ```
/// use std::os::unix::net::UnixStream;
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use untangle::Async;
///
/// untangle::block_on(async {
///     let (a, b) = UnixStream::pair()?;
///     let (mut a, mut b) = (Async::new(a)?, Async::new(b)?);
///     a.write_all(b"ping").await?;
///     let mut buf = [0; 4];
///     b.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"ping");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct Async<T: AsFd> {
    source: Arc<Source>,
    io: Option<T>,
}

impl<T: AsFd> Async<T> {
    /// Puts `io` in non-blocking mode and registers it with the current thread's loop.
    pub fn new(io: T) -> io::Result<Async<T>> {
        rustix::io::ioctl_fionbio(io.as_fd(), true)?;
        Async::new_nonblocking(io, false)
    }

    /// Registers an fd already in non-blocking mode; `ready` sets its initial readiness.
    pub(crate) fn new_nonblocking(io: T, ready: bool) -> io::Result<Async<T>> {
        let source = executor::current_reactor().insert(io.as_fd(), ready)?;
        Ok(Async {
            source,
            io: Some(io),
        })
    }

    /// The inner I/O object.
    pub fn get_ref(&self) -> &T {
        self.io.as_ref().expect("io present until into_inner")
    }

    /// Deregisters the fd and returns the inner I/O object (still in non-blocking mode).
    pub fn into_inner(mut self) -> io::Result<T> {
        let io = self.io.take().expect("io present until into_inner");
        self.source.deregister(io.as_fd());
        Ok(io)
    }

    /// Waits until the fd may be readable.
    ///
    /// Readiness is cached: this completes at once if no operation has seen `WouldBlock` since
    /// the last event, so a following read may still find nothing and must handle `WouldBlock`
    /// (or use [`read_with`](Async::read_with), which does).
    pub fn readable(&self) -> Ready<'_> {
        Ready::new(&self.source, self.get_ref().as_fd(), READ)
    }

    /// Waits until the fd may be writable; see [`readable`](Async::readable).
    pub fn writable(&self) -> Ready<'_> {
        Ready::new(&self.source, self.get_ref().as_fd(), WRITE)
    }

    /// Polls for read readiness (single waker slot per direction, like `poll_read`).
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(READ, cx).map_ok(drop)
    }

    /// Polls for write readiness (single waker slot per direction, like `poll_write`).
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(WRITE, cx).map_ok(drop)
    }

    /// Polls the cached readiness of `dir`, parking the task (on this thread's loop) when the
    /// fd is not known to be ready.
    fn poll_ready(&self, dir: usize, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let fd = self.get_ref().as_fd();
        match self.source.poll_ready(dir, cx, fd) {
            Poll::Pending => park_here(&self.source, fd),
            ready => ready,
        }
    }

    /// Runs a non-blocking read operation until it does not fail with `WouldBlock`, waiting for
    /// readability in between (and retrying at once on `Interrupted`).
    ///
    /// Each call has its own waker: any number of tasks may wait in `read_with` (or
    /// [`readable`](Async::readable)) on one `Async` at once, and all are woken by an event.
    ///
    /// # Example
    /// ```
    /// use std::net::UdpSocket;
    /// use untangle::Async;
    ///
    /// untangle::block_on(async {
    ///     let a = Async::<UdpSocket>::new(UdpSocket::bind("127.0.0.1:0")?)?;
    ///     let b = UdpSocket::bind("127.0.0.1:0")?;
    ///     b.send_to(b"hi", a.get_ref().local_addr()?)?;
    ///     let mut buf = [0; 8];
    ///     let (n, _) = a.read_with(|s| s.recv_from(&mut buf)).await?;
    ///     assert_eq!(&buf[..n], b"hi");
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let mut slot = None;
        loop {
            let seq = WaitReady::new(&self.source, self.get_ref().as_fd(), READ, &mut slot).await?;
            match op(self.get_ref()) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => self.source.clear(READ, seq),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                result => return result,
            }
        }
    }

    /// Runs a non-blocking write operation until it does not fail with `WouldBlock`, waiting for
    /// writability in between (and retrying at once on `Interrupted`); one waker per call, as
    /// in [`read_with`](Async::read_with).
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let mut slot = None;
        loop {
            let seq =
                WaitReady::new(&self.source, self.get_ref().as_fd(), WRITE, &mut slot).await?;
            match op(self.get_ref()) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.source.clear(WRITE, seq)
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                result => return result,
            }
        }
    }

    /// Polls a non-blocking operation in `dir`. When `drained` says the result proves the fd
    /// can give or take nothing more (a short read or write on a stream socket), readiness is
    /// cleared without a second syscall that would fail with `WouldBlock` (see
    /// `Source::clear_drained` for why a closed read side keeps it).
    pub(crate) fn poll_op<R>(
        &self,
        dir: usize,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        loop {
            let seq = ready!(self.poll_ready(dir, cx))?;
            match op(self.get_ref()) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => self.source.clear(dir, seq),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Ok(value) => {
                    if drained(&value) {
                        self.source.clear_drained(dir, seq);
                    }
                    return Poll::Ready(Ok(value));
                }
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }

    /// Polls a read of up to `len` bytes from a *stream socket*. A short read (some bytes, fewer
    /// than asked) emptied the receive queue, so read readiness is cleared at once, sparing the
    /// `recv` that would fail with `WouldBlock`; the next data brings a new edge. Not when the
    /// peer's FIN has been seen (the reactor's sticky read-closed bit): then EOF waits behind
    /// the data and no further edge would announce it. EOF itself (0 bytes) keeps readiness:
    /// every later read returns EOF at once.
    ///
    /// Only for sockets whose short reads mean "drained" (TCP, Unix streams); a tty or a
    /// datagram socket may return less than asked with more queued.
    pub(crate) fn poll_read_stream(
        &self,
        cx: &mut Context<'_>,
        len: usize,
        op: impl FnMut(&T) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.poll_op(READ, cx, op, |&n| n > 0 && n < len)
    }
}

// `Async` never pins its inner object, so it can move freely whatever `T` is.
impl<T: AsFd> Unpin for Async<T> {}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            // Deregister while the fd is still open, then close it.
            self.source.deregister(io.as_fd());
            drop(io);
        }
    }
}

impl<T: AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsFd> AsRawFd for Async<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_fd().as_raw_fd()
    }
}

impl<T: AsFd + fmt::Debug> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Async").field(self.get_ref()).finish()
    }
}

/// Future returned by [`Async::readable`] and [`Async::writable`].
#[must_use = "futures do nothing unless awaited"]
pub struct Ready<'a> {
    source: &'a Arc<Source>,
    fd: BorrowedFd<'a>,
    dir: usize,
    slot: Option<usize>,
}

impl<'a> Ready<'a> {
    fn new(source: &'a Arc<Source>, fd: BorrowedFd<'a>, dir: usize) -> Ready<'a> {
        Ready {
            source,
            fd,
            dir,
            slot: None,
        }
    }
}

impl Future for Ready<'_> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this
            .source
            .poll_ready_waiter(this.dir, cx, this.fd, &mut this.slot)
        {
            Poll::Pending => park_here::<u64>(this.source, this.fd).map_ok(drop),
            ready => ready.map_ok(drop),
        }
    }
}

impl Drop for Ready<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.slot.take() {
            self.source.remove_waiter(self.dir, key);
        }
    }
}

impl fmt::Debug for Ready<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ready").field("dir", &self.dir).finish()
    }
}

/// Waits for readiness with a waiter slot that outlives one wait (for `read_with` loops), and
/// yields the sequence number observed.
struct WaitReady<'a, 'b> {
    source: &'a Arc<Source>,
    fd: BorrowedFd<'a>,
    dir: usize,
    slot: &'b mut Option<usize>,
}

impl<'a, 'b> WaitReady<'a, 'b> {
    fn new(
        source: &'a Arc<Source>,
        fd: BorrowedFd<'a>,
        dir: usize,
        slot: &'b mut Option<usize>,
    ) -> Self {
        WaitReady {
            source,
            fd,
            dir,
            slot,
        }
    }
}

impl Future for WaitReady<'_, '_> {
    type Output = io::Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        match this
            .source
            .poll_ready_waiter(this.dir, cx, this.fd, this.slot)
        {
            Poll::Pending => park_here(this.source, this.fd),
            ready => ready,
        }
    }
}

/// Called when a task has parked on `source`: makes sure the loop that will wake it is the one
/// running on this thread. An `Async` polled on another thread's loop moves its registration
/// there (the new registration reports the fd's readiness as of now, so the parked task is woken
/// by the new loop when there is something to do); polled where no loop runs, nothing would ever
/// deliver its events, so it fails instead of hanging.
fn park_here<T>(source: &Arc<Source>, fd: BorrowedFd<'_>) -> Poll<io::Result<T>> {
    let here = executor::running_reactor_id();
    if here == source.home() {
        return Poll::Pending;
    }
    if here == 0 {
        return Poll::Ready(Err(io::Error::other(
            "untangle: I/O object polled outside a running untangle loop (untangle::block_on); \
             nothing would deliver its readiness",
        )));
    }
    match source.move_to(&executor::current_reactor(), fd) {
        Ok(()) => Poll::Pending,
        Err(err) => Poll::Ready(Err(err)),
    }
}

impl Drop for WaitReady<'_, '_> {
    fn drop(&mut self) {
        if let Some(key) = self.slot.take() {
            self.source.remove_waiter(self.dir, key);
        }
    }
}

impl<T: AsFd + Read> AsyncRead for Async<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.poll_op_mut(READ, cx, |io| io.read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.poll_op_mut(READ, cx, |io| io.read_vectored(bufs))
    }
}

impl<T: AsFd + Write> AsyncWrite for Async<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.poll_op_mut(WRITE, cx, |io| io.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.poll_op_mut(WRITE, cx, |io| io.write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.poll_op_mut(WRITE, cx, |io| io.flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl<T: AsFd> Async<T> {
    /// `poll_op` for operations that need `&mut T` (the `Read`/`Write` impls of owned types).
    fn poll_op_mut<R>(
        &mut self,
        dir: usize,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let seq = ready!(self.poll_ready(dir, cx))?;
            let io = self.io.as_mut().expect("io present until into_inner");
            match op(io) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => self.source.clear(dir, seq),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }
}

impl<T: AsFd> AsyncRead for &Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_op(READ, cx, |mut io| io.read(buf), |_| false)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_op(READ, cx, |mut io| io.read_vectored(bufs), |_| false)
    }
}

impl<T: AsFd> AsyncWrite for &Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_op(WRITE, cx, |mut io| io.write(buf), |_| false)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_op(WRITE, cx, |mut io| io.write_vectored(bufs), |_| false)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_op(WRITE, cx, |mut io| io.flush(), |_| false)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

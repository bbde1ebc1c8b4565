//! hyper 1.x on untangle: I/O, executor and timer adapters for `hyper::rt` (feature `hyper`).
//!
//! - [`HyperIo`] wraps a futures-io stream (a [`TcpStream`](crate::net::TcpStream), a
//!   `futures_rustls` TLS stream, …) so hyper can read and write it, and the other way round
//!   wraps a hyper stream (e.g. `hyper::upgrade::Upgraded`) so futures-io code can use it;
//! - [`HyperExecutor`] spawns the tasks hyper starts (HTTP/2 streams, the client's connection
//!   helpers) on the current thread's loop;
//! - [`HyperTimer`] gives hyper untangle's timers, which it needs for `header_read_timeout`,
//!   keep-alive timeouts and HTTP/2 pings.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};
use hyper::rt::{Executor, ReadBuf, ReadBufCursor, Sleep, Timer};

use crate::time;

/// The most bytes one `hyper::rt::Read` poll reads (the size of the scratch buffer).
const SCRATCH_BYTES: usize = 16 * 1024;

/// A stream adapter between futures-io and `hyper::rt`.
///
/// - Wrapping a futures-io stream (`T: AsyncRead`/`AsyncWrite`), it implements
///   [`hyper::rt::Read`]/[`hyper::rt::Write`]: give it to hyper's `serve_connection` or
///   `handshake`.
/// - Wrapping a hyper stream (`T: hyper::rt::Read`/`Write`, such as `hyper::upgrade::Upgraded`),
///   it implements futures-io's `AsyncRead`/`AsyncWrite`: give it to a WebSocket library or
///   `futures::io::copy`.
///
/// The inner stream must be `Unpin`, as untangle's sockets and TLS streams are; wrap a stream
/// that is not in `Box::pin` first.
///
/// Writes are not vectored (hyper then gathers a response's head and a small body into one
/// buffer, which costs a copy but saves a syscall).
///
/// # Example
/// ```
/// use untangle::compat::HyperIo;
/// use untangle::net::UnixStream;
///
/// let (a, _b) = UnixStream::pair().unwrap();
/// let io = HyperIo::new(a);
/// let _peer = io.get_ref().peer_addr().unwrap();
/// let a: UnixStream = io.into_inner();
/// # drop(a);
/// ```
pub struct HyperIo<T> {
    inner: T,
    /// Initialized bytes to read into: hyper's cursor hands out uninitialized memory, and
    /// filling it without a copy would take `unsafe` (this crate has none).
    scratch: Vec<u8>,
}

impl<T> HyperIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> HyperIo<T> {
        HyperIo {
            inner,
            scratch: Vec::new(),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, mutably (reading or writing it directly can confuse hyper).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: fmt::Debug> fmt::Debug for HyperIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HyperIo").field(&self.inner).finish()
    }
}

/// futures-io → hyper: reads into hyper's (possibly uninitialized) buffer.
impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // futures-io reads into initialized `&mut [u8]`; hyper's cursor is uninitialized
        // memory. Read into a reused, initialized scratch buffer and copy: one memcpy of the
        // bytes read, and no `unsafe`.
        let want = buf.remaining().min(SCRATCH_BYTES);
        if want == 0 {
            return Poll::Ready(Ok(()));
        }
        let this = &mut *self;
        if this.scratch.len() < want {
            this.scratch.resize(want, 0);
        }
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, &mut this.scratch[..want]))?;
        let Some(read) = this.scratch.get(..n) else {
            return Poll::Ready(Err(io::Error::other(
                "AsyncRead reported more bytes than it was given",
            )));
        };
        buf.put_slice(read);
        Poll::Ready(Ok(()))
    }
}

/// futures-io → hyper: writes, flushes and closes (hyper's shutdown is futures-io's close).
impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// hyper → futures-io: for hyper's upgraded connections and other `hyper::rt` streams.
impl<T: hyper::rt::Read + Unpin> AsyncRead for HyperIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut read_buf = ReadBuf::new(buf);
        ready!(Pin::new(&mut self.inner).poll_read(cx, read_buf.unfilled()))?;
        Poll::Ready(Ok(read_buf.filled().len()))
    }
}

/// hyper → futures-io: writes, flushes and closes (futures-io's close is hyper's shutdown).
impl<T: hyper::rt::Write + Unpin> AsyncWrite for HyperIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write(Pin::new(&mut self.inner), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_flush(Pin::new(&mut self.inner), cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_shutdown(Pin::new(&mut self.inner), cx)
    }
}

/// hyper's executor: spawns the futures hyper hands it on the **current thread's** loop with
/// [`spawn`](crate::spawn), detached.
///
/// No `Send` bound: hyper 1.x accepts executors for `!Send` futures (its HTTP/2 server and client
/// spawn stream tasks through them), so services holding `Rc`s work. `execute` must be called on
/// a thread running an untangle loop, which is where hyper calls it: inside the connection
/// future it drives. To put a connection on *another* thread's loop, spawn the whole connection
/// future there with [`Handle::spawn`](crate::Handle::spawn) (it is `Send` when its I/O and
/// service are); the executor then spawns on that loop.
///
/// # Example
/// ```
/// use hyper::rt::Executor;
/// use untangle::compat::HyperExecutor;
///
/// untangle::block_on(async {
///     let (tx, rx) = async_channel::bounded(1);
///     // Not `Send`: an `Rc` crosses into the spawned future.
///     let shared = std::rc::Rc::new(7);
///     HyperExecutor::new().execute(async move { tx.send(*shared).await.unwrap() });
///     assert_eq!(rx.recv().await.unwrap(), 7);
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperExecutor {
    _private: (),
}

impl HyperExecutor {
    /// The executor of whichever loop calls it.
    pub fn new() -> HyperExecutor {
        HyperExecutor { _private: () }
    }
}

impl<F> Executor<F> for HyperExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, future: F) {
        crate::spawn(future).detach();
    }
}

/// hyper's timer: untangle's [`time::sleep_until`], so hyper's timeouts
/// (`header_read_timeout`, keep-alive, HTTP/2 keep-alive pings) fire on the loop's timers.
///
/// hyper requires its sleeps to be `Send + Sync + Unpin`: untangle's [`time::Sleep`] is (it holds
/// a deadline and a shared handle to its loop's reactor), so hyper gets it boxed as it is, and
/// [`Timer::reset`] moves its deadline in place instead of allocating a new one. Like any untangle
/// timer it must be polled on a thread inside [`block_on`](crate::block_on); hyper polls it from
/// the connection future, so drive connections with [`spawn`](crate::spawn) or `block_on`.
///
/// # Example
/// ```
/// use std::time::{Duration, Instant};
/// use hyper::rt::Timer;
/// use untangle::compat::HyperTimer;
///
/// untangle::block_on(async {
///     let start = Instant::now();
///     HyperTimer::new().sleep(Duration::from_millis(5)).await;
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperTimer {
    _private: (),
}

impl HyperTimer {
    /// The timer of whichever loop polls its sleeps.
    pub fn new() -> HyperTimer {
        HyperTimer { _private: () }
    }
}

impl Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(time::sleep(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(time::sleep_until(deadline))
    }

    /// The loop's clock, so hyper's own deadlines follow [`time::pause`] in tests.
    fn now(&self) -> Instant {
        time::now()
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<time::Sleep>() {
            Some(ours) => ours.get_mut().reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// untangle's sleep is hyper's sleep as it is. This impl is also the compile-time proof that
/// [`time::Sleep`] stays `Send + Sync` (hyper's supertraits) and `Unpin` (used by `reset`).
impl Sleep for time::Sleep {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_moves_the_deadline_of_an_untangle_sleep_in_place() {
        let timer = HyperTimer::new();
        let mut sleep = timer.sleep(Duration::from_secs(3600));
        let before: *const dyn Sleep = &*sleep;
        let soon = Instant::now() + Duration::from_millis(1);
        timer.reset(&mut sleep, soon);
        assert!(std::ptr::addr_eq(before, &*sleep as *const dyn Sleep));
        let ours = sleep.as_mut().downcast_mut_pin::<time::Sleep>().unwrap();
        assert_eq!(ours.deadline(), soon);
        crate::block_on(sleep);
        assert!(Instant::now() >= soon);
    }
}

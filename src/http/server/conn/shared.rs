//! The connection's state shared with the request body the handler holds: socket, buffers
//! and body decoder in one `Rc<RefCell<…>>`, with the poll-level reads and writes, the check
//! of whether the connection can carry another request, and the watch for the peer going away.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_lite::future::poll_fn;
use futures_lite::io::{AsyncRead, AsyncWrite};

use crate::http::buf::ReadBuf;
use crate::http::h1::{Decoded, Decoder, Limits};

/// Settings of a server's connections.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) header_read_timeout: Duration,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) limits: Limits,
    pub(crate) max_body_bytes: usize,
    /// End of stream from the client while a handler runs is a half-close, not a disconnect
    /// (`Server::half_close`).
    pub(crate) half_close: bool,
    /// Connections may carry more than one request (`Server::keep_alive`).
    pub(crate) keep_alive: bool,
    /// Insert the peer's address into each request's extensions (`Server::peer_addr_extension`).
    pub(crate) peer_addr_extension: bool,
}

/// An unread request body up to this size is read and discarded to keep the connection;
/// beyond it the connection is closed.
pub(super) const DRAIN_LIMIT: u64 = 256 * 1024;
/// How long draining an unread body, or lingering before a close, may take.
pub(super) const LINGER: Duration = Duration::from_secs(2);
/// Responses are gathered up to this size before a write, unless nothing else is waiting.
pub(super) const WRITE_BATCH: usize = 64 * 1024;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

pub(super) struct Inner<IO> {
    pub(super) io: IO,
    pub(super) rbuf: ReadBuf,
    pub(super) wbuf: Vec<u8>,
    /// The peer closed its side.
    pub(super) eof: bool,
    /// The body decoder of the current request.
    pub(super) decoder: Decoder,
    /// Number of the current request; a body from an earlier request may no longer read.
    pub(super) seq: u64,
    /// `Expect: 100-continue` not yet answered.
    pub(super) continue_pending: bool,
    /// The response head went out without the 100 that was pending: the client will not send
    /// the body, so reading it fails at once rather than waiting for it.
    pub(super) continue_refused: bool,
    /// How many bytes at the front of `wbuf` end with a 100 the request body queued itself
    /// (0: none). The body writes no further than that: what follows is the connection's.
    pub(super) continue_end: usize,
    /// The connection task is parked in a write. The reactor keeps one waker per direction,
    /// so a write from the body's task would take its place and it would never resume; the
    /// body's 100 then goes out with the connection's own bytes instead.
    pub(super) write_parked: bool,
    /// The task that last found the request body with nothing to read. A body handed to
    /// another task parks on the socket like the connection task does, and the connection's
    /// next read takes its place in the reactor: it is woken here instead when its body can
    /// no longer read (see [`retire_body`](Inner::retire_body)), or when its 100 went out.
    pub(super) body_waker: Option<Waker>,
    /// Reading the request body failed; the connection cannot be reused.
    pub(super) body_failed: bool,
    /// Where the current request body's stream lives (`Body::stream_addr`): tells whether a
    /// response body is that request body. Cleared when that body is dropped, so that a
    /// stream allocated at the same address later is not taken for it.
    pub(super) body_stream: Option<usize>,
}

pub(super) type Shared<IO> = Rc<RefCell<Inner<IO>>>;

/// What holds a request body once its handler returned (see [`Inner::poll_settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyHolder {
    /// The handler dropped it.
    Nobody,
    /// It is the response body, read as the response is sent.
    Response,
    /// Another task: it can no longer read once the response is written.
    Elsewhere,
}

/// What watching for the peer's close found.
pub(super) enum Watch {
    /// Nothing yet; the task is woken when the socket has news.
    Pending,
    /// Not worth watching any more (half-closed with `half_close`, or the buffer is full).
    Stop,
    /// The peer closed or reset the connection.
    Gone,
}

impl<IO> Inner<IO> {
    /// A connection's state before its first request.
    pub(super) fn new(io: IO) -> Inner<IO> {
        Inner {
            io,
            rbuf: ReadBuf::new(),
            wbuf: Vec::new(),
            eof: false,
            decoder: Decoder::Done,
            seq: 0,
            continue_pending: false,
            continue_refused: false,
            continue_end: 0,
            write_parked: false,
            body_waker: None,
            body_failed: false,
            body_stream: None,
        }
    }

    fn wake_body(&mut self) {
        if let Some(waker) = self.body_waker.take() {
            waker.wake();
        }
    }

    /// Ends the current request body's right to read (the response is written, or the
    /// connection is done): a read from now on fails, and a task parked on one is woken to
    /// find that out and let go of the connection.
    pub(super) fn retire_body(&mut self) {
        self.seq += 1;
        self.wake_body();
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Inner<IO> {
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let n = ready!(self.rbuf.poll_fill(&mut self.io, cx))?;
        if n == 0 {
            self.eof = true;
        }
        Poll::Ready(Ok(n))
    }

    /// Writes out `wbuf`, then `extra`, for the connection task.
    fn poll_write_all(&mut self, cx: &mut Context<'_>, extra: &mut Bytes) -> Poll<io::Result<()>> {
        let polled = self.poll_write_bufs(cx, extra);
        self.write_parked = polled.is_pending();
        polled
    }

    fn poll_write_bufs(&mut self, cx: &mut Context<'_>, extra: &mut Bytes) -> Poll<io::Result<()>> {
        while !self.wbuf.is_empty() || !extra.is_empty() {
            let n = if self.wbuf.is_empty() {
                ready!(Pin::new(&mut self.io).poll_write(cx, extra))?
            } else if extra.is_empty() {
                ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf))?
            } else {
                let bufs = [IoSlice::new(&self.wbuf), IoSlice::new(extra)];
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &bufs))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let from_wbuf = n.min(self.wbuf.len());
            self.consume_wbuf(from_wbuf);
            extra.advance(n - from_wbuf);
        }
        Poll::Ready(Ok(()))
    }

    /// Drops `n` written bytes from the front of `wbuf`; wakes the body's task once its 100
    /// is among them.
    fn consume_wbuf(&mut self, n: usize) {
        self.wbuf.drain(..n);
        if self.continue_end > 0 {
            self.continue_end = self.continue_end.saturating_sub(n);
            if self.continue_end == 0 {
                self.wake_body();
            }
        }
    }

    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_all(cx, &mut Bytes::new()))?;
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.write_parked = polled.is_pending();
        polled
    }

    /// Notes the task that found the body with nothing to read (see `body_waker`).
    pub(super) fn park_body(&mut self, cx: &Context<'_>) {
        match &self.body_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => self.body_waker = Some(cx.waker().clone()),
        }
    }

    /// Decides, before a response head is written, whether the connection can carry another
    /// request as far as the request body and the peer are concerned (RFC 9112 §9.6: a
    /// response after which the server closes says `Connection: close`).
    ///
    /// When nothing holds the body any more, what has already arrived of it is read and
    /// discarded here, counted in `drained`, without waiting. What has not arrived is drained
    /// after the response only when its size is known and within [`DRAIN_LIMIT`]; a chunked
    /// rest of unknown size means closing. Waiting for the rest before the head would hold
    /// back an early response (a 413, a 401) from a client that waits for it before it sends
    /// more, for as long as [`LINGER`]; hyper decides the same way.
    ///
    /// A body handed to another task is its to read until the response is written, then
    /// drained by the same rule: its buffered bytes are not touched here, so only a known
    /// rest within [`DRAIN_LIMIT`] keeps the connection.
    pub(super) fn poll_settle(
        &mut self,
        cx: &mut Context<'_>,
        holder: BodyHolder,
        drained: &mut u64,
    ) -> bool {
        if self.continue_pending || self.body_failed {
            return false;
        }
        match holder {
            BodyHolder::Nobody if !self.drain_arrived(cx, drained) => return false,
            BodyHolder::Elsewhere => match self.decoder {
                Decoder::Done => {}
                Decoder::Length(left) if left <= DRAIN_LIMIT => {}
                _ => return false,
            },
            _ => {}
        }
        // After the peer's FIN, nothing but what is buffered can follow.
        !(self.eof && (self.rbuf.is_empty() || !self.decoder.is_done()))
    }

    /// The draining part of [`poll_settle`](Inner::poll_settle): false when the rest of the
    /// body cannot be drained after the response.
    fn drain_arrived(&mut self, cx: &mut Context<'_>, drained: &mut u64) -> bool {
        loop {
            match self.decoder.decode(&mut self.rbuf, self.eof) {
                Ok(Decoded::Done) => return true,
                Ok(Decoded::Data(data)) => {
                    *drained += data.len() as u64;
                    if *drained > DRAIN_LIMIT {
                        return false;
                    }
                }
                Ok(Decoded::NeedMore) => {
                    if let Decoder::Length(left) = self.decoder {
                        return *drained + left <= DRAIN_LIMIT;
                    }
                    match self.poll_fill(cx) {
                        Poll::Ready(Ok(_)) => {}
                        Poll::Ready(Err(_)) | Poll::Pending => return false,
                    }
                }
                Err(_) => {
                    self.body_failed = true;
                    return false;
                }
            }
        }
    }

    /// Watches for the peer going away while a handler or a response body makes us wait:
    /// reads into the buffer (bytes of a pipelined next request are kept there) until the
    /// socket has nothing more. Only once the request body has been read to its end: until
    /// then its bytes are the handler's to read.
    ///
    /// Costs no syscall while the socket has nothing new: its read readiness is cached, and
    /// the last read of the request left it cleared.
    pub(super) fn poll_peer_gone(&mut self, cx: &mut Context<'_>, config: &Config) -> Watch {
        loop {
            if !self.decoder.is_done() {
                return Watch::Pending;
            }
            if self.eof {
                // Requests the client pipelined before its FIN are still to be answered: a
                // client that sends its requests and shuts down its sending side is waiting.
                return if config.half_close || !self.rbuf.is_empty() {
                    Watch::Stop
                } else {
                    Watch::Gone
                };
            }
            // A client pipelining more than a head's worth is not read on (TCP pushes back);
            // the peer's close then goes unnoticed until the response is written.
            if self.rbuf.len() >= config.limits.max_header_bytes {
                return Watch::Stop;
            }
            match self.poll_fill(cx) {
                Poll::Pending => return Watch::Pending,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(_)) => return Watch::Gone,
            }
        }
    }

    /// Answers a pending `Expect: 100-continue` with 100 now, ahead of the response head: the
    /// request body is still held (by the response body, which reads it as it is sent, or by
    /// anything else, which may read it until the response is written), and a client waiting
    /// for the 100 before it sends the body would otherwise wait forever (or for its own
    /// timeout, after which the connection could not be reused). Go's and Node's clients wait
    /// without a timeout.
    pub(super) fn ask_for_body(&mut self) {
        if self.continue_pending {
            self.continue_pending = false;
            crate::http::buf::take_write_buf(&mut self.wbuf);
            self.wbuf.extend_from_slice(CONTINUE);
        }
    }

    /// The next piece of the current request body.
    pub(super) fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.continue_refused {
            return Poll::Ready(Some(Err(io::Error::other(
                "request body not sent: the response went out without 100 Continue",
            ))));
        }
        if self.continue_pending {
            self.continue_pending = false;
            crate::http::buf::take_write_buf(&mut self.wbuf);
            self.wbuf.extend_from_slice(CONTINUE);
            self.continue_end = self.wbuf.len();
        }
        if self.continue_end > 0 {
            if let Err(err) = ready!(self.poll_send_continue(cx)) {
                self.body_failed = true;
                return Poll::Ready(Some(Err(err)));
            }
        }
        loop {
            match self.decoder.decode(&mut self.rbuf, self.eof) {
                Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(Decoded::Done) => return Poll::Ready(None),
                Ok(Decoded::NeedMore) => {
                    if let Err(err) = ready!(self.poll_fill(cx)) {
                        self.body_failed = true;
                        return Poll::Ready(Some(Err(err)));
                    }
                }
                Err(err) => {
                    self.body_failed = true;
                    return Poll::Ready(Some(Err(err.into_io())));
                }
            }
        }
    }

    /// Writes `wbuf` up to the end of the 100 the body queued (bytes queued before it go
    /// first; those after it are the connection's to write), unless the connection task is
    /// parked in a write: that write sends the 100 too, and wakes the body (`consume_wbuf`).
    fn poll_send_continue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.continue_end > 0 {
            if self.write_parked {
                return Poll::Pending;
            }
            let end = self.continue_end.min(self.wbuf.len());
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf[..end]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.body_waker = None;
            self.consume_wbuf(n);
        }
        if self.write_parked {
            // Its flush follows its write.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

/// Retires the request body when the connection's future ends, however it ends (also when it
/// is dropped): a task parked on a body handed to it is woken, its read fails, and it lets go
/// of the connection, whose socket would otherwise stay open as long as that task waits.
/// Weak, so that it does not count as a holder of the connection's state (`body_holder`,
/// `hand_over`).
pub(super) struct RetireOnDrop<IO>(pub(super) std::rc::Weak<RefCell<Inner<IO>>>);

impl<IO> Drop for RetireOnDrop<IO> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            if let Ok(mut inner) = shared.try_borrow_mut() {
                inner.retire_body();
            }
        }
    }
}

pub(super) async fn flush<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
) -> io::Result<()> {
    poll_fn(|cx| shared.borrow_mut().poll_flush(cx)).await
}

pub(super) async fn write_all<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    mut data: Bytes,
) -> io::Result<()> {
    poll_fn(|cx| shared.borrow_mut().poll_write_all(cx, &mut data)).await
}

pub(super) async fn fill<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
) -> io::Result<usize> {
    poll_fn(|cx| shared.borrow_mut().poll_fill(cx)).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;
    use crate::http::h1::Framing;

    /// A socket that, like the reactor, keeps one waker per direction.
    #[derive(Default)]
    struct OneWaker {
        writable: bool,
        written: Vec<u8>,
        write_waker: Option<Waker>,
    }

    impl AsyncRead for OneWaker {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for OneWaker {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if !self.writable {
                self.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            self.written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn inner() -> Inner<OneWaker> {
        Inner {
            decoder: Decoder::new(Framing::Length(5)),
            seq: 1,
            continue_pending: true,
            ..Inner::new(OneWaker::default())
        }
    }

    #[test]
    fn the_body_does_not_take_the_write_waker_of_a_parked_connection() {
        let conn = Arc::new(Counter(AtomicUsize::new(0)));
        let body = Arc::new(Counter(AtomicUsize::new(0)));
        let (conn_waker, body_waker) = (Waker::from(conn.clone()), Waker::from(body.clone()));
        let mut inner = inner();
        // The connection task is parked flushing bytes of its own (a response held back).
        inner
            .wbuf
            .extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        let held = inner.wbuf.len();
        let mut cx = Context::from_waker(&conn_waker);
        assert!(inner.poll_flush(&mut cx).is_pending());
        // The body's task asks for its body: its 100 queues after those bytes, unwritten.
        let mut cx = Context::from_waker(&body_waker);
        assert!(inner.poll_body(&mut cx).is_pending());
        inner.park_body(&cx);
        assert!(inner
            .io
            .write_waker
            .as_ref()
            .unwrap()
            .will_wake(&conn_waker));
        assert_eq!(inner.wbuf.len(), held + CONTINUE.len());
        // The connection's write sends the 100 too, and wakes the body's task.
        inner.io.writable = true;
        inner.io.write_waker.take().unwrap().wake();
        assert_eq!(conn.0.load(Ordering::SeqCst), 1);
        let mut cx = Context::from_waker(&conn_waker);
        assert!(inner.poll_flush(&mut cx).is_ready());
        assert!(inner.io.written.ends_with(CONTINUE));
        assert_eq!(body.0.load(Ordering::SeqCst), 1);
        assert_eq!(inner.continue_end, 0);
    }

    #[test]
    fn the_body_writes_its_100_and_nothing_queued_after_it() {
        let waker = Waker::from(Arc::new(Counter(AtomicUsize::new(0))));
        let mut inner = inner();
        inner.io.writable = true;
        let mut cx = Context::from_waker(&waker);
        assert!(inner.poll_body(&mut cx).is_pending());
        assert_eq!(inner.io.written, CONTINUE);
        // Bytes the connection queues after it are the connection's to write.
        inner.wbuf.extend_from_slice(b"response");
        assert!(inner.poll_body(&mut cx).is_pending());
        assert_eq!(inner.io.written, CONTINUE);
        assert_eq!(inner.wbuf, b"response");
    }

    #[test]
    fn a_retired_body_wakes_its_task() {
        let body = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(body.clone());
        let mut inner = inner();
        inner.park_body(&Context::from_waker(&waker));
        inner.retire_body();
        assert_eq!(body.0.load(Ordering::SeqCst), 1);
        assert_eq!(inner.seq, 2);
    }

    #[test]
    fn a_body_whose_100_was_refused_fails_at_once() {
        let waker = Waker::from(Arc::new(Counter(AtomicUsize::new(0))));
        let mut inner = inner();
        inner.continue_pending = false;
        inner.continue_refused = true;
        let polled = inner.poll_body(&mut Context::from_waker(&waker));
        assert!(matches!(polled, Poll::Ready(Some(Err(_)))));
        assert!(inner.wbuf.is_empty(), "no 100 after the response head");
    }
}

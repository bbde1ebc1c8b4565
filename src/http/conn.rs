//! One server connection: read request heads, run the handler, write the responses in order.
//!
//! The connection's buffers and socket live in one `Rc<RefCell<…>>` shared with the request
//! body the handler holds, so the body streams straight from the socket. No borrow is held
//! across an `.await`: every access is inside one `poll`.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_lite::future::poll_fn;
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::{FutureExt, Stream};
use http::header;
use http::{Method, Request, Response, StatusCode, Version};

use super::body::Body;
use super::buf::{self, ReadBuf};
use super::date;
use super::h1::{self, Decoded, Decoder, Framing, Limits, RequestHead};
use super::response::IntoResponse;
use super::server::ServerState;
use crate::time::{sleep, sleep_until, Sleep};

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
}

/// An unread request body up to this size is read and discarded to keep the connection;
/// beyond it the connection is closed.
const DRAIN_LIMIT: u64 = 256 * 1024;
/// How long draining an unread body, or lingering before a close, may take.
const LINGER: Duration = Duration::from_secs(2);
/// Responses are gathered up to this size before a write, unless nothing else is waiting.
const WRITE_BATCH: usize = 64 * 1024;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

struct Inner<IO> {
    io: IO,
    rbuf: ReadBuf,
    wbuf: Vec<u8>,
    /// The peer closed its side.
    eof: bool,
    /// The body decoder of the current request.
    decoder: Decoder,
    /// Number of the current request; a body from an earlier request may no longer read.
    seq: u64,
    /// `Expect: 100-continue` not yet answered.
    continue_pending: bool,
    /// Reading the request body failed; the connection cannot be reused.
    body_failed: bool,
}

type Shared<IO> = Rc<RefCell<Inner<IO>>>;

/// What watching for the peer's close found.
enum Watch {
    /// Nothing yet; the task is woken when the socket has news.
    Pending,
    /// Not worth watching any more (half-closed with `half_close`, or the buffer is full).
    Stop,
    /// The peer closed or reset the connection.
    Gone,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Inner<IO> {
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let n = ready!(self.rbuf.poll_fill(&mut self.io, cx))?;
        if n == 0 {
            self.eof = true;
        }
        Poll::Ready(Ok(n))
    }

    /// Writes out `wbuf`, then `extra`.
    fn poll_write_all(&mut self, cx: &mut Context<'_>, extra: &mut Bytes) -> Poll<io::Result<()>> {
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
            self.wbuf.drain(..from_wbuf);
            extra.advance(n - from_wbuf);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_all(cx, &mut Bytes::new()))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Decides, before a response head is written, whether the connection can carry another
    /// request as far as the request body and the peer are concerned (RFC 9112 §9.6: a
    /// response after which the server closes says `Connection: close`).
    ///
    /// When nothing holds the body any more (`abandoned`), what has already arrived of it is
    /// read and discarded here, counted in `drained`, without waiting. What has not arrived is
    /// drained after the response only when its size is known and within [`DRAIN_LIMIT`]; a
    /// chunked rest of unknown size means closing. Waiting for the rest before the head would
    /// hold back an early response (a 413, a 401) from a client that waits for it before it
    /// sends more, for as long as [`LINGER`]; hyper decides the same way.
    fn poll_settle(&mut self, cx: &mut Context<'_>, abandoned: bool, drained: &mut u64) -> bool {
        if self.continue_pending || self.body_failed {
            return false;
        }
        if abandoned && !self.drain_arrived(cx, drained) {
            return false;
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
    fn poll_peer_gone(&mut self, cx: &mut Context<'_>, config: &Config) -> Watch {
        loop {
            if !self.decoder.is_done() {
                return Watch::Pending;
            }
            if self.eof {
                return if config.half_close {
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

    /// The next piece of the current request body.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.continue_pending {
            self.continue_pending = false;
            self.wbuf.extend_from_slice(CONTINUE);
        }
        if !self.wbuf.is_empty() {
            if let Err(err) = ready!(self.poll_flush(cx)) {
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
}

async fn flush<IO: AsyncRead + AsyncWrite + Unpin>(shared: &Shared<IO>) -> io::Result<()> {
    poll_fn(|cx| shared.borrow_mut().poll_flush(cx)).await
}

async fn write_all<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    mut data: Bytes,
) -> io::Result<()> {
    poll_fn(|cx| shared.borrow_mut().poll_write_all(cx, &mut data)).await
}

async fn fill<IO: AsyncRead + AsyncWrite + Unpin>(shared: &Shared<IO>) -> io::Result<usize> {
    poll_fn(|cx| shared.borrow_mut().poll_fill(cx)).await
}

/// Runs `work` (a handler) to completion, unless the peer closes the connection first: then
/// `None`, and the caller drops `work`, so that a handler waiting on a long poll or a stream
/// stops with its client (hyper does the same; `Server::half_close` opts out for EOF).
///
/// The socket is watched only after `work` returned `Pending`: a handler that is ready at
/// once costs nothing more.
async fn unless_peer_gone<IO, F>(shared: &Shared<IO>, config: &Config, work: F) -> Option<F::Output>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    F: Future,
{
    let mut work = pin!(work);
    let mut watching = true;
    poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if watching {
            match shared.borrow_mut().poll_peer_gone(cx, config) {
                Watch::Pending => {}
                Watch::Stop => watching = false,
                Watch::Gone => return Poll::Ready(None),
            }
        }
        Poll::Pending
    })
    .await
}

/// The body of a request, streaming from the connection.
struct RequestBody<IO> {
    shared: Shared<IO>,
    seq: u64,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Stream for RequestBody<IO> {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut inner = self.shared.borrow_mut();
        if inner.seq != self.seq {
            return Poll::Ready(Some(Err(io::Error::other(
                "request body read after its response was sent",
            ))));
        }
        inner.poll_body(cx)
    }
}

// Not boxed: a box would cost an allocation per request, and `Head` only lives on the stack of
// one `.await`.
#[allow(clippy::large_enum_variant)]
enum Head {
    Request(RequestHead),
    Reject(StatusCode, &'static str),
    /// Nothing of a next request is buffered.
    Idle,
    Close,
}

/// What a busy phase of a connection ended with.
enum Busy {
    /// Every buffered request is answered and flushed; wait for more input.
    Idle,
    /// Close gracefully.
    Close,
    /// The connection failed; drop it.
    Abort,
}

/// Serves one connection until it closes.
///
/// A connection alternates between waiting, idle, for its next request (`wait_idle`, a small
/// future) and a busy phase that serves every request it has bytes for (`serve_requests`,
/// boxed). Boxing the busy phase keeps the task of an idle connection small (its future is as
/// large as its largest state, and the handler's future and response live in the busy one); the
/// box costs one allocation per busy phase, so pipelined requests share one.
pub(crate) async fn serve_conn<IO, H, Fut, R>(
    io: IO,
    peer: SocketAddr,
    handler: Rc<H>,
    config: Rc<Config>,
    server: Rc<ServerState>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
    H: Fn(Request<Body>) -> Fut + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    let shared = Rc::new(RefCell::new(Inner {
        io,
        rbuf: ReadBuf::new(),
        wbuf: Vec::new(),
        eof: false,
        decoder: Decoder::Done,
        seq: 0,
        continue_pending: false,
        body_failed: false,
    }));
    let mut first = true;
    let first_deadline = crate::time::now() + config.header_read_timeout;
    let mut shutdown = server.shutdown_waiter();
    let mut idle_timer = IdleTimer::new(config.keep_alive_timeout);
    loop {
        let deadline = first.then_some(first_deadline);
        if wait_idle(&shared, &config, &mut shutdown, &mut idle_timer, deadline)
            .await
            .is_err()
        {
            break;
        }
        let busy = serve_requests(&shared, peer, &handler, &config, &server, &mut first);
        match Box::pin(busy).await {
            Busy::Idle => {}
            Busy::Close => break,
            Busy::Abort => return,
        }
    }
    Box::pin(close(&shared)).await;
}

/// Waits, idle, until bytes of a next request arrive (`Ok`), or the connection should close
/// (`Err`): the peer closed, a read failed, the server shuts down, or the keep-alive timeout
/// (the header timeout `first_deadline` before the first request) passed. Holds no buffer
/// memory while it waits.
async fn wait_idle<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    config: &Config,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
    idle_timer: &mut IdleTimer,
    first_deadline: Option<Instant>,
) -> Result<(), ()> {
    let mut idle_deadline = None;
    poll_fn(|cx| {
        {
            let mut inner = shared.borrow_mut();
            if !inner.rbuf.is_empty() {
                return Poll::Ready(Ok(()));
            }
            if inner.eof {
                return Poll::Ready(Err(()));
            }
            match inner.poll_fill(cx) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Ready(Ok(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => {}
            }
            // Waiting between requests: hold no buffer memory meanwhile (see `buf`).
            inner.rbuf.release_if_empty();
            buf::give_write_buf(&mut inner.wbuf);
        }
        if Pin::new(&mut *shutdown).poll(cx).is_ready() {
            return Poll::Ready(Err(()));
        }
        let now = crate::time::now();
        let deadline = *idle_deadline
            .get_or_insert_with(|| first_deadline.unwrap_or(now + config.keep_alive_timeout));
        if idle_timer.poll_expired(cx, now, deadline) {
            return Poll::Ready(Err(()));
        }
        Poll::Pending
    })
    .await
}

/// Serves requests while their bytes are buffered or arriving; see [`serve_conn`].
async fn serve_requests<IO, H, Fut, R>(
    shared: &Shared<IO>,
    peer: SocketAddr,
    handler: &Rc<H>,
    config: &Config,
    server: &ServerState,
    first: &mut bool,
) -> Busy
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
    H: Fn(Request<Body>) -> Fut + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    loop {
        let head = match read_head(shared, config, *first).await {
            Head::Request(head) => head,
            Head::Reject(status, reason) => {
                log::debug!("{peer}: rejected request: {reason}");
                let _ = write_error(shared, status, reason).await;
                return Busy::Close;
            }
            Head::Idle => return Busy::Idle,
            Head::Close => return Busy::Close,
        };
        *first = false;

        let RequestHead {
            request,
            framing,
            keep_alive,
            expect_continue,
        } = head;
        let seq = {
            let mut inner = shared.borrow_mut();
            inner.decoder = Decoder::new(framing);
            inner.continue_pending = expect_continue && !inner.decoder.is_done();
            inner.body_failed = false;
            inner.seq += 1;
            inner.seq
        };
        let length = match framing {
            Framing::Empty => Some(0),
            Framing::Length(n) => Some(n),
            Framing::Chunked | Framing::Eof => None,
        };
        let body = if length == Some(0) {
            Body::empty()
        } else {
            Body::from_boxed(
                Box::pin(RequestBody {
                    shared: shared.clone(),
                    seq,
                }),
                length,
            )
        }
        .with_limit(config.max_body_bytes);
        let version = request.version();
        let is_head = request.method() == Method::HEAD;
        let mut request = request.map(|()| body);
        request.extensions_mut().insert(peer);

        let handler_ref = handler;
        let handling = AssertUnwindSafe(async move { handler_ref(request).await.into_response() })
            .catch_unwind();
        let Some(outcome) = unless_peer_gone(shared, config, handling).await else {
            log::debug!("{peer}: closed the connection while its handler ran; handler dropped");
            return Busy::Abort;
        };
        let (response, mut keep) = match outcome {
            Ok(response) => (response, keep_alive),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(non-string payload)");
                log::error!("{peer}: handler panicked: {message}");
                (StatusCode::INTERNAL_SERVER_ERROR.into_response(), false)
            }
        };
        if server.is_shutting_down() {
            keep = false;
        }
        // Whether the connection is kept is settled before the head is written, so that the
        // head can say so. Nothing but this connection holding the buffers means the handler
        // dropped its body unread (rather than returning it as the response body or handing
        // it to a task).
        let mut drained = 0;
        if keep {
            let abandoned = Rc::strong_count(shared) == 1;
            keep = poll_fn(|cx| {
                Poll::Ready(shared.borrow_mut().poll_settle(cx, abandoned, &mut drained))
            })
            .await;
        }
        let written = write_response(shared, config, response, is_head, version, keep).await;
        {
            // An earlier request's body handed to a spawned task must not read from now on.
            let mut inner = shared.borrow_mut();
            inner.seq += 1;
            if inner.body_failed {
                keep = false;
            }
        }
        match written {
            Ok(true) => {}
            Ok(false) => return Busy::Close,
            Err(err) => {
                log::debug!("{peer}: writing response: {err}");
                return Busy::Abort;
            }
        }
        if !keep || !drain_body(shared, drained).await {
            return Busy::Close;
        }
    }
}

/// The keep-alive timer of a connection, armed once and moved lazily.
///
/// Arming a timer for every wait between requests would cost a timer insertion and removal per
/// request. Instead one timer stays registered: each wait only records its deadline, and when
/// the timer fires before that deadline it is moved to it.
struct IdleTimer {
    timer: Sleep,
    registered: bool,
}

impl IdleTimer {
    fn new(timeout: Duration) -> IdleTimer {
        IdleTimer {
            timer: sleep(timeout),
            registered: false,
        }
    }

    /// Whether `deadline` has passed; otherwise makes sure the task is woken by then (or
    /// earlier, spuriously).
    fn poll_expired(&mut self, cx: &mut Context<'_>, now: Instant, deadline: Instant) -> bool {
        if now >= deadline {
            return true;
        }
        if self.registered && now < self.timer.deadline() && self.timer.deadline() <= deadline {
            // Still armed for no later than the deadline, and for this task: nothing to do.
            return false;
        }
        if now >= self.timer.deadline() || self.timer.deadline() > deadline {
            self.timer.reset(deadline);
        }
        self.registered = Pin::new(&mut self.timer).poll(cx).is_pending();
        !self.registered
    }
}

/// Reads the next request head within the header timeout; `Head::Idle` when no byte of one is
/// buffered (after flushing the responses held back for pipelining).
async fn read_head<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    config: &Config,
    first: bool,
) -> Head {
    let mut header_deadline = first.then(|| crate::time::now() + config.header_read_timeout);
    loop {
        let idle = {
            let mut inner = shared.borrow_mut();
            match h1::parse_request(&mut inner.rbuf, &config.limits) {
                Ok(Some(head)) => return Head::Request(head),
                Err(reject) => return Head::Reject(reject.status, reject.reason),
                Ok(None) => {}
            }
            if inner.eof {
                return Head::Close;
            }
            let idle = inner.rbuf.is_empty();
            if !idle && header_deadline.is_none() {
                header_deadline = Some(crate::time::now() + config.header_read_timeout);
            }
            idle
        };
        // Responses held back for pipelining go out before we wait for more input.
        if !shared.borrow().wbuf.is_empty() && flush(shared).await.is_err() {
            return Head::Close;
        }
        if idle {
            return Head::Idle;
        }
        let read = fill(shared);
        let result = match header_deadline {
            Some(deadline) => {
                let expired = async {
                    sleep_until(deadline).await;
                    Err(io::ErrorKind::TimedOut.into())
                };
                read.or(expired).await
            }
            None => read.await,
        };
        match result {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::TimedOut => {
                return Head::Reject(StatusCode::REQUEST_TIMEOUT, "request head timeout");
            }
            Err(_) => return Head::Close,
        }
    }
}

/// Writes a response; returns whether the connection can carry another request.
async fn write_response<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    config: &Config,
    response: Response<Body>,
    is_head: bool,
    version: Version,
    keep_alive: bool,
) -> io::Result<bool> {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let mut keep = keep_alive;
    {
        let mut inner = shared.borrow_mut();
        if inner.continue_pending {
            // The body was never asked for: the client may or may not send it, so the
            // connection cannot be reused.
            inner.continue_pending = false;
            keep = false;
        }
        // Reading the request body failed (bad chunked framing, early close): the connection
        // will close, so the response must say so (RFC 9112 §9.6).
        if inner.body_failed {
            keep = false;
        }
    }
    // One pass over the handler's headers: write them, and note those that steer framing and
    // the connection, instead of a map lookup for each.
    let mut user_length = None;
    let mut user_connection = false;
    let mut user_date = false;
    {
        let mut inner = shared.borrow_mut();
        buf::take_write_buf(&mut inner.wbuf);
        let out = &mut inner.wbuf;
        h1::encode_status_line(status, out);
        for (name, value) in &parts.headers {
            if name == header::CONTENT_LENGTH {
                if user_length.is_none() {
                    user_length = Some(
                        value
                            .to_str()
                            .ok()
                            .and_then(|v| v.trim().parse::<u64>().ok()),
                    );
                }
                continue;
            }
            if name == header::TRANSFER_ENCODING {
                continue;
            }
            if name == header::CONNECTION {
                user_connection = true;
                continue;
            }
            if name == header::DATE {
                user_date = true;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    if user_connection && h1::connection_tokens(&parts.headers).0 {
        keep = false;
    }
    let user_length = user_length.flatten();
    let bodiless_status = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if bodiless_status {
        Framing::Empty
    } else if let Some(n) = body.size_hint().or(user_length) {
        Framing::Length(n)
    } else if version == Version::HTTP_11 {
        Framing::Chunked
    } else {
        keep = false;
        Framing::Eof
    };

    {
        let mut inner = shared.borrow_mut();
        let out = &mut inner.wbuf;
        // Framing, then Date: the order hyper uses, so that benchmark peers send the same bytes.
        match framing {
            Framing::Length(n) => {
                out.extend_from_slice(b"content-length: ");
                h1::encode_u64(n, out);
                out.extend_from_slice(b"\r\n");
            }
            Framing::Chunked if !is_head => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            }
            _ => {}
        }
        if !user_date {
            out.extend_from_slice(b"date: ");
            date::write(out);
            out.extend_from_slice(b"\r\n");
        }
        if !keep {
            out.extend_from_slice(b"connection: close\r\n");
        } else if version == Version::HTTP_10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    if is_head || framing == Framing::Empty {
        drop(body);
        finish_write(shared, keep).await?;
        return Ok(keep);
    }

    if let Some(full) = body.as_full() {
        let full = full.clone();
        let small = {
            let mut inner = shared.borrow_mut();
            if inner.wbuf.len() + full.len() <= WRITE_BATCH {
                inner.wbuf.extend_from_slice(&full);
                true
            } else {
                false
            }
        };
        if !small {
            write_all(shared, full).await?;
        }
        finish_write(shared, keep).await?;
        return Ok(keep);
    }

    let mut remaining = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    loop {
        let chunk = match next_chunk(shared, config, &mut body).await? {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(err)) => {
                // The response cannot be completed: end it so the client sees an error, not
                // a truncated body that looks whole.
                log::warn!("response body failed: {err}");
                let _ = flush(shared).await;
                return Ok(false);
            }
        };
        if chunk.is_empty() {
            continue;
        }
        let data = match &mut remaining {
            Some(left) => {
                if chunk.len() as u64 > *left {
                    log::warn!("response body longer than its Content-Length; truncated");
                    let data = chunk.slice(..*left as usize);
                    *left = 0;
                    write_all(shared, data).await?;
                    return Ok(false);
                }
                *left -= chunk.len() as u64;
                chunk
            }
            None => chunk,
        };
        if framing == Framing::Chunked {
            let mut inner = shared.borrow_mut();
            h1::encode_chunk_head(data.len(), &mut inner.wbuf);
        }
        let copied = {
            let mut inner = shared.borrow_mut();
            if inner.wbuf.len() + data.len() <= WRITE_BATCH {
                inner.wbuf.extend_from_slice(&data);
                true
            } else {
                false
            }
        };
        if !copied {
            write_all(shared, data).await?;
        }
        if framing == Framing::Chunked {
            shared.borrow_mut().wbuf.extend_from_slice(b"\r\n");
        }
    }
    if remaining.is_some_and(|left| left > 0) {
        log::warn!("response body shorter than its Content-Length; closing");
        flush(shared).await?;
        return Ok(false);
    }
    if framing == Framing::Chunked {
        shared.borrow_mut().wbuf.extend_from_slice(h1::CHUNKED_END);
    }
    finish_write(shared, keep).await?;
    Ok(keep && framing != Framing::Eof)
}

/// Flushes now unless more pipelined requests are already buffered (then responses batch).
async fn finish_write<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    keep: bool,
) -> io::Result<()> {
    let hold = {
        let inner = shared.borrow();
        // Buffered bytes of an unread body are not a next request: holding the response
        // then would delay it until the body is drained, or until the drain gives up and
        // closes, for a client that waits for the response before sending the rest.
        keep && inner.decoder.is_done() && !inner.rbuf.is_empty() && inner.wbuf.len() < WRITE_BATCH
    };
    if hold {
        Ok(())
    } else {
        flush(shared).await
    }
}

/// The next chunk of a response body; flushes what is buffered while the body makes us wait,
/// and watches for the peer's close meanwhile (see [`unless_peer_gone`]). `Err` when the
/// connection failed or the peer went away: the body is then dropped unfinished.
async fn next_chunk<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    config: &Config,
    body: &mut Body,
) -> io::Result<Option<io::Result<Bytes>>> {
    let mut watching = true;
    poll_fn(|cx| {
        if let Poll::Ready(item) = Pin::new(&mut *body).poll_next(cx) {
            return Poll::Ready(Ok(item));
        }
        let mut inner = shared.borrow_mut();
        if !inner.wbuf.is_empty() {
            if let Poll::Ready(Err(err)) = inner.poll_flush(cx) {
                return Poll::Ready(Err(err));
            }
        }
        if watching {
            match inner.poll_peer_gone(cx, config) {
                Watch::Pending => {}
                Watch::Stop => watching = false,
                Watch::Gone => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "peer closed the connection during the response",
                    )))
                }
            }
        }
        Poll::Pending
    })
    .await
}

/// Reads and discards what the handler left of the request body; false when the connection
/// must close instead (too much left, malformed, or too slow).
async fn drain_body<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    mut drained: u64,
) -> bool {
    // Counted across polls (and from what was drained before the response): a body arriving
    // in many small reads must hit the limit too.
    let drain = poll_fn(|cx| {
        let mut inner = shared.borrow_mut();
        loop {
            if inner.body_failed {
                return Poll::Ready(false);
            }
            let Inner {
                decoder, rbuf, eof, ..
            } = &mut *inner;
            match decoder.decode(rbuf, *eof) {
                Ok(Decoded::Done) => return Poll::Ready(true),
                Ok(Decoded::Data(data)) => {
                    drained += data.len() as u64;
                    if drained > DRAIN_LIMIT {
                        return Poll::Ready(false);
                    }
                }
                Ok(Decoded::NeedMore) => match ready!(inner.poll_fill(cx)) {
                    Ok(_) => {}
                    Err(_) => return Poll::Ready(false),
                },
                Err(_) => return Poll::Ready(false),
            }
        }
    });
    let expired = async {
        sleep(LINGER).await;
        false
    };
    drain.or(expired).await
}

/// Answers a rejected request and closes.
async fn write_error<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    status: StatusCode,
    reason: &'static str,
) -> io::Result<()> {
    {
        let mut inner = shared.borrow_mut();
        let out = &mut inner.wbuf;
        h1::encode_status_line(status, out);
        out.extend_from_slice(b"date: ");
        date::write(out);
        out.extend_from_slice(b"\r\ncontent-type: text/plain\r\ncontent-length: ");
        h1::encode_u64(reason.len() as u64 + 1, out);
        out.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
        out.extend_from_slice(reason.as_bytes());
        out.push(b'\n');
    }
    flush(shared).await
}

/// Closes gracefully: flush, send FIN, then read and discard briefly so that unread input
/// does not make the kernel reset the connection before the client read our last response.
async fn close<IO: AsyncRead + AsyncWrite + Unpin>(shared: &Shared<IO>) {
    let linger = async {
        if flush(shared).await.is_err() {
            return;
        }
        if poll_fn(|cx| Pin::new(&mut shared.borrow_mut().io).poll_close(cx))
            .await
            .is_err()
        {
            return;
        }
        let mut discarded = 0;
        loop {
            let n = {
                let mut inner = shared.borrow_mut();
                let len = inner.rbuf.len();
                inner.rbuf.advance(len);
                len
            };
            discarded += n;
            if discarded > DRAIN_LIMIT as usize || shared.borrow().eof {
                return;
            }
            if fill(shared).await.is_err() {
                return;
            }
        }
    };
    linger.or(sleep(LINGER)).await;
}

//! One server connection: read request heads, run the handler, write the responses in order.
//!
//! The connection's buffers and socket live in one `Rc<RefCell<…>>` shared with the request
//! body the handler holds, so the body streams straight from the socket. No borrow is held
//! across an `.await`: every access is inside one `poll`.

mod shared;
mod write;

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future::poll_fn;
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::{FutureExt, Stream};
use http::{Method, Request, Response, StatusCode};

pub(super) use shared::Config;
use shared::{fill, flush, BodyHolder, Inner, RetireOnDrop, Shared, Watch};
use write::{close, drain_body, write_error, write_response};

use super::state::ServerState;
use crate::http::body::Body;
use crate::http::buf;
use crate::http::h1::{self, Decoder, Framing, HeadInfo};
use crate::http::response::IntoResponse;
use crate::http::upgrade::{self, Decision, Pending, Upgraded};
use crate::time::{sleep, sleep_until, Sleep};

/// One poll of a request's handler: starts it on the first poll (`request` is then taken),
/// polls it, and converts its output into the response, all under `catch_unwind`, so that a
/// panic in the handler (even in a closure's synchronous part) or in `into_response` answers
/// a 500 rather than unwinding the connection. `Ready(None)` when the peer closed the
/// connection first: the caller then drops the handler, so that a handler waiting on a long
/// poll or a stream stops with its client (hyper does the same; `Server::half_close` opts out
/// for EOF).
///
/// The handler's future is built once, in the slot `handling` in the connection's future, and
/// polled there: no wrapper future around it to move it into (each move of a future is a
/// copy of its whole state).
///
/// The socket is watched only after the handler returned `Pending`: a handler that is ready at
/// once costs nothing more.
///
/// The response goes into the slot `response` rather than out through the `Poll`: the caller
/// writes it from there, so it is not copied through each future's output on its way.
#[allow(clippy::too_many_arguments)]
fn poll_handler<IO, H, Fut, R>(
    cx: &mut Context<'_>,
    shared: &Shared<IO>,
    config: &Config,
    handler: &H,
    request: &mut Option<Request<Body>>,
    mut handling: Pin<&mut Option<Fut>>,
    watching: &mut bool,
    response: &mut Option<Response<Body>>,
) -> Poll<Handled>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request<Body>) -> Fut,
    Fut: Future<Output = R>,
    R: IntoResponse,
{
    let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if let Some(request) = request.take() {
            handling.set(Some(handler(request)));
        }
        match handling.as_mut().as_pin_mut() {
            Some(work) => work
                .poll(cx)
                .map(|out| *response = Some(out.into_response())),
            None => Poll::Pending,
        }
    }));
    match polled {
        Ok(Poll::Ready(())) => return Poll::Ready(Handled::Response),
        Err(payload) => return Poll::Ready(Handled::Panicked(payload)),
        Ok(Poll::Pending) => {}
    }
    if *watching {
        match shared.borrow_mut().poll_peer_gone(cx, config) {
            Watch::Pending => {}
            Watch::Stop => *watching = false,
            Watch::Gone => return Poll::Ready(Handled::PeerGone),
        }
    }
    Poll::Pending
}

/// How a handler ended (see [`poll_handler`]).
enum Handled {
    /// Its response is in the slot.
    Response,
    Panicked(Box<dyn std::any::Any + Send>),
    /// The peer closed the connection first.
    PeerGone,
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
        let polled = inner.poll_body(cx);
        if polled.is_pending() {
            inner.park_body(cx);
        } else {
            // Not waiting any more: a later retire would wake (and keep alive) a task that has
            // nothing to be told, often the connection's own.
            inner.body_waker = None;
        }
        polled
    }
}

impl<IO> Drop for RequestBody<IO> {
    /// Forgets where this body's stream lived: a stream boxed later at the same address (a
    /// response body the handler made after it dropped this one) is not this body.
    fn drop(&mut self) {
        if let Ok(mut inner) = self.shared.try_borrow_mut() {
            if inner.seq == self.seq {
                inner.body_stream = None;
            }
        }
    }
}

/// What reading a request head found; a parsed request is in the caller's slot.
enum Head {
    Request(HeadInfo),
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
    /// A response switching protocols has been written: hand the connection over.
    Upgrade(Pending),
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
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Body>) -> Fut + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    let shared = Rc::new(RefCell::new(Inner::new(io)));
    let _retire = RetireOnDrop(Rc::downgrade(&shared));
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
        let busy = Box::pin(busy).await;
        if !matches!(busy, Busy::Idle) {
            // Now rather than when this future ends: the close lingers.
            shared.borrow_mut().retire_body();
        }
        match busy {
            Busy::Idle => {}
            Busy::Close => break,
            Busy::Abort => return,
            Busy::Upgrade(pending) => return hand_over(shared, pending),
        }
    }
    Box::pin(close(&shared)).await;
}

/// Hands the connection to the task awaiting its `OnUpgrade`, with the bytes already read
/// past the head; the server is done with it (no HTTP, timeouts or counting from now on).
fn hand_over<IO>(shared: Shared<IO>, pending: Pending)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Only a request body handed to another task (one of an earlier request, which can no
    // longer read) still holds the connection's state; then the socket cannot be moved out.
    match Rc::try_unwrap(shared) {
        Ok(inner) => {
            let Inner { io, mut rbuf, .. } = inner.into_inner();
            let buffered = rbuf.split_to(rbuf.len());
            pending.fulfill(Upgraded::new(io, buffered));
        }
        Err(_) => log::warn!("upgraded connection still shared with a request body; closed"),
    }
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
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Body>) -> Fut + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    loop {
        // The request is parsed into this slot and taken from it by the handler: no copy of
        // it on the way (see `h1::parse_request_into`).
        let mut request: Option<Request<Body>> = None;
        let head = match read_head(shared, config, *first, &mut request).await {
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

        let HeadInfo {
            framing,
            keep_alive,
            expect_continue,
        } = head;
        let Some(req) = request.as_mut() else {
            return Busy::Abort;
        };
        let seq = {
            let mut inner = shared.borrow_mut();
            inner.decoder = Decoder::new(framing);
            inner.continue_pending = expect_continue && !inner.decoder.is_done();
            inner.continue_refused = false;
            // Not in a write now, whatever an abandoned poll left (see `poll_send_continue`).
            inner.write_parked = false;
            inner.body_failed = false;
            inner.seq += 1;
            inner.seq
        };
        let length = match framing {
            Framing::Empty => Some(0),
            Framing::Length(n) => Some(n),
            Framing::Chunked | Framing::Eof => None,
        };
        *req.body_mut() = request_body(shared, seq, length, config.max_body_bytes);
        let version = req.version();
        let is_head = req.method() == Method::HEAD;
        if config.peer_addr_extension {
            // Opt-in: `http::Extensions` allocates its map, the map's table and a box for the
            // value on the first insert, three of the five allocations per request otherwise.
            req.extensions_mut().insert(peer);
        }
        let offer = upgrade::classify(req, length != Some(0));

        let mut response: Option<Response<Body>> = None;
        let outcome = {
            // Dropped at the end of this block, once the handler is done: a future that
            // still held the request body would keep it from counting as abandoned.
            let mut handling = pin!(None::<Fut>);
            let mut watching = true;
            poll_fn(|cx| {
                poll_handler(
                    cx,
                    shared,
                    config,
                    &**handler,
                    &mut request,
                    handling.as_mut(),
                    &mut watching,
                    &mut response,
                )
            })
            .await
        };
        // The handler took the request on its first poll, so that its body counts as abandoned
        // below once the handler dropped it.
        debug_assert!(request.is_none());
        let mut keep = keep_alive && config.keep_alive;
        match outcome {
            Handled::Response => {}
            Handled::PeerGone => {
                log::debug!("{peer}: closed the connection while its handler ran; handler dropped");
                // Close, not abort: responses to the requests before this one may still sit in
                // the write buffer, and a client that only shut down its sending side reads
                // them.
                return Busy::Close;
            }
            Handled::Panicked(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(non-string payload)");
                log::error!("{peer}: handler panicked: {message}");
                response = Some(StatusCode::INTERNAL_SERVER_ERROR.into_response());
                keep = false;
            }
        }
        let Some(response) = response.as_mut() else {
            return Busy::Abort;
        };
        match offer.decide(response) {
            Decision::Http => {}
            Decision::Switch(pending) => {
                {
                    let mut inner = shared.borrow_mut();
                    buf::take_write_buf(&mut inner.wbuf);
                    upgrade::encode_head(std::mem::take(response), &mut inner.wbuf);
                }
                if let Err(err) = flush(shared).await {
                    log::debug!("{peer}: writing a response switching protocols: {err}");
                    return Busy::Abort;
                }
                return Busy::Upgrade(pending);
            }
            Decision::Invalid(reason) => {
                log::error!("{peer}: handler answered {}: {reason}", response.status());
                *response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                keep = false;
            }
        }
        if server.is_shutting_down() {
            keep = false;
        }
        // Whether the connection is kept is settled before the head is written, so that the
        // head can say so. Nothing but this connection holding the buffers means the handler
        // dropped its body unread; otherwise it returned the body as the response body (which
        // reads it as it is sent), or handed it to a task (which may no longer read once the
        // response is written: what is left must be drained).
        let mut drained = 0;
        let holder = body_holder(shared, response, is_head);
        if holder != BodyHolder::Nobody {
            shared.borrow_mut().ask_for_body();
        }
        if keep {
            keep = poll_fn(|cx| {
                Poll::Ready(shared.borrow_mut().poll_settle(cx, holder, &mut drained))
            })
            .await;
        }
        let written = write_response(shared, config, response, is_head, version, keep).await;
        {
            // An earlier request's body handed to a spawned task must not read from now on.
            let mut inner = shared.borrow_mut();
            inner.retire_body();
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

/// The body of the current request, streaming from the connection, with where its stream
/// lives noted in the shared state (see [`body_holder`]). A plain function, not inline in the
/// connection's future: a local borrowed there (even with no `.await` in between) can take
/// room in the future, which is boxed per busy phase.
fn request_body<IO>(shared: &Shared<IO>, seq: u64, length: Option<u64>, limit: usize) -> Body
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
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
    .with_limit(limit);
    shared.borrow_mut().body_stream = body.stream_addr();
    body
}

/// What holds the request body once its handler returned with `response` (see
/// [`Inner::poll_settle`]). A response that carries no body (to HEAD, or 1xx, 204, 304) drops
/// its body unsent and unread: then nothing holds it.
fn body_holder<IO>(shared: &Shared<IO>, response: &Response<Body>, is_head: bool) -> BodyHolder {
    if Rc::strong_count(shared) == 1 {
        return BodyHolder::Nobody;
    }
    let is_request_body = response
        .body()
        .stream_addr()
        .is_some_and(|addr| shared.borrow().body_stream == Some(addr));
    if !is_request_body {
        return BodyHolder::Elsewhere;
    }
    let status = response.status();
    let bodiless = is_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if bodiless {
        BodyHolder::Nobody
    } else {
        BodyHolder::Response
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
    request: &mut Option<Request<Body>>,
) -> Head {
    let mut header_deadline = first.then(|| crate::time::now() + config.header_read_timeout);
    loop {
        let idle = {
            let mut inner = shared.borrow_mut();
            match h1::parse_request_into(&mut inner.rbuf, &config.limits, request) {
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

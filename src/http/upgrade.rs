//! Protocol upgrades: HTTP/1.1 `Upgrade` (`101 Switching Protocols`, e.g. WebSocket) and
//! `CONNECT` tunnels, in the spirit of `hyper::upgrade`.
//!
//! # Server
//!
//! A handler that accepts an upgrade takes an [`OnUpgrade`] from the request with [`on`],
//! **spawns** a task that awaits it, and returns its `101` response (or a 2xx to `CONNECT`).
//! The connection writes that head and then hands its socket over: the spawned task's
//! `OnUpgrade` resolves to the [`Upgraded`] connection. The head is written only after the
//! handler's future has completed, so awaiting the `OnUpgrade` *inside* the handler would wait
//! forever: always await it in another task.
//!
//! ```no_run
//! use untangle::http::{self, header, upgrade, Body, Request, Response, StatusCode};
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//!
//! async fn handler(mut req: Request<Body>) -> Response<Body> {
//!     let wants_echo = req
//!         .headers()
//!         .get(header::UPGRADE)
//!         .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"echo"));
//!     if !wants_echo {
//!         return Response::new(Body::from("plain HTTP"));
//!     }
//!     let on_upgrade = upgrade::on(&mut req);
//!     untangle::spawn(async move {
//!         let Ok(mut io) = on_upgrade.await else { return };
//!         let mut buf = [0; 1024];
//!         while let Ok(n @ 1..) = io.read(&mut buf).await {
//!             if io.write_all(&buf[..n]).await.is_err() {
//!                 break;
//!             }
//!         }
//!     })
//!     .detach();
//!     Response::builder()
//!         .status(StatusCode::SWITCHING_PROTOCOLS)
//!         .header(header::CONNECTION, "upgrade")
//!         .header(header::UPGRADE, "echo")
//!         .body(Body::empty())
//!         .unwrap()
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     untangle::block_on(http::run_server("127.0.0.1:8888", handler))
//! }
//! ```
//!
//! The rules the server follows:
//! - **What switches.** A `101` answer to an HTTP/1.1 request with an `Upgrade` field and the
//!   `upgrade` token in `Connection`, or a 2xx answer to `CONNECT`. The head is written as
//!   the handler gave it, without `Content-Length` or `Transfer-Encoding` (RFC 9110 §9.3.6,
//!   §15.2.2), and the response body is dropped. After it the connection never carries HTTP
//!   again; the header-read and keep-alive timeouts no longer apply.
//! - **What does not.** Any other answer is an ordinary response and the request's
//!   `OnUpgrade` resolves to an error. A non-2xx answer to `CONNECT` closes the connection
//!   after it (bytes behind a CONNECT head may be tunnel data, never parsed as HTTP).
//! - **Bodies.** A request with content (a `Content-Length` above zero, or chunked) is never
//!   upgraded (RFC 9110 §7.8 lets the server ignore `Upgrade`): it gets no `OnUpgrade`, and a
//!   `101` (or a 2xx to `CONNECT`) from its handler is replaced by `500` and the connection
//!   closes. A `101` to a request that did not ask for an upgrade is a `500` too.
//! - **Limits** (head size, header count, URI length, the header-read timeout) apply to the
//!   upgrade request as to any other.
//! - **Shutdown.** An upgraded connection is no longer the server's: it does not count
//!   towards [`Server::max_connections`](crate::http::Server::max_connections), a graceful
//!   shutdown does not wait for it, and dropping the `serve` future does not close it. It
//!   lives as long as its [`Upgraded`] (in the task that holds it).
//!
//! # Client
//!
//! A request sent with [`Client::send`](crate::http::Client::send) that gets a `101` answer,
//! or a `CONNECT` that gets a 2xx (through a proxy:
//! [`Client::send_via`](crate::http::Client::send_via)), carries its connection in the
//! response: [`on`] on that response resolves at once to the [`Upgraded`] connection, which
//! starts with the bytes that came behind the head and never returns to the pool. Any other
//! answer is an ordinary response (its body readable as usual) and [`on`] resolves to an
//! error.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use futures_lite::io::{AsyncRead, AsyncWrite};
use http::{header, HeaderMap, Method, Request, Response, StatusCode, Version};

use super::body::Body;
use super::{date, h1};

/// The byte stream under an upgraded connection: TCP or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An upgraded connection: the raw byte stream after a `101 Switching Protocols` or a 2xx to
/// `CONNECT`, as futures-io [`AsyncRead`] + [`AsyncWrite`].
///
/// Reads first yield the bytes that had already arrived behind the HTTP head (a client may
/// send its first frame right after its handshake), then read from the socket. It works the
/// same over TCP and TLS. It is `Send`: like untangle's sockets, it may move to another
/// thread's loop. Dropping it closes the connection; [`poll_close`](AsyncWrite::poll_close)
/// (`close().await`) shuts down the sending side first (for TLS, with a `close_notify`).
///
/// # Example
/// ```no_run
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use untangle::http::upgrade::Upgraded;
///
/// async fn greet(mut io: Upgraded) -> std::io::Result<()> {
///     io.write_all(b"hello\n").await?;
///     let mut reply = Vec::new();
///     io.read_to_end(&mut reply).await?;
///     Ok(())
/// }
/// ```
pub struct Upgraded {
    /// Received but not yet read: what the HTTP layer had buffered past the head.
    read_buf: Bytes,
    io: Box<dyn Io>,
}

impl Upgraded {
    pub(crate) fn new<T>(io: T, read_buf: Bytes) -> Upgraded
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Upgraded {
            read_buf,
            io: Box::new(io),
        }
    }
}

impl fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgraded")
            .field("buffered", &self.read_buf.len())
            .finish_non_exhaustive()
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.read_buf.is_empty() {
            let n = this.read_buf.len().min(buf.len());
            buf[..n].copy_from_slice(&this.read_buf[..n]);
            this.read_buf.advance(n);
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_close(cx)
    }
}

/// Where an upgrade's outcome meets the task that waits for it.
///
/// An `Arc<Mutex<…>>` although everything happens on one loop: the `http` crate's extensions
/// only hold `Send + Sync` values.
type Slot = Arc<Mutex<State>>;

enum State {
    Waiting(Option<Waker>),
    Done(io::Result<Upgraded>),
    Taken,
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, State> {
    // Nothing panics while holding the lock; a poisoned one still holds a consistent state.
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// A future for the upgraded connection of a request or response, made by [`on`].
///
/// Resolves to the [`Upgraded`] connection once the server has written its `101` (or 2xx to
/// `CONNECT`) head; on the client, at once when the response was a `101` (or a 2xx to
/// `CONNECT`). Resolves to an error when there is no upgrade: the request did not ask for one
/// (or had a body), the answer did not switch protocols, the connection closed first, or
/// another clone of this `OnUpgrade` took the connection.
///
/// On the server, await it in a task of its own, never in the handler itself (see the
/// [module documentation](self)).
#[derive(Clone)]
pub struct OnUpgrade {
    slot: Option<Slot>,
}

impl OnUpgrade {
    fn none() -> OnUpgrade {
        OnUpgrade { slot: None }
    }

    /// An upgrade that has already happened (the client's `101`).
    pub(crate) fn ready(upgraded: Upgraded) -> OnUpgrade {
        OnUpgrade {
            slot: Some(Arc::new(Mutex::new(State::Done(Ok(upgraded))))),
        }
    }
}

impl fmt::Debug for OnUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnUpgrade")
            .field("available", &self.slot.is_some())
            .finish()
    }
}

impl Future for OnUpgrade {
    type Output = io::Result<Upgraded>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(slot) = &self.slot else {
            return Poll::Ready(Err(io::Error::other(
                "no upgrade: the message did not ask for one, or it was taken already",
            )));
        };
        let mut state = lock(slot);
        match &mut *state {
            State::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Done(_) => match std::mem::replace(&mut *state, State::Taken) {
                State::Done(result) => Poll::Ready(result),
                _ => unreachable!("just matched Done"),
            },
            State::Taken => Poll::Ready(Err(io::Error::other(
                "the upgraded connection was taken by another clone of this OnUpgrade",
            ))),
        }
    }
}

/// The connection's side of an offered upgrade; resolves its [`OnUpgrade`] to an error if
/// dropped unfulfilled (the answer did not switch, or the connection went away).
pub(crate) struct Pending {
    slot: Slot,
}

impl Pending {
    fn resolve(&self, result: io::Result<Upgraded>) {
        let waker = {
            let mut state = lock(&self.slot);
            match &mut *state {
                State::Waiting(waker) => {
                    let waker = waker.take();
                    *state = State::Done(result);
                    waker
                }
                _ => None,
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Hands the connection to whoever awaits the `OnUpgrade` (if nobody does any more, the
    /// connection is dropped, i.e. closed).
    pub(crate) fn fulfill(self, upgraded: Upgraded) {
        self.resolve(Ok(upgraded));
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.resolve(Err(io::Error::other(
            "no upgrade: the response did not switch protocols, or the connection closed first",
        )));
    }
}

/// Takes the [`OnUpgrade`] of a request or response (or of a mutable reference to one) out of
/// its extensions. Without one (no upgrade asked or possible, or taken already), the future
/// resolves to an error.
///
/// # Example
/// ```
/// use untangle::http::{upgrade, Body, Request};
///
/// let mut req = Request::new(Body::empty());
/// let on_upgrade = upgrade::on(&mut req); // a plain request: resolves to an error
/// assert!(untangle::block_on(on_upgrade).is_err());
/// ```
pub fn on<M: sealed::CanUpgrade>(message: M) -> OnUpgrade {
    message.on_upgrade()
}

mod sealed {
    use super::*;

    /// What [`on`](super::on) accepts: requests and responses, owned or by `&mut`.
    pub trait CanUpgrade {
        fn on_upgrade(self) -> OnUpgrade;
    }

    impl CanUpgrade for Request<Body> {
        fn on_upgrade(mut self) -> OnUpgrade {
            (&mut self).on_upgrade()
        }
    }

    impl CanUpgrade for &mut Request<Body> {
        fn on_upgrade(self) -> OnUpgrade {
            self.extensions_mut()
                .remove::<OnUpgrade>()
                .unwrap_or_else(OnUpgrade::none)
        }
    }

    impl CanUpgrade for Response<Body> {
        fn on_upgrade(mut self) -> OnUpgrade {
            (&mut self).on_upgrade()
        }
    }

    impl CanUpgrade for &mut Response<Body> {
        fn on_upgrade(self) -> OnUpgrade {
            self.extensions_mut()
                .remove::<OnUpgrade>()
                .unwrap_or_else(OnUpgrade::none)
        }
    }
}

/// Whether `headers` ask for a protocol upgrade: an `Upgrade` field and the `upgrade` token
/// in `Connection` (RFC 9110 §7.8).
pub(crate) fn asks_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|value| {
            value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        })
}

/// What the server made of a request, as far as upgrades go (see [`classify`]).
pub(crate) struct Offer {
    /// The connection's side of the `OnUpgrade` put in the request's extensions.
    pending: Option<Pending>,
    connect: bool,
    /// The request asked to switch but has a body, so it may not.
    refused: bool,
}

/// What the server does with the handler's response (see [`Offer::decide`]).
pub(crate) enum Decision {
    /// An ordinary response.
    Http,
    /// Write the head and hand the connection over.
    Switch(Pending),
    /// The answer would switch protocols where it may not: answer 500 and close instead.
    Invalid(&'static str),
}

/// Called by the server when a request head has been parsed, before the handler runs: an
/// upgrade request (`Upgrade` + `Connection: upgrade` in HTTP/1.1, or `CONNECT`) without a
/// body gets an [`OnUpgrade`] in its extensions.
pub(crate) fn classify(request: &mut Request<Body>, has_body: bool) -> Offer {
    let connect = request.method() == Method::CONNECT;
    let wants =
        connect || (request.version() == Version::HTTP_11 && asks_upgrade(request.headers()));
    if !wants || has_body {
        return Offer {
            pending: None,
            connect,
            refused: wants,
        };
    }
    let slot: Slot = Arc::new(Mutex::new(State::Waiting(None)));
    request.extensions_mut().insert(OnUpgrade {
        slot: Some(slot.clone()),
    });
    Offer {
        pending: Some(Pending { slot }),
        connect,
        refused: false,
    }
}

impl Offer {
    /// Whether the handler's `response` switches protocols (see the module documentation).
    pub(crate) fn decide(self, response: &Response<Body>) -> Decision {
        let status = response.status();
        let switching = if self.connect {
            status.is_success()
        } else {
            status == StatusCode::SWITCHING_PROTOCOLS
        };
        match (switching, self.pending) {
            // A 1xx is never a final response (RFC 9110 §15.2): written as one, it would leave
            // the client waiting for the response that follows it.
            (false, _) if status.is_informational() => {
                Decision::Invalid("an informational (1xx) status as the final response")
            }
            (false, _) => Decision::Http,
            (true, Some(pending)) => Decision::Switch(pending),
            (true, None) if self.refused => Decision::Invalid("upgrade of a request with a body"),
            (true, None) => Decision::Invalid("101 to a request that asked for no upgrade"),
        }
    }
}

/// Encodes the head of a response that switches protocols: the handler's status and fields,
/// less any `Content-Length` or `Transfer-Encoding` (none may be sent, RFC 9110 §9.3.6 and
/// §15.2), plus `Date` unless given. Its body is dropped: the bytes that follow belong to the
/// new protocol.
pub(crate) fn encode_head(response: Response<Body>, out: &mut Vec<u8>) {
    let (parts, body) = response.into_parts();
    if !body.is_empty() {
        log::debug!(
            "the body of a {} switching protocols is dropped",
            parts.status
        );
    }
    h1::encode_status_line(parts.status, out);
    h1::encode_headers(&parts.headers, out);
    if !parts.headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        date::write(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, headers: &[(&str, &str)]) -> Request<Body> {
        let mut builder = Request::builder().method(method).uri("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    }

    fn status(code: u16) -> Response<Body> {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::from_u16(code).unwrap();
        response
    }

    const WEBSOCKET: &[(&str, &str)] = &[("connection", "keep-alive, Upgrade"), ("upgrade", "ws")];

    #[test]
    fn only_a_101_to_an_upgrade_request_without_body_switches() {
        let mut req = request(Method::GET, WEBSOCKET);
        let offer = classify(&mut req, false);
        assert!(matches!(offer.decide(&status(101)), Decision::Switch(_)));
        let mut req = request(Method::GET, WEBSOCKET);
        assert!(matches!(
            classify(&mut req, false).decide(&status(200)),
            Decision::Http
        ));
        // A 200 drops the pending side: the handler's OnUpgrade fails.
        assert!(untangle_block_on(on(&mut req)).is_err());
        let mut req = request(Method::GET, WEBSOCKET);
        assert!(matches!(
            classify(&mut req, true).decide(&status(101)),
            Decision::Invalid(_)
        ));
        let mut req = request(Method::GET, &[("upgrade", "ws")]);
        assert!(matches!(
            classify(&mut req, false).decide(&status(101)),
            Decision::Invalid(_)
        ));
    }

    #[test]
    fn connect_switches_on_any_2xx() {
        for (code, switches) in [(200, true), (204, true), (403, false), (502, false)] {
            let mut req = request(Method::CONNECT, &[]);
            let decision = classify(&mut req, false).decide(&status(code));
            assert_eq!(matches!(decision, Decision::Switch(_)), switches, "{code}");
        }
    }

    #[test]
    fn switch_head_has_no_framing_fields() {
        let response = Response::builder()
            .status(200)
            .header("content-length", "5")
            .header("x-a", "b")
            .body(Body::from("hello"))
            .unwrap();
        let mut out = Vec::new();
        encode_head(response, &mut out);
        let head = String::from_utf8(out).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains("x-a: b\r\n") && head.contains("date: "),
            "{head}"
        );
        assert!(
            !head.contains("content-length") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
    }

    fn untangle_block_on<F: Future>(future: F) -> F::Output {
        crate::block_on(future)
    }
}

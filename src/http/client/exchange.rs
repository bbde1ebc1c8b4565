//! One request/response exchange on a connection: the request as prepared for writing (head
//! and body), writing it, and reading up to the final response head while the body is
//! written (`upload.rs`). A request that waits for `100 Continue` before its body goes
//! through `expect.rs` first.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_lite::future::poll_fn;
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use http::header;
use http::{Method, Response, StatusCode};

use crate::http::body::Body;
use crate::http::buf::ReadBuf;
use crate::http::error::{Error, ErrorKind};
use crate::http::h1::{self, ResponseHead};

use super::pool::{Conn, Transport};
use super::redirect::Target;
use super::upload::{OutBody, Upload, WriteError};

/// The `User-Agent` sent unless a request sets its own.
const USER_AGENT: &str = concat!("untangle/", env!("CARGO_PKG_VERSION"));
/// The largest response head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A request body up to this size is copied behind the head so both go out in one write.
const COALESCE_BYTES: usize = 64 * 1024;

/// How the request line names its target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TargetForm {
    /// `/path?query`: to the origin server.
    Origin,
    /// `http://host/path?query`: to a forward proxy.
    Absolute,
    /// `host:port`: `CONNECT`.
    Authority,
}

/// A request encoded for the wire.
pub(super) struct Prepared {
    pub(super) method: Method,
    pub(super) head: Vec<u8>,
    pub(super) body: OutBody,
    /// The request asked for `Connection: close`.
    pub(super) close: bool,
    /// The request asked to switch protocols (`Connection: upgrade` and `Upgrade`): only then
    /// is a `101` an upgrade.
    pub(super) upgrade: bool,
    /// `Some(timeout)`: the head carries `Expect: 100-continue` and the body waits up to
    /// `timeout` for a `100 Continue` (or a final response) before it is sent.
    pub(super) expect: Option<Duration>,
}

/// The client's `Expect: 100-continue` settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct ExpectContinue {
    /// Bodies of a known length above this get the header from the client; `None`: never.
    pub(super) above: Option<u64>,
    /// How long the body waits for `100 Continue`.
    pub(super) timeout: Duration,
}

/// Whether the `Expect` header fields ask for `100-continue` (the only expectation defined,
/// compared case-insensitively: RFC 9110 §10.1.1).
fn asks_for_continue(headers: &http::HeaderMap) -> bool {
    headers.get_all(header::EXPECT).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(b"100-continue"))
    })
}

impl Prepared {
    pub(super) fn new(
        parts: &http::request::Parts,
        body: Body,
        target: &Target,
        form: TargetForm,
        expect_config: ExpectContinue,
    ) -> Prepared {
        let method = parts.method.clone();
        let headers = &parts.headers;
        let user_length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // The body's own size wins over a Content-Length header; a stream of unknown size
        // uses the header when given, chunked otherwise.
        let known = body.size_hint().or(user_length);
        // Only a request with a body waits for `100 Continue`; an `Expect` header on a
        // bodiless one goes out as it is and nothing waits.
        let has_body = known != Some(0);
        let add_expect = !headers.contains_key(header::EXPECT)
            && matches!((known, expect_config.above), (Some(n), Some(above)) if n > above);
        let expect = (has_body && (add_expect || asks_for_continue(headers)))
            .then_some(expect_config.timeout);

        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(method.as_str().as_bytes());
        head.push(b' ');
        if form == TargetForm::Authority {
            head.extend_from_slice(target.host_header.as_bytes());
        } else {
            if form == TargetForm::Absolute {
                let scheme = if target.key.https {
                    "https://"
                } else {
                    "http://"
                };
                head.extend_from_slice(scheme.as_bytes());
                head.extend_from_slice(target.host_header.as_bytes());
            }
            // The path (at least "/") and the query.
            let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
            if !path.starts_with('/') {
                head.push(b'/');
            }
            head.extend_from_slice(path.as_bytes());
        }
        head.extend_from_slice(b" HTTP/1.1\r\n");
        if !headers.contains_key(header::HOST) {
            head.extend_from_slice(b"host: ");
            head.extend_from_slice(target.host_header.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        h1::encode_headers(headers, &mut head);
        if !headers.contains_key(header::USER_AGENT) {
            head.extend_from_slice(b"user-agent: ");
            head.extend_from_slice(USER_AGENT.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        if add_expect {
            head.extend_from_slice(b"expect: 100-continue\r\n");
        }
        let body_method =
            method == Method::POST || method == Method::PUT || method == Method::PATCH;
        match known {
            Some(0) if !body_method => {}
            Some(n) => {
                head.extend_from_slice(b"content-length: ");
                h1::encode_u64(n, &mut head);
                head.extend_from_slice(b"\r\n");
            }
            None => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        head.extend_from_slice(b"\r\n");

        let body = if known == Some(0) && body.size_hint() == Some(0) {
            OutBody::None
        } else if let Some(full) = body.as_full() {
            // A body waiting for `100 Continue` must not ride along with the head.
            if full.len() <= COALESCE_BYTES && expect.is_none() {
                head.extend_from_slice(full);
                OutBody::None
            } else {
                OutBody::Full(full.clone())
            }
        } else {
            OutBody::Stream(body, known)
        };
        let (close, _) = h1::connection_tokens(headers);
        Prepared {
            method,
            head,
            body,
            close,
            upgrade: crate::http::upgrade::asks_upgrade(headers),
            expect,
        }
    }

    /// Whether the request can be written again (its body is not a consumed stream).
    pub(super) fn replayable(&self) -> bool {
        !matches!(self.body, OutBody::Stream(..))
    }

    /// The body's upload; a buffer stays behind for a retry on a new connection.
    pub(super) fn take_upload(&mut self) -> Option<Upload> {
        let body = std::mem::replace(&mut self.body, OutBody::None);
        if let OutBody::Full(bytes) = &body {
            self.body = OutBody::Full(bytes.clone());
        }
        Upload::new(body)
    }
}

pub(super) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// Why an exchange failed.
pub(super) enum Failure {
    /// The connection failed before the transport took any byte of the request: the server
    /// cannot have seen it, so any request may be sent again (on a pooled connection, that
    /// the server closed while it was idle).
    Unsent(Error),
    /// Nothing of a response arrived: the connection may simply have been closed by the
    /// server while idle (an idempotent request is worth one retry if it was pooled).
    Stale(Error),
    Fatal(Error),
}

impl Failure {
    pub(super) fn into_error(self) -> Error {
        match self {
            Failure::Unsent(err) | Failure::Stale(err) | Failure::Fatal(err) => err,
        }
    }
}

/// Writes a request head: a failure before the first byte is taken is [`Failure::Unsent`],
/// a later one [`Failure::Stale`] (no response byte can have arrived yet).
///
/// Only on plain TCP: rustls may send one record and report the failure of a later one in the
/// same call, so over TLS no failure proves that nothing left.
pub(super) async fn write_head(io: &mut Transport, head: &[u8]) -> Result<(), Failure> {
    match write_head_bytes(io, head).await {
        Err(Failure::Unsent(err)) if !io.is_plain() => Err(Failure::Stale(err)),
        result => result,
    }
}

async fn write_head_bytes<W: AsyncWrite + Unpin>(io: &mut W, head: &[u8]) -> Result<(), Failure> {
    let mut written = 0;
    while written < head.len() {
        match io.write(&head[written..]).await {
            Ok(0) => {
                let err: Error = io::Error::from(io::ErrorKind::WriteZero).into();
                return Err(if written == 0 {
                    Failure::Unsent(err)
                } else {
                    Failure::Stale(err)
                });
            }
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if written == 0 => return Err(Failure::Unsent(err.into())),
            Err(err) => return Err(Failure::Stale(err.into())),
        }
    }
    Ok(())
}

/// A response whose body may keep its connection for the pool.
pub(super) struct Exchanged {
    pub(super) response: Response<Body>,
    /// The connection goes back to the pool once the body is read: worth draining a small
    /// unwanted body (a redirect's) to keep it.
    pub(super) reusable: bool,
}

/// The final response head, and the part of the request body still being written when it
/// came (a full-duplex exchange: the response body carries the upload on).
pub(super) struct Answered {
    pub(super) head: ResponseHead,
    pub(super) upload: Option<Upload>,
}

/// Writes the request and reads up to the final response head.
pub(super) async fn exchange(
    conn: &mut Conn,
    prepared: &mut Prepared,
) -> Result<Answered, Failure> {
    if let Some(wait) = prepared.expect {
        return super::expect::exchange(conn, prepared, wait).await;
    }
    // Until the first response byte, an I/O failure may just mean the server had closed the
    // idle connection.
    write_head(&mut conn.io, &prepared.head).await?;
    let mut received = !conn.rbuf.is_empty();
    match prepared.take_upload() {
        Some(upload) => send_body(conn, upload, &prepared.method, &mut received).await,
        None => {
            conn.io
                .flush()
                .await
                .map_err(|err| Failure::Stale(err.into()))?;
            let head = read_head(
                &mut conn.io,
                &mut conn.rbuf,
                &prepared.method,
                false,
                &mut received,
            )
            .await?;
            Ok(Answered { head, upload: None })
        }
    }
}

/// Writes the body while reading the response (see `upload.rs`): the final head, with the
/// rest of the upload when a success answer came first.
pub(super) async fn send_body(
    conn: &mut Conn,
    upload: Upload,
    method: &Method,
    received: &mut bool,
) -> Result<Answered, Failure> {
    let mut upload = Some(upload);
    // `None` while the body is still being written.
    let mut sent: Option<Result<(), io::Error>> = None;
    let raced = poll_fn(|cx| {
        // The write goes first: when it finishes in the same turn as the response arrives,
        // the body was sent whole and the connection may be kept.
        if let Some(writing) = upload.as_mut() {
            match writing.poll_write(Pin::new(&mut conn.io), cx) {
                Poll::Ready(Ok(())) => {
                    upload = None;
                    sent = Some(Ok(()));
                }
                // The request body itself failed: nothing more to wait for.
                Poll::Ready(Err(WriteError::Body(err))) => {
                    return Poll::Ready(Err(Failure::Fatal(err)))
                }
                // A broken connection may still hold the response the server sent before it
                // closed (a 413 and a reset): keep reading, which ends with the response or
                // with the end of the stream.
                Poll::Ready(Err(WriteError::Io(err))) => {
                    upload = None;
                    sent = Some(Err(err));
                }
                Poll::Pending => {}
            }
        }
        poll_head(&mut conn.io, &mut conn.rbuf, method, false, received, cx)
    })
    .await;
    match (raced, sent) {
        (Ok(head), Some(Ok(()))) => Ok(Answered { head, upload: None }),
        (Ok(head), None) if wants_the_rest(&head) => {
            let upload = upload.expect("an upload still going has its state");
            finish_upload(conn, head, upload).await
        }
        (Ok(head), _) => early(head, upload),
        // The write failed first: its error says more than the read's end of stream.
        (Err(Failure::Stale(_)), Some(Err(err))) => Err(Failure::Stale(err.into())),
        (Err(Failure::Fatal(_)), Some(Err(err))) => Err(Failure::Fatal(err.into())),
        (Err(failure), _) => Err(failure),
    }
}

/// Whether an answer that came mid-upload still takes the rest of the body before it is
/// returned: a 2xx without a body, on a connection the server keeps open. The server has
/// accepted the request and said nothing against the body (RFC 9112 §9.5: only an answer
/// that refuses it and closes should stop it), and may well be reading it; cutting the body
/// short would truncate the upload (hyper and curl send it whole too). A 2xx with a body
/// carries the upload on as its body is read (`early`).
pub(super) fn wants_the_rest(head: &ResponseHead) -> bool {
    head.response.status().is_success() && head.framing == h1::Framing::Empty && head.reusable
}

/// Writes the rest of the request body after a bodiless 2xx answer; the connection stays
/// reusable if all of it went out.
pub(super) async fn finish_upload(
    conn: &mut Conn,
    mut head: ResponseHead,
    mut upload: Upload,
) -> Result<Answered, Failure> {
    log::trace!(
        "response {} while the request body is still being sent; sending the rest",
        head.response.status()
    );
    match poll_fn(|cx| upload.poll_write(Pin::new(&mut conn.io), cx)).await {
        Ok(()) => {}
        // The request itself failed: its error, not a response to a request never sent whole.
        Err(WriteError::Body(err)) => return Err(Failure::Fatal(err)),
        // The server answered, then stopped reading: the answer stands, the connection is
        // done.
        Err(WriteError::Io(err)) => {
            log::debug!("the rest of the request body could not be sent: {err}");
            head.reusable = false;
        }
    }
    Ok(Answered { head, upload: None })
}

/// A final response that came before the whole body was sent (`upload`: what is left of
/// it).
pub(super) fn early(mut head: ResponseHead, upload: Option<Upload>) -> Result<Answered, Failure> {
    let status = head.response.status();
    // RFC 9110 §7.8: a server must send 100 before 101 to a request expecting it; an
    // upgrade on a connection still owing part of a body would mix the two protocols.
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Failure::Fatal(Error::new(
            ErrorKind::BadResponse,
            "101 Switching Protocols before the request body was sent",
        )));
    }
    if status.is_success() && head.framing != h1::Framing::Empty && upload.is_some() {
        log::trace!("response {status} while the request body is still being sent");
        return Ok(Answered { head, upload });
    }
    log::debug!(
        "final response {status} before the request body was sent whole; the connection will \
         close"
    );
    head.reusable = false;
    Ok(Answered { head, upload: None })
}

/// Reads response heads until the final one: 1xx other than 101 are skipped, except a `100`
/// when `stop_at_continue` (then it is returned). `received` says whether any byte of a
/// response arrived on this exchange (before this call too): only without one can a failure
/// be a pooled connection gone stale.
pub(super) async fn read_head<R: AsyncRead + Unpin>(
    mut io: R,
    rbuf: &mut ReadBuf,
    method: &Method,
    stop_at_continue: bool,
    received: &mut bool,
) -> Result<ResponseHead, Failure> {
    poll_fn(|cx| poll_head(&mut io, rbuf, method, stop_at_continue, received, cx)).await
}

/// [`read_head`], one poll.
fn poll_head<R: AsyncRead + Unpin>(
    io: &mut R,
    rbuf: &mut ReadBuf,
    method: &Method,
    stop_at_continue: bool,
    received: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Result<ResponseHead, Failure>> {
    loop {
        if !rbuf.is_empty() {
            match h1::parse_response(rbuf, method, MAX_HEAD_BYTES) {
                Ok(Some(head)) => {
                    let status = head.response.status();
                    if status == StatusCode::CONTINUE && stop_at_continue {
                        return Poll::Ready(Ok(head));
                    }
                    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                        log::trace!("skipping interim response {status}");
                        continue;
                    }
                    return Poll::Ready(Ok(head));
                }
                Ok(None) => {}
                Err(h1::BadResponse(reason)) => {
                    return Poll::Ready(Err(Failure::Fatal(Error::new(
                        ErrorKind::BadResponse,
                        reason,
                    ))))
                }
            }
        }
        let failure = match ready!(rbuf.poll_fill(&mut *io, cx)) {
            Ok(0) if !*received => Failure::Stale(Error::with_source(
                ErrorKind::Io,
                "connection closed before a response",
                io::Error::from(io::ErrorKind::UnexpectedEof),
            )),
            Ok(0) => Failure::Fatal(Error::with_source(
                ErrorKind::Io,
                "connection closed in the middle of a response head",
                io::Error::from(io::ErrorKind::UnexpectedEof),
            )),
            Ok(_) => {
                *received = true;
                continue;
            }
            Err(err) if !*received => Failure::Stale(err.into()),
            Err(err) => Failure::Fatal(err.into()),
        };
        return Poll::Ready(Err(failure));
    }
}

//! HTTP/1.1 server and client on the untangle loop.
//!
//! A server whose handlers read like blocking code:
//!
//! ```no_run
//! use untangle::http::{self, Request, Body};
//!
//! async fn handler(_req: Request<Body>) -> Result<Body, http::Error> {
//!     // Looks synchronous; suspends this request's task while the upstream answers.
//!     Ok(http::get("http://127.0.0.1:9000/ip").await?.into_body())
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     untangle::block_on(http::run_server("127.0.0.1:8888", handler))
//! }
//! ```
//!
//! The types are the `http` crate's, re-exported here; bodies are [`Body`].
//!
//! # Server behaviour a handler can rely on
//! - A handler whose client disconnects is dropped: once the request body has been read to its
//!   end, the server watches the connection while the handler (or a streaming response body)
//!   waits, and end of stream or a reset cancels it, as in hyper. A client that only
//!   half-closes counts as gone too, unless [`Server::half_close`] is set.
//! - `CONNECT` goes to the handler: a 2xx answer turns the connection into a tunnel (see
//!   [`upgrade`]), any other answer is an ordinary response after which the connection
//!   closes. `Upgrade` requests are answered with `101` through [`upgrade`] too. Authority-form
//!   targets (`host:port`) are accepted only
//!   with CONNECT and asterisk-form (`*`) only with OPTIONS; other request targets must be
//!   origin-form (`/path`) or absolute-form (`http://host/path`) in visible ASCII, else 400.
//! - `HTTP/1.x` with x above 1 is served as HTTP/1.1; responses are always HTTP/1.1.
//! - Every response after which the server closes the connection carries `Connection: close`.
//! - A request body the handler did not read to its end is drained after the response when
//!   what is left of it has a known length of at most 256 KiB; otherwise the connection closes
//!   (and the response says so). This holds whether the handler dropped the body or handed it
//!   to another task: once the response is written, a body handed away can no longer read (it
//!   fails with an error, also in a task already waiting on it, which is woken). Returning the
//!   request body itself as the response body streams it back and keeps the connection.
//! - `Expect: 100-continue` is answered with 100 when the body is first read, or ahead of the
//!   response head while anything still holds the body (the response body, whether it is the
//!   request body or wraps it, or another task); a body dropped unread gets no 100, and the
//!   connection closes after the response.
//! - Response framing: the body's own length when known (it wins over a `Content-Length` that
//!   contradicts it), else the handler's `Content-Length`, else chunked (close-delimited for an
//!   HTTP/1.0 request). A `Transfer-Encoding` set by the handler is kept, with `chunked` added
//!   last (once, whatever parameters the handler's `chunked` had), and its `Content-Length`
//!   dropped (RFC 9112 §6.1–6.2); HTTP/1.0 requests and responses to HEAD never get one. 1xx,
//!   204 and 304 responses carry neither field nor a body. A response to HEAD carries the
//!   handler's `Content-Length`, or the length of the body it gave; an empty body gets none,
//!   since it says nothing of what a GET would get, and neither does a handler that set a
//!   `Transfer-Encoding` on an HTTP/1.1 request (its GET goes chunked, with no length; RFC 9110
//!   §8.6).
//! - [`Server::keep_alive`]`(false)` closes every connection after its first response.
//! - A request target with a `#` (a fragment, which a request never carries) is 400.
//! - Dropping the future of [`Server::serve`] drops the connections it serves.

mod body;
mod buf;
mod client;
mod date;
mod error;
pub(crate) mod h1;
mod response;
mod server;
#[cfg(feature = "tls")]
mod tls;
pub mod upgrade;

pub use body::{Body, DEFAULT_BODY_LIMIT};
pub use client::{get, Client, ClientBuilder};
pub use error::{Error, ErrorKind};
pub use response::IntoResponse;
pub use server::{run_server, Server, ThreadedServer};

pub use http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};

/// Entry points for the fuzz targets (`fuzz/`) and the property tests: the real internal
/// parsers and decoders, driven over plain byte slices. Not a stable API.
#[doc(hidden)]
pub mod __fuzz {
    use super::buf::ReadBuf;
    use super::h1::{self, Decoded, Decoder, Limits};
    use http::Method;

    /// What the server's parser made of a byte stream, one event per message.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum ServerEvent {
        /// A request: method, target, version, headers and its whole decoded body.
        Request {
            /// The method.
            method: String,
            /// The request target.
            target: String,
            /// `HTTP/1.0` or `HTTP/1.1`.
            version: String,
            /// The header fields in order.
            headers: Vec<(String, Vec<u8>)>,
            /// The body as decoded from its framing.
            body: Vec<u8>,
            /// Whether the connection stays open after it.
            keep_alive: bool,
        },
        /// The head was rejected with this status; nothing after it is parsed.
        Reject(u16),
        /// The body's framing was invalid; nothing after it is parsed.
        BadBody,
        /// The input ended inside a head or a body.
        Incomplete,
    }

    /// Parses `input` as a server connection would, receiving it in pieces that end at the
    /// offsets in `splits` (any order, out-of-range ones ignored) and then end of stream.
    /// Limits: `(max_header_bytes, max_headers, max_uri_bytes)`.
    pub fn server_parse(
        input: &[u8],
        splits: &[usize],
        limits: (usize, usize, usize),
    ) -> Vec<ServerEvent> {
        let limits = Limits {
            max_header_bytes: limits.0.max(1),
            max_headers: limits.1.max(1),
            max_uri_bytes: limits.2.max(1),
        };
        let mut cuts: Vec<usize> = splits
            .iter()
            .copied()
            .filter(|&s| s > 0 && s < input.len())
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        cuts.push(input.len());

        let mut buf = ReadBuf::new();
        let mut events = Vec::new();
        let mut current: Option<(ServerEvent, Decoder)> = None;
        let mut start = 0;
        for (i, &end) in cuts.iter().enumerate() {
            buf.extend_for_test(&input[start..end]);
            start = end;
            let eof = i + 1 == cuts.len();
            loop {
                if let Some((event, decoder)) = &mut current {
                    match decoder.decode(&mut buf, eof) {
                        Ok(Decoded::Data(data)) => {
                            if let ServerEvent::Request { body, .. } = event {
                                body.extend_from_slice(&data);
                            }
                            continue;
                        }
                        Ok(Decoded::Done) => {
                            let (event, _) = current.take().expect("current request");
                            let keep = matches!(event, ServerEvent::Request { keep_alive, .. } if keep_alive);
                            events.push(event);
                            if !keep {
                                return events;
                            }
                            continue;
                        }
                        Ok(Decoded::NeedMore) => break,
                        Err(h1::DecodeError::Truncated) => {
                            events.push(ServerEvent::Incomplete);
                            return events;
                        }
                        Err(h1::DecodeError::Invalid(_)) => {
                            events.push(ServerEvent::BadBody);
                            return events;
                        }
                    }
                }
                match h1::parse_request(&mut buf, &limits) {
                    Ok(Some(head)) => {
                        let request = head.request;
                        let event = ServerEvent::Request {
                            method: request.method().to_string(),
                            target: request.uri().to_string(),
                            version: format!("{:?}", request.version()),
                            headers: request
                                .headers()
                                .iter()
                                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                                .collect(),
                            body: Vec::new(),
                            keep_alive: head.keep_alive,
                        };
                        current = Some((event, Decoder::new(head.framing)));
                    }
                    Ok(None) => {
                        if eof && !buf.is_empty() {
                            events.push(ServerEvent::Incomplete);
                        }
                        break;
                    }
                    Err(reject) => {
                        events.push(ServerEvent::Reject(reject.status.as_u16()));
                        return events;
                    }
                }
            }
        }
        events
    }

    /// Decodes a chunked body received in pieces of `step` bytes (0: all at once), then end of
    /// stream. `Ok(body)` once the last chunk and trailers are read, `Err` with the reason.
    pub fn decode_chunked(input: &[u8], step: usize) -> Result<Vec<u8>, String> {
        let step = if step == 0 { input.len().max(1) } else { step };
        let mut buf = ReadBuf::new();
        let mut decoder = Decoder::new(h1::Framing::Chunked);
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            let eof = fed == input.len();
            match decoder.decode(&mut buf, eof) {
                Ok(Decoded::Data(data)) => out.extend_from_slice(&data),
                Ok(Decoded::Done) => return Ok(out),
                Ok(Decoded::NeedMore) => {
                    let end = (fed + step).min(input.len());
                    buf.extend_for_test(&input[fed..end]);
                    fed = end;
                }
                Err(err) => return Err(format!("{err:?}")),
            }
        }
    }

    /// Encodes `chunks` with the chunked coding exactly as the server and client write it
    /// (empty chunks are skipped, as the writers do).
    pub fn encode_chunked(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks.iter().filter(|c| !c.is_empty()) {
            h1::encode_chunk_head(chunk.len(), &mut out);
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(h1::CHUNKED_END);
        out
    }

    /// Parses `input` as the client would a response to a `GET` (or `HEAD`): interim
    /// responses skipped, then the final head and its body to the end of the input.
    /// `Ok((status, body))`, or `Err` with the reason.
    pub fn client_parse(input: &[u8], head: bool) -> Result<(u16, Vec<u8>), String> {
        let method = if head { Method::HEAD } else { Method::GET };
        let mut buf = ReadBuf::new();
        buf.extend_for_test(input);
        let parsed = loop {
            match h1::parse_response(&mut buf, &method, 64 * 1024) {
                Ok(Some(parsed))
                    if parsed.response.status().is_informational()
                        && parsed.response.status() != http::StatusCode::SWITCHING_PROTOCOLS => {}
                Ok(Some(parsed)) => break parsed,
                Ok(None) => return Err("incomplete head".into()),
                Err(err) => return Err(err.0.into()),
            }
        };
        let mut decoder = Decoder::new(parsed.framing);
        let mut body = Vec::new();
        loop {
            match decoder.decode(&mut buf, true) {
                Ok(Decoded::Data(data)) => body.extend_from_slice(&data),
                Ok(Decoded::Done) => return Ok((parsed.response.status().as_u16(), body)),
                Ok(Decoded::NeedMore) => {
                    return Err("decoder wants more after end of stream".into())
                }
                Err(err) => return Err(format!("{err:?}")),
            }
        }
    }
}

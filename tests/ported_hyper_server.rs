//! hyper's own HTTP/1 server tests (`tests/server.rs` of hyper 1.x), ported to untangle's
//! server: request bodies, response framing, HEAD and bodiless statuses, keep-alive and
//! `Expect: 100-continue`, on raw sockets. Connection-level tests (timeouts, graceful shutdown,
//! upgrades, disconnects) are in `ported_hyper_server_conn.rs`.
//!
//! Each test keeps hyper's name. Left out, and why:
//! - every `http2_*` and `h2_*` test, `try_h2`, `http1_only`: we serve HTTP/1.1 only.
//! - `get_response_custom_reason_phrase`, `http_10_close_on_no_ka` (a response whose *version*
//!   is set to 1.0), `max_buf_size_panic_too_small` / `max_buf_size_no_panic`,
//!   `pipeline_disabled` / `pipeline_enabled` (the `pipeline_flush` knob, and a single-read
//!   assertion that depends on TCP segmenting): hyper builder knobs or extensions we do not
//!   offer. The behaviour behind `pipeline_enabled` (answers in order, `Connection: close` on
//!   the last) is `tests/http_server.rs::pipelined_requests_are_answered_in_order`.
//! - `http1_trailer_send_fields` / `http1_trailer_fields_not_allowed`: we do not send trailers.
//!   `http1_trailer_recv_fields` (the body before a trailer section) is
//!   `http_server.rs::chunked_body_with_extensions_and_trailers_is_read`; trailers are not
//!   exposed to handlers.
//! - Already covered elsewhere, same behaviour: `keep_alive`, `http_10_keep_alive`,
//!   `header_connection_close`, `expect_continue_sends_100`,
//!   `expect_continue_waits_for_body_poll`, `head_response_doesnt_send_body`,
//!   `skips_content_length_and_body_for_304_responses`, `http_11_uri_too_long`,
//!   `parse_errors_send_4xx_response`, `illegal_request_length_returns_400_response`,
//!   `returning_1xx_response_is_error` (`tests/http_server.rs`, `tests/http_upgrade.rs`).
//!
//! Where we differ from hyper on purpose, the test asserts ours and says why: responses are
//! always `HTTP/1.1` (RFC 9110 §6.2), and an HTTP/1.1 request without `Host` is a 400
//! (RFC 9112 §3.2).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;

use bytes::Bytes;
use common::HANG_GUARD;
use untangle::http::{Body, IntoResponse, Request, Response, Server, StatusCode, Version};

// ---------------------------------------------------------------------------------------------
// Harness: hyper's `serve()` + `TestService`
// ---------------------------------------------------------------------------------------------

/// What the handler made of each request body: all of it, or the error reading it.
type Bodies = mpsc::Receiver<Result<Vec<u8>, String>>;

/// Starts a server whose handler reads the whole request body, reports it (or its error) on
/// the returned channel, and answers `reply()` — or 500 after a body error, as hyper's
/// `TestService` does.
fn serve<C, F, R>(configure: C, reply: F) -> (SocketAddr, Bodies)
where
    C: FnOnce(Server) -> Server + Send + 'static,
    F: Fn() -> R + Send + 'static,
    R: IntoResponse,
{
    let (tx, rx) = mpsc::channel();
    let addr = common::serve_in_thread(configure, move |req: Request<Body>| {
        let tx = tx.clone();
        // Built before the body is read: a reply depends on nothing in the request.
        let response = reply().into_response();
        async move {
            match req.into_body().bytes().await {
                Ok(body) => {
                    let _ = tx.send(Ok(body.to_vec()));
                    response
                }
                Err(err) => {
                    let _ = tx.send(Err(err.to_string()));
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            }
        }
    });
    (addr, rx)
}

fn body_of(bodies: &Bodies) -> Result<Vec<u8>, String> {
    bodies.recv_timeout(HANG_GUARD).expect("the handler ran")
}

/// A blocking client connection that reads responses one at a time.
struct Client {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        Client {
            stream,
            pending: Vec::new(),
        }
    }

    fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).expect("write");
    }

    /// Reads more; false at end of stream.
    fn fill(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                true
            }
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(err) => panic!("read: {err}"),
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        while self.pending.len() < n {
            assert!(self.fill(), "closed before {n} bytes: {:?}", self.text());
        }
        self.pending.drain(..n).collect()
    }

    /// The next response head, lower-cased, through its blank line.
    fn head(&mut self) -> String {
        loop {
            if let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = self.take(end + 4);
                return String::from_utf8(head).unwrap().to_ascii_lowercase();
            }
            assert!(self.fill(), "closed inside a head: {:?}", self.text());
        }
    }

    /// One whole response: its head and the raw body bytes as framed (chunk lines included).
    fn response(&mut self) -> (String, Vec<u8>) {
        let head = self.head();
        if let Some(len) = header_value(&head, "content-length") {
            let len = len.parse().unwrap();
            return (head, self.take(len));
        }
        if header_value(&head, "transfer-encoding").is_some() {
            let mut raw = Vec::new();
            loop {
                while !self.pending.windows(2).any(|w| w == b"\r\n") {
                    assert!(self.fill(), "closed inside a chunk size line");
                }
                let line_end = self.pending.windows(2).position(|w| w == b"\r\n").unwrap();
                let line = self.take(line_end + 2);
                let size = usize::from_str_radix(std::str::from_utf8(&line).unwrap().trim(), 16)
                    .expect("chunk size");
                raw.extend_from_slice(&line);
                raw.extend(self.take(size + 2));
                if size == 0 {
                    return (head, raw);
                }
            }
        }
        (head, Vec::new())
    }

    /// Everything until the server closes.
    fn rest(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.pending)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}

/// The value of `name` in a lower-cased head.
fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n")
        .skip(1)
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Sends `request` (which should close the connection) and returns everything the server
/// sent, lower-cased head then body, as text.
fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut client = Client::connect(addr);
    client.send(request);
    String::from_utf8(client.rest()).unwrap()
}

const CLOSE_GET: &str = "GET / HTTP/1.1\r\nHost: example.domain\r\nConnection: close\r\n\r\n";

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

#[test]
fn get_should_ignore_body() {
    let (addr, bodies) = serve(|s| s, || ());
    // No framing field: no body. What follows is not parsed as a request either, since the
    // connection closes after the response.
    let out = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: example.domain\r\nConnection: close\r\n\r\nI shouldn't be read.\r\n",
    );
    assert_eq!(body_of(&bodies).unwrap(), b"");
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out:?}");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
}

#[test]
fn get_with_body() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send(
        "GET / HTTP/1.1\r\nHost: example.domain\r\nContent-Length: 19\r\n\r\nI'm a good request.\r\n",
    );
    // The trailing CRLF is not part of the body (Content-Length is 19, not 21).
    assert_eq!(body_of(&bodies).unwrap(), b"I'm a good request.");
    let (head, _) = client.response();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head:?}");
}

#[test]
fn post_with_content_length_body() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(body_of(&bodies).unwrap(), b"hello");
    assert!(client.response().0.starts_with("http/1.1 200 ok\r\n"));
}

/// hyper's version of the test sends no `Host`. RFC 9112 §3.2: a server MUST answer 400 to an
/// HTTP/1.1 request without one, and we do.
#[test]
fn post_with_content_length_body_but_no_host_is_400() {
    let (addr, bodies) = serve(|s| s, || ());
    let out = exchange(addr, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out:?}");
    assert!(bodies.try_recv().is_err(), "the handler never ran");
}

#[test]
fn post_with_invalid_prefix_content_length() {
    let (addr, bodies) = serve(|s| s, || ());
    let out = exchange(
        addr,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    );
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out:?}");
    assert!(out.contains("connection: close\r\n"), "{out:?}");
    assert!(bodies.try_recv().is_err(), "the handler never ran");
}

#[test]
fn post_with_chunked_body() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send(
        "POST / HTTP/1.1\r\nHost: example.domain\r\nTransfer-Encoding: chunked\r\n\r\n\
         1\r\nq\r\n2\r\nwe\r\n2\r\nrt\r\n0\r\n\r\n",
    );
    assert_eq!(body_of(&bodies).unwrap(), b"qwert");
    assert!(client.response().0.starts_with("http/1.1 200 ok\r\n"));
}

/// A chunk size past 64 bits fails the body read, and the request hidden behind it is never
/// answered: the connection closes after the error response.
#[test]
fn post_with_chunked_overflow() {
    let (addr, bodies) = serve(|s| s, || ());
    let out = exchange(
        addr,
        "POST / HTTP/1.1\r\nHost: example.domain\r\nTransfer-Encoding: chunked\r\n\r\n\
         f0000000000000003\r\nabc\r\n0\r\n\r\nGET /sneaky HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let err = body_of(&bodies).unwrap_err();
    assert!(err.contains("chunk"), "{err:?}");
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out:?}");
    assert!(out.contains("connection: close\r\n"), "{out:?}");
    assert!(bodies.try_recv().is_err(), "/sneaky was never handled");
}

#[test]
fn post_with_incomplete_body() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send("POST / HTTP/1.1\r\nHost: example.domain\r\nContent-Length: 10\r\n\r\n12345");
    client.stream.shutdown(std::net::Shutdown::Write).unwrap();
    body_of(&bodies).unwrap_err();
    // The half-closed client still gets the handler's answer, which closes the connection.
    let out = String::from_utf8(client.rest()).unwrap();
    assert!(out.starts_with("HTTP/1.1 500 "), "{out:?}");
    assert!(out.contains("connection: close\r\n"), "{out:?}");
}

#[test]
fn post_with_chunked_missing_final_digit() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send(
        "POST / HTTP/1.1\r\nHost: example.domain\r\ntransfer-encoding: chunked\r\n\r\n\
         1\r\nZ\r\n\r\n\r\n",
    );
    body_of(&bodies).unwrap_err();
    let out = String::from_utf8(client.rest()).unwrap();
    assert!(out.starts_with("HTTP/1.1 500 "), "{out:?}");
    assert!(out.contains("connection: close\r\n"), "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// Response framing (hyper's `response_body_lengths` module)
// ---------------------------------------------------------------------------------------------

enum Bd {
    /// A body whose length is known (one buffer).
    Known(&'static str),
    /// A streamed body (length unknown).
    Unknown(&'static str),
}

/// Serves one response with `headers` and `body` to an HTTP/1.`version` request with
/// `Connection: close`, and checks its framing fields and its body on the wire.
fn run_length_case(
    version: u8,
    headers: &'static [(&'static str, &'static str)],
    body: Bd,
    expects_chunked: bool,
    expects_con_len: bool,
) {
    let text = match body {
        Bd::Known(s) | Bd::Unknown(s) => s,
    };
    let streamed = matches!(body, Bd::Unknown(_));
    let (addr, _bodies) = serve(
        |s| s,
        move || {
            let mut response = Response::builder();
            for (name, value) in headers {
                response = response.header(*name, *value);
            }
            let body = if streamed {
                Body::from_stream(futures_lite::stream::once(Ok(Bytes::from_static(
                    text.as_bytes(),
                ))))
            } else {
                Body::from(text)
            };
            response.body(body).unwrap()
        },
    );
    let out = exchange(
        addr,
        &format!("GET / HTTP/1.{version}\r\nHost: example.domain\r\nConnection: close\r\n\r\n"),
    );
    let end = out.find("\r\n\r\n").expect("a head") + 4;
    let (head, body) = out.split_at(end);
    assert_eq!(
        expects_chunked,
        header_value(head, "transfer-encoding").is_some_and(|v| v.ends_with("chunked")),
        "expects_chunked: {out:?}"
    );
    assert_eq!(
        expects_con_len,
        header_value(head, "content-length").is_some(),
        "expects_con_len: {out:?}"
    );
    if expects_chunked {
        let expected = if text.is_empty() {
            "0\r\n\r\n".to_string()
        } else {
            format!("{:X}\r\n{text}\r\n0\r\n\r\n", text.len())
        };
        assert_eq!(body, expected, "{out:?}");
    } else {
        assert_eq!(body, text, "{out:?}");
    }
}

#[test]
fn fixed_response_known() {
    run_length_case(
        1,
        &[("content-length", "11")],
        Bd::Known("foo bar baz"),
        false,
        true,
    );
}

#[test]
fn fixed_response_unknown() {
    run_length_case(
        1,
        &[("content-length", "11")],
        Bd::Unknown("foo bar baz"),
        false,
        true,
    );
}

#[test]
fn fixed_response_known_empty() {
    run_length_case(1, &[("content-length", "0")], Bd::Known(""), false, true);
}

/// The handler asked for chunked: even with the length known, it gets chunked.
#[test]
fn chunked_response_known() {
    let te = &[("transfer-encoding", "chunked")];
    run_length_case(1, te, Bd::Known("foo bar baz"), true, false);
}

#[test]
fn chunked_response_known_empty() {
    run_length_case(
        1,
        &[("transfer-encoding", "chunked")],
        Bd::Known(""),
        true,
        false,
    );
}

#[test]
fn chunked_response_unknown() {
    let te = &[("transfer-encoding", "chunked")];
    run_length_case(1, te, Bd::Unknown("foo bar baz"), true, false);
}

/// A transfer coding the handler applied itself is kept, and chunked is added last
/// (RFC 9112 §6.1: chunked must be the final coding).
#[test]
fn te_response_adds_chunked() {
    let te = &[("transfer-encoding", "gzip")];
    run_length_case(1, te, Bd::Unknown("foo bar baz"), true, false);
    let (addr, _) = serve(
        |s| s,
        || {
            Response::builder()
                .header("transfer-encoding", "gzip")
                .body(Body::from("x"))
                .unwrap()
        },
    );
    let out = exchange(addr, CLOSE_GET);
    assert!(
        out.contains("\r\ntransfer-encoding: gzip, chunked\r\n"),
        "{out:?}"
    );
}

/// Ignored in hyper ("got in the way of performance"); here it holds: with both fields set,
/// Transfer-Encoding wins and Content-Length is not sent (RFC 9112 §6.2: a sender MUST NOT
/// send Content-Length with Transfer-Encoding).
#[test]
fn chunked_response_trumps_length() {
    let both = &[("transfer-encoding", "chunked"), ("content-length", "11")];
    run_length_case(1, both, Bd::Known("foo bar baz"), true, false);
}

#[test]
fn auto_response_with_unknown_length() {
    run_length_case(1, &[], Bd::Unknown("foo bar baz"), true, false);
}

#[test]
fn auto_response_with_known_length() {
    run_length_case(1, &[], Bd::Known("foo bar baz"), false, true);
}

#[test]
fn auto_response_known_empty() {
    run_length_case(1, &[], Bd::Known(""), false, true);
}

#[test]
fn http10_auto_response_with_unknown_length() {
    run_length_case(0, &[], Bd::Unknown("foo bar baz"), false, false);
}

/// RFC 9112 §6.1: no Transfer-Encoding in a response to an HTTP/1.0 request, even when the
/// handler set one: the body is delimited by the close instead.
#[test]
fn http10_chunked_response() {
    let te = &[("transfer-encoding", "chunked")];
    run_length_case(0, te, Bd::Unknown("foo bar baz"), false, false);
}

#[test]
fn get_chunked_response_with_ka() {
    let (addr, _) = serve(
        |s| s,
        || {
            Response::builder()
                .header("transfer-encoding", "chunked")
                .body(Body::from("foo bar baz"))
                .unwrap()
        },
    );
    let mut client = Client::connect(addr);
    client.send("GET / HTTP/1.1\r\nHost: example.domain\r\nConnection: keep-alive\r\n\r\n");
    let (head, body) = client.response();
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head:?}"
    );
    assert_eq!(body, b"B\r\nfoo bar baz\r\n0\r\n\r\n");
    // The same connection serves the next request.
    client.send("GET /quux HTTP/1.1\r\nHost: example.domain\r\nConnection: close\r\n\r\n");
    let (head, body) = client.response();
    assert!(head.contains("\r\nconnection: close\r\n"), "{head:?}");
    assert_eq!(body, b"B\r\nfoo bar baz\r\n0\r\n\r\n");
    assert_eq!(client.rest(), b"");
}

/// 100 streamed chunks of 1,000 bytes, with keep-alive disabled (hyper's `keep_alive(false)`)
/// so that the client reads to the end.
#[test]
fn streaming_body() {
    let (addr, _) = serve(
        |s| s.keep_alive(false),
        || {
            let chunks = (0..100).map(|_| Ok(Bytes::from_static(&[b'x'; 1_000])));
            Body::from_stream(futures_lite::stream::iter(chunks))
        },
    );
    let mut client = Client::connect(addr);
    client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = client.head();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head:?}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head:?}");
    let body = client.rest();
    // 100 × ("3E8\r\n" + 1,000 bytes + "\r\n") + "0\r\n\r\n".
    assert_eq!(body.len(), 100 * 1_007 + 5);
    assert!(body.ends_with(b"\r\n0\r\n\r\n"));
}

// ---------------------------------------------------------------------------------------------
// HEAD and bodiless statuses
// ---------------------------------------------------------------------------------------------

/// RFC 9110 §8.6: a response to HEAD may carry the Content-Length a GET would get; the
/// handler's own value is sent as it is, although the handler gives no body.
#[test]
fn head_response_can_send_content_length() {
    let (addr, _) = serve(
        |s| s,
        || {
            Response::builder()
                .header("content-length", "1024")
                .body(Body::empty())
                .unwrap()
        },
    );
    let out = exchange(addr, &CLOSE_GET.replacen("GET", "HEAD", 1));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    assert!(out.contains("\r\ncontent-length: 1024\r\n"), "{out:?}");
    assert!(out.ends_with("\r\n\r\n"), "no body: {out:?}");
}

/// An empty body answering HEAD says nothing of what a GET would get, so no
/// `Content-Length: 0` is made up for it (RFC 9110 §8.6: only the GET's length may be sent).
#[test]
fn no_implicit_zero_content_length_for_head_responses() {
    let (addr, _) = serve(|s| s, || Body::from(""));
    let out = exchange(addr, &CLOSE_GET.replacen("GET", "HEAD", 1));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    assert!(!out.contains("content-length"), "{out:?}");
    assert!(out.ends_with("\r\n\r\n"), "no body: {out:?}");
}

#[test]
fn response_does_not_set_chunked_if_body_not_allowed() {
    let (addr, _) = serve(
        |s| s,
        || {
            Response::builder()
                .status(StatusCode::NOT_MODIFIED)
                .header("transfer-encoding", "chunked")
                .body(Body::empty())
                .unwrap()
        },
    );
    let out = exchange(addr, CLOSE_GET);
    assert!(out.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{out:?}");
    assert!(!out.contains("transfer-encoding"), "{out:?}");
    // No body, not even the last chunk.
    assert!(
        out.ends_with("\r\n\r\n") && !out.contains("0\r\n\r\n"),
        "{out:?}"
    );
}

#[test]
fn skips_content_length_for_304_responses() {
    let (addr, _) = serve(|s| s, || (StatusCode::NOT_MODIFIED, "foo"));
    let out = exchange(addr, CLOSE_GET);
    assert!(out.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{out:?}");
    assert!(!out.contains("content-length"), "{out:?}");
    assert!(out.ends_with("\r\n\r\n"), "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// Versions and keep-alive
// ---------------------------------------------------------------------------------------------

/// hyper answers an HTTP/1.0 request with `HTTP/1.0`. We answer `HTTP/1.1`, as RFC 9110 §6.2
/// recommends (a server sends the highest minor version it conforms to): the response is still
/// one a 1.0 client can read — no chunked coding, and the connection closes after it.
#[test]
fn http_10_request_receives_http_11_response() {
    let (addr, _) = serve(|s| s, || ());
    let out = exchange(addr, "GET / HTTP/1.0\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    assert!(out.contains("\r\ncontent-length: 0\r\n"), "{out:?}");
    assert!(out.contains("\r\nconnection: close\r\n"), "{out:?}");
}

/// The response's own version is not what goes on the wire: an HTTP/1 server writes HTTP/1.1.
#[test]
fn http1_response_with_http2_version() {
    let (addr, _) = serve(
        |s| s,
        || {
            let mut response = Response::new(Body::from("hi"));
            *response.version_mut() = Version::HTTP_2;
            response
        },
    );
    let mut client = Client::connect(addr);
    client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = client.response();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head:?}");
    assert_eq!(body, b"hi");
}

#[test]
fn disable_keep_alive() {
    let (addr, _) = serve(|s| s.keep_alive(false), || "foo bar baz");
    let mut client = Client::connect(addr);
    client.send("GET / HTTP/1.1\r\nHost: example.domain\r\nConnection: keep-alive\r\n\r\n");
    let (head, body) = client.response();
    assert!(head.contains("\r\nconnection: close\r\n"), "{head:?}");
    assert_eq!(body, b"foo bar baz");
    // The server closes: nothing after the response, even for a pipelined request.
    assert_eq!(client.rest(), b"");
}

/// With keep-alive disabled, a request already pipelined behind the first is not answered.
#[test]
fn disable_keep_alive_answers_only_the_first_pipelined_request() {
    let (addr, bodies) = serve(|s| s.keep_alive(false), || "one");
    let mut client = Client::connect(addr);
    client.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = client.response();
    assert!(head.contains("\r\nconnection: close\r\n"), "{head:?}");
    assert_eq!(body, b"one");
    assert_eq!(client.rest(), b"");
    assert!(body_of(&bodies).is_ok());
    assert!(
        bodies.try_recv().is_err(),
        "the second request was never handled"
    );
}

// ---------------------------------------------------------------------------------------------
// Expect: 100-continue
// ---------------------------------------------------------------------------------------------

/// RFC 9110 §10.1.1: the expectation's value is case-insensitive.
#[test]
fn expect_continue_accepts_upper_cased_expectation() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send(
        "POST /foo HTTP/1.1\r\nHost: example.domain\r\nExpect: 100-Continue\r\n\
         Content-Length: 5\r\nConnection: Close\r\n\r\n",
    );
    assert_eq!(client.take(25), b"HTTP/1.1 100 Continue\r\n\r\n");
    client.send("hello");
    assert_eq!(body_of(&bodies).unwrap(), b"hello");
    let out = String::from_utf8(client.rest()).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
}

/// RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored — no
/// interim response, and the body is read as it is.
#[test]
fn expect_continue_but_http_10_is_ignored() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send(
        "POST /foo HTTP/1.0\r\nHost: example.domain\r\nExpect: 100-Continue\r\n\
         Content-Length: 5\r\nConnection: Close\r\n\r\nhello",
    );
    assert_eq!(body_of(&bodies).unwrap(), b"hello");
    let out = String::from_utf8(client.rest()).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\n"),
        "no 100 first: {out:?}"
    );
    assert!(!out.contains("100 Continue"), "{out:?}");
}

#[test]
fn expect_continue_but_no_body_is_ignored() {
    let (addr, bodies) = serve(|s| s, || ());
    let out = exchange(
        addr,
        "POST /foo HTTP/1.1\r\nHost: example.domain\r\nExpect: 100-continue\r\n\
         Connection: Close\r\n\r\n",
    );
    assert_eq!(body_of(&bodies).unwrap(), b"");
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\n"),
        "no 100 first: {out:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

#[test]
fn header_name_too_long() {
    let (addr, _) = serve(|s| s, || ());
    let mut request = b"GET / HTTP/1.1\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'x', 64 * 1024));
    request.extend_from_slice(b": foo\r\n\r\n");
    let mut client = Client::connect(addr);
    // The server may answer and close before it has read everything.
    let _ = client.stream.write_all(&request);
    let head = client.head();
    assert!(
        head.starts_with("http/1.1 431 request header fields too large\r\n"),
        "{head:?}"
    );
}

/// hyper's `max_buf_size` test: a request line that never ends, longer than the limit. hyper
/// answers 431 (its read buffer is full); we know by then that the target alone is longer than
/// `max_uri_bytes` (8 KiB by default), so the answer is the more precise 414.
#[test]
fn max_buf_size() {
    let (addr, _) = serve(|s| s.max_header_bytes(16_000), || ());
    let mut client = Client::connect(addr);
    client.send("POST /");
    let _ = client.stream.write_all(&[b'a'; 16_000]);
    let head = client.head();
    assert!(head.starts_with("http/1.1 414 "), "{head:?}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head:?}");
}

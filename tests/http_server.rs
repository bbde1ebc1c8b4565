//! The HTTP/1.1 server on raw sockets: one protocol rule per test, named after the rule.
//!
//! Each test starts its own server on 127.0.0.1:0 in a thread running `untangle::block_on`,
//! writes exact bytes with a blocking `std::net::TcpStream` and asserts the exact status line,
//! headers (all but `date`, whose value changes) and body, and whether the connection closed.
//! Timing appears only as generous hang guards and as short configured server timeouts.

use std::future::Future;
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use untangle::http::{
    header, Body, ErrorKind, HeaderValue, IntoResponse, Request, Response, Server, StatusCode,
};

/// How long any single read may wait before the test fails instead of hanging.
const GUARD: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Starts a server with `configure`d settings in its own thread; returns its address. The
/// listener is bound before this returns, so clients may connect at once.
fn start<C, H, Fut, R>(configure: C, handler: H) -> SocketAddr
where
    C: FnOnce(Server) -> Server + Send + 'static,
    H: Fn(Request<Body>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    start_with_exit(configure, handler).0
}

/// Like [`start`], also returning a receiver that gets `serve`'s result when it returns.
fn start_with_exit<C, H, Fut, R>(
    configure: C,
    handler: H,
) -> (SocketAddr, mpsc::Receiver<std::io::Result<()>>)
where
    C: FnOnce(Server) -> Server + Send + 'static,
    H: Fn(Request<Body>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (exit_tx, exit_rx) = mpsc::channel();
    thread::spawn(move || {
        let result = untangle::block_on(async move {
            let listener = untangle::net::TcpListener::try_from(listener)?;
            configure(Server::from_listener(listener))
                .serve(handler)
                .await
        });
        let _ = exit_tx.send(result);
    });
    (addr, exit_rx)
}

/// Default settings.
fn defaults(server: Server) -> Server {
    server
}

/// Answers with the request path as body.
async fn path(req: Request<Body>) -> String {
    req.uri().path().to_string()
}

/// Reads the whole body and answers with it; a body error answers 400 (413 when too large).
async fn read_body(req: Request<Body>) -> Response<Body> {
    match req.into_body().bytes().await {
        Ok(bytes) => Response::new(Body::from(bytes)),
        Err(err) if err.kind() == ErrorKind::BodyTooLarge => err.into_response(),
        Err(err) => (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    }
}

/// Streams the request body back as the response body.
async fn echo(req: Request<Body>) -> Response<Body> {
    Response::new(req.into_body())
}

/// A parsed response, with the raw body bytes as they came on the wire.
#[derive(Debug)]
struct Resp {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    raw_body: Vec<u8>,
}

impl Resp {
    fn status(&self) -> u16 {
        self.status_line[9..12].parse().unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers but `date`, in order, as `(name, value)` pairs.
    fn headers_but_date(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// A blocking client connection with a read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(GUARD)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).unwrap();
    }

    /// Reads more; false at end of stream (a reset after our response counts as the end).
    fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(err) if err.kind() == IoErrorKind::ConnectionReset => {
                self.eof = true;
                false
            }
            Err(err) if matches!(err.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => {
                panic!(
                    "no data within {GUARD:?} (have {:?})",
                    String::from_utf8_lossy(&self.buf)
                )
            }
            Err(err) => panic!("read failed: {err}"),
        }
    }

    /// Takes exactly `n` bytes.
    fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill(),
                "connection closed after {} of {n} bytes",
                self.buf.len()
            );
        }
        self.buf.drain(..n).collect()
    }

    /// Takes one CRLF-terminated line, without the CRLF.
    fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.take(i + 2);
                return String::from_utf8(line[..i].to_vec()).unwrap();
            }
            assert!(
                self.fill(),
                "connection closed mid-line: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads one response to a request that is not HEAD.
    fn response(&mut self) -> Resp {
        self.read_response(false)
    }

    /// Reads one response to a HEAD request (never a body).
    fn head_response(&mut self) -> Resp {
        self.read_response(true)
    }

    fn read_response(&mut self, head: bool) -> Resp {
        let status_line = self.line();
        assert!(
            status_line.starts_with("HTTP/1.1 "),
            "bad status line {status_line:?}"
        );
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header without colon");
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let mut resp = Resp {
            status_line,
            headers,
            body: Vec::new(),
            raw_body: Vec::new(),
        };
        let status = resp.status();
        if head || status < 200 || status == 204 || status == 304 {
            return resp;
        }
        if resp.header("transfer-encoding") == Some("chunked") {
            loop {
                let size_line = self.line();
                resp.raw_body.extend_from_slice(size_line.as_bytes());
                resp.raw_body.extend_from_slice(b"\r\n");
                let size = usize::from_str_radix(&size_line, 16).expect("chunk size");
                let data = self.take(size + 2);
                assert_eq!(&data[size..], b"\r\n", "chunk not followed by CRLF");
                resp.raw_body.extend_from_slice(&data);
                resp.body.extend_from_slice(&data[..size]);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(length) = resp.header("content-length") {
            let length: usize = length.parse().unwrap();
            resp.body = self.take(length);
            resp.raw_body = resp.body.clone();
        } else {
            while self.fill() {}
            resp.body = std::mem::take(&mut self.buf);
            resp.raw_body = resp.body.clone();
        }
        resp
    }

    /// Asserts that the server closed the connection with nothing more sent.
    fn assert_closed(&mut self) {
        while self.fill() {}
        assert!(
            self.buf.is_empty(),
            "unexpected bytes before close: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }

    /// Asserts that nothing arrives for `wait` (and that the connection stays open).
    fn assert_silent_for(&mut self, wait: Duration) {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Err(err) if matches!(err.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => {}
            other => panic!("expected silence, got {other:?}"),
        }
        self.stream.set_read_timeout(Some(GUARD)).unwrap();
    }
}

/// The request the rejection tests write right after the bad one, in the same write: it must
/// never be answered.
const FOLLOW_UP: &str = "GET /after HTTP/1.1\r\nHost: x\r\n\r\n";

/// Writes `request` and [`FOLLOW_UP`] in one write; asserts one `status` response that closes
/// the connection and nothing after it.
fn assert_rejected_with(addr: SocketAddr, request: &str, status: &str) {
    let mut conn = Conn::new(addr);
    conn.send(format!("{request}{FOLLOW_UP}"));
    let resp = conn.response();
    assert_eq!(
        resp.status_line,
        format!("HTTP/1.1 {status}"),
        "for {request:?}"
    );
    assert_eq!(resp.header("connection"), Some("close"), "for {request:?}");
    assert_eq!(
        resp.header("content-length"),
        Some(resp.body.len().to_string().as_str())
    );
    conn.assert_closed();
}

fn assert_rejected(request: &str, status: &str) {
    assert_rejected_with(start(defaults, path), request, status);
}

fn assert_bad_request(request: &str) {
    assert_rejected(request, "400 Bad Request");
}

/// Writes `request` and [`FOLLOW_UP`] in one write; asserts both are answered 200, the first
/// with `body`.
fn assert_accepted(request: &str, body: &str) {
    let addr = start(defaults, read_body);
    let mut conn = Conn::new(addr);
    conn.send(format!("{request}{FOLLOW_UP}"));
    let resp = conn.response();
    assert_eq!(resp.status_line, "HTTP/1.1 200 OK", "for {request:?}");
    assert_eq!(resp.text(), body);
    let after = conn.response();
    assert_eq!(after.status_line, "HTTP/1.1 200 OK");
}

// ---------------------------------------------------------------------------------------------
// RFC 9112 request rules: bad input → 4xx/5xx, connection closed, nothing after it processed
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_request_line_is_400() {
    assert_bad_request("GET\r\n\r\n");
    assert_bad_request("GET /\r\nHost: x\r\n\r\n");
    assert_bad_request("GET /a b HTTP/1.1 x\r\nHost: x\r\n\r\n");
    assert_bad_request("G(T / HTTP/1.1\r\nHost: x\r\n\r\n");
}

#[test]
fn malformed_header_line_is_400() {
    assert_bad_request("GET / HTTP/1.1\r\nHost: x\r\nno-colon-here\r\n\r\n");
    assert_bad_request("GET / HTTP/1.1\r\nHost: x\r\nbad\"name: 1\r\n\r\n");
    assert_bad_request("GET / HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n");
}

#[test]
fn whitespace_before_header_colon_is_400() {
    assert_bad_request("GET / HTTP/1.1\r\nHost : x\r\n\r\n");
    assert_bad_request("GET / HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n\r\n");
}

#[test]
fn whitespace_before_first_header_is_400() {
    assert_bad_request("GET / HTTP/1.1\r\n Host: x\r\n\r\n");
}

#[test]
fn obs_fold_is_400() {
    assert_bad_request("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n");
    assert_bad_request("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\t2\r\n\r\n");
}

#[test]
fn bare_cr_in_header_is_400() {
    assert_bad_request("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r2\r\n\r\n");
    assert_bad_request("GET / HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n");
}

#[test]
fn missing_host_on_http11_is_400() {
    assert_bad_request("GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn invalid_host_value_is_400() {
    for value in ["a b", "x:port", "user@x", "x/y", "[::1"] {
        assert_bad_request(&format!("GET / HTTP/1.1\r\nHost: {value}\r\n\r\n"));
    }
}

#[test]
fn valid_host_values_are_accepted() {
    let addr = start(defaults, path);
    for value in [
        "",
        "example.com",
        "example.com:8080",
        "127.0.0.1:80",
        "[::1]:80",
    ] {
        let mut conn = Conn::new(addr);
        conn.send(format!("GET /h HTTP/1.1\r\nHost: {value}\r\n\r\n"));
        assert_eq!(conn.response().text(), "/h", "for Host {value:?}");
    }
}

#[test]
fn missing_host_on_http10_is_accepted() {
    let mut conn = Conn::new(start(defaults, path));
    conn.send("GET /ten HTTP/1.0\r\n\r\n");
    assert_eq!(conn.response().text(), "/ten");
}

#[test]
fn repeated_host_is_400() {
    assert_bad_request("GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n");
    assert_bad_request("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n");
}

#[test]
fn content_length_not_all_digits_is_400() {
    for value in [
        "+5",
        "0x5",
        "5 5",
        "-1",
        "5.0",
        "",
        "five",
        "18446744073709551616",
    ] {
        assert_bad_request(&format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\nhello"
        ));
    }
}

#[test]
fn content_length_with_differing_values_is_400() {
    assert_bad_request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!");
    assert_bad_request(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
}

#[test]
fn content_length_with_identical_values_is_accepted() {
    assert_accepted(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
        "hello",
    );
    assert_accepted(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "hello",
    );
}

#[test]
fn content_length_and_transfer_encoding_together_is_400() {
    assert_bad_request(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n",
    );
}

#[test]
fn transfer_encoding_not_ending_in_chunked_is_400() {
    assert_bad_request("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello");
    assert_bad_request(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\nhello",
    );
    assert_bad_request(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\nhello",
    );
}

#[test]
fn chunked_applied_twice_is_400() {
    assert_bad_request(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    );
}

#[test]
fn unknown_transfer_coding_before_chunked_is_501() {
    assert_rejected(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "501 Not Implemented",
    );
}

#[test]
fn transfer_encoding_on_http10_is_400() {
    assert_bad_request(
        "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
}

#[test]
fn chunk_size_overflow_is_400_and_closes() {
    // Body errors surface while the handler reads the body; `read_body` answers them with 400.
    assert_rejected_with(
        start(defaults, read_body),
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         10000000000000000\r\nhello\r\n0\r\n\r\n",
        "400 Bad Request",
    );
}

#[test]
fn chunk_size_overflow_in_an_unread_body_closes_the_connection() {
    // The handler answers without reading; the server finds the bad framing while draining
    // and must close rather than read on.
    let mut conn = Conn::new(start(defaults, path));
    conn.send(format!(
        "POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         fffffffffffffffff\r\nhello\r\n0\r\n\r\n{FOLLOW_UP}"
    ));
    assert_eq!(conn.response().text(), "/first");
    conn.assert_closed();
}

#[test]
fn chunk_size_line_without_crlf_is_400_and_closes() {
    assert_rejected_with(
        start(defaults, read_body),
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        "400 Bad Request",
    );
}

#[test]
fn chunk_data_without_crlf_is_400_and_closes() {
    assert_rejected_with(
        start(defaults, read_body),
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        "400 Bad Request",
    );
}

#[test]
fn unsupported_http_version_is_505() {
    assert_rejected(
        "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        "505 HTTP Version Not Supported",
    );
}

#[test]
fn rejected_request_after_pipelined_good_one_stops_processing() {
    let mut conn = Conn::new(start(defaults, path));
    conn.send(format!(
        "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n{FOLLOW_UP}"
    ));
    let first = conn.response();
    assert_eq!(first.text(), "/one");
    let second = conn.response();
    assert_eq!(second.status_line, "HTTP/1.1 400 Bad Request");
    assert_eq!(second.header("connection"), Some("close"));
    conn.assert_closed();
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

#[test]
fn header_bytes_over_max_header_bytes_is_431() {
    let addr = start(|s| s.max_header_bytes(256), path);
    let big = "a".repeat(300);
    assert_rejected_with(
        addr,
        &format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
        "431 Request Header Fields Too Large",
    );
    // Still incomplete when the limit is reached: rejected without waiting for the end.
    let mut conn = Conn::new(addr);
    conn.send(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}"));
    let resp = conn.response();
    assert_eq!(resp.status(), 431);
    assert_eq!(resp.header("connection"), Some("close"));
    conn.assert_closed();
}

#[test]
fn head_within_max_header_bytes_is_accepted() {
    let mut conn = Conn::new(start(|s| s.max_header_bytes(256), path));
    conn.send(format!(
        "GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(150)
    ));
    assert_eq!(conn.response().text(), "/ok");
}

#[test]
fn more_than_max_headers_is_431() {
    let addr = start(|s| s.max_headers(3), path);
    assert_rejected_with(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
        "431 Request Header Fields Too Large",
    );
    let mut conn = Conn::new(addr);
    conn.send("GET /three HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n");
    assert_eq!(conn.response().text(), "/three");
}

#[test]
fn uri_over_max_uri_bytes_is_414() {
    let addr = start(|s| s.max_uri_bytes(32), path);
    let long = format!("/{}", "u".repeat(40));
    assert_rejected_with(
        addr,
        &format!("GET {long} HTTP/1.1\r\nHost: x\r\n\r\n"),
        "414 URI Too Long",
    );
    // Also while the request line is still arriving.
    let mut conn = Conn::new(addr);
    conn.send(format!("GET /{}", "u".repeat(200)));
    assert_eq!(conn.response().status(), 414);
    conn.assert_closed();
    let mut conn = Conn::new(addr);
    let fits = format!("/{}", "u".repeat(31));
    conn.send(format!("GET {fits} HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(conn.response().text(), fits);
}

#[test]
fn body_over_max_body_bytes_is_body_too_large_and_413() {
    let addr = start(|s| s.max_body_bytes(1000), read_body);
    let mut conn = Conn::new(addr);
    // Known in advance (Content-Length) and found while streaming (chunked).
    let big = "b".repeat(2000);
    conn.send(format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n{big}\
         POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7D0\r\n{big}\r\n0\r\n\r\n\
         POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{}",
        &big[..1000]
    ));
    for _ in 0..2 {
        let resp = conn.response();
        assert_eq!(resp.status_line, "HTTP/1.1 413 Payload Too Large");
    }
    // The rest of the refused bodies was drained: the connection goes on.
    let resp = conn.response();
    assert_eq!(resp.status_line, "HTTP/1.1 200 OK");
    assert_eq!(resp.body.len(), 1000);
}

// ---------------------------------------------------------------------------------------------
// Framing and connection management
// ---------------------------------------------------------------------------------------------

#[test]
fn response_has_exact_status_line_headers_and_body() {
    let mut conn = Conn::new(start(defaults, path));
    conn.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = conn.response();
    assert_eq!(resp.status_line, "HTTP/1.1 200 OK");
    assert_eq!(resp.headers_but_date(), [("content-length", "6")]);
    assert_eq!(resp.body, b"/hello");
}

#[test]
fn date_header_is_present_and_well_formed() {
    let mut conn = Conn::new(start(defaults, path));
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = conn.response();
    let date = resp.header("date").expect("date header");
    assert_eq!(date.len(), 29, "IMF-fixdate: {date:?}");
    assert!(date.ends_with(" GMT"), "{date:?}");
    let when = httpdate::parse_http_date(date).expect("valid HTTP date");
    let now = SystemTime::now();
    let skew = now.duration_since(when).unwrap_or_else(|e| e.duration());
    assert!(
        skew < Duration::from_secs(60),
        "date {date} is far from now"
    );
}

#[test]
fn peer_address_is_in_request_extensions_when_asked_for() {
    let addr = start(
        |s| s.peer_addr_extension(true),
        |req: Request<Body>| async move {
            req.extensions()
                .get::<SocketAddr>()
                .map(|peer| peer.to_string())
                .unwrap_or_default()
        },
    );
    let mut conn = Conn::new(addr);
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let local = conn.stream.local_addr().unwrap();
    assert_eq!(conn.response().text(), local.to_string());
}

#[test]
fn peer_address_is_not_in_request_extensions_by_default() {
    let addr = start(defaults, |req: Request<Body>| async move {
        req.extensions().get::<SocketAddr>().is_some().to_string()
    });
    let mut conn = Conn::new(addr);
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.response().text(), "false");
}

#[test]
fn content_length_request_body_is_read() {
    let mut conn = Conn::new(start(defaults, read_body));
    conn.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
    let resp = conn.response();
    assert_eq!(resp.headers_but_date(), [("content-length", "11")]);
    assert_eq!(resp.text(), "hello world");
}

#[test]
fn content_length_body_split_across_writes_is_read() {
    let mut conn = Conn::new(start(defaults, read_body));
    conn.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhel");
    thread::sleep(Duration::from_millis(20));
    conn.send("lo world");
    assert_eq!(conn.response().text(), "hello world");
}

#[test]
fn chunked_body_with_extensions_and_trailers_is_read() {
    let mut conn = Conn::new(start(defaults, read_body));
    conn.send(format!(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;name=value\r\nhello\r\n6;a;b=\"q\"\r\n world\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n\
         {FOLLOW_UP}"
    ));
    let resp = conn.response();
    assert_eq!(resp.status_line, "HTTP/1.1 200 OK");
    assert_eq!(resp.text(), "hello world");
    // The trailers were read and dropped: the next request parses cleanly.
    let after = conn.response();
    assert_eq!(after.status_line, "HTTP/1.1 200 OK");
}

#[test]
fn transfer_encoding_chunked_is_case_insensitive() {
    assert_accepted(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ChUnKeD\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "abc",
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let addr = start(defaults, |req: Request<Body>| async move {
        // The first request is the slowest: order must still hold.
        if req.uri().path() == "/1" {
            untangle::time::sleep(Duration::from_millis(30)).await;
        }
        req.uri().path().to_string()
    });
    let mut conn = Conn::new(addr);
    conn.send(
        "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n\
         POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
         GET /3 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    for expected in ["/1", "/2", "/3"] {
        let resp = conn.response();
        assert_eq!(resp.status_line, "HTTP/1.1 200 OK");
        assert_eq!(resp.text(), expected);
    }
    conn.assert_silent_for(Duration::from_millis(50));
}

#[test]
fn client_half_close_still_gets_its_response() {
    let mut conn = Conn::new(start(defaults, path));
    conn.send("GET /half HTTP/1.1\r\nHost: x\r\n\r\n");
    conn.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(conn.response().text(), "/half");
    conn.assert_closed();
}

#[test]
fn leading_empty_lines_before_request_are_ignored() {
    let mut conn = Conn::new(start(defaults, path));
    conn.send("\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.response().text(), "/a");
    assert_eq!(conn.response().text(), "/b");
}

#[test]
fn keep_alive_reuses_the_connection() {
    let mut conn = Conn::new(start(defaults, path));
    for path in ["/a", "/b"] {
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let resp = conn.response();
        assert_eq!(resp.header("connection"), None);
        assert_eq!(resp.text(), path);
    }
}

#[test]
fn connection_close_from_client_closes_after_response() {
    let mut conn = Conn::new(start(defaults, path));
    conn.send(format!(
        "GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n{FOLLOW_UP}"
    ));
    let resp = conn.response();
    assert_eq!(
        resp.headers_but_date(),
        [("content-length", "4"), ("connection", "close")]
    );
    assert_eq!(resp.text(), "/bye");
    conn.assert_closed();
}

#[test]
fn connection_close_from_handler_closes_after_response() {
    let addr = start(defaults, |_req: Request<Body>| async {
        (
            StatusCode::OK,
            [(header::CONNECTION, HeaderValue::from_static("close"))],
            "done",
        )
    });
    let mut conn = Conn::new(addr);
    conn.send(format!("GET / HTTP/1.1\r\nHost: x\r\n\r\n{FOLLOW_UP}"));
    let resp = conn.response();
    assert_eq!(
        resp.headers_but_date(),
        [("content-length", "4"), ("connection", "close")]
    );
    conn.assert_closed();
}

#[test]
fn http10_without_keep_alive_closes() {
    let mut conn = Conn::new(start(defaults, path));
    conn.send(format!("GET /old HTTP/1.0\r\n\r\n{FOLLOW_UP}"));
    let resp = conn.response();
    assert_eq!(resp.status_line, "HTTP/1.1 200 OK");
    assert_eq!(
        resp.headers_but_date(),
        [("content-length", "4"), ("connection", "close")]
    );
    assert_eq!(resp.text(), "/old");
    conn.assert_closed();
}

#[test]
fn http10_with_keep_alive_is_kept() {
    let mut conn = Conn::new(start(defaults, path));
    for path in ["/a", "/b"] {
        conn.send(format!(
            "GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        ));
        let resp = conn.response();
        assert_eq!(
            resp.headers_but_date(),
            [("content-length", "2"), ("connection", "keep-alive")]
        );
        assert_eq!(resp.text(), path);
    }
}

#[test]
fn head_gets_get_headers_without_body() {
    let mut conn = Conn::new(start(defaults, path));
    // HEAD then GET in one write: the GET's status line must follow the HEAD's headers
    // directly, proving no body bytes were sent.
    conn.send("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = conn.head_response();
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(head.headers_but_date(), [("content-length", "6")]);
    let get = conn.response();
    assert_eq!(get.status_line, "HTTP/1.1 200 OK");
    assert_eq!(get.text(), "/x");
}

#[test]
fn head_with_streaming_body_gets_no_body() {
    let addr = start(defaults, |_req: Request<Body>| async {
        Body::from_stream(futures_lite::stream::iter(vec![Ok(Bytes::from("data"))]))
    });
    let mut conn = Conn::new(addr);
    conn.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = conn.head_response();
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(head.headers_but_date(), []);
    let get = conn.response();
    assert_eq!(get.text(), "data");
}

fn assert_bodiless_status(status: StatusCode) {
    let addr = start(defaults, move |_req: Request<Body>| async move {
        // The handler tries to send a body and a length anyway.
        (
            status,
            [(header::CONTENT_LENGTH, HeaderValue::from_static("7"))],
            "ignored",
        )
    });
    let mut conn = Conn::new(addr);
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = conn.response();
    assert_eq!(
        resp.status_line,
        format!(
            "HTTP/1.1 {} {}",
            status.as_str(),
            status.canonical_reason().unwrap()
        )
    );
    assert_eq!(resp.headers_but_date(), []);
    // The next status line follows the blank line at once: no body bytes.
    let next = conn.response();
    assert_eq!(next.status(), status.as_u16());
}

#[test]
fn status_204_has_no_body_and_no_content_length() {
    assert_bodiless_status(StatusCode::NO_CONTENT);
}

#[test]
fn status_304_has_no_body() {
    assert_bodiless_status(StatusCode::NOT_MODIFIED);
}

async fn streaming_hello(_req: Request<Body>) -> Body {
    let chunks = futures_lite::stream::iter(vec![
        Ok(Bytes::from_static(b"hello ")),
        Ok(Bytes::from_static(b"")),
        Ok(Bytes::from_static(b"streaming world")),
    ]);
    Body::from_stream(chunks)
}

#[test]
fn streaming_response_is_chunked_on_http11() {
    let mut conn = Conn::new(start(defaults, streaming_hello));
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = conn.response();
    assert_eq!(resp.headers_but_date(), [("transfer-encoding", "chunked")]);
    assert_eq!(
        resp.raw_body,
        b"6\r\nhello \r\nF\r\nstreaming world\r\n0\r\n\r\n"
    );
    // Still keep-alive.
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.response().text(), "hello streaming world");
}

#[test]
fn streaming_response_is_close_delimited_on_http10() {
    let mut conn = Conn::new(start(defaults, streaming_hello));
    conn.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let resp = conn.response();
    assert_eq!(resp.headers_but_date(), [("connection", "close")]);
    assert_eq!(resp.body, b"hello streaming world");
    assert!(conn.eof);
}

#[test]
fn streaming_response_with_content_length_is_not_chunked() {
    let addr = start(defaults, |_req: Request<Body>| async {
        let chunks = futures_lite::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"de")),
        ]);
        Response::builder()
            .header(header::CONTENT_LENGTH, "5")
            .body(Body::from_stream(chunks))
            .unwrap()
    });
    let mut conn = Conn::new(addr);
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = conn.response();
    assert_eq!(resp.headers_but_date(), [("content-length", "5")]);
    assert_eq!(resp.text(), "abcde");
}

#[test]
fn echo_streams_a_large_chunked_body_back() {
    let mut conn = Conn::new(start(defaults, echo));
    let body: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    conn.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    // Write from another thread: the server echoes while it reads, so both directions must
    // make progress at once.
    let mut writer = conn.stream.try_clone().unwrap();
    let sent = body.clone();
    let writer = thread::spawn(move || {
        for piece in sent.chunks(10_000) {
            writer
                .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .unwrap();
            writer.write_all(piece).unwrap();
            writer.write_all(b"\r\n").unwrap();
        }
        writer.write_all(b"0\r\n\r\n").unwrap();
    });
    let resp = conn.response();
    writer.join().unwrap();
    assert_eq!(resp.status_line, "HTTP/1.1 200 OK");
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(resp.body.len(), body.len());
    assert!(resp.body == body, "echoed body differs");
    // The connection is reusable after a fully read body.
    conn.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok");
    let resp = conn.response();
    assert_eq!(resp.headers_but_date(), [("content-length", "2")]);
    assert_eq!(resp.text(), "ok");
}

// ---------------------------------------------------------------------------------------------
// Expect: 100-continue, unread bodies
// ---------------------------------------------------------------------------------------------

#[test]
fn expect_continue_is_answered_when_handler_reads_body() {
    let mut conn = Conn::new(start(defaults, read_body));
    conn.send("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    // The body is not sent until the server asks for it.
    assert_eq!(conn.take(25), b"HTTP/1.1 100 Continue\r\n\r\n");
    conn.send("hello");
    let resp = conn.response();
    assert_eq!(resp.status_line, "HTTP/1.1 200 OK");
    assert_eq!(resp.headers_but_date(), [("content-length", "5")]);
    assert_eq!(resp.text(), "hello");
    // Keep-alive after a completed exchange.
    conn.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(conn.response().text(), "ok");
}

#[test]
fn expect_continue_ignored_by_handler_sends_no_100_and_closes() {
    let mut conn = Conn::new(start(defaults, path));
    conn.send("POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let resp = conn.response();
    assert_eq!(resp.status_line, "HTTP/1.1 200 OK");
    assert_eq!(
        resp.headers_but_date(),
        [("content-length", "2"), ("connection", "close")]
    );
    assert_eq!(resp.text(), "/x");
    conn.assert_closed();
}

#[test]
fn ignored_small_body_is_not_parsed_as_next_request() {
    let mut conn = Conn::new(start(defaults, path));
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    conn.send(format!(
        "POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}\
         GET /second HTTP/1.1\r\nHost: x\r\n\r\n",
        smuggled.len()
    ));
    assert_eq!(conn.response().text(), "/first");
    assert_eq!(conn.response().text(), "/second");
    conn.assert_silent_for(Duration::from_millis(50));
}

#[test]
fn ignored_small_chunked_body_is_not_parsed_as_next_request() {
    let mut conn = Conn::new(start(defaults, path));
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    conn.send(format!(
        "POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{smuggled}\r\n0\r\n\r\n\
         GET /second HTTP/1.1\r\nHost: x\r\n\r\n",
        smuggled.len()
    ));
    assert_eq!(conn.response().text(), "/first");
    assert_eq!(conn.response().text(), "/second");
    conn.assert_silent_for(Duration::from_millis(50));
}

#[test]
fn early_response_to_unread_body_is_sent_before_the_body_ends() {
    let mut conn = Conn::new(start(defaults, path));
    conn.send("POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello");
    // The rest of the body is sent only once the response came; the connection stays usable.
    assert_eq!(conn.response().text(), "/early");
    conn.send(format!("world{FOLLOW_UP}"));
    assert_eq!(conn.response().text(), "/after");
}

#[test]
fn ignored_large_body_closes_after_response() {
    let mut conn = Conn::new(start(defaults, path));
    let size = 320 * 1024;
    conn.send(format!(
        "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
    ));
    let mut writer = conn.stream.try_clone().unwrap();
    let writer = thread::spawn(move || {
        // In small pieces, so that the server drains them over many reads: the drain limit
        // counts them all. The server stops reading at some point: a failed write is fine.
        let piece = vec![b'G'; 4 * 1024];
        for _ in 0..size / piece.len() {
            if writer.write_all(&piece).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(1));
        }
        let _ = writer.write_all(FOLLOW_UP.as_bytes());
    });
    assert_eq!(conn.response().text(), "/big");
    conn.assert_closed();
    writer.join().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Handler panics, timeouts, connection limit, graceful shutdown
// ---------------------------------------------------------------------------------------------

#[test]
fn handler_panic_is_500_and_closes_and_server_goes_on() {
    let addr = start(defaults, |req: Request<Body>| async move {
        if req.uri().path() == "/panic" {
            panic!("handler panicked on purpose (expected by this test)");
        }
        "fine"
    });
    let mut conn = Conn::new(addr);
    conn.send(format!("GET /panic HTTP/1.1\r\nHost: x\r\n\r\n{FOLLOW_UP}"));
    let resp = conn.response();
    assert_eq!(resp.status_line, "HTTP/1.1 500 Internal Server Error");
    assert_eq!(
        resp.headers_but_date(),
        [("content-length", "0"), ("connection", "close")]
    );
    conn.assert_closed();

    let mut conn = Conn::new(addr);
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.response().text(), "fine");
}

#[test]
fn header_read_timeout_is_408_and_closes() {
    let addr = start(|s| s.header_read_timeout(Duration::from_millis(200)), path);
    let mut conn = Conn::new(addr);
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n");
    let resp = conn.response();
    assert_eq!(resp.status_line, "HTTP/1.1 408 Request Timeout");
    assert_eq!(resp.header("connection"), Some("close"));
    conn.assert_closed();
}

#[test]
fn header_read_timeout_applies_to_later_requests() {
    let addr = start(|s| s.header_read_timeout(Duration::from_millis(200)), path);
    let mut conn = Conn::new(addr);
    conn.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n");
    assert_eq!(conn.response().text(), "/a");
    assert_eq!(conn.response().status(), 408);
    conn.assert_closed();
}

#[test]
fn keep_alive_timeout_closes_idle_connection_silently() {
    let addr = start(|s| s.keep_alive_timeout(Duration::from_millis(200)), path);
    let mut conn = Conn::new(addr);
    conn.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.response().text(), "/a");
    conn.assert_closed();
}

#[test]
fn max_connections_defers_accepting_until_one_closes() {
    let addr = start(|s| s.max_connections(1), path);
    let mut first = Conn::new(addr);
    first.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(first.response().text(), "/first");

    // The second client completes the TCP handshake (kernel backlog) but is not served.
    let mut second = Conn::new(addr);
    second.send("GET /second HTTP/1.1\r\nHost: x\r\n\r\n");
    second.assert_silent_for(Duration::from_millis(300));

    first.stream.shutdown(Shutdown::Both).unwrap();
    drop(first);
    assert_eq!(second.response().text(), "/second");
}

#[test]
fn graceful_shutdown_finishes_in_flight_and_closes_idle() {
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let (addr, exited) = start_with_exit(
        move |s| {
            s.with_graceful_shutdown(async move {
                let _ = stop_rx.recv().await;
            })
        },
        move |req: Request<Body>| {
            let started = started_tx.clone();
            async move {
                if req.uri().path() == "/slow" {
                    started.send(()).unwrap();
                    untangle::time::sleep(Duration::from_millis(200)).await;
                }
                req.uri().path().to_string()
            }
        },
    );

    let mut idle = Conn::new(addr);
    idle.send("GET /idle HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(idle.response().text(), "/idle");

    let mut busy = Conn::new(addr);
    busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    started_rx.recv_timeout(GUARD).expect("handler started");
    stop_tx.send_blocking(()).unwrap();

    // The in-flight request completes, announcing the close.
    let resp = busy.response();
    assert_eq!(resp.status_line, "HTTP/1.1 200 OK");
    assert_eq!(
        resp.headers_but_date(),
        [("content-length", "5"), ("connection", "close")]
    );
    assert_eq!(resp.text(), "/slow");
    busy.assert_closed();
    // The idle connection is closed without a response.
    idle.assert_closed();
    // Closing our ends lets the server's lingering close finish at once.
    drop((busy, idle));

    exited
        .recv_timeout(GUARD)
        .expect("serve() returned")
        .unwrap();
    let refused = TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), IoErrorKind::ConnectionRefused);
}

// ---------------------------------------------------------------------------------------------
// Request versions and methods seen by the handler
// ---------------------------------------------------------------------------------------------

#[test]
fn handler_sees_method_uri_version_and_headers() {
    let addr = start(defaults, |req: Request<Body>| async move {
        format!(
            "{} {} {:?} {}",
            req.method(),
            req.uri(),
            req.version(),
            req.headers()["x-custom"].to_str().unwrap()
        )
    });
    let mut conn = Conn::new(addr);
    conn.send("DELETE /p?q=1 HTTP/1.1\r\nHost: x\r\nX-Custom: v\r\n\r\n");
    assert_eq!(conn.response().text(), "DELETE /p?q=1 HTTP/1.1 v");
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "tls")]
#[test]
fn tls_round_trip() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use futures_rustls::rustls;
    use rustls_pki_types::{PrivateKeyDer, ServerName};
    use std::sync::Arc;

    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let server_cert = cert.clone();
    let addr = start(
        move |s| s.tls(vec![server_cert], key).expect("TLS settings"),
        path,
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = futures_rustls::TlsConnector::from(Arc::new(config));

    let exchange = async move {
        let tcp = untangle::net::TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"GET /secure HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        tls.flush().await?;
        let mut received = Vec::new();
        tls.read_to_end(&mut received).await?;
        std::io::Result::Ok(received)
    };
    let received = untangle::block_on(untangle::time::timeout(GUARD, exchange))
        .expect("TLS exchange within the guard")
        .unwrap();
    let text = String::from_utf8(received).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(text.contains("\r\ncontent-length: 7\r\n"), "{text:?}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text:?}");
    assert!(text.ends_with("\r\n\r\n/secure"), "{text:?}");
}

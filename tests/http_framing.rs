//! The HTTP/1.1 server's framing and connection lifetimes on raw sockets, one rule per test,
//! named after the rule: `Connection: close` on every response after which the server closes,
//! request-target forms and bytes, CONNECT, trailer fields, minor versions, a client's
//! disconnect while its handler runs, and dropping `serve`.
//!
//! Timing appears only as generous hang guards (and, in one test, as a pause that only decides
//! how much of the code path the test exercises, never whether it passes).

mod common;

use std::future::Future;
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use common::{parse_responses, serve_in_thread, RawResponse};
use untangle::http::__fuzz::{server_parse, ServerEvent};
use untangle::http::{Body, ErrorKind, IntoResponse, Request, Response, Server, StatusCode};

/// How long any single read may wait before the test fails instead of hanging.
const GUARD: Duration = Duration::from_secs(10);

/// The server drains an unread request body up to this size to keep the connection
/// (`DRAIN_LIMIT` in `src/http/server/conn/shared.rs`); these tests stay well clear of it on
/// both sides.
const OVER_DRAIN_LIMIT: usize = 1024 * 1024;

fn start<C, H, Fut, R>(configure: C, handler: H) -> SocketAddr
where
    C: FnOnce(Server) -> Server + Send + 'static,
    H: Fn(Request<Body>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    serve_in_thread(configure, handler)
}

fn defaults(server: Server) -> Server {
    server
}

/// Answers with `METHOD TARGET VERSION`, without reading the body.
async fn describe(req: Request<Body>) -> String {
    format!("{} {} {:?}", req.method(), req.uri(), req.version())
}

/// Reads the whole body and answers with it; a body error answers 400 (413 when too large).
async fn read_body(req: Request<Body>) -> Response<Body> {
    match req.into_body().bytes().await {
        Ok(bytes) => Response::new(Body::from(bytes)),
        Err(err) if err.kind() == ErrorKind::BodyTooLarge => err.into_response(),
        Err(err) => (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    }
}

/// A blocking client connection that reads responses one at a time.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(GUARD)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).unwrap();
    }

    /// Reads more; false at end of stream (a reset counts as the end).
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(err) if err.kind() == IoErrorKind::ConnectionReset => false,
            Err(err) => panic!(
                "read failed: {err} (have {:?})",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Reads until the buffer holds one whole response with a Content-Length body (what
    /// these tests' handlers send) and returns it.
    fn response(&mut self) -> RawResponse {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if self.buf.len() >= end + 4 + length {
                    let bytes: Vec<u8> = self.buf.drain(..end + 4 + length).collect();
                    return parse_responses(&bytes).remove(0);
                }
            }
            assert!(
                self.fill(),
                "connection closed before a whole response: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Asserts that the server closes the connection with nothing more sent.
    fn assert_closed(&mut self) {
        while self.fill() {}
        assert!(
            self.buf.is_empty(),
            "unexpected bytes before close: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }
}

/// Sends `request` and a follow-up request in one write; asserts exactly one response with
/// `status` and `Connection: close`, then the close.
fn assert_rejected_with(addr: SocketAddr, request: &[u8], status: u16) {
    let mut conn = Conn::new(addr);
    let mut bytes = request.to_vec();
    bytes.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    conn.send(bytes);
    let resp = conn.response();
    let shown = String::from_utf8_lossy(request);
    assert_eq!(resp.status, status, "for {shown:?}: {resp:?}");
    assert_eq!(resp.header("connection"), Some("close"), "for {shown:?}");
    conn.assert_closed();
}

fn assert_bad_request(request: &[u8]) {
    assert_rejected_with(start(defaults, describe), request, 400);
}

// ---------------------------------------------------------------------------------------------
// RFC 9112 §9.6: a response after which the server closes says `Connection: close`
// ---------------------------------------------------------------------------------------------

#[test]
fn response_before_an_unread_body_too_large_to_drain_says_connection_close() {
    let mut conn = Conn::new(start(defaults, describe));
    conn.send(format!(
        "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: {OVER_DRAIN_LIMIT}\r\n\r\nstart"
    ));
    let resp = conn.response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    conn.assert_closed();
}

#[test]
fn response_before_an_unfinished_unread_chunked_body_says_connection_close() {
    // The rest of the body is of unknown size: draining it cannot be promised.
    let mut conn = Conn::new(start(defaults, describe));
    conn.send("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    let resp = conn.response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    conn.assert_closed();
}

#[test]
fn response_before_a_small_unread_body_keeps_the_connection() {
    let mut conn = Conn::new(start(defaults, describe));
    // The body arrives after the response (the client waits for it): its size is known and
    // small, so the server drains it after the response and keeps the connection.
    conn.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello");
    let resp = conn.response();
    assert_eq!(resp.header("connection"), None);
    conn.send("worldGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.response().body, b"GET /b HTTP/1.1");
    // A whole small chunked body already sent is drained before the head: kept too.
    conn.send(
        "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(conn.response().header("connection"), None);
    conn.send("GET /d HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.response().body, b"GET /d HTTP/1.1");
}

#[test]
fn refused_body_too_large_to_drain_is_413_with_connection_close() {
    let addr = start(|s| s.max_body_bytes(1000), read_body);
    let mut conn = Conn::new(addr);
    conn.send(format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {OVER_DRAIN_LIMIT}\r\n\r\nstart"
    ));
    let resp = conn.response();
    assert_eq!(resp.status, 413);
    assert_eq!(resp.header("connection"), Some("close"));
    conn.assert_closed();
}

#[test]
fn refused_chunked_body_not_yet_arrived_is_413_with_connection_close() {
    let addr = start(|s| s.max_body_bytes(1000), read_body);
    let mut conn = Conn::new(addr);
    let big = "b".repeat(2000);
    conn.send(format!(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7D0\r\n{big}\r\n"
    ));
    let resp = conn.response();
    assert_eq!(resp.status, 413);
    assert_eq!(resp.header("connection"), Some("close"));
    conn.assert_closed();
}

// ---------------------------------------------------------------------------------------------
// RFC 9110 §9.3.6, RFC 9112 §3.2: CONNECT and the request-target forms
// ---------------------------------------------------------------------------------------------

#[test]
fn connect_goes_to_the_handler_and_a_refusal_closes_with_nothing_after_it_parsed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let addr = start(defaults, move |req: Request<Body>| {
        seen.fetch_add(1, Ordering::SeqCst);
        let target = req.uri().to_string();
        async move { (StatusCode::FORBIDDEN, format!("no tunnel to {target}")) }
    });
    // What follows the head may be tunnel bytes; here they look like a request.
    assert_rejected_with(
        addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        403,
    );
    assert_rejected_with(addr, b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: x\r\n\r\n", 403);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn connect_without_authority_form_target_is_400() {
    for target in [
        "/",
        "*",
        "http://a:443/",
        "a",
        "a:",
        "a:b",
        "user@a:443",
        ":443",
    ] {
        assert_bad_request(format!("CONNECT {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    }
}

#[test]
fn authority_form_target_outside_connect_is_400() {
    for method in ["GET", "POST", "OPTIONS"] {
        assert_bad_request(
            format!("{method} example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
        );
    }
}

#[test]
fn asterisk_form_target_outside_options_is_400() {
    for method in ["GET", "HEAD", "POST"] {
        assert_bad_request(format!("{method} * HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    }
}

#[test]
fn asterisk_form_for_options_and_absolute_form_are_accepted() {
    let mut conn = Conn::new(start(defaults, describe));
    conn.send("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nGET http://a/x?y HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(conn.response().body, b"OPTIONS * HTTP/1.1");
    assert_eq!(conn.response().body, b"GET http://a/x?y HTTP/1.1");
}

#[test]
fn request_target_with_bytes_outside_visible_ascii_is_400() {
    for target in [
        &b"/caf\xc3\xa9"[..], // raw UTF-8
        b"/\xe2\x82\xac",
        b"/a\x01b", // control
        b"/a\x7fb", // DEL
        b"/a\x80b", // obs-text, not UTF-8
        b"/a\tb",   // HTAB
    ] {
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(target);
        request.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_bad_request(&request);
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 9112 §7.1.2: trailer fields are field lines
// ---------------------------------------------------------------------------------------------

fn chunked_with_trailer(trailer: &[u8]) -> Vec<u8> {
    let mut request =
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
            .to_vec();
    request.extend_from_slice(trailer);
    request.extend_from_slice(b"\r\n\r\n");
    request
}

#[test]
fn trailer_field_without_colon_is_400_and_closes() {
    assert_rejected_with(
        start(defaults, read_body),
        &chunked_with_trailer(b"X-No-Colon"),
        400,
    );
}

#[test]
fn trailer_field_that_is_not_a_valid_field_line_is_400_and_closes() {
    let addr = start(defaults, read_body);
    for trailer in [
        &b"X-Space : v"[..],  // whitespace before the colon
        b": v",               // empty name
        b"X(bad): v",         // not a token
        b"X-A: 1\r\n folded", // obs-fold
        b"X-A: a\rb",         // bare CR
        b"X-A: a\x00b",       // NUL
        b"X-A: a\x7fb",       // DEL
    ] {
        assert_rejected_with(addr, &chunked_with_trailer(trailer), 400);
    }
}

#[test]
fn invalid_trailer_in_an_unread_body_closes_with_connection_close() {
    let mut conn = Conn::new(start(defaults, describe));
    let mut request = chunked_with_trailer(b"X-No-Colon");
    request.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    conn.send(request);
    let resp = conn.response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    conn.assert_closed();
}

#[test]
fn valid_trailer_fields_are_accepted() {
    let mut conn = Conn::new(start(defaults, read_body));
    conn.send(chunked_with_trailer(
        b"X-A: 1\r\nX-B:\r\nX-C: tab\there \xe9",
    ));
    assert_eq!(conn.response().body, b"hello");
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.response().status, 200);
}

// ---------------------------------------------------------------------------------------------
// RFC 9110 §6.2: a higher minor version of HTTP/1 is served as HTTP/1.1
// ---------------------------------------------------------------------------------------------

#[test]
fn higher_minor_http1_version_is_served_as_http11() {
    let mut conn = Conn::new(start(defaults, describe));
    for version in ["HTTP/1.2", "HTTP/1.9"] {
        conn.send(format!(
            "GET /v HTTP/1.1\r\nHost: x\r\n\r\nGET /w {version}\r\nHost: x\r\n\r\n"
        ));
        assert_eq!(conn.response().body, b"GET /v HTTP/1.1");
        let resp = conn.response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"GET /w HTTP/1.1");
        // Kept alive, as HTTP/1.1 is.
        assert_eq!(resp.header("connection"), None);
    }
}

#[test]
fn higher_minor_http1_version_parses_the_same_however_it_arrives() {
    let input = b"GET /w HTTP/1.2\r\nHost: x\r\n\r\n";
    let limits = (64 * 1024, 100, 8 * 1024);
    let whole = server_parse(input, &[], limits);
    assert!(
        matches!(&whole[..], [ServerEvent::Request { version, .. }] if version == "HTTP/1.1"),
        "{whole:?}"
    );
    for split in 1..input.len() {
        assert_eq!(
            server_parse(input, &[split], limits),
            whole,
            "split at {split}"
        );
    }
}

#[test]
fn other_major_http_versions_are_505() {
    let addr = start(defaults, describe);
    for version in ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9"] {
        let request = format!("GET / {version}\r\nHost: x\r\n\r\n");
        assert_rejected_with(addr, request.as_bytes(), 505);
    }
}

#[test]
fn malformed_http_version_is_400() {
    let addr = start(defaults, describe);
    for version in [
        "HTTP/1.10",
        "HTTP/1.2x",
        "HTTP/1",
        "HTTP/12",
        "http/1.1",
        "HTTP/1.a",
    ] {
        let request = format!("GET / {version}\r\nHost: x\r\n\r\n");
        assert_rejected_with(addr, request.as_bytes(), 400);
    }
}

// ---------------------------------------------------------------------------------------------
// A client's disconnect while its handler runs; dropping `serve`
// ---------------------------------------------------------------------------------------------

/// Sends on `tx` when dropped: shows, across threads, that a future's destructors ran.
struct SignalOnDrop(mpsc::Sender<&'static str>, &'static str);

impl Drop for SignalOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

/// A handler that announces its start, then waits forever (a long poll) with a
/// [`SignalOnDrop`]; `/quick` answers at once.
fn long_poll(
    started: mpsc::Sender<()>,
    dropped: mpsc::Sender<&'static str>,
) -> impl Fn(Request<Body>) -> std::pin::Pin<Box<dyn Future<Output = &'static str>>> + Send {
    move |req: Request<Body>| {
        let (started, dropped) = (started.clone(), dropped.clone());
        Box::pin(async move {
            if req.uri().path() == "/quick" {
                return "quick";
            }
            let _signal = SignalOnDrop(dropped, "handler");
            let _ = started.send(());
            std::future::pending::<()>().await;
            "never"
        })
    }
}

#[test]
fn client_disconnect_drops_its_running_handler() {
    let (started_tx, started) = mpsc::channel();
    let (dropped_tx, dropped) = mpsc::channel();
    let addr = start(defaults, long_poll(started_tx, dropped_tx));
    let mut conn = Conn::new(addr);
    conn.send("GET /poll HTTP/1.1\r\nHost: x\r\n\r\n");
    started.recv_timeout(GUARD).expect("handler started");
    drop(conn);
    assert_eq!(dropped.recv_timeout(GUARD), Ok("handler"));
    // The server goes on.
    let mut conn = Conn::new(addr);
    conn.send("GET /quick HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.response().body, b"quick");
}

#[test]
fn client_disconnect_drops_a_waiting_streaming_response_body() {
    let (dropped_tx, dropped) = mpsc::channel();
    let addr = start(defaults, move |_req: Request<Body>| {
        let signal = SignalOnDrop(dropped_tx.clone(), "body");
        let first = futures_lite::stream::once(Ok(Bytes::from_static(b"first")));
        let rest = futures_lite::stream::poll_fn(move |_| {
            let _ = &signal;
            std::task::Poll::<Option<std::io::Result<Bytes>>>::Pending
        });
        async move { Body::from_stream(futures_lite::StreamExt::chain(first, rest)) }
    });
    let mut conn = Conn::new(addr);
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    while !conn.buf.ends_with(b"5\r\nfirst\r\n") {
        assert!(conn.fill(), "closed before the first chunk");
    }
    drop(conn);
    assert_eq!(dropped.recv_timeout(GUARD), Ok("body"));
}

#[test]
fn half_closed_client_is_gone_by_default() {
    let (started_tx, started) = mpsc::channel();
    let (dropped_tx, dropped) = mpsc::channel();
    let addr = start(defaults, long_poll(started_tx, dropped_tx));
    let mut conn = Conn::new(addr);
    conn.send("GET /poll HTTP/1.1\r\nHost: x\r\n\r\n");
    started.recv_timeout(GUARD).expect("handler started");
    conn.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(dropped.recv_timeout(GUARD), Ok("handler"));
    conn.assert_closed();
}

#[test]
fn half_close_lets_a_half_closed_client_get_its_response() {
    let (started_tx, started) = mpsc::channel::<()>();
    let (release_tx, release_rx) = async_channel::bounded::<()>(1);
    let addr = start(
        |s| s.half_close(true),
        move |_req: Request<Body>| {
            let (started, release) = (started_tx.clone(), release_rx.clone());
            async move {
                let _ = started.send(());
                let _ = release.recv().await;
                "answered"
            }
        },
    );
    let mut conn = Conn::new(addr);
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    started.recv_timeout(GUARD).expect("handler started");
    conn.stream.shutdown(Shutdown::Write).unwrap();
    // Time for the FIN to reach the waiting server (only how much this exercises depends
    // on it: without the FIN seen, the response comes all the same).
    thread::sleep(Duration::from_millis(50));
    release_tx.send_blocking(()).unwrap();
    let resp = conn.response();
    assert_eq!(resp.body, b"answered");
    conn.assert_closed();
}

#[test]
fn request_pipelined_while_a_handler_waits_is_kept_and_answered_next() {
    let (started_tx, started) = mpsc::channel::<()>();
    let (release_tx, release_rx) = async_channel::bounded::<()>(1);
    let addr = start(defaults, move |req: Request<Body>| {
        let (started, release) = (started_tx.clone(), release_rx.clone());
        async move {
            if req.uri().path() == "/slow" {
                let _ = started.send(());
                let _ = release.recv().await;
            }
            req.uri().path().to_string()
        }
    });
    let mut conn = Conn::new(addr);
    conn.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    started.recv_timeout(GUARD).expect("handler started");
    // Read by the server while `/slow` waits, into the buffer the next head is parsed from.
    conn.send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    thread::sleep(Duration::from_millis(20));
    release_tx.send_blocking(()).unwrap();
    assert_eq!(conn.response().body, b"/slow");
    assert_eq!(conn.response().body, b"/next");
}

#[test]
fn dropping_serve_drops_its_connections_and_their_handlers() {
    let (started_tx, started) = mpsc::channel();
    let (dropped_tx, dropped) = mpsc::channel();
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let (end_tx, end_rx) = async_channel::bounded::<()>(1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = long_poll(started_tx, dropped_tx);
    let server = thread::spawn(move || {
        untangle::block_on(async move {
            let listener = untangle::net::TcpListener::try_from(listener).unwrap();
            let serve = Server::from_listener(listener).serve(handler);
            let stop = async {
                let _ = stop_rx.recv().await;
                Ok(())
            };
            futures_lite::FutureExt::or(serve, stop).await.unwrap();
            // `serve` is dropped; the loop runs on until the test is done.
            let _ = end_rx.recv().await;
        })
    });

    let mut idle = Conn::new(addr);
    idle.send("GET /quick HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(idle.response().body, b"quick");
    let mut busy = Conn::new(addr);
    busy.send("GET /poll HTTP/1.1\r\nHost: x\r\n\r\n");
    started.recv_timeout(GUARD).expect("handler started");

    stop_tx.send_blocking(()).unwrap();
    assert_eq!(dropped.recv_timeout(GUARD), Ok("handler"));
    busy.assert_closed();
    idle.assert_closed();
    let refused = TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), IoErrorKind::ConnectionRefused);
    end_tx.send_blocking(()).unwrap();
    server.join().unwrap();
}

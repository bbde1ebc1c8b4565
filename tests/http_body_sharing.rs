//! A request body shared with something other than the connection task: a task the handler
//! spawned to read it, a response body that wraps it, a handler that drops it and makes a new
//! stream. The connection must wake a task parked on such a body once it can no longer read,
//! send the 100 a client waits for whenever anything may still read the body, and tell a new
//! stream from the request body; plus the framing of handler-set `Transfer-Encoding` values.

mod common;

use common::{connect, find};

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::{Stream, StreamExt};
use untangle::http::{Body, Request, Response, StatusCode};

thread_local! {
    /// What the task spawned by `/spawn-read` got from the body, once it got something.
    static READ: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Bodies kept alive by `/stash` (as by a task that reads them later).
    static STASH: RefCell<Vec<Body>> = const { RefCell::new(Vec::new()) };
}

/// A stream of one chunk, the size of the server's own request body stream (two words), so
/// that the allocator is likely to give it the address of a request body just dropped.
struct TwoWords(u64, u64);

impl Stream for TwoWords {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        self.0 = 0;
        self.1 += 1;
        Poll::Ready(Some(Ok(Bytes::from_static(b"fresh stream"))))
    }
}

fn record(result: Result<Bytes, untangle::http::Error>) {
    let outcome = match result {
        Ok(bytes) => format!("read {:?}", String::from_utf8_lossy(&bytes)),
        Err(_) => "read failed".to_string(),
    };
    READ.with(|r| *r.borrow_mut() = Some(outcome));
}

async fn handler(req: Request<Body>) -> Response<Body> {
    match req.uri().path() {
        // Hands the body to a task, lets it park on the socket, answers without waiting.
        "/spawn-read" => {
            let body = req.into_body();
            untangle::spawn(async move { record(body.bytes().await) }).detach();
            untangle::yield_now().await;
            let mut response = Response::new(Body::from("accepted"));
            *response.status_mut() = StatusCode::ACCEPTED;
            response
        }
        // Hands the body to a task and answers once that task has read it all.
        "/spawn-read-wait" => {
            let body = req.into_body();
            untangle::spawn(async move { record(body.bytes().await) }).detach();
            let mut answer = None;
            for _ in 0..100_000 {
                answer = READ.with(|r| r.borrow_mut().take());
                if answer.is_some() {
                    break;
                }
                untangle::yield_now().await;
            }
            Response::new(Body::from(answer.unwrap_or_else(|| "still waiting".into())))
        }
        // What the spawned task got, once the connection went on with the next request.
        "/result" => {
            let mut answer = None;
            for _ in 0..10_000 {
                answer = READ.with(|r| r.borrow_mut().take());
                if answer.is_some() {
                    break;
                }
                untangle::yield_now().await;
            }
            Response::new(Body::from(answer.unwrap_or_else(|| "still waiting".into())))
        }
        // A response body that is not the request body, but reads it.
        "/upper" => {
            let upper = req.into_body().map(|chunk| {
                chunk
                    .map(|c| Bytes::from(c.to_ascii_uppercase()))
                    .map_err(io::Error::other)
            });
            Response::new(Body::from_stream(upper))
        }
        "/stash" => {
            STASH.with(|s| s.borrow_mut().push(req.into_body()));
            Response::new(Body::from("stashed"))
        }
        // Drops the request body, then answers with a new stream.
        "/fresh" => {
            drop(req);
            Response::new(Body::from_stream(TwoWords(1, 0)))
        }
        "/coded" => {
            let coding = req.headers()["x-coding"].clone();
            Response::builder()
                .header("transfer-encoding", coding)
                .header("content-length", "10")
                .body(Body::from("0123456789"))
                .unwrap()
        }
        _ => Response::new(Body::from("hello")),
    }
}

fn serve() -> SocketAddr {
    common::serve_in_thread(|s| s, handler)
}

/// Reads until `pending` holds `needle`; returns what precedes and includes it.
fn read_through(stream: &mut TcpStream, pending: &mut Vec<u8>, needle: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(at) = find(pending, needle) {
            return pending.drain(..at + needle.len()).collect();
        }
        let n = stream.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "closed before {:?}; got {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&buf[..n]);
    }
}

/// Reads one whole response; the connection closes after it (`Connection: close` requests).
fn read_to_close(stream: &mut TcpStream, mut pending: Vec<u8>) -> common::RawResponse {
    match stream.read_to_end(&mut pending) {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {}
        Err(err) => panic!("reading to the close: {err}"),
    }
    let mut responses = common::parse_responses(&pending);
    assert_eq!(
        responses.len(),
        1,
        "{:?}",
        String::from_utf8_lossy(&pending)
    );
    responses.remove(0)
}

#[test]
fn a_task_parked_on_a_handed_body_is_woken_with_an_error_once_the_response_is_written() {
    let addr = serve();
    let mut stream = connect(addr);
    stream
        .write_all(b"POST /spawn-read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        .unwrap();
    let mut pending = Vec::new();
    let head = read_through(&mut stream, &mut pending, b"\r\n\r\n");
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 202 accepted\r\n"), "{head}");
    assert!(
        !head.contains("connection: close"),
        "a 5-byte rest is drained: {head}"
    );
    read_through(&mut stream, &mut pending, b"accepted");
    // The body's bytes come after its response: the connection drains them, and the task
    // waiting for them is told its body can no longer read (it would otherwise wait for ever,
    // and keep the connection's socket open).
    stream
        .write_all(b"helloGET /result HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let response = read_to_close(&mut stream, pending);
    assert_eq!(response.status, 200);
    assert_eq!(String::from_utf8_lossy(&response.body), "read failed");
}

#[test]
fn a_task_handed_the_body_reads_it_while_the_handler_waits() {
    let addr = serve();
    let mut stream = connect(addr);
    stream
        .write_all(b"POST /spawn-read-wait HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        .unwrap();
    let response = read_to_close(&mut stream, Vec::new());
    assert_eq!(String::from_utf8_lossy(&response.body), "read \"hello\"");
}

#[test]
fn a_task_handed_the_body_asks_for_it_with_100_continue() {
    let addr = serve();
    let mut stream = connect(addr);
    stream
        .write_all(b"POST /spawn-read-wait HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut pending = Vec::new();
    let first = read_through(&mut stream, &mut pending, b"\r\n\r\n");
    assert_eq!(first, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").unwrap();
    let response = read_to_close(&mut stream, pending);
    assert_eq!(String::from_utf8_lossy(&response.body), "read \"hello\"");
}

#[test]
fn expect_continue_gets_its_100_when_the_response_body_wraps_the_request_body() {
    let addr = serve();
    let mut stream = connect(addr);
    stream
        .write_all(
            b"POST /upper HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
    let mut pending = Vec::new();
    // A client that waits for the 100 before it sends the body (Go's, Node's) must get it
    // before the response head: the response body waits for that body.
    let first = read_through(&mut stream, &mut pending, b"\r\n\r\n");
    assert_eq!(
        first,
        b"HTTP/1.1 100 Continue\r\n\r\n",
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    stream.write_all(b"hello").unwrap();
    let head = read_through(&mut stream, &mut pending, b"\r\n\r\n");
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(
        !head.contains("connection: close"),
        "the body is read: {head}"
    );
    read_through(&mut stream, &mut pending, b"5\r\nHELLO\r\n0\r\n\r\n");
    stream
        .write_all(b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let response = read_to_close(&mut stream, pending);
    assert_eq!(response.body, b"hello");
}

#[test]
fn a_new_stream_after_the_request_body_was_dropped_is_not_the_request_body() {
    let addr = serve();
    let mut stream = connect(addr);
    // A body kept alive elsewhere, so that the connection's state stays shared.
    stream
        .write_all(b"POST /stash HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        .unwrap();
    let mut pending = Vec::new();
    read_through(&mut stream, &mut pending, b"stashed");
    // An unfinished chunked body, dropped unread: its rest is of unknown size, so the server
    // closes, whatever stream the handler answers with (a new one may be allocated where the
    // request body's stream was).
    stream
        .write_all(
            b"POST /fresh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        )
        .unwrap();
    let response = read_to_close(&mut stream, pending);
    assert_eq!(response.body, b"fresh stream");
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
}

fn coded(addr: SocketAddr, method: &str, coding: &str) -> String {
    let mut stream = connect(addr);
    let request = format!(
        "{method} /coded HTTP/1.1\r\nHost: x\r\nX-Coding: {coding}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    String::from_utf8_lossy(&got).to_lowercase()
}

#[test]
fn head_for_a_handler_transfer_encoding_has_no_length_as_its_get_has_none() {
    // RFC 9110 §8.6: a HEAD response carries only the length a GET would; the GET goes
    // chunked (no Content-Length), so the HEAD says no length and no chunked either.
    let addr = serve();
    let head = coded(addr, "HEAD", "gzip");
    assert!(!head.contains("content-length"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head}");
    let get = coded(addr, "GET", "gzip");
    assert!(
        get.contains("\r\ntransfer-encoding: gzip, chunked\r\n"),
        "{get}"
    );
    assert!(!get.contains("content-length"), "{get}");
}

#[test]
fn a_handler_chunked_with_parameters_is_sent_once() {
    let addr = serve();
    for (coding, field) in [
        ("chunked;x=1", "\r\ntransfer-encoding: chunked\r\n"),
        (
            "gzip, chunked ;q=1",
            "\r\ntransfer-encoding: gzip, chunked\r\n",
        ),
    ] {
        let got = coded(addr, "GET", coding);
        assert!(got.contains(field), "{coding}: {got}");
        assert_eq!(got.matches("chunked").count(), 1, "{coding}: {got}");
        assert!(
            got.ends_with("\r\n\r\na\r\n0123456789\r\n0\r\n\r\n"),
            "{got}"
        );
    }
}

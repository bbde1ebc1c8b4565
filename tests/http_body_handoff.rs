//! A handler that hands its unread request body to something else (another task, a stash) and
//! answers while the body is still unread: the server's keep-or-close decision before the
//! response head must match what it does after it. Once the response is written the handed
//! body can no longer read, so its rest is drained by the rule for an abandoned body (a known
//! rest within the drain limit keeps the connection, anything else closes it), and a response
//! after which the server closes says `Connection: close`.

mod common;

use common::{connect, find};

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::RawResponse;
use untangle::http::{Body, Request, Response};

thread_local! {
    /// Bodies handed away by `/stash`, still alive (as in a spawned task that reads later).
    static STASH: RefCell<Vec<Body>> = const { RefCell::new(Vec::new()) };
}

async fn handler(req: Request<Body>) -> Response<Body> {
    match req.uri().path() {
        "/stash" => {
            STASH.with(|s| s.borrow_mut().push(req.into_body()));
            Response::new(Body::from("stashed"))
        }
        // Reads the last stashed body: after its response was sent, it must fail.
        "/read-stashed" => {
            let body = STASH
                .with(|s| s.borrow_mut().pop())
                .expect("a stashed body");
            let answer = match body.bytes().await {
                Ok(bytes) => format!("read {} bytes", bytes.len()),
                Err(_) => "read failed".to_string(),
            };
            Response::new(Body::from(answer))
        }
        "/echo" => Response::new(req.into_body()),
        _ => Response::new(Body::from("hello")),
    }
}

/// Reads one response (framed by Content-Length or chunked) from `stream`, keeping what
/// follows in `pending`.
fn read_response(stream: &mut TcpStream, pending: &mut Vec<u8>) -> RawResponse {
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = find(pending, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_lowercase();
            let needed = if let Some(cl) = head.split("\r\n").find_map(|l| {
                l.strip_prefix("content-length: ")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            }) {
                Some(end + 4 + cl)
            } else {
                find(&pending[end..], b"\r\n0\r\n\r\n").map(|i| end + i + 7)
            };
            if let Some(needed) = needed.filter(|&n| pending.len() >= n) {
                let response = common::parse_responses(&pending[..needed]).remove(0);
                pending.drain(..needed);
                return response;
            }
        }
        let n = stream.read(&mut buf).expect("read a response");
        assert!(n > 0, "connection closed before a whole response");
        pending.extend_from_slice(&buf[..n]);
    }
}

/// Whether the server closes the connection now (rather than waiting for more requests):
/// reads to the end, which comes at once when it closes.
fn closes(stream: &mut TcpStream, pending: &[u8]) -> bool {
    assert!(pending.is_empty(), "unexpected bytes: {pending:?}");
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(err) => panic!("waiting for the close: {err}"),
    }
    assert!(rest.is_empty(), "bytes after the last response: {rest:?}");
    true
}

fn serve() -> SocketAddr {
    common::serve_in_thread(|s| s, handler)
}

#[test]
fn handed_away_body_too_large_to_drain_gets_connection_close() {
    let addr = serve();
    let mut stream = connect(addr);
    let body = vec![b'x'; 1024 * 1024];
    let head = format!(
        "POST /stash HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The rest of the body may not be read: the server closes.
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = stream.write_all(&body);
        })
    };
    let mut pending = Vec::new();
    let response = read_response(&mut stream, &mut pending);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"stashed");
    assert_eq!(
        response.header("connection"),
        Some("close"),
        "the server closes after this response (the body's rest is over the drain limit)"
    );
    assert!(closes(&mut stream, &pending));
    writer.join().unwrap();
}

#[test]
fn handed_away_unfinished_chunked_body_gets_connection_close() {
    let addr = serve();
    let mut stream = connect(addr);
    stream
        .write_all(
            b"POST /stash HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        )
        .unwrap();
    let mut pending = Vec::new();
    let response = read_response(&mut stream, &mut pending);
    assert_eq!(response.body, b"stashed");
    assert_eq!(response.header("connection"), Some("close"));
    // The body's end arrives after the response: still closed, nothing parsed from it.
    stream
        .write_all(b"0\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok();
    assert!(closes(&mut stream, &pending));
}

#[test]
fn handed_away_small_body_is_drained_and_the_connection_kept() {
    let addr = serve();
    let mut stream = connect(addr);
    // The body's bytes look like a request: drained, never parsed as one.
    let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let head = format!(
        "POST /stash HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        smuggled.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut pending = Vec::new();
    let response = read_response(&mut stream, &mut pending);
    assert_eq!(response.body, b"stashed");
    assert_eq!(response.header("connection"), None, "kept: {response:?}");
    stream.write_all(smuggled).unwrap();
    stream
        .write_all(b"GET /read-stashed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let response = read_response(&mut stream, &mut pending);
    assert_eq!(
        response.body, b"read failed",
        "a body handed away may not read after its response was sent"
    );
    assert_eq!(response.header("connection"), Some("close"));
    assert!(closes(&mut stream, &pending));
}

#[test]
fn request_body_returned_as_the_response_body_keeps_the_connection() {
    let addr = serve();
    let mut stream = connect(addr);
    // Chunked, of unknown length: the response streams it, and the connection is kept.
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        )
        .unwrap();
    stream
        .write_all(
            b"6\r\n world\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut pending = Vec::new();
    let response = read_response(&mut stream, &mut pending);
    assert_eq!(response.body, b"hello world");
    assert_eq!(response.header("connection"), None, "kept: {response:?}");
    let response = read_response(&mut stream, &mut pending);
    assert_eq!(response.body, b"hello");
    assert!(closes(&mut stream, &pending));
}

#[test]
fn expect_continue_with_the_request_body_as_the_response_body_gets_its_100_first() {
    let addr = serve();
    let mut stream = connect(addr);
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    // Nothing of the body is sent before the 100: a client waiting for it must get it.
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\n") || got.len() < 25 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed while waiting for 100 Continue");
        got.extend_from_slice(&buf[..n]);
        if find(&got, b"HTTP/1.1 100 Continue\r\n\r\n").is_some() {
            break;
        }
    }
    assert!(
        got.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let mut pending = got[25..].to_vec();
    stream
        .write_all(
            b"5\r\nhello\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let response = read_response(&mut stream, &mut pending);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    assert_eq!(response.header("connection"), None, "kept: {response:?}");
    let response = read_response(&mut stream, &mut pending);
    assert_eq!(response.body, b"hello");
    assert!(closes(&mut stream, &pending));
}

#[test]
fn request_body_returned_to_head_is_dropped_unread_and_drained_by_the_same_rule() {
    let addr = serve();
    let mut stream = connect(addr);
    // Unfinished chunked body: a response to HEAD carries no body, so nothing reads it; the
    // server cannot know its size, so it closes, and says so.
    stream
        .write_all(
            b"HEAD /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        )
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while find(&got, b"\r\n\r\n").is_none() {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the response head");
        got.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&got).to_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    let end = find(&got, b"\r\n\r\n").unwrap() + 4;
    assert!(closes(&mut stream, &got[end..]));
}

//! The client against scripted servers that write exact bytes: the framing and reuse cases
//! real servers rarely send (Transfer-Encoding with Content-Length, bodiless answers carrying
//! framing fields, HTTP/1.0 keep-alive, floods of interim responses, oversized chunk lines and
//! trailers) and a pooled connection reset while the client was not looking.
//!
//! Complements tests/http_client.rs, which covers the common cases one rule per test. Peers
//! here are blocking threads, one per connection.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::run;
use untangle::http::{header, Body, Client, ErrorKind, Method, Request, Response, StatusCode};

/// A peer: its address and how many connections it accepted.
struct Peer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Peer {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Starts a peer that runs `serve(index, stream)` for each connection on its own thread.
fn peer<F>(serve: F) -> Peer
where
    F: Fn(usize, TcpStream) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let serve = Arc::new(serve);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let index = count.fetch_add(1, Ordering::SeqCst);
            let serve = serve.clone();
            thread::spawn(move || serve(index, stream));
        }
    });
    Peer { addr, accepted }
}

/// Reads one request head and its Content-Length body; `None` at end of stream.
fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse::<usize>().unwrap())
    {
        let mut body = vec![0; len];
        stream.read_exact(&mut body).ok()?;
        buf.extend_from_slice(&body);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// A peer answering every request on every connection with the next of `responses` (the last
/// one repeated), keeping the connection until the client closes it.
fn answering(responses: &'static [&'static [u8]]) -> Peer {
    peer(move |_, mut stream| {
        let mut i = 0;
        while read_request(&mut stream).is_some() {
            let response = responses[i.min(responses.len() - 1)];
            if stream.write_all(response).is_err() {
                return;
            }
            i += 1;
        }
    })
}

async fn text(response: Response<Body>) -> String {
    response.into_body().text().await.unwrap()
}

fn head_request(url: String) -> Request<Body> {
    Request::builder()
        .method(Method::HEAD)
        .uri(url)
        .body(Body::empty())
        .unwrap()
}

#[test]
fn chunked_wins_over_content_length_and_the_connection_is_not_reused() {
    let p = answering(&[
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n",
    ]);
    run(async {
        let client = Client::new();
        for _ in 0..2 {
            let response = client.get(p.url("/")).await.unwrap();
            assert_eq!(response.into_body().bytes().await.unwrap(), "hello");
        }
        // RFC 9112 §6.3: such a message may be an attempt at smuggling; never reused.
        assert_eq!(p.accepted(), 2);
    });
}

#[test]
fn repeated_equal_content_lengths_are_one_length() {
    let p =
        answering(&[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello"]);
    run(async {
        let client = Client::new();
        for _ in 0..2 {
            assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        }
        assert_eq!(p.accepted(), 1);
    });
}

#[test]
fn bodiless_answers_with_framing_fields_do_not_wait_and_keep_the_connection() {
    // Each would hang (or eat the next response) if its framing fields were believed.
    let p = answering(&[
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    ]);
    run(async {
        let client = Client::new();
        let r = client.get(p.url("/")).await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(text(r).await, "");
        let r = client.get(p.url("/")).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(text(r).await, "");
        let r = client.send(head_request(p.url("/"))).await.unwrap();
        assert_eq!(r.headers()[header::TRANSFER_ENCODING], "chunked");
        assert_eq!(text(r).await, "");
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        assert_eq!(p.accepted(), 1);
    });
}

#[test]
fn http10_keep_alive_is_reused_only_with_a_length() {
    run(async {
        let client = Client::new();
        let p = answering(&[
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        ]);
        for _ in 0..3 {
            assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "ok");
        }
        assert_eq!(p.accepted(), 1);

        // Without a length the body ends with the connection, keep-alive or not.
        let p = peer(|_, mut stream| {
            if read_request(&mut stream).is_some() {
                let _ = stream
                    .write_all(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nto the end");
            }
        });
        for _ in 0..2 {
            assert_eq!(
                text(client.get(p.url("/")).await.unwrap()).await,
                "to the end"
            );
        }
        assert_eq!(p.accepted(), 2);
    });
}

#[test]
fn many_interim_responses_split_across_reads_are_skipped() {
    let p = peer(|_, mut stream| {
        while read_request(&mut stream).is_some() {
            let mut interim = Vec::new();
            for i in 0..200 {
                interim.extend_from_slice(
                    format!("HTTP/1.1 103 Early Hints\r\nLink: </{i}.css>; rel=preload\r\n\r\n")
                        .as_bytes(),
                );
            }
            interim.extend_from_slice(
                b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 20",
            );
            if stream.write_all(&interim).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(5));
            let _ = stream.write_all(b"0 OK\r\nContent-Length: 4\r\n\r\ndone");
        }
    });
    run(async {
        let client = Client::new();
        for _ in 0..2 {
            let response = client.get(p.url("/")).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert!(response.headers().get(header::LINK).is_none());
            assert_eq!(text(response).await, "done");
        }
        assert_eq!(p.accepted(), 1);
    });
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let p = answering(&[b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok"]);
    run(async {
        let response = Client::new().get(p.url("/")).await.unwrap();
        assert_eq!(response.headers()["x-a"], "b");
        assert_eq!(text(response).await, "ok");
    });
}

#[test]
fn obs_text_in_headers_and_reason_is_kept_as_bytes() {
    let p =
        answering(&[b"HTTP/1.1 200 \xc3\x96K\r\nX-Latin: caf\xe9\r\nContent-Length: 0\r\n\r\n"]);
    run(async {
        let response = Client::new().get(p.url("/")).await.unwrap();
        assert_eq!(response.headers()["x-latin"].as_bytes(), b"caf\xe9");
    });
}

#[test]
fn oversized_heads_chunk_lines_and_trailers_are_errors() {
    run(async {
        let client = Client::new();
        // More header fields than the parser holds.
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..500 {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        let many: &'static [u8] = many.leak();
        let p = answering(Box::leak(Box::new([many])));
        let err = client.get(p.url("/")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadResponse, "{err}");

        // A chunk size that overflows, a chunk extension without end, trailers without end:
        // errors (never a hang, never unbounded buffering).
        let mut long_ext = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;".to_vec();
        long_ext.extend(std::iter::repeat_n(b'x', 4 << 20));
        let mut long_trailer =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: ".to_vec();
        long_trailer.extend(std::iter::repeat_n(b'y', 4 << 20));
        for (name, bytes) in [
            (
                "overflow",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nx\r\n"
                    .to_vec(),
            ),
            ("extension", long_ext),
            ("trailer", long_trailer),
        ] {
            let bytes: &'static [u8] = bytes.leak();
            let p = peer(move |_, mut stream| {
                if read_request(&mut stream).is_some() {
                    let _ = stream.write_all(bytes);
                    // Held open: only the client's limit can end this.
                    let mut sink = [0u8; 64];
                    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                }
            });
            let response = client.get(p.url("/")).await.unwrap();
            let err = response.into_body().bytes().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadResponse, "{name}: {err}");
        }
    });
}

/// A pooled connection that the server reset while the client's loop was busy elsewhere (so
/// the reset was not yet seen when the connection was taken from the pool): the request's
/// first write fails, nothing of it was sent, and so even a POST is sent again on a new
/// connection (hyper retries requests it never wrote in the same way).
#[test]
fn request_never_written_to_a_reset_pooled_connection_is_sent_again() {
    let (reset_tx, reset_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let reset_rx = Mutex::new(reset_rx);
    let p = peer(move |index, mut stream| {
        if index == 0 {
            read_request(&mut stream);
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
                .unwrap();
            reset_rx.lock().unwrap().recv().unwrap();
            rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO)).unwrap();
            drop(stream);
            done_tx.send(()).unwrap();
        } else {
            while let Some(request) = read_request(&mut stream) {
                let body = request.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        }
    });
    run(async {
        let client = Client::new();
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "first");
        // Block the loop's thread (no await) while the peer resets: the reactor does not see
        // it before the request is written.
        reset_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        thread::sleep(Duration::from_millis(20));
        let post = Request::builder()
            .method(Method::POST)
            .uri(p.url("/"))
            .body(Body::from("sent once"))
            .unwrap();
        assert_eq!(text(client.send(post).await.unwrap()).await, "sent once");
        assert_eq!(p.accepted(), 2);
    });
}

/// Reads one request head only; `None` at end of stream.
fn read_head_only(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&buf).to_ascii_lowercase())
}

/// An echo that answers as the body arrives, reading no faster than the client reads its
/// answer: a client that wrote the whole body before reading would wait forever once both
/// directions' socket buffers are full (far below 32 MiB).
#[test]
fn full_duplex_echo_of_a_body_larger_than_the_socket_buffers_completes() {
    const LEN: usize = 32 << 20;
    let p = peer(|_, mut stream| {
        while let Some(head) = read_head_only(&mut stream) {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map(|v| v.trim().parse().unwrap())
                .unwrap();
            let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
            if stream.write_all(response.as_bytes()).is_err() {
                return;
            }
            let mut reader = stream.try_clone().unwrap();
            let mut left = len;
            let mut buf = vec![0; 64 * 1024];
            while left > 0 {
                let n = match reader.read(&mut buf[..left.min(64 * 1024)]) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
                left -= n;
            }
        }
    });
    run(async {
        let client = Client::new();
        let payload = bytes::Bytes::from((0..LEN).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        for _ in 0..2 {
            let post = Request::builder()
                .method(Method::POST)
                .uri(p.url("/"))
                .body(Body::from(payload.clone()))
                .unwrap();
            let response = client.send(post).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let mut body = response.into_body();
            let mut at = 0;
            while let Some(chunk) = futures_lite::StreamExt::next(&mut body).await {
                let chunk = chunk.unwrap();
                assert_eq!(chunk, payload.slice(at..at + chunk.len()));
                at += chunk.len();
            }
            assert_eq!(at, LEN);
        }
        // Both bodies went whole each way: the connection was kept.
        assert_eq!(p.accepted(), 1);
    });
}

/// A server that refuses a large upload at once and closes (with the body unread, so the
/// kernel resets): the answer is what the client returns, not the write's broken pipe.
#[test]
fn error_answer_then_close_mid_upload_is_returned() {
    let p = peer(|_, mut stream| {
        if read_head_only(&mut stream).is_some() {
            let mut some = vec![0; 64 * 1024];
            let _ = stream.read_exact(&mut some);
            let _ = stream.write_all(
                b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 4\r\n\r\nnope",
            );
        }
    });
    run(async {
        let client = Client::new();
        for body in [
            Body::from(vec![b'x'; 16 << 20]),
            Body::from_stream(futures_lite::stream::repeat_with(|| {
                Ok(bytes::Bytes::from(vec![b'y'; 64 * 1024]))
            })),
        ] {
            let post = Request::builder()
                .method(Method::POST)
                .uri(p.url("/"))
                .body(body)
                .unwrap();
            let response = client.send(post).await.unwrap();
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(text(response).await, "nope");
        }
        assert_eq!(p.accepted(), 2);
    });
}

/// A request body stream that fails, or does not match the `Content-Length` it declared, is
/// a request error (never a silently truncated or overlong request).
#[test]
fn request_body_stream_faults_are_request_errors() {
    let p = peer(|_, mut stream| {
        // Reads whatever comes until the client gives up.
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    });
    run(async {
        let client = Client::new();
        let chunks = |sizes: &[usize]| {
            let items: Vec<std::io::Result<bytes::Bytes>> = sizes
                .iter()
                .map(|&n| Ok(bytes::Bytes::from(vec![b'z'; n])))
                .collect();
            Body::from_stream(futures_lite::stream::iter(items))
        };
        let failing = Body::from_stream(futures_lite::stream::iter([
            Ok(bytes::Bytes::from_static(b"some")),
            Err(std::io::Error::other("the producer failed")),
        ]));
        for (name, declared, body) in [
            ("shorter", Some("10"), chunks(&[3, 2])),
            ("longer", Some("10"), chunks(&[6, 6])),
            ("failing", None, failing),
        ] {
            let mut builder = Request::builder().method(Method::PUT).uri(p.url("/"));
            if let Some(length) = declared {
                builder = builder.header(header::CONTENT_LENGTH, length);
            }
            let err = client.send(builder.body(body).unwrap()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Request, "{name}: {err}");
        }
    });
}

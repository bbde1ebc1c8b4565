//! The client's `Expect: 100-continue` (RFC 9110 §10.1.1) against raw peers that send exact
//! bytes: one rule per test, named after the rule.
//!
//! Each peer is a task on the test's own loop (plain TCP, or TLS for the last tests), counting
//! connections. Tests that must show the client reacted to a `100` (rather than to its timer)
//! use an expect timeout longer than the hang guard; the one short timeout (a server ignoring
//! `Expect`) only asserts that the body arrives at all.

mod common;

use common::find;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use untangle::http::{header, Body, Client, Method, Request, Response, StatusCode};
use untangle::net::TcpListener;

use common::run;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Longer than the hang guard: a client that waited for its timer instead of reacting to the
/// server would fail the test.
const NEVER: Duration = Duration::from_secs(60);

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
const TOO_LARGE: &[u8] = b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 4\r\n\r\nnope";

trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// A raw peer: its address and how many connections it accepted.
struct Peer {
    addr: SocketAddr,
    accepted: Rc<Cell<usize>>,
}

impl Peer {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// One accepted connection of a peer.
struct PeerConn {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
}

impl PeerConn {
    /// Reads one request head (lower-cased); `None` at end of stream.
    async fn head(&mut self) -> Option<String> {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head: Vec<u8> = self.buf.drain(..end).collect();
        Some(String::from_utf8(head).unwrap().to_lowercase())
    }

    /// Reads the body `head` announces (Content-Length or chunked, as raw chunked bytes).
    async fn body(&mut self, head: &str) -> Option<Vec<u8>> {
        let end = if let Some(len) = content_length(head) {
            while self.buf.len() < len {
                if !self.fill().await {
                    return None;
                }
            }
            len
        } else if head.contains("transfer-encoding: chunked") {
            loop {
                if let Some(i) = find(&self.buf, b"0\r\n\r\n") {
                    break i + 5;
                }
                if !self.fill().await {
                    return None;
                }
            }
        } else {
            0
        };
        Some(self.buf.drain(..end).collect())
    }

    /// Reads at least `n` bytes past the head (or to the end of stream); returns how many.
    async fn at_least(&mut self, n: usize) -> usize {
        while self.buf.len() < n && self.fill().await {}
        self.buf.len()
    }

    /// Reads until the client closes the connection; returns how many bytes came after the
    /// last head or body taken.
    async fn until_closed(&mut self) -> usize {
        while self.fill().await {}
        self.buf.len()
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }
}

fn content_length(head: &str) -> Option<usize> {
    head.lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse().unwrap())
}

fn expects_continue(head: &str) -> bool {
    head.contains("\r\nexpect: 100-continue\r\n")
}

/// Starts a plain TCP peer on the current loop; `serve` runs for each accepted connection
/// (each in its own task).
async fn peer<F, Fut>(serve: F) -> Peer
where
    F: Fn(PeerConn) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = Peer {
        addr: listener.local_addr().unwrap(),
        accepted: Rc::new(Cell::new(0)),
    };
    let accepted = peer.accepted.clone();
    untangle::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepted.set(accepted.get() + 1);
            let conn = PeerConn {
                stream: Box::new(stream),
                buf: Vec::new(),
            };
            untangle::spawn(serve(conn)).detach();
        }
    })
    .detach();
    peer
}

/// Each request's head and body, as a peer read them.
type Log = Rc<RefCell<Vec<(String, Vec<u8>)>>>;

/// A peer that answers `Expect: 100-continue` with `100`, reads the body, then answers `OK`,
/// for every request; it logs each head and body.
async fn continuing(log: Log) -> Peer {
    peer(move |mut c| {
        let log = log.clone();
        async move {
            while let Some(head) = c.head().await {
                let has_body = content_length(&head).unwrap_or(0) > 0 || head.contains("chunked");
                if expects_continue(&head) && has_body {
                    c.send(CONTINUE).await;
                }
                let Some(body) = c.body(&head).await else {
                    return;
                };
                log.borrow_mut().push((head, body));
                c.send(OK).await;
            }
        }
    })
    .await
}

fn post(url: String, body: impl Into<Body>, expect: bool) -> Request<Body> {
    let mut builder = Request::builder().method(Method::POST).uri(url);
    if expect {
        builder = builder.header(header::EXPECT, "100-continue");
    }
    builder.body(body.into()).unwrap()
}

fn payload(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

async fn text(response: Response<Body>) -> String {
    response.into_body().text().await.unwrap()
}

/// Waits (on the loop) until `cell` holds a value.
async fn filled<T: Copy>(cell: &Cell<Option<T>>) -> T {
    loop {
        if let Some(value) = cell.get() {
            return value;
        }
        untangle::time::sleep(Duration::from_millis(1)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 100 Continue, then the body
// ---------------------------------------------------------------------------------------------

#[test]
fn body_follows_100_continue_and_the_connection_is_reused() {
    run(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let p = continuing(log.clone()).await;
        let client = Client::builder().expect_continue_timeout(NEVER).build();
        // A buffer too large to ride with the head, then a small one (which would).
        for body in [payload(200 * 1024), Bytes::from_static(b"abc")] {
            let response = client
                .send(post(p.url("/up"), body.clone(), true))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(text(response).await, "ok");
            let (head, received) = log.borrow_mut().pop().unwrap();
            assert!(expects_continue(&head), "{head}");
            assert_eq!(received, body, "the body arrives whole after the 100");
        }
        assert_eq!(p.accepted.get(), 1, "the connection is reused");
    });
}

#[test]
fn streamed_chunked_body_follows_100_continue() {
    run(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let p = continuing(log.clone()).await;
        let client = Client::builder().expect_continue_timeout(NEVER).build();
        let chunks = futures_lite::stream::iter(vec![
            Ok(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"world")),
        ]);
        let response = client
            .send(post(p.url("/"), Body::from_stream(chunks), true))
            .await
            .unwrap();
        assert_eq!(text(response).await, "ok");
        let (head, body) = log.borrow_mut().pop().unwrap();
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        assert_eq!(body, b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n");
    });
}

#[test]
fn interim_responses_before_and_after_100_are_skipped() {
    run(async {
        let received = Rc::new(RefCell::new(Vec::new()));
        let log = received.clone();
        let p = peer(move |mut c| {
            let log = log.clone();
            async move {
                let head = c.head().await.unwrap();
                c.send(b"HTTP/1.1 102 Processing\r\n\r\n").await;
                c.send(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n")
                    .await;
                c.send(CONTINUE).await;
                *log.borrow_mut() = c.body(&head).await.unwrap();
                c.send(b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n")
                    .await;
                c.send(b"HTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone")
                    .await;
                c.until_closed().await;
            }
        })
        .await;
        let client = Client::builder().expect_continue_timeout(NEVER).build();
        let response = client
            .send(post(p.url("/"), payload(1000), true))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(text(response).await, "done");
        assert_eq!(*received.borrow(), payload(1000));
    });
}

// ---------------------------------------------------------------------------------------------
// A server that ignores Expect
// ---------------------------------------------------------------------------------------------

#[test]
fn body_is_sent_after_the_timeout_when_the_server_ignores_expect() {
    run(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let record = log.clone();
        let p = peer(move |mut c| {
            let record = record.clone();
            async move {
                // Never a 100: the whole request is read as it comes, then answered.
                while let Some(head) = c.head().await {
                    let Some(body) = c.body(&head).await else {
                        return;
                    };
                    record.borrow_mut().push((head, body));
                    c.send(OK).await;
                }
            }
        })
        .await;
        let client = Client::builder()
            .expect_continue_timeout(Duration::from_millis(50))
            .build();
        for _ in 0..2 {
            let response = client
                .send(post(p.url("/"), payload(5000), true))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(text(response).await, "ok");
            let (head, body) = log.borrow_mut().pop().unwrap();
            assert!(expects_continue(&head), "{head}");
            assert_eq!(body, payload(5000));
        }
        assert_eq!(
            p.accepted.get(),
            1,
            "a body sent whole keeps the connection"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// A final response instead of 100
// ---------------------------------------------------------------------------------------------

#[test]
fn final_response_before_the_body_is_returned_and_the_body_never_sent() {
    run(async {
        let leftover = Rc::new(Cell::new(None));
        let first = leftover.clone();
        let p = peer(move |mut c| {
            let first = first.clone();
            async move {
                let head = c.head().await.unwrap();
                assert!(expects_continue(&head), "{head}");
                // Framed so that the connection could be kept, were the body not owed.
                c.send(b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 0\r\n\r\n")
                    .await;
                // Everything the client sends until it closes: none of the body.
                let n = c.until_closed().await;
                if first.get().is_none() {
                    first.set(Some(n));
                }
            }
        })
        .await;
        let client = Client::builder().expect_continue_timeout(NEVER).build();
        let response = client
            .send(post(p.url("/"), payload(1 << 20), true))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(text(response).await, "");
        assert_eq!(filled(&leftover).await, 0, "no byte of the body was sent");

        let response = client
            .send(post(p.url("/"), payload(10), true))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(p.accepted.get(), 2, "the connection was not reused");
    });
}

#[test]
fn expectation_failed_is_returned_and_the_body_stream_never_read() {
    run(async {
        let p = peer(|mut c| async move {
            c.head().await.unwrap();
            c.send(b"HTTP/1.1 417 Expectation Failed\r\ncontent-length: 0\r\n\r\n")
                .await;
            c.until_closed().await;
        })
        .await;
        let polled = Rc::new(Cell::new(false));
        let flag = polled.clone();
        let stream = futures_lite::stream::poll_fn(move |_| {
            flag.set(true);
            std::task::Poll::Ready(None::<std::io::Result<Bytes>>)
        });
        let client = Client::builder().expect_continue_timeout(NEVER).build();
        let response = client
            .send(post(p.url("/"), Body::from_stream(stream), true))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::EXPECTATION_FAILED);
        assert!(!polled.get(), "the body stream was never polled");
    });
}

// ---------------------------------------------------------------------------------------------
// A final response during the upload
// ---------------------------------------------------------------------------------------------

/// Large enough that the upload cannot fit in the socket buffers of both ends.
const LARGE: usize = 32 << 20;

/// How much of a body the mid-upload peers read before answering: 64 KiB, or all of a
/// smaller one.
fn part(head: &str) -> usize {
    content_length(head).unwrap().min(64 * 1024)
}

#[test]
fn final_response_mid_upload_stops_the_upload_and_is_returned() {
    run(async {
        let read = Rc::new(Cell::new(None));
        let count = read.clone();
        let p = peer(move |mut c| {
            let count = count.clone();
            async move {
                let head = c.head().await.unwrap();
                c.send(CONTINUE).await;
                count.set(Some(c.at_least(part(&head)).await));
                c.send(TOO_LARGE).await;
                // Reads nothing more, keeping the socket: the client's write can only stall,
                // and the response is what must end the request.
                untangle::time::sleep(NEVER).await;
            }
        })
        .await;
        let client = Client::builder().expect_continue_timeout(NEVER).build();
        let response = client
            .send(post(p.url("/"), payload(LARGE), true))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(text(response).await, "nope");
        assert!(filled(&read).await < LARGE);

        // The next request does not use the connection the upload left unfinished.
        let _ = client.send(post(p.url("/"), payload(10), true)).await;
        assert_eq!(p.accepted.get(), 2);
    });
}

#[test]
fn final_response_then_close_mid_upload_is_returned_or_an_io_error() {
    run(async {
        let p = peer(|mut c| async move {
            let head = c.head().await.unwrap();
            c.send(CONTINUE).await;
            c.at_least(part(&head)).await;
            c.send(b"HTTP/1.1 413 Content Too Large\r\nconnection: close\r\ncontent-length: 4\r\n\r\nnope")
                .await;
            // Dropped with unread bytes: the kernel resets the connection.
        })
        .await;
        let client = Client::builder().expect_continue_timeout(NEVER).build();
        match client.send(post(p.url("/"), payload(LARGE), true)).await {
            Ok(response) => {
                assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
                // The reset may cut the body short; the head is what matters here.
                let _ = response.into_body().bytes().await;
            }
            // Only when the reset beat the response to the client's read.
            Err(err) => assert_eq!(err.kind(), untangle::http::ErrorKind::Io, "{err}"),
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Which requests carry Expect
// ---------------------------------------------------------------------------------------------

#[test]
fn expect_continue_above_adds_the_header_to_large_known_bodies_only() {
    run(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let p = continuing(log.clone()).await;
        let client = Client::builder()
            .expect_continue_above(1024)
            .expect_continue_timeout(NEVER)
            .build();
        let stream = |len: usize| Body::from_stream(futures_lite::stream::once(Ok(payload(len))));
        let cases: Vec<(&str, Request<Body>, bool)> = vec![
            ("small buffer", post(p.url("/"), payload(10), false), false),
            (
                "at the limit",
                post(p.url("/"), payload(1024), false),
                false,
            ),
            ("large buffer", post(p.url("/"), payload(4096), false), true),
            (
                "chunked stream",
                post(p.url("/"), stream(4096), false),
                false,
            ),
            (
                "stream with a length",
                Request::post(p.url("/"))
                    .header(header::CONTENT_LENGTH, "4096")
                    .body(stream(4096))
                    .unwrap(),
                true,
            ),
        ];
        for (case, request, expected) in cases {
            let response = client.send(request).await.unwrap();
            assert_eq!(text(response).await, "ok", "{case}");
            let (head, _) = log.borrow_mut().pop().unwrap();
            assert_eq!(expects_continue(&head), expected, "{case}: {head}");
            assert_eq!(head.matches("expect:").count(), expected as usize, "{case}");
        }
        assert_eq!(p.accepted.get(), 1);
    });
}

#[test]
fn expect_on_a_bodiless_request_is_sent_and_nothing_waits() {
    run(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        // The peer sends no 100 to a request without a body: a client that waited for one
        // would wait past the hang guard.
        let p = continuing(log.clone()).await;
        let client = Client::builder().expect_continue_timeout(NEVER).build();
        let request = Request::get(p.url("/"))
            .header(header::EXPECT, "100-continue")
            .body(Body::empty())
            .unwrap();
        assert_eq!(text(client.send(request).await.unwrap()).await, "ok");
        let request = post(p.url("/"), Body::empty(), true);
        assert_eq!(text(client.send(request).await.unwrap()).await, "ok");
        for (head, _) in log.borrow().iter() {
            assert!(expects_continue(head), "sent as it is: {head}");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use futures_rustls::rustls;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::Arc;

    /// A TLS peer for "localhost"; returns its port, certificate and accept count.
    async fn tls_peer<F, Fut>(serve: F) -> (u16, CertificateDer<'static>, Rc<Cell<usize>>)
    where
        F: Fn(PeerConn) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = certified.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let acceptor = futures_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Rc::new(Cell::new(0));
        let count = accepted.clone();
        let serve = Rc::new(serve);
        untangle::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.set(count.get() + 1);
                let acceptor = acceptor.clone();
                let serve = serve.clone();
                untangle::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    serve(PeerConn {
                        stream: Box::new(tls),
                        buf: Vec::new(),
                    })
                    .await;
                })
                .detach();
            }
        })
        .detach();
        (port, cert, accepted)
    }

    /// Over TLS: an upload cut short by a `413` (its connection dropped), then two that
    /// follow their `100` on one kept connection.
    #[test]
    fn https_bodies_follow_100_continue_or_stop_at_a_final_response() {
        run(async {
            let (port, cert, accepted) = tls_peer(|mut c| async move {
                while let Some(head) = c.head().await {
                    c.send(CONTINUE).await;
                    if content_length(&head) == Some(LARGE) {
                        c.at_least(part(&head)).await;
                        c.send(TOO_LARGE).await;
                        untangle::time::sleep(NEVER).await;
                    }
                    let Some(body) = c.body(&head).await else {
                        return;
                    };
                    assert_eq!(body, payload(300 * 1024));
                    c.send(OK).await;
                }
            })
            .await;
            let client = Client::builder()
                .add_root_certificate(cert)
                .expect_continue_timeout(NEVER)
                .build();
            let url = format!("https://localhost:{port}/");
            let response = client
                .send(post(url.clone(), payload(LARGE), true))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(text(response).await, "nope");
            for _ in 0..2 {
                let request = post(url.clone(), payload(300 * 1024), true);
                assert_eq!(text(client.send(request).await.unwrap()).await, "ok");
            }
            assert_eq!(
                accepted.get(),
                2,
                "a new connection after the 413, then kept"
            );
        });
    }
}

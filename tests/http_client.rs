//! The HTTP/1.1 client against raw TCP peers that send exact (often tricky) bytes: one rule
//! per test, named after the rule.
//!
//! Each peer is a task on the test's own loop, accepting on 127.0.0.1:0, logging every
//! request it reads and counting connections. Timing appears only as generous hang guards and
//! as short configured client timeouts.

mod common;

use common::find;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
use untangle::http::{
    self, header, Body, Client, ErrorKind, Method, Request, Response, StatusCode, Uri,
};
use untangle::net::{TcpListener, TcpStream};

use common::run;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A raw peer: its address, how many connections it accepted, and every request it read.
#[derive(Clone)]
struct Peer {
    addr: SocketAddr,
    accepted: Rc<Cell<usize>>,
    requests: Rc<RefCell<Vec<String>>>,
}

impl Peer {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.get()
    }

    fn requests(&self) -> Vec<String> {
        self.requests.borrow().clone()
    }
}

/// One accepted connection of a peer.
struct PeerConn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// 0 for the peer's first connection, 1 for the second, …
    index: usize,
    requests: Rc<RefCell<Vec<String>>>,
}

impl PeerConn {
    /// Reads one request (head, and a Content-Length or chunked body); `None` at end of
    /// stream. The request is logged and returned as text.
    async fn request(&mut self) -> Option<String> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_lowercase();
        let body_end = if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|v| v.trim().parse::<usize>().unwrap())
        {
            while self.buf.len() < head_end + len {
                if !self.fill().await {
                    return None;
                }
            }
            head_end + len
        } else if head.contains("transfer-encoding: chunked") {
            loop {
                if let Some(i) = find(&self.buf[head_end..], b"0\r\n\r\n") {
                    break head_end + i + 5;
                }
                if !self.fill().await {
                    return None;
                }
            }
        } else {
            head_end
        };
        let request: Vec<u8> = self.buf.drain(..body_end).collect();
        let text = String::from_utf8(request).unwrap();
        self.requests.borrow_mut().push(text.clone());
        Some(text)
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0; 4096];
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
    }

    /// Waits until the client closes the connection (or it fails).
    async fn until_closed(&mut self) {
        while self.fill().await {}
    }
}

/// Starts a peer on the current loop; `serve` runs for each accepted connection (each in its
/// own task).
async fn peer<F, Fut>(serve: F) -> Peer
where
    F: Fn(PeerConn) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = Peer {
        addr: listener.local_addr().unwrap(),
        accepted: Rc::new(Cell::new(0)),
        requests: Rc::new(RefCell::new(Vec::new())),
    };
    let accepted = peer.accepted.clone();
    let requests = peer.requests.clone();
    untangle::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let index = accepted.get();
            accepted.set(index + 1);
            let conn = PeerConn {
                stream,
                buf: Vec::new(),
                index,
                requests: requests.clone(),
            };
            untangle::spawn(serve(conn)).detach();
        }
    })
    .detach();
    peer
}

/// A peer answering every request on every connection with `response`, keeping connections
/// open until the client closes them.
async fn answering(response: &'static [u8]) -> Peer {
    peer(move |mut c| async move {
        while c.request().await.is_some() {
            c.send(response).await;
        }
    })
    .await
}

/// A peer answering the first request of each connection with `response`, then closing.
async fn answering_once(response: &'static [u8]) -> Peer {
    peer(move |mut c| async move {
        if c.request().await.is_some() {
            c.send(response).await;
        }
    })
    .await
}

async fn text(response: Response<Body>) -> String {
    response.into_body().text().await.unwrap()
}

const OK_HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

// ---------------------------------------------------------------------------------------------
// Requests on the wire
// ---------------------------------------------------------------------------------------------

#[test]
fn get_sends_origin_form_host_with_port_and_user_agent() {
    run(async {
        let p = answering(OK_HELLO).await;
        let client = Client::new();
        let request = Request::builder()
            .uri(p.url("/a/b?x=1&y=2"))
            .header("x-custom", "kept")
            .body(Body::empty())
            .unwrap();
        let response = client.send(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "hello");
        let sent = &p.requests()[0];
        assert!(
            sent.starts_with("GET /a/b?x=1&y=2 HTTP/1.1\r\n"),
            "{sent:?}"
        );
        assert!(
            sent.contains(&format!("\r\nhost: {}\r\n", p.addr)),
            "{sent:?}"
        );
        assert!(sent.contains("\r\nx-custom: kept\r\n"), "{sent:?}");
        let agent = format!("\r\nuser-agent: untangle/{}\r\n", env!("CARGO_PKG_VERSION"));
        assert!(sent.contains(&agent), "{sent:?}");
        assert!(!sent.contains("content-length"), "{sent:?}");
        assert!(!sent.contains("transfer-encoding"), "{sent:?}");
    });
}

#[test]
fn url_without_path_requests_slash_and_user_agent_can_be_replaced() {
    run(async {
        let p = answering(OK_HELLO).await;
        let request = Request::builder()
            .uri(format!("http://{}", p.addr))
            .header(header::USER_AGENT, "mine/1")
            .body(Body::empty())
            .unwrap();
        Client::new().send(request).await.unwrap();
        let sent = &p.requests()[0];
        assert!(sent.starts_with("GET / HTTP/1.1\r\n"), "{sent:?}");
        assert!(sent.contains("\r\nuser-agent: mine/1\r\n"), "{sent:?}");
        assert!(!sent.contains("untangle/"), "{sent:?}");
    });
}

#[test]
fn known_size_body_is_sent_with_content_length_in_one_piece() {
    run(async {
        let p = answering(OK_HELLO).await;
        let request = Request::builder()
            .method(Method::PUT)
            .uri(p.url("/put"))
            .body(Body::from("payload"))
            .unwrap();
        Client::new().send(request).await.unwrap();
        let sent = &p.requests()[0];
        assert!(sent.starts_with("PUT /put HTTP/1.1\r\n"), "{sent:?}");
        assert!(sent.contains("\r\ncontent-length: 7\r\n"), "{sent:?}");
        assert!(sent.ends_with("\r\n\r\npayload"), "{sent:?}");
    });
}

#[test]
fn empty_post_sends_content_length_zero() {
    run(async {
        let p = answering(OK_HELLO).await;
        let request = Request::builder()
            .method(Method::POST)
            .uri(p.url("/post"))
            .body(Body::empty())
            .unwrap();
        Client::new().send(request).await.unwrap();
        let sent = &p.requests()[0];
        assert!(sent.contains("\r\ncontent-length: 0\r\n"), "{sent:?}");
    });
}

#[test]
fn streaming_body_is_sent_chunked() {
    run(async {
        let p = answering(OK_HELLO).await;
        let chunks = futures_lite::stream::iter(vec![
            Ok(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"streaming world")),
        ]);
        let request = Request::builder()
            .method(Method::POST)
            .uri(p.url("/upload"))
            .header(header::TRANSFER_ENCODING, "gzip")
            .body(Body::from_stream(chunks))
            .unwrap();
        Client::new().send(request).await.unwrap();
        let sent = &p.requests()[0];
        assert!(
            sent.contains("\r\ntransfer-encoding: chunked\r\n"),
            "{sent:?}"
        );
        assert!(!sent.contains("gzip"), "{sent:?}");
        assert!(
            sent.ends_with("\r\n\r\n6\r\nhello \r\nF\r\nstreaming world\r\n0\r\n\r\n"),
            "{sent:?}"
        );
    });
}

#[test]
fn streaming_body_with_content_length_header_is_sent_as_is() {
    run(async {
        let p = answering(OK_HELLO).await;
        let chunks = futures_lite::stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Ok(Bytes::from_static(b"cd")),
        ]);
        let request = Request::builder()
            .method(Method::POST)
            .uri(p.url("/upload"))
            .header(header::CONTENT_LENGTH, "4")
            .body(Body::from_stream(chunks))
            .unwrap();
        Client::new().send(request).await.unwrap();
        let sent = &p.requests()[0];
        assert!(sent.contains("\r\ncontent-length: 4\r\n"), "{sent:?}");
        assert!(!sent.contains("chunked"), "{sent:?}");
        assert!(sent.ends_with("\r\n\r\nabcd"), "{sent:?}");
    });
}

// ---------------------------------------------------------------------------------------------
// Response framing
// ---------------------------------------------------------------------------------------------

#[test]
fn chunked_body_with_extensions_and_trailers_is_decoded() {
    run(async {
        let p = answering(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;name=value;other\r\nhello\r\n7 ; x=\"q\"\r\n, world\r\n0;last\r\n\
              X-Trailer: 1\r\nX-Other: 2\r\n\r\n",
        )
        .await;
        let client = Client::new();
        let response = client.get(p.url("/")).await.unwrap();
        assert_eq!(response.into_body().size_hint(), None);
        let body = text(client.get(p.url("/")).await.unwrap()).await;
        assert_eq!(body, "hello, world");
    });
}

#[test]
fn close_delimited_body_is_read_until_eof() {
    run(async {
        let p = peer(|mut c| async move {
            c.request().await;
            c.send(b"HTTP/1.1 200 OK\r\n\r\nfirst part, ").await;
            untangle::time::sleep(Duration::from_millis(20)).await;
            c.send(b"second part").await;
        })
        .await;
        let client = Client::new();
        let body = text(client.get(p.url("/")).await.unwrap()).await;
        assert_eq!(body, "first part, second part");
        // Never pooled: the next request needs a new connection.
        let body = text(client.get(p.url("/")).await.unwrap()).await;
        assert_eq!(body, "first part, second part");
        assert_eq!(p.accepted(), 2);
    });
}

#[test]
fn interim_responses_are_skipped() {
    run(async {
        let p = answering(
            b"HTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
              HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nmade",
        )
        .await;
        let response = Client::new().get(p.url("/")).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert!(response.headers().get(header::LINK).is_none());
        assert_eq!(text(response).await, "made");
    });
}

#[test]
fn response_cut_mid_body_is_an_error_not_a_hang() {
    run(async {
        let p = answering_once(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b").await;
        let client = Client::new();
        let err = client
            .get(p.url("/"))
            .await
            .unwrap()
            .into_body()
            .bytes()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);

        // As a stream: the data, then an UnexpectedEof error, then the end.
        let mut body = client.get(p.url("/")).await.unwrap().into_body();
        assert_eq!(body.next().await.unwrap().unwrap(), "only ten b");
        let err = body.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(body.next().await.is_none());
    });
}

#[test]
fn chunked_response_cut_mid_body_is_an_error() {
    run(async {
        let p =
            answering_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel").await;
        let err = Client::new()
            .get(p.url("/"))
            .await
            .unwrap()
            .into_body()
            .bytes()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
    });
}

#[test]
fn malformed_chunked_body_is_bad_response() {
    run(async {
        let p = answering_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        let err = Client::new()
            .get(p.url("/"))
            .await
            .unwrap()
            .into_body()
            .bytes()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadResponse);
    });
}

#[test]
fn connection_closed_mid_head_is_an_error() {
    run(async {
        let p = answering_once(b"HTTP/1.1 200 OK\r\nContent-Le").await;
        let err = Client::new().get(p.url("/")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
    });
}

#[test]
fn surplus_bytes_after_content_length_are_never_a_response() {
    run(async {
        let p = peer(|mut c| async move {
            if c.index == 0 {
                c.request().await;
                c.send(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\
                      HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nwrong",
                )
                .await;
                c.until_closed().await;
            } else {
                while c.request().await.is_some() {
                    c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
                        .await;
                }
            }
        })
        .await;
        let client = Client::new();
        assert_eq!(text(client.get(p.url("/1")).await.unwrap()).await, "ok");
        assert_eq!(text(client.get(p.url("/2")).await.unwrap()).await, "fresh");
        assert_eq!(p.accepted(), 2);
    });
}

#[test]
fn invalid_content_length_is_bad_response() {
    run(async {
        for response in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nabc"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
        ] {
            let p = answering_once(response).await;
            let err = Client::new().get(p.url("/")).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadResponse, "{response:?}: {err}");
        }
    });
}

#[test]
fn malformed_status_line_is_bad_response() {
    run(async {
        let p = answering_once(b"HTTP/1.1 OK\r\n\r\n").await;
        let err = Client::new().get(p.url("/")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadResponse);
        let p = answering_once(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
        let err = Client::new().get(p.url("/")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadResponse);
    });
}

#[test]
fn head_response_with_content_length_has_no_body() {
    run(async {
        let p = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n").await;
        let client = Client::new();
        for _ in 0..2 {
            let request = Request::builder()
                .method(Method::HEAD)
                .uri(p.url("/"))
                .body(Body::empty())
                .unwrap();
            let response = client.send(request).await.unwrap();
            assert_eq!(response.headers()[header::CONTENT_LENGTH], "10");
            assert_eq!(response.into_body().bytes().await.unwrap(), "");
        }
        // The connection was in a clean state after each: reused.
        assert_eq!(p.accepted(), 1);
    });
}

#[test]
fn no_content_and_not_modified_have_no_body() {
    run(async {
        let p = peer(|mut c| async move {
            c.request().await;
            // Content-Length on a 304 describes the resource, not this message.
            c.send(b"HTTP/1.1 204 No Content\r\n\r\n").await;
            c.request().await;
            c.send(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n")
                .await;
            c.request().await;
            c.send(OK_HELLO).await;
            c.until_closed().await;
        })
        .await;
        let client = Client::new();
        let r = client.get(p.url("/")).await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(text(r).await, "");
        let r = client.get(p.url("/")).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(text(r).await, "");
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        assert_eq!(p.accepted(), 1);
    });
}

// ---------------------------------------------------------------------------------------------
// Keep-alive pool
// ---------------------------------------------------------------------------------------------

#[test]
fn keep_alive_connection_is_reused() {
    run(async {
        let p = answering(OK_HELLO).await;
        let client = Client::new();
        for _ in 0..3 {
            assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        }
        // A clone shares the pool.
        let clone = client.clone();
        assert_eq!(text(clone.get(p.url("/")).await.unwrap()).await, "hello");
        assert_eq!(p.accepted(), 1);
        assert_eq!(p.requests().len(), 4);
    });
}

#[test]
fn chunked_response_read_to_the_end_keeps_the_connection() {
    run(async {
        let p =
            answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
                .await;
        let client = Client::new();
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hi");
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hi");
        assert_eq!(p.accepted(), 1);
    });
}

#[test]
fn unread_body_is_not_reused() {
    run(async {
        let p = answering(OK_HELLO).await;
        let client = Client::new();
        let unread = client.get(p.url("/")).await.unwrap();
        drop(unread);
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        assert_eq!(p.accepted(), 2);
    });
}

#[test]
fn connection_close_response_is_not_reused() {
    run(async {
        let p =
            answering(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello")
                .await;
        let client = Client::new();
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        assert_eq!(p.accepted(), 2);
    });
}

#[test]
fn http10_response_without_keep_alive_is_not_reused() {
    run(async {
        let p = answering(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello").await;
        let client = Client::new();
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        assert_eq!(p.accepted(), 2);
    });
}

#[test]
fn stale_pooled_connection_is_retried_once_for_idempotent_requests() {
    run(async {
        // The first connection answers once, then reads the next request and closes without
        // answering (as a server whose keep-alive timeout fired at that moment would).
        let p = peer(|mut c| async move {
            if c.index == 0 {
                c.request().await;
                c.send(OK_HELLO).await;
                c.request().await;
            } else {
                while c.request().await.is_some() {
                    c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nretry")
                        .await;
                }
            }
        })
        .await;
        let client = Client::new();
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "retry");
        assert_eq!(p.accepted(), 2);
    });
}

#[test]
fn stale_pooled_connection_is_not_retried_for_post() {
    run(async {
        let p = peer(|mut c| async move {
            c.request().await;
            c.send(OK_HELLO).await;
            c.request().await;
        })
        .await;
        let client = Client::new();
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        let post = Request::builder()
            .method(Method::POST)
            .uri(p.url("/"))
            .body(Body::from("once"))
            .unwrap();
        let err = client.send(post).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert_eq!(p.accepted(), 1);
    });
}

#[test]
fn pooled_connection_closed_while_idle_is_not_used() {
    run(async {
        let p = peer(|mut c| async move {
            c.request().await;
            c.send(OK_HELLO).await;
            // Closes right after the response: the client sees the FIN before reusing.
        })
        .await;
        let client = Client::new();
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        untangle::time::sleep(Duration::from_millis(50)).await;
        let post = Request::builder()
            .method(Method::POST)
            .uri(p.url("/"))
            .body(Body::from("x"))
            .unwrap();
        assert_eq!(text(client.send(post).await.unwrap()).await, "hello");
        assert_eq!(p.accepted(), 2);
    });
}

#[test]
fn idle_connections_expire_after_pool_idle_timeout() {
    run(async {
        let closed = Rc::new(Cell::new(false));
        let seen = closed.clone();
        let p = peer(move |mut c| {
            let seen = seen.clone();
            async move {
                while c.request().await.is_some() {
                    c.send(OK_HELLO).await;
                }
                seen.set(true);
            }
        })
        .await;
        let client = Client::builder()
            .pool_idle_timeout(Duration::from_millis(50))
            .build();
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        // The pool closes the idle connection by itself.
        while !closed.get() {
            untangle::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        assert_eq!(p.accepted(), 2);
    });
}

#[test]
fn pool_max_idle_per_host_zero_disables_reuse() {
    run(async {
        let p = answering(OK_HELLO).await;
        let client = Client::builder().pool_max_idle_per_host(0).build();
        for _ in 0..2 {
            assert_eq!(text(client.get(p.url("/")).await.unwrap()).await, "hello");
        }
        assert_eq!(p.accepted(), 2);
    });
}

#[test]
fn pool_keeps_at_most_max_idle_per_host() {
    run(async {
        let p = answering(OK_HELLO).await;
        let client = Client::builder().pool_max_idle_per_host(1).build();
        // Two responses held at once need two connections; only one stays pooled.
        let a = client.get(p.url("/")).await.unwrap();
        let b = client.get(p.url("/")).await.unwrap();
        assert_eq!(text(a).await, "hello");
        assert_eq!(text(b).await, "hello");
        assert_eq!(p.accepted(), 2);
        for _ in 0..2 {
            let r = client.get(p.url("/")).await.unwrap();
            assert_eq!(text(r).await, "hello");
        }
        assert_eq!(p.accepted(), 2);
        let a = client.get(p.url("/")).await.unwrap();
        let b = client.get(p.url("/")).await.unwrap();
        drop((a, b));
        assert_eq!(p.accepted(), 3);
    });
}

// ---------------------------------------------------------------------------------------------
// Redirects
// ---------------------------------------------------------------------------------------------

#[test]
fn redirect_with_relative_location_is_followed() {
    run(async {
        let p = peer(|mut c| async move {
            while let Some(request) = c.request().await {
                if request.starts_with("GET /dir/start ") {
                    c.send(b"HTTP/1.1 301 Moved Permanently\r\nLocation: next?x=1\r\nContent-Length: 5\r\n\r\nmoved")
                        .await;
                } else {
                    c.send(OK_HELLO).await;
                }
            }
        })
        .await;
        let response = Client::new().get(p.url("/dir/start")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "hello");
        let requests = p.requests();
        assert_eq!(requests.len(), 2);
        assert!(
            requests[1].starts_with("GET /dir/next?x=1 HTTP/1.1\r\n"),
            "{requests:?}"
        );
        // The small redirect body was drained: one connection for both.
        assert_eq!(p.accepted(), 1);
    });
}

#[test]
fn see_other_turns_post_into_get() {
    run(async {
        let p = peer(|mut c| async move {
            while let Some(request) = c.request().await {
                if request.starts_with("POST ") {
                    c.send(
                        b"HTTP/1.1 303 See Other\r\nLocation: /done\r\nContent-Length: 0\r\n\r\n",
                    )
                    .await;
                } else {
                    c.send(OK_HELLO).await;
                }
            }
        })
        .await;
        let post = Request::builder()
            .method(Method::POST)
            .uri(p.url("/form"))
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("a=1"))
            .unwrap();
        let response = Client::new().send(post).await.unwrap();
        assert_eq!(text(response).await, "hello");
        let requests = p.requests();
        assert!(requests[0].ends_with("\r\n\r\na=1"), "{requests:?}");
        assert!(
            requests[1].starts_with("GET /done HTTP/1.1\r\n"),
            "{requests:?}"
        );
        assert!(!requests[1].contains("content-length"), "{requests:?}");
        assert!(!requests[1].contains("content-type"), "{requests:?}");
        assert!(requests[1].ends_with("\r\n\r\n"), "{requests:?}");
    });
}

/// A peer answering `/` with `status` and `Location: /elsewhere`, anything else with hello.
async fn redirecting(status: &'static str) -> Peer {
    peer(move |mut c| async move {
        while let Some(request) = c.request().await {
            if request.split(' ').nth(1) == Some("/") {
                let head = format!(
                    "HTTP/1.1 {status}\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
                );
                c.send(head.as_bytes()).await;
            } else {
                c.send(OK_HELLO).await;
            }
        }
    })
    .await
}

#[test]
fn redirects_of_other_methods_follow_the_browsers_rules() {
    run(async {
        // (status, method) -> the method of the follow-up, and whether the body goes again.
        let cases = [
            ("301 Moved Permanently", Method::POST, "GET", false),
            ("302 Found", Method::POST, "GET", false),
            ("302 Found", Method::PUT, "PUT", true),
            ("307 Temporary Redirect", Method::POST, "POST", true),
            ("308 Permanent Redirect", Method::DELETE, "DELETE", true),
        ];
        for (status, method, next, body_again) in cases {
            let p = redirecting(status).await;
            let request = Request::builder()
                .method(method.clone())
                .uri(p.url("/"))
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("x=1"))
                .unwrap();
            let response = Client::new().send(request).await.unwrap();
            assert_eq!(text(response).await, "hello", "{status} {method}");
            let requests = p.requests();
            assert_eq!(requests.len(), 2, "{status} {method}: {requests:?}");
            let second = &requests[1];
            assert!(
                second.starts_with(&format!("{next} /elsewhere HTTP/1.1\r\n")),
                "{status} {method}: {second:?}"
            );
            if body_again {
                assert!(second.ends_with("\r\n\r\nx=1"), "{second:?}");
                assert!(second.contains("content-length: 3\r\n"), "{second:?}");
                assert!(second.contains("content-type: text/plain"), "{second:?}");
            } else {
                assert!(second.ends_with("\r\n\r\n"), "{second:?}");
                assert!(!second.contains("content-length"), "{second:?}");
                assert!(!second.contains("content-type"), "{second:?}");
            }
        }
    });
}

#[test]
fn a_streamed_body_is_not_sent_twice_on_a_307() {
    run(async {
        let p = redirecting("307 Temporary Redirect").await;
        let chunks = futures_lite::stream::iter(vec![Ok(Bytes::from_static(b"once"))]);
        let post = Request::builder()
            .method(Method::POST)
            .uri(p.url("/"))
            .body(Body::from_stream(chunks))
            .unwrap();
        let response = Client::new().send(post).await.unwrap();
        assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(p.requests().len(), 1);
    });
}

#[test]
fn too_many_redirects_is_an_error() {
    run(async {
        let p =
            answering(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n").await;
        let client = Client::builder().redirect_limit(3).build();
        let err = client.get(p.url("/")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooManyRedirects);
        // The first request and three redirects followed.
        assert_eq!(p.requests().len(), 4);
    });
}

#[test]
fn redirect_limit_zero_returns_the_redirect() {
    run(async {
        let p = answering(
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: /new\r\nContent-Length: 5\r\n\r\nmoved",
        )
        .await;
        let client = Client::builder().redirect_limit(0).build();
        let response = client.get(p.url("/")).await.unwrap();
        assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(response.headers()[header::LOCATION], "/new");
        assert_eq!(text(response).await, "moved");
        assert_eq!(p.requests().len(), 1);
    });
}

#[test]
fn redirect_to_another_host_drops_credentials() {
    run(async {
        let target = answering(OK_HELLO).await;
        let location: &'static str = Box::leak(target.url("/landing").into_boxed_str());
        let origin = peer(move |mut c| async move {
            while c.request().await.is_some() {
                let response = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
                );
                c.send(response.as_bytes()).await;
            }
        })
        .await;
        let request = Request::builder()
            .uri(origin.url("/start"))
            .header(header::AUTHORIZATION, "Bearer secret")
            .header(header::COOKIE, "session=1")
            .header("x-other", "kept")
            .body(Body::empty())
            .unwrap();
        let response = Client::new().send(request).await.unwrap();
        assert_eq!(text(response).await, "hello");
        let first = &origin.requests()[0];
        assert!(first.contains("authorization: Bearer secret"), "{first:?}");
        let second = &target.requests()[0];
        assert!(
            second.starts_with("GET /landing HTTP/1.1\r\n"),
            "{second:?}"
        );
        assert!(
            second.contains(&format!("\r\nhost: {}\r\n", target.addr)),
            "{second:?}"
        );
        assert!(second.contains("\r\nx-other: kept\r\n"), "{second:?}");
        assert!(!second.contains("authorization"), "{second:?}");
        assert!(!second.contains("cookie"), "{second:?}");
    });
}

#[test]
fn redirect_on_the_same_host_keeps_credentials() {
    run(async {
        let p = peer(|mut c| async move {
            while let Some(request) = c.request().await {
                if request.starts_with("GET /start ") {
                    c.send(b"HTTP/1.1 308 Permanent Redirect\r\nLocation: /end\r\nContent-Length: 0\r\n\r\n")
                        .await;
                } else {
                    c.send(OK_HELLO).await;
                }
            }
        })
        .await;
        let request = Request::builder()
            .uri(p.url("/start"))
            .header(header::AUTHORIZATION, "Bearer secret")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            text(Client::new().send(request).await.unwrap()).await,
            "hello"
        );
        assert!(p.requests()[1].contains("authorization: Bearer secret"));
    });
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn refused_connection_is_a_connect_error() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = Client::new()
            .get(format!("http://{addr}/"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect);
        assert!(err.is_connect());
        assert!(std::error::Error::source(&err).is_some());
    });
}

#[test]
fn silent_server_is_a_timeout() {
    run(async {
        let p = peer(|mut c| async move {
            c.request().await;
            c.until_closed().await;
        })
        .await;
        let client = Client::builder()
            .timeout(Duration::from_millis(100))
            .build();
        let err = client.get(p.url("/")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(err.is_timeout());
    });
}

#[test]
fn timeout_covers_reading_the_body() {
    run(async {
        let p = peer(|mut c| async move {
            c.request().await;
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
                .await;
            c.until_closed().await;
        })
        .await;
        let client = Client::builder()
            .timeout(Duration::from_millis(500))
            .build();
        let response = client.get(p.url("/")).await.unwrap();
        let err = response.into_body().bytes().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
    });
}

#[test]
fn connect_timeout_limits_the_tls_handshake() {
    // A peer that accepts TCP but never speaks TLS: only the connect timeout ends the wait.
    run(async {
        let p = peer(|mut c| async move { c.until_closed().await }).await;
        let client = Client::builder()
            .connect_timeout(Duration::from_millis(100))
            .build();
        let err = client
            .get(format!("https://{}/", p.addr))
            .await
            .unwrap_err();
        let expected = if cfg!(feature = "tls") {
            ErrorKind::Timeout
        } else {
            ErrorKind::Tls
        };
        assert_eq!(err.kind(), expected, "{err}");
    });
}

#[test]
fn body_over_max_body_bytes_is_body_too_large() {
    run(async {
        let p =
            answering(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789").await;
        let client = Client::builder().max_body_bytes(10).build();
        let err = text_err(client.get(p.url("/")).await.unwrap()).await;
        assert_eq!(err, ErrorKind::BodyTooLarge);

        let p = answering(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n",
        )
        .await;
        let err = text_err(client.get(p.url("/")).await.unwrap()).await;
        assert_eq!(err, ErrorKind::BodyTooLarge);

        // At the limit is fine.
        let p = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789").await;
        assert_eq!(
            text(client.get(p.url("/")).await.unwrap()).await,
            "0123456789"
        );
    });
}

async fn text_err(response: Response<Body>) -> ErrorKind {
    response.into_body().bytes().await.unwrap_err().kind()
}

#[test]
fn invalid_urls_are_invalid_url_errors() {
    run(async {
        let client = Client::new();
        for url in [
            "not a url",
            "/relative/path",
            "example.com/no-scheme",
            "ftp://example.com/",
            "http://user:password@example.com/",
            "http://example.com:99999/",
        ] {
            let err = client.get(url).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{url}: {err}");
        }
        let err = client.get(String::from("mailto:x@y")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidUrl);
        let err = http::get("/only/a/path").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidUrl);
    });
}

#[cfg(not(feature = "tls"))]
#[test]
fn https_without_tls_feature_is_a_tls_error() {
    run(async {
        let p = peer(|mut c| async move { c.until_closed().await }).await;
        let err = Client::new()
            .get(format!("https://{}/", p.addr))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tls);
        assert!(err.to_string().contains("without TLS support"), "{err}");
    });
}

// ---------------------------------------------------------------------------------------------
// The default client, and our own server
// ---------------------------------------------------------------------------------------------

#[test]
fn get_uses_a_default_client_with_a_shared_pool() {
    run(async {
        let p = answering(OK_HELLO).await;
        let url = p.url("/s");
        assert_eq!(text(http::get(url.as_str()).await.unwrap()).await, "hello");
        assert_eq!(text(http::get(url.clone()).await.unwrap()).await, "hello");
        let uri: Uri = url.parse().unwrap();
        assert_eq!(text(http::get(uri).await.unwrap()).await, "hello");
        assert_eq!(p.accepted(), 1);
    });
}

#[test]
fn client_talks_to_our_server() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        untangle::spawn(http::Server::from_listener(listener).serve(
            |req: Request<Body>| async move {
                let path = req.uri().path().to_string();
                let body = req.into_body().bytes().await.unwrap_or_default();
                format!("{path}:{}", body.len())
            },
        ))
        .detach();
        let client = Client::new();
        let body = text(client.get(format!("http://{addr}/a")).await.unwrap()).await;
        assert_eq!(body, "/a:0");
        let chunks = futures_lite::stream::iter((0..10).map(|_| Ok(Bytes::from(vec![b'x'; 1000]))));
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{addr}/upload"))
            .body(Body::from_stream(chunks))
            .unwrap();
        assert_eq!(
            text(client.send(request).await.unwrap()).await,
            "/upload:10000"
        );
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

    /// A TLS peer for "localhost" answering each request with `OK_HELLO`; returns its port and
    /// certificate.
    async fn tls_peer() -> (u16, CertificateDer<'static>, Rc<Cell<usize>>) {
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
        untangle::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.set(count.get() + 1);
                let acceptor = acceptor.clone();
                untangle::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0; 4096];
                    loop {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        while let Some(end) = find(&buf, b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            if tls.write_all(OK_HELLO).await.is_err() || tls.flush().await.is_err()
                            {
                                return;
                            }
                        }
                    }
                })
                .detach();
            }
        })
        .detach();
        (port, cert, accepted)
    }

    #[test]
    fn https_round_trip_with_an_added_root() {
        run(async {
            let (port, cert, accepted) = tls_peer().await;
            let client = Client::builder().add_root_certificate(cert).build();
            for _ in 0..2 {
                let response = client
                    .get(format!("https://localhost:{port}/"))
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                assert_eq!(text(response).await, "hello");
            }
            assert_eq!(accepted.get(), 1, "the TLS connection is pooled and reused");
        });
    }

    #[test]
    fn root_certificate_can_be_given_as_der_bytes() {
        run(async {
            let (port, cert, _) = tls_peer().await;
            let client = Client::builder()
                .add_root_certificate(cert.as_ref().to_vec())
                .build();
            let response = client
                .get(format!("https://localhost:{port}/"))
                .await
                .unwrap();
            assert_eq!(text(response).await, "hello");
        });
    }

    #[test]
    fn untrusted_certificate_is_a_tls_error() {
        run(async {
            let (port, _, _) = tls_peer().await;
            let err = Client::new()
                .get(format!("https://localhost:{port}/"))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
        });
    }

    #[test]
    fn certificate_for_another_name_is_a_tls_error() {
        run(async {
            let (port, cert, _) = tls_peer().await;
            let client = Client::builder().add_root_certificate(cert).build();
            // The certificate names "localhost", not 127.0.0.1.
            let err = client
                .get(format!("https://127.0.0.1:{port}/"))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
        });
    }

    #[test]
    fn invalid_root_certificate_is_a_tls_error() {
        run(async {
            let (port, _, _) = tls_peer().await;
            let client = Client::builder()
                .add_root_certificate(b"not a certificate".to_vec())
                .build();
            let err = client
                .get(format!("https://localhost:{port}/"))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
        });
    }
}

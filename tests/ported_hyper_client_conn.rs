//! hyper's client connection tests (`tests/client.rs`: `dispatch_impl` and `conn`) ported to
//! untangle's HTTP/1.1 client: what happens to a connection when a body, a response future
//! or the client is dropped, when it is reused, upgraded, or its request body fails. The
//! server is a thread with std sockets, so it sees exactly what reaches the wire (an end of
//! stream when the client closes).
//!
//! Not ported, and why:
//! - `connect_call_is_lazy`, `alpn_h2`, `http2_*`, `h2_connect*`: custom connectors and
//!   HTTP/2, which this client does not have.
//! - `conn::pipeline`: our pool never hands out a connection that is busy.
//! - `socket_disconnect_closes_idle_conn`: hyper's idle connection task notices the server's
//!   close at once; ours is noticed when the connection is next checked out
//!   (`tests/http_client.rs`: `pooled_connection_closed_while_idle_is_not_used`) or expires. The difference is only when a dead socket's descriptor is released.

mod common;

use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt, StreamExt};
use untangle::http::{upgrade, Body, Client, ErrorKind, Method, Request};

use common::run;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

struct Sock(TcpStream);

impl Sock {
    /// Reads until `\r\n\r\n` and returns the head (the request's body is not read).
    fn head(&mut self) -> String {
        let mut head = Vec::new();
        let mut byte = [0];
        while !head.ends_with(b"\r\n\r\n") {
            match self.0.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                other => panic!("reading a head ({:?} so far): {other:?}", s(&head)),
            }
        }
        String::from_utf8(head).unwrap()
    }

    /// Reads exactly `expected.len()` bytes and asserts they are `expected`.
    fn expect(&mut self, expected: &[u8]) {
        let mut buf = vec![0; expected.len()];
        self.0
            .read_exact(&mut buf)
            .expect("read the expected bytes");
        assert_eq!(s(&buf), s(expected));
    }

    fn reply(&mut self, bytes: impl AsRef<[u8]>) {
        self.0.write_all(bytes.as_ref()).expect("write the reply");
    }

    /// Waits (within the read timeout) for the client to close; panics if it sends bytes
    /// instead or never closes.
    fn assert_closed_by_client(&mut self) {
        let mut buf = [0; 1024];
        match self.0.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == IoKind::ConnectionReset => {}
            Ok(n) => panic!("expected the client to close, got {:?}", s(&buf[..n])),
            Err(e) => panic!("expected the client to close: {e}"),
        }
    }

    /// The client has not closed (nor sent anything) right now.
    fn assert_open_and_idle(&mut self) {
        self.0.set_nonblocking(true).unwrap();
        let mut buf = [0; 16];
        let got = self.0.read(&mut buf);
        self.0.set_nonblocking(false).unwrap();
        match got {
            Err(e) if e.kind() == IoKind::WouldBlock => {}
            other => panic!("expected an idle open connection, got {other:?}"),
        }
    }
}

fn s(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("<not utf-8>")
}

/// A server thread on 127.0.0.1:0 running `script` with an `accept` function.
fn scripted<F>(script: F) -> (SocketAddr, thread::JoinHandle<()>)
where
    F: FnOnce(&mut dyn FnMut() -> Sock) + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let mut accept = || {
            let (sock, _) = listener.accept().expect("accept");
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            sock.set_write_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            Sock(sock)
        };
        script(&mut accept);
    });
    (addr, handle)
}

const REPLY_OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

/// A one-shot signal from the server thread to the test's loop.
fn signal() -> (async_channel::Sender<()>, async_channel::Receiver<()>) {
    async_channel::bounded(1)
}

// ---------------------------------------------------------------------------------------------
// Dropping things closes connections
// ---------------------------------------------------------------------------------------------

#[test]
fn drop_body_before_eof_closes_connection() {
    let (addr, server) = scripted(|accept| {
        let mut sock = accept();
        sock.head();
        let body = vec![b'x'; 128 * 1024];
        sock.reply(format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        // The client may close before all is written: a write error is expected then.
        let _ = sock.0.write_all(&body);
        sock.assert_closed_by_client();
    });
    run(async {
        let client = Client::new();
        let res = client.get(format!("http://{addr}/a")).await.unwrap();
        assert_eq!(res.status(), 200);
        drop(res);
        // The client lives on: only the body's drop can have closed the connection.
        server.join().unwrap();
        drop(client);
    });
}

#[test]
fn dropped_client_closes_idle_connections() {
    let (checked, check) = signal();
    let (read_tx, read) = std::sync::mpsc::channel::<()>();
    let (dropped_tx, dropped) = std::sync::mpsc::channel::<()>();
    let (addr, server) = scripted(move |accept| {
        let mut sock = accept();
        sock.head();
        sock.reply("HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n");
        sock.reply([b'x'; 64]);
        read.recv().unwrap();
        // The body was read: the connection is idle in the pool, not closed.
        sock.assert_open_and_idle();
        checked.send_blocking(()).unwrap();
        dropped.recv().unwrap();
        sock.assert_closed_by_client();
    });
    run(async {
        let client = Client::new();
        let res = client.get(format!("http://{addr}/a")).await.unwrap();
        assert_eq!(res.into_body().bytes().await.unwrap().len(), 64);
        read_tx.send(()).unwrap();
        check.recv().await.unwrap();
        drop(client);
        dropped_tx.send(()).unwrap();
    });
    server.join().unwrap();
}

#[test]
fn socket_disconnect_closes_idle_conn() {
    // The server ends its side of an idle keep-alive connection: the client closes its own
    // at once (the pool watches idle connections), long before the idle timeout.
    let (closed_tx, closed) = signal();
    let (addr, server) = scripted(move |accept| {
        let mut sock = accept();
        sock.head();
        sock.reply(REPLY_OK);
        sock.0.shutdown(std::net::Shutdown::Write).unwrap();
        sock.assert_closed_by_client();
        closed_tx.send_blocking(()).unwrap();
    });
    run(async {
        let client = Client::new();
        let res = client.get(format!("http://{addr}/a")).await.unwrap();
        res.into_body().bytes().await.unwrap();
        // The loop runs (the client alive) until the server saw the close.
        closed.recv().await.unwrap();
        drop(client);
    });
    server.join().unwrap();
}

#[test]
fn drop_response_future_closes_in_progress_connection() {
    let (got_tx, got) = signal();
    let (addr, server) = scripted(move |accept| {
        let mut sock = accept();
        sock.head();
        // No response head: a slow server.
        got_tx.send_blocking(()).unwrap();
        sock.assert_closed_by_client();
    });
    run(async {
        let client = Client::new();
        let send = async {
            client.get(format!("http://{addr}/a")).await.unwrap();
            unreachable!("the server never answers");
        };
        future::or(send, async { got.recv().await.unwrap() }).await;
        server.join().unwrap();
        drop(client);
    });
}

#[test]
fn drop_response_body_closes_in_progress_connection() {
    let (addr, server) = scripted(|accept| {
        let mut sock = accept();
        sock.head();
        sock.reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        sock.assert_closed_by_client();
    });
    run(async {
        let client = Client::new();
        let res = client.get(format!("http://{addr}/a")).await.unwrap();
        drop(res);
        server.join().unwrap();
        drop(client);
    });
}

#[test]
fn no_keep_alive_closes_connection() {
    let (addr, server) = scripted(|accept| {
        let mut sock = accept();
        sock.head();
        sock.reply(REPLY_OK);
        sock.assert_closed_by_client();
    });
    run(async {
        let client = Client::builder().pool_max_idle_per_host(0).build();
        let res = client.get(format!("http://{addr}/a")).await.unwrap();
        assert!(res.into_body().bytes().await.unwrap().is_empty());
        server.join().unwrap();
        drop(client);
    });
}

#[test]
fn connection_close_request_closes_after_its_response() {
    let (addr, server) = scripted(|accept| {
        let mut sock = accept();
        let head = sock.head();
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        sock.reply(REPLY_OK);
        sock.assert_closed_by_client();
    });
    run(async {
        let client = Client::new();
        let request = Request::builder()
            .uri(format!("http://{addr}/a"))
            .header("connection", "close")
            .body(Body::empty())
            .unwrap();
        client
            .send(request)
            .await
            .unwrap()
            .into_body()
            .bytes()
            .await
            .unwrap();
        server.join().unwrap();
        drop(client);
    });
}

// ---------------------------------------------------------------------------------------------
// Keep-alive
// ---------------------------------------------------------------------------------------------

#[test]
fn client_keep_alive_0() {
    let (addr, server) = scripted(|accept| {
        let mut sock = accept();
        assert!(sock.head().starts_with("GET /a HTTP/1.1\r\n"));
        sock.reply(REPLY_OK);
        assert!(sock.head().starts_with("GET /b HTTP/1.1\r\n"));
        sock.reply(REPLY_OK);
    });
    run(async {
        let client = Client::new();
        for path in ["a", "b"] {
            let res = client.get(format!("http://{addr}/{path}")).await.unwrap();
            res.into_body().bytes().await.unwrap();
        }
    });
    server.join().unwrap();
}

#[test]
fn client_keep_alive_extra_body_after_head_is_not_reused() {
    let (addr, server) = scripted(|accept| {
        let mut sock = accept();
        assert!(sock.head().starts_with("HEAD /a HTTP/1.1\r\n"));
        // "hello" after a HEAD's head is not a response: the connection cannot be pooled.
        sock.reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        let mut second = accept();
        assert!(second.head().starts_with("GET /b HTTP/1.1\r\n"));
        second.reply(REPLY_OK);
    });
    run(async {
        let client = Client::new();
        let head = Request::builder()
            .method(Method::HEAD)
            .uri(format!("http://{addr}/a"))
            .body(Body::empty())
            .unwrap();
        let res = client.send(head).await.unwrap();
        assert_eq!(res.headers()["content-length"], "5");
        assert!(res.into_body().bytes().await.unwrap().is_empty());
        let res = client.get(format!("http://{addr}/b")).await.unwrap();
        res.into_body().bytes().await.unwrap();
    });
    server.join().unwrap();
}

#[test]
fn client_keep_alive_when_response_before_request_body_ends() {
    // The server answers `200` with no body as soon as it has the head, then reads the body:
    // a 2xx keeps the connection open, so the body still goes out whole and the connection
    // is reused (hyper, curl). Only an answer that refuses the body (>= 300, or a close)
    // stops the upload.
    let (answered_tx, answered) = signal();
    let (addr, server) = scripted(move |accept| {
        let mut sock = accept();
        assert!(sock.head().starts_with("POST /a HTTP/1.1\r\n"));
        sock.reply(REPLY_OK);
        answered_tx.send_blocking(()).unwrap();
        sock.expect(b"7\r\nhello a\r\n0\r\n\r\n");
        assert!(sock.head().starts_with("GET /b HTTP/1.1\r\n"));
        sock.reply(REPLY_OK);
    });
    run(async {
        let client = Client::new();
        let delayed = futures_lite::stream::once_future(async move {
            answered.recv().await.unwrap();
            // So that the answer is read before the body (as hyper's test does); should the
            // body come first on a slow machine, the test still passes, only the early
            // answer path is not taken.
            untangle::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, std::io::Error>(Bytes::from_static(b"hello a"))
        });
        let post = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{addr}/a"))
            .body(Body::from_stream(delayed))
            .unwrap();
        let res = client.send(post).await.unwrap();
        assert_eq!(res.status(), 200);
        res.into_body().bytes().await.unwrap();
        let res = client.get(format!("http://{addr}/b")).await.unwrap();
        res.into_body().bytes().await.unwrap();
    });
    server.join().unwrap();
}

#[test]
fn a_2xx_with_a_body_that_ends_mid_upload_still_gets_the_rest_of_the_upload() {
    // The server answers `200` with a short body as soon as it has the head, then reads the
    // request body. The response body ends before the upload: its stream ends only once the
    // rest has gone out (the server accepted the request and may be reading it), and the
    // connection is then reused.
    let (answered_tx, answered) = signal();
    let (addr, server) = scripted(move |accept| {
        let mut sock = accept();
        assert!(sock.head().starts_with("POST /a HTTP/1.1\r\n"));
        sock.reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        answered_tx.send_blocking(()).unwrap();
        sock.expect(b"5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n");
        assert!(sock.head().starts_with("GET /b HTTP/1.1\r\n"));
        sock.reply(REPLY_OK);
    });
    run(async {
        let client = Client::new();
        let first =
            futures_lite::stream::once(Ok::<_, std::io::Error>(Bytes::from_static(b"first")));
        let second = futures_lite::stream::once_future(async move {
            answered.recv().await.unwrap();
            // So that the whole response is read before the rest of the body is ready.
            untangle::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, std::io::Error>(Bytes::from_static(b"second"))
        });
        let post = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{addr}/a"))
            .body(Body::from_stream(first.chain(second)))
            .unwrap();
        let res = client.send(post).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(&res.into_body().bytes().await.unwrap()[..], b"ok");
        let res = client.get(format!("http://{addr}/b")).await.unwrap();
        res.into_body().bytes().await.unwrap();
    });
    server.join().unwrap();
}

#[test]
fn a_2xx_instead_of_100_continue_still_gets_the_body() {
    // A server that accepts at once, without `100 Continue`, and keeps the connection open
    // reads the body next (RFC 9110 §10.1.1); the connection is then reused.
    let (addr, server) = scripted(|accept| {
        let mut sock = accept();
        let head = sock.head();
        assert!(head.contains("\r\nexpect: 100-continue\r\n"), "{head}");
        sock.reply("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
        sock.expect(b"payload");
        assert!(sock.head().starts_with("GET /b HTTP/1.1\r\n"));
        sock.reply(REPLY_OK);
    });
    run(async {
        // A long wait for 100: only the 201 can let the body go early.
        let client = Client::builder()
            .expect_continue_timeout(Duration::from_secs(20))
            .build();
        let post = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{addr}/a"))
            .header("expect", "100-continue")
            .body(Body::from("payload"))
            .unwrap();
        assert_eq!(client.send(post).await.unwrap().status(), 201);
        let res = client.get(format!("http://{addr}/b")).await.unwrap();
        res.into_body().bytes().await.unwrap();
    });
    server.join().unwrap();
}

#[test]
fn client_keep_alive_eager_when_chunked() {
    // The body's last chunk is read, but the body is dropped without being polled for the
    // `0\r\n\r\n` end that is already buffered: the connection is still reused.
    let (addr, server) = scripted(|accept| {
        let mut sock = accept();
        sock.head();
        sock.reply("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        assert!(sock.head().starts_with("GET /b HTTP/1.1\r\n"));
        sock.reply(REPLY_OK);
    });
    run(async {
        let client = Client::new();
        let res = client.get(format!("http://{addr}/a")).await.unwrap();
        assert_eq!(res.headers()["transfer-encoding"], "chunked");
        let mut body = res.into_body();
        assert_eq!(body.next().await.unwrap().unwrap(), "hello");
        drop(body);
        let res = client.get(format!("http://{addr}/b")).await.unwrap();
        res.into_body().bytes().await.unwrap();
    });
    server.join().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Upgrades, aborted bodies, folded headers
// ---------------------------------------------------------------------------------------------

#[test]
fn client_upgrade_keeps_the_bytes_after_the_101() {
    let (addr, server) = scripted(|accept| {
        let mut sock = accept();
        let head = sock.head();
        assert!(head.contains("\r\nupgrade: foobar\r\n"), "{head}");
        sock.reply("HTTP/1.1 101 Switching Protocols\r\nUpgrade: foobar\r\n\r\nfoobar=ready");
        sock.expect(b"foo=bar");
        sock.reply("bar=foo");
    });
    run(async {
        let request = Request::builder()
            .uri(format!("http://{addr}/up"))
            .header("connection", "upgrade")
            .header("upgrade", "foobar")
            .body(Body::empty())
            .unwrap();
        let res = Client::new().send(request).await.unwrap();
        assert_eq!(res.status(), 101);
        assert_eq!(res.headers()["upgrade"], "foobar");
        let mut io = upgrade::on(res).await.unwrap();
        let mut ready = [0; 12];
        io.read_exact(&mut ready).await.unwrap();
        assert_eq!(&ready, b"foobar=ready");
        io.write_all(b"foo=bar").await.unwrap();
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"bar=foo");
    });
    server.join().unwrap();
}

#[test]
fn aborted_body_isnt_completed() {
    // A request body stream that fails mid-way must not look complete on the wire: no
    // terminating chunk, the connection just closes.
    let (addr, server) = scripted(|accept| {
        let mut sock = accept();
        let head = sock.head();
        assert!(
            head.contains("\r\ntransfer-encoding: chunked\r\n"),
            "{head}"
        );
        sock.expect(b"5\r\nhello\r\n");
        sock.assert_closed_by_client();
    });
    run(async {
        let chunks = futures_lite::stream::iter([
            Ok(Bytes::from_static(b"hello")),
            Err(std::io::Error::other("the source failed")),
        ]);
        let post = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{addr}/"))
            .body(Body::from_stream(chunks))
            .unwrap();
        let err = Client::new().send(post).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Request, "{err:?}");
    });
    server.join().unwrap();
}

#[test]
fn obs_fold_in_a_response_header_is_replaced_by_spaces() {
    // RFC 9112 §5.2: a user agent MUST replace each obs-fold of a response with SP before
    // interpreting the value (hyper refuses such responses unless told to allow them).
    let (addr, server) = scripted(|accept| {
        let mut sock = accept();
        sock.head();
        sock.reply("HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\n\tc\r\nContent-Length: 2\r\n\r\nok");
    });
    run(async {
        let res = Client::new().get(format!("http://{addr}/")).await.unwrap();
        let folded = res.headers()["x-folded"].as_bytes().to_vec();
        assert_eq!(res.into_body().bytes().await.unwrap(), "ok");
        let words: Vec<_> = s(&folded).split(' ').filter(|w| !w.is_empty()).collect();
        assert_eq!(words, ["a", "b", "c"], "{:?}", s(&folded));
        assert!(!folded.contains(&b'\r') && !folded.contains(&b'\n'));
    });
    server.join().unwrap();
}

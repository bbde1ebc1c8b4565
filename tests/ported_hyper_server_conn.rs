//! hyper's own HTTP/1 server tests (`tests/server.rs` of hyper 1.x), ported to untangle's
//! server: the connection-level ones — graceful shutdown, end of stream before or inside a
//! head, the header-read timeout, upgrades — plus request bodies read partly and then dropped.
//! The message-level ones are in `ported_hyper_server.rs`.
//!
//! hyper drives one `serve_connection` future per test and checks its `Result`; our server
//! owns its connections, so the ports check what the client sees instead (a response, or the
//! close and nothing before it). Left out, and why:
//! - `header_read_timeout_slow_writes` / `_multiple_requests`: `tests/slowloris.rs` and
//!   `http_server.rs::header_read_timeout_applies_to_later_requests` (their form here would
//!   need sleeps of seconds).
//! - `header_read_timeout_as_idle_timeout`: our idle timeout is its own setting,
//!   `keep_alive_timeout` (`http_server.rs::keep_alive_timeout_closes_idle_connection_silently`).
//! - `http1_allow_half_close`, `disconnect_after_reading_request_before_responding`:
//!   `http_framing.rs::half_close_lets_a_half_closed_client_get_its_response` and
//!   `half_closed_client_is_gone_by_default`.
//! - `disable_keep_alive_post_request`: `http_server.rs::graceful_shutdown_finishes_in_flight_and_closes_idle`.
//! - `http_connect`, `http_connect_new`: `http_upgrade.rs::a_2xx_to_connect_is_a_tunnel_...`.
//! - `h2_connect*`: HTTP/2 only.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::HANG_GUARD;
use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
use untangle::http::{upgrade, Body, Request, Response, Server, StatusCode};

/// A server on its own thread that can be told to shut down gracefully. After `serve`
/// returns, the thread's loop keeps running until the test ends, so that tasks holding
/// upgraded connections live on.
struct Running {
    addr: SocketAddr,
    stop: async_channel::Sender<()>,
    exited: mpsc::Receiver<std::io::Result<()>>,
}

impl Running {
    fn shut_down(&self) {
        self.stop.send_blocking(()).unwrap();
    }

    fn wait_exit(&self) {
        self.exited
            .recv_timeout(HANG_GUARD)
            .expect("serve() returned")
            .unwrap();
    }
}

fn start<C, H, Fut>(configure: C, handler: H) -> Running
where
    C: FnOnce(Server) -> Server + Send + 'static,
    H: Fn(Request<Body>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Response<Body>> + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = async_channel::bounded::<()>(1);
    let (exit_tx, exited) = mpsc::channel();
    thread::spawn(move || {
        untangle::block_on(async move {
            let listener = untangle::net::TcpListener::try_from(listener).unwrap();
            let server =
                configure(Server::from_listener(listener)).with_graceful_shutdown(async move {
                    let _ = stop_rx.recv().await;
                });
            let _ = exit_tx.send(server.serve(handler).await);
            // Upgraded connections belong to their tasks, which run on this loop.
            untangle::time::sleep(HANG_GUARD).await;
        });
    });
    Running { addr, stop, exited }
}

async fn hello(_req: Request<Body>) -> Response<Body> {
    Response::new(Body::from("hello"))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    stream
}

/// Reads until the server closes; a reset counts as a close.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(err) => panic!("read: {err} after {out:?}"),
        }
    }
}

/// Reads one response head (through its blank line), leaving nothing of what follows unread
/// only if the server sent nothing after it yet; returns the head and any bytes past it.
fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = out.split_off(end + 4);
            return (String::from_utf8(out).unwrap(), rest);
        }
        let n = stream.read(&mut buf).expect("read a head");
        assert_ne!(
            n,
            0,
            "closed inside a head: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
    }
}

/// Makes sure the server has accepted (and started serving) every connection opened before
/// this: it accepts in order, so once a later connection is answered, earlier ones are in.
fn sync_with_accept(addr: SocketAddr) {
    let mut probe = connect(addr);
    probe
        .write_all(b"GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = read_to_close(&mut probe);
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"), "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------------------------

/// A connection that never sent a byte does not hold the shutdown up: it is closed without a
/// response, and `serve` returns.
#[test]
fn graceful_shutdown_before_first_request_no_block() {
    let server = start(|s| s, hello);
    let mut idle = connect(server.addr);
    sync_with_accept(server.addr);
    server.shut_down();
    assert_eq!(read_to_close(&mut idle), b"");
    drop(idle);
    server.wait_exit();
}

/// A shutdown that comes while a request head is half received lets that request finish:
/// it is answered, with `Connection: close`, and then the connection closes.
#[test]
fn disable_keep_alive_mid_request() {
    let server = start(|s| s, hello);
    let mut client = connect(server.addr);
    client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    sync_with_accept(server.addr);
    server.shut_down();
    client.write_all(b"Host: localhost\r\n\r\n").unwrap();
    let out = String::from_utf8(read_to_close(&mut client)).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    assert!(out.contains("\r\nconnection: close\r\n"), "{out:?}");
    assert!(out.ends_with("\r\n\r\nhello"), "{out:?}");
    drop(client);
    server.wait_exit();
}

/// An upgraded connection is not the server's any more: a graceful shutdown neither waits
/// for it nor cuts it, and the bytes sent right behind the upgrade request ("eagerly
/// optimistic", in the same write) reach the upgraded side first. This is also hyper's
/// `upgrades` and `upgrades_new`.
#[test]
fn http1_graceful_shutdown_after_upgrade() {
    let (seen_tx, seen_rx) = mpsc::channel::<Vec<u8>>();
    let server = start(
        |s| s,
        move |mut req: Request<Body>| {
            let on_upgrade = upgrade::on(&mut req);
            let seen = seen_tx.clone();
            untangle::spawn(async move {
                let mut io = on_upgrade.await.expect("upgraded");
                let mut early = vec![0u8; b"eagerly optimistic".len()];
                io.read_exact(&mut early).await.unwrap();
                seen.send(early).unwrap();
                io.write_all(b"foo=bar").await.unwrap();
                let mut rest = Vec::new();
                io.read_to_end(&mut rest).await.unwrap();
                seen.send(rest).unwrap();
            })
            .detach();
            async {
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("upgrade", "foobar")
                    .header("connection", "upgrade")
                    .body(Body::empty())
                    .unwrap()
            }
        },
    );
    let mut client = connect(server.addr);
    client
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: foobar\r\nConnection: upgrade\r\n\r\n\
              eagerly optimistic",
        )
        .unwrap();
    let (head, mut after) = read_head(&mut client);
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.starts_with("http/1.1 101 switching protocols\r\n"),
        "{head:?}"
    );
    assert!(!lower.contains("content-length") && !lower.contains("transfer-encoding"));
    assert_eq!(
        seen_rx.recv_timeout(HANG_GUARD).unwrap(),
        b"eagerly optimistic"
    );

    // `serve` returns at once: the upgraded connection is not waited for.
    server.shut_down();
    server.wait_exit();

    // ... and it still works both ways.
    while after.len() < b"foo=bar".len() {
        let mut buf = [0u8; 64];
        let n = client.read(&mut buf).unwrap();
        assert_ne!(n, 0, "tunnel closed early");
        after.extend_from_slice(&buf[..n]);
    }
    assert_eq!(after, b"foo=bar");
    client.write_all(b"bar=foo").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(seen_rx.recv_timeout(HANG_GUARD).unwrap(), b"bar=foo");
}

/// A handler that does not take the upgrade answers as usual, and the connection goes on as
/// plain HTTP/1.1.
#[test]
fn upgrades_ignored() {
    let server = start(
        |s| s,
        |req: Request<Body>| async move {
            assert_eq!(req.headers()["upgrade"], "yolo");
            Response::new(Body::empty())
        },
    );
    let mut client = connect(server.addr);
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: yolo\r\nConnection: upgrade\r\n\r\n";
    client.write_all(request).unwrap();
    let (head, rest) = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    assert!(!head.contains("connection: close"), "{head:?}");
    assert_eq!(rest, b"");
    client.write_all(request).unwrap();
    let (head, _) = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
}

// ---------------------------------------------------------------------------------------------
// End of stream and the header-read timeout
// ---------------------------------------------------------------------------------------------

/// A client that connects and leaves without a byte gets nothing back, and the server goes on.
#[test]
fn empty_parse_eof_does_not_return_error() {
    let server = start(|s| s, hello);
    let mut client = connect(server.addr);
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut client), b"");
    sync_with_accept(server.addr);
}

/// End of stream inside a head: hyper's connection fails with an error and sends nothing; so
/// do we (there is no request to answer, and no one to read a 400).
#[test]
fn nonempty_parse_eof_returns_error() {
    let server = start(|s| s, hello);
    let mut client = connect(server.addr);
    client.write_all(b"GET / HTTP/1.1").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut client), b"");
    sync_with_accept(server.addr);
}

/// The header-read timeout runs from the connection's start: a client that never sends is
/// closed once it passes, without a response.
#[test]
fn header_read_timeout_starts_immediately() {
    let server = start(|s| s.header_read_timeout(Duration::from_millis(100)), hello);
    let mut client = connect(server.addr);
    assert_eq!(read_to_close(&mut client), b"");
}

// ---------------------------------------------------------------------------------------------
// Request bodies read partly, then dropped
// ---------------------------------------------------------------------------------------------

/// Reads the first chunk of the request body, then drops the rest and answers.
async fn read_one_chunk(req: Request<Body>) -> Response<Body> {
    let mut body = req.into_body();
    let first = body.next().await.map(|c| c.unwrap().len()).unwrap_or(0);
    drop(body);
    Response::new(Body::from(format!("read {first}")))
}

/// What is left of a small body the handler read only partly is drained, and the connection
/// serves the next request: the rest of the body is never taken for one.
#[test]
fn partly_read_small_body_is_drained_and_the_connection_kept() {
    let server = start(|s| s, read_one_chunk);
    let mut client = connect(server.addr);
    let hidden = "GET /hidden HTTP/1.1\r\nHost: x\r\n\r\n";
    client
        .write_all(
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\nabc",
                3 + hidden.len()
            )
            .as_bytes(),
        )
        .unwrap();
    let (head, body) = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    assert!(!head.contains("connection: close"), "{head:?}");
    // The rest of the body, which looks like a request, then a real request.
    client
        .write_all(
            format!("{hidden}GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut out = body;
    out.extend(read_to_close(&mut client));
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("read 3HTTP/1.1 200 OK\r\n"), "{out:?}");
    assert_eq!(
        out.matches("HTTP/1.1 ").count(),
        1,
        "/hidden was not answered: {out:?}"
    );
}

/// A large body the handler read only partly is not drained: the response says
/// `Connection: close` and the connection closes after it.
#[test]
fn partly_read_large_body_closes_the_connection() {
    let server = start(|s| s, read_one_chunk);
    let mut client = connect(server.addr);
    let len = 8 * 1024 * 1024;
    client
        .write_all(
            format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
        )
        .unwrap();
    client.write_all(&[b'a'; 1024]).unwrap();
    let (head, _) = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head:?}");
    let rest = read_to_close(&mut client);
    assert!(
        !rest.windows(9).any(|w| w == b"HTTP/1.1 "),
        "one response only"
    );
}

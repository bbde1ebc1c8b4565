//! Client faults: a server that closes mid-head or mid-body, sends garbage, stalls past the
//! timeout or resets the connection gives the matching `ErrorKind` every time, never a hang;
//! and the pool never hands out a dead connection twice.
//!
//! Complements tests/http_client.rs (which covers a clean close mid-head and mid-body, a
//! silent server and bad framing) with resets, binary garbage, stalls at each stage and pool
//! behaviour under servers that drop connections. Peers here are blocking threads, so that
//! they can reset connections (`SO_LINGER` 0) at exact points.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::run;
use untangle::http::{Client, ErrorKind};

/// What a peer does with one connection, after reading one request head.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Send these bytes, then close cleanly.
    Close(&'static [u8]),
    /// Send these bytes, then reset (RST).
    Reset(&'static [u8]),
    /// Send these bytes, then stall (keep the connection open, send nothing).
    Stall(&'static [u8]),
}

/// Reads up to the end of a request head (or EOF); false when the client went away.
fn read_head(stream: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return false,
        }
    }
    true
}

fn reset(stream: TcpStream) {
    rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO)).unwrap();
    drop(stream);
}

/// A peer applying `act` to every connection; returns its address and accept count.
fn peer(act: Act) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            count.fetch_add(1, Ordering::SeqCst);
            thread::spawn(move || {
                if !read_head(&mut stream) {
                    return;
                }
                match act {
                    Act::Close(bytes) => {
                        let _ = stream.write_all(bytes);
                    }
                    Act::Reset(bytes) => {
                        let _ = stream.write_all(bytes);
                        thread::sleep(Duration::from_millis(20));
                        reset(stream);
                    }
                    Act::Stall(bytes) => {
                        let _ = stream.write_all(bytes);
                        // Hold the connection until the client gives up and closes.
                        let mut sink = [0u8; 64];
                        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// The error kind of a GET (head and whole body) against a peer doing `act`.
fn kind_of(act: Act, client: &Client) -> ErrorKind {
    let (addr, _) = peer(act);
    let url = format!("http://{addr}/");
    run(async {
        match client.get(url).await {
            Err(err) => err.kind(),
            Ok(response) => response
                .into_body()
                .bytes()
                .await
                .expect_err("the body must fail")
                .kind(),
        }
    })
}

#[test]
fn each_server_fault_gives_its_error_kind_and_never_hangs() {
    let _guard = common::watchdog("client faults");
    let plain = Client::new();
    let timed = Client::builder()
        .timeout(Duration::from_millis(300))
        .build();
    let garbage_binary: &'static [u8] =
        &[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0, 0, 0xa1, 0x03, 0x03];
    let cases: Vec<(&str, Act, &Client, ErrorKind)> = vec![
        (
            "close before any byte",
            Act::Close(b""),
            &plain,
            ErrorKind::Io,
        ),
        (
            "101 to a request that asked for no upgrade",
            Act::Stall(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
            ),
            &plain,
            ErrorKind::BadResponse,
        ),
        (
            "close mid status line",
            Act::Close(b"HTTP/1.1 2"),
            &plain,
            ErrorKind::Io,
        ),
        (
            "close mid headers",
            Act::Close(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-"),
            &plain,
            ErrorKind::Io,
        ),
        (
            "close mid body (length)",
            Act::Close(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nabc"),
            &plain,
            ErrorKind::Io,
        ),
        (
            "close mid body (chunked)",
            Act::Close(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
            &plain,
            ErrorKind::Io,
        ),
        (
            "reset before any byte",
            Act::Reset(b""),
            &plain,
            ErrorKind::Io,
        ),
        (
            "reset mid headers",
            Act::Reset(b"HTTP/1.1 200 OK\r\nContent-Le"),
            &plain,
            ErrorKind::Io,
        ),
        (
            "reset mid body",
            Act::Reset(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nabc"),
            &plain,
            ErrorKind::Io,
        ),
        (
            "binary garbage",
            Act::Close(garbage_binary),
            &plain,
            ErrorKind::BadResponse,
        ),
        (
            "HTTP/2 preface",
            Act::Close(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            &plain,
            ErrorKind::BadResponse,
        ),
        (
            "NUL in a header",
            Act::Close(b"HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 0\r\n\r\n"),
            &plain,
            ErrorKind::BadResponse,
        ),
        (
            "negative chunk size",
            Act::Close(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
            ),
            &plain,
            ErrorKind::BadResponse,
        ),
        (
            "LF-only chunk line",
            Act::Close(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
            ),
            &plain,
            ErrorKind::BadResponse,
        ),
        (
            "stall before any byte",
            Act::Stall(b""),
            &timed,
            ErrorKind::Timeout,
        ),
        (
            "stall mid headers",
            Act::Stall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"),
            &timed,
            ErrorKind::Timeout,
        ),
        (
            "stall mid body",
            Act::Stall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"),
            &timed,
            ErrorKind::Timeout,
        ),
        (
            "stall mid chunked body",
            Act::Stall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
            &timed,
            ErrorKind::Timeout,
        ),
    ];
    let mut wrong = Vec::new();
    for (name, act, client, want) in cases {
        let got = kind_of(act, client);
        if got != want {
            wrong.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn endless_response_head_is_bad_response_with_bounded_memory() {
    // The peer streams header lines forever; the client stops at its head limit.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_head(&mut stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n");
        let line = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        while stream.write_all(line).is_ok() {
            counter.fetch_add(line.len(), Ordering::SeqCst);
            if counter.load(Ordering::SeqCst) > 64 << 20 {
                return;
            }
        }
    });
    let err = run(async {
        Client::new()
            .get(format!("http://{addr}/"))
            .await
            .unwrap_err()
    });
    assert_eq!(err.kind(), ErrorKind::BadResponse, "{err}");
    // It gave up long before the peer's 64 MiB: the socket buffers hold a few MiB at most.
    assert!(sent.load(Ordering::SeqCst) < 16 << 20);
}

/// A peer that answers one request per connection with keep-alive, then drops the
/// connection (cleanly or with a reset) while the client holds it idle in its pool.
fn dropping_peer(
    with_reset: bool,
) -> (SocketAddr, Arc<AtomicUsize>, std::sync::mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let (dropped_tx, dropped_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            count.fetch_add(1, Ordering::SeqCst);
            if !read_head(&mut stream) {
                continue;
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            thread::sleep(Duration::from_millis(5));
            if with_reset {
                reset(stream);
            } else {
                drop(stream);
            }
            let _ = dropped_tx.send(());
        }
    });
    (addr, accepted, dropped_rx)
}

#[test]
fn pool_never_hands_out_a_dead_connection_twice() {
    let _guard = common::watchdog("pool dead connections");
    for with_reset in [false, true] {
        let (addr, accepted, dropped) = dropping_peer(with_reset);
        let client = Client::new();
        run(async {
            for i in 0..10 {
                // POST is not retried: it fails if the pool hands out the dead connection.
                let request = untangle::http::Request::post(format!("http://{addr}/{i}"))
                    .body(untangle::http::Body::from("x"))
                    .unwrap();
                let response = client.send(request).await.unwrap_or_else(|err| {
                    panic!("request {i} (reset: {with_reset}) failed: {err}")
                });
                assert_eq!(response.into_body().bytes().await.unwrap(), "ok");
                // Wait until the server has dropped the connection now idle in the pool.
                dropped.recv_timeout(common::HANG_GUARD).unwrap();
                untangle::time::sleep(Duration::from_millis(5)).await;
            }
        });
        // One fresh connection per request: each dead one was discarded, never reused.
        assert_eq!(accepted.load(Ordering::SeqCst), 10, "reset: {with_reset}");
    }
}

//! Slowloris: thousands of connections trickling a request head one byte per second must not
//! keep a normal client from being served, and each of them must get 408 and be closed once
//! the header read timeout expires.
//!
//! Alone in its test binary: it needs ~4,100 fds (2,000 connections, both ends, in this one
//! process). It raises `RLIMIT_NOFILE`'s soft limit to the hard one and skips, saying so,
//! where the hard limit is too low.

mod common;

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use untangle::http::{Body, Request};
use untangle::net::TcpStream;
use untangle::time::{sleep, timeout};

const SLOW_CONNECTIONS: usize = 2_000;
const NORMAL_REQUESTS: usize = 100;
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);

/// What one slow connection saw.
struct Slow {
    response: Vec<u8>,
    closed_after: Duration,
    closed_at: Instant,
    bytes_sent: usize,
}

/// Sends the head one byte per second, reading whatever comes back, until the server closes.
async fn trickle(addr: std::net::SocketAddr, connected: Rc<Cell<usize>>) -> Slow {
    let head = b"GET /slow HTTP/1.1\r\nHost: a\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("slow connect");
    connected.set(connected.get() + 1);
    let mut response = Vec::new();
    let mut sent = 0;
    let mut buf = [0u8; 512];
    loop {
        match timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => response.extend_from_slice(&buf[..n]),
            Err(_) => {
                if sent < head.len() {
                    if stream.write_all(&head[sent..sent + 1]).await.is_err() {
                        // Closed under us: read what the server sent before closing.
                        let _ = stream.read_to_end(&mut response).await;
                        break;
                    }
                    sent += 1;
                }
            }
        }
    }
    Slow {
        response,
        closed_after: started.elapsed(),
        closed_at: Instant::now(),
        bytes_sent: sent,
    }
}

#[test]
fn slowloris_connections_get_408_at_the_header_timeout_while_normal_requests_are_served() {
    let limit = common::raise_nofile_limit();
    let needed = (2 * SLOW_CONNECTIONS + 200) as u64;
    if limit < needed {
        eprintln!(
            "skipping slowloris test: RLIMIT_NOFILE hard limit {limit} is below the {needed} fds it needs"
        );
        return;
    }
    let _guard = common::watchdog("slowloris");
    let addr = common::serve_in_thread(
        |s| s.header_read_timeout(HEADER_TIMEOUT),
        |req: Request<Body>| async move { format!("served {}", req.uri().path()) },
    );

    // The slow clients run on their own loop thread.
    let (connected_tx, connected_rx) = std::sync::mpsc::channel();
    let slow = std::thread::spawn(move || {
        untangle::block_on(async move {
            let connected = Rc::new(Cell::new(0usize));
            let mut tasks = Vec::with_capacity(SLOW_CONNECTIONS);
            for _ in 0..SLOW_CONNECTIONS {
                let connected = connected.clone();
                tasks.push(untangle::spawn(trickle(addr, connected)));
                // Pace the connects a little so the listen backlog never overflows.
                if tasks.len() % 200 == 0 {
                    sleep(Duration::from_millis(10)).await;
                }
            }
            while connected.get() < SLOW_CONNECTIONS {
                sleep(Duration::from_millis(5)).await;
            }
            connected_tx.send(Instant::now()).unwrap();
            let mut results = Vec::with_capacity(SLOW_CONNECTIONS);
            for task in tasks {
                results.push(task.await);
            }
            results
        })
    });
    let _all_connected: Instant = connected_rx.recv().unwrap();

    // Meanwhile a normal client makes its requests, one connection each.
    let started = Instant::now();
    for i in 0..NORMAL_REQUESTS {
        let mut stream = std::net::TcpStream::connect(addr).expect("normal connect");
        stream.set_read_timeout(Some(common::HANG_GUARD)).unwrap();
        write!(
            stream,
            "GET /normal{i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("normal response");
        let responses = common::parse_responses(&response);
        assert_eq!(responses.len(), 1, "request {i}");
        assert_eq!(responses[0].status, 200, "request {i}");
        assert_eq!(responses[0].body, format!("served /normal{i}").as_bytes());
    }
    let normal_time = started.elapsed();
    let normal_done = Instant::now();

    let results = slow.join().expect("slow clients");
    assert_eq!(results.len(), SLOW_CONNECTIONS);
    for (i, r) in results.iter().enumerate() {
        let responses = common::parse_responses(&r.response);
        assert_eq!(
            responses.len(),
            1,
            "slow connection {i} got {:?}",
            String::from_utf8_lossy(&r.response)
        );
        assert_eq!(responses[0].status, 408, "slow connection {i}");
        assert_eq!(responses[0].header("connection"), Some("close"));
        // Never before the timeout; the upper bound is only a hang guard.
        assert!(
            r.closed_after >= HEADER_TIMEOUT,
            "slow connection {i} closed after {:?}",
            r.closed_after
        );
        assert!(r.closed_after < HEADER_TIMEOUT + Duration::from_secs(20));
        assert!(r.bytes_sent < 20, "the head was never complete");
    }
    // How many slow connections were still open when the normal client finished (they all
    // were unless this machine took longer than the header timeout for 100 requests).
    let still_open = results.iter().filter(|r| r.closed_at > normal_done).count();
    eprintln!("{still_open} slow connections were open when the normal client finished");
    eprintln!(
        "{NORMAL_REQUESTS} normal requests served in {normal_time:?} among {SLOW_CONNECTIONS} slow connections"
    );
}

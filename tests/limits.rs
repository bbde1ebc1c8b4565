//! Limits hold under pressure: a flood of 1 MiB request heads is answered 431 after about
//! `max_header_bytes`, long before the whole MiB is read, with the server's memory bounded;
//! `max_connections` caps concurrent connections while many clients push.
//!
//! Memory is measured as this process's peak RSS, so the tests of this binary take turns.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use untangle::http::{Body, Request};

static SERIAL: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;

/// `VmHWM` or `VmRSS` of this process, in bytes.
fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

/// A 1 MiB request head that never ends: a request line, then header lines.
fn huge_head() -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    while head.len() < MIB {
        head.extend_from_slice(
            b"X-Flood: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
    }
    head.truncate(MIB);
    head
}

#[test]
fn one_mib_header_is_431_before_the_whole_mib_is_read() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _guard = common::watchdog("431 early");
    let addr = common::serve_in_thread(|s| s, |_req: Request<Body>| async { "never" });
    let head = huge_head();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(common::HANG_GUARD)).unwrap();
    // Only a little more than the 64 KiB limit is sent, then the client waits: a server
    // that wanted the whole MiB (or the end of the head) before answering would hang here.
    let sent = 64 * 1024 + 1024;
    stream.write_all(&head[..sent]).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let responses = common::parse_responses(&response);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 431);
    assert_eq!(responses[0].header("connection"), Some("close"));
}

#[test]
fn flood_of_one_mib_heads_keeps_memory_bounded() {
    const CONNECTIONS: usize = 200;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _guard = common::watchdog("header flood");
    common::raise_nofile_limit();
    let addr = common::serve_in_thread(|s| s, |_req: Request<Body>| async { "never" });
    let head: std::rc::Rc<[u8]> = huge_head().into();
    let rss_before = status_kib("VmRSS:");
    let statuses = common::run(async move {
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let head = head.clone();
            tasks.push(untangle::spawn(async move {
                let mut stream = untangle::net::TcpStream::connect(addr).await.unwrap();
                let _ = stream.write_all(&head).await;
                let mut response = Vec::new();
                let _ = stream.read_to_end(&mut response).await;
                response
            }));
        }
        let mut statuses = Vec::new();
        for task in tasks {
            let response = task.await;
            statuses.push(response.get(9..12).map(|s| s.to_vec()));
        }
        statuses
    });
    let peak = status_kib("VmHWM:");
    for status in &statuses {
        assert_eq!(status.as_deref(), Some(&b"431"[..]));
    }
    // Buffering every head whole would take 200 MiB; the limit keeps each connection's buffer
    // near 64 KiB (+ one read), so growth stays far below that.
    let growth = peak.saturating_sub(rss_before);
    eprintln!(
        "RSS before {} KiB, peak {} KiB, growth {} KiB for {CONNECTIONS} x 1 MiB heads",
        rss_before / 1024,
        peak / 1024,
        growth / 1024
    );
    assert!(growth < 64 * MIB, "peak RSS grew by {} MiB", growth / MIB);
}

#[test]
fn max_connections_is_enforced_under_pressure() {
    const LIMIT: usize = 8;
    const CLIENTS: usize = 100;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _guard = common::watchdog("max_connections");
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (a, p) = (active.clone(), peak.clone());
    let addr = common::serve_in_thread(
        // The clients half-close after their request (`exchange_raw`) and wait for the
        // response of a handler that sleeps: that takes `half_close`.
        move |s| s.max_connections(LIMIT).half_close(true),
        move |_req: Request<Body>| {
            let (active, peak) = (a.clone(), p.clone());
            async move {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                untangle::time::sleep(Duration::from_millis(10)).await;
                active.fetch_sub(1, Ordering::SeqCst);
                "done"
            }
        },
    );
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut raw = common::exchange_raw(
                    addr,
                    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                );
                let r = common::parse_responses(&std::mem::take(&mut raw));
                (r[0].status, r[0].body.clone())
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), (200, b"done".to_vec()));
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= LIMIT,
        "{peak} requests in flight with max_connections({LIMIT})"
    );
    assert!(
        peak > 1,
        "the clients never overlapped; the test proves nothing"
    );
}

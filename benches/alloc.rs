//! Heap allocations per request of untangle's HTTP server: a regression bench for issue 11.
//!
//! Run: `cargo bench --bench alloc` (a few seconds). `ALLOC_BUDGET=<allocations per request>`
//! makes it exit with status 1 when a workload allocates more than that per request, e.g.
//! `ALLOC_BUDGET=7 cargo bench --bench alloc`; without it the bench only reports. Flags starting
//! with `--` (cargo passes `--bench`) are ignored.
//!
//! In one process: `examples/plaintext.rs`'s handler served by `untangle::http::Server` on
//! 127.0.0.1:0 (its own thread, `untangle::block_on`), and a blocking std `TcpStream` client on
//! the main thread, one connection per workload:
//! - `keep-alive`: one request per write, the next once its response is in;
//! - `pipelined x16`: 16 requests per write, the next batch once all 16 responses are in.
//!
//! Each workload first runs `WARMUP` requests on its connection (buffers reach their steady
//! size, the cached Date is formatted), then `REQUESTS` measured ones; the figures are the
//! difference of `dhat::HeapStats` (total blocks and bytes ever allocated) around the measured
//! phase, divided by `REQUESTS`. dhat's allocator counts every thread, so the client allocates
//! nothing while measuring (fixed buffers, counting response bodies in place); connection
//! set-up is outside the measured phase. Reallocations count as allocations, as in dhat. The
//! server refreshes its Date once a second, which may add a few allocations to a phase.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::mpsc;

use untangle::http::Server;

// Every allocation goes through dhat, which records it only while the `Profiler` below runs.
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const REQUESTS: usize = 10_000;
const WARMUP: usize = 1_000;
const REQUEST: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n";
const BODY: &[u8] = b"Hello, World!";

/// `examples/plaintext.rs` itself (its `main` unused), so the bench measures the handler the HTTP
/// load bench (`benches/http`) does.
#[path = "../examples/plaintext.rs"]
#[allow(dead_code)]
mod plaintext;
use plaintext::handle;

/// A blocking client connection with fixed buffers: nothing here allocates after `new`.
struct Client {
    stream: TcpStream,
    batch: Vec<u8>,
    buf: Vec<u8>,
    /// Bytes of `buf` kept from the last read: the start of a body split across reads.
    tail: usize,
}

impl Client {
    fn new(addr: SocketAddr, depth: usize) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            batch: REQUEST.repeat(depth),
            buf: vec![0; 64 * 1024],
            tail: 0,
        }
    }

    /// Sends one batch and reads until every response to it is in (each ends with `BODY`).
    fn exchange(&mut self, depth: usize) {
        self.stream.write_all(&self.batch).expect("write");
        let mut got = 0;
        while got < depth {
            let n = self.stream.read(&mut self.buf[self.tail..]).expect("read");
            assert!(n > 0, "server closed the connection");
            let filled = self.tail + n;
            let mut end = 0;
            let mut i = 0;
            while i + BODY.len() <= filled {
                if &self.buf[i..i + BODY.len()] == BODY {
                    got += 1;
                    i += BODY.len();
                    end = i;
                } else {
                    i += 1;
                }
            }
            self.buf.copy_within(end..filled, 0);
            self.tail = filled - end;
        }
        assert_eq!(got, depth, "more responses than requests");
    }

    fn run(&mut self, requests: usize, depth: usize) {
        for _ in 0..requests / depth {
            self.exchange(depth);
        }
    }
}

struct Row {
    name: &'static str,
    blocks: f64,
    bytes: f64,
}

fn measure(addr: SocketAddr, name: &'static str, depth: usize) -> Row {
    let mut client = Client::new(addr, depth);
    client.run(WARMUP, depth);
    let before = dhat::HeapStats::get();
    client.run(REQUESTS, depth);
    let after = dhat::HeapStats::get();
    Row {
        name,
        blocks: (after.total_blocks - before.total_blocks) as f64 / REQUESTS as f64,
        bytes: (after.total_bytes - before.total_bytes) as f64 / REQUESTS as f64,
    }
}

fn main() -> ExitCode {
    let budget = std::env::var("ALLOC_BUDGET").ok().map(|v| {
        v.parse::<f64>()
            .expect("ALLOC_BUDGET: allocations per request, e.g. 7 or 6.5")
    });
    // Testing mode: heap stats on demand, no dhat-heap.json written at exit. Short backtraces
    // (dhat records one per allocation) keep the bench fast; the counts do not depend on them.
    let _profiler = dhat::Profiler::builder()
        .testing()
        .trim_backtraces(Some(4))
        .build();

    let (tx, rx) = mpsc::channel();
    // Never joined: the server serves until the process exits at the end of main.
    std::thread::spawn(move || {
        untangle::block_on(async move {
            let server = Server::bind("127.0.0.1:0").await?;
            tx.send(server.local_addr()?).expect("main thread waits");
            server.serve(handle).await
        })
        .expect("server");
    });
    let addr = rx.recv().expect("server address");

    let rows = [
        measure(addr, "keep-alive", 1),
        measure(addr, "pipelined x16", 16),
    ];
    println!(
        "untangle::http::Server, examples/plaintext.rs handler, {REQUESTS} requests per workload \
         after {WARMUP} warm-up, one connection"
    );
    println!(
        "{:<16} {:>12} {:>12}",
        "workload", "allocs/req", "bytes/req"
    );
    for row in &rows {
        println!("{:<16} {:>12.2} {:>12.1}", row.name, row.blocks, row.bytes);
    }
    if let Some(budget) = budget {
        let over: Vec<&Row> = rows.iter().filter(|r| r.blocks > budget).collect();
        for row in &over {
            eprintln!(
                "{}: {:.2} allocations per request, over ALLOC_BUDGET={budget}",
                row.name, row.blocks
            );
        }
        if !over.is_empty() {
            return ExitCode::FAILURE;
        }
        println!("within ALLOC_BUDGET={budget} allocations per request");
    }
    ExitCode::SUCCESS
}

//! Thread-per-core: `run_on_threads`/`Threads` (outputs, panics, pinning), `SO_REUSEPORT`
//! listeners, and `Server::threads` (every loop serves, graceful shutdown reaches every loop).
//!
//! Clients are blocking `std::net::TcpStream`s on plain threads. Nothing depends on speed:
//! readiness is signalled, not waited for, and timing appears only as generous hang guards.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::{panic_message, watchdog, HANG_GUARD};
use futures_lite::{future, FutureExt};
use untangle::http::{Body, IntoResponse, Request, Server};
use untangle::net::{TcpListener, TcpStream as AsyncTcpStream};
use untangle::{run_on_threads, Threads};

// ---------------------------------------------------------------------------------------------
// run_on_threads / Threads
// ---------------------------------------------------------------------------------------------

#[test]
fn outputs_come_back_in_index_order() {
    let _guard = watchdog("outputs_come_back_in_index_order");
    // Later indexes finish first (thread i waits for thread i + 1): the order of the outputs
    // is still the order of the indexes.
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = mpsc::channel::<()>();
        senders.push(Some(tx));
        receivers.push(Some(rx));
    }
    receivers.push(None);
    senders.insert(0, None);
    // Thread i takes receivers[i] (from thread i + 1) and senders[i] (to thread i - 1).
    let links = std::sync::Mutex::new((senders, receivers));
    let outputs = run_on_threads(4, move |index| {
        let (tx, rx) = {
            let mut links = links.lock().unwrap();
            (links.0[index].take(), links.1[index].take())
        };
        async move {
            if let Some(rx) = rx {
                untangle::unblock(move || rx.recv().unwrap()).await;
            }
            if let Some(tx) = tx {
                tx.send(()).unwrap();
            }
            (index, thread::current().name().map(str::to_owned))
        }
    });
    let expected: Vec<_> = (0..4).map(|i| (i, Some(format!("untangle-{i}")))).collect();
    assert_eq!(outputs, expected);
}

#[test]
fn futures_built_on_their_thread_need_not_be_send() {
    let _guard = watchdog("futures_built_on_their_thread_need_not_be_send");
    let outputs = run_on_threads(3, |index| {
        let local = Rc::new(index * 10);
        async move {
            let task = untangle::spawn({
                let local = local.clone();
                async move { *local + 1 }
            });
            task.await + *local
        }
    });
    assert_eq!(outputs, [1, 21, 41]);
}

#[test]
fn a_panic_is_reraised_with_its_payload_and_stops_the_other_threads() {
    let _guard = watchdog("a_panic_is_reraised_with_its_payload_and_stops_the_other_threads");
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = dropped.clone();
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        run_on_threads(4, move |index| {
            let counter = counter.clone();
            async move {
                if index == 2 {
                    untangle::yield_now().await;
                    panic::panic_any(String::from("thread two failed"));
                }
                // The others would never finish: they must be stopped, their futures dropped.
                let _count_drop = CountDrop(counter);
                future::pending::<()>().await;
            }
        })
    }));
    let payload = result.expect_err("the panic must be re-raised");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("thread two failed"),
        "the original payload, not a new one"
    );
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        3,
        "the other futures were dropped"
    );
}

#[test]
fn a_panic_while_building_the_future_is_reraised() {
    let _guard = watchdog("a_panic_while_building_the_future_is_reraised");
    let result = panic::catch_unwind(|| {
        run_on_threads(2, |index| {
            assert_ne!(index, 1, "no future for thread one");
            future::pending::<()>()
        })
    });
    let payload = result.expect_err("the panic must be re-raised");
    assert!(panic_message(&*payload).contains("no future for thread one"));
}

#[test]
fn pinned_threads_each_run_on_one_allowed_cpu() {
    let _guard = watchdog("pinned_threads_each_run_on_one_allowed_cpu");
    let allowed = cpus(&rustix::thread::sched_getaffinity(None).unwrap());
    let n = 4;
    let masks = Threads::new(n).pin_to_cpus(true).run(|_| async {
        let mask = cpus(&rustix::thread::sched_getaffinity(None).unwrap());
        (mask, rustix::thread::sched_getcpu())
    });
    for (index, (mask, running_on)) in masks.into_iter().enumerate() {
        let expected = allowed[index % allowed.len()];
        assert_eq!(mask, [expected], "thread {index} pinned to one CPU");
        assert_eq!(running_on, expected, "thread {index} runs on its CPU");
    }
}

#[test]
fn unpinned_threads_keep_the_callers_cpus() {
    let _guard = watchdog("unpinned_threads_keep_the_callers_cpus");
    let allowed = cpus(&rustix::thread::sched_getaffinity(None).unwrap());
    let masks = run_on_threads(2, |_| async {
        cpus(&rustix::thread::sched_getaffinity(None).unwrap())
    });
    assert_eq!(masks, [allowed.clone(), allowed]);
}

#[test]
fn a_thread_group_can_be_awaited_from_a_loop() {
    let _guard = watchdog("a_thread_group_can_be_awaited_from_a_loop");
    let outputs = untangle::block_on(async {
        let group = Threads::new(3).spawn(|index| async move {
            untangle::time::sleep(Duration::from_millis(1)).await;
            index * 2
        });
        group.await
    });
    assert_eq!(outputs, [0, 2, 4]);
}

#[test]
fn zero_threads_is_refused() {
    assert!(panic::catch_unwind(|| Threads::new(0)).is_err());
}

// ---------------------------------------------------------------------------------------------
// SO_REUSEPORT
// ---------------------------------------------------------------------------------------------

#[test]
fn reuse_port_listeners_share_a_port_and_both_accept() {
    let _guard = watchdog("reuse_port_listeners_share_a_port_and_both_accept");
    untangle::block_on(async {
        let first = TcpListener::bind_reuse_port("127.0.0.1:0").await.unwrap();
        let addr = first.local_addr().unwrap();
        let second = TcpListener::bind_reuse_port(addr).await.unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        // The kernel hashes the client's port over the two listeners, so both get some of 200
        // connections (all of them on one has odds of 2^-199).
        let mut clients = Vec::new();
        for _ in 0..200 {
            clients.push(AsyncTcpStream::connect(addr).await.unwrap());
        }
        let mut hits = [0usize; 2];
        while hits[0] + hits[1] < clients.len() {
            let (index, accepted) = async { (0, first.accept().await) }
                .or(async { (1, second.accept().await) })
                .await;
            accepted.unwrap();
            hits[index] += 1;
        }
        assert!(
            hits[0] > 0 && hits[1] > 0,
            "both listeners accepted: {hits:?}"
        );
    });
}

#[test]
fn reuse_port_cannot_join_a_plain_listener() {
    untangle::block_on(async {
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = TcpListener::bind_reuse_port(plain.local_addr().unwrap())
            .await
            .expect_err("a listener without SO_REUSEPORT keeps its port");
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
    });
}

// ---------------------------------------------------------------------------------------------
// Server::threads
// ---------------------------------------------------------------------------------------------

/// A threaded server running on its own thread.
struct Running {
    addr: SocketAddr,
    shutdown: async_channel::Sender<()>,
    exit: mpsc::Receiver<std::io::Result<()>>,
}

/// Starts `Server::bind(127.0.0.1:0).threads(n).serve_with(make)` on a new thread, with a
/// graceful shutdown on `Running::shutdown`; returns once every loop has built its handler
/// (so every listener is bound and listening).
fn start_threaded<M, H, Fut, R>(n: usize, make: M) -> Running
where
    M: Fn(usize) -> H + Send + Sync + 'static,
    H: Fn(Request<Body>) -> Fut + 'static,
    Fut: std::future::Future<Output = R> + 'static,
    R: IntoResponse + 'static,
{
    let (addr_tx, addr_rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel::<usize>();
    let (shutdown, shutdown_rx) = async_channel::bounded::<()>(1);
    let (exit_tx, exit) = mpsc::channel();
    thread::spawn(move || {
        let result = untangle::block_on(async move {
            let server = Server::bind("127.0.0.1:0").await?.threads(n);
            addr_tx.send(server.local_addr()?).unwrap();
            server
                .with_graceful_shutdown(async move {
                    let _ = shutdown_rx.recv().await;
                })
                .serve_with(move |index| {
                    let handler = make(index);
                    ready_tx.send(index).unwrap();
                    handler
                })
                .await
        });
        let _ = exit_tx.send(result);
    });
    let addr = addr_rx.recv_timeout(HANG_GUARD).unwrap();
    let ready: BTreeSet<usize> = (0..n)
        .map(|_| ready_rx.recv_timeout(HANG_GUARD).unwrap())
        .collect();
    assert_eq!(ready, (0..n).collect());
    Running {
        addr,
        shutdown,
        exit,
    }
}

/// Sends one keep-alive GET and reads the response; returns (status line, headers, body).
fn get(conn: &mut BufReader<TcpStream>, path: &str) -> (String, Vec<String>, String) {
    send_get(conn, path);
    read_response(conn)
}

/// Writes a GET request in one `write` (several small writes would meet Nagle's algorithm).
fn send_get(conn: &mut BufReader<TcpStream>, path: &str) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    conn.get_mut().write_all(request.as_bytes()).unwrap();
}

fn read_response(conn: &mut BufReader<TcpStream>) -> (String, Vec<String>, String) {
    let mut status = String::new();
    conn.read_line(&mut status).unwrap();
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
        headers.push(line);
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).unwrap();
    (
        status.trim_end().to_owned(),
        headers,
        String::from_utf8(body).unwrap(),
    )
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    stream.set_nodelay(true).unwrap();
    BufReader::new(stream)
}

#[test]
fn four_loops_serve_10000_requests_and_every_loop_takes_part() {
    let _guard = watchdog("four_loops_serve_10000_requests_and_every_loop_takes_part");
    const LOOPS: usize = 4;
    const CLIENT_THREADS: usize = 8;
    const CONNS_PER_THREAD: usize = 25; // 200 keep-alive connections
    const ROUNDS: usize = 50; // 200 × 50 = 10,000 requests
    let served: Arc<Vec<AtomicUsize>> = Arc::new((0..LOOPS).map(|_| AtomicUsize::new(0)).collect());
    let counts = served.clone();
    let server = start_threaded(LOOPS, move |index| {
        // Built on loop `index`: the handler knows its loop and need not be `Send`.
        let served = counts.clone();
        let name = Rc::new(thread::current().name().unwrap().to_owned());
        move |_req: Request<Body>| {
            served[index].fetch_add(1, Ordering::Relaxed);
            let body = format!("{index} {name}");
            async move { body }
        }
    });

    let addr = server.addr;
    let clients: Vec<_> = (0..CLIENT_THREADS)
        .map(|_| {
            thread::spawn(move || {
                let mut conns: Vec<_> = (0..CONNS_PER_THREAD).map(|_| connect(addr)).collect();
                let mut seen = [0usize; LOOPS];
                for _ in 0..ROUNDS {
                    for conn in &mut conns {
                        let (status, _, body) = get(conn, "/");
                        assert_eq!(status, "HTTP/1.1 200 OK");
                        let (index, name) = body.split_once(' ').unwrap();
                        let index: usize = index.parse().unwrap();
                        assert_eq!(name, format!("untangle-{index}"));
                        seen[index] += 1;
                    }
                }
                seen
            })
        })
        .collect();
    let mut seen = [0usize; LOOPS];
    for client in clients {
        for (total, count) in seen.iter_mut().zip(client.join().unwrap()) {
            *total += count;
        }
    }
    let served: Vec<usize> = served.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(seen.iter().sum::<usize>(), 10_000);
    assert_eq!(
        served, seen,
        "the server's per-loop counts match the clients'"
    );
    // 200 connections hashed over 4 listeners: an idle loop has odds of 4 × (3/4)^200.
    assert!(seen.iter().all(|&n| n > 0), "every loop served: {seen:?}");

    server.shutdown.send_blocking(()).unwrap();
    server.exit.recv_timeout(HANG_GUARD).unwrap().unwrap();
}

#[test]
fn graceful_shutdown_reaches_every_loop_and_in_flight_requests_finish() {
    let _guard = watchdog("graceful_shutdown_reaches_every_loop_and_in_flight_requests_finish");
    const LOOPS: usize = 4;
    let (started_tx, started_rx) = mpsc::channel::<usize>();
    let (release, released) = async_channel::bounded::<()>(1);
    let server = start_threaded(LOOPS, move |index| {
        let started = started_tx.clone();
        let released = released.clone();
        move |_req: Request<Body>| {
            let started = started.clone();
            let released = released.clone();
            async move {
                started.send(index).unwrap();
                // Held until the test closes the channel.
                let _ = released.recv().await;
                format!("finished on {index}")
            }
        }
    });

    // Open connections, each with a request in flight, until every loop holds one.
    let mut in_flight = Vec::new();
    let mut loops = BTreeSet::new();
    while loops.len() < LOOPS {
        assert!(in_flight.len() < 1000, "a loop never got a connection");
        let mut conn = connect(server.addr);
        send_get(&mut conn, "/slow");
        let index = started_rx.recv_timeout(HANG_GUARD).unwrap();
        loops.insert(index);
        in_flight.push((conn, index));
    }

    server.shutdown.send_blocking(()).unwrap();
    // Every loop closes its listener: only then are new connections refused.
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        match TcpStream::connect(server.addr) {
            Err(err) if err.kind() == ErrorKind::ConnectionRefused => break,
            Err(err) => panic!("unexpected connect error: {err}"),
            Ok(_) => {
                assert!(Instant::now() < deadline, "a loop kept its listener open");
                thread::sleep(Duration::from_millis(5));
            }
        }
    }
    assert!(
        matches!(server.exit.try_recv(), Err(mpsc::TryRecvError::Empty)),
        "serve returned while requests were in flight"
    );

    release.close();
    for (mut conn, index) in in_flight {
        let (status, _, body) = read_response(&mut conn);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, format!("finished on {index}"));
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the connection closes after its response");
    }
    server.exit.recv_timeout(HANG_GUARD).unwrap().unwrap();
}

#[test]
fn serve_clones_a_send_handler_onto_every_loop() {
    let _guard = watchdog("serve_clones_a_send_handler_onto_every_loop");
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let server = thread::spawn(move || {
        untangle::block_on(async move {
            // A shutdown signal set before `threads` carries over.
            let server = Server::bind("127.0.0.1:0")
                .await?
                .with_graceful_shutdown(async move {
                    let _ = stopped.recv().await;
                })
                .threads(2);
            addr_tx.send(server.local_addr()?).unwrap();
            server
                .serve(|_req: Request<Body>| async { thread::current().name().unwrap().to_owned() })
                .await
        })
    });
    let addr = addr_rx.recv_timeout(HANG_GUARD).unwrap();
    let mut conn = connect(addr);
    let (status, _, body) = get(&mut conn, "/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body == "untangle-0" || body == "untangle-1", "{body}");
    drop(conn);
    stop.send_blocking(()).unwrap();
    server.join().unwrap().unwrap();
}

#[test]
fn dropping_the_serve_future_shuts_every_loop_down() {
    let _guard = watchdog("dropping_the_serve_future_shuts_every_loop_down");
    let (addr_tx, addr_rx) = mpsc::channel();
    let (served_tx, served_rx) = mpsc::channel::<()>();
    let (cancel, cancelled) = async_channel::bounded::<()>(1);
    let server = thread::spawn(move || {
        untangle::block_on(async move {
            let server = Server::bind("127.0.0.1:0").await.unwrap().threads(2);
            addr_tx.send(server.local_addr().unwrap()).unwrap();
            let serving = server.serve(move |_req: Request<Body>| {
                let served = served_tx.clone();
                async move {
                    let _ = served.send(());
                    "hi"
                }
            });
            // The serve future is dropped when `cancelled` completes first.
            let outcome = serving
                .or(async move {
                    let _ = cancelled.recv().await;
                    Ok(())
                })
                .await;
            outcome.unwrap();
        })
    });
    let addr = addr_rx.recv_timeout(HANG_GUARD).unwrap();
    let mut conn = connect(addr);
    assert_eq!(get(&mut conn, "/").0, "HTTP/1.1 200 OK");
    served_rx.recv_timeout(HANG_GUARD).unwrap();
    cancel.send_blocking(()).unwrap();
    server.join().unwrap();
    // The idle connection is closed and both listeners go away.
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let deadline = Instant::now() + HANG_GUARD;
    while TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "a loop kept its listener open");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Counts drops in a shared counter.
struct CountDrop(Arc<AtomicUsize>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The CPUs in a set, ascending.
fn cpus(set: &rustix::thread::CpuSet) -> Vec<usize> {
    (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect()
}

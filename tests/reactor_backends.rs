//! The reactor's rules, on whichever backend `UNTANGLE_REACTOR` selects (`.ci/run` runs the
//! suite on `epoll`, `polling` and `polling-oneshot`): these bite the portable path, which
//! cannot see half-closes and, one-shot, must re-arm after every event.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use common::{run, watchdog};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use untangle::net::{TcpListener, TcpStream};
use untangle::Async;

#[test]
fn backend_is_the_one_untangle_reactor_names() {
    let wanted = std::env::var("UNTANGLE_REACTOR").unwrap_or_default();
    let expected = match wanted.as_str() {
        "polling" => "polling",
        "polling-oneshot" => "polling-oneshot",
        _ => "epoll",
    };
    untangle::block_on(async { assert_eq!(untangle::__reactor_backend(), expected) });
}

#[test]
fn data_and_fin_in_one_edge_are_read_to_eof() {
    let _guard = watchdog("data_and_fin_in_one_edge_are_read_to_eof");
    // The peer's data and FIN are both queued before the fd is registered, so the first edge
    // reports both at once; the first (short) read must not lose the EOF behind it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client.write_all(b"last words").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    thread::sleep(Duration::from_millis(20));
    run(async move {
        let mut stream = TcpStream::try_from(server).unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        assert_eq!(all, b"last words");
    });
}

#[test]
fn data_and_fin_arriving_while_parked_are_read_to_eof() {
    let _guard = watchdog("data_and_fin_arriving_while_parked_are_read_to_eof");
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = thread::spawn(move || {
            let mut peer = std::net::TcpStream::connect(addr).unwrap();
            thread::sleep(Duration::from_millis(30));
            peer.write_all(&[7u8; 3000]).unwrap();
            peer.shutdown(std::net::Shutdown::Write).unwrap();
            // Keep the socket open (no full hang-up): only the half-close ends the stream.
            thread::sleep(Duration::from_millis(300));
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.unwrap();
        assert_eq!(all.len(), 3000);
        writer.join().unwrap();
    });
}

/// Fills `stream`'s send buffer until a write would block.
fn fill_send_buffer(stream: &StdUnixStream) {
    stream.set_nonblocking(true).unwrap();
    let chunk = [0u8; 65536];
    while (&*stream).write(&chunk).is_ok() {}
    stream.set_nonblocking(false).unwrap();
}

#[test]
fn hang_up_wakes_both_directions() {
    let _guard = watchdog("hang_up_wakes_both_directions");
    let (a, b) = StdUnixStream::pair().unwrap();
    fill_send_buffer(&a);
    run(async move {
        let a = Rc::new(Async::new(a).unwrap());
        let reader = untangle::spawn({
            let a = a.clone();
            async move {
                let mut buf = [0u8; 16];
                (&*a).read(&mut buf).await
            }
        });
        let writer = untangle::spawn({
            let a = a.clone();
            async move { (&*a).write(&[1u8; 65536]).await }
        });
        // Both park: nothing to read, no room to write.
        untangle::time::sleep(Duration::from_millis(20)).await;
        assert!(!reader.is_finished() && !writer.is_finished());
        drop(b);
        // Both wake: the reader with EOF or a reset (the peer dropped unread data), the writer
        // with EPIPE.
        assert!(matches!(reader.await, Ok(0) | Err(_)));
        assert!(writer.await.is_err());
    });
}

#[test]
fn cross_thread_wake_interrupts_a_wait() {
    let _guard = watchdog("cross_thread_wake_interrupts_a_wait");
    let (tx, rx) = async_channel::bounded::<u32>(1);
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        tx.send_blocking(9).unwrap();
    });
    untangle::block_on(async {
        // A registered fd and no timer: the loop blocks in the poller with no timeout.
        let (_keep, _peer) = StdUnixStream::pair().unwrap();
        let _registered = Async::new(_keep).unwrap();
        assert_eq!(rx.recv().await.unwrap(), 9);
    });
    sender.join().unwrap();
}

#[test]
fn many_tasks_waiting_on_one_fd_and_direction_all_wake() {
    let _guard = watchdog("many_tasks_waiting_on_one_fd_and_direction_all_wake");
    let (a, mut b) = StdUnixStream::pair().unwrap();
    run(async move {
        let a = Rc::new(Async::new(a).unwrap());
        let waiters: Vec<_> = (0..50)
            .map(|_| {
                let a = a.clone();
                untangle::spawn(async move { a.readable().await })
            })
            .collect();
        untangle::time::sleep(Duration::from_millis(10)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()));
        b.write_all(b"x").unwrap();
        for waiter in waiters {
            waiter.await.unwrap();
        }
    });
}

#[test]
fn reader_and_writer_on_one_fd_both_progress() {
    let _guard = watchdog("reader_and_writer_on_one_fd_both_progress");
    // One task writes 4 MiB while another reads the echo on the same fd: on a one-shot backend
    // an event for one direction disarms both, and neither may be stranded.
    let (a, b) = StdUnixStream::pair().unwrap();
    let echo = thread::spawn(move || {
        let mut b = b;
        let mut buf = [0u8; 8192];
        loop {
            match b.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => b.write_all(&buf[..n]).unwrap(),
            }
        }
    });
    const TOTAL: usize = 4 << 20;
    run(async move {
        let a = Rc::new(Async::new(a).unwrap());
        let writer = untangle::spawn({
            let a = a.clone();
            async move {
                let chunk = vec![3u8; 16384];
                for _ in 0..TOTAL / chunk.len() {
                    (&*a).write_all(&chunk).await.unwrap();
                }
                a.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
            }
        });
        let mut got = 0;
        let mut buf = vec![0u8; 32768];
        loop {
            let n = (&*a).read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&x| x == 3));
            got += n;
        }
        writer.await;
        assert_eq!(got, TOTAL);
    });
    echo.join().unwrap();
}

#[test]
fn source_dropped_with_an_event_in_flight_wakes_nobody_and_leaks_nothing() {
    let _guard = watchdog("source_dropped_with_an_event_in_flight_wakes_nobody_and_leaks_nothing");
    run(async {
        let baseline_fds = common::open_socket_count();
        let baseline_sources = untangle::__live_sources();
        let mut peers = Vec::new();
        let mut parked = Vec::new();
        for _ in 0..20 {
            let (a, b) = StdUnixStream::pair().unwrap();
            let a = Rc::new(Async::new(a).unwrap());
            parked.push((
                a.clone(),
                untangle::spawn(async move {
                    let _ = a.readable().await;
                }),
            ));
            peers.push(b);
        }
        untangle::time::sleep(Duration::from_millis(10)).await;
        // Make every source ready (the events are now queued in the kernel), then drop the
        // sources and their tasks before the loop waits again.
        for peer in &mut peers {
            peer.write_all(b"x").unwrap();
        }
        for (source, task) in parked.drain(..) {
            drop(task);
            drop(source);
        }
        // New sources take the freed keys; no stale event may mark them ready.
        let mut fresh = Vec::new();
        for _ in 0..20 {
            let (a, b) = StdUnixStream::pair().unwrap();
            let a = Rc::new(Async::new(a).unwrap());
            let task = untangle::spawn({
                let a = a.clone();
                async move {
                    let _ = a.readable().await;
                }
            });
            fresh.push((a, b, task));
        }
        untangle::time::sleep(Duration::from_millis(20)).await;
        assert!(fresh.iter().all(|(_, _, task)| !task.is_finished()));
        drop(fresh);
        drop(peers);
        untangle::yield_now().await;
        assert_eq!(untangle::__live_sources(), baseline_sources);
        assert_eq!(common::open_socket_count(), baseline_fds);
    });
}

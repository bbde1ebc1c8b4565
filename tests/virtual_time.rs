//! Virtual time: a paused loop clock jumps to the next timer when the loop has nothing to do,
//! `advance` fires what is due and no more, and `resume` goes back to real speed without firing
//! anything early. Every untangle timeout runs on it, the HTTP server's included.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::watchdog;
use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
use untangle::net::{TcpListener, TcpStream};
use untangle::time::{self, interval, sleep, timeout};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn paused_timers_fire_in_deadline_order_at_their_exact_virtual_time() {
    let _guard = watchdog("paused_timers_fire_in_deadline_order_at_their_exact_virtual_time");
    untangle::block_on(async {
        time::pause();
        let real = Instant::now();
        let start = time::now();
        let fired = Rc::new(RefCell::new(Vec::new()));
        let tasks: Vec<_> = [50u64, 10, 3600, 30, 10]
            .into_iter()
            .enumerate()
            .map(|(i, secs)| {
                let fired = fired.clone();
                untangle::spawn(async move {
                    sleep(SEC * secs as u32).await;
                    fired.borrow_mut().push((i, time::now() - start));
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
        assert_eq!(
            *fired.borrow(),
            [
                (1, SEC * 10),
                (4, SEC * 10),
                (3, SEC * 30),
                (0, SEC * 50),
                (2, SEC * 3600)
            ]
        );
        assert_eq!(time::now() - start, SEC * 3600);
        assert!(
            real.elapsed() < Duration::from_secs(20),
            "no real hour passed"
        );
        time::resume();
    });
}

#[test]
fn advance_fires_what_is_due_and_no_more() {
    let _guard = watchdog("advance_fires_what_is_due_and_no_more");
    untangle::block_on(async {
        time::pause();
        let start = time::now();
        let at_10 = untangle::spawn(sleep(SEC * 10));
        let at_20 = untangle::spawn(sleep(SEC * 20));
        let at_21 = untangle::spawn(sleep(SEC * 21));
        time::advance(SEC * 5).await;
        assert!(!at_10.is_finished() && !at_20.is_finished());
        time::advance(SEC * 15).await;
        assert_eq!(time::now() - start, SEC * 20);
        assert!(at_10.is_finished() && at_20.is_finished());
        assert!(!at_21.is_finished(), "one second early");
        time::advance(SEC).await;
        assert!(at_21.is_finished());
        time::resume();
    });
}

#[test]
fn interval_and_timeout_run_on_virtual_time() {
    let _guard = watchdog("interval_and_timeout_run_on_virtual_time");
    untangle::block_on(async {
        time::pause();
        let start = time::now();
        let mut every = interval(SEC * 60);
        let ticks: Vec<Instant> = (&mut every).take(4).collect().await;
        let offsets: Vec<Duration> = ticks.iter().map(|t| *t - start).collect();
        assert_eq!(offsets, [Duration::ZERO, SEC * 60, SEC * 120, SEC * 180]);
        let never = futures_lite::future::pending::<()>();
        assert!(timeout(SEC * 86_400, never).await.is_err());
        assert_eq!(time::now() - start, SEC * (180 + 86_400));
        time::resume();
    });
}

#[test]
fn resume_returns_to_real_time_without_firing_early() {
    let _guard = watchdog("resume_returns_to_real_time_without_firing_early");
    untangle::block_on(async {
        time::pause();
        time::advance(SEC * 100).await;
        let deadline = time::now() + Duration::from_millis(50);
        let pending = untangle::spawn(time::sleep_until(deadline));
        time::resume();
        let real = Instant::now();
        pending.await;
        // Back on real time: the 50 ms took at least 50 real ms.
        assert!(real.elapsed() >= Duration::from_millis(50));
        assert!(time::now() >= deadline);
    });
}

#[test]
fn advance_without_pause_is_a_clear_panic() {
    let result = std::panic::catch_unwind(|| {
        untangle::block_on(time::advance(SEC));
    });
    let message = common::panic_message(&*result.unwrap_err());
    assert!(message.contains("pause"), "{message}");
}

#[test]
fn server_header_read_timeout_fires_in_virtual_time() {
    let _guard = watchdog("server_header_read_timeout_fires_in_virtual_time");
    untangle::block_on(async {
        time::pause();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = untangle::http::Server::from_listener(listener)
            .header_read_timeout(SEC * 30)
            .serve(|_req| async { "hi" });
        let server = untangle::spawn(server);
        let start = time::now();
        let real = Instant::now();
        let mut client = TcpStream::connect(addr).await.unwrap();
        // Half a head, then silence: the server's 30 s header timeout must answer 408.
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut response = Vec::new();
        client.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(time::now() - start >= SEC * 30);
        assert!(
            real.elapsed() < Duration::from_secs(20),
            "no real 30 s passed"
        );
        drop(server);
        time::resume();
    });
}

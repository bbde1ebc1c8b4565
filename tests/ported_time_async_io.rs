//! async-io's `tests/timer.rs` ported to untangle: its `Timer` is our [`Sleep`] (`after` is
//! `sleep`, `at` is `sleep_until`, `set_after` is `reset`) and its `Timer::interval` our
//! `interval`; run on the paused clock where real time adds nothing.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::future::poll_once;
use futures_lite::StreamExt;
use untangle::time::{self, interval, sleep, Sleep};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `future` on a paused clock, under a watchdog (a timer hang guard would be the next
/// deadline the paused clock jumps to).
fn paused<F: Future>(future: F) -> F::Output {
    let _watchdog = common::watchdog("paused");
    untangle::block_on(async {
        time::pause();
        let out = future.await;
        time::resume();
        out
    })
}

#[test]
fn smoke_a_sleep_takes_its_duration() {
    paused(async {
        let start = time::now();
        sleep(Duration::from_secs(1)).await;
        assert_eq!(time::now() - start, Duration::from_secs(1));
    });
    // And in real time, never early.
    untangle::block_on(async {
        let start = Instant::now();
        sleep(ms(5)).await;
        assert!(start.elapsed() >= ms(5));
    });
}

#[test]
fn interval_as_a_stream_ticks_a_period_apart() {
    // async-io's `Timer::interval` first fires after one period; ours at once (as tokio's).
    paused(async {
        let start = time::now();
        let mut ticks = interval(Duration::from_secs(1));
        assert_eq!(ticks.next().await, Some(start));
        assert_eq!(ticks.next().await, Some(start + Duration::from_secs(1)));
        assert_eq!(ticks.next().await, Some(start + Duration::from_secs(2)));
        assert_eq!(time::now() - start, Duration::from_secs(2));
    });
}

#[test]
fn a_sleep_polled_by_one_task_then_awaited_by_another_wakes_the_second() {
    // async-io: poll_across_tasks.
    paused(async {
        let start = time::now();
        let (tx, rx) = async_channel::bounded::<Sleep>(1);
        let first = untangle::spawn(async move {
            let mut s = sleep(Duration::from_secs(1));
            assert_eq!(poll_once(&mut s).await, None);
            tx.send(s).await.unwrap();
        });
        let second = untangle::spawn(async move { rx.recv().await.unwrap().await });
        first.await;
        second.await;
        assert_eq!(time::now() - start, Duration::from_secs(1));
    });
}

#[test]
fn a_sleep_reset_from_another_thread_wakes_its_task_at_the_new_deadline() {
    // async-io: set (Timer::set_after from another thread while a task waits on it).
    let _watchdog = common::watchdog("a_sleep_reset_from_another_thread");
    untangle::block_on(async {
        let start = Instant::now();
        let shared = Arc::new(Mutex::new(sleep(Duration::from_secs(3600))));
        let polled = Arc::new(AtomicBool::new(false));
        let resetter = {
            let (shared, polled) = (shared.clone(), polled.clone());
            std::thread::spawn(move || {
                while !polled.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                let mut s = shared.lock().unwrap();
                let deadline = Instant::now() + ms(20);
                s.reset(deadline);
                deadline
            })
        };
        futures_lite::future::poll_fn(|cx| {
            let poll = Pin::new(&mut *shared.lock().unwrap()).poll(cx);
            polled.store(true, Ordering::SeqCst);
            poll
        })
        .await;
        let deadline = resetter.join().unwrap();
        assert!(Instant::now() >= deadline);
        assert!(start.elapsed() < Duration::from_secs(60));
    });
}

//! The cross-thread wake path (remote queue + poller notification + sleep flag) never loses a
//! wake-up: many threads wake many parked loop tasks, and spawn onto the loop through
//! `Handle::spawn`, round after round, while the loop keeps going to sleep in `epoll_wait`
//! between rounds (an fd is registered, no timer is armed). A lost wake-up hangs the loop,
//! which only the watchdog thread (not a loop timer, which would wake it) can catch.
//!
//! Complements tests/executor.rs's single-producer stress tests with many wakers at once,
//! wakes racing with the task's own poll, duplicate wakes and spawns from several threads.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;

use untangle::{block_on, spawn, Handle};

const TASKS: usize = 64;
const THREADS: usize = 6;
const ROUNDS: u64 = 400;

/// A per-task signal: a round number and the parked task's waker.
#[derive(Default)]
struct Signal {
    round: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

/// Pending until the signal reaches `round`.
struct WaitRound<'a> {
    signal: &'a Signal,
    round: u64,
}

impl Future for WaitRound<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Store the waker *before* checking, as a correct future must: the race with the
        // waking thread is then the executor's to get right.
        *self.signal.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.signal.round.load(Ordering::SeqCst) >= self.round {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn many_threads_waking_parked_tasks_and_spawning_never_lose_a_wake() {
    let _watchdog = common::watchdog("wake stress");
    let signals: Arc<Vec<Signal>> = Arc::new((0..TASKS).map(|_| Signal::default()).collect());
    let reached = Arc::new(AtomicUsize::new(0));
    let spawned = Arc::new(AtomicUsize::new(0));

    let total = block_on(async {
        // An fd registered with the reactor, so that idle means sleeping in epoll_wait.
        let (_a, _b) = untangle::net::UnixStream::pair().unwrap();
        let handle = Handle::current();
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let signals = signals.clone();
                let reached = reached.clone();
                spawn(async move {
                    for round in 1..=ROUNDS {
                        WaitRound {
                            signal: &signals[i],
                            round,
                        }
                        .await;
                        reached.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();

        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let signals = signals.clone();
                let reached = reached.clone();
                let spawned = spawned.clone();
                let handle = handle.clone();
                thread::spawn(move || {
                    let mut remote_tasks = Vec::new();
                    for round in 1..=ROUNDS {
                        for i in (t..TASKS).step_by(THREADS) {
                            signals[i].round.store(round, Ordering::SeqCst);
                            let waker = signals[i].waker.lock().unwrap().clone();
                            if let Some(waker) = waker {
                                // Duplicate wakes, by reference and by value.
                                waker.wake_by_ref();
                                waker.wake();
                            }
                        }
                        let spawned = spawned.clone();
                        remote_tasks.push(handle.spawn(async move {
                            spawned.fetch_add(1, Ordering::SeqCst);
                        }));
                        // Let the loop run dry and go back to sleep before the next round.
                        while reached.load(Ordering::SeqCst) < round as usize * TASKS {
                            thread::yield_now();
                        }
                    }
                    remote_tasks
                })
            })
            .collect();

        for task in tasks {
            task.await;
        }
        let mut total = 0;
        for thread in threads {
            // Joined from the loop: the remote tasks are all spawned by now.
            for task in thread.join().unwrap() {
                task.await;
                total += 1;
            }
        }
        total
    });
    assert_eq!(reached.load(Ordering::SeqCst), TASKS * ROUNDS as usize);
    assert_eq!(total, THREADS * ROUNDS as usize);
    assert_eq!(spawned.load(Ordering::SeqCst), THREADS * ROUNDS as usize);
}

#[test]
fn wakers_cloned_and_dropped_on_other_threads_after_the_task_ended_are_harmless() {
    let _watchdog = common::watchdog("late wakers");
    let stash: Arc<Mutex<Vec<Waker>>> = Arc::default();
    block_on(async {
        for _ in 0..100 {
            let stash = stash.clone();
            spawn(futures_lite::future::poll_fn(move |cx| {
                stash.lock().unwrap().push(cx.waker().clone());
                Poll::Ready(())
            }))
            .await;
        }
    });
    // The tasks are finished; waking and dropping their wakers elsewhere does nothing.
    let wakers = std::mem::take(&mut *stash.lock().unwrap());
    thread::spawn(move || {
        for waker in wakers {
            waker.wake_by_ref();
            waker.wake();
        }
    })
    .join()
    .unwrap();
    assert_eq!(block_on(async { spawn(async { 3 }).await }), 3);
}

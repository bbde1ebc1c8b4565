//! Runtime-independent synchronisation crates on untangle: `async-channel` and `async-lock`'s
//! `Mutex`, `RwLock`, `Semaphore` and `Barrier`, shared by tasks on one loop and by tasks on two
//! loops on two threads (reached with [`Handle::spawn`]). Their wakers cross threads, so these
//! tests also prove that a wake from another loop's thread reaches a sleeping loop.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use async_lock::{Barrier, Mutex, RwLock, Semaphore};
use common::run;
use untangle::{spawn, yield_now, Handle, Task};

/// A second loop on its own thread, running until dropped.
struct Worker {
    handle: Handle,
    stop: Option<async_channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn start() -> Worker {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("second-loop".into())
            .spawn(move || {
                untangle::block_on(async move {
                    handle_tx.send(Handle::current()).unwrap();
                    // Runs spawned tasks until the sender is dropped.
                    let _ = stopped.recv().await;
                });
            })
            .unwrap();
        Worker {
            handle: handle_rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                result.unwrap();
            }
        }
    }
}

/// Spawns `make(i)` for `i` in `0..n`, alternating between this loop and `worker`'s.
fn spawn_on_both<F, Fut>(worker: &Worker, n: usize, make: F) -> Vec<Task<Fut::Output>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                spawn(make(i))
            } else {
                worker.handle.spawn(make(i))
            }
        })
        .collect()
}

#[test]
fn async_channel_mpmc_between_tasks_on_two_loops_delivers_every_message_once() {
    let worker = Worker::start();
    run(async {
        let (tx, rx) = async_channel::bounded::<u64>(8);
        let producers = spawn_on_both(&worker, 4, |p| {
            let tx = tx.clone();
            async move {
                for i in 0..1_000u64 {
                    tx.send(p as u64 * 1_000 + i).await.unwrap();
                }
            }
        });
        let consumers = spawn_on_both(&worker, 4, |_| {
            let rx = rx.clone();
            async move {
                let (mut count, mut sum) = (0u64, 0u64);
                while let Ok(v) = rx.recv().await {
                    count += 1;
                    sum += v;
                }
                (count, sum)
            }
        });
        drop((tx, rx));
        for p in producers {
            p.await;
        }
        let (mut count, mut sum) = (0, 0);
        for c in consumers {
            let (n, s) = c.await;
            count += n;
            sum += s;
        }
        assert_eq!(count, 4_000);
        assert_eq!(sum, (0..4_000u64).sum::<u64>());
    });
}

#[test]
fn async_lock_mutex_excludes_tasks_on_two_loops_even_across_awaits() {
    let worker = Worker::start();
    run(async {
        let counter = Arc::new(Mutex::new(0u64));
        let inside = Arc::new(AtomicUsize::new(0));
        let tasks = spawn_on_both(&worker, 8, |_| {
            let (counter, inside) = (counter.clone(), inside.clone());
            async move {
                for _ in 0..200 {
                    let mut guard = counter.lock().await;
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    let read = *guard;
                    // Suspend while holding the lock: others must queue, not interleave.
                    yield_now().await;
                    *guard = read + 1;
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            }
        });
        for t in tasks {
            t.await;
        }
        // No lost update: every read-yield-write happened under exclusion.
        assert_eq!(*counter.lock().await, 8 * 200);
    });
}

#[test]
fn async_lock_rwlock_admits_readers_together_and_writers_alone_across_loops() {
    let worker = Worker::start();
    run(async {
        const READERS: usize = 4;
        let lock = Arc::new(RwLock::new(0u32));
        // Every reader waits at this barrier *while holding its read guard*: they can only all
        // pass if the lock let all of them in at once.
        let all_reading = Arc::new(Barrier::new(READERS));
        let guard = lock.read().await;
        let readers = spawn_on_both(&worker, READERS, |_| {
            let (lock, all_reading) = (lock.clone(), all_reading.clone());
            async move {
                let value = lock.read().await;
                all_reading.wait().await;
                *value
            }
        });
        for r in readers {
            assert_eq!(r.await, 0);
        }

        // A writer on the other loop waits for our read guard.
        let wrote = Arc::new(AtomicBool::new(false));
        let writer = worker.handle.spawn({
            let (lock, wrote) = (lock.clone(), wrote.clone());
            async move {
                *lock.write().await = 7;
                wrote.store(true, Ordering::SeqCst);
            }
        });
        for _ in 0..20 {
            yield_now().await;
        }
        assert!(
            !wrote.load(Ordering::SeqCst),
            "writer got in beside a reader"
        );
        drop(guard);
        writer.await;
        assert_eq!(*lock.read().await, 7);
    });
}

#[test]
fn async_lock_semaphore_caps_concurrency_across_loops_and_wakes_waiters_on_release() {
    let worker = Worker::start();
    run(async {
        const PERMITS: usize = 3;
        let semaphore = Arc::new(Semaphore::new(PERMITS));
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks = spawn_on_both(&worker, 20, |_| {
            let (semaphore, running, peak) = (semaphore.clone(), running.clone(), peak.clone());
            async move {
                let _permit = semaphore.acquire_arc().await;
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                for _ in 0..3 {
                    yield_now().await;
                }
                running.fetch_sub(1, Ordering::SeqCst);
            }
        });
        for t in tasks {
            t.await;
        }
        assert!(peak.load(Ordering::SeqCst) <= PERMITS);

        // With every permit held here, the other loop's task can only wait; releasing one here
        // wakes it there.
        let held: Vec<_> = (0..PERMITS)
            .map(|_| semaphore.try_acquire_arc().unwrap())
            .collect();
        let (checked_tx, checked) = async_channel::bounded::<()>(1);
        let waiter = worker.handle.spawn({
            let semaphore = semaphore.clone();
            async move {
                assert!(semaphore.try_acquire().is_none());
                let acquire = semaphore.acquire();
                checked_tx.send(()).await.unwrap();
                let _permit = acquire.await;
                "acquired"
            }
        });
        checked.recv().await.unwrap();
        for _ in 0..20 {
            yield_now().await;
        }
        assert!(
            !waiter.is_finished(),
            "acquired a permit while all were held"
        );
        drop(held);
        assert_eq!(waiter.await, "acquired");
    });
}

#[test]
fn async_lock_barrier_releases_tasks_on_two_loops_and_a_blocking_thread_together() {
    let worker = Worker::start();
    run(async {
        const TASKS: usize = 6;
        // TASKS tasks on two loops plus one pool thread blocking on the same barrier.
        let barrier = Arc::new(Barrier::new(TASKS + 1));
        let passed = Arc::new(AtomicUsize::new(0));
        let tasks = spawn_on_both(&worker, TASKS, |_| {
            let (barrier, passed) = (barrier.clone(), passed.clone());
            async move {
                let result = barrier.wait().await;
                passed.fetch_add(1, Ordering::SeqCst);
                result.is_leader()
            }
        });
        for _ in 0..20 {
            yield_now().await;
        }
        // Nobody passes before the last party arrives.
        assert_eq!(passed.load(Ordering::SeqCst), 0);
        let blocking = untangle::unblock({
            let barrier = barrier.clone();
            move || barrier.wait_blocking().is_leader()
        });
        let mut leaders = usize::from(blocking.await);
        for t in tasks {
            leaders += usize::from(t.await);
        }
        assert_eq!(passed.load(Ordering::SeqCst), TASKS);
        assert_eq!(leaders, 1, "exactly one party is the leader");
    });
}

//! tokio's `spawn_blocking` tests (`rt_common` blocking cases, `task_blocking.rs`), ported to
//! `untangle::unblock`: concurrency, panics, cancellation before and during the job, nesting,
//! and use outside a loop.

mod common;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;

use common::{panic_message, run, watchdog, HANG_GUARD};
use futures::FutureExt;
use untangle::{spawn, unblock};

/// tokio `spawn_many_from_block_on` / `blocking_tasks`: 64 jobs that can only finish together
/// (each waits at one barrier) all run at once, from tasks on the loop.
#[test]
fn many_concurrent_blocking_jobs() {
    let _guard = watchdog("many_concurrent_blocking_jobs");
    const JOBS: usize = 64;
    let barrier = Arc::new(Barrier::new(JOBS));
    let total = run(async move {
        let tasks: Vec<_> = (0..JOBS)
            .map(|i| {
                let barrier = barrier.clone();
                spawn(async move { unblock(move || barrier.wait().is_leader() as usize + i).await })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await;
        }
        total
    });
    assert_eq!(total, 1 + (0..JOBS).sum::<usize>(), "exactly one leader");
}

/// tokio `spawn_blocking_panic`: the payload, of any type, reaches the awaiter; the pool keeps
/// working, jobs queued behind and beside the panicking one included.
#[test]
fn a_panicking_job_reraises_its_payload_and_the_pool_survives() {
    run(async {
        let neighbours: Vec<_> = (0..8).map(|i| unblock(move || i)).collect();
        let payload = AssertUnwindSafe(unblock(|| -> () { std::panic::panic_any(42_u64) }))
            .catch_unwind()
            .await
            .unwrap_err();
        assert_eq!(payload.downcast_ref::<u64>(), Some(&42));
        assert_eq!(
            futures::future::join_all(neighbours).await,
            (0..8).collect::<Vec<_>>()
        );
        for _ in 0..4 {
            let payload = AssertUnwindSafe(unblock(|| -> u8 { panic!("again") }))
                .catch_unwind()
                .await
                .unwrap_err();
            assert_eq!(panic_message(&*payload), "again");
        }
        assert_eq!(unblock(|| "still usable").await, "still usable");
    });
}

/// A panicking job whose future was dropped: nobody receives the panic, nothing else fails.
#[test]
fn a_panicking_job_nobody_awaits_is_contained() {
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let job = unblock(move || {
        started_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        panic!("nobody listens");
    });
    started_rx.recv_timeout(HANG_GUARD).unwrap();
    drop(job);
    go_tx.send(()).unwrap();
    assert_eq!(run(unblock(|| 3)), 3);
}

/// tokio `abort_before_spawn_blocking_runs` / drop: dropping the future right away either
/// cancels the job or lets it finish; in both cases the closure (and everything it captured)
/// is dropped, so nothing leaks and nothing waits for it.
#[test]
fn dropping_the_future_at_once_releases_the_job() {
    let _guard = watchdog("dropping_the_future_at_once_releases_the_job");
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..200 {
        let (alive_tx, alive_rx) = mpsc::channel::<()>();
        let counter = ran.clone();
        drop(unblock(move || {
            let _alive = alive_tx;
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        // Disconnected once the closure is gone, whether it ran or was cancelled.
        assert_eq!(
            alive_rx.recv_timeout(HANG_GUARD),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }
    assert!(ran.load(Ordering::SeqCst) <= 200);
}

/// tokio `spawn_blocking` dropped while running: the job is not interrupted, it runs to its
/// end, and its output is dropped (on the pool) since nobody awaits it.
#[test]
fn dropping_the_future_while_the_job_runs_lets_it_finish() {
    let _guard = watchdog("dropping_the_future_while_the_job_runs_lets_it_finish");
    struct Output(mpsc::Sender<&'static str>);
    impl Drop for Output {
        fn drop(&mut self) {
            let _ = self.0.send("output dropped");
        }
    }
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (events_tx, events_rx) = mpsc::channel();
    let job = unblock(move || {
        started_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        events_tx.send("finished").unwrap();
        Output(events_tx)
    });
    started_rx.recv_timeout(HANG_GUARD).unwrap();
    drop(job);
    go_tx.send(()).unwrap();
    assert_eq!(events_rx.recv_timeout(HANG_GUARD), Ok("finished"));
    assert_eq!(events_rx.recv_timeout(HANG_GUARD), Ok("output dropped"));
}

/// Jobs whose futures are kept all run; those whose futures are dropped at once run or are
/// skipped (whether one got a thread first is a race), never more than once each.
#[test]
fn a_job_runs_at_most_once_however_its_future_ends() {
    run(async {
        let ran = Arc::new(AtomicUsize::new(0));
        let mut kept = Vec::new();
        for i in 0..100 {
            let counter = ran.clone();
            let job = unblock(move || counter.fetch_add(1, Ordering::SeqCst));
            if i % 2 == 0 {
                kept.push(job);
            }
        }
        let kept_count = kept.len();
        futures::future::join_all(kept).await;
        let ran = ran.load(Ordering::SeqCst);
        assert!((kept_count..=100).contains(&ran), "{ran} runs");
    });
}

/// tokio `spawn_blocking_from_blocking`: a job starts another job and waits for it, three
/// levels deep, without the pool deadlocking (each level gets its own thread).
#[test]
fn nested_unblock_from_inside_a_job() {
    let _guard = watchdog("nested_unblock_from_inside_a_job");
    let value = run(unblock(|| {
        let outer = thread::current().id();
        let inner = futures::executor::block_on(unblock(move || {
            let middle = thread::current().id();
            assert_ne!(middle, outer);
            futures::executor::block_on(unblock(move || {
                assert_ne!(thread::current().id(), middle);
                7
            }))
        }));
        inner * 6
    }));
    assert_eq!(value, 42);
}

/// Many jobs that each start and await a nested job, all at once (a deadlock check: the outer
/// jobs hold threads while their inner jobs need more).
#[test]
fn many_jobs_each_waiting_on_a_nested_job() {
    let _guard = watchdog("many_jobs_each_waiting_on_a_nested_job");
    run(async {
        let jobs: Vec<_> = (0..32)
            .map(|i| unblock(move || futures::executor::block_on(unblock(move || i * 2))))
            .collect();
        let results = futures::future::join_all(jobs).await;
        assert_eq!(results, (0..32).map(|i| i * 2).collect::<Vec<_>>());
    });
}

/// tokio `spawn_blocking` outside a runtime panics; `unblock` needs no loop: it works from a
/// plain thread, awaited by another executor or polled by hand.
#[test]
fn unblock_outside_a_loop() {
    let _guard = watchdog("unblock_outside_a_loop");
    let out = thread::spawn(|| {
        let job = unblock(|| thread::current().name().map(String::from));
        futures::executor::block_on(job)
    })
    .join()
    .unwrap();
    assert_eq!(out.as_deref(), Some("untangle-blocking"));
    // Created outside any loop, awaited inside one.
    let job = unblock(|| 11);
    assert_eq!(run(job), 11);
}

/// An `unblock` future is `Send` (created on one loop, awaited on another thread's loop) and
/// `Unpin` (it can be polled through `&mut` without pinning, as a tokio `JoinHandle` can).
#[test]
fn an_unblock_future_moves_between_loops() {
    fn assert_unpin<F: Unpin>(_: &F) {}
    let mut quick = unblock(|| 1);
    assert_unpin(&quick);
    assert_eq!(run(&mut quick), 1);
    let _guard = watchdog("an_unblock_future_moves_between_loops");
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (job_tx, job_rx) = mpsc::channel();
    run(async move {
        job_tx
            .send(unblock(move || go_rx.recv().map(|()| 5)))
            .unwrap()
    });
    let job = job_rx.recv().unwrap();
    let awaiter = thread::spawn(move || untangle::block_on(job));
    go_tx.send(()).unwrap();
    assert_eq!(awaiter.join().unwrap(), Ok(5));
}

/// A destructor that panics on the pool (of the output nobody awaits, or of a cancelled job's
/// closure) is contained, as tokio contains it: logged, and the process and the pool carry on.
/// (async-task itself aborts the process on a panic while it drops a task's future or output.)
#[test]
fn a_panicking_destructor_of_an_unawaited_output_is_contained() {
    let _guard = watchdog("a_panicking_destructor_of_an_unawaited_output_is_contained");
    struct Bomb(mpsc::Sender<()>);
    impl Drop for Bomb {
        fn drop(&mut self) {
            let _ = self.0.send(());
            panic!("output destructor");
        }
    }
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let job = unblock(move || {
        started_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        Bomb(dropped_tx)
    });
    started_rx.recv_timeout(HANG_GUARD).unwrap();
    drop(job);
    go_tx.send(()).unwrap();
    dropped_rx.recv_timeout(HANG_GUARD).unwrap();
    assert_eq!(run(unblock(|| 1)), 1);

    // A cancelled closure's captured values, dropped on the pool or here.
    struct CapturedBomb;
    impl Drop for CapturedBomb {
        fn drop(&mut self) {
            panic!("captured destructor");
        }
    }
    for _ in 0..20 {
        let bomb = CapturedBomb;
        drop(unblock(move || std::mem::forget(bomb)));
    }
    assert_eq!(run(unblock(|| 2)), 2);
}

//! `unblock`: blocking code on the pool, its result or panic brought back to the awaiter.

mod common;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::{panic_message, run};
use futures::FutureExt;
use untangle::{spawn, unblock};

#[test]
fn unblock_returns_the_closure_result() {
    run(async {
        assert_eq!(unblock(|| 6 * 7).await, 42);
        let text = unblock(|| String::from("owned")).await;
        assert_eq!(text, "owned");
        let read = unblock(|| std::fs::read_to_string("Cargo.toml"))
            .await
            .unwrap();
        assert!(read.contains("untangle"));
    });
}

#[test]
fn unblock_runs_the_closure_on_another_thread() {
    let loop_thread = thread::current().id();
    let (job_thread, name) = run(unblock(|| {
        (
            thread::current().id(),
            thread::current().name().map(String::from),
        )
    }));
    assert_ne!(job_thread, loop_thread);
    assert_eq!(name.as_deref(), Some("untangle-blocking"));
}

#[test]
fn unblock_runs_many_jobs_concurrently() {
    const JOBS: usize = 16;
    run(async {
        // Every job waits at the barrier until all of them arrived: this only finishes if the
        // pool runs all 16 at once.
        let barrier = Arc::new(Barrier::new(JOBS));
        let jobs: Vec<_> = (0..JOBS)
            .map(|i| {
                let barrier = barrier.clone();
                unblock(move || {
                    barrier.wait();
                    i
                })
            })
            .collect();
        let results = futures::future::join_all(jobs).await;
        assert_eq!(results, (0..JOBS).collect::<Vec<_>>());
    });
}

#[test]
fn unblock_completes_thousands_of_short_jobs() {
    let done = Arc::new(AtomicUsize::new(0));
    run(async {
        let jobs: Vec<_> = (0..2_000)
            .map(|i| {
                let done = done.clone();
                spawn(unblock(move || {
                    done.fetch_add(1, Ordering::Relaxed);
                    i * 2
                }))
            })
            .collect();
        let mut sum = 0;
        for job in jobs {
            sum += job.await;
        }
        assert_eq!(sum, 2 * (0..2_000).sum::<usize>());
    });
    assert_eq!(done.load(Ordering::Relaxed), 2_000);
}

#[test]
fn unblock_panic_is_reraised_where_it_is_awaited() {
    run(async {
        let payload = AssertUnwindSafe(unblock(|| -> u32 { panic!("blocking job exploded") }))
            .catch_unwind()
            .await
            .unwrap_err();
        assert_eq!(panic_message(&*payload), "blocking job exploded");
        // The pool survives.
        assert_eq!(unblock(|| 1).await, 1);
    });
}

#[test]
fn unblock_keeps_the_loop_free_while_the_job_blocks() {
    run(async {
        // The job blocks until a task on the loop sends it a message: if the job ran on the
        // loop's thread, that task could never run.
        let (tx, rx) = mpsc::channel::<u32>();
        let job = unblock(move || rx.recv().unwrap() + 1);
        let sender = spawn(async move {
            untangle::time::sleep(Duration::from_millis(10)).await;
            tx.send(41).unwrap();
        });
        assert_eq!(job.await, 42);
        sender.await;
    });
}

#[test]
fn unblock_future_can_be_awaited_by_any_executor() {
    // It is a plain Send future: no untangle loop is needed to await it.
    let value = futures::executor::block_on(unblock(|| "anywhere"));
    assert_eq!(value, "anywhere");
    let from_thread = thread::spawn(|| futures::executor::block_on(unblock(|| 5)))
        .join()
        .unwrap();
    assert_eq!(from_thread, 5);
}

#[test]
fn pool_constants_are_as_documented() {
    assert_eq!(untangle::BLOCKING_MAX_THREADS, 500);
    assert_eq!(untangle::BLOCKING_IDLE_TIMEOUT, Duration::from_secs(10));
}

//! Panicking destructors of tasks' futures and outputs (tokio's `task_abort.rs`:
//! `test_abort_task_that_panics_on_drop_*`): async-task aborts the process when a destructor it
//! runs panics, so untangle must catch each of them first, and report it where tokio does.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use common::{install_capture_logger, logged, panic_message, run};
use futures_lite::FutureExt;
use untangle::{block_on, spawn, yield_now};

/// Panics when dropped (tokio's `PanicOnDrop`).
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// A future that completes at once and whose destructor panics.
struct ReadyThenPanicOnDrop;

impl Future for ReadyThenPanicOnDrop {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
        Poll::Ready(5)
    }
}

impl Drop for ReadyThenPanicOnDrop {
    fn drop(&mut self) {
        panic!("destructor after completion");
    }
}

#[test]
fn cancelling_a_task_whose_destructor_panics_neither_aborts_nor_stops_the_loop() {
    // tokio: test_abort_task_that_panics_on_drop_contained. async-task aborts the process when
    // a future's destructor panics; the loop must catch it first.
    install_capture_logger();
    run(async {
        let task = spawn(async {
            let _guard = PanicOnDrop("destructor of a cancelled task");
            untangle::time::sleep(Duration::from_secs(100)).await;
        });
        yield_now().await;
        drop(task);
        yield_now().await;
        yield_now().await;
        assert_eq!(spawn(async { 7 }).await, 7);
    });
    assert!(logged("destructor of a cancelled task"));
}

#[test]
fn cancel_of_a_task_whose_destructor_panics_returns_none() {
    install_capture_logger();
    run(async {
        let task = spawn(async {
            let _guard = PanicOnDrop("destructor during cancel");
            std::future::pending::<u32>().await
        });
        yield_now().await;
        assert_eq!(task.cancel().await, None);
        assert_eq!(untangle::stats().tasks_alive, 0);
    });
    assert!(logged("destructor during cancel"));
}

#[test]
fn a_destructor_panic_after_completion_is_the_tasks_panic() {
    // tokio: test_abort_task_that_panics_on_drop_returned (a panic while the finished future is
    // dropped is reported through the join handle).
    run(async {
        let task = spawn(ReadyThenPanicOnDrop);
        let caught = std::panic::AssertUnwindSafe(task).catch_unwind().await;
        let payload = caught.expect_err("the destructor's panic is re-raised at await");
        assert_eq!(panic_message(&*payload), "destructor after completion");
        assert_eq!(untangle::stats().tasks_alive, 0);
    });
}

/// A future whose `poll` panics, and whose destructor, run after that unwinding ended, panics
/// again. (A panic in a destructor *during* an unwind aborts any Rust program; this is not that.)
struct PanicInPollAndDrop;

impl Future for PanicInPollAndDrop {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        panic!("first panic, in poll");
    }
}

impl Drop for PanicInPollAndDrop {
    fn drop(&mut self) {
        panic!("second panic, in the destructor");
    }
}

#[test]
fn a_task_panicking_in_poll_then_in_its_destructor_reports_the_first_panic() {
    install_capture_logger();
    run(async {
        let task = spawn(PanicInPollAndDrop);
        let caught = std::panic::AssertUnwindSafe(task).catch_unwind().await;
        assert_eq!(panic_message(&*caught.unwrap_err()), "first panic, in poll");
        assert_eq!(spawn(async { 1 }).await, 1);
    });
    assert!(logged("second panic, in the destructor"));
}

#[test]
fn pending_task_whose_destructor_panics_at_thread_exit_does_not_abort() {
    install_capture_logger();
    thread::spawn(|| {
        block_on(async {
            spawn(async {
                let _guard = PanicOnDrop("destructor at thread exit");
                std::future::pending::<()>().await
            })
            .detach();
            yield_now().await;
        })
    })
    .join()
    .expect("the loop's thread exits normally");
    assert!(logged("destructor at thread exit"));
}

#[test]
fn a_detached_tasks_output_that_panics_when_dropped_does_not_abort() {
    install_capture_logger();
    run(async {
        spawn(async { PanicOnDrop("output of a detached task") }).detach();
        yield_now().await;
        yield_now().await;
        // Left unclaimed in a finished task whose handle is then dropped.
        let unclaimed = spawn(async { PanicOnDrop("output left in a dropped Task") });
        yield_now().await;
        assert!(unclaimed.is_finished());
        drop(unclaimed);
        assert_eq!(spawn(async { 2 }).await, 2);
    });
    assert!(logged("output of a detached task"));
    assert!(logged("output left in a dropped Task"));
}

#[test]
fn an_awaited_output_is_the_callers_to_drop() {
    // The runtime catches only what it drops itself: a value handed to the awaiter is plain.
    let dropped = Arc::new(AtomicBool::new(false));
    run(async {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = dropped.clone();
        let output = spawn(async move { Flag(flag) }).await;
        yield_now().await;
        assert!(!output.0.load(Ordering::SeqCst));
        drop(output);
    });
    assert!(dropped.load(Ordering::SeqCst));
}

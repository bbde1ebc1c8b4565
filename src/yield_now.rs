//! [`yield_now`]: let every other ready task, and the loop's I/O check, go first.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::executor;

/// Lets every other ready task run, and lets the loop check I/O and timers, before this task
/// continues.
///
/// Outside an untangle loop it simply wakes itself and returns `Pending` once.
///
/// # Example
/// ```
/// untangle::block_on(async {
///     for _ in 0..3 {
///         untangle::yield_now().await;
///     }
/// });
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// Future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // In a task, waking itself while it runs is enough: the schedule function queues it
        // behind the next I/O check. The `block_on` future is no task, so its waker is kept
        // and woken after the next I/O check instead.
        if executor::polling_main() {
            executor::defer_main(cx.waker());
        } else {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

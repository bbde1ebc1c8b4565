//! The handle of a spawned task ([`Task`]) and the wrapper around every task's future: it
//! catches panics and keeps the task's record in the loop's registry (see `task_info.rs`).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::shared::TaskMeta;
use crate::task_info::Origin;

/// The panic payload of a task, logged if nobody re-raises it.
pub(crate) struct Panicked(Option<Box<dyn std::any::Any + Send>>);

impl Panicked {
    fn resume(mut self) -> ! {
        let payload = self.0.take().expect("payload present until resumed");
        std::panic::resume_unwind(payload)
    }
}

impl Drop for Panicked {
    fn drop(&mut self) {
        if let Some(payload) = &self.0 {
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(non-string panic payload)");
            log::error!("untangle: a task nobody awaits panicked: {message}");
        }
    }
}

/// Wraps a task's future: a panic ends the task, not the loop, and dropping the future removes
/// the task's record from its loop's registry.
///
/// `origin` is set only for tasks spawned from another thread ([`Handle::spawn`]
/// (crate::Handle::spawn)): their record is created by the loop when it first runs them, and
/// filled in with the name and location at the first poll.
///
/// A hand-written future rather than an `async` block around `catch_unwind()`: an `async`
/// block keeps the captured future and the future it awaits in separate fields, which would
/// store every task's future twice.
pub(crate) fn tracked<F: Future, R: Registry>(
    future: F,
    origin: Option<Box<Origin>>,
) -> Tracked<F, R> {
    Tracked {
        future,
        slot: Slot {
            origin,
            registry: PhantomData,
        },
    }
}

/// What the wrapper tells the loop's registry: a zero-sized type, so the executor can plug
/// itself in without this file depending on it.
pub(crate) trait Registry {
    /// The running task's future is being dropped: remove its record.
    fn dropped();
    /// The running task (spawned from another thread) polls for the first time: name it.
    fn named(origin: Origin);
}

pin_project_lite::pin_project! {
    /// Future of [`tracked`].
    pub(crate) struct Tracked<F, R: Registry> {
        // Dropped before `slot`: the future's destructors run while the record still exists.
        #[pin]
        future: F,
        slot: Slot<R>,
    }
}

/// The registry side of a task's future; its `Drop` removes the task's record.
struct Slot<R: Registry> {
    origin: Option<Box<Origin>>,
    /// `fn() -> R`: no `R` is stored, and `Send`/`Sync` do not depend on it.
    registry: PhantomData<fn() -> R>,
}

impl<R: Registry> Drop for Slot<R> {
    fn drop(&mut self) {
        // async-task drops a future only inside its `Runnable::run` (when it completes or was
        // cancelled) or with its `Runnable` (only while the loop itself is dropped, when the
        // registry is already gone): so the loop's running task is this one.
        R::dropped();
    }
}

impl<F: Future, R: Registry> Future for Tracked<F, R> {
    type Output = Result<F::Output, Panicked>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(origin) = this.slot.origin.take() {
            R::named(*origin);
        }
        let future = this.future;
        // `AssertUnwindSafe` is sound here because a panicked task is never polled again.
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(Panicked(Some(payload)))),
        }
    }
}

/// A spawned task: await it for its output.
///
/// Dropping a `Task` cancels it: its future is dropped by its loop at the loop's next turn (it
/// will not be polled again), releasing its sockets and timers; [`cancel`](Task::cancel) waits
/// until that has happened. Use
/// [`detach`](Task::detach) to let it run to completion in the background.
///
/// If the task panics, the panic is caught so the loop goes on; awaiting the `Task` re-raises
/// it, and a panic of a task nobody awaits is logged with `log::error!`.
///
/// # Panics
/// Awaiting a task whose loop's thread exited before the task completed panics (the loop
/// dropped the task's future when its thread exited; see [`block_on`](crate::block_on)).
#[must_use = "dropping a Task cancels it; call .detach() to let it run"]
pub struct Task<T>(pub(crate) async_task::FallibleTask<Result<T, Panicked>, TaskMeta>);

impl<T> Task<T> {
    /// Lets the task run to completion without a handle; its output is dropped.
    pub fn detach(self) {
        self.0.detach();
    }

    /// Cancels the task and waits for it to stop.
    ///
    /// Returns its output if it had already completed, `None` if it was cancelled first (or
    /// dropped with its loop). If the task had panicked, the panic is re-raised here.
    pub async fn cancel(self) -> Option<T> {
        match self.0.cancel().await? {
            Ok(value) => Some(value),
            Err(panicked) => panicked.resume(),
        }
    }

    /// Whether the task has finished: completed, panicked or been cancelled.
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Ready(Some(Ok(value))) => Poll::Ready(value),
            Poll::Ready(Some(Err(panicked))) => panicked.resume(),
            // Only the loop closes a task without output (a `Task` that cancels is consumed).
            Poll::Ready(None) => panic!(
                "untangle: awaited a task whose loop's thread exited before the task completed; \
                 the loop dropped the task's future when its thread exited"
            ),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("finished", &self.is_finished())
            .finish()
    }
}

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
            log::error!(
                "untangle: a task nobody awaits panicked: {}",
                message(&**payload)
            );
        }
    }
}

/// A value async-task may drop inside `abort_on_panic` (a detached task's output, a cancelled
/// blocking job's closure), where a panicking destructor would abort the process: this wrapper
/// catches and logs it instead (a value handed to an awaiter is taken out first).
pub(crate) struct Contained<T>(Option<T>);

impl<T> Contained<T> {
    pub(crate) fn new(value: T) -> Contained<T> {
        Contained(Some(value))
    }

    pub(crate) fn into_inner(mut self) -> T {
        self.0.take().expect("a contained value is taken once")
    }
}

impl<T> Drop for Contained<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(|| drop(value))) {
                log::error!(
                    "untangle: a value nobody awaited (a task's output or a cancelled blocking \
                     job) panicked while being dropped: {}",
                    message(&*payload)
                );
            }
        }
    }
}

/// Wraps a task's future: a panic ends the task, not the loop, and dropping the future removes
/// the task's record from its loop's registry.
///
/// A panic while the future is *dropped* is caught too: async-task aborts the process when a
/// future's destructor panics, so the wrapper drops the future itself, inside `catch_unwind`,
/// as soon as it completes (a panic there becomes the task's panic, as in tokio) or when the
/// task is cancelled (the panic is logged: nobody awaits a cancelled task's output).
///
/// `origin` is set only for tasks spawned from another thread ([`Handle::spawn`]
/// (crate::Handle::spawn)): their record is created by the loop when it first runs them, and
/// filled in with the name and location at the first poll, or before the future is dropped if
/// the task was cancelled before it ever ran.
///
/// A hand-written future rather than an `async` block around `catch_unwind()`: an `async`
/// block keeps the captured future and the future it awaits in separate fields, which would
/// store every task's future twice.
pub(crate) fn tracked<F: Future, R: Registry>(
    future: F,
    origin: Option<Box<Origin>>,
) -> Tracked<F, R> {
    Tracked {
        future: Some(future),
        origin,
        registry: PhantomData,
    }
}

/// What the wrapper tells the loop's registry: a zero-sized type, so the executor can plug
/// itself in without this file depending on it.
pub(crate) trait Registry {
    /// The running task's future has been dropped: remove its record.
    fn dropped();
    /// The running task (spawned from another thread) polls for the first time, or is dropped
    /// before it ever polled: name it.
    fn named(origin: Origin);
}

pin_project_lite::pin_project! {
    /// Future of [`tracked`].
    pub(crate) struct Tracked<F, R: Registry> {
        // `None` once dropped: when it completed, panicked, or with the wrapper. `Pin::set`
        // drops it in place, which is what lets the wrapper catch a panicking destructor.
        #[pin]
        future: Option<F>,
        origin: Option<Box<Origin>>,
        // `fn() -> R`: no `R` is stored, and `Send`/`Sync` do not depend on it.
        registry: PhantomData<fn() -> R>,
    }

    impl<F, R: Registry> PinnedDrop for Tracked<F, R> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // async-task drops a future only inside its `Runnable::run` (when it completes or
            // was cancelled) or with its `Runnable` (while the loop itself is dropped, when
            // the registry is already gone, or on the thread of a `Handle::spawn` whose loop
            // has exited, with no task running): so the loop's running task, if any, is this
            // one.
            if let Some(origin) = this.origin.take() {
                R::named(*origin);
            }
            if let Err(payload) = drop_caught(this.future) {
                log::error!(
                    "untangle: a cancelled task's future panicked while being dropped: {}",
                    message(&*payload)
                );
            }
            // After the future's destructors ran, so that they still see the task's record.
            R::dropped();
        }
    }
}

/// Drops a pinned future in place, catching a panic of its destructor.
fn drop_caught<F>(mut future: Pin<&mut Option<F>>) -> std::thread::Result<()> {
    std::panic::catch_unwind(AssertUnwindSafe(|| future.set(None)))
}

/// The message of a panic payload.
fn message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

impl<F: Future, R: Registry> Future for Tracked<F, R> {
    type Output = Result<Contained<F::Output>, Panicked>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(origin) = this.origin.take() {
            R::named(*origin);
        }
        let mut slot = this.future;
        let Some(future) = slot.as_mut().as_pin_mut() else {
            // async-task never polls a task again once it returned `Ready`.
            return Poll::Pending;
        };
        // `AssertUnwindSafe` is sound here because a panicked task is never polled again.
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => match drop_caught(slot) {
                Ok(()) => Poll::Ready(Ok(Contained::new(value))),
                // Its destructor panicked: that is the task's outcome, as in tokio.
                Err(payload) => {
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| drop(value)));
                    Poll::Ready(Err(Panicked(Some(payload))))
                }
            },
            Err(payload) => {
                // The first panic is the one to report; one more from the destructor is logged.
                if let Err(again) = drop_caught(slot) {
                    log::error!(
                        "untangle: a panicked task's future panicked again while being dropped: {}",
                        message(&*again)
                    );
                }
                Poll::Ready(Err(Panicked(Some(payload))))
            }
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
/// A panic of the future's destructor (when the task completes, is cancelled, or its loop's
/// thread exits) is caught as well: at completion it becomes the task's panic, re-raised where
/// the `Task` is awaited (as in tokio); otherwise it is logged. So is a panic of the
/// destructor of an output nobody takes (a detached task's, or one left in a dropped `Task`).
/// None of them aborts the process or unwinds into the loop.
///
/// # Panics
/// Awaiting a task whose loop's thread exited before the task completed panics (the loop
/// dropped the task's future when its thread exited; see [`block_on`](crate::block_on)), and so
/// does awaiting one spawned with [`Handle::spawn`](crate::Handle::spawn) onto a loop whose
/// thread had already exited (its future was dropped by `spawn`).
#[must_use = "dropping a Task cancels it; call .detach() to let it run"]
pub struct Task<T>(pub(crate) async_task::FallibleTask<Result<Contained<T>, Panicked>, TaskMeta>);

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
            Ok(value) => Some(value.into_inner()),
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
            Poll::Ready(Some(Ok(value))) => Poll::Ready(value.into_inner()),
            Poll::Ready(Some(Err(panicked))) => panicked.resume(),
            // Only the loop closes a task without output (a `Task` that cancels is consumed).
            Poll::Ready(None) => panic!(
                "untangle: awaited a task whose loop's thread exited before the task completed; \
                 its future was dropped without completing"
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

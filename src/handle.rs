//! [`Handle`]: a thread's loop seen from other threads, to spawn `Send` tasks onto it.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;

use crate::executor::{self, LoopRegistry};
use crate::shared::{Shared, TaskMeta};
use crate::task::{tracked, Task};
use crate::task_info::Origin;
use async_task::WithInfo;

/// A handle to a thread's loop, usable from any thread to spawn `Send` tasks onto it.
///
/// # Example
/// ```
/// untangle::block_on(async {
///     let handle = untangle::Handle::current();
///     let task = std::thread::spawn(move || handle.spawn(async { 5 }))
///         .join()
///         .unwrap();
///     assert_eq!(task.await, 5);
/// });
/// ```
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// Returns a handle to the calling thread's loop (creating the loop if this thread has none).
    ///
    /// Tasks spawned through the handle run whenever that thread is inside [`block_on`](crate::block_on).
    pub fn current() -> Handle {
        Handle {
            shared: executor::current_shared(),
        }
    }

    /// Starts `future` on the handle's loop, from any thread.
    ///
    /// The returned [`Task`] can be awaited from anywhere (it is `Send` when `T` is). If the
    /// loop's thread has exited, the task never runs: `future` is dropped here, on the calling
    /// thread, so its destructors run and its sockets close, and awaiting the `Task` panics
    /// with a message that says the loop is gone (as it does for a task its loop dropped at
    /// thread exit).
    ///
    /// The task joins the loop's registry ([`dump`](crate::dump), [`stats`](crate::stats))
    /// when the loop first runs it: registering it here would take the loop's thread-local
    /// state from another thread.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_with(future, Origin::At(Location::caller()))
    }

    pub(crate) fn spawn_with<F>(&self, future: F, origin: Origin) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let meta = TaskMeta::remote(self.shared.clone());
        let origin = Some(Box::new(origin));
        let (runnable, task) = async_task::Builder::new().metadata(meta).spawn(
            move |_| tracked::<_, LoopRegistry>(future, origin),
            WithInfo(executor::schedule),
        );
        runnable.schedule();
        Task(task.fallible())
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

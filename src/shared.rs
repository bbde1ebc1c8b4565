//! The part of a loop that other threads touch — its cross-thread queue, its sleep state and its
//! reactor — and the metadata every task carries: its loop, its key in the loop's registry and
//! whether it is `Send`.

use std::sync::atomic::{fence, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use concurrent_queue::ConcurrentQueue;

use crate::reactor::Reactor;

/// A task ready to run; its metadata is the loop it belongs to.
pub(crate) type Runnable = async_task::Runnable<TaskMeta>;

/// The top bit of [`TaskMeta`]'s key word: set for a task spawned from another thread, whose
/// future is `Send`. Registry keys are slab indices and never reach it.
const SEND: usize = 1 << (usize::BITS - 1);

/// The key of no task: of a task spawned from another thread until the loop first runs it, and
/// the loop's running task between polls.
pub(crate) const NO_TASK: usize = !SEND;

/// A task's metadata: its loop, its key in that loop's registry of live tasks, and whether it
/// is `Send`.
pub(crate) struct TaskMeta {
    pub(crate) shared: Arc<Shared>,
    /// The key, with [`SEND`] for a `Send` task (a bit rather than a field: the metadata is
    /// part of every task's allocation). Written by the loop only (at spawn, or at the first
    /// run of a task spawned from another thread) and read by the loop only: an atomic only
    /// because a task spawned from another thread is `Send`; relaxed loads and stores are plain
    /// moves.
    key: AtomicUsize,
}

impl TaskMeta {
    /// The metadata of a task spawned on its own loop's thread (`key` is its registry key).
    pub(crate) fn local(shared: Arc<Shared>, key: usize) -> TaskMeta {
        TaskMeta {
            shared,
            key: AtomicUsize::new(key),
        }
    }

    /// The metadata of a `Send` task spawned from another thread: no key until its first run.
    pub(crate) fn remote(shared: Arc<Shared>) -> TaskMeta {
        TaskMeta {
            shared,
            key: AtomicUsize::new(SEND | NO_TASK),
        }
    }

    /// Its registry key, or `NO_TASK` before the first run of a task spawned from another
    /// thread.
    pub(crate) fn key(&self) -> usize {
        self.key.load(Ordering::Relaxed) & !SEND
    }

    /// Records the key of a task spawned from another thread, at its first run.
    pub(crate) fn set_key(&self, key: usize) {
        debug_assert_eq!(key & SEND, 0);
        let send = self.key.load(Ordering::Relaxed) & SEND;
        self.key.store(key | send, Ordering::Relaxed);
    }

    /// Whether the future is `Send`, so that the task may be dropped on any thread.
    fn is_send(&self) -> bool {
        self.key.load(Ordering::Relaxed) & SEND != 0
    }
}

pub(crate) const AWAKE: u8 = 0;
pub(crate) const SLEEPING: u8 = 1;
pub(crate) const NOTIFIED: u8 = 2;

/// The part of a loop that other threads may touch: the remote queue and the sleep state.
pub(crate) struct Shared {
    pub(crate) remote: ConcurrentQueue<Runnable>,
    pub(crate) state: AtomicU8,
    pub(crate) reactor: Arc<Reactor>,
}

impl Shared {
    /// Queues a runnable woken (or spawned) on a thread other than the loop's.
    ///
    /// When the loop's thread has exited, nothing will ever run the task again. A `Send` task
    /// (from [`Handle::spawn`](crate::Handle::spawn)) is dropped here, on the calling thread, so
    /// its destructors run and its sockets close; its `Task` then reports that its loop is gone.
    /// Dropping a thread-bound task on another thread would panic, so one is leaked on purpose
    /// (its loop dropped its future when it exited; only the allocation remains).
    pub(crate) fn push_remote(&self, runnable: Runnable) {
        if let Err(err) = self.remote.push(runnable) {
            let runnable = err.into_inner();
            if runnable.metadata().is_send() {
                log::debug!(
                    "untangle: task spawned or woken after its loop's thread exited; dropping it"
                );
                crate::executor::drop_foreign(runnable);
            } else {
                log::debug!(
                    "untangle: task woken after its loop's thread exited; dropping the wake"
                );
                std::mem::forget(runnable);
            }
            return;
        }
        self.notify();
    }

    /// Wakes the loop if it sleeps (or is about to): at most one poller notification per sleep.
    pub(crate) fn notify(&self) {
        // Pairs with the fence in `Local::park`: either the loop sees our push, or we see that
        // it is sleeping.
        fence(Ordering::SeqCst);
        if self.state.load(Ordering::Relaxed) == SLEEPING
            && self
                .state
                .compare_exchange(SLEEPING, NOTIFIED, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
            self.reactor.notify();
        }
    }
}

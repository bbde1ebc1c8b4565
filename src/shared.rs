//! The part of a loop that other threads touch — its cross-thread queue, its sleep state and its
//! reactor — and the metadata every task carries: its loop and its key in the loop's registry.

use std::sync::atomic::{fence, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use concurrent_queue::ConcurrentQueue;

use crate::reactor::Reactor;

/// A task ready to run; its metadata is the loop it belongs to.
pub(crate) type Runnable = async_task::Runnable<TaskMeta>;

/// The key of no task: of a task spawned from another thread until the loop first runs it, and
/// the loop's running task between polls.
pub(crate) const NO_TASK: usize = usize::MAX;

/// A task's metadata: its loop, and its key in that loop's registry of live tasks.
pub(crate) struct TaskMeta {
    pub(crate) shared: Arc<Shared>,
    /// Written by the loop only (at spawn, or at the first run of a task spawned from another
    /// thread) and read by the loop only: an atomic only because a task spawned from another
    /// thread is `Send`; relaxed loads and stores are plain moves.
    pub(crate) key: AtomicUsize,
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
    /// Queues a runnable woken on a thread other than the loop's.
    pub(crate) fn push_remote(&self, runnable: Runnable) {
        if let Err(err) = self.remote.push(runnable) {
            // The loop's thread has exited: nothing will ever run this task again, and dropping
            // a thread-bound task here would panic, so it is leaked on purpose.
            log::debug!("untangle: task woken after its loop's thread exited; dropping the wake");
            std::mem::forget(err.into_inner());
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

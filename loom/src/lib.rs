//! A loom model of untangle's cross-thread wake path (src/executor.rs): the remote queue,
//! the sleep state (`AWAKE` / `SLEEPING` / `NOTIFIED`) with its SeqCst fences, and the
//! poller notification (modelled as an eventfd: a flag that stays set until a wait consumes
//! it).
//!
//! The executor itself cannot run under loom: its loop lives in thread-locals, its tasks are
//! `async_task` runnables (whose atomics loom does not see) and it sleeps in `epoll_wait`
//! on a real epoll fd. So this crate copies the protocol, line for line, from
//! `Shared::notify` / `Shared::push_remote` and `Local::park`, and loom explores every
//! interleaving of a loop going to sleep against remote threads pushing and notifying. A lost
//! wake-up shows as a deadlock (the loop waits on a notification that never comes).
#![cfg(loom)]

use std::collections::VecDeque;
use loom::sync::atomic::{fence, AtomicU8, Ordering};
use loom::sync::{Condvar, Mutex};

/// The loop is running tasks.
pub const AWAKE: u8 = 0;
/// The loop is (about to be) blocked in the poller.
pub const SLEEPING: u8 = 1;
/// A remote thread has notified the poller during this sleep.
pub const NOTIFIED: u8 = 2;

/// The poller's notification: an eventfd that stays readable until a wait reads it.
#[derive(Default)]
pub struct EventFd {
    signalled: Mutex<bool>,
    cv: Condvar,
}

impl EventFd {
    /// `Poller::notify`.
    pub fn notify(&self) {
        *self.signalled.lock().unwrap() = true;
        self.cv.notify_one();
    }

    /// A blocking `Poller::wait` with no fd ready and no timer: returns once notified.
    pub fn wait(&self) {
        let mut signalled = self.signalled.lock().unwrap();
        while !*signalled {
            signalled = self.cv.wait(signalled).unwrap();
        }
        *signalled = false;
    }
}

/// The remote run queue. The executor uses `concurrent_queue::ConcurrentQueue` (unbounded);
/// here a mutex-protected deque stands for it: both are linearizable, which is all the wake
/// protocol relies on, and loom explores the mutex far faster than the lock-free queue.
#[derive(Default)]
pub struct Queue(Mutex<VecDeque<u32>>);

impl Queue {
    fn push(&self, item: u32) {
        self.0.lock().unwrap().push_back(item);
    }

    fn pop(&self) -> Option<u32> {
        self.0.lock().unwrap().pop_front()
    }

    fn is_empty(&self) -> bool {
        self.0.lock().unwrap().is_empty()
    }
}

/// `executor::Shared`: what other threads touch.
pub struct Shared {
    /// The remote run queue.
    pub remote: Queue,
    /// The sleep state.
    pub state: AtomicU8,
    /// The poller.
    pub poller: EventFd,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            remote: Queue::default(),
            state: AtomicU8::new(AWAKE),
            poller: EventFd::default(),
        }
    }
}

impl Shared {
    /// `Shared::push_remote`.
    pub fn push_remote(&self, item: u32) {
        self.remote.push(item);
        self.notify();
    }

    /// `Shared::notify`.
    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.state.load(Ordering::Relaxed) == SLEEPING
            && self
                .state
                .compare_exchange(SLEEPING, NOTIFIED, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
            self.poller.notify();
        }
    }

    /// `Local::park(block = true)`, with no fd and no timer.
    pub fn park(&self) {
        self.state.store(SLEEPING, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let woken = !self.remote.is_empty();
        if !woken {
            self.poller.wait();
        }
        self.state.store(AWAKE, Ordering::SeqCst);
    }

    /// The loop: runs what is queued, parks when nothing is, until `expected` items ran.
    pub fn run_loop(&self, expected: usize) {
        let mut ran = 0;
        loop {
            while self.remote.pop().is_some() {
                ran += 1;
            }
            if ran == expected {
                return;
            }
            self.park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    #[test]
    fn a_remote_push_always_wakes_a_sleeping_loop() {
        loom::model(|| {
            let shared = Arc::new(Shared::default());
            let remote = shared.clone();
            let pusher = thread::spawn(move || remote.push_remote(1));
            shared.run_loop(1);
            pusher.join().unwrap();
        });
    }

    #[test]
    fn two_pushes_across_two_sleeps_are_both_seen() {
        loom::model(|| {
            let shared = Arc::new(Shared::default());
            let remote = shared.clone();
            let pusher = thread::spawn(move || {
                remote.push_remote(1);
                remote.push_remote(2);
            });
            shared.run_loop(2);
            pusher.join().unwrap();
        });
    }

    #[test]
    fn pushes_from_two_threads_are_both_seen() {
        loom::model(|| {
            let shared = Arc::new(Shared::default());
            let a = shared.clone();
            let b = shared.clone();
            let t1 = thread::spawn(move || a.push_remote(1));
            let t2 = thread::spawn(move || b.push_remote(2));
            shared.run_loop(2);
            t1.join().unwrap();
            t2.join().unwrap();
        });
    }
}

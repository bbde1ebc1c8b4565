//! Timer storage: the deadlines of pending sleeps, ordered, with the waker of each.
//!
//! A `BTreeMap` keyed by `(deadline, id)` gives ordered expiry, O(log n) insert and removal
//! (dropping a sleep removes its entry at once), and the next deadline for the reactor's wait.
//!
//! A waker that a timer lets go of (its sleep was dropped, or polled by another task) is never
//! dropped while the timers' lock is held: its destructor may drop a sleep of its own (tokio's
//! `drop_from_waker_drop`), which would take the lock again and deadlock. It is set aside in a
//! thread-local instead, and [`drop_removed`] drops it once the caller released the lock.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::task::Waker;
use std::time::Instant;

thread_local! {
    /// Wakers removed under the timers' lock, waiting for [`drop_removed`]. Drained in place,
    /// so it allocates once per thread, not once per cancelled sleep.
    static REMOVED: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
}

/// Sets a waker aside, to be dropped by [`drop_removed`] outside the lock.
fn set_aside(waker: Waker) {
    // At thread exit the list is gone; the waker is then dropped here (by the failed call).
    let _ = REMOVED.try_with(|removed| removed.borrow_mut().push(waker));
}

/// Drops the wakers the timers let go of on this thread; call it after the lock is released.
pub(crate) fn drop_removed() {
    // One at a time, outside the borrow: a waker's destructor may remove more timers.
    while let Some(waker) = REMOVED
        .try_with(|removed| removed.borrow_mut().pop())
        .ok()
        .flatten()
    {
        drop(waker);
    }
}

/// The timers of one loop.
#[derive(Default)]
pub(crate) struct Timers {
    map: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
}

impl Timers {
    /// Adds a timer and returns its id.
    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.map.insert((deadline, id), waker);
        id
    }

    /// Replaces the waker of a timer if it would wake another task; returns false when the timer
    /// is gone (it fired).
    pub(crate) fn update(&mut self, deadline: Instant, id: u64, waker: &Waker) -> bool {
        match self.map.get_mut(&(deadline, id)) {
            Some(current) => {
                if !current.will_wake(waker) {
                    set_aside(std::mem::replace(current, waker.clone()));
                }
                true
            }
            None => false,
        }
    }

    /// Moves a timer to a new deadline, keeping its id and waker; false when it already fired.
    pub(crate) fn reset(&mut self, old: Instant, id: u64, new: Instant) -> bool {
        match self.map.remove(&(old, id)) {
            Some(waker) => {
                self.map.insert((new, id), waker);
                true
            }
            None => false,
        }
    }

    /// The earliest pending deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.map
            .first_key_value()
            .map(|(&(deadline, _), _)| deadline)
    }

    /// Removes a timer, if it has not fired yet (its waker is set aside for [`drop_removed`]).
    pub(crate) fn remove(&mut self, deadline: Instant, id: u64) {
        if let Some(waker) = self.map.remove(&(deadline, id)) {
            set_aside(waker);
        }
    }

    /// Moves the wakers of every timer due at `now` into `out`; returns the next deadline.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Waker>) -> Option<Instant> {
        while let Some(entry) = self.map.first_entry() {
            if entry.key().0 > now {
                return Some(entry.key().0);
            }
            out.push(entry.remove());
        }
        None
    }

    /// Removes every timer, moving its waker into `out` (for a loop that shuts down).
    pub(crate) fn take_all(&mut self, out: &mut Vec<Waker>) {
        out.extend(std::mem::take(&mut self.map).into_values());
    }

    /// Whether no timer is pending.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

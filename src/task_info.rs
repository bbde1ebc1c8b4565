//! The loop's registry of live tasks, and what a dump says of each ([`TaskInfo`]).
//!
//! Every task has a record in its loop's `Slab` from spawn (or, for a task spawned from
//! another thread, from its first run on the loop) until its future is dropped. A record holds
//! a waker of the task, so that the loop can drop every task still alive when its thread exits
//! (see [`block_on`](crate::block_on)), the task's origin, and two numbers the loop updates
//! when it runs the task: its poll count and the loop turn's cached time.

use std::fmt;
use std::panic::Location;
use std::task::Waker;
use std::time::Duration;

use slab::Slab;

/// Where a task was spawned, and its name if it has one.
pub(crate) enum Origin {
    At(&'static Location<'static>),
    /// Boxed, so that unnamed tasks pay for one pointer only.
    Named(Box<(String, &'static Location<'static>)>),
}

impl Origin {
    fn location(&self) -> &'static Location<'static> {
        match self {
            Origin::At(location) => location,
            Origin::Named(named) => named.1,
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Origin::At(_) => None,
            Origin::Named(named) => Some(&named.0),
        }
    }
}

pub(crate) struct Record {
    waker: Waker,
    origin: Origin,
    /// 32 bits (saturating) and a coarse time keep the record at 40 bytes, within the budget
    /// of ~128 bytes of overhead per pending task.
    polls: u32,
    /// The loop's cached time of the turn the task was last polled in, in units of 2^20 ns
    /// (about 1 ms) since the loop's epoch (wrapping after about 52 days).
    last_poll: u32,
}

/// The loop time `now` (ns) in the units of `Record::last_poll`.
const TICK_SHIFT: u32 = 20;

/// The live tasks of one loop.
#[derive(Default)]
pub(crate) struct Registry {
    tasks: Slab<Record>,
}

impl Registry {
    pub(crate) fn vacant_key(&self) -> usize {
        self.tasks.vacant_key()
    }

    pub(crate) fn insert(&mut self, waker: Waker, origin: Origin) -> usize {
        self.tasks.insert(Record {
            waker,
            origin,
            polls: 0,
            last_poll: 0,
        })
    }

    pub(crate) fn polled(&mut self, key: usize, now: u64) {
        if let Some(record) = self.tasks.get_mut(key) {
            record.polls = record.polls.saturating_add(1);
            record.last_poll = (now >> TICK_SHIFT) as u32;
        }
    }

    pub(crate) fn set_origin(&mut self, key: usize, origin: Origin) {
        if let Some(record) = self.tasks.get_mut(key) {
            record.origin = origin;
        }
    }

    /// Removes a record; the caller drops it outside the registry's borrow (its waker may be
    /// the task's last reference).
    pub(crate) fn remove(&mut self, key: usize) -> Option<Record> {
        self.tasks.try_remove(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Takes the wakers of every live task, emptying the registry.
    pub(crate) fn take_wakers(&mut self) -> Vec<Waker> {
        std::mem::take(&mut self.tasks)
            .into_iter()
            .map(|(_, record)| record.waker)
            .collect()
    }

    /// The rows of a [`Dump`](crate::Dump); `scheduled` holds the keys of the queued tasks.
    pub(crate) fn snapshot(&self, now: u64, running: usize, scheduled: &[usize]) -> Vec<TaskInfo> {
        let mut queued = vec![false; self.tasks.capacity()];
        for &key in scheduled {
            if let Some(slot) = queued.get_mut(key) {
                *slot = true;
            }
        }
        self.tasks
            .iter()
            .map(|(key, record)| TaskInfo {
                id: key,
                name: record.origin.name().map(str::to_owned),
                location: record.origin.location(),
                polls: u64::from(record.polls),
                since_last_poll: (record.polls > 0).then(|| {
                    let ticks = ((now >> TICK_SHIFT) as u32).wrapping_sub(record.last_poll);
                    Duration::from_nanos(u64::from(ticks) << TICK_SHIFT)
                }),
                state: if key == running {
                    TaskState::Running
                } else if queued[key] {
                    TaskState::Scheduled
                } else {
                    TaskState::Idle
                },
            })
            .collect()
    }
}

/// What a task is doing, in a [`Dump`](crate::Dump).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Being polled: the task that called [`dump`](crate::dump).
    Running,
    /// Woken, in the loop's run queue (a task woken from another thread counts as idle until
    /// the loop takes it from its cross-thread queue at its next I/O check).
    Scheduled,
    /// Waiting for a wake.
    Idle,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            TaskState::Running => "running",
            TaskState::Scheduled => "scheduled",
            TaskState::Idle => "idle",
        })
    }
}

/// One live task, in a [`Dump`](crate::Dump).
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// Its key in the loop's registry: unique among live tasks, reused after a task ends.
    pub id: usize,
    /// Its name, if it was spawned with [`Builder::name`](crate::Builder::name).
    pub name: Option<String>,
    /// Where it was spawned.
    pub location: &'static Location<'static>,
    /// How many times it has been polled (saturating at `u32::MAX`).
    pub polls: u64,
    /// Time since the loop turn of its last poll, to about a millisecond (the loop caches the
    /// time once per turn), `None` if it has not been polled yet.
    pub since_last_poll: Option<Duration>,
    /// Running, scheduled or idle.
    pub state: TaskState,
}

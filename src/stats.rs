//! Per-loop counters and [`stats`].

use std::cell::Cell;
use std::fmt;

/// The loop's counters: plain cells in the thread-local loop, bumped only on the loop's thread.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) spawned: Cell<u64>,
    pub(crate) polls: Cell<u64>,
    pub(crate) local_wakes: Cell<u64>,
    pub(crate) remote_wakes: Cell<u64>,
    pub(crate) blocking_waits: Cell<u64>,
    pub(crate) nonblocking_waits: Cell<u64>,
    pub(crate) events: Cell<u64>,
}

impl Counters {
    /// The counters, with the figures the loop counts otherwise: live tasks, timers, sources.
    pub(crate) fn stats(&self, tasks_alive: usize, timers: usize, sources: usize) -> Stats {
        Stats {
            tasks_alive: tasks_alive as u64,
            tasks_spawned: self.spawned.get(),
            polls: self.polls.get(),
            local_wakes: self.local_wakes.get(),
            remote_wakes: self.remote_wakes.get(),
            blocking_waits: self.blocking_waits.get(),
            nonblocking_waits: self.nonblocking_waits.get(),
            events: self.events.get(),
            timers: timers as u64,
            sources: sources as u64,
        }
    }
}

pub(crate) fn bump(counter: &Cell<u64>, by: u64) {
    counter.set(counter.get().wrapping_add(by));
}

/// Counters of the current thread's loop, from [`stats`](crate::stats). Totals count from the loop's creation.
///
/// # Example
/// ```
/// untangle::block_on(async {
///     untangle::spawn(async {}).await;
///     let stats = untangle::stats();
///     assert!(stats.tasks_spawned >= 1 && stats.polls >= 1);
///     eprintln!("{stats}");
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    /// Tasks alive now (spawned and not yet dropped). A task spawned from another thread counts
    /// from its first run on the loop on.
    pub tasks_alive: u64,
    /// Tasks spawned in total (those spawned from other threads counted when they first run).
    pub tasks_spawned: u64,
    /// Task polls in total (the `block_on` future's polls are not counted).
    pub polls: u64,
    /// Wakes of a task from the loop's own thread.
    pub local_wakes: u64,
    /// Wakes (and spawns) of a task from other threads, counted when the loop takes them from
    /// its cross-thread queue.
    pub remote_wakes: u64,
    /// Waits in the poller that could block (nothing was ready).
    pub blocking_waits: u64,
    /// Non-blocking I/O and timer checks between runs of ready tasks.
    pub nonblocking_waits: u64,
    /// I/O readiness events the poller delivered.
    pub events: u64,
    /// Timers pending now (sleeps, timeouts, intervals).
    pub timers: u64,
    /// File descriptors registered with the loop's reactor now.
    pub sources: u64,
}

impl Stats {
    /// Events per wait (blocking and non-blocking together); 0 before the first wait.
    pub fn events_per_wait(&self) -> f64 {
        let waits = self.blocking_waits + self.nonblocking_waits;
        if waits == 0 {
            0.0
        } else {
            self.events as f64 / waits as f64
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tasks {} alive, {} spawned; {} polls; wakes {} local, {} remote; waits {} blocking, \
             {} non-blocking; {} events ({:.2} per wait); {} timers; {} sources",
            self.tasks_alive,
            self.tasks_spawned,
            self.polls,
            self.local_wakes,
            self.remote_wakes,
            self.blocking_waits,
            self.nonblocking_waits,
            self.events,
            self.events_per_wait(),
            self.timers,
            self.sources,
        )
    }
}

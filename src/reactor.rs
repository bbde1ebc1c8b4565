//! The reactor: a `polling::Poller` (epoll) per loop, the registered sources with their cached
//! readiness and wakers, and the loop's timers.
//!
//! Every fd is registered once, edge-triggered, for both directions. An event sets the cached
//! readiness of a direction and bumps its sequence number; an operation that then fails with
//! `WouldBlock` (or, on stream sockets, writes less than asked) clears the readiness it
//! observed, but only if no newer event arrived in between. So a keep-alive exchange costs one
//! `recv`, one `send`, one `recv` that fails with `WouldBlock` and a share of one wait, with no
//! `epoll_ctl` to re-arm.
//!
//! A short *read* does not clear readiness: the peer's FIN can arrive together with the last
//! data and be reported by the same edge-triggered event, and `polling` does not report
//! `EPOLLRDHUP`, so after a short read only another `recv` can tell whether EOF is waiting.
//!
//! This is the only module with `unsafe`: registering an fd with the poller.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use polling::{Event, Events, PollMode, Poller};
use slab::Slab;

use crate::timer::Timers;

/// Index of the read direction.
pub(crate) const READ: usize = 0;
/// Index of the write direction.
pub(crate) const WRITE: usize = 1;

/// Locks a mutex, ignoring poisoning: no code holding these locks can panic half-way.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reactor of one loop.
pub(crate) struct Reactor {
    poller: Poller,
    sources: Mutex<Slab<Arc<Source>>>,
    timers: Mutex<Timers>,
}

/// Scratch space for one wait, kept by the loop so that waits do not allocate.
pub(crate) struct Buffers {
    events: Events,
    wakers: Vec<Waker>,
}

impl Buffers {
    pub(crate) fn new(capacity: usize) -> Buffers {
        let capacity = std::num::NonZeroUsize::new(capacity.max(1)).expect("non-zero");
        Buffers {
            events: Events::with_capacity(capacity),
            wakers: Vec::new(),
        }
    }
}

impl Buffers {
    /// Wakes the tasks collected by the last [`Reactor::poll`].
    pub(crate) fn wake_all(&mut self) {
        for waker in self.wakers.drain(..) {
            waker.wake();
        }
    }
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poller: Poller::new()?,
            sources: Mutex::new(Slab::new()),
            timers: Mutex::new(Timers::default()),
        })
    }

    /// Interrupts the current or next blocking wait.
    pub(crate) fn notify(&self) {
        if let Err(err) = self.poller.notify() {
            log::error!("untangle: failed to notify the poller: {err}");
        }
    }

    /// Registers `fd` (once, edge-triggered, both directions). `ready` sets the initial cached
    /// readiness: true lets the first operation try the syscall at once.
    pub(crate) fn insert(
        self: &Arc<Self>,
        fd: BorrowedFd<'_>,
        ready: bool,
    ) -> io::Result<Arc<Source>> {
        let mut sources = lock(&self.sources);
        let entry = sources.vacant_entry();
        let key = entry.key();
        let source = Arc::new(Source {
            reactor: self.clone(),
            key,
            state: Mutex::new([Direction::new(ready), Direction::new(ready)]),
        });
        // SAFETY: `polling` requires the fd to be removed from the poller before it is closed.
        // Sources are only created by `Async`, which owns the I/O object and calls
        // `Reactor::remove` in its `Drop` (and in `into_inner`) before the fd can be closed.
        unsafe {
            self.poller
                .add_with_mode(fd.as_raw_fd(), Event::all(key), PollMode::Edge)?;
        }
        entry.insert(source.clone());
        Ok(source)
    }

    /// How many fds are registered now (for leak tests: see `untangle::__live_sources`).
    pub(crate) fn live_sources(&self) -> usize {
        lock(&self.sources).len()
    }

    /// Deregisters a source; `fd` must be the fd it was registered with, still open.
    pub(crate) fn remove(&self, source: &Source, fd: BorrowedFd<'_>) {
        let mut sources = lock(&self.sources);
        if let Err(err) = self.poller.delete(fd) {
            log::debug!("untangle: deregistering fd {}: {err}", fd.as_raw_fd());
        }
        sources.try_remove(source.key);
    }

    /// Adds a timer that wakes `waker` at `deadline`; returns its id.
    pub(crate) fn insert_timer(&self, deadline: Instant, waker: &Waker) -> u64 {
        lock(&self.timers).insert(deadline, waker.clone())
    }

    /// Refreshes a timer's waker; false when the timer already fired.
    pub(crate) fn update_timer(&self, deadline: Instant, id: u64, waker: &Waker) -> bool {
        lock(&self.timers).update(deadline, id, waker)
    }

    /// Removes a timer that has not fired.
    pub(crate) fn remove_timer(&self, deadline: Instant, id: u64) {
        lock(&self.timers).remove(deadline, id);
    }

    /// Takes every waker the reactor holds, of timers and of tasks waiting for I/O, and removes
    /// the timers: for a loop whose thread exits, so that dropping the wakers can release the
    /// tasks parked here (otherwise each task and the reactor keep each other alive).
    pub(crate) fn take_wakers(&self) -> Vec<Waker> {
        let mut out = Vec::new();
        lock(&self.timers).take_all(&mut out);
        let sources: Vec<Arc<Source>> = lock(&self.sources)
            .iter()
            .map(|(_, source)| source.clone())
            .collect();
        for source in sources {
            for direction in lock(&source.state).iter_mut() {
                direction.drain_wakers(&mut out);
            }
        }
        out
    }

    /// Collects I/O events and due timers; their wakers are left in `buf` for
    /// [`Buffers::wake_all`], so the loop can mark itself awake first (a wake while it is
    /// still marked asleep would pay for a needless poller notification).
    ///
    /// With `block`, waits until an event, a notification or the next timer deadline; without,
    /// only looks (and skips the syscalls entirely when no fd is registered).
    pub(crate) fn poll(&self, buf: &mut Buffers, block: bool) {
        let mut timeout = Some(Duration::ZERO);
        let mut has_timers = false;
        {
            let mut timers = lock(&self.timers);
            if !timers.is_empty() {
                has_timers = true;
                let now = Instant::now();
                let next = timers.expire(now, &mut buf.wakers);
                if block && buf.wakers.is_empty() {
                    timeout = next.map(|deadline| deadline.saturating_duration_since(now));
                }
            } else if block {
                timeout = None;
            }
        }

        let skip = timeout == Some(Duration::ZERO) && lock(&self.sources).is_empty();
        if !skip {
            if let Err(err) = self.poller.wait(&mut buf.events, timeout) {
                log::error!("untangle: waiting for I/O events failed: {err}");
            }
            let sources = lock(&self.sources);
            for event in buf.events.iter() {
                if let Some(source) = sources.get(event.key) {
                    source.set_ready(event.readable, event.writable, &mut buf.wakers);
                }
            }
            drop(sources);
            buf.events.clear();
        }

        if has_timers && !skip {
            lock(&self.timers).expire(Instant::now(), &mut buf.wakers);
        }
    }
}

/// The readiness of one direction of a source.
struct Direction {
    /// Cached readiness: the fd may be ready in this direction.
    ready: bool,
    /// Bumped at every event, so a clear never erases a newer event.
    seq: u64,
    /// Waker of the `poll_read`/`poll_write` style caller (one per direction, like tokio).
    waker: Option<Waker>,
    /// Wakers of `readable()`/`writable()` futures; each removes its slot when dropped.
    waiters: Slab<Option<Waker>>,
}

impl Direction {
    fn new(ready: bool) -> Direction {
        Direction {
            ready,
            seq: 0,
            waker: None,
            waiters: Slab::new(),
        }
    }

    fn drain_wakers(&mut self, out: &mut Vec<Waker>) {
        out.extend(self.waker.take());
        for (_, waiter) in self.waiters.iter_mut() {
            out.extend(waiter.take());
        }
    }
}

/// A registered fd: cached readiness and wakers per direction.
pub(crate) struct Source {
    reactor: Arc<Reactor>,
    key: usize,
    state: Mutex<[Direction; 2]>,
}

impl Source {
    /// The reactor this source is registered with.
    pub(crate) fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// `Ready(seq)` when the direction may be ready; otherwise stores the (single) waker.
    pub(crate) fn poll_ready(&self, dir: usize, cx: &mut Context<'_>) -> Poll<u64> {
        let mut state = lock(&self.state);
        let d = &mut state[dir];
        if d.ready {
            return Poll::Ready(d.seq);
        }
        match &mut d.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Like [`poll_ready`](Self::poll_ready) for a future with its own waiter slot, so several
    /// tasks can wait on the same direction and all are woken.
    pub(crate) fn poll_ready_waiter(
        &self,
        dir: usize,
        cx: &mut Context<'_>,
        slot: &mut Option<usize>,
    ) -> Poll<u64> {
        let mut state = lock(&self.state);
        let d = &mut state[dir];
        if d.ready {
            if let Some(key) = slot.take() {
                d.waiters.try_remove(key);
            }
            return Poll::Ready(d.seq);
        }
        match slot.and_then(|key| d.waiters.get_mut(key)) {
            Some(Some(w)) if w.will_wake(cx.waker()) => {}
            Some(waker) => *waker = Some(cx.waker().clone()),
            None => *slot = Some(d.waiters.insert(Some(cx.waker().clone()))),
        }
        Poll::Pending
    }

    /// Frees a waiter slot of a dropped future.
    pub(crate) fn remove_waiter(&self, dir: usize, key: usize) {
        lock(&self.state)[dir].waiters.try_remove(key);
    }

    /// Clears cached readiness observed at `seq`, unless an event arrived since.
    pub(crate) fn clear(&self, dir: usize, seq: u64) {
        let mut state = lock(&self.state);
        let d = &mut state[dir];
        if d.seq == seq {
            d.ready = false;
        }
    }

    fn set_ready(&self, readable: bool, writable: bool, out: &mut Vec<Waker>) {
        let mut state = lock(&self.state);
        for (dir, ready) in [(READ, readable), (WRITE, writable)] {
            if ready {
                let d = &mut state[dir];
                d.ready = true;
                d.seq = d.seq.wrapping_add(1);
                d.drain_wakers(out);
            }
        }
    }
}

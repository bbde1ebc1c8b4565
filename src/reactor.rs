//! The reactor: one epoll instance per loop, the registered sources with their cached readiness
//! and wakers, and the loop's timers.
//!
//! # One syscall per wait
//! The reactor talks to epoll directly through rustix's safe wrappers. A wait is a single
//! `epoll_wait`, its timeout the next timer deadline rounded *up* to whole milliseconds (so a
//! wait never ends before the deadline it waits for) or infinite when no timer is pending. Other
//! threads interrupt it through an eventfd registered once, edge-triggered; a notification is
//! one `write` to it (made only while the loop sleeps or is about to, see the executor). The
//! eventfd is never read: with `EPOLLET` every write is a new edge whatever the counter holds, and
//! the 64-bit counter cannot realistically fill up (should a write ever find it full, the
//! notifier resets it and writes again). So a cross-thread wake costs one `write`, and a wait
//! costs one `epoll_wait`, where `polling` 3.11 spent five syscalls (`timerfd_settime`,
//! `epoll_ctl`, `epoll_pwait`, an eventfd `read` and another `epoll_ctl`).
//!
//! # Readiness, not re-registration
//! Every fd is registered once, edge-triggered, for `EPOLLIN | EPOLLOUT | EPOLLRDHUP`. An event
//! sets the cached readiness of a direction and bumps its sequence number; an operation that then
//! fails with `WouldBlock`, or proves the fd drained (a short read or write on a stream socket),
//! clears the readiness it observed, but only if no newer event arrived in between. So a
//! keep-alive exchange costs one `recv`, one `send` and a share of one wait, with no `epoll_ctl`
//! to re-arm and no `recv` that fails with `WouldBlock`.
//!
//! `EPOLLRDHUP` and `EPOLLHUP` set a sticky *read closed* bit. The peer's FIN can arrive with its
//! last data and be reported by the same edge; a reader that then cleared readiness after its
//! short read would wait forever for an event that never comes. With the bit set, a short read
//! leaves readiness alone, so the next read finds the EOF. Hang-ups and errors wake both
//! directions.
//!
//! This module has no `unsafe`: rustix's epoll wrappers take borrowed fds, and the ownership rule
//! epoll itself needs (deregister before close) is kept by `Async`, which deregisters in its
//! `Drop` while it still owns the fd.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{eventfd, EventfdFlags, Timespec};
use rustix::io::Errno;
use slab::Slab;

use crate::timer::Timers;

/// Index of the read direction.
pub(crate) const READ: usize = 0;
/// Index of the write direction.
pub(crate) const WRITE: usize = 1;

/// The epoll key of the notification eventfd; sources use their slab index.
const NOTIFY_KEY: u64 = u64::MAX;

/// The longest wait timeout, in milliseconds: `epoll_pwait` takes an `int`. A longer sleep just
/// waits again; a wait that ends before the deadline fires nothing.
const MAX_TIMEOUT_MS: u128 = i32::MAX as u128;

/// Locks a mutex, ignoring poisoning: no code holding these locks can panic half-way.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reactor of one loop.
pub(crate) struct Reactor {
    epoll: OwnedFd,
    /// Written by other threads to interrupt a wait; registered edge-triggered, never read.
    notify: OwnedFd,
    sources: Mutex<Slab<Arc<Source>>>,
    timers: Mutex<Timers>,
}

/// Scratch space for one wait, kept by the loop so that waits do not allocate.
pub(crate) struct Buffers {
    events: Vec<epoll::Event>,
    wakers: Vec<Waker>,
}

impl Buffers {
    pub(crate) fn new(capacity: usize) -> Buffers {
        Buffers {
            events: Vec::with_capacity(capacity.max(1)),
            wakers: Vec::new(),
        }
    }

    /// Wakes the tasks collected by the last [`Reactor::poll`].
    pub(crate) fn wake_all(&mut self) {
        for waker in self.wakers.drain(..) {
            waker.wake();
        }
    }
}

/// Rounds a wait timeout up to whole milliseconds, the resolution of `epoll_pwait`, so that the
/// wait cannot end before the deadline it was computed from.
fn timeout_ms(timeout: Duration) -> Timespec {
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(MAX_TIMEOUT_MS) as i64;
    Timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    }
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let notify = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &notify,
            EventData::new_u64(NOTIFY_KEY),
            EventFlags::IN | EventFlags::ET,
        )?;
        Ok(Reactor {
            epoll,
            notify,
            sources: Mutex::new(Slab::new()),
            timers: Mutex::new(Timers::default()),
        })
    }

    /// Interrupts the current or next blocking wait: one eventfd write, a new edge each time.
    pub(crate) fn notify(&self) {
        let one = 1u64.to_ne_bytes();
        let result = match rustix::io::write(&self.notify, &one) {
            // The counter is full (after ~2^64 notifications): reset it and notify again.
            Err(Errno::AGAIN) => {
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(&self.notify, &mut buf);
                rustix::io::write(&self.notify, &one)
            }
            other => other,
        };
        if let Err(err) = result {
            log::error!("untangle: failed to notify the loop's eventfd: {err}");
        }
    }

    /// Registers `fd` (once, edge-triggered, both directions and read hang-up). `ready` sets the
    /// initial cached readiness: true lets the first operation try the syscall at once.
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
            state: Mutex::new(State {
                dirs: [Direction::new(ready), Direction::new(ready)],
                read_closed: false,
            }),
        });
        let interest = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
        epoll::add(&self.epoll, fd, EventData::new_u64(key as u64), interest)?;
        entry.insert(source.clone());
        Ok(source)
    }

    /// Deregisters a source; `fd` must be the fd it was registered with, still open.
    pub(crate) fn remove(&self, source: &Source, fd: BorrowedFd<'_>) {
        let mut sources = lock(&self.sources);
        if let Err(err) = epoll::delete(&self.epoll, fd) {
            log::debug!("untangle: deregistering fd {}: {err}", fd.as_raw_fd());
        }
        sources.try_remove(source.key);
    }

    /// How many fds are registered.
    pub(crate) fn len(&self) -> usize {
        lock(&self.sources).len()
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
            for direction in lock(&source.state).dirs.iter_mut() {
                direction.drain_wakers(&mut out);
            }
        }
        out
    }

    /// Collects I/O events and due timers; their wakers are left in `buf` for
    /// [`Buffers::wake_all`], so the loop can mark itself awake first (a wake while it is
    /// still marked asleep would pay for a needless notification).
    ///
    /// With `block`, waits until an event, a notification or the next timer deadline; without,
    /// only looks (and skips the syscall entirely when no fd is registered). Either way it is
    /// at most one `epoll_wait`.
    pub(crate) fn poll(&self, buf: &mut Buffers, block: bool) {
        // `None` waits forever.
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
        if skip {
            return;
        }
        let timespec = timeout.map(timeout_ms);
        buf.events.clear();
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut buf.events),
            timespec.as_ref(),
        ) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(err) => log::error!("untangle: epoll_wait failed: {err}"),
        }
        if !buf.events.is_empty() {
            let sources = lock(&self.sources);
            for event in &buf.events {
                let key = event.data.u64();
                if key == NOTIFY_KEY {
                    continue;
                }
                if let Some(source) = sources.get(key as usize) {
                    source.set_ready(event.flags, &mut buf.wakers);
                }
            }
        }

        if has_timers {
            lock(&self.timers).expire(Instant::now(), &mut buf.wakers);
        }
    }
}

/// The number of fds registered with the calling thread's reactor.
pub(crate) fn live_sources() -> usize {
    crate::executor::current_reactor().len()
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

/// The mutable part of a source.
struct State {
    dirs: [Direction; 2],
    /// Sticky: the peer closed its write half (`EPOLLRDHUP`) or the fd hung up (`EPOLLHUP`), so
    /// whatever is left to read ends in EOF, and a short read no longer proves that a further
    /// read would block.
    read_closed: bool,
}

/// A registered fd: cached readiness and wakers per direction.
pub(crate) struct Source {
    reactor: Arc<Reactor>,
    key: usize,
    state: Mutex<State>,
}

impl Source {
    /// The reactor this source is registered with.
    pub(crate) fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// `Ready(seq)` when the direction may be ready; otherwise stores the (single) waker.
    pub(crate) fn poll_ready(&self, dir: usize, cx: &mut Context<'_>) -> Poll<u64> {
        let mut state = lock(&self.state);
        let d = &mut state.dirs[dir];
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
        let d = &mut state.dirs[dir];
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
        lock(&self.state).dirs[dir].waiters.try_remove(key);
    }

    /// Clears cached readiness observed at `seq`, unless an event arrived since.
    pub(crate) fn clear(&self, dir: usize, seq: u64) {
        let mut state = lock(&self.state);
        let d = &mut state.dirs[dir];
        if d.seq == seq {
            d.ready = false;
        }
    }

    /// After a result that proves the fd drained in `dir` (a short read or write on a stream
    /// socket): clears the readiness observed at `seq`, unless an event arrived since or, for
    /// reads, the read side is closed (then EOF is still to be read, and no further edge would
    /// report it).
    pub(crate) fn clear_drained(&self, dir: usize, seq: u64) {
        let mut state = lock(&self.state);
        if dir == READ && state.read_closed {
            return;
        }
        let d = &mut state.dirs[dir];
        if d.seq == seq {
            d.ready = false;
        }
    }

    fn set_ready(&self, flags: EventFlags, out: &mut Vec<Waker>) {
        let mut state = lock(&self.state);
        let hup = flags.intersects(EventFlags::HUP | EventFlags::ERR);
        if flags.intersects(EventFlags::RDHUP | EventFlags::HUP) {
            state.read_closed = true;
        }
        let readable = hup || flags.intersects(EventFlags::IN | EventFlags::RDHUP);
        let writable = hup || flags.contains(EventFlags::OUT);
        for (dir, ready) in [(READ, readable), (WRITE, writable)] {
            if ready {
                let d = &mut state.dirs[dir];
                d.ready = true;
                d.seq = d.seq.wrapping_add(1);
                d.drain_wakers(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_timeouts_round_up_to_whole_milliseconds() {
        let ms = |t: Timespec| t.tv_sec * 1000 + t.tv_nsec / 1_000_000;
        assert_eq!(ms(timeout_ms(Duration::ZERO)), 0);
        assert_eq!(ms(timeout_ms(Duration::from_nanos(1))), 1);
        assert_eq!(ms(timeout_ms(Duration::from_micros(999))), 1);
        assert_eq!(ms(timeout_ms(Duration::from_millis(1))), 1);
        assert_eq!(ms(timeout_ms(Duration::from_micros(1001))), 2);
        assert_eq!(ms(timeout_ms(Duration::from_millis(2500))), 2500);
        assert_eq!(timeout_ms(Duration::from_millis(2500)).tv_nsec, 500_000_000);
        assert_eq!(
            ms(timeout_ms(Duration::from_secs(u64::MAX))),
            i64::from(i32::MAX)
        );
    }
}

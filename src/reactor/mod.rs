//! The reactor: one `polling::Poller` per loop, the registered sources with their cached
//! readiness and wakers, and the loop's timers.
//!
//! # One seam, two backends
//! `polling::Poller` creates and owns the OS poller on every platform. What differs is how the
//! reactor registers, waits and notifies — nothing else:
//! - [`epoll`] (Linux, the default there): registrations and waits made directly on the
//!   Poller's epoll fd, `IN|OUT|RDHUP|ET`, one `epoll_wait` per wait, one eventfd `write` per
//!   cross-thread wake (that file's doc says why polling's own wait costs five syscalls);
//! - [`portable`] (everywhere else, and on Linux with `UNTANGLE_REACTOR=polling`): polling's
//!   API only, edge-triggered where supported, else one-shot with re-arming.
//!
//! Cached readiness with sequence numbers, wakers, timers and the executor's sleep/notify
//! protocol are shared. The environment variable `UNTANGLE_REACTOR` is read once when a loop
//! starts: `epoll` (Linux default), `polling` (portable), or `polling-oneshot` (portable, forced
//! one-shot, to test that path on Linux).
//!
//! # Readiness, not re-registration
//! Every fd is registered once for both directions. An event sets the cached readiness of a
//! direction and bumps its sequence number; an operation that then fails with `WouldBlock`
//! clears the readiness it observed, but only if no newer event arrived in between. On the epoll
//! backend a result that proves the fd drained (a short read or write on a stream socket) clears
//! it too, so a keep-alive exchange costs one `recv`, one `send` and a share of one wait.
//!
//! A read hang-up (`EPOLLRDHUP`, or a full hang-up on any backend) sets a sticky *read closed*
//! bit. The peer's FIN can arrive with its last data and be reported by the same edge; a reader
//! that then cleared readiness after its short read would wait forever for an event that never
//! comes. With the bit set, a short read leaves readiness alone, so the next read finds the EOF.
//! TCP urgent data (`EPOLLPRI`) sets a sticky *urgent* bit with the same effect: a read stops
//! short at the urgent mark with ordinary data queued behind it. The portable backend cannot
//! see a half-close, so it never clears on a short read. Hang-ups and errors wake both
//! directions.
//!
//! # Loops and threads
//! A source belongs to the reactor it is registered with. An `Async` polled on another thread's
//! running loop moves its registration there (see [`Source::move_to`]), so an I/O object that
//! travels with its task keeps working whatever happens to the loop it came from.
//!
//! Lock order: a reactor's `sources`, then a source's `state`; a source's `state` is never held
//! while a reactor's `sources` is taken.

mod backend;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
mod event;
mod portable;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use self::backend::{Backend, Events};
use self::event::Readiness;
use crate::clock;
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
    backend: Backend,
    /// Whether a short read or write proves a stream fd drained (the epoll backend, which sees
    /// half-closes); the portable backend clears readiness only on `WouldBlock`.
    short_ops_drain: bool,
    sources: Mutex<Slab<Arc<Source>>>,
    timers: Mutex<Timers>,
}

/// Scratch space for one wait, kept by the loop so that waits do not allocate.
pub(crate) struct Buffers {
    events: Events,
    wakers: Vec<Waker>,
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
    /// A reactor on a new Poller, with the backend `UNTANGLE_REACTOR` selects.
    pub(crate) fn new() -> io::Result<Reactor> {
        let backend = Backend::from_env()?;
        let short_ops_drain = !matches!(backend, Backend::Portable(_));
        Ok(Reactor {
            backend,
            short_ops_drain,
            sources: Mutex::new(Slab::new()),
            timers: Mutex::new(Timers::default()),
        })
    }

    /// The name of the backend, for logs and tests.
    pub(crate) fn backend_name(&self) -> &'static str {
        match &self.backend {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll(_) => "epoll",
            Backend::Portable(b) if b.is_oneshot() => "polling-oneshot",
            Backend::Portable(_) => "polling",
        }
    }

    /// Scratch buffers for [`poll`](Self::poll), for up to `capacity` events per wait.
    pub(crate) fn buffers(&self, capacity: usize) -> Buffers {
        Buffers {
            events: self.backend.events(capacity),
            wakers: Vec::new(),
        }
    }

    /// An identity for this reactor, to tell whether a source is registered with it.
    pub(crate) fn id(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// Interrupts the current or next blocking wait.
    pub(crate) fn notify(&self) {
        if let Err(err) = self.backend.notify() {
            log::error!("untangle: failed to notify the loop's poller: {err}");
        }
    }

    /// Registers `fd` (once, for both directions). `ready` sets the initial cached readiness:
    /// true lets the first operation try the syscall at once.
    pub(crate) fn insert(
        self: &Arc<Self>,
        fd: BorrowedFd<'_>,
        ready: bool,
    ) -> io::Result<Arc<Source>> {
        let state = State {
            reactor: self.clone(),
            key: 0,
            registered: true,
            dirs: [Direction::new(ready), Direction::new(ready)],
            read_closed: false,
            urgent: false,
            armed: [true, true],
        };
        let source = Arc::new(Source {
            home: AtomicUsize::new(self.id()),
            state: Mutex::new(state),
            moving: Mutex::new(()),
        });
        let key = self.register(fd, &source)?;
        lock(&source.state).key = key;
        Ok(source)
    }

    /// Adds `fd` to the poller and `source` to the slab; returns its key.
    fn register(&self, fd: BorrowedFd<'_>, source: &Arc<Source>) -> io::Result<usize> {
        let mut sources = lock(&self.sources);
        let entry = sources.vacant_entry();
        let key = entry.key();
        self.backend.add(fd, key)?;
        entry.insert(source.clone());
        Ok(key)
    }

    /// Removes `source`, registered at `key`; `fd` must be the fd it was registered with,
    /// still open. The slab entry is checked to be `source` itself, so a stale key can never
    /// remove another source that reused the slot.
    fn deregister(&self, key: usize, fd: BorrowedFd<'_>, source: &Source) {
        let mut sources = lock(&self.sources);
        if !sources
            .get(key)
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), source))
        {
            return;
        }
        if let Err(err) = self.backend.delete(fd) {
            log::debug!("untangle: deregistering fd {}: {err}", fd.as_raw_fd());
        }
        sources.remove(key);
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

    /// Moves a pending timer to `new`, keeping its waker; false when it already fired.
    ///
    /// When the timer becomes the earliest one by moving earlier and `from_elsewhere` (the
    /// caller is not this reactor's running loop), the loop is notified: it may be asleep in a
    /// wait computed from the old first deadline.
    pub(crate) fn reset_timer(
        &self,
        old: Instant,
        id: u64,
        new: Instant,
        from_elsewhere: bool,
    ) -> bool {
        let (moved, first) = {
            let mut timers = lock(&self.timers);
            let moved = timers.reset(old, id, new);
            (moved, timers.next_deadline() == Some(new))
        };
        if moved && new < old && first && from_elsewhere {
            self.notify();
        }
        moved
    }

    /// How many timers are pending.
    pub(crate) fn timers_len(&self) -> usize {
        lock(&self.timers).len()
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
    /// one wait of the backend (one `epoll_wait` on the epoll backend).
    ///
    /// Returns the number of I/O events the wait delivered (for `stats`).
    pub(crate) fn poll(&self, buf: &mut Buffers, block: bool) -> usize {
        // `None` waits forever.
        let mut timeout = Some(Duration::ZERO);
        let mut has_timers = false;
        // A paused clock (`time::pause`) only looks for I/O; with nothing to do, it then jumps
        // to the next deadline instead of sleeping until it.
        let paused = clock::is_paused();
        let mut next = None;
        {
            let mut timers = lock(&self.timers);
            if !timers.is_empty() {
                has_timers = true;
                let now = clock::now();
                next = timers.expire(now, &mut buf.wakers);
                if block && buf.wakers.is_empty() && !paused {
                    timeout = next.map(|deadline| deadline.saturating_duration_since(now));
                }
            } else if block {
                timeout = None;
            }
        }

        let skip = timeout == Some(Duration::ZERO) && lock(&self.sources).is_empty();
        let mut events = 0;
        if !skip {
            self.backend.wait(&mut buf.events, timeout);
            let oneshot = self.backend.oneshot().is_some();
            let mut sources = None;
            let wakers = &mut buf.wakers;
            buf.events.dispatch(|key, readiness| {
                events += 1;
                let sources = sources.get_or_insert_with(|| lock(&self.sources));
                if let Some(source) = sources.get(key) {
                    source.set_ready(readiness, oneshot, wakers);
                }
            });
        }

        if has_timers {
            if paused && block && buf.wakers.is_empty() {
                if let Some(next) = next {
                    clock::advance_to(next);
                }
            }
            lock(&self.timers).expire(clock::now(), &mut buf.wakers);
        }
        events
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

    /// Marks the direction ready as of a new event.
    fn set_ready(&mut self, out: &mut Vec<Waker>) {
        self.ready = true;
        self.seq = self.seq.wrapping_add(1);
        self.drain_wakers(out);
    }
}

/// The mutable part of a source.
struct State {
    /// The reactor the fd is registered with now.
    reactor: Arc<Reactor>,
    /// Its key in that reactor's slab and poller.
    key: usize,
    /// Whether the fd is registered with `reactor` (false only after a failed move).
    registered: bool,
    dirs: [Direction; 2],
    /// Sticky: the peer closed its write half or the fd hung up, so whatever is left to read
    /// ends in EOF, and a short read no longer proves that a further read would block.
    read_closed: bool,
    /// Sticky: TCP urgent data arrived. A read stops short at the urgent mark though more data
    /// is queued behind it (and no further edge announces that data), so, as with
    /// `read_closed`, a short read no longer proves the socket drained.
    urgent: bool,
    /// One-shot backend only: the directions the registration is armed for.
    armed: [bool; 2],
}

impl State {
    /// Before a task parks on `dir`: on a one-shot backend, re-arms the registration for every
    /// direction not known to be ready (an event disarmed all of them).
    fn arm(&mut self, dir: usize, fd: BorrowedFd<'_>) -> io::Result<()> {
        let Some(backend) = self.reactor.backend.oneshot() else {
            return Ok(());
        };
        if self.armed[dir] {
            return Ok(());
        }
        if !self.registered {
            return Ok(());
        }
        let interest = [!self.dirs[READ].ready, !self.dirs[WRITE].ready];
        match backend.rearm(fd, self.key, interest[READ], interest[WRITE]) {
            Ok(()) => self.armed = interest,
            // Another thread is moving the source: its new registration arms every direction.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        Ok(())
    }
}

/// A registered fd: cached readiness and wakers per direction.
pub(crate) struct Source {
    /// The [`Reactor::id`] of the reactor in `state`, readable without the lock.
    home: AtomicUsize,
    state: Mutex<State>,
    /// Held while the source moves between reactors, so two threads cannot both move it.
    moving: Mutex<()>,
}

impl Source {
    /// The [`Reactor::id`] of the reactor the source is registered with.
    pub(crate) fn home(&self) -> usize {
        self.home.load(Ordering::Acquire)
    }

    /// Deregisters the source; `fd` must be the fd it was registered with, still open.
    pub(crate) fn deregister(&self, fd: BorrowedFd<'_>) {
        let _moving = lock(&self.moving);
        let (reactor, key, registered) = {
            let state = lock(&self.state);
            (state.reactor.clone(), state.key, state.registered)
        };
        if registered {
            reactor.deregister(key, fd, self);
        }
    }

    /// Moves the registration of `fd` to `to` (an `Async` polled on another loop): deregisters
    /// it from its current reactor and registers it with `to`. Waiters stay parked: the new
    /// registration reports whatever readiness the fd has now (an edge-triggered or one-shot
    /// add does), and their wakers work from any thread. Waking them all instead would make two
    /// loops that share one `Async` (a reader here, a writer there) move it back and forth
    /// forever. If the registration fails, every waiter is woken to retry, and the source is
    /// left registered nowhere, so the next wait tries again.
    pub(crate) fn move_to(
        self: &Arc<Self>,
        to: &Arc<Reactor>,
        fd: BorrowedFd<'_>,
    ) -> io::Result<()> {
        let _moving = lock(&self.moving);
        let (from, key, registered) = {
            let state = lock(&self.state);
            (state.reactor.clone(), state.key, state.registered)
        };
        if registered {
            if Arc::ptr_eq(&from, to) {
                return Ok(());
            }
            from.deregister(key, fd, self);
        }
        let result = to.register(fd, self);
        let mut wakers = Vec::new();
        {
            let mut state = lock(&self.state);
            match result {
                Ok(key) => {
                    state.reactor = to.clone();
                    state.key = key;
                    state.registered = true;
                    state.armed = [true, true];
                    self.home.store(to.id(), Ordering::Release);
                }
                Err(_) => {
                    state.registered = false;
                    // No reactor is home: the next wait, wherever it happens, registers again.
                    self.home.store(0, Ordering::Release);
                    for d in state.dirs.iter_mut() {
                        d.set_ready(&mut wakers);
                    }
                }
            }
        }
        log::debug!(
            "untangle: fd {} moved to the loop that polls it now",
            fd.as_raw_fd()
        );
        for waker in wakers {
            waker.wake();
        }
        result.map(drop)
    }

    /// `Ready(seq)` when the direction may be ready; otherwise stores the (single) waker.
    pub(crate) fn poll_ready(
        &self,
        dir: usize,
        cx: &mut Context<'_>,
        fd: BorrowedFd<'_>,
    ) -> Poll<io::Result<u64>> {
        let mut state = lock(&self.state);
        if state.dirs[dir].ready {
            return Poll::Ready(Ok(state.dirs[dir].seq));
        }
        match &mut state.dirs[dir].waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        match state.arm(dir, fd) {
            Ok(()) => Poll::Pending,
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    /// Like [`poll_ready`](Self::poll_ready) for a future with its own waiter slot, so several
    /// tasks can wait on the same direction and all are woken.
    pub(crate) fn poll_ready_waiter(
        &self,
        dir: usize,
        cx: &mut Context<'_>,
        fd: BorrowedFd<'_>,
        slot: &mut Option<usize>,
    ) -> Poll<io::Result<u64>> {
        let mut state = lock(&self.state);
        let d = &mut state.dirs[dir];
        if d.ready {
            if let Some(key) = slot.take() {
                d.waiters.try_remove(key);
            }
            return Poll::Ready(Ok(d.seq));
        }
        match slot.and_then(|key| d.waiters.get_mut(key)) {
            Some(Some(w)) if w.will_wake(cx.waker()) => {}
            Some(waker) => *waker = Some(cx.waker().clone()),
            None => *slot = Some(d.waiters.insert(Some(cx.waker().clone()))),
        }
        match state.arm(dir, fd) {
            Ok(()) => Poll::Pending,
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    /// Frees a waiter slot of a dropped future.
    pub(crate) fn remove_waiter(&self, dir: usize, key: usize) {
        lock(&self.state).dirs[dir].waiters.try_remove(key);
    }

    /// Clears cached readiness observed at `seq`, unless an event arrived since.
    ///
    /// A read that would block has passed any urgent mark, so the urgent bit goes too: later
    /// urgent data brings an event of its own, and a socket that once got urgent data does not
    /// pay an extra read per burst for the rest of its life.
    pub(crate) fn clear(&self, dir: usize, seq: u64) {
        let mut state = lock(&self.state);
        if state.dirs[dir].seq == seq {
            state.dirs[dir].ready = false;
            if dir == READ {
                state.urgent = false;
            }
        }
    }

    /// After a result that proves the fd drained in `dir` (a short read or write on a stream
    /// socket): clears the readiness observed at `seq`, unless an event arrived since, the
    /// backend cannot see half-closes (portable), or, for reads, the read side is closed (then
    /// EOF is still to be read, and no further edge would report it) or urgent data arrived
    /// (a read stops at the urgent mark with data queued behind it).
    pub(crate) fn clear_drained(&self, dir: usize, seq: u64) {
        let mut state = lock(&self.state);
        if !state.reactor.short_ops_drain || (dir == READ && (state.read_closed || state.urgent)) {
            return;
        }
        let d = &mut state.dirs[dir];
        if d.seq == seq {
            d.ready = false;
        }
    }

    /// Applies one event. On a one-shot backend the event disarmed the whole registration, so
    /// the waiters of a direction it did not report are woken too: they re-poll and re-arm.
    fn set_ready(&self, readiness: Readiness, oneshot: bool, out: &mut Vec<Waker>) {
        let mut state = lock(&self.state);
        if readiness.read_closed {
            state.read_closed = true;
        }
        if readiness.urgent {
            state.urgent = true;
        }
        if oneshot {
            state.armed = [false, false];
        }
        for (dir, ready) in [(READ, readiness.readable), (WRITE, readiness.writable)] {
            let d = &mut state.dirs[dir];
            if ready {
                d.set_ready(out);
            } else if oneshot {
                d.drain_wakers(out);
            }
        }
    }
}

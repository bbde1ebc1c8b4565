//! The run loop: one per thread, created lazily, driven by [`block_on`].
//!
//! Tasks are `async_task` runnables. A wake on the loop's own thread pushes the runnable onto a
//! plain `VecDeque` (no atomics, no eventfd). A wake from another thread pushes onto a
//! `ConcurrentQueue` and notifies the reactor (one eventfd write), but only when the loop is
//! asleep or about to sleep, and at most once per sleep (see [`Shared::notify`]).
//!
//! The schedule function is a plain `fn` (it finds the loop through the task's metadata, an
//! `Arc<Shared>`): `async_task` then skips the reference-count increment and decrement it
//! otherwise wraps around every schedule call, and a wake by value hands its reference straight
//! to the runnable.
//!
//! # Scheduling guarantees
//! - Tasks run in the order they were woken (FIFO), the `block_on` future counting as a task.
//! - After at most [`BUDGET`] (61) task polls in a row, the loop checks I/O and timers with a
//!   non-blocking wait before running more tasks, so a task that wakes itself forever cannot
//!   starve sockets, timers or the tasks they wake.
//! - [`yield_now`] puts the task behind every other ready task *and* behind an I/O check. So
//!   does any wake of a task while it is running (a task waking itself), which is how
//!   `yield_now` works inside tasks: one atomic operation, no waker clone.
//! - When nothing is ready, the loop blocks in the poller until the next timer deadline (or
//!   forever when there is none): an idle loop uses no CPU.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::Location;
use std::pin::pin;
use std::ptr;
use std::sync::atomic::{fence, AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use crate::reactor::{Buffers, Reactor};
use crate::shared::{Runnable, Shared, TaskMeta, AWAKE, NO_TASK, SLEEPING};
use crate::stats::{bump, Counters, Stats};
use crate::task::{tracked, Task};
use crate::task_info::{Origin, Registry, TaskInfo};
use async_task::{ScheduleInfo, WithInfo};
use concurrent_queue::ConcurrentQueue;

/// How many task polls the loop performs before it checks I/O and timers again (tokio uses the
/// same number).
pub const BUDGET: usize = 61;

/// How many events one wait can return; a large buffer spreads the cost of a wait over many
/// ready sockets.
const EVENTS_CAPACITY: usize = 1024;

/// The schedule function of every task: from whatever thread woke it, queues the runnable on
/// its loop (found in the task's metadata).
///
/// A plain `fn`, so `async_task` needs no temporary reference around the call.
pub(crate) fn schedule(runnable: Runnable, info: ScheduleInfo) {
    if ptr::eq(
        CURRENT.with(Cell::get),
        Arc::as_ptr(&runnable.metadata().shared),
    ) {
        // On the loop's own thread: a plain local queue. `CURRENT` points to this loop only
        // while its `Local` is alive and not being dropped (`Local::drop` clears it first), so
        // `LOCAL.with` cannot fail here. A task woken while it runs (it woke itself, as
        // `yield_now` does) waits behind the next I/O check.
        LOCAL.with(|local| {
            bump(&local.counters.local_wakes, 1);
            if info.woken_while_running {
                local.deferred.borrow_mut().push_back(runnable);
            } else {
                local.queue.borrow_mut().push_back(runnable);
            }
        });
    } else {
        // The reference keeps `Shared` alive through the notification, even if the loop runs
        // and frees the task as soon as it is pushed.
        let shared = runnable.metadata().shared.clone();
        shared.push_remote(runnable);
    }
}

/// The loop of one thread. Lives in a thread-local; its tasks stay here between `block_on` calls.
struct Local {
    shared: Arc<Shared>,
    queue: RefCell<VecDeque<Runnable>>,
    /// Tasks woken while they ran (`yield_now` in a task): queued after the next I/O check.
    deferred: RefCell<VecDeque<Runnable>>,
    /// Wakers of a `block_on` future that called `yield_now`: woken after the next I/O check.
    yielded: RefCell<Vec<Waker>>,
    buffers: RefCell<Buffers>,
    running: Cell<bool>,
    /// Every live task, for `dump` and for dropping them all when the thread exits.
    tasks: RefCell<Registry>,
    /// The key of the task being polled, or `NO_TASK`.
    current: Cell<usize>,
    counters: Counters,
    /// The time of the current loop turn (refreshed at each I/O check), in ns since `epoch`:
    /// a task's last poll time without a clock read per poll.
    now: Cell<u64>,
    epoch: Instant,
}

thread_local! {
    static LOCAL: Local = Local::new();
    /// The `Shared` of this thread's loop, for a cheap "am I on the loop thread?" test.
    static CURRENT: Cell<*const Shared> = const { Cell::new(ptr::null()) };
    /// Whether the `block_on` future (not a task) is being polled, for `yield_now`: a `const`
    /// thread-local apart from `LOCAL`, so a yield in a task reads one cell and nothing else.
    static POLLING_MAIN: Cell<bool> = const { Cell::new(false) };
    /// The `Shared` of this thread's loop while `Local::drop` runs (when `LOCAL` can no longer
    /// be reached): for a task spawned by a destructor then, see [`spawn_with`].
    static TEARDOWN: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

impl Local {
    fn new() -> Local {
        let reactor = match Reactor::new() {
            Ok(reactor) => Arc::new(reactor),
            Err(err) => panic!("untangle: cannot create the poller for this thread: {err}"),
        };
        let shared = Arc::new(Shared {
            remote: ConcurrentQueue::unbounded(),
            state: AtomicU8::new(AWAKE),
            reactor,
        });
        CURRENT.with(|c| c.set(Arc::as_ptr(&shared)));
        let buffers = RefCell::new(shared.reactor.buffers(EVENTS_CAPACITY));
        Local {
            shared,
            queue: RefCell::new(VecDeque::with_capacity(256)),
            deferred: RefCell::new(VecDeque::new()),
            yielded: RefCell::new(Vec::new()),
            buffers,
            running: Cell::new(false),
            tasks: RefCell::new(Registry::default()),
            current: Cell::new(NO_TASK),
            counters: Counters::default(),
            now: Cell::new(1),
            epoch: Instant::now(),
        }
    }

    fn pop(&self) -> Option<Runnable> {
        let next = self.queue.borrow_mut().pop_front();
        next.or_else(|| {
            let remote = self.shared.remote.pop().ok();
            if remote.is_some() {
                bump(&self.counters.remote_wakes, 1);
            }
            remote
        })
    }

    /// Polls a task, keeping its record up to date.
    fn run(&self, runnable: Runnable) {
        let meta = runnable.metadata();
        let mut key = meta.key();
        bump(&self.counters.polls, 1);
        {
            let mut tasks = self.tasks.borrow_mut();
            if key == NO_TASK {
                // Spawned from another thread: registered now, named at its first poll.
                key = tasks.insert(runnable.waker(), Origin::At(Location::caller()));
                meta.set_key(key);
                bump(&self.counters.spawned, 1);
            }
            tasks.polled(key, self.now.get());
        }
        self.current.set(key);
        runnable.run();
        self.current.set(NO_TASK);
    }

    fn local_is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }

    fn has_ready(&self) -> bool {
        !self.queue.borrow().is_empty() || !self.shared.remote.is_empty()
    }

    /// Checks I/O and timers; blocks only when `block` is set and nothing became ready meanwhile.
    fn park(&self, block: bool, main: &MainWaker) {
        let shared = &self.shared;
        let mut buffers = self.buffers.borrow_mut();
        if block {
            shared.state.store(SLEEPING, Ordering::SeqCst);
            // Pairs with the fence in `Shared::notify`.
            fence(Ordering::SeqCst);
            let woken = !shared.remote.is_empty() || main.woken.load(Ordering::Relaxed);
            let events = shared.reactor.poll(&mut buffers, !woken);
            shared.state.store(AWAKE, Ordering::SeqCst);
            bump(&self.counters.blocking_waits, 1);
            bump(&self.counters.events, events as u64);
        } else {
            let events = shared.reactor.poll(&mut buffers, false);
            bump(&self.counters.nonblocking_waits, 1);
            bump(&self.counters.events, events as u64);
        }
        // Once per turn, not once per poll. Never 0, which means "not polled yet".
        self.now
            .set((self.epoch.elapsed().as_nanos() as u64).max(1));
        buffers.wake_all();
        drop(buffers);
        // Remote wakes join the back of the local queue here, so a busy local queue cannot
        // starve them.
        let mut remote = 0;
        for _ in 0..shared.remote.len() {
            match shared.remote.pop() {
                Ok(runnable) => {
                    remote += 1;
                    self.queue.borrow_mut().push_back(runnable);
                }
                Err(_) => break,
            }
        }
        bump(&self.counters.remote_wakes, remote);
        {
            let mut deferred = self.deferred.borrow_mut();
            if !deferred.is_empty() {
                self.queue.borrow_mut().append(&mut deferred);
            }
        }
        let yielded = std::mem::take(&mut *self.yielded.borrow_mut());
        for waker in yielded {
            waker.wake();
        }
    }

    fn spawn_local<F>(&self, future: F, origin: Origin) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let mut tasks = self.tasks.borrow_mut();
        let key = tasks.vacant_key();
        let meta = TaskMeta::local(self.shared.clone(), key);
        let (runnable, task) = async_task::Builder::new().metadata(meta).spawn_local(
            move |_| tracked::<_, LoopRegistry>(future, None),
            WithInfo(schedule),
        );
        let inserted = tasks.insert(runnable.waker(), origin);
        debug_assert_eq!(inserted, key);
        drop(tasks);
        bump(&self.counters.spawned, 1);
        self.queue.borrow_mut().push_back(runnable);
        Task(task.fallible())
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // The thread exits: drop its tasks here, on their own thread.
        //
        // From now on every wake, even on this thread, goes through the remote queue. So a task
        // woken (or released by its last waker) while another task's future is dropped is
        // queued and dropped below, never inside the wake call, whose caller may hold a lock
        // that the dropped future's destructor takes (an async-channel waking its receivers).
        CURRENT.with(|c| c.set(ptr::null()));
        let _ = TEARDOWN.try_with(|t| *t.borrow_mut() = Some(self.shared.clone()));
        // Every live task, including those whose wakers other threads hold: woken here, they
        // land in the remote queue, and are dropped (with their futures) below.
        let wakers = self.tasks.borrow_mut().take_wakers();
        for waker in wakers {
            waker.wake();
        }
        drop(std::mem::take(&mut *self.yielded.borrow_mut()));
        drop(std::mem::take(&mut *self.deferred.borrow_mut()));
        // Tasks parked on a timer or an fd are referenced only by their wakers in the reactor,
        // and the reactor by them: dropping the wakers releases the tasks.
        drop(self.shared.reactor.take_wakers());
        drop(std::mem::take(&mut *self.queue.borrow_mut()));
        loop {
            while let Ok(runnable) = self.shared.remote.pop() {
                drop(runnable);
            }
            // Once a pass leaves the queue empty, close it: wakes after this point are dropped
            // (see `push_remote`). Runnables pushed just before the close are dropped by one
            // more pass.
            if self.shared.remote.is_empty() {
                self.shared.remote.close();
                if self.shared.remote.is_empty() {
                    break;
                }
            }
        }
        let _ = TEARDOWN.try_with(|t| t.borrow_mut().take());
    }
}

/// The waker of the `block_on` future.
struct MainWaker {
    woken: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.shared.notify();
        }
    }
}

/// Resets the `running` flag even when the future passed to `block_on` panics.
struct RunningGuard<'a>(&'a Cell<bool>);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.set(false);
        // A panic of the `block_on` future leaves the flag set.
        POLLING_MAIN.with(|p| p.set(false));
    }
}

/// Runs the loop on the calling thread until `future` completes, and returns its output.
///
/// Every thread has its own loop, created on first use. Tasks started with [`spawn`] that are
/// still pending when `block_on` returns stay on this thread's loop and continue the next time
/// `block_on` runs on the same thread. They do not run in between.
///
/// # Thread exit
/// When the thread exits, every task still alive on its loop is dropped there: its future's
/// destructors run and its sockets close, even when another thread still holds one of its
/// wakers (say, a channel whose other end lives on another thread). The loop keeps a waker of
/// every live task for this (see [`dump`](crate::dump)), so a task that nobody else can wake any
/// more stays alive until it is cancelled or its thread exits, as in tokio. Awaiting such a
/// task's [`Task`] afterwards, from another thread, panics with a message that says so; it
/// does not hang.
///
/// # Panics
/// Calling `block_on` from inside a running loop (for example from a task) panics: the inner
/// call would block the outer loop's thread, so the outer tasks could never run again. Use
/// `.await` or [`spawn`] instead.
///
/// A panic of `future` itself propagates out of `block_on`; the loop stays usable.
///
/// # Example
/// ```
/// let answer = untangle::block_on(async {
///     let task = untangle::spawn(async { 6 * 7 });
///     task.await
/// });
/// assert_eq!(answer, 42);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    LOCAL.with(|local| {
        if local.running.replace(true) {
            panic!(
                "untangle::block_on called inside a running untangle loop: it would block the \
                 loop's thread and deadlock its tasks; use `.await` or `untangle::spawn` instead"
            );
        }
        let _guard = RunningGuard(&local.running);
        let main = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            shared: local.shared.clone(),
        });
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        // How many tasks, queued when the future last returned `Pending`, still run before it
        // is polled again: the future takes its turn in the queue like a task, so one that
        // wakes itself at once (`futures_lite::future::yield_now`, a spin on `wake_by_ref`)
        // cannot starve the tasks it waits for.
        let mut ahead = 0;
        loop {
            let mut polls = 0;
            while polls < BUDGET {
                // Acquire: pairs with the wake, so the future sees what its waker published.
                if main.woken.load(Ordering::Acquire) && (ahead == 0 || local.local_is_empty()) {
                    main.woken.store(false, Ordering::Relaxed);
                    polls += 1;
                    POLLING_MAIN.with(|p| p.set(true));
                    let poll = future.as_mut().poll(&mut cx);
                    POLLING_MAIN.with(|p| p.set(false));
                    if let Poll::Ready(out) = poll {
                        return out;
                    }
                    ahead = local.queue.borrow().len();
                    continue;
                }
                match local.pop() {
                    Some(runnable) => {
                        polls += 1;
                        ahead = ahead.saturating_sub(1);
                        local.run(runnable);
                    }
                    None => break,
                }
            }
            let idle = polls < BUDGET
                && local.yielded.borrow().is_empty()
                && local.deferred.borrow().is_empty()
                && !main.woken.load(Ordering::Relaxed)
                && !local.has_ready();
            local.park(idle, &main);
        }
    })
}

/// Starts `future` as a task on the current thread's loop and returns its [`Task`] handle.
///
/// The future need not be `Send`: it always runs on this thread. The task starts running at the
/// loop's next turn; dropping the returned [`Task`] cancels it, [`Task::detach`] lets it run on.
///
/// # Panics
/// Panics when called outside a running loop (outside [`block_on`]); a task needs a loop to run
/// it. From another thread, use [`Handle::spawn`](crate::Handle::spawn).
///
/// # Example
/// ```
/// untangle::block_on(async {
///     let a = untangle::spawn(async { 1 });
///     let b = untangle::spawn(async { 2 });
///     assert_eq!(a.await + b.await, 3);
/// });
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    spawn_with(future, Origin::At(Location::caller()))
}

/// [`spawn`] with a name or location already chosen (`Builder::spawn`).
///
/// A destructor that spawns while its thread's loop drops the tasks left at thread exit gets a
/// [`Task`] that never runs: its future is dropped at once, and awaiting it reports that the
/// loop is gone. Panicking there would end the destructor half-way (the panic is caught by the
/// dying task's wrapper, see `task::Tracked`).
pub(crate) fn spawn_with<F>(future: F, origin: Origin) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let mut args = Some((future, origin));
    let spawned = LOCAL.try_with(|local| {
        if !local.running.get() {
            panic!(
                "untangle::spawn called outside a running untangle loop: call it from code \
                 running inside untangle::block_on, or use untangle::Handle::spawn from another \
                 thread"
            );
        }
        let (future, origin) = args.take().expect("taken once");
        local.spawn_local(future, origin)
    });
    match spawned {
        Ok(task) => task,
        Err(_) => {
            let (future, _) = args.take().expect("not taken: the closure did not run");
            let Some(shared) = TEARDOWN.try_with(|t| t.borrow().clone()).ok().flatten() else {
                panic!("untangle::spawn called while this thread's loop is being destroyed");
            };
            let (runnable, task) = async_task::Builder::new()
                .metadata(TaskMeta::local(shared, NO_TASK))
                .spawn_local(
                    move |_| tracked::<_, LoopRegistry>(future, None),
                    WithInfo(schedule),
                );
            // Drops the future, on its own thread: the task is closed without running.
            drop(runnable);
            Task(task.fallible())
        }
    }
}

/// The loop state of the calling thread, shared with other threads (for [`Handle`](crate::Handle)).
pub(crate) fn current_shared() -> Arc<Shared> {
    LOCAL.with(|local| local.shared.clone())
}

/// Whether the `block_on` future (not a task) is being polled on this thread.
pub(crate) fn polling_main() -> bool {
    POLLING_MAIN.with(Cell::get)
}

/// Keeps the waker of a `block_on` future that yields, to wake it after the next I/O check.
pub(crate) fn defer_main(waker: &Waker) {
    LOCAL.with(|local| local.yielded.borrow_mut().push(waker.clone()));
}

/// The reactor of the calling thread's loop.
pub(crate) fn current_reactor() -> Arc<Reactor> {
    LOCAL.with(|local| local.shared.reactor.clone())
}

/// The [`Reactor::id`] of the loop running on the calling thread (inside `block_on`), or 0.
pub(crate) fn running_reactor_id() -> usize {
    LOCAL
        .try_with(|local| {
            if local.running.get() {
                local.shared.reactor.id()
            } else {
                0
            }
        })
        .unwrap_or(0)
}

/// The number of fds registered with the calling thread's reactor.
pub(crate) fn live_sources() -> usize {
    current_reactor().len()
}

/// The name of the calling thread's reactor backend (`epoll`, `polling`, `polling-oneshot`).
pub(crate) fn reactor_backend() -> &'static str {
    LOCAL.with(|local| local.shared.reactor.backend_name())
}

/// Whether the calling thread is inside `block_on`.
pub(crate) fn is_running() -> bool {
    LOCAL.try_with(|local| local.running.get()).unwrap_or(false)
}

/// The registry of this thread's loop, as the task wrapper sees it (`task::Registry`).
pub(crate) struct LoopRegistry;

impl crate::task::Registry for LoopRegistry {
    fn dropped() {
        task_dropped();
    }

    fn named(origin: Origin) {
        name_running_task(origin);
    }
}

/// Removes the running task's record: its future has been dropped (see `task::Tracked`).
fn task_dropped() {
    // No loop on this thread (or it is being dropped): no record to remove, and no reason to
    // create a loop here. A `const` thread-local, cheaper than `LOCAL.try_with`.
    if CURRENT.with(Cell::get).is_null() {
        return;
    }
    let record = LOCAL
        .try_with(|local| {
            let key = local.current.get();
            if key == NO_TASK {
                return None;
            }
            local.tasks.borrow_mut().remove(key)
        })
        .ok()
        .flatten();
    // Outside the borrow: dropping the record's waker may release a task.
    drop(record);
}

/// Gives the running task (spawned from another thread) its name and location.
fn name_running_task(origin: Origin) {
    if CURRENT.with(Cell::get).is_null() {
        return;
    }
    let _ = LOCAL.try_with(|local| {
        let key = local.current.get();
        local.tasks.borrow_mut().set_origin(key, origin);
    });
}

/// Drops a `Send` task of another loop (one whose thread has exited) on this thread, with no
/// task of this thread's loop marked as running meanwhile, so that the dropped task's wrapper
/// leaves this loop's registry alone.
pub(crate) fn drop_foreign(runnable: Runnable) {
    if CURRENT.with(Cell::get).is_null() {
        drop(runnable);
        return;
    }
    let saved = LOCAL.with(|local| local.current.replace(NO_TASK));
    drop(runnable);
    LOCAL.with(|local| local.current.set(saved));
}

/// The counters of the calling thread's loop.
pub(crate) fn stats() -> Stats {
    LOCAL.with(|local| {
        let reactor = &local.shared.reactor;
        let alive = local.tasks.borrow().len();
        local
            .counters
            .stats(alive, reactor.timers_len(), reactor.len())
    })
}

/// The rows of `dump()` for the calling thread's loop.
pub(crate) fn snapshot() -> Vec<TaskInfo> {
    LOCAL.with(|local| {
        let key = |runnable: &Runnable| runnable.metadata().key();
        let scheduled: Vec<usize> = local
            .queue
            .borrow()
            .iter()
            .chain(local.deferred.borrow().iter())
            .map(key)
            .collect();
        let now = (local.epoch.elapsed().as_nanos() as u64).max(1);
        local
            .tasks
            .borrow()
            .snapshot(now, local.current.get(), &scheduled)
    })
}

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
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::ptr;
use std::sync::atomic::{fence, AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::reactor::{Buffers, Reactor};
use async_task::{ScheduleInfo, WithInfo};
use concurrent_queue::ConcurrentQueue;

/// How many task polls the loop performs before it checks I/O and timers again (tokio uses the
/// same number).
pub const BUDGET: usize = 61;

/// How many events one wait can return; a large buffer spreads the cost of a wait over many
/// ready sockets.
const EVENTS_CAPACITY: usize = 1024;

/// A task ready to run; its metadata is the loop it belongs to.
type Runnable = async_task::Runnable<Arc<Shared>>;

const AWAKE: u8 = 0;
const SLEEPING: u8 = 1;
const NOTIFIED: u8 = 2;

/// The part of a loop that other threads may touch: the remote queue and the sleep state.
pub(crate) struct Shared {
    remote: ConcurrentQueue<Runnable>,
    state: AtomicU8,
    pub(crate) reactor: Arc<Reactor>,
}

impl Shared {
    /// Queues a runnable woken on a thread other than the loop's.
    fn push_remote(&self, runnable: Runnable) {
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
    fn notify(&self) {
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

/// The schedule function of every task: from whatever thread woke it, queues the runnable on
/// its loop (found in the task's metadata).
///
/// A plain `fn`, so `async_task` needs no temporary reference around the call.
fn schedule(runnable: Runnable, info: ScheduleInfo) {
    if ptr::eq(CURRENT.with(Cell::get), Arc::as_ptr(runnable.metadata())) {
        // On the loop's own thread: a plain local queue. `CURRENT` points to this loop only
        // while its `Local` is alive and not being dropped (`Local::drop` clears it first), so
        // `LOCAL.with` cannot fail here. A task woken while it runs (it woke itself, as
        // `yield_now` does) waits behind the next I/O check.
        LOCAL.with(|local| {
            if info.woken_while_running {
                local.deferred.borrow_mut().push_back(runnable);
            } else {
                local.queue.borrow_mut().push_back(runnable);
            }
        });
    } else {
        // The reference keeps `Shared` alive through the notification, even if the loop runs
        // and frees the task as soon as it is pushed.
        let shared = runnable.metadata().clone();
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
    /// Whether the `block_on` future (not a task) is being polled, for `yield_now`.
    polling_main: Cell<bool>,
    buffers: RefCell<Buffers>,
    running: Cell<bool>,
}

thread_local! {
    static LOCAL: Local = Local::new();
    /// The `Shared` of this thread's loop, for a cheap "am I on the loop thread?" test.
    static CURRENT: Cell<*const Shared> = const { Cell::new(ptr::null()) };
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
            polling_main: Cell::new(false),
            buffers,
            running: Cell::new(false),
        }
    }

    fn pop(&self) -> Option<Runnable> {
        let next = self.queue.borrow_mut().pop_front();
        next.or_else(|| self.shared.remote.pop().ok())
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
            shared.reactor.poll(&mut buffers, !woken);
            shared.state.store(AWAKE, Ordering::SeqCst);
        } else {
            shared.reactor.poll(&mut buffers, false);
        }
        buffers.wake_all();
        drop(buffers);
        // Remote wakes join the back of the local queue here, so a busy local queue cannot
        // starve them.
        for _ in 0..shared.remote.len() {
            match shared.remote.pop() {
                Ok(runnable) => self.queue.borrow_mut().push_back(runnable),
                Err(_) => break,
            }
        }
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

    fn spawn_local<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let (runnable, task) = async_task::Builder::new()
            .metadata(self.shared.clone())
            .spawn_local(move |_| catch_panics(future), WithInfo(schedule));
        self.queue.borrow_mut().push_back(runnable);
        Task(task)
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
    }
}

/// Runs the loop on the calling thread until `future` completes, and returns its output.
///
/// Every thread has its own loop, created on first use. Tasks started with [`spawn`] that are
/// still pending when `block_on` returns stay on this thread's loop and continue the next time
/// `block_on` runs on the same thread. They do not run in between, and they are dropped when
/// the thread exits: those queued or parked on this loop's timers and fds at once, one whose
/// waker is held elsewhere (say, by a channel whose other end lives on another thread) only if
/// that waker is dropped or woken before the thread exits; after that it is leaked.
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
                    local.polling_main.set(true);
                    let poll = future.as_mut().poll(&mut cx);
                    local.polling_main.set(false);
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
                        runnable.run();
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
/// it. From another thread, use [`Handle::spawn`].
///
/// # Example
/// ```
/// untangle::block_on(async {
///     let a = untangle::spawn(async { 1 });
///     let b = untangle::spawn(async { 2 });
///     assert_eq!(a.await + b.await, 3);
/// });
/// ```
pub fn spawn<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    LOCAL.with(|local| {
        if !local.running.get() {
            panic!(
                "untangle::spawn called outside a running untangle loop: call it from code \
                 running inside untangle::block_on, or use untangle::Handle::spawn from another \
                 thread"
            );
        }
        local.spawn_local(future)
    })
}

/// Lets every other ready task run, and lets the loop check I/O and timers, before this task
/// continues.
///
/// Outside an untangle loop it simply wakes itself and returns `Pending` once.
///
/// # Example
/// ```
/// untangle::block_on(async {
///     for _ in 0..3 {
///         untangle::yield_now().await;
///     }
/// });
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// Future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // In a task, waking itself while it runs is enough: the schedule function queues it
        // behind the next I/O check. The `block_on` future is no task, so its waker is kept
        // and woken after the next I/O check instead. (`CURRENT` is null on a thread without a
        // loop, so this never creates one.)
        let main = !CURRENT.with(Cell::get).is_null()
            && LOCAL
                .try_with(|local| {
                    let main = local.running.get() && local.polling_main.get();
                    if main {
                        local.yielded.borrow_mut().push(cx.waker().clone());
                    }
                    main
                })
                .unwrap_or(false);
        if !main {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// A handle to a thread's loop, usable from any thread to spawn `Send` tasks onto it.
///
/// # Example
/// ```
/// untangle::block_on(async {
///     let handle = untangle::Handle::current();
///     let task = std::thread::spawn(move || handle.spawn(async { 5 }))
///         .join()
///         .unwrap();
///     assert_eq!(task.await, 5);
/// });
/// ```
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// Returns a handle to the calling thread's loop (creating the loop if this thread has none).
    ///
    /// Tasks spawned through the handle run whenever that thread is inside [`block_on`].
    pub fn current() -> Handle {
        LOCAL.with(|local| Handle {
            shared: local.shared.clone(),
        })
    }

    /// Starts `future` on the handle's loop, from any thread.
    ///
    /// The returned [`Task`] can be awaited from anywhere (it is `Send` when `T` is). If the
    /// loop's thread has exited, the task never runs.
    pub fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (runnable, task) = async_task::Builder::new()
            .metadata(self.shared.clone())
            .spawn(move |_| catch_panics(future), WithInfo(schedule));
        runnable.schedule();
        Task(task)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

/// The panic payload of a task, logged if nobody re-raises it.
struct Panicked(Option<Box<dyn std::any::Any + Send>>);

impl Panicked {
    fn resume(mut self) -> ! {
        let payload = self.0.take().expect("payload present until resumed");
        std::panic::resume_unwind(payload)
    }
}

impl Drop for Panicked {
    fn drop(&mut self) {
        if let Some(payload) = &self.0 {
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(non-string panic payload)");
            log::error!("untangle: a task nobody awaits panicked: {message}");
        }
    }
}

/// Wraps a task's future so a panic ends the task, not the loop.
///
/// A hand-written future rather than an `async` block around `catch_unwind()`: an `async`
/// block keeps the captured future and the future it awaits in separate fields, which would
/// store every task's future twice.
fn catch_panics<F: Future>(future: F) -> CatchPanics<F> {
    CatchPanics { future }
}

pin_project_lite::pin_project! {
    /// Future of [`catch_panics`].
    struct CatchPanics<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for CatchPanics<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        // `AssertUnwindSafe` is sound here because a panicked task is never polled again.
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(Panicked(Some(payload)))),
        }
    }
}

/// A spawned task: await it for its output.
///
/// Dropping a `Task` cancels it: its future is dropped by its loop at the loop's next turn (it
/// will not be polled again), releasing its sockets and timers; [`cancel`](Task::cancel) waits
/// until that has happened. Use
/// [`detach`](Task::detach) to let it run to completion in the background.
///
/// If the task panics, the panic is caught so the loop goes on; awaiting the `Task` re-raises
/// it, and a panic of a task nobody awaits is logged with `log::error!`.
#[must_use = "dropping a Task cancels it; call .detach() to let it run"]
pub struct Task<T>(async_task::Task<Result<T, Panicked>, Arc<Shared>>);

impl<T> Task<T> {
    /// Lets the task run to completion without a handle; its output is dropped.
    pub fn detach(self) {
        self.0.detach();
    }

    /// Cancels the task and waits for it to stop.
    ///
    /// Returns its output if it had already completed, `None` if it was cancelled first. If the
    /// task had panicked, the panic is re-raised here.
    pub async fn cancel(self) -> Option<T> {
        match self.0.cancel().await? {
            Ok(value) => Some(value),
            Err(panicked) => panicked.resume(),
        }
    }

    /// Whether the task has finished: completed, panicked or been cancelled.
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Ready(Ok(value)) => Poll::Ready(value),
            Poll::Ready(Err(panicked)) => panicked.resume(),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("finished", &self.is_finished())
            .finish()
    }
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

//! Thread-per-core: [`run_on_threads`] and [`Threads`] start `n` threads, each running its own
//! loop over a future built on that thread.
//!
//! Each thread is an ordinary untangle loop: tasks never move between threads, futures need not
//! be `Send`, and the threads share nothing unless the code shares it. To spread a server's
//! connections over the threads, give each its own `SO_REUSEPORT` listener
//! ([`TcpListener::bind_reuse_port`](crate::net::TcpListener::bind_reuse_port)) and let the
//! kernel balance new connections between them; [`Server::threads`](crate::http::Server::threads)
//! does exactly that.
//!
//! See [`Threads`] for what happens on a panic and how pinning works.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use futures_lite::FutureExt;
use slab::Slab;

/// Runs `f(index)` on `n` threads (`index` in `0..n`), each in its own loop, and returns the
/// outputs in index order once all have finished.
///
/// The closure runs on the new thread and builds the future there, so the future need not be
/// `Send`; only the closure and the outputs cross threads. Threads are named `untangle-INDEX`.
/// A panic on any thread stops the others and is re-raised here (see [`Threads`]). Shorthand for `Threads::new(n).run(f)`.
///
/// # Panics
/// Panics if `n` is 0 or a thread cannot be started, and re-raises a panic of any thread.
///
/// # Example
/// ```
/// use std::rc::Rc;
///
/// let squares = untangle::run_on_threads(4, |index| async move {
///     // Built on its own thread: an `Rc` is fine.
///     let local = Rc::new(index);
///     untangle::spawn(async move { *local * *local }).await
/// });
/// assert_eq!(squares, [0, 1, 4, 9]);
/// ```
pub fn run_on_threads<F, Fut, T>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    Threads::new(n).run(f)
}

/// Settings for a group of loop threads: how many, and whether to pin them to CPUs.
///
/// # When a thread panics
/// When the future (or the closure building it) panics on one thread, the others are stopped:
/// each drops its future at its next turn of the loop (at an `.await`; code blocking the thread
/// is not interrupted). Once every thread has ended, the first panic, in time, is re-raised with
/// its original payload. Stopping rather than waiting matters for servers, which would otherwise
/// never end.
///
/// # CPU pinning
/// [`Threads::pin_to_cpus`] pins thread `i` to the `i`-th CPU (modulo their count) of the CPUs
/// the calling thread may run on (`sched_getaffinity`), so `taskset -c 0-7 server` pins its
/// threads to CPUs 0–7. It uses rustix's safe `sched_setaffinity` wrapper (rustix is already a
/// dependency, through `polling`): no `unsafe` here and no extra crate such as `core_affinity`.
/// Linux only, like the rest of untangle.
///
/// # Example
/// ```
/// let cpus = untangle::Threads::new(2)
///     .pin_to_cpus(true)
///     .run(|_index| async { rustix::thread::sched_getcpu() });
/// assert_eq!(cpus.len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Threads {
    count: usize,
    pin: bool,
    stack_size: Option<usize>,
}

impl Threads {
    /// `n` threads, not pinned.
    ///
    /// # Panics
    /// Panics if `n` is 0.
    pub fn new(n: usize) -> Threads {
        assert!(n > 0, "untangle::Threads needs at least one thread");
        Threads {
            count: n,
            pin: false,
            stack_size: None,
        }
    }

    /// The number of threads.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Pins thread `i` to one CPU: the `i`-th (modulo their count) of the CPUs the calling
    /// thread may run on. A failure to pin is logged and the thread runs unpinned. Default: off.
    pub fn pin_to_cpus(mut self, pin: bool) -> Threads {
        self.pin = pin;
        self
    }

    /// The stack size of each thread, in bytes (default: the standard library's).
    pub fn stack_size(mut self, bytes: usize) -> Threads {
        self.stack_size = Some(bytes);
        self
    }

    /// Runs `f(index)` on each thread and blocks until all have finished; returns the outputs
    /// in index order. See [`run_on_threads`].
    ///
    /// # Panics
    /// Panics if a thread cannot be started, and re-raises a panic of any thread.
    pub fn run<F, Fut, T>(self, f: F) -> Vec<T>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        self.spawn(f).join()
    }

    /// Starts the threads and returns at once. The [`ThreadGroup`] is a future of the outputs
    /// (to await from a loop) and can also be [`join`](ThreadGroup::join)ed from blocking code.
    ///
    /// # Panics
    /// Panics if a thread cannot be started (the ones already started are stopped first).
    ///
    /// # Example
    /// ```
    /// untangle::block_on(async {
    ///     let group = untangle::Threads::new(3).spawn(|index| async move { index * 10 });
    ///     assert_eq!(group.await, [0, 10, 20]);
    /// });
    /// ```
    pub fn spawn<F, Fut, T>(self, f: F) -> ThreadGroup<T>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let cpus = if self.pin { allowed_cpus() } else { Vec::new() };
        let shared = Arc::new(GroupState {
            stop: Arc::new(Flag::default()),
            done: Arc::new(Flag::default()),
            running: AtomicUsize::new(self.count),
            first_panic: Mutex::new(None),
        });
        let f = Arc::new(f);
        let mut handles = Vec::with_capacity(self.count);
        for index in 0..self.count {
            let cpu = (!cpus.is_empty()).then(|| cpus[index % cpus.len()]);
            let f = f.clone();
            let state = shared.clone();
            let mut builder = std::thread::Builder::new().name(format!("untangle-{index}"));
            if let Some(bytes) = self.stack_size {
                builder = builder.stack_size(bytes);
            }
            match builder.spawn(move || worker(index, cpu, &*f, &state)) {
                Ok(handle) => handles.push(handle),
                Err(err) => {
                    // Stop the started ones and wait for them to end before failing.
                    shared.stop.set();
                    for handle in handles {
                        let _ = handle.join();
                    }
                    panic!("untangle: failed to start thread untangle-{index}: {err}");
                }
            }
        }
        ThreadGroup {
            handles,
            state: shared.clone(),
            done: shared.done.wait(),
            joining: None,
        }
    }
}

/// The body of one thread: pin, build the future, run it until it completes or the group stops.
fn worker<F, Fut, T>(index: usize, cpu: Option<usize>, f: &F, state: &GroupState) -> Outcome<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T>,
{
    if let Some(cpu) = cpu {
        pin_current_thread(cpu);
    }
    let stop = state.stop.clone();
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let future = f(index);
        crate::block_on(async { Some(future.await) }.or(async {
            stop.wait().await;
            None
        }))
    }));
    if result.is_err() {
        let mut first = state.first_panic.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(index);
        drop(first);
        state.stop.set();
    }
    if state.running.fetch_sub(1, Ordering::AcqRel) == 1 {
        state.done.set();
    }
    result
}

/// What a thread returns: its output, `None` when stopped, or a panic payload.
type Outcome<T> = Result<Option<T>, Box<dyn Any + Send>>;

/// The joins of a group's threads, running on the blocking pool.
type Joining<T> = Pin<Box<dyn Future<Output = Vec<Outcome<T>>> + Send>>;

/// What the threads of a group and its [`ThreadGroup`] share.
struct GroupState {
    /// Set when a thread panics (or the group fails to start): the others drop their futures.
    stop: Arc<Flag>,
    /// Set by the last thread to finish.
    done: Arc<Flag>,
    running: AtomicUsize,
    /// The index of the thread that panicked first.
    first_panic: Mutex<Option<usize>>,
}

/// Running loop threads started by [`Threads::spawn`]: await it (from a loop) or
/// [`join`](ThreadGroup::join) it (from blocking code) for the outputs, in index order.
///
/// Dropping it detaches the threads: they run on.
#[must_use = "dropping a ThreadGroup detaches its threads"]
pub struct ThreadGroup<T> {
    handles: Vec<JoinHandle<Outcome<T>>>,
    state: Arc<GroupState>,
    done: FlagWait,
    /// The joins of threads still exiting, on the blocking pool (see `poll`).
    joining: Option<Joining<T>>,
}

impl<T> ThreadGroup<T> {
    /// Blocks the calling thread until every thread has finished; returns the outputs in index
    /// order, or re-raises the first panic.
    ///
    /// Do not call this from inside a loop (it would block it); `.await` the group instead.
    pub fn join(mut self) -> Vec<T> {
        let outcomes = std::mem::take(&mut self.handles)
            .into_iter()
            .map(join_thread)
            .collect();
        self.collect(outcomes)
    }

    /// Whether every thread has finished.
    pub fn is_finished(&self) -> bool {
        self.state.done.is_set()
    }

    /// Outputs in order, or the first panic re-raised.
    fn collect(&self, outcomes: Vec<Outcome<T>>) -> Vec<T> {
        let first = *self
            .state
            .first_panic
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut outputs = Vec::with_capacity(outcomes.len());
        let mut panics: Vec<(usize, Box<dyn Any + Send>)> = Vec::new();
        for (index, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(Some(out)) => outputs.push(out),
                Ok(None) => {}
                Err(payload) => panics.push((index, payload)),
            }
        }
        if !panics.is_empty() {
            let at = panics
                .iter()
                .position(|(i, _)| Some(*i) == first)
                .unwrap_or(0);
            let (index, payload) = panics.swap_remove(at);
            log::error!("untangle: thread untangle-{index} panicked; re-raising");
            panic::resume_unwind(payload);
        }
        outputs
    }
}

impl<T: Send + 'static> Future for ThreadGroup<T> {
    type Output = Vec<T>;

    /// Completes once every thread has signalled its end and exited. A thread signals its end
    /// before its exit drops the tasks left on its loop, whose destructors may take a while or
    /// even wait for the awaiting loop (a channel it reads): the threads are joined on the
    /// blocking pool, so the awaiting loop keeps running meanwhile.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<T>> {
        let this = self.get_mut();
        if this.joining.is_none() {
            if Pin::new(&mut this.done).poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Not `JoinHandle::is_finished` for a fast path: it turns true when the thread's
            // closure returns, before its thread-locals (the loop and its tasks) are dropped.
            let handles = std::mem::take(&mut this.handles);
            this.joining = Some(Box::pin(crate::unblock(move || {
                handles.into_iter().map(join_thread).collect()
            })));
        }
        let joining = this.joining.as_mut().expect("set above");
        let outcomes = std::task::ready!(joining.as_mut().poll(cx));
        this.joining = None;
        Poll::Ready(this.collect(outcomes))
    }
}

/// Joins one thread of the group; a panic that escaped `worker` (none should) is an outcome too.
fn join_thread<T>(handle: JoinHandle<Outcome<T>>) -> Outcome<T> {
    handle.join().unwrap_or_else(Err)
}

impl<T> fmt::Debug for ThreadGroup<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadGroup")
            .field("threads", &self.handles.len())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// The CPUs the calling thread may run on, in ascending order.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect(),
        Err(err) => {
            log::warn!("untangle: sched_getaffinity failed ({err}); threads are not pinned");
            Vec::new()
        }
    }
}

/// Pins the calling thread to `cpu` (rustix's safe `sched_setaffinity`).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn pin_current_thread(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(err) = rustix::thread::sched_setaffinity(None, &set) {
        log::warn!("untangle: could not pin thread to CPU {cpu}: {err}");
    }
}

/// No CPU affinity API here: threads are not pinned.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn allowed_cpus() -> Vec<usize> {
    log::warn!(
        "untangle: CPU pinning is supported on Linux and Android only; threads are not pinned"
    );
    Vec::new()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn pin_current_thread(_cpu: usize) {}

/// A one-way flag that any thread may set, and any loop may await: the cross-thread signal used
/// to stop thread groups and to fan a server's shutdown out to its threads.
#[derive(Default)]
pub(crate) struct Flag {
    state: Mutex<FlagState>,
}

#[derive(Default)]
struct FlagState {
    set: bool,
    waiters: Slab<Option<Waker>>,
}

impl Flag {
    /// Sets the flag and wakes every waiter (idempotent).
    pub(crate) fn set(&self) {
        let wakers: Vec<Waker> = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.set {
                return;
            }
            state.set = true;
            state
                .waiters
                .iter_mut()
                .filter_map(|(_, w)| w.take())
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).set
    }

    /// Completes once the flag is set.
    pub(crate) fn wait(self: &Arc<Self>) -> FlagWait {
        FlagWait {
            flag: self.clone(),
            key: None,
        }
    }
}

/// The future returned by [`Flag::wait`]; `'static` and `Send`.
pub(crate) struct FlagWait {
    flag: Arc<Flag>,
    key: Option<usize>,
}

impl Future for FlagWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut state = this.flag.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.set {
            return Poll::Ready(());
        }
        match this.key {
            Some(key) => match &mut state.waiters[key] {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            },
            None => this.key = Some(state.waiters.insert(Some(cx.waker().clone()))),
        }
        Poll::Pending
    }
}

impl Drop for FlagWait {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut state = self.flag.state.lock().unwrap_or_else(|e| e.into_inner());
            state.waiters.try_remove(key);
        }
    }
}

//! [`unblock`]: run blocking code on a thread pool and await its result.
//!
//! Threads start lazily, one per job waiting beyond the idle threads, up to a cap; a thread
//! idle for [`IDLE_TIMEOUT`] exits. Jobs are `async_task` runnables, so dropping the future
//! returned by `unblock` before its job started cancels the job.
//!
//! async-task aborts the process when a destructor panics while it drops a task's future (a
//! cancelled job's closure) or an output nobody awaits; tokio contains such panics. Both are
//! wrapped in the task wrapper's `Contained` here, so a panicking destructor is logged instead.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use async_task::Runnable;

use crate::task::Contained;

/// The most threads the pool runs at once; further jobs wait in a FIFO queue.
pub const MAX_THREADS: usize = 500;

/// How long an idle pool thread waits for work before it exits.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

struct Pool {
    state: Mutex<PoolState>,
    cvar: Condvar,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Runnable>,
    /// Threads waiting on the condvar.
    idle: usize,
    /// Threads alive.
    threads: usize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState::default()),
        cvar: Condvar::new(),
    })
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn schedule(&'static self, runnable: Runnable) {
        let mut state = self.lock();
        state.queue.push_back(runnable);
        if state.idle > 0 {
            self.cvar.notify_one();
        }
        if state.queue.len() > state.idle && state.threads < MAX_THREADS {
            state.threads += 1;
            let spawned = thread::Builder::new()
                .name("untangle-blocking".into())
                .spawn(move || self.work());
            if let Err(err) = spawned {
                state.threads -= 1;
                log::error!("untangle: cannot start a blocking-pool thread: {err}");
                if state.threads == 0 {
                    // No thread will ever take the job: run it here rather than hang.
                    let job = state.queue.pop_back();
                    drop(state);
                    if let Some(job) = job {
                        job.run();
                    }
                }
            }
        }
    }

    fn work(&self) {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job.run();
                state = self.lock();
                continue;
            }
            state.idle += 1;
            let (guard, result) = self
                .cvar
                .wait_timeout(state, IDLE_TIMEOUT)
                .unwrap_or_else(|e| e.into_inner());
            state = guard;
            state.idle -= 1;
            if result.timed_out() && state.queue.is_empty() {
                state.threads -= 1;
                return;
            }
        }
    }
}

/// Runs blocking code on the shared thread pool and returns a future of its result.
///
/// Use it for file I/O, DNS look-ups, CPU-heavy work or any call that would otherwise stall the
/// loop. The pool starts threads lazily, at most [`MAX_THREADS`] (500) at once, and a thread
/// idle for [`IDLE_TIMEOUT`] (10 s) exits. A panic in `f` is re-raised where the future is
/// awaited. Dropping the future before the job started cancels it (`f` is dropped unrun);
/// dropping it while the job runs lets the job finish, and its output is dropped on the pool.
/// As in tokio, a destructor that panics there (of `f`'s captures or of the output) is logged,
/// not propagated: nobody awaits it. The future needs no untangle loop: any executor may await
/// it.
///
/// # Example
/// ```
/// untangle::block_on(async {
///     let contents = untangle::unblock(|| std::fs::read_to_string("Cargo.toml")).await;
///     assert!(contents.unwrap().contains("untangle"));
/// });
/// ```
pub fn unblock<T, F>(f: F) -> impl Future<Output = T> + Send + 'static
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let job = Contained::new(f);
    let (runnable, task) = async_task::Builder::new().propagate_panic(true).spawn(
        move |_| async move { Contained::new(job.into_inner()()) },
        |r| pool().schedule(r),
    );
    runnable.schedule();
    Unblock(task)
}

/// The future `unblock` returns: its task's output, unwrapped (`Unpin`, as the task is).
struct Unblock<T>(async_task::Task<Contained<T>>);

impl<T> Future for Unblock<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0).poll(cx).map(Contained::into_inner)
    }
}

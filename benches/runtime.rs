//! Scheduler micro-benchmarks: untangle against tokio (current_thread + `LocalSet`) and smol
//! (`LocalExecutor` driven by `smol::block_on`, i.e. `async_io::block_on`), in one process.
//!
//! Run: `cargo bench --bench runtime` (all), or `cargo bench --bench runtime -- yield` (only the
//! benchmarks whose name contains `yield`). Flags starting with `--` are ignored.
//!
//! The shapes mirror tokio's `benches/rt_current_thread.rs`:
//! - `spawn_many`: spawn 10,000 trivial tasks, then await them all (ns per task);
//! - `yield_many`: 200 tasks each call `yield_now` 1,000 times (ns per yield);
//! - `ping_pong`: two tasks bounce a message over a pair of `async-channel`s (ns per round trip);
//! - `chained_spawn`: each task spawns the next, depth 1,000 (ns per spawn);
//! - `timers`: 20,000 tasks each sleep 1 ms concurrently (total time / 20,000, nothing
//!   subtracted, so the 1 ms sleep itself adds 50 ns/op).
//!
//! Three more figures follow the table (untangle only, plus peers for the memory figure):
//! - `task_memory`: heap bytes still allocated per pending task after spawning 100,000 tasks and
//!   polling each once, minus the size of the future passed to `spawn` (counted by a
//!   `#[global_allocator]` wrapper that is switched on only around that measurement);
//! - `timers_scaling`: the `timers` benchmark's ns per timer with 1,000,000 concurrent sleeps
//!   divided by the same with 20,000 (a timer structure with O(1) or O(log n) operations and
//!   good locality keeps this near 1).
//! - `ping_pong_floor`: how much of `ping_pong` any scheduler can save. The same round trips on
//!   a bare `async-task` executor (a thread-local queue and nothing else), and with no scheduler
//!   at all (both futures polled in turn with a waker that does nothing: no wakes, no queue),
//!   interleaved with untangle and tokio, as ratios to tokio.
//!
//! Each sample is `reps` calls of the runtime's `block_on` on one run of the benchmark. After
//! `WARMUP` rounds, `ROUNDS` rounds are measured, the runtimes interleaved within each round
//! (untangle, tokio, smol, untangle, tokio, smol, ...); the table shows the median ns/op.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The system allocator, counting live bytes while [`COUNTING`] is on (off, it costs one
/// relaxed load per call, the same for every runtime).
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters have no effect on the
// memory handed out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Rounds run and thrown away before measuring.
const WARMUP: usize = 3;
/// Measured rounds; the median is reported.
const ROUNDS: usize = 21;

const SPAWN_MANY: usize = 10_000;
const YIELD_TASKS: usize = 200;
const YIELDS_PER_TASK: usize = 1_000;
const PING_PONGS: usize = 10_000;
const CHAIN_DEPTH: usize = 1_000;
const TIMERS: usize = 20_000;
const TIMER_SLEEP: Duration = Duration::from_millis(1);
/// Tasks spawned by the `task_memory` measurement.
const MEMORY_TASKS: usize = 100_000;
/// Concurrent sleeps of the large `timers_scaling` run (the small one uses [`TIMERS`]).
const MANY_TIMERS: usize = 1_000_000;
/// Interleaved rounds of `timers_scaling`.
const SCALING_ROUNDS: usize = 5;

/// What the benchmarks need from a runtime.
trait Runtime {
    const NAME: &'static str;
    /// A spawned task's handle; awaiting it gives the task's output.
    type Join<T: 'static>: Future<Output = T> + 'static;

    /// Runs the runtime on this thread until `future` completes.
    fn block_on<F: Future>(&self, future: F) -> F::Output;

    /// Spawns a (non-`Send`) task on the runtime this thread is running.
    fn spawn<F>(future: F) -> Self::Join<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static;

    /// Spawns a task that runs on without a handle.
    fn spawn_detached<F: Future<Output = ()> + 'static>(future: F);

    fn yield_now() -> impl Future<Output = ()>;

    fn sleep(duration: Duration) -> impl Future<Output = ()>;
}

/// untangle: `untangle::block_on` + `untangle::spawn`.
struct Untangle;

impl Runtime for Untangle {
    const NAME: &'static str = "untangle";
    type Join<T: 'static> = untangle::Task<T>;

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        untangle::block_on(future)
    }

    fn spawn<F>(future: F) -> untangle::Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        untangle::spawn(future)
    }

    fn spawn_detached<F: Future<Output = ()> + 'static>(future: F) {
        untangle::spawn(future).detach();
    }

    fn yield_now() -> impl Future<Output = ()> {
        untangle::yield_now()
    }

    fn sleep(duration: Duration) -> impl Future<Output = ()> {
        untangle::time::sleep(duration)
    }
}

/// tokio: a current_thread runtime (time enabled) and a `LocalSet` for `spawn_local`.
struct Tokio {
    rt: tokio::runtime::Runtime,
    local: tokio::task::LocalSet,
}

impl Tokio {
    fn new() -> Tokio {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime");
        Tokio {
            rt,
            local: tokio::task::LocalSet::new(),
        }
    }
}

/// A tokio `JoinHandle` whose output is the task's value (a panic in a task panics here).
struct TokioJoin<T>(tokio::task::JoinHandle<T>);

impl<T> Future for TokioJoin<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|result| result.expect("tokio task failed"))
    }
}

impl Runtime for Tokio {
    const NAME: &'static str = "tokio";
    type Join<T: 'static> = TokioJoin<T>;

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.local.block_on(&self.rt, future)
    }

    fn spawn<F>(future: F) -> TokioJoin<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        TokioJoin(tokio::task::spawn_local(future))
    }

    fn spawn_detached<F: Future<Output = ()> + 'static>(future: F) {
        drop(tokio::task::spawn_local(future));
    }

    fn yield_now() -> impl Future<Output = ()> {
        tokio::task::yield_now()
    }

    fn sleep(duration: Duration) -> impl Future<Output = ()> {
        tokio::time::sleep(duration)
    }
}

thread_local! {
    /// smol's executor for this thread; tasks reach it through the thread-local.
    static SMOL_EX: smol::LocalExecutor<'static> = const { smol::LocalExecutor::new() };
}

/// smol: a `LocalExecutor` run by `smol::block_on` (async-io's, which drives the reactor on
/// this thread).
struct Smol;

impl Runtime for Smol {
    const NAME: &'static str = "smol";
    type Join<T: 'static> = smol::Task<T>;

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        SMOL_EX.with(|ex| smol::block_on(ex.run(future)))
    }

    fn spawn<F>(future: F) -> smol::Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        SMOL_EX.with(|ex| ex.spawn(future))
    }

    fn spawn_detached<F: Future<Output = ()> + 'static>(future: F) {
        SMOL_EX.with(|ex| ex.spawn(future).detach());
    }

    fn yield_now() -> impl Future<Output = ()> {
        smol::future::yield_now()
    }

    async fn sleep(duration: Duration) {
        smol::Timer::after(duration).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The benchmarks. Each returns a checksum so that nothing is optimized away.

async fn spawn_many<R: Runtime>() -> usize {
    let mut tasks = Vec::with_capacity(SPAWN_MANY);
    for i in 0..SPAWN_MANY {
        tasks.push(R::spawn(async move { black_box(i) + 1 }));
    }
    let mut sum = 0;
    for task in tasks {
        sum += task.await;
    }
    sum
}

async fn yield_many<R: Runtime>() -> usize {
    let tasks: Vec<_> = (0..YIELD_TASKS)
        .map(|_| {
            R::spawn(async {
                for _ in 0..YIELDS_PER_TASK {
                    R::yield_now().await;
                }
                1
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await;
    }
    done
}

/// The two sides of `ping_pong`: the pinger sends `0..PING_PONGS` and sums the echoes, the
/// ponger echoes and counts.
fn ping_pong_pair() -> (impl Future<Output = usize>, impl Future<Output = usize>) {
    let (ping_tx, ping_rx) = async_channel::bounded::<usize>(1);
    let (pong_tx, pong_rx) = async_channel::bounded::<usize>(1);
    let ping = async move {
        let mut sum = 0;
        for i in 0..PING_PONGS {
            ping_tx.send(i).await.expect("pong task alive");
            sum += pong_rx.recv().await.expect("pong task alive");
        }
        sum
    };
    let pong = async move {
        let mut count = 0;
        while let Ok(value) = ping_rx.recv().await {
            count += 1;
            if pong_tx.send(value).await.is_err() {
                break;
            }
        }
        count
    };
    (ping, pong)
}

async fn ping_pong<R: Runtime>() -> usize {
    let (ping, pong) = ping_pong_pair();
    let pong = R::spawn(pong);
    let ping = R::spawn(ping);
    let sum = ping.await;
    pong.await + sum
}

/// Spawns the next link of the chain, or signals `done` at the end.
fn chain<R: Runtime>(left: usize, done: async_channel::Sender<usize>) {
    if left == 0 {
        done.try_send(CHAIN_DEPTH).expect("room for the signal");
    } else {
        R::spawn_detached(async move { chain::<R>(left - 1, done) });
    }
}

async fn chained_spawn<R: Runtime>() -> usize {
    let (done_tx, done_rx) = async_channel::bounded(1);
    chain::<R>(CHAIN_DEPTH, done_tx);
    done_rx.recv().await.expect("chain completes")
}

async fn timers<R: Runtime>() -> usize {
    timers_n::<R>(TIMERS).await
}

async fn timers_n<R: Runtime>(n: usize) -> usize {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            R::spawn(async {
                R::sleep(TIMER_SLEEP).await;
                1
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await;
    }
    done
}

// ---------------------------------------------------------------------------------------------
// The harness.

#[derive(Clone, Copy)]
enum Kind {
    SpawnMany,
    YieldMany,
    PingPong,
    ChainedSpawn,
    Timers,
}

struct Bench {
    name: &'static str,
    kind: Kind,
    /// Operations in one run (the divisor for ns/op).
    ops: usize,
    /// Runs (each its own `block_on`) per sample, so a sample lasts a few milliseconds.
    reps: usize,
}

const BENCHES: [Bench; 5] = [
    Bench {
        name: "spawn_many",
        kind: Kind::SpawnMany,
        ops: SPAWN_MANY,
        reps: 4,
    },
    Bench {
        name: "yield_many",
        kind: Kind::YieldMany,
        ops: YIELD_TASKS * YIELDS_PER_TASK,
        reps: 1,
    },
    Bench {
        name: "ping_pong",
        kind: Kind::PingPong,
        ops: PING_PONGS,
        reps: 4,
    },
    Bench {
        name: "chained_spawn",
        kind: Kind::ChainedSpawn,
        ops: CHAIN_DEPTH,
        reps: 40,
    },
    Bench {
        name: "timers",
        kind: Kind::Timers,
        ops: TIMERS,
        reps: 1,
    },
];

/// Runs one sample of `bench` on `rt`; returns ns per operation.
fn sample<R: Runtime>(rt: &R, bench: &Bench) -> f64 {
    let expected = match bench.kind {
        Kind::SpawnMany => SPAWN_MANY * (SPAWN_MANY + 1) / 2,
        Kind::YieldMany => YIELD_TASKS,
        Kind::PingPong => PING_PONGS + PING_PONGS * (PING_PONGS - 1) / 2,
        Kind::ChainedSpawn => CHAIN_DEPTH,
        Kind::Timers => TIMERS,
    };
    let start = Instant::now();
    for _ in 0..bench.reps {
        let got = match bench.kind {
            Kind::SpawnMany => rt.block_on(spawn_many::<R>()),
            Kind::YieldMany => rt.block_on(yield_many::<R>()),
            Kind::PingPong => rt.block_on(ping_pong::<R>()),
            Kind::ChainedSpawn => rt.block_on(chained_spawn::<R>()),
            Kind::Timers => rt.block_on(timers::<R>()),
        };
        assert_eq!(got, expected, "{} on {}: wrong result", bench.name, R::NAME);
    }
    let elapsed = start.elapsed();
    elapsed.as_nanos() as f64 / (bench.reps * bench.ops) as f64
}

/// Heap bytes per pending task beyond the future's own size: spawns [`MEMORY_TASKS`] tasks
/// whose futures hold a 64-byte payload and wait forever, lets each run once, and counts the
/// bytes still allocated (the handles' `Vec` is allocated before counting starts).
fn task_memory<R: Runtime>(rt: &R) -> (usize, f64) {
    async fn waiting_task(payload: [u8; 64]) -> u8 {
        futures_lite::future::pending::<()>().await;
        payload[0]
    }
    let future_size = std::mem::size_of_val(&waiting_task([0; 64]));
    let per_task = rt.block_on(async {
        let mut tasks = Vec::with_capacity(MEMORY_TASKS);
        R::yield_now().await;
        LIVE_BYTES.store(0, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
        for i in 0..MEMORY_TASKS {
            tasks.push(R::spawn(waiting_task([i as u8; 64])));
        }
        // Let every task run once and park.
        R::yield_now().await;
        R::yield_now().await;
        COUNTING.store(false, Ordering::SeqCst);
        let live = LIVE_BYTES.load(Ordering::SeqCst);
        drop(tasks);
        R::yield_now().await;
        live as f64 / MEMORY_TASKS as f64
    });
    (future_size, per_task - future_size as f64)
}

/// CPU time of the calling thread so far, in ns (first field of `/proc/thread-self/schedstat`):
/// unlike wall time it leaves out the time the loop sleeps waiting for the deadlines.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat readable")
}

/// CPU ns per timer with `n` concurrent sleeps on untangle: `n` tasks each sleep until a
/// deadline spread over 10 ms, after a lead time long enough for every task to have started
/// sleeping before the first deadline (checked: each task, when it wakes, sees all `n` asleep).
fn timers_scaling_sample(n: usize) -> f64 {
    use std::cell::Cell;
    use std::rc::Rc;
    let lead = Duration::from_millis(20) + Duration::from_micros(3) * n as u32;
    let started = Rc::new(Cell::new(0usize));
    let cpu = thread_cpu_ns();
    let concurrent = untangle::block_on(async {
        let base = Instant::now() + lead;
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let started = started.clone();
                // A scrambled order of deadlines, so inserts are not all at one end.
                let offset = Duration::from_nanos((i as u64 * 7_919_993) % 10_000_000);
                untangle::spawn(async move {
                    started.set(started.get() + 1);
                    untangle::time::sleep_until(base + offset).await;
                    started.get() == n
                })
            })
            .collect();
        let mut all = true;
        for task in tasks {
            all &= task.await;
        }
        all
    });
    let ns = (thread_cpu_ns() - cpu) as f64 / n as f64;
    assert!(
        concurrent,
        "timers_scaling: the lead time was too short for {n} sleeps"
    );
    ns
}

thread_local! {
    /// The run queue of the bare executor of `ping_pong_floor`.
    static BARE_QUEUE: std::cell::RefCell<std::collections::VecDeque<async_task::Runnable>> =
        const { std::cell::RefCell::new(std::collections::VecDeque::new()) };
}

/// Spawns on the bare executor: an `async_task` runnable pushed on a thread-local queue, the
/// least an executor built on `async-task` can do.
fn bare_spawn<F>(future: F) -> async_task::Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let (runnable, task) = async_task::spawn_local(future, |runnable| {
        BARE_QUEUE.with(|queue| queue.borrow_mut().push_back(runnable));
    });
    runnable.schedule();
    task
}

/// A waker that does nothing (`Waker::noop` needs Rust 1.85; cloning this one counts a
/// reference, as every runtime's waker does).
fn noop_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    std::task::Waker::from(std::sync::Arc::new(Noop))
}

/// The output of a task that has completed.
fn finished<T>(task: async_task::Task<T>) -> T {
    let mut task = std::pin::pin!(task);
    match task.as_mut().poll(&mut Context::from_waker(&noop_waker())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("ping_pong_floor: a task did not complete"),
    }
}

/// `ping_pong` on the bare executor: the two tasks and a queue, nothing else.
fn ping_pong_bare() -> usize {
    let (ping, pong) = ping_pong_pair();
    let pong = bare_spawn(pong);
    let ping = bare_spawn(ping);
    while let Some(runnable) = BARE_QUEUE.with(|queue| queue.borrow_mut().pop_front()) {
        runnable.run();
    }
    finished(ping) + finished(pong)
}

/// `ping_pong` with no scheduler at all: the two futures polled in turn with a waker that does
/// nothing (no wake, no queue). Each round trip still takes two polls, one
/// per side, as it does on a runtime; what is left is the channels' own cost.
fn ping_pong_unscheduled() -> usize {
    let (ping, pong) = ping_pong_pair();
    let (mut ping, mut pong) = (std::pin::pin!(ping), std::pin::pin!(pong));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut sum, mut count) = (None, None);
    while sum.is_none() || count.is_none() {
        if sum.is_none() {
            if let Poll::Ready(value) = ping.as_mut().poll(&mut cx) {
                sum = Some(value);
            }
        }
        if count.is_none() {
            if let Poll::Ready(value) = pong.as_mut().poll(&mut cx) {
                count = Some(value);
            }
        }
    }
    sum.unwrap_or(0) + count.unwrap_or(0)
}

/// ns per round trip of `run`, over the `ping_pong` benchmark's runs per sample.
fn floor_sample(run: fn() -> usize) -> f64 {
    let bench = BENCHES
        .iter()
        .find(|b| b.name == "ping_pong")
        .expect("ping_pong is a benchmark");
    let start = Instant::now();
    for _ in 0..bench.reps {
        assert_eq!(
            run(),
            PING_PONGS + PING_PONGS * (PING_PONGS - 1) / 2,
            "ping_pong_floor: wrong result"
        );
    }
    start.elapsed().as_nanos() as f64 / (bench.reps * bench.ops) as f64
}

/// The `q` quantile (0..=1) of sorted samples, interpolated linearly.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Median and interquartile range of the samples of one runtime.
struct Summary {
    median: f64,
    p25: f64,
    p75: f64,
}

fn summarize(mut samples: Vec<f64>) -> Summary {
    samples.sort_by(f64::total_cmp);
    Summary {
        median: quantile(&samples, 0.5),
        p25: quantile(&samples, 0.25),
        p75: quantile(&samples, 0.75),
    }
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let selected: Vec<&Bench> = BENCHES
        .iter()
        .filter(|b| filters.is_empty() || filters.iter().any(|f| b.name.contains(f.as_str())))
        .collect();
    let wants =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let extra = ["task_memory", "timers_scaling", "ping_pong_floor"];
    if selected.is_empty() && !extra.iter().any(|name| wants(name)) {
        eprintln!("no benchmark matches {filters:?}");
        return;
    }

    let untangle = Untangle;
    let tokio = Tokio::new();
    let smol = Smol;

    if !selected.is_empty() {
        table(&selected, &untangle, &tokio, &smol);
    }
    extras(&wants, &untangle, &tokio, &smol);
}

/// The scheduler table: every selected benchmark on the three runtimes, interleaved.
fn table(selected: &[&Bench], untangle: &Untangle, tokio: &Tokio, smol: &Smol) {
    println!(
        "{} warm-up + {} measured rounds per benchmark, runtimes interleaved; median ns/op",
        WARMUP, ROUNDS
    );
    println!();
    println!(
        "| {:<14} | {:>14} | {:>11} | {:>10} | {:>23} |",
        "benchmark", "untangle ns/op", "tokio ns/op", "smol ns/op", "untangle / best peer"
    );
    println!(
        "|{:-<16}|{:->16}|{:->13}|{:->12}|{:->25}|",
        "", "", "", "", ""
    );
    let total = Instant::now();
    let mut spreads = Vec::new();
    for &bench in selected {
        let mut results: [Vec<f64>; 3] = Default::default();
        for round in 0..WARMUP + ROUNDS {
            let ns = [
                sample(untangle, bench),
                sample(tokio, bench),
                sample(smol, bench),
            ];
            if round >= WARMUP {
                for (samples, ns) in results.iter_mut().zip(ns) {
                    samples.push(ns);
                }
            }
        }
        let summaries = results.map(summarize);
        let [u, t, s] = [0, 1, 2].map(|i| summaries[i].median);
        let best = if t <= s { ("tokio", t) } else { ("smol", s) };
        println!(
            "| {:<14} | {:>14.1} | {:>11.1} | {:>10.1} | {:>14.2} (vs {:<5}) |",
            bench.name,
            u,
            t,
            s,
            u / best.1,
            best.0
        );
        spreads.push((bench.name, summaries));
    }
    println!();
    println!("interquartile ranges (p25..p75 ns/op), to judge the noise:");
    for (name, summaries) in &spreads {
        let [u, t, s] =
            [0, 1, 2].map(|i| format!("{:.1}..{:.1}", summaries[i].p25, summaries[i].p75));
        println!("  {name:<14} untangle {u:<15} tokio {t:<15} smol {s}");
    }
    println!();
    println!(
        "total {:.1} s; runs per sample: spawn_many 4, ping_pong 4, chained_spawn 40, others 1",
        total.elapsed().as_secs_f64()
    );
}

/// The figures after the table: memory per task and timer scaling.
fn extras(wants: &dyn Fn(&str) -> bool, untangle: &Untangle, tokio: &Tokio, smol: &Smol) {
    if wants("task_memory") {
        println!();
        println!("task_memory: heap bytes per pending task beyond the future's own size");
        let (size, u) = task_memory(untangle);
        let (_, t) = task_memory(tokio);
        let (_, s) = task_memory(smol);
        println!(
            "  future {size} bytes; untangle {u:.0} B/task, tokio {t:.0} B/task, smol {s:.0} B/task"
        );
    }
    if wants("ping_pong_floor") {
        ping_pong_floor(untangle, tokio);
    }
    if wants("timers_scaling") {
        println!();
        println!(
            "timers_scaling: untangle CPU ns per timer (spawn, sleep, wake, join) with \
             {MANY_TIMERS} vs {TIMERS} concurrent sleeps, {SCALING_ROUNDS} interleaved rounds, \
             medians"
        );
        let (mut small, mut large) = (Vec::new(), Vec::new());
        timers_scaling_sample(TIMERS);
        for _ in 0..SCALING_ROUNDS {
            small.push(timers_scaling_sample(TIMERS));
            large.push(timers_scaling_sample(MANY_TIMERS));
        }
        let (small, large) = (summarize(small).median, summarize(large).median);
        println!(
            "  {TIMERS}: {small:.1} ns/timer; {MANY_TIMERS}: {large:.1} ns/timer; ratio {:.2}",
            large / small
        );
    }
}

/// How much of `ping_pong` a scheduler can save: the same round trips on a bare async-task
/// executor and with no scheduler at all, interleaved with untangle and tokio.
fn ping_pong_floor(untangle: &Untangle, tokio: &Tokio) {
    let bench = BENCHES
        .iter()
        .find(|b| b.name == "ping_pong")
        .expect("ping_pong is a benchmark");
    let mut results: [Vec<f64>; 4] = Default::default();
    for round in 0..WARMUP + ROUNDS {
        let ns = [
            sample(untangle, bench),
            sample(tokio, bench),
            floor_sample(ping_pong_bare),
            floor_sample(ping_pong_unscheduled),
        ];
        if round >= WARMUP {
            for (samples, ns) in results.iter_mut().zip(ns) {
                samples.push(ns);
            }
        }
    }
    let [u, t, bare, none] = results.map(|samples| summarize(samples).median);
    println!();
    println!(
        "ping_pong_floor: ns per round trip, medians of {ROUNDS} interleaved rounds (ratio to tokio)"
    );
    println!(
        "  untangle {u:.1} ({:.2}); tokio {t:.1}; bare async-task queue {bare:.1} ({:.2}); \
         no scheduler (a waker that does nothing, polled in turn) {none:.1} ({:.2})",
        u / t,
        bare / t,
        none / t
    );
}

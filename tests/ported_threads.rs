//! tokio's `rt_threaded` and `rt_handle` tests, ported to `run_on_threads`, `ThreadGroup` and
//! `Handle`: spawning across threads, handles of exited loops, cross-thread wake stress, and
//! shutdown and panics of thread groups.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;

use common::{panic_message, watchdog, HANG_GUARD};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use untangle::{Handle, Threads};

/// A loop thread that serves `Handle::spawn`s until `stop` receives; returns its handle.
fn loop_thread() -> (Handle, async_channel::Sender<()>, thread::JoinHandle<()>) {
    let (handle_tx, handle_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let thread = thread::spawn(move || {
        untangle::block_on(async move {
            handle_tx.send(Handle::current()).unwrap();
            let _ = stop_rx.recv().await;
        })
    });
    (handle_rx.recv().unwrap(), stop_tx, thread)
}

/// rt_threaded `many_oneshot_futures` / rt_handle: many threads spawn onto one loop through its
/// `Handle` at once; every task runs there, on the loop's thread, exactly once.
#[test]
fn handle_spawn_from_many_threads_at_once() {
    let _guard = watchdog("handle_spawn_from_many_threads_at_once");
    const THREADS: usize = 8;
    const PER_THREAD: usize = 250;
    let (handle, stop, loop_thread) = loop_thread();
    let loop_id = loop_thread.thread().id();
    let ran = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS));
    let spawners: Vec<_> = (0..THREADS)
        .map(|t| {
            let (handle, ran, start) = (handle.clone(), ran.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let tasks: Vec<_> = (0..PER_THREAD)
                    .map(|i| {
                        let ran = ran.clone();
                        handle.spawn(async move {
                            ran.fetch_add(1, Ordering::Relaxed);
                            (t * PER_THREAD + i, thread::current().id())
                        })
                    })
                    .collect();
                futures::executor::block_on(futures::future::join_all(tasks))
            })
        })
        .collect();
    let mut seen = Vec::new();
    for spawner in spawners {
        for (n, on) in spawner.join().unwrap() {
            assert_eq!(on, loop_id, "task {n} ran off its loop");
            seen.push(n);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..THREADS * PER_THREAD).collect::<Vec<_>>());
    assert_eq!(ran.load(Ordering::Relaxed), THREADS * PER_THREAD);
    stop.send_blocking(()).unwrap();
    loop_thread.join().unwrap();
}

/// rt_handle: a `Handle` whose loop's thread has exited: the spawned future never runs, it is
/// dropped on the spawning thread (its destructor runs), and awaiting the task panics with a
/// message that says the loop is gone, instead of hanging.
#[test]
fn handle_of_an_exited_loop() {
    let _guard = watchdog("handle_of_an_exited_loop");
    let handle = thread::spawn(|| untangle::block_on(async { Handle::current() }))
        .join()
        .unwrap();
    struct Dropped(mpsc::Sender<thread::ThreadId>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            let _ = self.0.send(thread::current().id());
        }
    }
    let (tx, rx) = mpsc::channel();
    let guard = Dropped(tx);
    let task = handle.spawn(async move {
        let _guard = guard;
        panic!("must never run");
    });
    assert_eq!(rx.recv_timeout(HANG_GUARD).unwrap(), thread::current().id());
    let payload = std::panic::AssertUnwindSafe(task)
        .catch_unwind()
        .now_or_never()
        .expect("completes at once")
        .expect_err("the loop is gone");
    let message = panic_message(&*payload);
    assert!(message.contains("loop"), "{message}");
    assert!(!message.contains("must never run"), "{message}");
}

/// rt_threaded `many_multishot_futures` / wake stress: tasks on several loops ping-pong through
/// channels, every wake crossing threads; a bounded number of rounds all complete (a lost
/// wake-up hangs and trips the watchdog).
#[test]
fn many_cross_thread_wakes_are_never_lost() {
    let _guard = watchdog("many_cross_thread_wakes_are_never_lost");
    const LOOPS: usize = 4;
    const ROUNDS: usize = 2_000;
    // A ring: loop i receives from i and sends to i + 1.
    let channels: Vec<_> = (0..LOOPS)
        .map(|_| async_channel::bounded::<usize>(1))
        .collect();
    let senders: Vec<_> = channels.iter().map(|(tx, _)| tx.clone()).collect();
    let receivers: Vec<_> = channels.iter().map(|(_, rx)| rx.clone()).collect();
    drop(channels);
    let senders = Arc::new(senders);
    let receivers = Arc::new(receivers);
    let totals = untangle::run_on_threads(LOOPS, move |i| {
        let rx = receivers[i].clone();
        let tx = senders[(i + 1) % LOOPS].clone();
        async move {
            if i == 0 {
                tx.send(0).await.unwrap();
            }
            let mut last = 0;
            for _ in 0..ROUNDS {
                let n = rx.recv().await.unwrap();
                last = n;
                // One token circulates, so the capacity-1 channel never makes this wait (the
                // last hop stays in the channel).
                tx.send(n + 1).await.unwrap();
            }
            last
        }
    });
    // Loop i receives what loop i - 1 sent: i - 1, i - 1 + LOOPS, ... (mod LOOPS).
    for (i, last) in totals.into_iter().enumerate() {
        assert_eq!(last, (i + LOOPS - 1) % LOOPS + (ROUNDS - 1) * LOOPS);
    }
}

/// rt_threaded `shutdown_wakeup_time` / `drop_threadpool_drops_futures`: a thread group whose
/// futures return while their spawned tasks are still pending; each task is dropped on its own
/// loop's thread when that thread exits, and the group ends.
#[test]
fn shutting_down_a_group_drops_pending_tasks_on_their_own_threads() {
    let _guard = watchdog("shutting_down_a_group_drops_pending_tasks_on_their_own_threads");
    const LOOPS: usize = 3;
    struct Dropped(usize, mpsc::Sender<(usize, Option<String>)>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            let name = thread::current().name().map(String::from);
            let _ = self.1.send((self.0, name));
        }
    }
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    Threads::new(LOOPS)
        .spawn(move |i| {
            let guard = Dropped(i, tx.lock().unwrap().clone());
            async move {
                // Never completes: only dropped at thread exit.
                untangle::spawn(async move {
                    let _guard = guard;
                    futures::future::pending::<()>().await;
                })
                .detach();
                i
            }
        })
        .join();
    let mut dropped: Vec<_> = (0..LOOPS)
        .map(|_| rx.recv_timeout(HANG_GUARD).unwrap())
        .collect();
    dropped.sort();
    for (i, (index, name)) in dropped.into_iter().enumerate() {
        assert_eq!(index, i);
        assert_eq!(name.as_deref(), Some(format!("untangle-{i}").as_str()));
    }
}

/// rt_threaded `panic_in_worker` style: one thread panics; the others, parked forever, are
/// stopped rather than hung, their futures dropped, and `join` re-raises the original payload.
#[test]
fn a_panic_in_one_loop_is_reported_and_the_others_stop() {
    let _guard = watchdog("a_panic_in_one_loop_is_reported_and_the_others_stop");
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Count(Arc<AtomicUsize>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let counter = dropped.clone();
    let group = Threads::new(4).spawn(move |i| {
        let count = Count(counter.clone());
        async move {
            let _count = count;
            if i == 2 {
                untangle::time::sleep(std::time::Duration::from_millis(5)).await;
                panic!("loop two failed");
            }
            futures::future::pending::<()>().await
        }
    });
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| group.join()))
        .expect_err("the panic is re-raised");
    assert_eq!(panic_message(&*payload), "loop two failed");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        4,
        "every thread's future was dropped"
    );
}

/// The same, awaited from a loop: the group's future re-raises the panic where it is awaited.
#[test]
fn a_panic_in_one_loop_reaches_the_awaiting_loop() {
    let _guard = watchdog("a_panic_in_one_loop_reaches_the_awaiting_loop");
    let payload = untangle::block_on(async {
        let group = Threads::new(3).spawn(|i| async move {
            if i == 0 {
                std::panic::panic_any(7_u32);
            }
            futures::future::pending::<()>().await
        });
        std::panic::AssertUnwindSafe(group).catch_unwind().await
    })
    .expect_err("the panic is re-raised");
    assert_eq!(payload.downcast_ref::<u32>(), Some(&7));
}

/// A panic inside a task spawned on a group's loop reaches the thread's future that awaits it,
/// and through it the caller of `run_on_threads`.
#[test]
fn a_panic_in_a_spawned_task_reaches_run_on_threads() {
    let _guard = watchdog("a_panic_in_a_spawned_task_reaches_run_on_threads");
    let payload = std::panic::catch_unwind(|| {
        untangle::run_on_threads(2, |i| async move {
            untangle::spawn(async move {
                if i == 1 {
                    panic!("task on loop one");
                }
                i
            })
            .await
        })
    })
    .expect_err("re-raised");
    assert_eq!(panic_message(&*payload), "task on loop one");
}

/// Pinning is best effort: with an affinity mask that names no usable CPU (the calling thread
/// restricted to one CPU, then more threads than CPUs), every thread still runs; and a thread
/// whose pinning fails runs unpinned rather than failing.
#[test]
fn pinning_with_fewer_cpus_than_threads_still_runs_every_thread() {
    let _guard = watchdog("pinning_with_fewer_cpus_than_threads_still_runs_every_thread");
    let outputs = thread::spawn(|| {
        let allowed = rustix::thread::sched_getaffinity(None).unwrap();
        let first = (0..rustix::thread::CpuSet::MAX_CPU)
            .find(|&c| allowed.is_set(c))
            .unwrap();
        let mut one = rustix::thread::CpuSet::new();
        one.set(first);
        rustix::thread::sched_setaffinity(None, &one).unwrap();
        Threads::new(3)
            .pin_to_cpus(true)
            .run(move |i| async move { (i, rustix::thread::sched_getcpu()) })
    })
    .join()
    .unwrap();
    assert_eq!(outputs.len(), 3);
    let cpus: Vec<_> = outputs.iter().map(|(_, cpu)| *cpu).collect();
    assert!(cpus.windows(2).all(|w| w[0] == w[1]), "{cpus:?}");
}

/// rt_handle: a task spawned through the `Handle` of a loop that exists but is not running
/// (its thread is outside `block_on`) waits, and runs when that thread next enters `block_on`.
#[test]
fn handle_spawn_onto_an_idle_loop_runs_at_its_next_block_on() {
    let _guard = watchdog("handle_spawn_onto_an_idle_loop_runs_at_its_next_block_on");
    let (handle_tx, handle_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let ran = Arc::new(AtomicUsize::new(0));
    let ran_there = ran.clone();
    let thread = thread::spawn(move || {
        handle_tx.send(Handle::current()).unwrap();
        go_rx.recv().unwrap();
        // Whatever was spawned meanwhile runs now, before this one-yield future ends it.
        untangle::block_on(async {
            for _ in 0..4 {
                untangle::yield_now().await;
            }
        });
        ran_there.load(Ordering::SeqCst)
    });
    let handle = handle_rx.recv().unwrap();
    let counter = ran.clone();
    let task = handle.spawn(async move { counter.fetch_add(1, Ordering::SeqCst) });
    assert_eq!(ran.load(Ordering::SeqCst), 0, "ran before its loop did");
    go_tx.send(()).unwrap();
    assert_eq!(thread.join().unwrap(), 1);
    assert_eq!(futures::executor::block_on(task), 0);
}

/// rt_handle: `Handle::spawn` racing with the exit of the loop's thread: each task either runs
/// or is dropped, and awaiting it completes or panics with the "loop's thread exited" message;
/// none hangs and none runs twice. Bounded in iterations.
#[test]
fn handle_spawn_racing_with_loop_exit_never_hangs() {
    let _guard = watchdog("handle_spawn_racing_with_loop_exit_never_hangs");
    for _ in 0..100 {
        let (handle_tx, handle_rx) = mpsc::channel();
        let exiting = thread::spawn(move || {
            untangle::block_on(async { handle_tx.send(Handle::current()).unwrap() });
            // Leaves block_on and exits while the other side spawns.
        });
        let handle = handle_rx.recv().unwrap();
        let tasks: Vec<_> = (0..8).map(|i| handle.spawn(async move { i })).collect();
        exiting.join().unwrap();
        for (i, task) in tasks.into_iter().enumerate() {
            match futures::executor::block_on(std::panic::AssertUnwindSafe(task).catch_unwind()) {
                Ok(v) => assert_eq!(v, i),
                Err(payload) => {
                    let message = panic_message(&*payload);
                    assert!(message.contains("loop's thread exited"), "{message}");
                }
            }
        }
    }
}

/// A thread group that cannot start all its threads (here: a stack no mmap can provide) fails
/// with a message naming the thread, after stopping the threads it had started; it never
/// hangs.
#[test]
fn a_group_whose_threads_cannot_start_panics_clearly() {
    let _guard = watchdog("a_group_whose_threads_cannot_start_panics_clearly");
    let payload = std::panic::catch_unwind(|| {
        Threads::new(2)
            .stack_size(usize::MAX / 4)
            .run(|i| async move { i })
    })
    .expect_err("cannot start");
    let message = panic_message(&*payload);
    assert!(
        message.contains("failed to start thread untangle-0"),
        "{message}"
    );
}

/// rt_handle: a task spawned through a `Handle` that started, then waits on something that
/// never comes, is dropped on its loop's thread when that thread exits; awaiting it from
/// another thread panics with the "loop's thread exited" message; a panic of a `Handle` task
/// reaches its awaiter.
#[test]
fn handle_tasks_pending_at_loop_exit_and_panicking_ones() {
    let _guard = watchdog("handle_tasks_pending_at_loop_exit_and_panicking_ones");
    let (handle, stop, loop_thread) = loop_thread();
    let loop_id = loop_thread.thread().id();
    let (started_tx, started_rx) = mpsc::channel();
    let (dropped_tx, dropped_rx) = mpsc::channel();
    struct OnDrop(mpsc::Sender<thread::ThreadId>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            let _ = self.0.send(thread::current().id());
        }
    }
    let guard = OnDrop(dropped_tx);
    let pending = handle.spawn(async move {
        let _guard = guard;
        started_tx.send(()).unwrap();
        futures::future::pending::<()>().await
    });
    let panicking = handle.spawn(async { panic!("handle task failed") });
    let payload = futures::executor::block_on(AssertUnwindSafe(panicking).catch_unwind())
        .expect_err("re-raised");
    assert_eq!(panic_message(&*payload), "handle task failed");
    started_rx.recv_timeout(HANG_GUARD).unwrap();
    stop.send_blocking(()).unwrap();
    loop_thread.join().unwrap();
    assert_eq!(dropped_rx.recv_timeout(HANG_GUARD).unwrap(), loop_id);
    let payload = futures::executor::block_on(AssertUnwindSafe(pending).catch_unwind())
        .expect_err("its loop is gone");
    let message = panic_message(&*payload);
    assert!(message.contains("loop's thread exited"), "{message}");
}

/// `Handle::current().spawn` on the loop's own thread runs the task there, like `spawn`.
#[test]
fn handle_spawn_onto_the_current_loop() {
    let _guard = watchdog("handle_spawn_onto_the_current_loop");
    let here = thread::current().id();
    let on = untangle::block_on(async {
        Handle::current()
            .spawn(async { thread::current().id() })
            .await
    });
    assert_eq!(on, here);
}

/// rt_threaded `many_multishot_futures`, the other way round: the `block_on` future itself
/// (not a task) is woken again and again by several threads at once through a capacity-1
/// channel, and a task of the same loop is woken by them too; every message arrives.
#[test]
fn the_block_on_future_woken_from_many_threads_never_misses_a_wake() {
    let _guard = watchdog("the_block_on_future_woken_from_many_threads_never_misses_a_wake");
    const SENDERS: usize = 4;
    const EACH: usize = 1_000;
    let (main_tx, main_rx) = async_channel::bounded::<usize>(1);
    let (task_tx, task_rx) = async_channel::bounded::<usize>(1);
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (main_tx, task_tx) = (main_tx.clone(), task_tx.clone());
            thread::spawn(move || {
                for i in 0..EACH {
                    main_tx.send_blocking(i).unwrap();
                    task_tx.send_blocking(i).unwrap();
                }
            })
        })
        .collect();
    drop((main_tx, task_tx));
    let (main_sum, task_sum) = untangle::block_on(async move {
        let task = untangle::spawn(async move {
            let mut sum = 0;
            while let Ok(i) = task_rx.recv().await {
                sum += i;
            }
            sum
        });
        let mut sum = 0;
        while let Ok(i) = main_rx.recv().await {
            sum += i;
        }
        (sum, task.await)
    });
    for sender in senders {
        sender.join().unwrap();
    }
    let expected = SENDERS * (0..EACH).sum::<usize>();
    assert_eq!((main_sum, task_sum), (expected, expected));
}

/// A `Handle` may be sent to and shared between threads (tokio's `Handle` is `Send + Sync`).
#[test]
fn a_handle_is_send_and_sync_and_clone() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<Handle>();
    let handle = untangle::block_on(async { Handle::current() });
    let from_two = thread::scope(|s| {
        let a = s.spawn(|| handle.spawn(async { 1 }));
        let b = s.spawn(|| handle.clone().spawn(async { 2 }));
        (a.join().unwrap(), b.join().unwrap())
    });
    let sum = untangle::block_on(async move { from_two.0.await + from_two.1.await });
    assert_eq!(sum, 3);
}

/// Awaiting a group from a loop does not block that loop while the group's threads exit: a
/// task left on a group thread's loop is dropped at that thread's exit, after the thread has
/// signalled its end, and its destructor waits until a task of the awaiting loop reads a
/// channel. Joining the threads on the awaiting loop's own thread deadlocks here.
#[test]
fn awaiting_a_group_keeps_the_awaiting_loop_running_while_its_threads_exit() {
    let _guard =
        watchdog("awaiting_a_group_keeps_the_awaiting_loop_running_while_its_threads_exit");
    struct SendOnDrop {
        dropping: async_channel::Sender<()>,
        full: async_channel::Sender<()>,
    }
    impl Drop for SendOnDrop {
        fn drop(&mut self) {
            self.dropping.try_send(()).unwrap();
            // The channel is full: this waits for the awaiting loop's reader.
            let _ = self.full.send_blocking(());
        }
    }
    let (dropping_tx, dropping_rx) = async_channel::unbounded::<()>();
    let (full_tx, full_rx) = async_channel::bounded::<()>(1);
    full_tx.try_send(()).unwrap();
    let guard = std::sync::Mutex::new(Some(SendOnDrop {
        dropping: dropping_tx,
        full: full_tx,
    }));
    let outputs = untangle::block_on(async move {
        // Reads only once the destructor runs, at the group thread's exit.
        let reader = untangle::spawn(async move {
            dropping_rx.recv().await.unwrap();
            full_rx.recv().await.is_ok() && full_rx.recv().await.is_ok()
        });
        let group = Threads::new(1).spawn(move |i| {
            let guard = guard.lock().unwrap().take().unwrap();
            async move {
                untangle::spawn(async move {
                    let _guard = guard;
                    futures::future::pending::<()>().await
                })
                .detach();
                i
            }
        });
        (group.await, reader.await)
    });
    assert_eq!(outputs, (vec![0], true));
}

//! The run loop: spawn order, `block_on` rules, task cancellation and panics, cross-thread
//! spawning and waking, fairness and `yield_now`.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use common::{panic_message, run, watchdog, DropFlag};
use futures::FutureExt;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use untangle::net::UnixStream;
use untangle::{block_on, spawn, yield_now, Handle, Task};

#[test]
fn tasks_run_in_spawn_order_and_return_their_results() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let results = run(async {
        let tasks: Vec<Task<usize>> = (0..20)
            .map(|i| {
                let order = order.clone();
                spawn(async move {
                    order.borrow_mut().push(i);
                    i * 10
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await);
        }
        results
    });
    assert_eq!(*order.borrow(), (0..20).collect::<Vec<_>>());
    assert_eq!(results, (0..20).map(|i| i * 10).collect::<Vec<_>>());
}

#[test]
fn block_on_inside_block_on_panics_with_deadlock_message() {
    let payload = catch_unwind(|| block_on(async { block_on(async { 1 }) })).unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("deadlock"), "panic message: {message:?}");
    // The outer loop was unwound cleanly: this thread's loop is usable again.
    assert_eq!(block_on(async { spawn(async { 3 }).await }), 3);
}

#[test]
fn block_on_inside_a_task_panics_with_deadlock_message() {
    let message = run(async {
        let task = spawn(async { block_on(async { 1 }) });
        let payload = AssertUnwindSafe(task).catch_unwind().await.unwrap_err();
        panic_message(&*payload)
    });
    assert!(message.contains("deadlock"), "panic message: {message:?}");
}

#[test]
fn spawn_outside_a_running_loop_panics() {
    let payload = catch_unwind(|| spawn(async {}).detach()).unwrap_err();
    let message = panic_message(&*payload);
    assert!(message.contains("outside"), "panic message: {message:?}");
    // Also after a loop ran and returned on this thread.
    block_on(async {});
    assert!(catch_unwind(|| spawn(async {}).detach()).is_err());
}

#[test]
fn tasks_pending_when_block_on_returns_continue_at_next_block_on() {
    let ran = Rc::new(Cell::new(0));
    let (tx, rx) = async_channel::unbounded::<u32>();

    let mut waiting = None;
    block_on(async {
        // Runs, then waits for a message that arrives between the two block_on calls.
        waiting = Some(spawn(async move { rx.recv().await.unwrap() + 1 }));
        yield_now().await;
        // Spawned but never polled: block_on's own future is done first.
        let ran = ran.clone();
        spawn(async move { ran.set(ran.get() + 1) }).detach();
    });
    let task = waiting.unwrap();
    // Nothing runs between block_on calls, even when woken.
    assert_eq!(ran.get(), 0);
    tx.send_blocking(41).unwrap();
    assert!(!task.is_finished());

    assert_eq!(run(task), 42);
    assert_eq!(ran.get(), 1);
}

#[test]
fn dropping_a_task_cancels_it_and_runs_its_destructors() {
    let dropped = Rc::new(Cell::new(false));
    let polled = Rc::new(Cell::new(false));
    run(async {
        let task = spawn({
            let guard = DropFlag(dropped.clone());
            let polled = polled.clone();
            async move {
                let _guard = guard;
                polled.set(true);
                futures::future::pending::<()>().await;
            }
        });
        yield_now().await;
        assert!(polled.get(), "the task started");
        assert!(!dropped.get());
        drop(task);
        // The future is dropped on the loop, by the next turn at the latest.
        yield_now().await;
        assert!(dropped.get(), "cancelled task's future was not dropped");
    });
}

#[test]
fn dropping_a_task_that_never_ran_drops_its_future() {
    let dropped = Rc::new(Cell::new(false));
    let ran = Rc::new(Cell::new(false));
    run(async {
        let task = spawn({
            let guard = DropFlag(dropped.clone());
            let ran = ran.clone();
            async move {
                let _guard = guard;
                ran.set(true);
            }
        });
        drop(task);
        yield_now().await;
    });
    assert!(
        !ran.get(),
        "a task dropped before its first poll must not run"
    );
    assert!(dropped.get());
}

#[test]
fn cancel_returns_none_when_the_task_was_cancelled_first() {
    let dropped = Rc::new(Cell::new(false));
    run(async {
        let task = spawn({
            let guard = DropFlag(dropped.clone());
            async move {
                let _guard = guard;
                futures::future::pending::<u32>().await
            }
        });
        yield_now().await;
        assert_eq!(task.cancel().await, None);
        // cancel waits for the task to stop: its future is gone by now.
        assert!(dropped.get());
    });
}

#[test]
fn cancel_returns_the_output_when_the_task_already_finished() {
    run(async {
        let task = spawn(async { 7 });
        while !task.is_finished() {
            yield_now().await;
        }
        assert_eq!(task.cancel().await, Some(7));
    });
}

#[test]
fn cancel_reraises_the_panic_of_a_panicked_task() {
    run(async {
        let task = spawn(async { panic!("boom in cancelled task") });
        while !task.is_finished() {
            yield_now().await;
        }
        let payload = AssertUnwindSafe(task.cancel())
            .catch_unwind()
            .await
            .unwrap_err();
        assert_eq!(panic_message(&*payload), "boom in cancelled task");
    });
}

#[test]
fn detached_task_runs_to_completion() {
    let done = Rc::new(Cell::new(false));
    run(async {
        let (tx, rx) = async_channel::bounded::<()>(1);
        spawn({
            let done = done.clone();
            async move {
                for _ in 0..3 {
                    yield_now().await;
                }
                untangle::time::sleep(Duration::from_millis(5)).await;
                done.set(true);
                tx.send(()).await.unwrap();
            }
        })
        .detach();
        rx.recv().await.unwrap();
    });
    assert!(done.get());
}

#[test]
fn is_finished_turns_true_once_the_task_completes() {
    run(async {
        let (tx, rx) = async_channel::bounded::<()>(1);
        let task = spawn(async move { rx.recv().await.unwrap() });
        assert!(!task.is_finished());
        yield_now().await;
        assert!(!task.is_finished(), "still waiting for its message");
        tx.send(()).await.unwrap();
        while !task.is_finished() {
            yield_now().await;
        }
        task.await;
    });
}

#[test]
fn panic_in_task_is_reraised_to_its_awaiter_while_other_tasks_finish() {
    let (message, others) = run(async {
        let bad = spawn(async {
            yield_now().await;
            panic!("task exploded");
        });
        let others: Vec<Task<u32>> = (0..5)
            .map(|i| {
                spawn(async move {
                    yield_now().await;
                    yield_now().await;
                    i
                })
            })
            .collect();
        let payload = AssertUnwindSafe(bad).catch_unwind().await.unwrap_err();
        let mut results = Vec::new();
        for task in others {
            results.push(task.await);
        }
        (panic_message(&*payload), results)
    });
    assert_eq!(message, "task exploded");
    assert_eq!(others, vec![0, 1, 2, 3, 4]);
}

#[test]
fn detached_task_panic_does_not_stop_the_loop_and_is_logged() {
    common::install_capture_logger();
    let after = run(async {
        spawn(async {
            yield_now().await;
            panic!("detached task exploded 7b1c");
        })
        .detach();
        // The loop goes on: more turns, new tasks, timers.
        for _ in 0..5 {
            yield_now().await;
        }
        untangle::time::sleep(Duration::from_millis(2)).await;
        spawn(async { 5 }).await
    });
    assert_eq!(after, 5);
    assert!(
        common::logged("detached task exploded 7b1c"),
        "no error logged for the detached panic; logged: {:?}",
        common::CAPTURED.lock().unwrap()
    );
}

#[test]
fn task_handles_are_send_when_the_output_is_send() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<Task<u32>>();
    assert_send::<Task<String>>();
    assert_send_sync::<Handle>();

    // And a Task really can be awaited on another thread, by another executor.
    run(async {
        let task = spawn(async { 11u32 });
        let other = untangle::unblock(move || futures::executor::block_on(task));
        assert_eq!(other.await, 11);
    });
}

#[test]
fn handle_spawn_from_four_threads_runs_every_task() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 10_000;
    let _watchdog = watchdog("handle_spawn_from_four_threads_runs_every_task");
    let count = Arc::new(AtomicUsize::new(0));
    let total = block_on(async {
        let handle = Handle::current();
        let (tx, rx) = async_channel::unbounded::<Task<usize>>();
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let handle = handle.clone();
                let tx = tx.clone();
                let count = count.clone();
                thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        let count = count.clone();
                        let task = handle.spawn(async move {
                            count.fetch_add(1, Ordering::Relaxed);
                            t * PER_THREAD + i
                        });
                        tx.send_blocking(task).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let mut sum = 0;
        while let Ok(task) = rx.recv().await {
            sum += task.await;
        }
        for thread in threads {
            thread.join().unwrap();
        }
        sum
    });
    let n = THREADS * PER_THREAD;
    assert_eq!(count.load(Ordering::Relaxed), n);
    assert_eq!(total, n * (n - 1) / 2);
}

#[test]
fn handle_spawn_on_the_loop_thread_runs_the_task() {
    run(async {
        let task = Handle::current().spawn(async { 9 });
        assert_eq!(task.await, 9);
    });
}

/// Pending until `flag` is set; stores its waker for another thread to wake.
struct WaitForFlag {
    flag: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl Future for WaitForFlag {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.flag.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Starts a thread that sets the flag after 50 ms and wakes the stored waker.
fn wake_later() -> WaitForFlag {
    let flag = Arc::new(AtomicBool::new(false));
    let waker: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
    let (f, w) = (flag.clone(), waker.clone());
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        f.store(true, Ordering::SeqCst);
        if let Some(waker) = w.lock().unwrap().take() {
            waker.wake();
        }
    });
    WaitForFlag { flag, waker }
}

#[test]
fn waker_fired_from_another_thread_wakes_a_loop_blocked_in_the_poller() {
    let _watchdog = watchdog("waker_fired_from_another_thread_wakes_a_loop_blocked_in_the_poller");
    // The block_on future itself, with no timer and no fd to wake the loop otherwise.
    block_on(wake_later());
    // A spawned task (its wake goes through the remote queue).
    block_on(async { spawn(wake_later()).await });
    // With an fd registered, so the loop really sleeps in epoll_wait.
    block_on(async {
        let (_a, _b) = UnixStream::pair().unwrap();
        spawn(wake_later()).await;
    });
}

#[test]
fn every_cross_thread_wake_interrupts_a_loop_asleep_in_epoll() {
    // The loop's eventfd is registered edge-triggered and never read: each notification must
    // still be a new edge. Each round the loop goes to sleep (an fd registered, no timer) and
    // another thread wakes it.
    let _watchdog = watchdog("every_cross_thread_wake_interrupts_a_loop_asleep_in_epoll");
    block_on(async {
        let (_a, _b) = UnixStream::pair().unwrap();
        for _ in 0..50 {
            let flag = Arc::new(AtomicBool::new(false));
            let waker: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
            let (f, w) = (flag.clone(), waker.clone());
            let thread = thread::spawn(move || {
                // Wait until the loop has parked the task (and so is about to sleep).
                loop {
                    if let Some(waker) = w.lock().unwrap().take() {
                        thread::sleep(Duration::from_millis(1));
                        f.store(true, Ordering::SeqCst);
                        waker.wake();
                        return;
                    }
                    thread::yield_now();
                }
            });
            WaitForFlag { flag, waker }.await;
            thread.join().unwrap();
        }
    });
}

#[test]
fn cross_thread_wakes_are_never_lost_under_stress() {
    const MESSAGES: u32 = 100_000;
    let _watchdog = watchdog("cross_thread_wakes_are_never_lost_under_stress");
    // No timers in the loop: a lost wake-up would hang until the watchdog fires. A small
    // capacity makes the loop run dry and go to sleep over and over while the producer races
    // to wake it (capacity 1 would test the same race, only slower on a 2-core machine).
    let (tx, rx) = async_channel::bounded::<u32>(8);
    let producer = thread::spawn(move || {
        for i in 0..MESSAGES {
            tx.send_blocking(i).unwrap();
        }
    });
    // Received by the block_on future itself.
    let received = block_on(async {
        let mut expected = 0;
        while let Ok(i) = rx.recv().await {
            assert_eq!(i, expected);
            expected += 1;
        }
        expected
    });
    producer.join().unwrap();
    assert_eq!(received, MESSAGES);
}

#[test]
fn cross_thread_ping_pong_with_a_task_never_loses_a_wake() {
    const ROUNDS: u32 = 20_000;
    let _watchdog = watchdog("cross_thread_ping_pong_with_a_task_never_loses_a_wake");
    let (ping_tx, ping_rx) = async_channel::bounded::<u32>(1);
    let (pong_tx, pong_rx) = async_channel::bounded::<u32>(1);
    let other = thread::spawn(move || {
        while let Ok(i) = ping_rx.recv_blocking() {
            pong_tx.send_blocking(i + 1).unwrap();
        }
    });
    let last = block_on(async {
        // Run the exchange in a spawned task, so its wakes go through the remote queue.
        spawn(async move {
            let mut value = 0;
            for _ in 0..ROUNDS {
                ping_tx.send(value).await.unwrap();
                value = pong_rx.recv().await.unwrap();
            }
            value
        })
        .await
    });
    other.join().unwrap();
    assert_eq!(last, ROUNDS);
}

/// A task that wakes itself and returns `Pending` forever, never yielding to anything.
fn spin_forever(polls: Rc<Cell<u64>>) -> impl Future<Output = ()> {
    futures::future::poll_fn(move |cx| {
        polls.set(polls.get() + 1);
        cx.waker().wake_by_ref();
        Poll::<()>::Pending
    })
}

#[test]
fn self_waking_task_does_not_starve_sockets_or_timers() {
    let _watchdog = watchdog("self_waking_task_does_not_starve_sockets_or_timers");
    let spins = Rc::new(Cell::new(0u64));
    let yields = Rc::new(Cell::new(0u64));
    block_on(async {
        let spinner = spawn(spin_forever(spins.clone()));
        let yielder = spawn({
            let yields = yields.clone();
            async move {
                loop {
                    yield_now().await;
                    yields.set(yields.get() + 1);
                }
            }
        });

        // A timer completes.
        untangle::time::sleep(Duration::from_millis(20)).await;

        // A socket read completes, with the data written by a std thread (no loop wake-up other
        // than the socket's readiness).
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut a = UnixStream::try_from(a).unwrap();
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            std::io::Write::write_all(&mut b, b"ping").unwrap();
        });
        let mut buf = [0; 4];
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        writer.join().unwrap();

        // A socket read in another task, fed by a third task.
        let (mut c, mut d) = UnixStream::pair().unwrap();
        let reader = spawn(async move {
            let mut buf = [0; 4];
            c.read_exact(&mut buf).await.unwrap();
            buf
        });
        spawn(async move {
            untangle::time::sleep(Duration::from_millis(5)).await;
            d.write_all(b"pong").await.unwrap();
        })
        .detach();
        assert_eq!(&reader.await, b"pong");

        drop(spinner);
        drop(yielder);
    });
    assert!(spins.get() > 0 && yields.get() > 0);
}

#[test]
fn yield_now_lets_every_other_ready_task_run_first() {
    let log = Rc::new(RefCell::new(Vec::new()));
    run(async {
        let push = |s: &'static str| {
            let log = log.clone();
            move || log.borrow_mut().push(s)
        };
        let (x1, x2, y, z) = (push("x1"), push("x2"), push("y"), push("z"));
        let x = spawn(async move {
            x1();
            yield_now().await;
            x2();
        });
        let y = spawn(async move { y() });
        let z = spawn(async move { z() });
        x.await;
        y.await;
        z.await;
    });
    assert_eq!(*log.borrow(), ["x1", "y", "z", "x2"]);
}

#[test]
fn yield_now_in_block_on_future_lets_spawned_tasks_run() {
    let ran = Rc::new(Cell::new(false));
    run(async {
        spawn({
            let ran = ran.clone();
            async move { ran.set(true) }
        })
        .detach();
        assert!(!ran.get());
        yield_now().await;
        assert!(ran.get());
    });
}

#[test]
fn yield_now_outside_a_loop_completes_on_second_poll() {
    // Driven by another executor: it wakes itself once and then completes.
    futures::executor::block_on(async {
        yield_now().await;
        yield_now().await;
    });
}

#[test]
fn block_on_future_panic_propagates_and_loop_stays_usable() {
    let payload = catch_unwind(|| {
        block_on(async {
            yield_now().await;
            panic!("main future exploded");
        })
    })
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "main future exploded");
    assert_eq!(run(async { spawn(async { 1 }).await }), 1);
}

#[test]
fn many_spawned_tasks_all_complete() {
    let done = Rc::new(Cell::new(0));
    run(async {
        let tasks: Vec<_> = (0..10_000)
            .map(|_| {
                let done = done.clone();
                spawn(async move {
                    yield_now().await;
                    done.set(done.get() + 1);
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
    });
    assert_eq!(done.get(), 10_000);
}

#[test]
fn block_on_future_that_wakes_itself_does_not_starve_tasks() {
    let _watchdog = watchdog("block_on_future_that_wakes_itself_does_not_starve_tasks");
    let done = Rc::new(Cell::new(0));
    block_on(async {
        for _ in 0..3 {
            let done = done.clone();
            spawn(async move {
                yield_now().await;
                done.set(done.get() + 1);
            })
            .detach();
        }
        // futures-lite's yield_now wakes itself at once: the block_on future takes its turn
        // behind the tasks, as a task would, rather than spinning ahead of them forever.
        while done.get() < 3 {
            futures_lite::future::yield_now().await;
        }
        // The same with a hand-written spin.
        let flag = Rc::new(Cell::new(false));
        spawn({
            let flag = flag.clone();
            async move { flag.set(true) }
        })
        .detach();
        futures::future::poll_fn(|cx| {
            if flag.get() {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    });
}

/// Sets a flag when dropped; `Send`, for tasks on another thread.
struct SendDropFlag(Arc<AtomicBool>);

impl Drop for SendDropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn pending_tasks_are_dropped_when_their_thread_exits() {
    let flags: Vec<Arc<AtomicBool>> = (0..5).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let guards: Vec<SendDropFlag> = flags.iter().map(|f| SendDropFlag(f.clone())).collect();
    thread::spawn(move || {
        let mut guards = guards.into_iter();
        let mut next = move || guards.next().unwrap();
        block_on(async move {
            // Parked on a timer.
            let guard = next();
            spawn(async move {
                let _guard = guard;
                untangle::time::sleep(Duration::from_secs(3600)).await;
            })
            .detach();
            // Parked on a socket read, holding the other end of its own socket.
            let guard = next();
            spawn(async move {
                let _guard = guard;
                let (mut a, _b) = UnixStream::pair().unwrap();
                a.read(&mut [0; 8]).await.unwrap();
            })
            .detach();
            // Parked on a channel whose sender another parked task holds.
            let (tx, rx) = async_channel::bounded::<()>(1);
            let guard = next();
            spawn(async move {
                let _guard = guard;
                rx.recv().await.unwrap();
            })
            .detach();
            let guard = next();
            spawn(async move {
                let _guard = guard;
                let _tx = tx;
                untangle::time::sleep(Duration::from_secs(3600)).await;
            })
            .detach();
            yield_now().await;
            // Queued, never run.
            let guard = next();
            spawn(async move {
                let _guard = guard;
            })
            .detach();
        });
    })
    .join()
    .unwrap();
    for (i, flag) in flags.iter().enumerate() {
        assert!(flag.load(Ordering::SeqCst), "task {i} was not dropped");
    }
}

#[test]
fn task_looping_on_yield_now_does_not_starve_io_or_timers() {
    let _watchdog = watchdog("task_looping_on_yield_now_does_not_starve_io_or_timers");
    block_on(async {
        let yielder = spawn(async {
            loop {
                yield_now().await;
            }
        });
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut a = UnixStream::try_from(a).unwrap();
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            std::io::Write::write_all(&mut b, b"io").unwrap();
        });
        let mut buf = [0; 2];
        a.read_exact(&mut buf).await.unwrap();
        writer.join().unwrap();
        untangle::time::sleep(Duration::from_millis(10)).await;
        drop(yielder);
    });
}

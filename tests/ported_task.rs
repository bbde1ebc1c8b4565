//! Task behaviour that tokio's `task_abort.rs`, `rt_common.rs` and `task_local_set.rs`, and
//! async-executor's and async-task's suites test, ported to untangle (panicking destructors are
//! in `ported_task_panic.rs`): cancellation of finished, running and never-run tasks, tasks that spawn or wake
//! themselves from their destructors, wakes from other threads after a task finished, and
//! `Handle::spawn` onto a loop whose thread has exited.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use common::{panic_message, run, watchdog, DropFlag};
use futures_lite::FutureExt;
use untangle::{block_on, spawn, yield_now, Handle};

/// Spawns a task from its destructor and records that the whole destructor ran.
struct SpawnOnDrop(Rc<Cell<u32>>);

impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        let counter = self.0.clone();
        spawn(async move { counter.set(counter.get() + 10) }).detach();
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn a_cancelled_task_can_spawn_from_its_destructor() {
    run(async {
        let counter = Rc::new(Cell::new(0));
        let guard = SpawnOnDrop(counter.clone());
        let task = spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        });
        yield_now().await;
        drop(task);
        yield_now().await;
        yield_now().await;
        assert_eq!(counter.get(), 11, "destructor finished and its task ran");
    });
}

#[test]
fn a_task_spawning_from_its_destructor_at_thread_exit_finishes_the_destructor() {
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    thread::spawn(move || {
        block_on(async move {
            spawn(async move {
                struct Guard(Arc<AtomicBool>);
                impl Drop for Guard {
                    fn drop(&mut self) {
                        // The loop is going away: the task never runs, and spawn says so
                        // through its handle rather than by panicking.
                        let task = spawn(async {});
                        drop(task);
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
                let _guard = Guard(flag);
                std::future::pending::<()>().await
            })
            .detach();
            yield_now().await;
        })
    })
    .join()
    .unwrap();
    assert!(finished.load(Ordering::SeqCst));
}

/// A future that keeps its own waker and wakes itself from its destructor.
struct WakeSelfOnDrop(Option<Waker>, Rc<Cell<bool>>);

impl Future for WakeSelfOnDrop {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0 = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for WakeSelfOnDrop {
    fn drop(&mut self) {
        if let Some(waker) = self.0.take() {
            waker.wake();
        }
        self.1.set(true);
    }
}

#[test]
fn a_task_waking_itself_from_its_destructor_is_not_run_again() {
    run(async {
        let dropped = Rc::new(Cell::new(false));
        let task = spawn(WakeSelfOnDrop(None, dropped.clone()));
        yield_now().await;
        assert_eq!(task.cancel().await, None);
        assert!(dropped.get());
        yield_now().await;
        assert_eq!(untangle::stats().tasks_alive, 0);
    });
}

#[test]
fn wakers_fired_from_other_threads_after_their_task_finished_are_harmless() {
    let _watchdog = watchdog("wakers_fired_from_other_threads_after_their_task_finished");
    let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
    run(async {
        let keep = slot.clone();
        let task = spawn(futures_lite::future::poll_fn(move |cx| {
            let mut slot = keep.lock().unwrap();
            if slot.is_some() {
                return Poll::Ready(3);
            }
            *slot = Some(cx.waker().clone());
            cx.waker().wake_by_ref();
            Poll::Pending
        }));
        assert_eq!(task.await, 3);
        let waker = slot.lock().unwrap().clone().unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let waker = waker.clone();
                thread::spawn(move || (0..1000).for_each(|_| waker.wake_by_ref()))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        yield_now().await;
        assert_eq!(untangle::stats().tasks_alive, 0);
    });
    // And once the loop's thread has gone too (here: a scoped thread whose loop ran the task).
    let waker = thread::spawn(|| {
        block_on(async {
            let slot = Rc::new(RefCell::new(None));
            let keep = slot.clone();
            spawn(futures_lite::future::poll_fn(move |cx| {
                *keep.borrow_mut() = Some(cx.waker().clone());
                Poll::Ready(())
            }))
            .await;
            let waker: Waker = slot.borrow_mut().take().unwrap();
            waker
        })
    })
    .join()
    .unwrap();
    waker.wake();
}

#[test]
fn cancel_of_a_finished_task_returns_its_output_and_of_a_running_one_drops_it() {
    run(async {
        let done = spawn(async { "done" });
        yield_now().await;
        assert!(done.is_finished());
        assert_eq!(done.cancel().await, Some("done"));

        // A task that drops its own handle while it runs (tokio's self-abort): it finishes the
        // current poll, then its future is dropped instead of being polled again.
        let own: Rc<RefCell<Option<untangle::Task<()>>>> = Rc::default();
        let after_yield = Rc::new(Cell::new(false));
        let dropped = Rc::new(Cell::new(false));
        let task = {
            let (own, after_yield, flag) = (own.clone(), after_yield.clone(), dropped.clone());
            spawn(async move {
                let _flag = DropFlag(flag);
                drop(own.borrow_mut().take());
                yield_now().await;
                after_yield.set(true);
            })
        };
        *own.borrow_mut() = Some(task);
        for _ in 0..3 {
            yield_now().await;
        }
        assert!(dropped.get(), "the self-cancelled task was dropped");
        assert!(!after_yield.get(), "and never polled again");
    });
}

#[test]
fn cancel_of_a_task_sleeping_on_another_threads_loop_runs_its_destructor_there() {
    let _watchdog = watchdog("cancel_of_a_task_sleeping_on_another_threads_loop");
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let worker = thread::spawn(move || {
        block_on(async move {
            handle_tx.send(Handle::current()).unwrap();
            let _ = stop_rx.recv().await;
        })
    });
    let handle: Handle = handle_rx.recv().unwrap();
    let dropped_on = Arc::new(Mutex::new(None));
    let started = Arc::new(AtomicBool::new(false));
    let task = {
        let (dropped_on, started) = (dropped_on.clone(), started.clone());
        handle.spawn(async move {
            struct Where(Arc<Mutex<Option<thread::ThreadId>>>);
            impl Drop for Where {
                fn drop(&mut self) {
                    *self.0.lock().unwrap() = Some(thread::current().id());
                }
            }
            let _where = Where(dropped_on);
            started.store(true, Ordering::SeqCst);
            untangle::time::sleep(Duration::from_secs(3600)).await;
        })
    };
    while !started.load(Ordering::SeqCst) {
        thread::yield_now();
    }
    assert_eq!(block_on(task.cancel()), None);
    assert_eq!(*dropped_on.lock().unwrap(), Some(worker.thread().id()));
    stop_tx.send_blocking(()).unwrap();
    worker.join().unwrap();
}

/// A thread that ran a loop and exited; its handle.
fn exited_loop() -> Handle {
    thread::spawn(|| block_on(async { Handle::current() }))
        .join()
        .unwrap()
}

#[test]
fn handle_spawn_onto_an_exited_loop_drops_the_future_on_the_calling_thread() {
    let handle = exited_loop();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server_side, _) = listener.accept().unwrap();
    let dropped_on = Arc::new(Mutex::new(None));
    struct Where(Arc<Mutex<Option<thread::ThreadId>>>);
    impl Drop for Where {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(thread::current().id());
        }
    }
    let owned = (Where(dropped_on.clone()), client);
    let task = handle.spawn(async move {
        let _owned = owned;
        std::future::pending::<()>().await
    });
    assert_eq!(*dropped_on.lock().unwrap(), Some(thread::current().id()));
    assert!(task.is_finished());
    // The socket the future owned is closed: the peer reads end of stream.
    server_side
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = std::io::Read::read(&mut server_side, &mut [0; 8]).unwrap();
    assert_eq!(n, 0);
    let awaited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| block_on(task)));
    let message = panic_message(&*awaited.unwrap_err());
    assert!(message.contains("loop's thread exited"), "{message}");
}

#[test]
fn handle_spawn_onto_an_exited_loop_from_a_task_leaves_the_callers_loop_alone() {
    let handle = exited_loop();
    run(async move {
        let caller = untangle::Builder::new().name("caller").spawn(async move {
            let before = untangle::stats().tasks_alive;
            let orphan = handle.spawn(async { 1 });
            assert!(orphan.is_finished());
            // The running task keeps its record (and its name) in this loop's registry.
            assert_eq!(untangle::stats().tasks_alive, before);
            let dump = untangle::dump().to_string();
            assert!(dump.contains("caller"), "{dump}");
            yield_now().await;
            untangle::stats().tasks_alive
        });
        assert_eq!(caller.await, 1, "the caller itself, still registered");
        assert_eq!(untangle::stats().tasks_alive, 0);
    });
}

#[test]
fn a_remote_task_cancelled_before_its_first_run_shows_its_spawn_site_in_a_dump() {
    let seen: Rc<RefCell<String>> = Rc::default();
    let handle_line = Arc::new(AtomicUsize::new(0));
    run(async {
        let handle = Handle::current();
        let line = handle_line.clone();
        // The dump, taken by the future's destructor, lands here (the destructor runs on the
        // loop's thread, so a thread-local is enough).
        thread_local!(static DUMP: RefCell<String> = const { RefCell::new(String::new()) });
        thread::spawn(move || {
            struct DumpOnDrop;
            impl Drop for DumpOnDrop {
                fn drop(&mut self) {
                    DUMP.with(|d| *d.borrow_mut() = untangle::dump().to_string());
                }
            }
            let guard = DumpOnDrop;
            let future = async move {
                let _guard = guard;
            };
            let builder = untangle::Builder::new().name("remote-never-ran");
            line.store(line!() as usize + 1, Ordering::SeqCst);
            let task = builder.spawn_on(&handle, future);
            drop(task);
        })
        .join()
        .unwrap();
        for _ in 0..3 {
            yield_now().await;
        }
        *seen.borrow_mut() = DUMP.with(|d| d.borrow().clone());
    });
    let dump = seen.borrow();
    assert!(dump.contains("remote-never-ran"), "{dump}");
    let at = format!("ported_task.rs:{}", handle_line.load(Ordering::SeqCst));
    assert!(dump.contains(&at), "expected {at} in {dump}");
    assert!(!dump.contains("executor.rs"), "{dump}");
}

#[test]
fn dropping_the_loop_with_tasks_that_wake_each_other_from_their_destructors() {
    // tokio rt_common: wake_while_rt_is_dropping. Each task's destructor wakes the other.
    let _watchdog = watchdog("dropping_the_loop_with_tasks_that_wake_each_other");
    thread::spawn(|| {
        block_on(async {
            let wakers: Rc<RefCell<Vec<Waker>>> = Rc::default();
            for _ in 0..2 {
                let wakers = wakers.clone();
                spawn(async move {
                    struct WakeAll(Rc<RefCell<Vec<Waker>>>);
                    impl Drop for WakeAll {
                        fn drop(&mut self) {
                            let all: Vec<Waker> = self.0.borrow().clone();
                            all.iter().for_each(Waker::wake_by_ref);
                        }
                    }
                    let _wake = WakeAll(wakers.clone());
                    futures_lite::future::poll_fn(|cx| {
                        wakers.borrow_mut().push(cx.waker().clone());
                        Poll::<()>::Pending
                    })
                    .await
                })
                .detach();
            }
            yield_now().await;
        })
    })
    .join()
    .unwrap();
}

#[test]
fn spawn_from_tasks_nested_and_chained() {
    // tokio rt_common: spawn_two, spawn_many_from_task, spawn_await_chain; async-executor:
    // spawn_many.
    run(async {
        let total = Rc::new(Cell::new(0));
        let outer: Vec<_> = (0..10)
            .map(|_| {
                let total = total.clone();
                spawn(async move {
                    let inner: Vec<_> = (0..100)
                        .map(|_| {
                            let total = total.clone();
                            spawn(async move { total.set(total.get() + 1) })
                        })
                        .collect();
                    for task in inner {
                        task.await;
                    }
                })
            })
            .collect();
        for task in outer {
            task.await;
        }
        assert_eq!(total.get(), 1000);

        fn chain(depth: u32) -> Pin<Box<dyn Future<Output = u32>>> {
            Box::pin(async move {
                if depth == 0 {
                    0
                } else {
                    spawn(chain(depth - 1)).await + 1
                }
            })
        }
        assert_eq!(chain(500).await, 500);
        assert_eq!(untangle::stats().tasks_alive, 0);
    });
}

#[test]
fn detached_task_finishes_and_is_finished_is_true_for_every_kind_of_end() {
    run(async {
        let ran = Rc::new(Cell::new(false));
        let flag = ran.clone();
        spawn(async move { flag.set(true) }).detach();
        yield_now().await;
        assert!(ran.get());

        let panicked = spawn(async { panic!("is_finished after a panic") });
        yield_now().await;
        assert!(panicked.is_finished());
        let _ = std::panic::AssertUnwindSafe(panicked).catch_unwind().await;

        let pending = spawn(std::future::pending::<()>());
        yield_now().await;
        assert!(!pending.is_finished());
        assert_eq!(pending.cancel().await, None);
    });
}

#[test]
fn a_local_tasks_handle_can_be_awaited_from_another_thread() {
    // tokio task_local_set: join_local_future_elsewhere. The future is not `Send`, its output
    // is, so its `Task` can travel; the other thread's executor is woken by our loop.
    let _watchdog = watchdog("a_local_tasks_handle_can_be_awaited_from_another_thread");
    run(async {
        let (tx, rx) = async_channel::bounded::<()>(1);
        let local = Rc::new(5u32);
        let task = spawn(async move {
            rx.recv().await.unwrap();
            *local + 1
        });
        let joiner = thread::spawn(move || futures_lite::future::block_on(task));
        untangle::time::sleep(Duration::from_millis(5)).await;
        tx.send(()).await.unwrap();
        while !joiner.is_finished() {
            untangle::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(joiner.join().unwrap(), 6);
    });
}

#[test]
fn a_finished_tasks_output_outlives_its_loop_and_is_dropped_with_its_handle() {
    // async-executor drop.rs: drop_executor_and_then_drop_finished_task.
    struct Output(Arc<AtomicUsize>);
    impl Drop for Output {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let counter = drops.clone();
    let (kept, dropped) = thread::spawn(move || {
        block_on(async move {
            let kept = spawn({
                let counter = counter.clone();
                async move { (7, Output(counter)) }
            });
            let dropped = spawn(async move { Output(counter) });
            yield_now().await;
            assert!(kept.is_finished() && dropped.is_finished());
            (kept, dropped)
        })
    })
    .join()
    .unwrap();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "outputs live in their tasks"
    );
    drop(dropped);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    let (value, output) = block_on(kept);
    assert_eq!(value, 7);
    drop(output);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

/// Wakes its waker when the thread-local holding it is destroyed.
struct WakeOnTlsDrop(RefCell<Option<Waker>>);

impl Drop for WakeOnTlsDrop {
    fn drop(&mut self) {
        if let Some(waker) = self.0.borrow_mut().take() {
            waker.wake();
        }
    }
}

thread_local!(static TLS_WAKER: WakeOnTlsDrop = const { WakeOnTlsDrop(RefCell::new(None)) });

#[test]
fn wakes_from_thread_local_destructors_before_or_after_the_loops_own() {
    // tokio rt_common: wake_by_val_from_thread_local (another thread's exit wakes the task).
    let _watchdog = watchdog("wakes_from_thread_local_destructors");
    run(async {
        let task = spawn(futures_lite::future::poll_fn({
            let mut stored = false;
            move |cx| {
                if stored {
                    return Poll::Ready(());
                }
                stored = true;
                let waker = cx.waker().clone();
                thread::spawn(move || TLS_WAKER.with(|w| *w.0.borrow_mut() = Some(waker)));
                Poll::Pending
            }
        }));
        task.await;
    });
    // On the loop's own thread, whichever of the two thread-locals is destroyed first.
    for tls_first in [true, false] {
        thread::spawn(move || {
            if tls_first {
                TLS_WAKER.with(|_| ());
            }
            block_on(async {
                spawn(futures_lite::future::poll_fn(|cx| {
                    TLS_WAKER.with(|w| *w.0.borrow_mut() = Some(cx.waker().clone()));
                    Poll::<()>::Pending
                }))
                .detach();
                yield_now().await;
            });
        })
        .join()
        .expect("no panic while thread-locals are destroyed");
    }
}

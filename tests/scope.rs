//! Task scopes: children borrow from the caller, the scope joins them all, dropping it drops
//! them (and frees their sockets), a panic cancels the siblings and is re-raised, scopes nest
//! and run inside tasks, and only woken children are polled.

mod common;

use std::cell::{Cell, RefCell};
use std::future::{pending, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{panic_message, run, watchdog, DropFlag};
use futures::FutureExt;
use futures_lite::AsyncReadExt;
use untangle::net::{TcpListener, TcpStream};
use untangle::{scope, spawn, yield_now, Scope};

#[test]
fn children_borrow_from_the_callers_stack() {
    let words: Vec<String> = ["borrowed", "from", "the", "stack"]
        .map(String::from)
        .to_vec();
    let greeting = String::from("hello");
    let lengths = run(async {
        let (words, greeting) = (&words[..], &greeting);
        scope(|s| async move {
            let tasks: Vec<_> = words
                .iter()
                .map(|word| {
                    s.spawn(async move {
                        yield_now().await;
                        greeting.len() + word.len()
                    })
                })
                .collect();
            let mut lengths = Vec::new();
            for task in tasks {
                lengths.push(task.await);
            }
            lengths
        })
        .await
    });
    assert_eq!(lengths, [13, 9, 8, 10]);
}

#[test]
fn children_mutably_borrow_distinct_locals() {
    let mut evens = Vec::new();
    let mut odds = Vec::new();
    let mut total = 0u32;
    run(async {
        let (evens, odds, total) = (&mut evens, &mut odds, &mut total);
        scope(|s| async move {
            s.spawn(async move {
                for i in (0..10).step_by(2) {
                    evens.push(i);
                    yield_now().await;
                }
            });
            s.spawn(async move {
                for i in (1..10).step_by(2) {
                    odds.push(i);
                    yield_now().await;
                }
            });
            s.spawn(async move { *total = 45 });
        })
        .await
    });
    assert_eq!(evens, [0, 2, 4, 6, 8]);
    assert_eq!(odds, [1, 3, 5, 7, 9]);
    assert_eq!(total, 45);
}

#[test]
fn scope_waits_for_children_nobody_awaits() {
    let finished = RefCell::new(Vec::new());
    let output = run(async {
        let finished = &finished;
        scope(|s| async move {
            for (i, ms) in [30u64, 10, 20].into_iter().enumerate() {
                s.spawn(async move {
                    untangle::time::sleep(Duration::from_millis(ms)).await;
                    finished.borrow_mut().push(i);
                });
            }
            // The body ends first; the scope still waits for all three.
            "body done"
        })
        .await
    });
    assert_eq!(output, "body done");
    assert_eq!(*finished.borrow(), [1, 2, 0]);
}

#[test]
fn child_results_come_through_their_handles() {
    let factors = [2u64, 3, 5, 7];
    let (products, late) = run(async {
        let factors = &factors;
        scope(|s| async move {
            let tasks: Vec<_> = factors
                .iter()
                .map(|&f| {
                    s.spawn(async move {
                        for _ in 0..f {
                            yield_now().await;
                        }
                        f * 100
                    })
                })
                .collect();
            // Awaited in reverse order: each handle keeps its own child's result.
            let mut products = Vec::new();
            for task in tasks.into_iter().rev() {
                products.push(task.await);
            }
            let late = s.spawn(async { String::from("after the scope") });
            assert!(!late.is_finished());
            (products, late)
        })
        .await
    });
    assert_eq!(products, [700, 500, 300, 200]);
    // A handle that left the scope is ready at once: the scope joined its child.
    assert!(late.is_finished());
    assert_eq!(
        futures::executor::block_on(late),
        "after the scope",
        "handle resolves outside any loop"
    );
}

#[test]
fn dropping_a_handle_does_not_cancel_the_child() {
    let ran = Cell::new(false);
    run(async {
        let ran = &ran;
        scope(|s| async move {
            drop(s.spawn(async move {
                yield_now().await;
                ran.set(true);
            }));
        })
        .await
    });
    assert!(ran.get());
}

#[test]
fn children_run_concurrently() {
    let _watchdog = watchdog("children_run_concurrently");
    let rounds = run(async {
        scope(|s| async move {
            let (ping_tx, ping_rx) = async_channel::bounded::<u32>(1);
            let (pong_tx, pong_rx) = async_channel::bounded::<u32>(1);
            let pinger = s.spawn(async move {
                let mut n = 0;
                while n < 100 {
                    ping_tx.send(n).await.unwrap();
                    n = pong_rx.recv().await.unwrap();
                }
                n
            });
            s.spawn(async move {
                while let Ok(n) = ping_rx.recv().await {
                    pong_tx.send(n + 1).await.unwrap();
                }
            });
            pinger.await
        })
        .await
    });
    assert_eq!(rounds, 100);
}

#[test]
fn a_child_spawns_siblings_through_a_cloned_scope() {
    let log = RefCell::new(Vec::new());
    run(async {
        let log = &log;
        scope(|s| async move {
            let inner: Scope<'_> = s.clone();
            s.spawn(async move {
                log.borrow_mut().push("parent");
                let sibling = inner.spawn(async move { log.borrow_mut().push("sibling") });
                sibling.await;
                log.borrow_mut().push("parent again");
            });
        })
        .await
    });
    assert_eq!(*log.borrow(), ["parent", "sibling", "parent again"]);
}

#[test]
fn dropping_the_scope_drops_children_and_frees_their_sockets() {
    let flags: Vec<Rc<Cell<bool>>> = (0..3).map(|_| Rc::default()).collect();
    let body_dropped = Rc::new(Cell::new(false));
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let baseline = untangle::__live_sources();
        let (connected_tx, connected_rx) = async_channel::unbounded::<()>();
        let flags = &flags;
        let body_flag = body_dropped.clone();
        let scope = scope(|s| async move {
            let _body = DropFlag(body_flag);
            for flag in flags {
                let connected = connected_tx.clone();
                s.spawn(async move {
                    let _flag = DropFlag(flag.clone());
                    let mut conn = TcpStream::connect(addr).await.unwrap();
                    connected.send(()).await.unwrap();
                    // The server never writes: only cancellation ends this child.
                    let _ = conn.read(&mut [0; 1]).await;
                    unreachable!("the server sent nothing");
                });
            }
            pending::<()>().await
        });
        let mut accepted = Vec::new();
        let mut during = 0;
        futures_lite::future::or(
            async {
                scope.await;
                unreachable!("the scope never completes")
            },
            async {
                for _ in 0..3 {
                    accepted.push(listener.accept().await.unwrap());
                    connected_rx.recv().await.unwrap();
                }
                during = untangle::__live_sources();
            },
        )
        .await;
        // Three client sockets (children) and three accepted ones.
        assert_eq!(during, baseline + 6);
        assert_eq!(
            untangle::__live_sources(),
            baseline + 3,
            "children's sockets freed"
        );
        drop(accepted);
        assert_eq!(untangle::__live_sources(), baseline);
    });
    assert!(flags.iter().all(|f| f.get()), "children's destructors ran");
    assert!(body_dropped.get(), "body's destructors ran");
}

#[test]
fn dropping_the_scope_drops_children_before_the_body() {
    let order = RefCell::new(Vec::new());
    struct Logged<'a>(&'a RefCell<Vec<&'static str>>, &'static str);
    impl Drop for Logged<'_> {
        fn drop(&mut self) {
            self.0.borrow_mut().push(self.1);
        }
    }
    run(async {
        let order = &order;
        let mut future = scope(|s| async move {
            let _body = Logged(order, "body");
            s.spawn(async move {
                let _child = Logged(order, "child");
                pending::<()>().await
            });
            pending::<()>().await
        });
        // Two turns: the body starts the child, then the child starts.
        for _ in 0..2 {
            assert!((&mut future).now_or_never().is_none());
        }
    });
    assert_eq!(*order.borrow(), ["child", "body"]);
}

#[test]
fn a_child_panic_cancels_its_siblings_and_is_re_raised() {
    let sibling_flags: Vec<Rc<Cell<bool>>> = (0..2).map(|_| Rc::default()).collect();
    let body_dropped = Rc::new(Cell::new(false));
    let sibling_steps = Cell::new(0);
    let message = run(async {
        let (flags, steps, body_flag) = (&sibling_flags, &sibling_steps, body_dropped.clone());
        let result = AssertUnwindSafe(scope(|s| async move {
            let _body = DropFlag(body_flag);
            for flag in flags {
                s.spawn(async move {
                    let _flag = DropFlag(flag.clone());
                    loop {
                        steps.set(steps.get() + 1);
                        yield_now().await;
                    }
                });
            }
            s.spawn(async {
                yield_now().await;
                yield_now().await;
                panic!("child failed: {}", 42);
            });
            pending::<()>().await
        }))
        .catch_unwind()
        .await;
        panic_message(&*result.unwrap_err())
    });
    assert_eq!(message, "child failed: 42");
    assert!(sibling_flags.iter().all(|f| f.get()), "siblings dropped");
    assert!(body_dropped.get(), "body dropped");
    // Both siblings ran alongside the failing child, and stopped with it.
    assert_eq!(sibling_steps.get(), 6);
}

#[test]
fn a_body_panic_cancels_the_children_and_is_re_raised() {
    let child_dropped = Rc::new(Cell::new(false));
    let flag = child_dropped.clone();
    let payload = catch_unwind(AssertUnwindSafe(|| {
        run(scope(|s| async move {
            s.spawn(async move {
                let _flag = DropFlag(flag);
                pending::<()>().await
            });
            yield_now().await;
            panic!("body failed");
        }))
    }))
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "body failed");
    assert!(child_dropped.get());
    // The loop is usable again after the panic went through it.
    assert_eq!(run(async { spawn(async { 1 }).await }), 1);
}

#[test]
fn nested_scopes_borrow_from_every_level() {
    let base = 1000;
    let mut sums = [0u64; 3];
    run(async {
        let (base, sums) = (&base, &mut sums);
        scope(|outer| async move {
            for (i, sum) in sums.iter_mut().enumerate() {
                outer.spawn(async move {
                    let local = vec![i as u64; 4];
                    let local = &local;
                    let mut partial = [0u64; 4];
                    // A reference, so the inner body moves it rather than a copy of the array.
                    let parts = &mut partial;
                    scope(|inner| async move {
                        for (j, slot) in parts.iter_mut().enumerate() {
                            inner.spawn(async move {
                                yield_now().await;
                                *slot = base + local[j] * 10 + j as u64;
                            });
                        }
                    })
                    .await;
                    *sum = partial.iter().sum();
                });
            }
        })
        .await
    });
    assert_eq!(sums, [4006, 4046, 4086]);
}

#[test]
fn a_scope_runs_inside_a_spawned_task() {
    let total = run(async {
        spawn(async {
            let numbers: Vec<u64> = (1..=100).collect();
            let numbers = &numbers[..];
            scope(|s| async move {
                let halves = numbers.split_at(50);
                let a = s.spawn(async move { halves.0.iter().sum::<u64>() });
                let b = s.spawn(async move {
                    untangle::time::sleep(Duration::from_millis(5)).await;
                    halves.1.iter().sum::<u64>()
                });
                a.await + b.await
            })
            .await
        })
        .await
    });
    assert_eq!(total, 5050);
}

#[test]
fn spawn_after_the_scope_completed_panics() {
    // A caller variable the body borrows cannot hold the `Scope` (dropck rejects that), so
    // keeping it past its scope takes shared ownership.
    let kept = Rc::new(RefCell::new(None));
    let keep = kept.clone();
    run(scope(
        |s| async move { *keep.borrow_mut() = Some(s.clone()) },
    ));
    let kept = kept.borrow();
    let payload = catch_unwind(AssertUnwindSafe(|| {
        kept.as_ref().unwrap().spawn(async {}).is_finished()
    }))
    .unwrap_err();
    assert!(panic_message(&*payload).contains("after its scope completed"));
}

/// Counts its polls; pending until `gate` closes.
struct Counted<'a> {
    polls: &'a Cell<u32>,
    gate: Pin<Box<dyn Future<Output = ()> + 'a>>,
}

impl Future for Counted<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.set(self.polls.get() + 1);
        self.gate.as_mut().poll(cx)
    }
}

#[test]
fn only_woken_children_are_polled() {
    const IDLE: u32 = 1000;
    let idle_polls = Cell::new(0);
    let busy_steps = Cell::new(0);
    run(async {
        let (idle_polls, busy_steps) = (&idle_polls, &busy_steps);
        let (gate_tx, gate_rx) = async_channel::bounded::<()>(1);
        scope(|s| async move {
            for _ in 0..IDLE {
                let gate = gate_rx.clone();
                s.spawn(Counted {
                    polls: idle_polls,
                    gate: Box::pin(async move {
                        let _ = gate.recv().await;
                    }),
                });
            }
            let busy = s.spawn(async move {
                for _ in 0..500 {
                    busy_steps.set(busy_steps.get() + 1);
                    yield_now().await;
                }
            });
            busy.await;
            // 500 wakes of one child cost no poll of the 1000 idle ones.
            assert_eq!(idle_polls.get(), IDLE);
            drop(gate_tx);
        })
        .await
    });
    assert_eq!(busy_steps.get(), 500);
    // Closing the gate wakes each idle child once more.
    assert_eq!(idle_polls.get(), 2 * IDLE);
}

#[test]
fn ten_thousand_children_yielding_finish() {
    const CHILDREN: usize = 10_000;
    const YIELDS: usize = 3;
    let done = Cell::new(0);
    let started = Instant::now();
    run(async {
        let done = &done;
        scope(|s| async move {
            for _ in 0..CHILDREN {
                s.spawn(async move {
                    for _ in 0..YIELDS {
                        yield_now().await;
                    }
                    done.set(done.get() + 1);
                });
            }
        })
        .await
    });
    assert_eq!(done.get(), CHILDREN);
    eprintln!(
        "{CHILDREN} children x {YIELDS} yields: {:?}",
        started.elapsed()
    );
}

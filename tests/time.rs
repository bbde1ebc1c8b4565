//! Timers: sleeps never complete early, complete in deadline order, are removed when dropped,
//! can be reset; timeouts; intervals keep their grid and skip missed ticks.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{run, DropFlag};
use futures::{FutureExt, StreamExt};
use untangle::time::{interval, sleep, sleep_until, timeout, Elapsed};
use untangle::{spawn, yield_now};

const MS: Duration = Duration::from_millis(1);

#[test]
fn sleep_never_completes_before_its_duration() {
    run(async {
        let tasks: Vec<_> = (0..60u32)
            .map(|i| {
                let wanted = MS * (i % 25) + Duration::from_micros(u64::from(i) * 37);
                spawn(async move {
                    let start = Instant::now();
                    sleep(wanted).await;
                    (start.elapsed(), wanted)
                })
            })
            .collect();
        for task in tasks {
            let (elapsed, wanted) = task.await;
            assert!(elapsed >= wanted, "slept {elapsed:?}, asked for {wanted:?}");
        }
        // One after another, too (each sleep starts a fresh wait of the loop).
        for i in 0..20u32 {
            let wanted = Duration::from_micros(u64::from(i) * 450);
            let start = Instant::now();
            sleep(wanted).await;
            assert!(start.elapsed() >= wanted);
        }
    });
}

#[test]
fn sleep_until_never_completes_before_its_deadline() {
    run(async {
        for i in 0..20u64 {
            let deadline = Instant::now() + Duration::from_micros(i * 700);
            sleep_until(deadline).await;
            assert!(Instant::now() >= deadline);
        }
    });
}

#[test]
fn sleep_with_zero_or_past_deadline_completes_at_once() {
    run(async {
        assert!(sleep(Duration::ZERO).now_or_never().is_some());
        let past = Instant::now() - Duration::from_millis(5);
        assert!(sleep_until(past).now_or_never().is_some());
        // A huge duration does not overflow.
        let forever = sleep(Duration::MAX);
        assert!(forever.deadline() > Instant::now() + Duration::from_secs(86_400 * 365));
    });
}

#[test]
fn sleeps_complete_in_deadline_order() {
    let order = Rc::new(RefCell::new(Vec::new()));
    run(async {
        let base = Instant::now();
        // Distinct deadlines, spawned out of order.
        let offsets = [9u32, 2, 14, 5, 1, 11, 7, 3, 13, 6];
        let tasks: Vec<_> = offsets
            .iter()
            .map(|&ms| {
                let order = order.clone();
                let timer = sleep_until(base + MS * ms);
                spawn(async move {
                    timer.await;
                    order.borrow_mut().push(ms);
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
    });
    let mut sorted = order.borrow().clone();
    sorted.sort_unstable();
    assert_eq!(*order.borrow(), sorted);
}

#[test]
fn dropped_sleep_never_wakes_its_task() {
    // The task registers a short sleep, drops it, then waits on a longer one. If the dropped
    // timer were left in the loop, it would fire and poll the task an extra time.
    let polls = Rc::new(Cell::new(0u32));
    run(async {
        let task = spawn({
            let polls = polls.clone();
            async move {
                let mut short = Box::pin(sleep(MS * 15));
                let mut long = Box::pin(sleep(MS * 80));
                futures::future::poll_fn(|cx| {
                    polls.set(polls.get() + 1);
                    if polls.get() == 1 {
                        assert!(short.as_mut().poll(cx).is_pending());
                        // Dropped while registered.
                        short.set(sleep(Duration::from_secs(3600)));
                    }
                    long.as_mut().poll(cx)
                })
                .await;
            }
        });
        task.await;
    });
    assert_eq!(polls.get(), 2, "the task was woken by a dropped timer");
}

#[test]
fn timeout_that_finished_in_time_leaves_no_timer_behind() {
    let polls = Rc::new(Cell::new(0u32));
    run(async {
        let task = spawn({
            let polls = polls.clone();
            async move {
                let mut long = Box::pin(sleep(MS * 60));
                futures::future::poll_fn(|cx| {
                    polls.set(polls.get() + 1);
                    if polls.get() == 1 {
                        // Polls and registers the timeout's sleep (20 ms), then completes.
                        let mut quick = Box::pin(timeout(MS * 20, async {
                            yield_now().await;
                            5
                        }));
                        assert!(quick.as_mut().poll(cx).is_pending());
                        drop(quick);
                    }
                    long.as_mut().poll(cx)
                })
                .await;
            }
        });
        task.await;
    });
    // Poll 1, the yield_now's wake, and the long sleep's wake: never the 20 ms timer.
    assert_eq!(polls.get(), 3);
}

#[test]
fn many_dropped_sleeps_never_wake_the_loop() {
    // Thousands of timers registered by the block_on future and dropped, due from 1 ms to an
    // hour away. Then one 60 ms sleep: only its own deadline may wake the future again.
    let polls = Cell::new(0u32);
    run(async {
        for i in 0..5_000u32 {
            let due = MS * (1 + i % 50) + Duration::from_secs(u64::from(i % 2) * 3600);
            let mut timer = pin!(sleep(due));
            assert!(futures::poll!(timer.as_mut()).is_pending());
        }
        let start = Instant::now();
        let mut last = pin!(sleep(MS * 60));
        futures::future::poll_fn(|cx| {
            polls.set(polls.get() + 1);
            last.as_mut().poll(cx)
        })
        .await;
        assert!(start.elapsed() >= MS * 60);
    });
    assert_eq!(polls.get(), 2, "woken by dropped timers");
}

#[test]
fn sleep_reset_to_an_earlier_deadline_completes_then() {
    run(async {
        let mut timer = pin!(sleep(Duration::from_secs(3600)));
        assert!(futures::poll!(timer.as_mut()).is_pending());
        let start = Instant::now();
        let new_deadline = start + MS * 20;
        timer.as_mut().reset(new_deadline);
        assert_eq!(timer.deadline(), new_deadline);
        // The hang guard (30 s) fails the test if the old deadline still applies.
        timer.await;
        assert!(Instant::now() >= new_deadline);
    });
}

#[test]
fn sleep_reset_to_a_later_deadline_completes_no_earlier() {
    let polls = Rc::new(Cell::new(0u32));
    run(async {
        let mut timer = pin!(sleep(MS * 10));
        assert!(futures::poll!(timer.as_mut()).is_pending());
        let new_deadline = Instant::now() + MS * 60;
        timer.as_mut().reset(new_deadline);
        futures::future::poll_fn(|cx| {
            polls.set(polls.get() + 1);
            timer.as_mut().poll(cx)
        })
        .await;
        assert!(Instant::now() >= new_deadline);
    });
    // The old 10 ms registration was removed: only the new deadline woke the task.
    assert_eq!(polls.get(), 2);
}

#[test]
fn sleep_reset_after_completion_completes_again_at_new_deadline() {
    run(async {
        let mut timer = pin!(sleep(MS * 2));
        timer.as_mut().await;
        assert!(timer.is_elapsed());
        let again = Instant::now() + MS * 10;
        timer.as_mut().reset(again);
        assert!(!timer.is_elapsed());
        timer.as_mut().await;
        assert!(Instant::now() >= again);
    });
}

#[test]
fn deadline_reports_when_the_sleep_completes() {
    let at = Instant::now() + Duration::from_secs(5);
    assert_eq!(sleep_until(at).deadline(), at);
    let before = Instant::now();
    let timer = sleep(MS * 250);
    let after = Instant::now();
    assert!(timer.deadline() >= before + MS * 250);
    assert!(timer.deadline() <= after + MS * 250);
    assert!(!timer.is_elapsed());
}

#[test]
fn sleep_polled_outside_a_loop_panics() {
    let result = std::panic::catch_unwind(|| {
        futures::executor::block_on(sleep(MS * 5));
    });
    let payload = result.unwrap_err();
    assert!(common::panic_message(&*payload).contains("block_on"));
}

#[test]
fn timeout_returns_the_output_when_the_future_finishes_first() {
    run(async {
        assert_eq!(timeout(Duration::from_secs(10), async { 7 }).await, Ok(7));
        let slow = async {
            sleep(MS * 5).await;
            "done"
        };
        assert_eq!(timeout(Duration::from_secs(10), slow).await, Ok("done"));
        // A ready future wins even with a zero duration.
        assert_eq!(timeout(Duration::ZERO, async { 1 }).await, Ok(1));
    });
}

#[test]
fn timeout_gives_elapsed_and_drops_the_future_when_time_is_up() {
    let dropped = Rc::new(Cell::new(false));
    run(async {
        let start = Instant::now();
        let guard = DropFlag(dropped.clone());
        let never = async move {
            let _guard = guard;
            sleep(Duration::from_secs(3600)).await;
        };
        let result = timeout(MS * 20, never).await;
        let _: Elapsed = result.unwrap_err();
        assert!(start.elapsed() >= MS * 20);
    });
    assert!(dropped.get(), "the timed-out future was not dropped");
}

#[test]
fn elapsed_converts_to_a_timed_out_io_error() {
    let elapsed = untangle::block_on(timeout(MS, futures::future::pending::<()>())).unwrap_err();
    assert_eq!(elapsed.to_string(), "deadline has elapsed");
    let err: std::io::Error = elapsed.into();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
fn interval_first_tick_is_immediate_and_later_ticks_are_a_period_apart() {
    let period = MS * 15;
    run(async {
        let mut ticks = interval(period);
        assert_eq!(ticks.period(), period);
        let first = ticks
            .tick()
            .now_or_never()
            .expect("first tick is immediate");
        let mut previous = first;
        for n in 1..=5u32 {
            let scheduled = ticks.tick().await;
            let now = Instant::now();
            assert!(now >= scheduled, "tick {n} came early");
            assert!(scheduled - previous >= period, "ticks closer than a period");
            // On the grid; one later than `first + n * period` only if this thread stalled for
            // more than a period and the tick was skipped.
            assert_eq!((scheduled - first).as_nanos() % period.as_nanos(), 0);
            previous = scheduled;
        }
    });
}

#[test]
fn interval_skips_missed_ticks_instead_of_bursting() {
    let period = MS * 30;
    run(async {
        let mut ticks = interval(period);
        let start = ticks.tick().await;
        // Busy past three and a half periods: ticks at +1, +2 and +3 periods are missed.
        std::thread::sleep(period * 7 / 2);

        // The next tick is due already: it completes at once, without waiting.
        let late = ticks
            .tick()
            .now_or_never()
            .expect("a missed tick completes at once");
        assert_eq!(late, start + period);

        let polled_by = Instant::now();

        // The one after is back on the original grid, at the first grid point after the late
        // tick was taken (+4 periods, or later only if the machine stalled), not a burst of the
        // missed +2 and +3 ticks.
        let next = ticks.tick().await;
        assert!(next >= start + period * 4, "missed ticks came in a burst");
        assert!(next <= polled_by + period);
        assert_eq!((next - start).as_nanos() % period.as_nanos(), 0);
        assert!(Instant::now() >= next);
        let after = ticks.tick().await;
        assert!(after >= next + period);
        assert_eq!((after - start).as_nanos() % period.as_nanos(), 0);
    });
}

#[test]
fn interval_reset_restarts_the_schedule_from_now() {
    let period = MS * 20;
    run(async {
        let mut ticks = interval(period);
        ticks.tick().await;
        let before = Instant::now();
        ticks.reset();
        let next = ticks.tick().await;
        assert!(next >= before + period);
        assert!(Instant::now() >= next);
    });
}

#[test]
fn interval_is_a_stream_of_ticks() {
    run(async {
        let ticks: Vec<Instant> = interval(MS * 3).take(4).collect().await;
        for pair in ticks.windows(2) {
            assert!(pair[1] - pair[0] >= MS * 3);
            assert_eq!((pair[1] - pair[0]).as_nanos() % (MS * 3).as_nanos(), 0);
        }
    });
}

#[test]
fn timers_fire_while_the_loop_also_waits_on_sockets() {
    run(async {
        let (_a, _b) = untangle::net::UnixStream::pair().unwrap();
        let start = Instant::now();
        sleep(MS * 10).await;
        assert!(start.elapsed() >= MS * 10);
        // Many concurrent timers with an fd registered.
        let tasks: Vec<_> = (0..100u32)
            .map(|i| spawn(sleep(Duration::from_micros(u64::from(i) * 97))))
            .collect();
        for task in tasks {
            task.await;
        }
    });
}

#[test]
fn sub_millisecond_sleeps_never_complete_early() {
    // epoll waits in whole milliseconds: the reactor rounds the timeout up, and a sleep
    // that wakes before its deadline must not complete. Odd durations below, at and just
    // above a millisecond boundary.
    run(async {
        let _fd = untangle::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for micros in [1u64, 50, 333, 999, 1000, 1001, 1499, 2001] {
            let duration = Duration::from_nanos(micros * 1000 + 7);
            let start = Instant::now();
            sleep(duration).await;
            let elapsed = start.elapsed();
            assert!(elapsed >= duration, "{duration:?} sleep took {elapsed:?}");
        }
    });
}

#[test]
fn concurrent_sleeps_with_close_deadlines_never_complete_early() {
    run(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..100u64)
            .map(|i| {
                let deadline = start + Duration::from_micros(37 * i + 1);
                spawn(async move {
                    sleep_until(deadline).await;
                    Instant::now() >= deadline
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await);
        }
    });
}

//! Timer behaviour that tokio's `time_sleep.rs`, `time_timeout.rs`, `time_interval.rs` and
//! `time_pause.rs` and async-io's `timer.rs` test, ported to untangle's virtual time
//! (`untangle::time::{pause, resume, advance, now}`): zero and far deadlines, resets of fired
//! and never-polled sleeps, timeouts of ready futures, the interval's missed-tick behaviour
//! (skip), timers across `block_on` calls, and wakers that drop timers.

mod common;

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::run;
use futures_lite::future::poll_once;
use untangle::time::{self, advance, interval, interval_at, sleep, sleep_until, timeout};
use untangle::time::{timeout_at, Sleep};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `future` on a paused clock (tokio's `start_paused = true`), under a watchdog: a timer
/// as the hang guard would be the next deadline the paused clock jumps to.
fn paused<F: Future>(future: F) -> F::Output {
    let _watchdog = common::watchdog("paused");
    untangle::block_on(async {
        time::pause();
        let out = future.await;
        time::resume();
        out
    })
}

fn noop_cx() -> Context<'static> {
    Context::from_waker(futures::task::noop_waker_ref())
}

#[test]
fn sleep_until_now_or_a_past_instant_is_ready_at_the_first_poll_without_a_timer() {
    paused(async {
        let now = time::now();
        for deadline in [now, now - ms(1000)] {
            let mut sleep = pin!(sleep_until(deadline));
            assert!(sleep.is_elapsed());
            assert_eq!(poll_once(sleep.as_mut()).await, Some(()));
            assert_eq!(untangle::stats().timers, 0);
            assert_eq!(time::now(), now);
        }
    });
}

#[test]
fn a_thousand_zero_sleeps_complete_without_moving_the_clock() {
    // tokio: short_sleeps.
    paused(async {
        let start = time::now();
        for _ in 0..1000 {
            sleep(Duration::ZERO).await;
        }
        assert_eq!(time::now(), start);
        assert_eq!(untangle::stats().timers, 0);
    });
}

#[test]
fn is_elapsed_turns_true_when_the_deadline_passes() {
    paused(async {
        let mut sleep = pin!(sleep(ms(10)));
        assert!(!sleep.is_elapsed());
        assert_eq!(poll_once(sleep.as_mut()).await, None);
        assert!(!sleep.is_elapsed());
        sleep.as_mut().await;
        assert!(sleep.is_elapsed());
    });
}

#[test]
fn paused_sleeps_end_exactly_at_their_deadline() {
    // tokio: delayed_sleep_level_0, sub_ms_delayed_sleep, delayed_sleep_wrapping_level_0.
    paused(async {
        for d in [ms(1), ms(10), ms(60), ms(1) + Duration::from_nanos(1)] {
            let start = time::now();
            sleep_until(start + d).await;
            assert_eq!(time::now() - start, d);
        }
    });
}

#[test]
fn far_deadlines_neither_overflow_nor_fire_early() {
    // tokio: exactly_max, no_out_of_bounds_close_to_max, greater_than_max, issue_5183.
    paused(async {
        let start = time::now();
        let max = sleep(Duration::MAX);
        assert!(max.deadline() > start + Duration::from_secs(86_400 * 365 * 20));
        max.await;
        sleep(Duration::MAX - ms(1)).await;
        sleep_until(time::now() + Duration::from_secs(5 * 365 * 86_400)).await;
        // A far sleep loses the race with a 1 ns one.
        let far = sleep(Duration::from_secs(u64::MAX / 10));
        let near = sleep(Duration::from_nanos(1));
        let first = futures_lite::future::or(
            async {
                far.await;
                "far"
            },
            async {
                near.await;
                "near"
            },
        );
        assert_eq!(first.await, "near");
    });
}

#[test]
fn long_sleeps_end_at_their_deadline_to_the_nanosecond() {
    // tokio: multi_long_sleeps, long_sleeps.
    paused(async {
        let start = time::now();
        for _ in 0..5 {
            sleep(Duration::from_secs(365 * 86_400)).await;
        }
        assert_eq!(time::now() - start, Duration::from_secs(5 * 365 * 86_400));
        let deadline = time::now() + Duration::from_secs(10 * 365 * 86_400);
        sleep_until(deadline).await;
        assert_eq!(time::now(), deadline);
    });
}

#[test]
fn a_very_long_sleep_does_not_disturb_other_timers() {
    // tokio: long_wait_sleep_does_not_break_other_timers / _does_not_corrupt_wheel.
    paused(async {
        let far = untangle::spawn(sleep(ms(10 << 36)));
        advance(ms((1 << 30) - 1)).await;
        let start = time::now();
        sleep(ms(10)).await;
        assert_eq!(time::now() - start, ms(10));
        let mut first = Box::pin(sleep(ms(10)));
        let mut second = Box::pin(sleep(ms(20)));
        assert_eq!(poll_once(first.as_mut()).await, None);
        assert_eq!(poll_once(second.as_mut()).await, None);
        advance(ms(30)).await;
        drop(first);
        advance(ms(1 << 31)).await;
        drop(second);
        assert!(!far.is_finished());
        drop(far);
        untangle::yield_now().await;
        assert_eq!(untangle::stats().timers, 0);
    });
}

#[test]
fn reset_before_firing_moves_the_deadline_either_way() {
    // tokio: reset_future_sleep_before_fire, reset_past_sleep_before_turn / _before_fire.
    paused(async {
        let start = time::now();
        let mut s = Box::pin(sleep_until(start + ms(100)));
        assert_eq!(poll_once(s.as_mut()).await, None);
        s.reset(time::now() + ms(200));
        s.as_mut().await;
        assert_eq!(time::now() - start, ms(200));

        let start = time::now();
        let mut s = Box::pin(sleep_until(start + ms(100)));
        assert_eq!(poll_once(s.as_mut()).await, None);
        s.reset(start + ms(80));
        s.as_mut().await;
        assert_eq!(time::now() - start, ms(80));

        let start = time::now();
        let mut s = Box::pin(sleep_until(start + ms(100)));
        assert_eq!(poll_once(s.as_mut()).await, None);
        sleep(ms(10)).await;
        s.reset(start + ms(80));
        s.as_mut().await;
        assert_eq!(time::now() - start, ms(80));
    });
}

#[test]
fn reset_after_firing_or_to_the_past_or_before_any_poll() {
    // tokio: reset_future_sleep_after_fire, reset_sleep_to_past, reset_after_firing.
    paused(async {
        let start = time::now();
        let mut s = Box::pin(sleep_until(start + ms(100)));
        s.as_mut().await;
        s.reset(start + ms(110));
        assert_eq!(s.deadline(), start + ms(110));
        s.as_mut().await;
        assert_eq!(time::now() - start, ms(110));

        // Fired, then polled again: still ready; reset far away: pending, polled twice.
        assert!(s.as_mut().poll(&mut noop_cx()).is_ready());
        s.reset(time::now() + Duration::from_secs(600));
        assert!(s.as_mut().poll(&mut noop_cx()).is_pending());
        assert!(s.as_mut().poll(&mut noop_cx()).is_pending());
        drop(s);
        assert_eq!(untangle::stats().timers, 0);

        // Reset into the past while registered: ready at the next poll, timer gone.
        let start = time::now();
        let mut s = Box::pin(sleep_until(start + ms(100)));
        assert_eq!(poll_once(s.as_mut()).await, None);
        sleep(ms(50)).await;
        s.reset(start + ms(40));
        assert_eq!(poll_once(s.as_mut()).await, Some(()));
        assert_eq!(untangle::stats().timers, 0);

        // Never polled: reset only changes the deadline.
        let start = time::now();
        let mut s = sleep_until(start + ms(100));
        s.reset(start + ms(30));
        s.await;
        assert_eq!(time::now() - start, ms(30));
    });
}

#[test]
fn dropping_a_registered_or_rescheduled_sleep_removes_its_timer() {
    // tokio: drop_after_reschedule_at_new_scheduled_time.
    paused(async {
        let start = time::now();
        let mut a = Box::pin(sleep(ms(5)));
        let mut b = Box::pin(sleep(ms(5)));
        let mut c = Box::pin(sleep(ms(10)));
        for s in [&mut a, &mut b, &mut c] {
            assert_eq!(poll_once(s.as_mut()).await, None);
        }
        assert_eq!(untangle::stats().timers, 3);
        b.reset(start + ms(10));
        a.await;
        drop(b);
        drop(c);
        assert_eq!(untangle::stats().timers, 0);
    });
}

/// A waker that, when woken, drops every sleep in its list (tokio: drop_from_wake).
struct DropTimersOnWake(Arc<Mutex<Vec<Pin<Box<Sleep>>>>>, Arc<AtomicBool>);

impl Wake for DropTimersOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            *self.0.lock().unwrap() = Vec::new();
        }));
        self.1.fetch_or(dropped.is_err(), Ordering::SeqCst);
    }
}

#[test]
fn a_waker_that_drops_timers_when_woken() {
    paused(async {
        let list: Arc<Mutex<Vec<Pin<Box<Sleep>>>>> = Arc::default();
        let panicked = Arc::new(AtomicBool::new(false));
        let waker = Waker::from(Arc::new(DropTimersOnWake(list.clone(), panicked.clone())));
        {
            let mut list = list.lock().unwrap();
            for _ in 0..100 {
                let mut timer = Box::pin(sleep(ms(10)));
                assert!(timer
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending());
                list.push(timer);
            }
        }
        sleep(ms(11)).await;
        assert!(!panicked.load(Ordering::SeqCst));
        assert_eq!(untangle::stats().timers, 0);
    });
}

/// A waker that owns a sleep and drops it with itself (tokio: drop_from_waker_drop).
struct OwnsASleep(Mutex<Option<Pin<Box<Sleep>>>>);

impl Wake for OwnsASleep {
    fn wake(self: Arc<Self>) {}
}

impl Drop for OwnsASleep {
    fn drop(&mut self) {
        drop(self.0.lock().unwrap().take());
    }
}

#[test]
fn a_timer_whose_waker_owns_another_timer_can_be_dropped_or_rewoken() {
    let _watchdog = common::watchdog("a_timer_whose_waker_owns_another_timer");
    run(async {
        let owner = |secondary| Waker::from(Arc::new(OwnsASleep(Mutex::new(Some(secondary)))));
        let registered = || {
            let mut s = Box::pin(sleep(Duration::from_secs(3600)));
            assert!(s.as_mut().poll(&mut noop_cx()).is_pending());
            s
        };
        // Dropping the primary sleep drops its waker, which drops the secondary sleep.
        let waker = owner(registered());
        let mut primary = Box::pin(sleep(Duration::from_secs(3600)));
        assert!(primary
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        drop(waker);
        drop(primary);
        // Polling with another waker replaces (drops) the owning one.
        let waker = owner(registered());
        let mut primary = Box::pin(sleep(Duration::from_secs(3600)));
        assert!(primary
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        drop(waker);
        assert!(primary.as_mut().poll(&mut noop_cx()).is_pending());
        drop(primary);
        assert_eq!(untangle::stats().timers, 0);
    });
}

#[test]
fn timeout_of_a_ready_future_wins_even_with_a_zero_or_past_deadline() {
    // tokio: simultaneous_deadline_future_completion, completed_future_past_deadline.
    paused(async {
        assert_eq!(timeout(Duration::ZERO, async { 1 }).await, Ok(1));
        assert_eq!(timeout_at(time::now(), async { 2 }).await, Ok(2));
        assert_eq!(timeout_at(time::now() - ms(1000), async { 3 }).await, Ok(3));
        assert_eq!(untangle::stats().timers, 0);
    });
}

#[test]
fn timeout_with_a_zero_or_past_deadline_elapses_without_moving_the_clock() {
    // tokio: deadline_now_elapses.
    paused(async {
        let start = time::now();
        assert!(timeout(Duration::ZERO, std::future::pending::<()>())
            .await
            .is_err());
        assert!(timeout_at(start - ms(5), std::future::pending::<()>())
            .await
            .is_err());
        assert_eq!(time::now(), start);
    });
}

#[test]
fn timeout_lets_the_future_finish_until_the_deadline() {
    // tokio: future_and_deadline_in_future, future_and_timeout_in_future, very_large_timeout,
    // deadline_future_elapses.
    paused(async {
        for limit in [ms(100), Duration::MAX] {
            let (tx, rx) = async_channel::bounded::<u8>(1);
            let task = untangle::spawn(timeout(limit, async move { rx.recv().await }));
            advance(ms(90)).await;
            advance(Duration::from_secs(if limit == Duration::MAX {
                86_400 * 3650
            } else {
                0
            }))
            .await;
            assert!(!task.is_finished());
            tx.send(9).await.unwrap();
            assert_eq!(task.await, Ok(Ok(9)));
        }
        let start = time::now();
        let late = untangle::spawn(timeout_at(start + ms(300), std::future::pending::<()>()));
        advance(ms(299)).await;
        assert!(!late.is_finished());
        advance(ms(2)).await;
        assert!(late.is_finished());
        assert!(late.await.is_err());
    });
}

#[test]
fn timeout_fires_while_the_future_keeps_waking_itself() {
    // tokio: timeout_is_not_exhausted_by_future (a future always ready to be polled again).
    run(async {
        let spin = futures_lite::future::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        });
        assert!(timeout(ms(1), spin).await.is_err());
    });
}

#[test]
fn interval_at_skips_missed_ticks_on_the_original_schedule() {
    // tokio: skip (MissedTickBehavior::Skip), on the same timeline.
    paused(async {
        let start = time::now();
        advance(ms(1)).await;
        let mut i = interval_at(start, ms(300));
        let mut cx = noop_cx();
        let mut check = |i: &mut time::Interval, expect: Option<u64>| {
            let got = i.poll_tick(&mut cx).map(|t| t - start);
            assert_eq!(got, expect.map_or(Poll::Pending, |m| Poll::Ready(ms(m))));
        };
        check(&mut i, Some(0));
        advance(ms(100)).await;
        check(&mut i, None);
        advance(ms(200)).await;
        check(&mut i, Some(300));
        advance(ms(650)).await;
        check(&mut i, Some(600));
        advance(ms(250)).await;
        check(&mut i, Some(1200));
        advance(ms(300)).await;
        check(&mut i, Some(1500));
        advance(ms(300)).await;
        check(&mut i, Some(1800));
    });
}

#[test]
fn interval_reset_restarts_from_now_and_far_periods_do_not_overflow() {
    // tokio: reset, reset_doesnt_panic_max_duration, interval_doesnt_panic_max_duration.
    paused(async {
        let start = time::now();
        let mut i = interval(ms(300));
        assert_eq!(i.tick().await, start);
        advance(ms(100)).await;
        i.reset();
        let next = i.tick().await;
        assert_eq!(next - start, ms(400));

        let mut max = interval(Duration::MAX);
        assert!(max.poll_tick(&mut noop_cx()).is_ready());
        assert!(max.poll_tick(&mut noop_cx()).is_pending());
        max.reset();
        assert!(max.poll_tick(&mut noop_cx()).is_pending());
        // Zero is one nanosecond (tokio panics instead).
        let mut zero = interval(Duration::ZERO);
        assert_eq!(zero.period(), Duration::from_nanos(1));
        let first = zero.tick().await;
        assert_eq!(zero.tick().await - first, Duration::from_nanos(1));
    });
}

#[test]
fn paused_time_is_deterministic() {
    // tokio: paused_time_is_deterministic (with a seeded LCG, fewer rounds).
    fn stress() -> Vec<Duration> {
        paused(async {
            let mut seed = 1u64;
            let start = time::now();
            (0..2000)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    Duration::from_nanos((seed >> 33) % 1_000_000_000)
                })
                .collect::<Vec<_>>()
                .into_iter()
                .fold(async { Vec::new() }.boxed_local(), |acc, d| {
                    async move {
                        let mut v = acc.await;
                        sleep(d).await;
                        v.push(time::now() - start);
                        v
                    }
                    .boxed_local()
                })
                .await
        })
    }
    use futures_lite::FutureExt;
    assert_eq!(stress(), stress());
}

#[test]
fn advance_moves_the_clock_by_exactly_its_amount_with_or_without_timers() {
    // tokio: advance_after_poll, sleep_no_poll, sleep_same_task.
    paused(async {
        let start = time::now();
        advance(ms(100)).await;
        assert_eq!(time::now() - start, ms(100));

        let mut s = Box::pin(sleep_until(start + ms(400)));
        assert_eq!(poll_once(s.as_mut()).await, None);
        let before = time::now();
        advance(ms(100)).await;
        assert_eq!(time::now() - before, ms(100));
        assert_eq!(poll_once(s.as_mut()).await, None);

        // Never polled: advancing past its deadline makes it ready at once.
        let unpolled = sleep_until(time::now() + ms(50));
        advance(ms(60)).await;
        assert_eq!(poll_once(unpolled).await, Some(()));
        s.await;
        assert_eq!(time::now() - start, ms(400));
    });
}

#[test]
fn pause_twice_and_pause_inside_a_task_keep_one_clock() {
    // tokio: pause_time_in_task.
    let _watchdog = common::watchdog("pause_twice_and_pause_inside_a_task_keep_one_clock");
    untangle::block_on(async {
        time::pause();
        let at = time::now();
        time::pause();
        assert_eq!(time::now(), at);
        untangle::spawn(async { time::pause() }).await;
        sleep(Duration::from_secs(60)).await;
        assert_eq!(time::now() - at, Duration::from_secs(60));
        time::resume();
        time::resume();
        let real = Instant::now();
        sleep(ms(2)).await;
        assert!(
            real.elapsed() >= ms(2),
            "after resume, sleeps take real time"
        );
    });
}

#[test]
fn timers_created_in_one_block_on_fire_in_the_next() {
    let _watchdog = common::watchdog("timers_created_in_one_block_on_fire_in_the_next");
    let (s, task) = untangle::block_on(async {
        let mut s = Box::pin(sleep(ms(20)));
        assert_eq!(poll_once(s.as_mut()).await, None);
        let task = untangle::spawn(async {
            let start = Instant::now();
            sleep(ms(20)).await;
            start.elapsed()
        });
        untangle::yield_now().await;
        (s, task)
    });
    // Between the calls nothing runs; the deadlines still hold in the next `block_on`.
    let start = Instant::now();
    untangle::block_on(async {
        s.await;
        assert!(task.await >= ms(20));
    });
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn advance_by_duration_max_fires_even_the_farthest_timer() {
    paused(async {
        let forever = untangle::spawn(sleep(Duration::MAX));
        let year = untangle::spawn(sleep(Duration::from_secs(365 * 86_400)));
        untangle::yield_now().await;
        advance(Duration::MAX).await;
        assert!(year.is_finished());
        assert!(
            forever.is_finished(),
            "advance(MAX) left the clock where it was"
        );
    });
}

#[test]
fn advance_inside_a_task_runs_the_tasks_of_due_timers_first() {
    paused(async {
        untangle::spawn(async {
            let start = time::now();
            let due = untangle::spawn(sleep(ms(10)));
            let later = untangle::spawn(sleep(ms(100)));
            untangle::yield_now().await;
            advance(ms(50)).await;
            assert!(due.is_finished(), "the due timer's task ran");
            assert!(!later.is_finished(), "the later one did not");
            assert_eq!(time::now() - start, ms(50));
        })
        .await;
    });
}

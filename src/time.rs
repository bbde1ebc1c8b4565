//! Timers for tasks: [`sleep`], [`sleep_until`], [`timeout`] and [`interval`], and the loop's
//! clock, which tests can pause: [`pause`], [`resume`], [`advance`], [`now`].
//!
//! Timers live in the reactor of the loop that polls them (a sleep polled on another thread's
//! loop moves there); the loop's wait uses the next deadline as its timeout. A sleep never completes before its deadline, and dropping it removes
//! its timer at once.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::Stream;

use crate::clock;
use crate::executor;
use crate::reactor::Reactor;
use crate::timer;

/// Waits until `duration` has passed.
///
/// A zero duration completes at the first poll without registering a timer; one too large for
/// an `Instant` (such as `Duration::MAX`) waits about 30 years, in effect forever, without
/// overflowing.
///
/// # Example
/// ```
/// use std::time::{Duration, Instant};
/// untangle::block_on(async {
///     let start = Instant::now();
///     untangle::time::sleep(Duration::from_millis(10)).await;
///     assert!(start.elapsed() >= Duration::from_millis(10));
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(far_future_saturating(clock::now(), duration))
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        registration: None,
    }
}

/// `now + duration`, or a deadline about 30 years away when that overflows.
fn far_future_saturating(now: Instant, duration: Duration) -> Instant {
    clock::saturating_add(now, duration)
}

/// Future returned by [`sleep`] and [`sleep_until`].
///
/// It must be polled inside an untangle loop ([`block_on`](crate::block_on)); it panics with a
/// clear message otherwise, since no loop would ever fire it.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    registration: Option<(Arc<Reactor>, u64)>,
}

impl Sleep {
    /// The instant at which the sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        clock::now() >= self.deadline
    }

    /// Moves the deadline, even after the sleep completed: it then completes again at the new
    /// deadline.
    ///
    /// A task already waiting on the sleep keeps waiting and is woken at the new deadline,
    /// earlier or later, whichever task (or thread) calls `reset`.
    pub fn reset(&mut self, deadline: Instant) {
        let old = std::mem::replace(&mut self.deadline, deadline);
        if let Some((reactor, id)) = &self.registration {
            let from_elsewhere = executor::running_reactor_id() != reactor.id();
            if !reactor.reset_timer(old, *id, deadline, from_elsewhere) {
                // It fired already; its task was woken and re-registers when it polls.
                self.registration = None;
            }
        }
    }

    fn unregister(&mut self) {
        if let Some((reactor, id)) = self.registration.take() {
            reactor.remove_timer(self.deadline, id);
            timer::drop_removed();
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if clock::now() >= self.deadline {
            self.unregister();
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let here = executor::running_reactor_id();
        if here == 0 {
            panic!(
                "untangle timers must be polled inside untangle::block_on: no loop is running \
                 on this thread to fire them"
            );
        }
        if let Some((reactor, id)) = &self.registration {
            // A sleep fires on the loop that polls it now: one moved to another thread's loop
            // leaves the first (which may be idle or gone).
            if reactor.id() == here {
                let updated = reactor.update_timer(deadline, *id, cx.waker());
                timer::drop_removed();
                if updated {
                    return Poll::Pending;
                }
            } else {
                self.unregister();
            }
        }
        let reactor = executor::current_reactor();
        let id = reactor.insert_timer(deadline, cx.waker());
        self.registration = Some((reactor, id));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// Error returned by [`timeout`] when the deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::ErrorKind::TimedOut.into()
    }
}

/// Runs `future`, giving up after `duration`.
///
/// The future is polled first, so one that is ready at once wins even with a zero duration.
/// When the time is up, the future is dropped (cancelled) and `Err(Elapsed)` returned.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use untangle::time::{sleep, timeout};
/// untangle::block_on(async {
///     assert_eq!(timeout(Duration::from_secs(1), async { 7 }).await, Ok(7));
///     assert!(timeout(Duration::from_millis(1), sleep(Duration::from_secs(60))).await.is_err());
/// });
/// ```
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    race(future, sleep(duration)).await
}

/// Runs `future`, giving up at `deadline` (on the loop's clock, see [`now`]); [`timeout`] with
/// an instant rather than a duration.
///
/// As with `timeout`, the future is polled first: one that is ready at once wins even when the
/// deadline has already passed.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use untangle::time::{self, sleep, timeout_at};
/// untangle::block_on(async {
///     let deadline = time::now() + Duration::from_millis(1);
///     assert!(timeout_at(deadline, sleep(Duration::from_secs(60))).await.is_err());
/// });
/// ```
pub async fn timeout_at<F: Future>(deadline: Instant, future: F) -> Result<F::Output, Elapsed> {
    race(future, sleep_until(deadline)).await
}

async fn race<F: Future>(future: F, timer: Sleep) -> Result<F::Output, Elapsed> {
    let value = async { Ok(future.await) };
    let expired = async {
        timer.await;
        Err(Elapsed(()))
    };
    futures_lite::future::or(value, expired).await
}

/// Returns an [`Interval`] that ticks at once, then every `period`.
///
/// Missed ticks are skipped, not burst (tokio's `MissedTickBehavior::Skip`; tokio defaults to
/// `Burst`): if the task was busy past one or more ticks, the next [`tick`](Interval::tick)
/// completes at once, returning the first missed tick's instant, and later ticks stay on the
/// original schedule (`start + n * period`), the next one being the first still in the future.
/// So a slow consumer never gets a burst of immediate ticks. A zero `period` is treated as one
/// nanosecond (tokio panics).
///
/// # Example
/// ```
/// use std::time::Duration;
/// untangle::block_on(async {
///     let mut every = untangle::time::interval(Duration::from_millis(5));
///     let first = every.tick().await;
///     let second = every.tick().await;
///     assert!(second - first >= Duration::from_millis(5));
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(clock::now(), period)
}

/// Returns an [`Interval`] whose first tick is at `start`, then every `period` (tokio's
/// `interval_at`); missed ticks are skipped as with [`interval`].
///
/// # Example
/// ```
/// use std::time::Duration;
/// use untangle::time::{self, interval_at};
/// untangle::block_on(async {
///     let start = time::now() + Duration::from_millis(2);
///     let mut every = interval_at(start, Duration::from_millis(5));
///     assert_eq!(every.tick().await, start);
/// });
/// ```
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    let period = period.max(Duration::from_nanos(1));
    Interval {
        period,
        sleep: sleep_until(start),
    }
}

/// A stream of instants `period` apart; see [`interval`].
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    sleep: Sleep,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        futures_lite::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let scheduled = self.sleep.deadline();
        let now = clock::now();
        let mut next = far_future_saturating(scheduled, self.period);
        if next <= now {
            // Skip the ticks we missed, staying on the original grid.
            let behind = (now - next).as_nanos() / self.period.as_nanos() + 1;
            let skip = u32::try_from(behind).unwrap_or(u32::MAX);
            next = self
                .period
                .checked_mul(skip)
                .and_then(|d| next.checked_add(d))
                .unwrap_or_else(|| far_future_saturating(now, self.period));
        }
        self.sleep.reset(next);
        Poll::Ready(scheduled)
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        self.sleep
            .reset(far_future_saturating(clock::now(), self.period));
    }
}

impl Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}

/// The current instant on this thread's loop clock: `Instant::now()` unless the clock was
/// [`pause`]d, in which case it is virtual time.
///
/// Every untangle timer measures its deadline on this clock — [`sleep`], [`timeout`],
/// [`interval`], and the HTTP server's and client's timeouts — so code that computes its own
/// deadlines for them should use this rather than `Instant::now()`.
pub fn now() -> Instant {
    clock::now()
}

/// Pauses this thread's loop clock: virtual time for tests.
///
/// While paused, the clock stands still except when [`advance`] moves it and when the loop has
/// nothing to do: no task is ready and the reactor, checked without blocking, has no I/O event.
/// Then the clock jumps straight to the next timer's deadline and fires it. So a test of a
/// 30-second keep-alive timeout runs in microseconds, deterministically.
///
/// The clock belongs to the calling thread's loop; other threads' loops keep real time.
/// Real I/O goes on underneath: a socket that stays silent while the loop is otherwise idle
/// lets the clock jump to the next timer — that is the point (the test of a read timeout
/// expects exactly that), but it also means that a reply that takes real time to arrive (a peer
/// in another thread or process, a blocking-pool job) races against virtual timeouts. Pausing
/// an already paused clock does nothing.
///
/// # Example
/// ```
/// use std::time::{Duration, Instant};
/// use untangle::time::{self, sleep};
///
/// untangle::block_on(async {
///     time::pause();
///     let (real, virt) = (Instant::now(), time::now());
///     sleep(Duration::from_secs(3600)).await; // returns at once, an hour later
///     assert_eq!(time::now() - virt, Duration::from_secs(3600));
///     assert!(real.elapsed() < Duration::from_secs(60));
///     time::resume();
/// });
/// ```
pub fn pause() {
    clock::pause();
}

/// Lets this thread's loop clock run at real speed again, from the reading it had paused at
/// (so deadlines taken on it stay consistent: none fires early). Does nothing if the clock is
/// not paused.
pub fn resume() {
    clock::resume();
}

/// Moves this thread's paused clock forward by `duration` (a duration too large for an
/// `Instant`, such as `Duration::MAX`, moves it about 30 years: past every `sleep(d)` of any
/// `d`, though not past a `sleep_until` deadline set farther out), then yields so that the tasks of
/// every timer now due run before this one continues. Timers due later stay pending.
///
/// # Panics
/// When the clock is not paused (call [`pause`] first): advancing real time is not possible.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use untangle::time;
///
/// untangle::block_on(async {
///     time::pause();
///     let short = untangle::spawn(time::sleep(Duration::from_secs(10)));
///     let long = untangle::spawn(time::sleep(Duration::from_secs(60)));
///     time::advance(Duration::from_secs(30)).await;
///     assert!(short.is_finished() && !long.is_finished());
/// });
/// ```
pub async fn advance(duration: Duration) {
    if !clock::is_paused() {
        panic!("untangle::time::advance needs a paused clock: call untangle::time::pause() first");
    }
    clock::advance(duration);
    // The first yield lets the loop fire the due timers; the second lets the tasks they woke
    // run before this one goes on (the `block_on` future takes its turn after the tasks that
    // were queued when it yielded, which the first yield's wakes were not yet).
    crate::yield_now().await;
    crate::yield_now().await;
}

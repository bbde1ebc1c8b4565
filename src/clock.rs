//! The loop's clock: real time, or virtual time for tests (`time::pause`).
//!
//! Per thread, like the loop itself. Unpaused and never paused, [`now`] is `Instant::now()` after
//! one thread-local read. Once paused, the clock stands still until `advance` moves it or the
//! reactor, finding nothing to do, jumps it to the next timer; after `resume` it runs at real
//! speed again from wherever it stood, so deadlines taken on it stay consistent: no timer fires
//! early on either side of a pause.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The clock of one thread, when it has ever been paused.
#[derive(Clone, Copy)]
struct Virtual {
    /// The clock's reading at `at`.
    base: Instant,
    /// The real instant `base` was taken at.
    at: Instant,
    paused: bool,
}

thread_local! {
    static CLOCK: Cell<Option<Virtual>> = const { Cell::new(None) };
}

/// The current instant on this thread's loop clock.
pub(crate) fn now() -> Instant {
    match CLOCK.with(Cell::get) {
        None => Instant::now(),
        Some(v) if v.paused => v.base,
        Some(v) => v.base + v.at.elapsed(),
    }
}

/// Whether this thread's clock is paused.
pub(crate) fn is_paused() -> bool {
    CLOCK.with(Cell::get).is_some_and(|v| v.paused)
}

/// Stops the clock at its current reading; false if it was already paused.
pub(crate) fn pause() -> bool {
    let base = now();
    CLOCK.with(|c| {
        let was = c.get().is_some_and(|v| v.paused);
        c.set(Some(Virtual {
            base,
            at: Instant::now(),
            paused: true,
        }));
        !was
    })
}

/// Lets the clock run at real speed again from its current reading; false if it was not paused.
pub(crate) fn resume() -> bool {
    CLOCK.with(|c| match c.get() {
        Some(v) if v.paused => {
            c.set(Some(Virtual {
                base: v.base,
                at: Instant::now(),
                paused: false,
            }));
            true
        }
        _ => false,
    })
}

/// How far "forever" is: the deadline of a sleep whose duration overflows `Instant`.
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `at + by`, or about 30 years after `at` when that overflows (`Duration::MAX`).
pub(crate) fn saturating_add(at: Instant, by: Duration) -> Instant {
    at.checked_add(by)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}

/// Moves a paused clock forward by `by`; a duration too large for an `Instant` moves it as far
/// as the farthest deadline a `sleep` can have, so `advance(Duration::MAX)` fires every
/// `sleep`, however long (a `sleep_until` more than 30 years out stays pending).
pub(crate) fn advance(by: Duration) {
    CLOCK.with(|c| {
        if let Some(mut v) = c.get().filter(|v| v.paused) {
            v.base = saturating_add(v.base, by);
            c.set(Some(v));
        }
    });
}

/// Moves a paused clock forward to `to`, if that is later than its reading.
pub(crate) fn advance_to(to: Instant) {
    CLOCK.with(|c| {
        if let Some(mut v) = c.get().filter(|v| v.paused) {
            if to > v.base {
                v.base = to;
                c.set(Some(v));
            }
        }
    });
}

//! Helpers shared by the integration tests: hang guards and panic-payload inspection.
//!
//! Each test binary uses only some of these.
#![allow(dead_code)]

use std::any::Any;
use std::future::Future;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The generous upper bound every test gets before it is declared hung.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// Runs `future` inside the loop's own timer-based hang guard.
///
/// Timers are served by the same loop, so this cannot catch a loop that never wakes up at all
/// (a timer would wake it and hide a lost wake-up); tests of wake-ups use [`watchdog`] instead.
pub async fn within<F: Future>(future: F) -> F::Output {
    untangle::time::timeout(HANG_GUARD, future)
        .await
        .expect("test did not finish within the 30 s hang guard")
}

/// `block_on(within(future))`.
pub fn run<F: Future>(future: F) -> F::Output {
    untangle::block_on(within(future))
}

/// A thread that aborts the whole test process if it is not dropped within [`HANG_GUARD`].
///
/// Unlike [`within`] it does not rely on the loop waking up, so it catches lost wake-ups and
/// starved timers. Aborting is the only way another thread can end a hung test.
pub struct Watchdog {
    _done: mpsc::Sender<()>,
}

pub fn watchdog(test: &'static str) -> Watchdog {
    let (done, wait) = mpsc::channel::<()>();
    thread::Builder::new()
        .name(format!("watchdog-{test}"))
        .spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(HANG_GUARD) {
                eprintln!("watchdog: `{test}` still running after {HANG_GUARD:?}: hung, aborting");
                std::process::abort();
            }
        })
        .expect("spawn watchdog thread");
    Watchdog { _done: done }
}

/// The message of a panic payload (`&str` or `String`), or an empty string.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::new()
    }
}

/// Sets a shared flag when dropped: shows that a future's destructors ran.
pub struct DropFlag(pub std::rc::Rc<std::cell::Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

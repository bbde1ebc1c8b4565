//! The portable backend: `polling`'s own API only, so it runs wherever polling does (epoll,
//! kqueue, event ports) — the backend on every platform but Linux, and on Linux with
//! `UNTANGLE_REACTOR=polling`.
//!
//! Each fd is added once, edge-triggered where the poller supports it
//! (`Poller::supports_edge`), else one-shot: then a direction that a task waits for is re-armed
//! with `Poller::modify` when the task parks (see `Source::poll_ready`), and an event disarms
//! the whole registration. Waits are `Poller::wait` and cross-thread wakes `Poller::notify`.
//!
//! polling reports a hang-up (`Event::is_interrupt`) but not a half-close (`EPOLLRDHUP` or
//! kqueue's `EV_EOF` on a read filter), so "data and FIN in one edge" looks like plain data:
//! readers on this backend clear readiness only on `WouldBlock`, never on a short read
//! (correctness before syscalls).
//!
//! This file holds the crate's only `unsafe` code: `Poller::add_with_mode` is an `unsafe fn`
//! (polling cannot check that a source is deleted before it is closed).

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use polling::{Event, PollMode, Poller};

use super::event::Readiness;

/// The portable backend of one reactor.
pub(super) struct Portable {
    poller: Poller,
    mode: PollMode,
}

/// Events of one wait.
pub(super) type Events = polling::Events;

impl Portable {
    /// `oneshot` forces one-shot mode even where edge-triggering is supported (to test that
    /// path on Linux).
    pub(super) fn new(poller: Poller, oneshot: bool) -> Portable {
        let mode = if poller.supports_edge() && !oneshot {
            PollMode::Edge
        } else {
            PollMode::Oneshot
        };
        Portable { poller, mode }
    }

    pub(super) fn events(capacity: usize) -> Events {
        polling::Events::with_capacity(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN))
    }

    /// Whether an event disarms the registration until [`rearm`](Self::rearm).
    pub(super) fn is_oneshot(&self) -> bool {
        self.mode == PollMode::Oneshot
    }

    /// Registers `fd` for both directions.
    pub(super) fn add(&self, fd: BorrowedFd<'_>, key: usize) -> io::Result<()> {
        // SAFETY: polling requires the source to be deleted from this poller before it is
        // closed. Every registration belongs to an `Async<T>`, which owns (or borrows for its
        // whole life) the object holding the fd and calls `delete` with it in `Drop`,
        // `into_inner` and when it moves to another loop, always while the fd is still open;
        // the poller itself outlives every registration (each `Source` holds an `Arc` to its
        // reactor). What the types do not stop: safe code that closes the fd behind `Async`'s
        // back (through the `&mut T` the `Read`/`Write` impls hand out, `mem::forget` of an
        // `Async` over a borrowed fd, an `AsFd` that changes its fd). On the pollers polling
        // uses on Unix (epoll, kqueue, event ports) such a stale registration only yields
        // spurious or lost events, which the reactor tolerates (unknown keys are ignored, a
        // stale key is never acted on for another source), not memory unsafety.
        #[allow(unsafe_code)]
        unsafe {
            self.poller
                .add_with_mode(fd.as_raw_fd(), Event::all(key), self.mode)
        }
    }

    /// Re-arms a one-shot registration for the directions given.
    pub(super) fn rearm(
        &self,
        fd: BorrowedFd<'_>,
        key: usize,
        read: bool,
        write: bool,
    ) -> io::Result<()> {
        self.poller
            .modify_with_mode(fd, Event::new(key, read, write), self.mode)
    }

    pub(super) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.poller.delete(fd)
    }

    /// One `Poller::wait`; `None` waits until an event or a notification.
    pub(super) fn wait(&self, events: &mut Events, timeout: Option<Duration>) {
        events.clear();
        if let Err(err) = self.poller.wait(events, timeout) {
            log::error!("untangle: polling's wait failed: {err}");
        }
    }

    /// Calls `f` with the key and readiness of every event of the last wait.
    pub(super) fn dispatch(events: &Events, mut f: impl FnMut(usize, Readiness)) {
        for event in events.iter() {
            let hup = event.is_interrupt();
            f(
                event.key,
                Readiness {
                    readable: event.readable || hup,
                    writable: event.writable || hup,
                    read_closed: hup,
                    // Short reads never clear readiness on this backend.
                    urgent: false,
                },
            );
        }
    }

    pub(super) fn notify(&self) -> io::Result<()> {
        self.poller.notify()
    }
}

//! The Linux backend: registrations and waits made directly on the epoll instance that
//! `polling::Poller` created and owns, through rustix's safe wrappers.
//!
//! # Why not `Poller::wait` and `Poller::notify`
//! polling 3.11 keeps a timerfd and a notifier eventfd on its epoll instance, both one-shot.
//! Every `Poller::wait` therefore makes five syscalls whatever the timeout: `timerfd_settime`,
//! an `epoll_ctl` re-arming the timerfd, `epoll_pwait`, a `read` of the notifier and an
//! `epoll_ctl` re-arming it. And it registers readability as `IN|HUP|ERR|PRI`, never
//! `EPOLLRDHUP`, so a caller cannot tell "data" from "data and the peer's FIN" in one edge.
//!
//! This backend uses the Poller only for its epoll fd (`AsFd`). Each fd is registered once with
//! `IN|OUT|RDHUP|PRI|ET` (`PRI`: TCP urgent data, after which short reads prove nothing); a
//! wait is one `epoll_wait`, its timeout the next timer deadline rounded up to whole
//! milliseconds (so it never ends before the deadline); another thread interrupts it
//! with one `write` to our own edge-triggered eventfd, which is never read (every write is a new
//! edge whatever the counter holds). Measured with `strace -c -f` on `examples/plaintext.rs`
//! under `wrk`: a keep-alive request costs 2.04 syscalls at c=64 and 3.00 at c=1 this way, 2.88
//! and 3.64 through polling's own API.
//!
//! polling's internal fds keep their key (`usize::MAX`) and are never armed here (their
//! one-shot registrations fire only after `Poller::wait` arms the timer or `Poller::notify`
//! writes the notifier, and neither is called), so their events cannot appear; the reactor
//! ignores unknown keys anyway.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use polling::Poller;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{eventfd, EventfdFlags, Timespec};
use rustix::io::Errno;

use super::event::Readiness;

/// The key of our notification eventfd (polling's own internal fds use `usize::MAX`).
const NOTIFY_KEY: u64 = u64::MAX - 1;

/// The longest wait timeout, in milliseconds: `epoll_pwait` takes an `int`. A longer sleep just
/// waits again; a wait that ends before the deadline fires nothing.
const MAX_TIMEOUT_MS: u128 = i32::MAX as u128;

/// The epoll backend of one reactor.
pub(super) struct Epoll {
    poller: Poller,
    /// Written by other threads to interrupt a wait; registered edge-triggered, never read.
    notify: OwnedFd,
}

/// Events of one wait.
pub(super) type Events = Vec<epoll::Event>;

impl Epoll {
    pub(super) fn new(poller: Poller) -> io::Result<Epoll> {
        let notify = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            poller.as_fd(),
            &notify,
            EventData::new_u64(NOTIFY_KEY),
            EventFlags::IN | EventFlags::ET,
        )?;
        Ok(Epoll { poller, notify })
    }

    pub(super) fn events(capacity: usize) -> Events {
        Vec::with_capacity(capacity.max(1))
    }

    /// Registers `fd` once: both directions, read hang-up and urgent data, edge-triggered.
    pub(super) fn add(&self, fd: BorrowedFd<'_>, key: usize) -> io::Result<()> {
        let interest =
            EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::PRI | EventFlags::ET;
        epoll::add(
            self.poller.as_fd(),
            fd,
            EventData::new_u64(key as u64),
            interest,
        )?;
        Ok(())
    }

    pub(super) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        epoll::delete(self.poller.as_fd(), fd)?;
        Ok(())
    }

    /// One `epoll_wait`; `None` waits until an event or a notification.
    pub(super) fn wait(&self, events: &mut Events, timeout: Option<Duration>) {
        let timespec = timeout.map(timeout_ms);
        events.clear();
        match epoll::wait(
            self.poller.as_fd(),
            rustix::buffer::spare_capacity(events),
            timespec.as_ref(),
        ) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(err) => log::error!("untangle: epoll_wait failed: {err}"),
        }
    }

    /// Calls `f` with the key and readiness of every event of the last wait but notifications.
    pub(super) fn dispatch(events: &Events, mut f: impl FnMut(usize, Readiness)) {
        for event in events {
            let key = event.data.u64();
            if key >= NOTIFY_KEY {
                continue;
            }
            let flags = event.flags;
            let hup = flags.intersects(EventFlags::HUP | EventFlags::ERR);
            f(
                key as usize,
                Readiness {
                    readable: hup
                        || flags.intersects(EventFlags::IN | EventFlags::RDHUP | EventFlags::PRI),
                    writable: hup || flags.contains(EventFlags::OUT),
                    read_closed: flags.intersects(EventFlags::RDHUP | EventFlags::HUP),
                    urgent: flags.contains(EventFlags::PRI),
                },
            );
        }
    }

    /// Interrupts the current or next wait: one eventfd write, a new edge each time.
    pub(super) fn notify(&self) -> io::Result<()> {
        let one = 1u64.to_ne_bytes();
        match rustix::io::write(&self.notify, &one) {
            // The counter is full (after ~2^64 notifications): reset it and notify again.
            Err(Errno::AGAIN) => {
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(&self.notify, &mut buf);
                rustix::io::write(&self.notify, &one)?;
                Ok(())
            }
            other => other.map(drop).map_err(Into::into),
        }
    }
}

/// Rounds a wait timeout up to whole milliseconds, the resolution of `epoll_pwait`, so that the
/// wait cannot end before the deadline it was computed from.
fn timeout_ms(timeout: Duration) -> Timespec {
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(MAX_TIMEOUT_MS) as i64;
    Timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_timeouts_round_up_to_whole_milliseconds() {
        let ms = |t: Timespec| t.tv_sec * 1000 + t.tv_nsec / 1_000_000;
        assert_eq!(ms(timeout_ms(Duration::ZERO)), 0);
        assert_eq!(ms(timeout_ms(Duration::from_nanos(1))), 1);
        assert_eq!(ms(timeout_ms(Duration::from_micros(999))), 1);
        assert_eq!(ms(timeout_ms(Duration::from_millis(1))), 1);
        assert_eq!(ms(timeout_ms(Duration::from_micros(1001))), 2);
        assert_eq!(ms(timeout_ms(Duration::from_millis(2500))), 2500);
        assert_eq!(timeout_ms(Duration::from_millis(2500)).tv_nsec, 500_000_000);
        assert_eq!(
            ms(timeout_ms(Duration::from_secs(u64::MAX))),
            i64::from(i32::MAX)
        );
    }
}

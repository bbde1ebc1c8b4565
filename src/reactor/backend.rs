//! The seam between the reactor and its backends: the three operations that differ — register, wait, notify — dispatched to the epoll backend or
//! the portable one. Everything else (readiness caching, wakers, timers) is shared, in `mod.rs`.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

#[cfg(any(target_os = "linux", target_os = "android"))]
use super::epoll;
use super::event::Readiness;
use super::portable;

/// The environment variable that selects the backend.
const BACKEND_VAR: &str = "UNTANGLE_REACTOR";

/// How a reactor registers, waits and notifies.
pub(super) enum Backend {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll(epoll::Epoll),
    Portable(portable::Portable),
}

/// Events of one wait, in the backend's own form.
pub(super) enum Events {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll(epoll::Events),
    Portable(portable::Events),
}

impl Backend {
    /// The backend `UNTANGLE_REACTOR` asks for, on a new Poller.
    pub(super) fn from_env() -> io::Result<Backend> {
        let poller = polling::Poller::new()?;
        let choice = std::env::var(BACKEND_VAR).unwrap_or_default();
        match choice.as_str() {
            "polling" => return Ok(Backend::Portable(portable::Portable::new(poller, false))),
            "polling-oneshot" => {
                return Ok(Backend::Portable(portable::Portable::new(poller, true)))
            }
            "" | "epoll" => {}
            other => log::warn!(
                "untangle: {BACKEND_VAR}={other:?} is not a reactor backend (expected `epoll`, \
                 `polling` or `polling-oneshot`); using the default"
            ),
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return Ok(Backend::Epoll(epoll::Epoll::new(poller)?));
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        Ok(Backend::Portable(portable::Portable::new(poller, false)))
    }

    pub(super) fn add(&self, fd: BorrowedFd<'_>, key: usize) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll(b) => b.add(fd, key),
            Backend::Portable(b) => b.add(fd, key),
        }
    }

    pub(super) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll(b) => b.delete(fd),
            Backend::Portable(b) => b.delete(fd),
        }
    }

    pub(super) fn events(&self, capacity: usize) -> Events {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll(_) => Events::Epoll(epoll::Epoll::events(capacity)),
            Backend::Portable(_) => Events::Portable(portable::Portable::events(capacity)),
        }
    }

    pub(super) fn wait(&self, events: &mut Events, timeout: Option<Duration>) {
        match (self, events) {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            (Backend::Epoll(b), Events::Epoll(events)) => b.wait(events, timeout),
            (Backend::Portable(b), Events::Portable(events)) => b.wait(events, timeout),
            #[allow(unreachable_patterns)]
            _ => unreachable!("a loop's event buffer comes from its own reactor"),
        }
    }

    pub(super) fn notify(&self) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll(b) => b.notify(),
            Backend::Portable(b) => b.notify(),
        }
    }

    /// The portable backend in one-shot mode, which must re-arm after each event.
    pub(super) fn oneshot(&self) -> Option<&portable::Portable> {
        match self {
            Backend::Portable(b) if b.is_oneshot() => Some(b),
            _ => None,
        }
    }
}

impl Events {
    pub(super) fn dispatch(&self, f: impl FnMut(usize, Readiness)) {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Events::Epoll(events) => epoll::Epoll::dispatch(events, f),
            Events::Portable(events) => portable::Portable::dispatch(events, f),
        }
    }
}

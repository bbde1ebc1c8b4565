//! Unix signals as futures and streams: [`ctrl_c`] and [`signal`].
//!
//! Built on `signal-hook`'s self-pipe registration: the signal handler only writes one byte into
//! a Unix socket pair (`send` with `MSG_DONTWAIT`, async-signal-safe); the read end is an
//! ordinary [`UnixStream`] on the loop that created the [`Signals`], which wakes the task. No
//! work is ever done inside the signal handler, and no `unsafe` is needed here.
//!
//! Any thread's loop may await signals; a signal is delivered to every live [`Signals`] that
//! listens for it, on whichever loops they live.
//!
//! # After the last listener is dropped
//! Dropping a [`Signals`] removes its registration, but `signal-hook` leaves its process-wide
//! handler installed: from then on, a signal nobody listens for is *ignored* rather than given
//! its default action (for `SIGINT`/`SIGTERM`, terminating the process). Keep a listener alive
//! for as long as the program should react to a signal.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::io::AsyncRead;
use futures_lite::{Stream, StreamExt};
use signal_hook::SigId;

use crate::net::UnixStream;

pub use signal_hook::consts::signal::{
    SIGALRM, SIGCHLD, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
};

/// Completes at the next `SIGINT` (Ctrl-C in a terminal).
///
/// The handler is registered when `ctrl_c()` is called, not when the future is first polled,
/// so a Ctrl-C in between is not lost; it is unregistered when the future is dropped (see the [module docs](self) for what that means for later Ctrl-Cs).
///
/// # Errors
/// Fails if the socket pair cannot be created or the handler cannot be installed, or if the
/// listener fails later (never reported as a Ctrl-C).
///
/// # Panics
/// Awaited outside a running untangle loop, as [`Signals`].
///
/// # Example
/// ```no_run
/// untangle::block_on(async {
///     untangle::signal::ctrl_c().await?;
///     log::info!("Ctrl-C: shutting down");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub fn ctrl_c() -> impl std::future::Future<Output = io::Result<()>> {
    let signals = signal(SIGINT);
    async move {
        let mut signals = signals?;
        match signals.next().await {
            Some(_) => Ok(()),
            // Never a Ctrl-C that did not come: a failed stream is an error.
            None => Err(io::Error::other("untangle: the SIGINT listener failed")),
        }
    }
}

/// Listens for the signal `sig` (e.g. [`SIGTERM`]) on the current thread's loop: the returned
/// [`Signals`] yields `sig` each time it arrives.
///
/// # Errors
/// `InvalidInput` for signals that cannot be handled (`SIGKILL`, `SIGSTOP`, `SIGSEGV`,
/// `SIGILL`, `SIGFPE`) or out of range; otherwise whatever creating the socket pair or
/// installing the handler fails with.
///
/// # Example
/// ```
/// use futures_lite::StreamExt;
/// use untangle::signal::{signal, SIGUSR1};
///
/// untangle::block_on(async {
///     let mut usr1 = signal(SIGUSR1)?;
///     signal_hook::low_level::raise(SIGUSR1)?; // as `kill -USR1 <pid>` would
///     assert_eq!(usr1.next().await, Some(SIGUSR1));
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub fn signal(sig: i32) -> io::Result<Signals> {
    Signals::new([sig])
}

/// A stream of arriving signals (their numbers), from [`signal`] or [`Signals::new`].
///
/// Each delivery of a listened-for signal yields its number once. Like the kernel, which merges
/// a signal that arrives while the same one is still pending, `Signals` may merge deliveries
/// that come faster than they are read (the socket buffer holds thousands). The stream ends
/// (`None`) only if reading the socket fails, which should not happen. It is driven by the loop
/// that polls it (it may move to another thread's loop). Dropping it unregisters its handlers.
///
/// # Panics
/// Polled where no untangle loop runs (outside [`block_on`](crate::block_on), say in another
/// executor) it still yields a delivery already queued, but panics instead of waiting for one,
/// as a timer does: nothing there would wake it. (tokio panics at creation outside a runtime;
/// here creating one registers it with the thread's loop, which works once that loop runs.)
pub struct Signals {
    entries: Vec<Entry>,
    /// Where the next poll starts, so one busy signal cannot hide another.
    next: usize,
}

/// One signal's registration and the read end of its socket pair.
struct Entry {
    signal: i32,
    reader: UnixStream,
    id: SigId,
    /// Deliveries read from the socket but not yet yielded.
    pending: usize,
}

impl Signals {
    /// Listens for each signal in `signals` (the stream yields which one arrived); one named
    /// twice is listened for once.
    ///
    /// # Errors
    /// As [`signal`]; on an error, nothing stays registered.
    ///
    /// # Example
    /// ```no_run
    /// use futures_lite::StreamExt;
    /// use untangle::signal::{Signals, SIGINT, SIGTERM};
    ///
    /// untangle::block_on(async {
    ///     let mut stop = Signals::new([SIGINT, SIGTERM])?;
    ///     let which = stop.next().await;
    ///     log::info!("got signal {which:?}, stopping");
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn new(signals: impl IntoIterator<Item = i32>) -> io::Result<Signals> {
        // A signal named twice is listened for once: each delivery yields it once, as in
        // signal-hook's own `Signals`.
        let mut unique: Vec<i32> = Vec::new();
        for sig in signals {
            if !unique.contains(&sig) {
                unique.push(sig);
            }
        }
        let signals = unique;
        // `signal-hook` panics on these; report them as an error instead, before registering
        // anything.
        if let Some(bad) = signals
            .iter()
            .find(|s| signal_hook::consts::FORBIDDEN.contains(s) || !(1..=64).contains(*s))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("signal {bad} cannot be handled"),
            ));
        }
        // Entries go straight into `Signals`, so an error part-way unregisters the earlier ones.
        let mut this = Signals {
            entries: Vec::with_capacity(signals.len()),
            next: 0,
        };
        for signal in signals {
            let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
            // Register the read end with the loop first: if that fails, no handler is left.
            let reader = UnixStream::try_from(reader)?;
            let id = signal_hook::low_level::pipe::register(signal, writer)?;
            this.entries.push(Entry {
                signal,
                reader,
                id,
                pending: 0,
            });
        }
        Ok(this)
    }

    /// Waits for the next signal; `None` only if the stream has failed.
    pub async fn recv(&mut self) -> Option<i32> {
        self.next().await
    }
}

impl Stream for Signals {
    type Item = i32;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<i32>> {
        let this = self.get_mut();
        // Outside a loop nothing would wake us: read what is queued directly, and panic rather
        // than hang (or end the stream, which `ctrl_c` would take for a Ctrl-C) if nothing is.
        let in_loop = crate::executor::is_running();
        let count = this.entries.len();
        for step in 0..count {
            let at = (this.next + step) % count;
            let entry = &mut this.entries[at];
            if entry.pending == 0 {
                let mut buf = [0u8; 64];
                let read = if in_loop {
                    Pin::new(&mut entry.reader).poll_read(cx, &mut buf)
                } else {
                    // No loop to come back through: an interrupted read is retried here.
                    loop {
                        match read_queued(&entry.reader, &mut buf) {
                            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                            result => break Poll::Ready(result),
                        }
                    }
                };
                match read {
                    Poll::Ready(Ok(0)) => {
                        log::error!("untangle: signal {} pipe closed", entry.signal);
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Ok(n)) => entry.pending = n,
                    Poll::Ready(Err(err)) if err.kind() == io::ErrorKind::Interrupted => {
                        cx.waker().wake_by_ref();
                        continue;
                    }
                    Poll::Ready(Err(err))
                        if !in_loop && err.kind() == io::ErrorKind::WouldBlock =>
                    {
                        continue
                    }
                    Poll::Ready(Err(err)) => {
                        log::error!("untangle: reading signal {} failed: {err}", entry.signal);
                        return Poll::Ready(None);
                    }
                    Poll::Pending => continue,
                }
            }
            entry.pending -= 1;
            this.next = (at + 1) % count;
            return Poll::Ready(Some(entry.signal));
        }
        if !in_loop {
            panic!(
                "untangle signals must be awaited inside untangle::block_on: no loop is running \
                 on this thread to deliver them"
            );
        }
        Poll::Pending
    }
}

/// A non-blocking read of the deliveries already queued in `reader`, without the loop.
fn read_queued(reader: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    use rustix::net::{recv, RecvFlags};
    Ok(recv(reader, buf, RecvFlags::DONTWAIT)?.0)
}

impl Drop for Signals {
    fn drop(&mut self) {
        for entry in &self.entries {
            // Drops the action, which closes the write end.
            signal_hook::low_level::unregister(entry.id);
        }
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals")
            .field(
                "signals",
                &self.entries.iter().map(|e| e.signal).collect::<Vec<_>>(),
            )
            .finish()
    }
}

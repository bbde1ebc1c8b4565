//! `untangle::signal`: `signal`, `Signals` and `ctrl_c`.
//!
//! Signals are process-wide and the tests of one binary share a process, so every test here
//! holds `SERIAL` and raises only signals it listens for (`SIGUSR1`, `SIGUSR2`, and `SIGINT`
//! while a `ctrl_c` future is registered: once registered, `signal-hook` keeps its handler, so
//! a stray signal is ignored rather than killing the process). `raise` delivers the signal to
//! the calling thread before it returns, which makes counts exact.

mod common;

use std::sync::{mpsc, Barrier, Mutex, MutexGuard};
use std::thread;

use common::{run, watchdog, HANG_GUARD};
use futures_lite::{future, StreamExt};
use signal_hook::low_level::raise;
use untangle::signal::{ctrl_c, signal, Signals, SIGINT, SIGUSR1, SIGUSR2};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn each_delivery_yields_the_signal_once() {
    let _serial = serial();
    run(async {
        let mut usr1 = signal(SIGUSR1).unwrap();
        assert_eq!(future::poll_once(usr1.next()).await, None, "nothing yet");
        raise(SIGUSR1).unwrap();
        assert_eq!(usr1.next().await, Some(SIGUSR1));
        raise(SIGUSR1).unwrap();
        raise(SIGUSR1).unwrap();
        assert_eq!(usr1.next().await, Some(SIGUSR1));
        assert_eq!(usr1.recv().await, Some(SIGUSR1));
        assert_eq!(
            future::poll_once(usr1.next()).await,
            None,
            "three deliveries, three items"
        );
    });
}

#[test]
fn signals_tells_which_signal_arrived() {
    let _serial = serial();
    run(async {
        let mut both = Signals::new([SIGUSR1, SIGUSR2]).unwrap();
        raise(SIGUSR2).unwrap();
        assert_eq!(both.next().await, Some(SIGUSR2));
        raise(SIGUSR1).unwrap();
        assert_eq!(both.next().await, Some(SIGUSR1));
        raise(SIGUSR2).unwrap();
        raise(SIGUSR1).unwrap();
        let mut got = [both.next().await.unwrap(), both.next().await.unwrap()];
        got.sort();
        assert_eq!(got, [SIGUSR1, SIGUSR2]);
    });
}

#[test]
fn a_signal_reaches_listeners_on_every_threads_loop() {
    let _serial = serial();
    let _guard = watchdog("a_signal_reaches_listeners_on_every_threads_loop");
    const LOOPS: usize = 3;
    let registered = std::sync::Arc::new(Barrier::new(LOOPS + 1));
    let (got_tx, got_rx) = mpsc::channel();
    let loops: Vec<_> = (0..LOOPS)
        .map(|_| {
            let registered = registered.clone();
            let got = got_tx.clone();
            thread::spawn(move || {
                untangle::block_on(async move {
                    let mut usr2 = signal(SIGUSR2).unwrap();
                    registered.wait();
                    // The loop sleeps in the poller until the byte arrives.
                    got.send(usr2.next().await).unwrap();
                })
            })
        })
        .collect();
    registered.wait();
    raise(SIGUSR2).unwrap(); // handled on this thread, which has no loop at all
    for _ in 0..LOOPS {
        assert_eq!(got_rx.recv_timeout(HANG_GUARD).unwrap(), Some(SIGUSR2));
    }
    for handle in loops {
        handle.join().unwrap();
    }
}

#[test]
fn a_process_directed_signal_is_received() {
    let _serial = serial();
    run(async {
        let mut usr1 = signal(SIGUSR1).unwrap();
        // As `kill -USR1 <pid>` from a shell: any thread of the process may take it.
        let pid = rustix::process::getpid();
        rustix::process::kill_process(pid, rustix::process::Signal::USR1).unwrap();
        assert_eq!(usr1.next().await, Some(SIGUSR1));
    });
}

#[test]
fn ctrl_c_completes_on_sigint() {
    let _serial = serial();
    run(async {
        // Registered when called, so a SIGINT before the first poll is not lost.
        let interrupted = ctrl_c();
        raise(SIGINT).unwrap();
        interrupted.await.unwrap();
    });
}

#[test]
fn dropping_signals_unregisters_and_closes_its_sockets() {
    let _serial = serial();
    run(async {
        let before = open_fds();
        let signals = Signals::new([SIGUSR1, SIGUSR2]).unwrap();
        assert_eq!(open_fds(), before + 4, "a socket pair per signal");
        drop(signals);
        assert_eq!(
            open_fds(),
            before,
            "both ends closed, the write end by unregistering"
        );
        // Nobody listens now: the signal is ignored (it would otherwise end the process), and
        // a new listener works as before.
        raise(SIGUSR1).unwrap();
        let mut usr1 = signal(SIGUSR1).unwrap();
        assert_eq!(future::poll_once(usr1.next()).await, None);
        raise(SIGUSR1).unwrap();
        assert_eq!(usr1.next().await, Some(SIGUSR1));
    });
}

#[test]
fn signals_that_cannot_be_handled_are_an_error() {
    let _serial = serial();
    run(async {
        for sig in [
            signal_hook::consts::SIGKILL,
            signal_hook::consts::SIGSTOP,
            0,
            -1,
            65,
        ] {
            let err = signal(sig).expect_err("cannot be handled");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "signal {sig}");
        }
        // A failure part-way leaves nothing registered.
        let before = open_fds();
        assert!(Signals::new([SIGUSR1, signal_hook::consts::SIGKILL]).is_err());
        assert_eq!(open_fds(), before);
    });
}

/// The number of open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

//! tokio's `tests/signal_*.rs` and async-signal / signal-hook semantics, on `untangle::signal`.
//!
//! Signals are process-wide and the tests of one binary share a process: every test holds
//! `SERIAL`, and raises only signals it listens for at that moment (once a signal has had a
//! listener, `signal-hook` keeps its handler, so a stray one is ignored rather than fatal).
//! Each test uses its own signal where it can, so that a leftover delivery of another test
//! cannot satisfy it. `raise` runs the handler on the calling thread before it returns.

mod common;

use std::sync::{mpsc, Arc, Barrier, Mutex, MutexGuard};
use std::thread;

use common::{panic_message, run, watchdog, HANG_GUARD};
use futures_lite::{future, StreamExt};
use signal_hook::consts::{SIGALRM, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::low_level::raise;
use untangle::signal::{ctrl_c, signal, Signals};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads every delivery already queued, without waiting.
async fn drain(signals: &mut Signals) -> usize {
    let mut n = 0;
    while future::poll_once(signals.next()).await.is_some() {
        n += 1;
    }
    n
}

/// tokio `signal_usr1`: a process-directed SIGUSR1 (as `kill -USR1 pid`) reaches the listener.
#[test]
fn signal_usr1() {
    let _serial = serial();
    run(async {
        let mut usr1 = signal(SIGUSR1).unwrap();
        let pid = rustix::process::getpid();
        rustix::process::kill_process(pid, rustix::process::Signal::USR1).unwrap();
        assert_eq!(usr1.recv().await, Some(SIGUSR1));
    });
}

/// tokio `signal_notify_both`: two listeners of one signal on one loop are both notified.
#[test]
fn signal_notify_both() {
    let _serial = serial();
    run(async {
        let mut first = signal(SIGUSR2).unwrap();
        let mut second = signal(SIGUSR2).unwrap();
        raise(SIGUSR2).unwrap();
        assert_eq!(first.recv().await, Some(SIGUSR2));
        assert_eq!(second.recv().await, Some(SIGUSR2));
        assert_eq!(drain(&mut first).await + drain(&mut second).await, 0);
    });
}

/// tokio `signal_twice`: the same listener is notified again by a later delivery.
#[test]
fn signal_twice() {
    let _serial = serial();
    run(async {
        let mut hup = signal(SIGHUP).unwrap();
        for _ in 0..2 {
            raise(SIGHUP).unwrap();
            assert_eq!(hup.recv().await, Some(SIGHUP));
        }
        assert_eq!(drain(&mut hup).await, 0);
    });
}

/// tokio `signal_multi_rt`: listeners on several threads' loops all receive one signal, sent
/// while every loop sleeps in its poller.
#[test]
fn signal_multi_rt() {
    let _serial = serial();
    let _guard = watchdog("signal_multi_rt");
    const LOOPS: usize = 4;
    let registered = Arc::new(Barrier::new(LOOPS + 1));
    let (got_tx, got_rx) = mpsc::channel();
    let loops: Vec<_> = (0..LOOPS)
        .map(|_| {
            let registered = registered.clone();
            let got = got_tx.clone();
            thread::spawn(move || {
                untangle::block_on(async move {
                    // Two listeners per loop, on different tasks.
                    let mut a = signal(SIGTERM).unwrap();
                    let mut b = signal(SIGTERM).unwrap();
                    let other = untangle::spawn(async move { b.recv().await });
                    registered.wait();
                    got.send(a.recv().await).unwrap();
                    got.send(other.await).unwrap();
                })
            })
        })
        .collect();
    registered.wait();
    raise(SIGTERM).unwrap();
    for _ in 0..2 * LOOPS {
        assert_eq!(got_rx.recv_timeout(HANG_GUARD).unwrap(), Some(SIGTERM));
    }
    for handle in loops {
        handle.join().unwrap();
    }
}

/// tokio `signal_drop_signal`: dropping one listener leaves another of the same signal working,
/// and a listener created after the drop works too.
#[test]
fn signal_drop_signal() {
    let _serial = serial();
    run(async {
        let mut kept = signal(SIGUSR1).unwrap();
        let dropped = signal(SIGUSR1).unwrap();
        drop(dropped);
        raise(SIGUSR1).unwrap();
        assert_eq!(kept.recv().await, Some(SIGUSR1));
        let mut later = signal(SIGUSR1).unwrap();
        raise(SIGUSR1).unwrap();
        assert_eq!(kept.recv().await, Some(SIGUSR1));
        assert_eq!(later.recv().await, Some(SIGUSR1));
        assert_eq!(drain(&mut kept).await + drain(&mut later).await, 0);
    });
}

/// tokio `signal_drop_rt`: a loop's thread exits with its listener still alive (the loop is
/// gone); a listener on a new thread's loop still receives the signal, and the dropped loop's
/// listener does not keep the process from handling it.
#[test]
fn signal_drop_rt() {
    let _serial = serial();
    let _guard = watchdog("signal_drop_rt");
    // The listener leaks out of its thread (as tokio's test drops the runtime, not the signal).
    let leftover = thread::spawn(|| untangle::block_on(async { signal(SIGALRM).unwrap() }))
        .join()
        .unwrap();
    let got = thread::spawn(|| {
        untangle::block_on(async {
            let mut alrm = signal(SIGALRM).unwrap();
            raise(SIGALRM).unwrap();
            alrm.recv().await
        })
    })
    .join()
    .unwrap();
    assert_eq!(got, Some(SIGALRM));
    // The leftover listener, whose loop is gone, received it too: on this thread's loop now.
    let mut leftover = leftover;
    assert_eq!(run(leftover.recv()), Some(SIGALRM));
    drop(leftover);
}

/// tokio `signal_ctrl_c`: `ctrl_c()` completes at a SIGINT, even one raised before its first
/// poll (the handler is installed when `ctrl_c` is called).
#[test]
fn signal_ctrl_c() {
    let _serial = serial();
    run(async {
        let interrupted = ctrl_c();
        raise(SIGINT).unwrap();
        interrupted.await.unwrap();
        // A second ctrl_c waits for a second SIGINT, not the first one.
        let again = ctrl_c();
        assert!(future::poll_once(Box::pin(again)).await.is_none());
    });
}

/// async-signal: a signal delivered before the stream's first poll is not lost; one delivered
/// between two polls is seen by the next one.
#[test]
fn a_signal_before_the_first_poll_is_not_lost() {
    let _serial = serial();
    run(async {
        let mut quit = signal(SIGQUIT).unwrap();
        raise(SIGQUIT).unwrap();
        assert_eq!(quit.recv().await, Some(SIGQUIT));
        assert_eq!(drain(&mut quit).await, 0);
    });
}

/// signal-hook / async-signal: many deliveries faster than they are read coalesce into at least
/// one notification, never more than were sent, and none is invented afterwards; the listener
/// keeps working after its buffer overflowed.
#[test]
fn a_burst_of_signals_coalesces_into_at_least_one_notification() {
    let _serial = serial();
    const SENT: usize = 20_000;
    run(async {
        let mut usr2 = signal(SIGUSR2).unwrap();
        for _ in 0..SENT {
            raise(SIGUSR2).unwrap();
        }
        assert_eq!(usr2.recv().await, Some(SIGUSR2));
        let seen = 1 + drain(&mut usr2).await;
        assert!(seen <= SENT, "{seen} notifications for {SENT} signals");
        assert_eq!(drain(&mut usr2).await, 0);
        raise(SIGUSR2).unwrap();
        assert_eq!(usr2.recv().await, Some(SIGUSR2));
    });
}

/// signal-hook: `SIGKILL`, `SIGSTOP` and the synchronous fault signals cannot be handled; asking
/// for them is an `InvalidInput` error (signal-hook itself would panic), and nothing is left
/// registered.
#[test]
fn forbidden_signals_are_an_error() {
    let _serial = serial();
    use signal_hook::consts::{SIGFPE, SIGILL, SIGKILL, SIGSEGV, SIGSTOP};
    run(async {
        for sig in [SIGKILL, SIGSTOP, SIGSEGV, SIGILL, SIGFPE] {
            let err = signal(sig).expect_err("forbidden");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "signal {sig}");
            assert!(err.to_string().contains(&sig.to_string()), "{err}");
            let err = Signals::new([SIGUSR1, sig]).expect_err("forbidden");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        }
    });
}

/// tokio `signal_no_rt`: a listener polled where no untangle loop runs cannot be woken; it
/// panics with a message that says why rather than hanging (or, for `ctrl_c`, rather than
/// reporting a Ctrl-C that never came).
#[test]
fn signal_no_rt() {
    let _serial = serial();
    let _guard = watchdog("signal_no_rt");
    let payload = thread::spawn(|| {
        let mut usr1 = signal(SIGUSR1).unwrap();
        futures::executor::block_on(usr1.recv())
    })
    .join()
    .expect_err("polled outside a loop");
    let message = panic_message(&*payload);
    assert!(message.contains("untangle::block_on"), "{message}");

    let outcome =
        thread::spawn(|| std::panic::catch_unwind(|| futures::executor::block_on(ctrl_c())))
            .join()
            .unwrap();
    match outcome {
        Ok(result) => assert!(result.is_err(), "ctrl_c completed without a SIGINT"),
        Err(payload) => {
            let message = panic_message(&*payload);
            assert!(message.contains("untangle::block_on"), "{message}");
        }
    }
}

/// A delivery queued before the stream is polled outside a loop is still yielded (it needs no
/// waiting), as an `Async` read that can complete at once does.
#[test]
fn a_pending_signal_is_yielded_even_outside_a_loop() {
    let _serial = serial();
    let got = thread::spawn(|| {
        let mut usr2 = signal(SIGUSR2).unwrap();
        raise(SIGUSR2).unwrap();
        futures::executor::block_on(usr2.recv())
    })
    .join()
    .unwrap();
    assert_eq!(got, Some(SIGUSR2));
}

/// signal-hook's `Signals`: a signal named twice is listened for once, so each delivery still
/// yields it once (the stream's documented promise).
#[test]
fn a_signal_named_twice_yields_once_per_delivery() {
    let _serial = serial();
    run(async {
        let mut twice = Signals::new([SIGHUP, SIGHUP, SIGQUIT, SIGHUP]).unwrap();
        assert_eq!(
            format!("{twice:?}"),
            format!("Signals {{ signals: [{SIGHUP}, {SIGQUIT}] }}")
        );
        raise(SIGHUP).unwrap();
        assert_eq!(twice.recv().await, Some(SIGHUP));
        assert_eq!(drain(&mut twice).await, 0, "one delivery, one item");
    });
}

/// A listener created on one thread's loop and moved to another's while the first loop is alive
/// and asleep: the second loop receives the signal (the listener's socket follows the loop that
/// polls it), and the first loop is not woken for it.
#[test]
fn a_listener_moved_to_another_loop_is_woken_there() {
    let _serial = serial();
    let _guard = watchdog("a_listener_moved_to_another_loop_is_woken_there");
    use signal_hook::consts::SIGWINCH;
    let (listener_tx, listener_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let first = thread::spawn(move || {
        untangle::block_on(async move {
            let mut winch = signal(SIGWINCH).unwrap();
            // Polled here once (registered with this loop), then handed over.
            assert!(future::poll_once(winch.next()).await.is_none());
            listener_tx.send(winch).unwrap();
            let _ = stop_rx.recv().await;
        })
    });
    let mut winch = listener_rx.recv().unwrap();
    let got = thread::spawn(move || {
        untangle::block_on(async move {
            let waiting = untangle::spawn(async move { winch.recv().await });
            untangle::yield_now().await;
            raise(SIGWINCH).unwrap();
            waiting.await
        })
    })
    .join()
    .unwrap();
    assert_eq!(got, Some(SIGWINCH));
    stop_tx.send_blocking(()).unwrap();
    first.join().unwrap();
}

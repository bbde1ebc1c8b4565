//! Timers and I/O objects that move to another thread's loop fire and work on the loop that
//! polls them now — whether the loop they came from is busy, idle or gone — and an I/O object
//! polled where no loop runs fails with an error instead of hanging.

mod common;

use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use common::watchdog;
use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
use untangle::net::TcpStream;
use untangle::time::{interval, sleep, timeout};

/// Polls `future` once inside a loop on this thread (registering it there), returning it.
fn poll_once_here<F: Future + Unpin>(mut future: F) -> F {
    untangle::block_on(futures_lite::future::poll_fn(|cx| {
        assert!(Pin::new(&mut future).poll(cx).is_pending());
        Poll::Ready(())
    }));
    future
}

/// Runs `make` on a new thread, polls the future once in that thread's loop, and hands it back.
/// With `keep_alive` that thread stays alive and idle (outside `block_on`) until the returned
/// sender drops; otherwise it has exited.
fn registered_elsewhere<F, M>(make: M, keep_alive: bool) -> (F, Option<mpsc::Sender<()>>)
where
    F: Future + Unpin + Send + 'static,
    M: FnOnce() -> F + Send + 'static,
{
    let (give, take) = mpsc::channel();
    let (release, parked) = mpsc::channel::<()>();
    let thread = thread::spawn(move || {
        let future = poll_once_here(make());
        give.send(future).unwrap();
        if keep_alive {
            let _ = parked.recv();
        }
    });
    let future = take.recv().unwrap();
    if keep_alive {
        (future, Some(release))
    } else {
        thread.join().unwrap();
        (future, None)
    }
}

#[test]
fn sleep_polled_on_another_loop_fires_there_while_the_first_is_idle() {
    let _guard = watchdog("sleep_polled_on_another_loop_fires_there_while_the_first_is_idle");
    let start = Instant::now();
    let (sleep, _idle) = registered_elsewhere(|| Box::pin(sleep(Duration::from_millis(40))), true);
    untangle::block_on(sleep);
    assert!(start.elapsed() >= Duration::from_millis(40));
}

#[test]
fn sleep_polled_on_another_loop_fires_there_after_the_first_exited() {
    let _guard = watchdog("sleep_polled_on_another_loop_fires_there_after_the_first_exited");
    let start = Instant::now();
    let (sleep, _) = registered_elsewhere(|| Box::pin(sleep(Duration::from_millis(40))), false);
    untangle::block_on(sleep);
    assert!(start.elapsed() >= Duration::from_millis(40));
}

#[test]
fn interval_and_timeout_moved_to_another_loop_fire_there() {
    let _guard = watchdog("interval_and_timeout_moved_to_another_loop_fire_there");
    let (mut every, _) = registered_elsewhere(
        || {
            let mut every = interval(Duration::from_millis(10));
            // The first tick is immediate; poll the second so its timer is registered.
            untangle::block_on(every.tick());
            Box::pin(async move {
                every.tick().await;
                every
            })
        },
        false,
    );
    let mut every = untangle::block_on(&mut every);
    untangle::block_on(async { every.next().await.unwrap() });

    let (expired, _idle) = registered_elsewhere(
        || {
            Box::pin(timeout(
                Duration::from_millis(20),
                futures_lite::future::pending::<()>(),
            ))
        },
        true,
    );
    assert!(untangle::block_on(expired).is_err());
}

#[test]
fn sleep_reset_earlier_wakes_the_waiting_task_at_the_new_deadline() {
    let _guard = watchdog("sleep_reset_earlier_wakes_the_waiting_task_at_the_new_deadline");
    untangle::block_on(async {
        let shared = std::rc::Rc::new(std::cell::RefCell::new(Box::pin(sleep(
            Duration::from_secs(3600),
        ))));
        let waiter = untangle::spawn({
            let shared = shared.clone();
            futures_lite::future::poll_fn(move |cx| shared.borrow_mut().as_mut().poll(cx))
        });
        untangle::yield_now().await;
        let start = Instant::now();
        // Another task moves the deadline the waiter is parked on.
        shared
            .borrow_mut()
            .as_mut()
            .reset(start + Duration::from_millis(30));
        waiter.await;
        assert!(start.elapsed() >= Duration::from_millis(30));
    });
}

#[test]
fn sleep_reset_later_keeps_the_waiting_task_until_the_new_deadline() {
    let _guard = watchdog("sleep_reset_later_keeps_the_waiting_task_until_the_new_deadline");
    untangle::block_on(async {
        let start = Instant::now();
        let shared = std::rc::Rc::new(std::cell::RefCell::new(Box::pin(sleep(
            Duration::from_millis(10),
        ))));
        let waiter = untangle::spawn({
            let shared = shared.clone();
            futures_lite::future::poll_fn(move |cx| shared.borrow_mut().as_mut().poll(cx))
        });
        untangle::yield_now().await;
        shared
            .borrow_mut()
            .as_mut()
            .reset(start + Duration::from_millis(60));
        waiter.await;
        assert!(start.elapsed() >= Duration::from_millis(60));
    });
}

/// A sleep behind a mutex, polled by the loop's thread and reset by another.
struct Shared(std::sync::Arc<std::sync::Mutex<Pin<Box<untangle::time::Sleep>>>>);

impl Future for Shared {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.lock().unwrap().as_mut().poll(cx)
    }
}

#[test]
fn sleep_reset_from_another_thread_wakes_a_loop_asleep_in_its_wait() {
    let _guard = watchdog("sleep_reset_from_another_thread_wakes_a_loop_asleep_in_its_wait");
    let sleep = std::sync::Arc::new(std::sync::Mutex::new(Box::pin(sleep(Duration::from_secs(
        3600,
    )))));
    let resetter = {
        let sleep = sleep.clone();
        thread::spawn(move || {
            // By now the loop sleeps in a wait computed from the one-hour deadline.
            thread::sleep(Duration::from_millis(50));
            let deadline = Instant::now() + Duration::from_millis(10);
            sleep.lock().unwrap().as_mut().reset(deadline);
            deadline
        })
    };
    untangle::block_on(Shared(sleep));
    let deadline = resetter.join().unwrap();
    assert!(Instant::now() >= deadline);
}

/// A connected pair: an untangle stream made on a thread of its own, whose loop holds a parked
/// read of it, and a std peer. With `keep_alive`, that thread stays alive and idle (outside
/// `block_on`) until the returned sender drops; otherwise it has exited.
fn stream_made_elsewhere(
    keep_alive: bool,
) -> (TcpStream, std::net::TcpStream, Option<mpsc::Sender<()>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (give, take) = mpsc::channel();
    let (release, parked) = mpsc::channel::<()>();
    let thread = thread::spawn(move || {
        let stream = untangle::block_on(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let mut buf = [0u8; 1];
            let read = futures_lite::future::poll_once(stream.read(&mut buf)).await;
            assert!(read.is_none(), "nothing to read yet");
            stream
        });
        give.send(stream).unwrap();
        if keep_alive {
            let _ = parked.recv();
        }
    });
    let stream = take.recv().unwrap();
    let peer = listener.accept().unwrap().0;
    if keep_alive {
        (stream, peer, Some(release))
    } else {
        thread.join().unwrap();
        (stream, peer, None)
    }
}

fn echo_through(mut stream: TcpStream, mut peer: std::net::TcpStream) {
    let echo = thread::spawn(move || {
        let mut buf = [0u8; 5];
        thread::sleep(Duration::from_millis(20));
        peer.write_all(b"hello").unwrap();
        peer.read_exact(&mut buf).unwrap();
        buf
    });
    untangle::block_on(async {
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        stream.write_all(b"world").await.unwrap();
    });
    assert_eq!(&echo.join().unwrap(), b"world");
}

#[test]
fn tcp_stream_moved_to_another_loop_works_while_the_first_is_idle() {
    let _guard = watchdog("tcp_stream_moved_to_another_loop_works_while_the_first_is_idle");
    let (stream, peer, _idle) = stream_made_elsewhere(true);
    echo_through(stream, peer);
}

#[test]
fn tcp_stream_moved_to_another_loop_works_after_the_first_exited() {
    let _guard = watchdog("tcp_stream_moved_to_another_loop_works_after_the_first_exited");
    let (stream, peer, _) = stream_made_elsewhere(false);
    echo_through(stream, peer);
}

#[test]
fn tcp_stream_carried_by_a_task_to_another_loop_keeps_working() {
    let _guard = watchdog("tcp_stream_carried_by_a_task_to_another_loop_keeps_working");
    let (handle_tx, handle_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let other = thread::spawn(move || {
        untangle::block_on(async {
            handle_tx.send(untangle::Handle::current()).unwrap();
            let _ = stop_rx.recv().await;
        })
    });
    let handle = handle_rx.recv().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stream = untangle::block_on(async { TcpStream::connect(addr).await.unwrap() });
    let (mut peer, _) = listener.accept().unwrap();
    let task = handle.spawn(async move {
        let mut stream = stream;
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.unwrap();
        stream.write_all(&buf).await.unwrap();
        buf
    });
    thread::sleep(Duration::from_millis(20));
    peer.write_all(b"ping").unwrap();
    let mut echoed = [0u8; 4];
    peer.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ping");
    assert_eq!(&untangle::block_on(task), b"ping");
    stop_tx.send_blocking(()).unwrap();
    other.join().unwrap();
}

#[test]
fn io_polled_outside_a_loop_fails_instead_of_hanging() {
    let _guard = watchdog("io_polled_outside_a_loop_fails_instead_of_hanging");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut stream = untangle::block_on(async { TcpStream::connect(addr).await.unwrap() });
    let _peer = listener.accept().unwrap();
    let mut buf = [0u8; 4];
    // Nothing to read, and no untangle loop on this thread to deliver readiness.
    let err = futures_lite::future::block_on(stream.read(&mut buf)).unwrap_err();
    assert!(
        err.to_string().contains("outside a running untangle loop"),
        "{err}"
    );
    // An operation that can complete at once still works.
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut write = stream.write(b"ok");
    assert!(matches!(
        Pin::new(&mut write).poll(&mut cx),
        Poll::Ready(Ok(2))
    ));
}

#[test]
fn two_loops_sharing_one_async_park_without_moving_it_back_and_forth() {
    let _guard = watchdog("two_loops_sharing_one_async_park_without_moving_it_back_and_forth");
    // A reader on one loop and a writer on another share one socket; both must park. Were a
    // move to wake every waiter, each would move the source back to its own loop forever.
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let chunk = [0u8; 65536];
    while (&a).write(&chunk).is_ok() {}
    let shared = std::sync::Arc::new(untangle::Async::new(a).unwrap());
    let writer = {
        let shared = shared.clone();
        thread::spawn(move || {
            untangle::block_on(async move {
                let task = untangle::spawn(async move {
                    let _ =
                        futures_lite::io::AsyncWriteExt::write(&mut &*shared, &[1u8; 4096]).await;
                });
                sleep(Duration::from_millis(200)).await;
                let polls = untangle::dump().tasks[0].polls;
                drop(task);
                polls
            })
        })
    };
    let reader_polls = untangle::block_on(async {
        let shared = shared.clone();
        let task = untangle::spawn(async move {
            let mut buf = [0u8; 16];
            let _ = futures_lite::io::AsyncReadExt::read(&mut &*shared, &mut buf).await;
        });
        sleep(Duration::from_millis(200)).await;
        let polls = untangle::dump().tasks[0].polls;
        drop(task);
        polls
    });
    let writer_polls = writer.join().unwrap();
    assert!(reader_polls <= 3, "reader polled {reader_polls} times");
    assert!(writer_polls <= 3, "writer polled {writer_polls} times");
}

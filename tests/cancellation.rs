//! Cancellation and panics leak nothing: dropping a task, a pending accept, connect, read,
//! write or sleep at any await point, a connection the client abandons at any point, and a
//! panicking handler or task all leave the process's open sockets (`/proc/self/fd`) and the
//! reactor's registrations (`untangle::__live_sources()`) as they were.
//!
//! Sockets are counted process-wide, so the tests of this binary take turns (a mutex).

mod common;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures_lite::future::{self, poll_once};
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use untangle::http::{Body, Request, Server, StatusCode};
use untangle::net::{TcpListener, TcpStream};
use untangle::time::sleep;
use untangle::{spawn, yield_now};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// (open sockets, registered sources) of this process and loop. Sockets rather than all fds:
/// a previous test's thread may still be exiting, closing its loop's poller fds.
fn usage() -> (usize, usize) {
    (common::open_socket_count(), untangle::__live_sources())
}

/// Waits (loop running) until usage is back to `before`; panics at the hang guard.
async fn settles_to(before: (usize, usize), what: &str) {
    for _ in 0..2000 {
        if usage() == before {
            return;
        }
        sleep(Duration::from_millis(5)).await;
    }
    panic!("{what}: (fds, sources) {:?}, expected {before:?}", usage());
}

/// Makes sure the loop's lazily created parts (poller, timers) exist before a baseline.
async fn warm_up() {
    sleep(Duration::from_millis(1)).await;
    yield_now().await;
}

#[test]
fn dropping_a_task_at_any_await_point_frees_its_fds_and_registrations() {
    let _serial = serial();
    common::run(async {
        warm_up().await;
        let before = usage();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A peer that accepts and never reads nor writes.
        let held = spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = listener.accept().await {
                conns.push(c);
            }
        });
        for point in 0..6 {
            let task = spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                stream.write_all(b"x").await.unwrap();
                sleep(Duration::from_secs(3600)).await;
                let mut buf = [0u8; 1];
                let _ = stream.read(&mut buf).await;
            });
            for _ in 0..point {
                yield_now().await;
            }
            drop(task);
        }
        drop(held);
        settles_to(before, "after dropping tasks").await;
    });
}

#[test]
fn dropping_a_pending_accept_frees_the_listener() {
    let _serial = serial();
    common::run(async {
        warm_up().await;
        let before = usage();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        {
            let accept = listener.accept();
            futures_lite::pin!(accept);
            assert!(
                poll_once(accept.as_mut()).await.is_none(),
                "nobody connected"
            );
        }
        // The listener still works after a dropped accept.
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        drop((client, server));
        // A task parked in accept, cancelled.
        let task = spawn(async move { listener.accept().await.map(|_| ()) });
        yield_now().await;
        assert!(task.cancel().await.is_none());
        settles_to(before, "after dropping accepts").await;
    });
}

#[test]
fn dropping_a_pending_connect_frees_its_socket() {
    let _serial = serial();
    common::run(async {
        warm_up().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let before = usage();
        // Dropped after 0, 1, 2 … polls: before, during or after the handshake.
        for polls in 0..4 {
            for _ in 0..25 {
                let connect = TcpStream::connect(addr);
                futures_lite::pin!(connect);
                for _ in 0..polls {
                    if poll_once(connect.as_mut()).await.is_some() {
                        break;
                    }
                }
            }
        }
        // Drain what reached the backlog.
        while let Some(Ok((c, _))) = poll_once(listener.accept()).await {
            drop(c);
        }
        settles_to(before, "after dropping connects").await;
        drop(listener);
    });
}

#[test]
fn dropping_a_pending_read_or_write_frees_the_stream() {
    let _serial = serial();
    common::run(async {
        warm_up().await;
        let before = usage();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        // A read with nothing to read.
        {
            let mut buf = [0u8; 16];
            let read = client.read(&mut buf);
            futures_lite::pin!(read);
            assert!(poll_once(read.as_mut()).await.is_none());
        }
        // A write that cannot go on: the peer never reads, the buffers fill.
        {
            let chunk = vec![0u8; 1 << 20];
            let write = async {
                loop {
                    server.write_all(&chunk).await.unwrap();
                }
            };
            let done = future::or(write, async {
                sleep(Duration::from_millis(200)).await;
            });
            done.await;
        }
        // Tasks parked in read and in write, cancelled.
        let reader = spawn(async move {
            let mut buf = [0u8; 16];
            let _ = client.read(&mut buf).await;
        });
        let writer = spawn(async move {
            let chunk = vec![0u8; 1 << 20];
            loop {
                if server.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        });
        yield_now().await;
        drop(reader);
        drop(writer);
        drop(listener);
        settles_to(before, "after dropping reads and writes").await;
    });
}

#[test]
fn dropping_a_pending_sleep_runs_its_destructors_and_frees_nothing_else() {
    let _serial = serial();
    common::run(async {
        warm_up().await;
        let before = usage();
        let dropped = std::rc::Rc::new(std::cell::Cell::new(false));
        let flag = common::DropFlag(dropped.clone());
        let task = spawn(async move {
            let _flag = flag;
            sleep(Duration::from_secs(3600)).await;
        });
        yield_now().await;
        // Cancelling waits until the loop dropped the future (a plain drop does it at the
        // loop's next turn).
        assert!(task.cancel().await.is_none());
        {
            let s = sleep(Duration::from_secs(3600));
            futures_lite::pin!(s);
            assert!(poll_once(s.as_mut()).await.is_none());
        }
        settles_to(before, "after dropping sleeps").await;
        assert!(dropped.get(), "the cancelled task's future was not dropped");
        // The dropped timers do not keep the loop from going idle and waking for new ones.
        sleep(Duration::from_millis(1)).await;
    });
}

/// A server on this loop; returns its address and the serve task.
async fn local_server<H, Fut, R>(
    configure: impl FnOnce(Server) -> Server,
    handler: H,
) -> (SocketAddr, untangle::Task<std::io::Result<()>>)
where
    H: Fn(Request<Body>) -> Fut + 'static,
    Fut: std::future::Future<Output = R> + 'static,
    R: untangle::http::IntoResponse + 'static,
{
    let server = configure(Server::bind("127.0.0.1:0").await.unwrap());
    let addr = server.local_addr().unwrap();
    (addr, spawn(server.serve(handler)))
}

#[test]
fn connections_abandoned_at_any_point_are_closed_by_the_server() {
    let _serial = serial();
    common::run(async {
        warm_up().await;
        let before = usage();
        let (addr, serve) = local_server(
            |s| s.header_read_timeout(Duration::from_secs(5)),
            |req: Request<Body>| async move {
                if req.uri().path() == "/slow" {
                    sleep(Duration::from_millis(50)).await;
                    return Body::from(vec![b'x'; 4 << 20]);
                }
                match req.into_body().bytes().await {
                    Ok(b) => Body::from(b),
                    Err(_) => Body::from("error"),
                }
            },
        )
        .await;
        let cases: [&[u8]; 5] = [
            b"",                                                            // nothing sent
            b"GET / HTTP/1.1\r\nHost:",                                     // mid-head
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nab", // mid-body
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n", // gone before a 4 MiB response
        ];
        for bytes in cases {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(bytes).await.unwrap();
            yield_now().await;
            drop(client);
        }
        sleep(Duration::from_millis(100)).await;
        // Everything but the listener is gone once the server noticed.
        drop(serve);
        settles_to(before, "after abandoned connections").await;
    });
}

#[test]
fn handler_and_task_panics_leak_no_fds_and_the_loop_goes_on() {
    let _serial = serial();
    common::install_capture_logger();
    common::run(async {
        warm_up().await;
        let before = usage();
        let (addr, serve) = local_server(
            |s| s,
            |req: Request<Body>| async move {
                if req.uri().path() == "/panic" {
                    panic!("handler exploded 51c0");
                }
                (StatusCode::OK, "fine")
            },
        )
        .await;
        for _ in 0..20 {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client
                .write_all(b"GET /panic HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .unwrap();
            let mut response = Vec::new();
            client.read_to_end(&mut response).await.unwrap();
            assert!(response.starts_with(b"HTTP/1.1 500 "), "{response:?}");
        }
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        client.read_to_end(&mut response).await.unwrap();
        assert!(response.starts_with(b"HTTP/1.1 200 "));
        drop(client);
        assert!(common::logged("handler exploded 51c0"));

        // A task that panics while holding a socket: re-raised to its awaiter, socket closed.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let laddr = listener.local_addr().unwrap();
        let awaited = spawn(async move {
            let _s = TcpStream::connect(laddr).await.unwrap();
            yield_now().await;
            panic!("awaited task exploded");
        });
        let caught = std::panic::AssertUnwindSafe(awaited).catch_unwind().await;
        assert_eq!(
            common::panic_message(&*caught.unwrap_err()),
            "awaited task exploded"
        );
        // A detached task that panics while holding a socket: logged, socket closed.
        spawn(async move {
            let _s = TcpStream::connect(laddr).await.unwrap();
            yield_now().await;
            panic!("detached task exploded 9e2a");
        })
        .detach();
        sleep(Duration::from_millis(20)).await;
        assert!(common::logged("detached task exploded 9e2a"));
        while let Some(Ok((c, _))) = poll_once(listener.accept()).await {
            drop(c);
        }
        drop(listener);
        drop(serve);
        settles_to(before, "after panics").await;
    });
}

//! tokio-only code inside untangle, what works through `async-compat` and what does not.
//!
//! tokio's I/O and timer types register with *tokio's* reactor, found through a thread-local
//! runtime context; untangle's loop is not one. `async_compat::Compat` wraps a future so that,
//! while it is polled, that context points to a tokio runtime async-compat runs on a background
//! thread: tokio's reactor then lives there and wakes our tasks across threads, while the future
//! itself still runs on untangle's loop. `Compat` also converts between tokio's and futures-io's
//! `AsyncRead`/`AsyncWrite`, which needs no runtime at all.

mod common;

use std::time::{Duration, Instant};

use async_compat::{Compat, CompatExt};
use common::{panic_message, run};
use futures::io::{AsyncReadExt as _, AsyncWriteExt as _};
use untangle::net::TcpListener;
use untangle::spawn;

#[test]
fn tokio_time_sleep_outside_a_tokio_runtime_panics_and_says_why() {
    // A fresh thread: the panic must not leave anything behind for other tests.
    let result = std::thread::spawn(|| {
        untangle::block_on(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
        })
    })
    .join();
    let message = panic_message(&*result.expect_err("tokio's timer needs a tokio runtime"));
    assert!(
        message.contains("no reactor running") || message.contains("Tokio 1.x runtime"),
        "{message}"
    );
}

#[test]
fn tokio_time_sleep_created_inside_async_compat_works() {
    run(async {
        let start = Instant::now();
        // The sleep must be *created* inside the Compat future: `tokio::time::sleep` looks up the
        // runtime when called, so `Compat::new(tokio::time::sleep(d))` still panics.
        Compat::new(async { tokio::time::sleep(Duration::from_millis(10)).await }).await;
        assert!(start.elapsed() >= Duration::from_millis(10));

        // A whole tokio-using block, with untangle's own timer beside it.
        let tokio_side = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            tokio::time::timeout(Duration::from_millis(5), futures::future::pending::<()>()).await
        }
        .compat();
        let (timed_out, ()) =
            futures::join!(tokio_side, untangle::time::sleep(Duration::from_millis(5)));
        assert!(timed_out.is_err());
    });
}

#[test]
fn tokio_net_tcp_stream_inside_async_compat_talks_to_an_untangle_listener() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = [0; 4];
            conn.read_exact(&mut request).await.unwrap();
            assert_eq!(&request, b"ping");
            conn.write_all(b"pong from untangle").await.unwrap();
            conn.close().await.unwrap();
        })
        .detach();

        let reply = Compat::new(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            // A tokio socket: registered with the tokio reactor async-compat runs.
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(b"ping").await.unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.unwrap();
            reply
        })
        .await;
        assert_eq!(reply, "pong from untangle");
    });
}

#[test]
fn tokio_io_utilities_read_and_write_an_untangle_stream_through_compat() {
    run(async {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (a, b) = untangle::net::UnixStream::pair().unwrap();
        // Our stream seen as tokio's AsyncRead/AsyncWrite: tokio-io-based protocol code (codecs,
        // tokio::io::copy, BufReader) runs over it with no tokio runtime involved.
        let mut writer = b.compat();
        spawn(async move {
            for i in 0..50 {
                writer
                    .write_all(format!("line {i}\n").as_bytes())
                    .await
                    .unwrap();
            }
            writer.shutdown().await.unwrap();
        })
        .detach();
        let mut lines = BufReader::new(a.compat()).lines();
        let mut got = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            got.push(line);
        }
        assert_eq!(got.len(), 50);
        assert_eq!(got[49], "line 49");
    });
}

#[test]
fn tokio_tcp_stream_wrapped_in_compat_serves_futures_io_code_on_untangle() {
    run(async {
        // The other direction: a tokio socket, seen as a futures-io stream, for futures-io code.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            let (reader, mut writer) = conn.split();
            futures::io::copy(reader, &mut writer).await.unwrap()
        });
        let echoed = Compat::new(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap().compat();
            stream.write_all(b"through compat").await.unwrap();
            stream.close().await.unwrap(); // futures-io close: tokio's shutdown, half-close
            let mut back = Vec::new();
            stream.read_to_end(&mut back).await.unwrap();
            back
        })
        .await;
        assert_eq!(echoed, b"through compat");
        assert_eq!(echo.await, 14);
    });
}

#[test]
fn tokio_spawn_inside_async_compat_runs_on_the_background_tokio_thread() {
    run(async {
        let loop_thread = std::thread::current().id();
        let (spawned_on, polled_on) = Compat::new(async {
            // What a tokio-based library does internally (connection pools, background
            // drivers): the task runs on async-compat's runtime thread, not on our loop.
            let spawned_on = tokio::spawn(async { std::thread::current().id() })
                .await
                .unwrap();
            (spawned_on, std::thread::current().id())
        })
        .await;
        assert_ne!(spawned_on, loop_thread);
        // The Compat future itself is still polled by untangle's loop.
        assert_eq!(polled_on, loop_thread);
    });
}

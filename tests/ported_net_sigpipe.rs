//! Writing to a stream whose peer is gone fails with `BrokenPipe` (or `ConnectionReset`) and
//! never raises `SIGPIPE`, whatever the process does with that signal.
//!
//! Rust programs start with `SIGPIPE` ignored, which would hide a write that raises it; this
//! binary installs a handler that records it instead (a process that keeps the default
//! disposition, such as a C program embedding the runtime, would be killed). The handler is
//! process-wide, so this file holds a single test.

mod common;

use std::io::{ErrorKind, IoSlice};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::run;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use untangle::net::{TcpListener, TcpStream, UnixDatagram, UnixStream};

fn assert_broken(result: std::io::Result<usize>, what: &str) {
    let err = result.expect_err(what);
    assert!(
        matches!(
            err.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
        ),
        "{what}: {err:?}"
    );
}

/// Writes until the kernel reports the dead peer (a TCP peer may first answer with a reset).
async fn write_until_error<W: futures_lite::AsyncWrite + Unpin>(w: &mut W) -> std::io::Error {
    for _ in 0..1000 {
        if let Err(err) = w.write_all(b"is anyone there?").await {
            return err;
        }
        untangle::yield_now().await;
    }
    panic!("writes to a closed peer kept succeeding");
}

#[test]
fn writes_to_a_closed_peer_fail_without_raising_sigpipe() {
    let raised = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGPIPE, raised.clone()).unwrap();
    run(async {
        // Unix stream: plain and vectored writes, and writes after our own shutdown(Write).
        let (mut a, b) = UnixStream::pair().unwrap();
        drop(b);
        assert_broken(a.write(b"x").await, "unix write");
        assert_broken(
            a.write_vectored(&[IoSlice::new(b"x"), IoSlice::new(b"y")])
                .await,
            "unix vectored write",
        );
        let (mut c, _d) = UnixStream::pair().unwrap();
        c.close().await.unwrap();
        assert_broken(c.write(b"x").await, "unix write after close");
        assert_broken(
            c.write_vectored(&[IoSlice::new(b"x")]).await,
            "unix vectored write after close",
        );

        // Unix datagram: a send after our own shutdown(Write), to and without an address (Linux
        // raises SIGPIPE for stream sockets only; checked all the same).
        let (e, f) = UnixDatagram::pair().unwrap();
        e.shutdown(std::net::Shutdown::Write).unwrap();
        assert_broken(e.send(b"x").await, "unix datagram send after shutdown");
        let path = std::env::temp_dir().join(format!("untangle-sigpipe-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let g = UnixDatagram::bind(&path).unwrap();
        let h = UnixDatagram::unbound().unwrap();
        h.shutdown(std::net::Shutdown::Write).unwrap();
        assert_broken(
            h.send_to(b"x", &path).await,
            "unix datagram send_to after shutdown",
        );
        drop((f, g));
        let _ = std::fs::remove_file(&path);

        // TCP: write after our own shutdown(Write), and after the peer hung up.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.close().await.unwrap();
        assert_broken(client.write(b"x").await, "tcp write after close");
        assert_broken(
            client.write_vectored(&[IoSlice::new(b"x")]).await,
            "tcp vectored write after close",
        );
        let mut other = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (peer, _) = listener.accept().await.unwrap();
        drop(peer);
        assert_eq!(other.read(&mut [0; 4]).await.unwrap(), 0);
        let err = write_until_error(&mut other).await;
        assert_broken(Err(err), "tcp write to a closed peer");
        assert_broken(
            other
                .write_vectored(&[IoSlice::new(b"x"), IoSlice::new(b"y")])
                .await,
            "tcp vectored write to a closed peer",
        );
        drop(server);
    });
    assert!(
        !raised.load(Ordering::SeqCst),
        "a write raised SIGPIPE (it would kill a process that keeps the default disposition)"
    );
}

//! TCP edge cases: urgent (out-of-band) data from a peer, as a hostile or old-fashioned client
//! sends it (`send(MSG_OOB)`, telnet's interrupt), after which a read stops short at the urgent
//! mark although ordinary data is queued behind it; and a connect that never completes (a
//! listener whose accept queue is full drops SYNs), bounded by a timeout.

mod common;

use std::io::Write;
use std::time::Duration;

use common::run;
use futures_lite::AsyncReadExt;
use rustix::net::SendFlags;
use untangle::net::TcpListener;
use untangle::time::timeout;

/// Twice on one connection: after the first burst is read to `WouldBlock` (which also drops
/// the sticky urgent bit), a second urgent mark is caught by its own event.
#[test]
fn data_queued_behind_an_urgent_mark_is_read_without_a_new_event() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        for round in 0..2 {
            // The reader parks first (its optimistic readiness cleared by a `WouldBlock`), so
            // the loop's next wait consumes the one event for all three sends below.
            let reader = untangle::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0; 64];
                while got.len() < 10 {
                    let n = timeout(Duration::from_secs(10), server.read(&mut buf))
                        .await
                        .expect("data behind the urgent mark was never read")
                        .unwrap();
                    assert_ne!(n, 0, "early EOF");
                    got.extend_from_slice(&buf[..n]);
                }
                (server, got)
            });
            for _ in 0..4 {
                untangle::yield_now().await;
            }
            // All of it is queued (loopback delivers before `send` returns) before the loop
            // waits again, and the client then stays silent: no further event will come.
            client.write_all(b"hello").unwrap();
            rustix::net::send(&client, b"!", SendFlags::OOB).unwrap();
            client.write_all(b"world").unwrap();
            let got;
            (server, got) = reader.await;
            // The urgent byte is out of band: not part of the stream.
            assert_eq!(got, b"helloworld", "round {round}");
        }
        drop(client);
    });
}

/// async-io's and tokio's connect timeouts: a connect that cannot complete is cut off by
/// `timeout`, and dropping it releases its socket.
#[test]
fn a_connect_that_never_completes_is_cut_off_by_a_timeout() {
    use rustix::net::{AddressFamily, SocketType};
    run(async {
        // Backlog 0: the accept queue holds one connection; further SYNs are dropped while it
        // is full (Linux), so the next handshake never completes.
        let listener = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        rustix::net::bind(
            &listener,
            &"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap(),
        )
        .unwrap();
        rustix::net::listen(&listener, 0).unwrap();
        let addr: std::net::SocketAddr = rustix::net::getsockname(&listener)
            .unwrap()
            .try_into()
            .unwrap();
        let before = untangle::__live_sources();
        let mut held = Vec::new();
        let mut timed_out = false;
        // A few connects may still fit (the kernel's exact limit varies); one soon cannot.
        for _ in 0..8 {
            match timeout(
                Duration::from_millis(200),
                untangle::net::TcpStream::connect(addr),
            )
            .await
            {
                Ok(stream) => held.push(stream.unwrap()),
                Err(_) => {
                    timed_out = true;
                    break;
                }
            }
        }
        assert!(
            timed_out,
            "every connect completed: the accept queue never filled"
        );
        assert_eq!(untangle::__live_sources(), before + held.len());
        drop(listener);
    });
}

/// A writer parked on a full send buffer (the peer never reads) is woken when the peer goes
/// away, and fails instead of waiting forever.
#[test]
fn a_writer_parked_on_a_full_buffer_fails_when_the_peer_is_dropped() {
    use futures_lite::AsyncWriteExt;
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = untangle::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let writer = untangle::spawn(async move {
            let chunk = vec![0u8; 64 * 1024];
            loop {
                if let Err(err) = client.write_all(&chunk).await {
                    return err;
                }
            }
        });
        // Let the writer fill both buffers and park.
        for _ in 0..50 {
            untangle::yield_now().await;
        }
        assert!(!writer.is_finished(), "the buffers never filled");
        // Unread data: closing sends a reset.
        drop(server);
        let err = timeout(Duration::from_secs(10), writer)
            .await
            .expect("the parked writer was never woken");
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{err:?}"
        );
    });
}

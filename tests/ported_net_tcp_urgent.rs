//! TCP urgent (out-of-band) data from a peer, as a hostile or old-fashioned client sends it
//! (`send(MSG_OOB)`, telnet's interrupt): a read stops short at the urgent mark although
//! ordinary data is queued behind it, so that short read must not be taken to mean the socket
//! is drained.

mod common;

use std::io::Write;
use std::time::Duration;

use common::run;
use futures_lite::AsyncReadExt;
use rustix::net::SendFlags;
use untangle::net::TcpListener;
use untangle::time::timeout;

#[test]
fn data_queued_behind_an_urgent_mark_is_read_without_a_new_event() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        // The reader parks first (its optimistic readiness cleared by a `WouldBlock`), so the
        // loop's next wait consumes the one event for all three sends below.
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
            got
        });
        for _ in 0..4 {
            untangle::yield_now().await;
        }
        // All of it is queued (loopback delivers before `send` returns) before the loop waits
        // again, and the client then stays open and silent: no further event will come.
        client.write_all(b"hello").unwrap();
        rustix::net::send(&client, b"!", SendFlags::OOB).unwrap();
        client.write_all(b"world").unwrap();
        let got = reader.await;
        // The urgent byte is out of band: not part of the stream.
        assert_eq!(got, b"helloworld");
        drop(client);
    });
}

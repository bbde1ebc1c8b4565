//! No file descriptor outlives its socket. Alone in its own test binary: `/proc/self/fd` counts
//! the whole process, and tests in one binary run on parallel threads.

mod common;

use std::collections::BTreeMap;

use common::run;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use untangle::net::{TcpListener, TcpStream};
use untangle::spawn;

/// The open fds of this process and what each refers to.
fn open_fds() -> BTreeMap<String, String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .filter_map(Result::ok)
        .map(|entry| {
            let target = std::fs::read_link(entry.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            (entry.file_name().to_string_lossy().into_owned(), target)
        })
        .collect()
}

#[test]
fn no_fd_is_left_open_after_ten_thousand_connections() {
    const CONNECTIONS: usize = 10_000;
    const CONCURRENT: usize = 50;
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The server writes one byte and closes first, so TIME_WAIT stays on the listener's
        // side and the client's ephemeral ports are free again at once.
        spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                // Ignore errors: the client may be gone already.
                let _ = conn.write_all(b"x").await;
            }
        })
        .detach();

        // Everything the loop creates lazily (poller, timers) exists from here on; the
        // listener's fd is open both before and after.
        let before = open_fds();
        for _ in 0..CONNECTIONS / CONCURRENT {
            let clients: Vec<_> = (0..CONCURRENT)
                .map(|_| {
                    spawn(async move {
                        let mut stream = TcpStream::connect(addr).await.unwrap();
                        let mut got = Vec::new();
                        stream.read_to_end(&mut got).await.unwrap();
                        assert_eq!(got, b"x");
                    })
                })
                .collect();
            for client in clients {
                client.await;
            }
        }
        // Tasks cancelled while connecting, or while holding a connection, leak nothing either.
        for _ in 0..100 {
            let connecting = spawn(TcpStream::connect(addr));
            let (connected, is_connected) = async_channel::bounded::<()>(1);
            let holding = spawn(async move {
                let _stream = TcpStream::connect(addr).await.unwrap();
                connected.send(()).await.unwrap();
                futures::future::pending::<()>().await
            });
            untangle::yield_now().await;
            drop(connecting);
            is_connected.recv().await.unwrap();
            drop(holding);
        }
        // Let the cancelled tasks' futures be dropped and the server side catch up.
        untangle::time::sleep(std::time::Duration::from_millis(50)).await;

        let after = open_fds();
        let leaked: Vec<_> = after
            .iter()
            .filter(|(fd, target)| before.get(*fd) != Some(target))
            .collect();
        assert!(
            leaked.is_empty() && before.len() == after.len(),
            "fds open before: {}, after: {}; new: {leaked:?}",
            before.len(),
            after.len()
        );
    });
}

//! UDP sockets, Unix-domain stream sockets, and `Async<T>` around any fd (std sockets, pipes).

mod common;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use common::{run, watchdog};
use futures::StreamExt;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use untangle::net::{UdpSocket, UnixListener, UnixStream};
use untangle::time::sleep;
use untangle::{spawn, yield_now, Async};

/// A fresh directory for socket files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("untangle-test-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- UDP ----

#[test]
fn udp_send_to_and_recv_from_exchange_datagrams() {
    run(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());

        assert_eq!(a.send_to(b"ping", b_addr).await.unwrap(), 4);
        let mut buf = [0; 64];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], a_addr));

        b.send_to(b"pong", from).await.unwrap();
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"pong"[..], b_addr));
    });
}

#[test]
fn udp_recv_from_waits_for_a_datagram() {
    run(async {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = receiver.local_addr().unwrap();
        let waiting = spawn(async move {
            let mut buf = [0; 16];
            let (n, _) = receiver.recv_from(&mut buf).await.unwrap();
            buf[..n].to_vec()
        });
        sleep(Duration::from_millis(10)).await;
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sender.send_to(b"late", addr).await.unwrap();
        assert_eq!(waiting.await, b"late");
    });
}

#[test]
fn udp_connect_then_send_and_recv() {
    run(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        a.connect(b.local_addr().unwrap()).await.unwrap();
        b.connect(a.local_addr().unwrap()).await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());

        for i in 0..50u8 {
            a.send(&[i; 3]).await.unwrap();
            let mut buf = [0; 8];
            let n = b.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &[i; 3]);
        }
        b.send(b"back").await.unwrap();
        let mut buf = [0; 8];
        let n = a.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"back");
    });
}

#[test]
fn udp_peek_from_leaves_the_datagram_queued() {
    run(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        a.send_to(b"twice", b.local_addr().unwrap()).await.unwrap();
        let mut buf = [0; 16];
        let (n, _) = b.peek_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"twice");
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"twice");
    });
}

/// Two loopback sockets connected to each other.
async fn connected_udp_pair() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    a.connect(b.local_addr().unwrap()).await.unwrap();
    b.connect(a.local_addr().unwrap()).await.unwrap();
    (a, b)
}

#[test]
fn peek_does_not_consume_datagram() {
    run(async {
        let (a, b) = connected_udp_pair().await;
        a.send(b"first").await.unwrap();
        a.send(b"second").await.unwrap();
        let mut buf = [0; 16];
        for _ in 0..3 {
            let n = b.peek(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"first");
        }
        // A short buffer truncates the peeked copy, not the queued datagram.
        let mut short = [0; 3];
        assert_eq!(b.peek(&mut short).await.unwrap(), 3);
        assert_eq!(&short, b"fir");
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"first");
        let n = b.peek(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"second");
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"second");
    });
}

#[test]
fn peek_keeps_the_socket_readable() {
    // Edge-triggered epoll reports a queued datagram once. If a successful peek cleared the
    // cached readiness, the recv below would park with no event to come: it must instead
    // complete on its first poll.
    run(async {
        let (a, b) = connected_udp_pair().await;
        a.send(b"stay").await.unwrap();
        let mut buf = [0; 16];
        assert_eq!(b.peek(&mut buf).await.unwrap(), 4);
        let polled = future::poll_once(b.recv(&mut buf)).await;
        assert_eq!(polled.map(Result::unwrap), Some(4));

        b.send_to(b"from", a.local_addr().unwrap()).await.unwrap();
        assert_eq!(a.peek_from(&mut buf).await.unwrap().0, 4);
        let polled = future::poll_once(a.recv_from(&mut buf)).await;
        assert_eq!(
            polled.map(Result::unwrap),
            Some((4, b.local_addr().unwrap()))
        );
    });
}

#[test]
fn peek_from_reports_sender() {
    run(async {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let first = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let second = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = receiver.local_addr().unwrap();
        // Loopback delivers during `send_to`, so the queue order is the send order.
        first.send_to(b"one", to).await.unwrap();
        second.send_to(b"two", to).await.unwrap();

        let mut buf = [0; 16];
        for (sender, msg) in [(&first, b"one"), (&second, b"two")] {
            let sender = sender.local_addr().unwrap();
            let (n, from) = receiver.peek_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (&msg[..], sender));
            let (n, from) = receiver.recv_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (&msg[..], sender));
        }
    });
}

#[test]
fn peek_waits_until_a_datagram_arrives() {
    run(async {
        let (a, b) = connected_udp_pair().await;
        // Leave the cached readiness set but the queue empty: the peek's first try then hits
        // WouldBlock, which must clear readiness and park the task rather than spin.
        a.send(b"old").await.unwrap();
        let mut buf = [0; 16];
        b.recv(&mut buf).await.unwrap();

        let b = Rc::new(b);
        let peeker = spawn({
            let b = b.clone();
            async move {
                let mut buf = [0; 16];
                let n = b.peek(&mut buf).await.unwrap();
                buf[..n].to_vec()
            }
        });
        for _ in 0..3 {
            yield_now().await;
        }
        assert!(!peeker.is_finished(), "peek returned with nothing queued");
        a.send(b"new").await.unwrap();
        assert_eq!(peeker.await, b"new");
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"new");
    });
}

#[test]
fn peek_from_waits_until_a_datagram_arrives() {
    run(async {
        let receiver = Rc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peeker = spawn({
            let receiver = receiver.clone();
            async move {
                let mut buf = [0; 16];
                let (n, from) = receiver.peek_from(&mut buf).await.unwrap();
                (buf[..n].to_vec(), from)
            }
        });
        for _ in 0..3 {
            yield_now().await;
        }
        assert!(
            !peeker.is_finished(),
            "peek_from returned with nothing queued"
        );
        sender
            .send_to(b"late", receiver.local_addr().unwrap())
            .await
            .unwrap();
        let sender = sender.local_addr().unwrap();
        assert_eq!(peeker.await, (b"late".to_vec(), sender));
        let mut buf = [0; 16];
        let (n, from) = receiver.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"late"[..], sender));
    });
}

#[test]
fn udp_bind_and_send_to_accept_host_names() {
    run(async {
        let a = UdpSocket::bind("localhost:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = b.local_addr().unwrap().port();
        a.send_to(b"named", ("localhost", port)).await.unwrap();
        let mut buf = [0; 16];
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"named");
    });
}

#[test]
fn udp_socket_converts_from_std() {
    run(async {
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = UdpSocket::try_from(std_socket).unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"std", socket.local_addr().unwrap()).unwrap();
        let mut buf = [0; 8];
        let (n, from) = socket.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"std"[..], peer.local_addr().unwrap()));
        socket.set_broadcast(true).unwrap();
    });
}

#[test]
fn udp_many_datagrams_in_both_directions() {
    run(async {
        let a = Rc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b_addr = b.local_addr().unwrap();
        // An echo on b; a sends one datagram at a time and waits for its echo (no loss on
        // loopback when nothing is in flight).
        let echo = spawn(async move {
            let mut buf = [0; 64];
            for _ in 0..500 {
                let (n, from) = b.recv_from(&mut buf).await.unwrap();
                b.send_to(&buf[..n], from).await.unwrap();
            }
        });
        for i in 0..500u32 {
            let msg = i.to_le_bytes();
            a.send_to(&msg, b_addr).await.unwrap();
            let mut buf = [0; 64];
            let (n, _) = a.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &msg);
        }
        echo.await;
    });
}

// ---- Unix-domain sockets ----

#[test]
fn unix_listener_accepts_a_connecting_stream() {
    let dir = TempDir::new("accept");
    let path = dir.path("sock");
    run(async {
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        let mut client = UnixStream::connect(&path).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        assert_eq!(
            client.peer_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );

        client.write_all(b"hello unix").await.unwrap();
        let mut buf = [0; 10];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello unix");

        server.write_all(b"bye").await.unwrap();
        server.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"bye");
    });
}

#[test]
fn unix_accept_waits_for_a_connection_and_incoming_yields_them() {
    let dir = TempDir::new("incoming");
    let path = dir.path("sock");
    run(async {
        let listener = UnixListener::bind(&path).unwrap();
        let connector = spawn({
            let path = path.clone();
            async move {
                sleep(Duration::from_millis(5)).await;
                let mut streams = Vec::new();
                for i in 0..3u8 {
                    let mut s = UnixStream::connect(&path).await.unwrap();
                    s.write_all(&[i]).await.unwrap();
                    streams.push(s);
                }
                streams
            }
        });
        let mut incoming = listener.incoming();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let mut conn = incoming.next().await.unwrap().unwrap();
            let mut byte = [0];
            conn.read_exact(&mut byte).await.unwrap();
            seen.push(byte[0]);
        }
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2]);
        drop(connector.await);
    });
}

#[test]
fn unix_connect_to_a_missing_path_fails() {
    let dir = TempDir::new("missing");
    let err = run(UnixStream::connect(dir.path("nobody-here"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
}

#[test]
fn unix_pair_reads_and_writes_both_ways() {
    run(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(b"to b").await.unwrap();
        b.write_all(b"to a").await.unwrap();
        let mut buf = [0; 4];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"to b");
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"to a");
    });
}

#[test]
fn unix_stream_large_transfer_with_concurrent_reader_and_writer() {
    const LEN: usize = 4 * 1024 * 1024;
    run(async {
        let (a, b) = UnixStream::pair().unwrap();
        let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        let writer = spawn({
            let data = data.clone();
            async move {
                let mut a = &a;
                a.write_all(&data).await.unwrap();
                a.close().await.unwrap();
            }
        });
        let mut got = Vec::new();
        (&b).read_to_end(&mut got).await.unwrap();
        writer.await;
        assert!(got == data);
    });
}

#[test]
fn unix_data_and_eof_that_arrive_together_are_both_read() {
    run(async {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut buf = [0; 64];
        // `a` waits for data first, so the data and the EOF below reach it in one event.
        let reader = spawn(async move {
            let n = a.read(&mut buf).await.unwrap();
            let first = buf[..n].to_vec();
            let eof = a.read(&mut buf).await.unwrap();
            (first, eof)
        });
        yield_now().await;
        let mut b = b;
        b.write_all(b"last").await.unwrap();
        drop(b);
        let (first, eof) = reader.await;
        assert_eq!(first, b"last");
        assert_eq!(eof, 0);
    });
}

#[test]
fn unix_types_convert_from_std() {
    let dir = TempDir::new("from-std");
    let path = dir.path("sock");
    run(async {
        let std_listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let listener = UnixListener::try_from(std_listener).unwrap();
        let std_client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let mut client = UnixStream::try_from(std_client).unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        client.write_all(b"converted").await.unwrap();
        let mut buf = [0; 9];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"converted");
    });
}

#[test]
fn unix_read_wakes_when_a_std_thread_writes() {
    let _watchdog = watchdog("unix_read_wakes_when_a_std_thread_writes");
    // No timers: only the fd's readiness can wake the loop.
    untangle::block_on(async {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut a = UnixStream::try_from(a).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            b.write_all(b"from thread").unwrap();
        });
        let mut buf = [0; 11];
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"from thread");
        writer.join().unwrap();
    });
}

#[test]
fn unix_connect_addr_to_an_unnamed_address_fails() {
    run(async {
        // A socket from `pair` has an unnamed address: nothing can connect to it.
        let (a, _b) = UnixStream::pair().unwrap();
        let unnamed = a.local_addr().unwrap();
        assert!(unnamed.is_unnamed());
        let err = UnixStream::connect_addr(&unnamed).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
    });
}

#[test]
fn unix_path_with_an_interior_nul_is_rejected() {
    // Only a leading NUL means an abstract name; one inside a path is an error, as in std.
    let path = "untangle\0sock";
    let err = run(async { UnixListener::bind(path) }).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
    let err = run(UnixStream::connect(path)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
}

#[test]
fn unix_bind_addr_and_connect_addr_take_a_socket_file_address() {
    let dir = TempDir::new("bind-addr");
    let path = dir.path("sock");
    run(async {
        let addr = std::os::unix::net::SocketAddr::from_pathname(&path).unwrap();
        let listener = UnixListener::bind_addr(&addr).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        let mut client = UnixStream::connect_addr(&listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        client.write_all(b"by addr").await.unwrap();
        let mut buf = [0; 7];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"by addr");
    });
}

/// Abstract socket names: no file, a name that starts with a NUL byte.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod abstract_names {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    use std::path::Path;

    use super::*;

    /// A `\0`-prefixed path whose name no other test or test process uses (the abstract
    /// namespace is shared by every process in the network namespace).
    fn abstract_path(test: &str) -> String {
        format!("\0untangle-test-{}-{test}", std::process::id())
    }

    #[test]
    fn abstract_unix_names_bind_and_connect() {
        let path = abstract_path("bind-connect");
        let name = &path.as_bytes()[1..];
        run(async {
            let listener = UnixListener::bind(&path).unwrap();
            let local = listener.local_addr().unwrap();
            assert_eq!(local.as_abstract_name(), Some(name));
            assert_eq!(local.as_pathname(), None);

            let mut client = UnixStream::connect(&path).await.unwrap();
            let (mut server, from) = listener.accept().await.unwrap();
            assert_eq!(client.peer_addr().unwrap().as_abstract_name(), Some(name));
            assert_eq!(server.local_addr().unwrap().as_abstract_name(), Some(name));
            // The client bound nothing.
            assert!(from.is_unnamed());

            client.write_all(b"abstract").await.unwrap();
            let mut buf = [0; 8];
            server.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"abstract");
            server.write_all(b"ok").await.unwrap();
            let mut buf = [0; 2];
            client.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ok");
        });
        // No socket file was created under the name.
        assert!(!Path::new(&path[1..]).exists());
    }

    #[test]
    fn abstract_unix_names_bind_addr_and_connect_addr() {
        let path = abstract_path("bind-addr");
        let name = &path.as_bytes()[1..];
        run(async {
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
            let listener = UnixListener::bind_addr(&addr).unwrap();
            assert_eq!(
                listener.local_addr().unwrap().as_abstract_name(),
                Some(name)
            );
            let client = UnixStream::connect_addr(&addr).await.unwrap();
            let _accepted = listener.accept().await.unwrap();
            assert_eq!(client.peer_addr().unwrap().as_abstract_name(), Some(name));
            // The listener's own address connects too.
            let again = UnixStream::connect_addr(&listener.local_addr().unwrap())
                .await
                .unwrap();
            assert_eq!(again.peer_addr().unwrap().as_abstract_name(), Some(name));
        });
    }

    #[test]
    fn abstract_unix_name_is_released_when_the_listener_closes() {
        let path = abstract_path("release");
        run(async {
            let listener = UnixListener::bind(&path).unwrap();
            let err = UnixListener::bind(&path).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err:?}");
            // No file to remove: closing the socket frees the name.
            drop(listener);
            let _listener = UnixListener::bind(&path).unwrap();
        });
    }

    #[test]
    fn abstract_unix_connect_to_an_unbound_name_is_refused() {
        let path = abstract_path("nobody-here");
        let err = run(UnixStream::connect(&path)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[test]
fn abstract_unix_names_are_unsupported_elsewhere() {
    let path = "\0untangle-test-unsupported";
    let err = run(async { UnixListener::bind(path) }).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err:?}");
    let err = run(UnixStream::connect(path)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err:?}");
}

// ---- Async<T> around any fd ----

#[test]
fn async_readable_and_read_with_on_a_std_unix_stream() {
    run(async {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = Async::new(a).unwrap();
        let b = Async::new(b).unwrap();
        // Writable at once; not readable until b writes.
        a.writable().await.unwrap();
        let reader = spawn(async move {
            a.readable().await.unwrap();
            let mut buf = [0; 16];
            let n = a.read_with(|s| (&*s).read(&mut buf)).await.unwrap();
            buf[..n].to_vec()
        });
        sleep(Duration::from_millis(5)).await;
        b.write_with(|s| (&*s).write(b"read_with")).await.unwrap();
        assert_eq!(reader.await, b"read_with");
    });
}

#[test]
fn async_read_with_retries_after_would_block() {
    run(async {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = Async::new(a).unwrap();
        // Consume one byte: the fd stays marked readable although it is now empty.
        b.write_all(b"1").unwrap();
        let mut one = [0; 1];
        a.read_with(|s| (&*s).read(&mut one)).await.unwrap();

        let calls = Rc::new(Cell::new(0));
        let reader = spawn({
            let calls = calls.clone();
            async move {
                let mut buf = [0; 8];
                let n = a
                    .read_with(|s| {
                        calls.set(calls.get() + 1);
                        (&*s).read(&mut buf)
                    })
                    .await
                    .unwrap();
                buf[..n].to_vec()
            }
        });
        sleep(Duration::from_millis(5)).await;
        b.write_all(b"retry").unwrap();
        assert_eq!(reader.await, b"retry");
        // The first try hit WouldBlock and parked; the data's event brought a second.
        assert!(
            calls.get() >= 2,
            "read_with ran its operation {} times",
            calls.get()
        );
    });
}

#[test]
fn async_pipe_to_a_child_process_reads_and_writes() {
    // `cat` echoes our pipe's bytes back on another pipe.
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run cat");
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    run(async {
        let mut input = Async::new(stdin).unwrap();
        let mut output = Async::new(stdout).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let writer = async {
            input.write_all(&data).await.unwrap();
            drop(input);
        };
        let reader = async {
            let mut got = Vec::new();
            output.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), got) = futures::join!(writer, reader);
        assert!(got == data);
    });
    assert!(child.wait().unwrap().success());
}

#[test]
fn several_tasks_waiting_readable_on_one_fd_are_all_woken() {
    const WAITERS: usize = 8;
    run(async {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = Rc::new(Async::new(a).unwrap());
        let woken = Rc::new(Cell::new(0));
        let tasks: Vec<_> = (0..WAITERS)
            .map(|_| {
                let a = a.clone();
                let woken = woken.clone();
                spawn(async move {
                    a.readable().await.unwrap();
                    woken.set(woken.get() + 1);
                })
            })
            .collect();
        // Every waiter is parked before the data arrives.
        for _ in 0..3 {
            yield_now().await;
        }
        assert_eq!(woken.get(), 0);
        b.write_all(b"x").unwrap();
        for task in tasks {
            task.await;
        }
        assert_eq!(woken.get(), WAITERS);
    });
}

#[test]
fn dropped_readable_waiter_does_not_block_the_others() {
    run(async {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = Rc::new(Async::new(a).unwrap());
        let first = spawn({
            let a = a.clone();
            async move { a.readable().await.unwrap() }
        });
        let second = spawn({
            let a = a.clone();
            async move { a.readable().await.unwrap() }
        });
        yield_now().await;
        drop(first);
        yield_now().await;
        b.write_all(b"x").unwrap();
        second.await;
    });
}

#[test]
fn async_into_inner_returns_the_io_object() {
    run(async {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = Async::new(a).unwrap();
        let mut a = a.into_inner().unwrap();
        let mut b = b;
        // Still usable (non-blocking) without the reactor.
        b.write_all(b"raw").unwrap();
        let mut buf = [0; 3];
        loop {
            match a.read(&mut buf) {
                Ok(n) => {
                    assert_eq!(&buf[..n], b"raw");
                    break;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => yield_now().await,
                Err(e) => panic!("{e}"),
            }
        }
    });
}

#[test]
fn unix_data_and_eof_in_one_event_are_both_read() {
    run(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"last words").await.unwrap();
        drop(b);
        let mut buf = [0; 64];
        let n = a.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"last words");
        // The short read drained the queue, but the hang-up was seen: EOF is still readable.
        assert_eq!(a.read(&mut buf).await.unwrap(), 0);
    });
}

#[test]
fn unix_eof_after_a_short_read_wakes_the_reader() {
    run(async {
        let (mut a, b) = UnixStream::pair().unwrap();
        (&b).write_all(b"first").await.unwrap();
        let mut buf = [0; 64];
        let n = a.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"first");
        let reader = spawn(async move { a.read(&mut [0; 64]).await.unwrap() });
        sleep(Duration::from_millis(10)).await;
        b.shutdown(Shutdown::Write).unwrap();
        assert_eq!(reader.await, 0);
    });
}

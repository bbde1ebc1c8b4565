//! Unix-domain sockets as tokio's `tests/uds_*.rs` and async-io's `uds_*` tests test them,
//! ported to untangle's API: stream accept/read/write, hang-ups, shutdown, refused connects,
//! concurrent accepts, abstract names, and `UnixDatagram` (pairs, bound and unbound sockets,
//! echo, a full receive queue, shutdown).

mod common;

use std::io::ErrorKind;
use std::net::Shutdown;
use std::path::PathBuf;
use std::rc::Rc;

use common::run;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use untangle::net::{UnixDatagram, UnixListener, UnixStream};
use untangle::{spawn, yield_now};

const LOREM_IPSUM: &[u8] = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n";

/// A fresh directory for socket files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("untangle-ported-{}-{test}", std::process::id()));
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

async fn settle() {
    for _ in 0..4 {
        yield_now().await;
    }
}

/// An abstract name unique to this process and test.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_name(test: &str) -> String {
    format!("\0untangle-ported-{}-{test}", std::process::id())
}

// ---- streams (tokio uds_stream.rs, async-io uds_*) ----

#[test]
fn accept_read_write_then_eof() {
    run(async {
        let dir = TempDir::new("accept_read_write");
        let path = dir.path("sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (client, accepted) = future::zip(UnixStream::connect(&path), listener.accept()).await;
        let (mut client, (mut server, _)) = (client.unwrap(), accepted.unwrap());
        assert_eq!(
            client.peer_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        assert!(client.local_addr().unwrap().is_unnamed());
        client.write_all(b"hello").await.unwrap();
        drop(client);
        let mut buf = Vec::new();
        server.read_to_end(&mut buf).await.unwrap();
        assert_eq!(buf, b"hello");
        assert_eq!(server.read(&mut [0; 4]).await.unwrap(), 0);
    });
}

#[test]
fn shutdown_write_gives_the_peer_eof_and_keeps_the_read_side() {
    run(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(LOREM_IPSUM).await.unwrap();
        a.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, LOREM_IPSUM);
        let err = a.write_all(b"x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err:?}");
        b.write_all(b"reply").await.unwrap();
        let mut reply = [0; 5];
        a.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"reply");
    });
}

#[test]
fn writes_fail_once_the_reader_hangs_up() {
    run(async {
        let (a, mut b) = UnixStream::pair().unwrap();
        spawn(async move {
            settle().await;
            drop(a);
        })
        .detach();
        let mut n = 0u32;
        let err = loop {
            if let Err(err) = b.write_all(LOREM_IPSUM).await {
                break err;
            }
            n += 1;
            if n % 64 == 0 {
                yield_now().await;
            }
        };
        assert!(
            matches!(
                err.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
            "{err:?}"
        );
    });
}

#[test]
fn read_to_end_is_empty_once_the_writer_hangs_up() {
    run(async {
        let (a, mut b) = UnixStream::pair().unwrap();
        spawn(async move {
            settle().await;
            drop(a);
        })
        .detach();
        let mut v = Vec::new();
        b.read_to_end(&mut v).await.unwrap();
        assert!(v.is_empty());
    });
}

#[test]
fn connect_after_the_listener_is_dropped_is_refused() {
    run(async {
        let dir = TempDir::new("refused");
        let path = dir.path("sock");
        let listener = UnixListener::bind(&path).unwrap();
        let _client = UnixStream::connect(&path).await.unwrap();
        drop(listener);
        // The socket file stays; nobody listens on it.
        let err = UnixStream::connect(&path).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
    });
}

#[test]
fn every_task_waiting_in_unix_accept_is_woken() {
    let _guard = common::watchdog("every_task_waiting_in_unix_accept_is_woken");
    untangle::block_on(async {
        let dir = TempDir::new("accept_many");
        let path = dir.path("sock");
        let listener = Rc::new(UnixListener::bind(&path).unwrap());
        let acceptors: Vec<_> = (0..8)
            .map(|_| {
                let listener = listener.clone();
                spawn(async move { listener.accept().await.unwrap().0 })
            })
            .collect();
        settle().await;
        let mut clients = Vec::new();
        for _ in 0..8 {
            clients.push(UnixStream::connect(&path).await.unwrap());
        }
        for a in acceptors {
            a.await;
        }
    });
}

#[test]
fn a_fresh_pair_is_writable_and_not_readable() {
    run(async {
        let (a, b) = UnixStream::pair().unwrap();
        a.writable().await.unwrap();
        let mut readable = Box::pin(b.readable());
        // `pair` sockets start with no cached readiness: the first event says what they are.
        let mut pending = false;
        for _ in 0..4 {
            if future::poll_once(&mut readable).await.is_none() {
                pending = true;
                break;
            }
            // An optimistic start is allowed; a read must then find nothing.
            assert!(future::poll_once((&b).read(&mut [0; 1])).await.is_none());
            readable = Box::pin(b.readable());
        }
        assert!(pending, "readable() stayed ready with nothing to read");
        (&a).write_all(b"hi").await.unwrap();
        readable.await.unwrap();
        let mut buf = [0; 2];
        (&b).read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
    });
}

#[test]
fn split_halves_echo_concurrently() {
    run(async {
        let (a, b) = UnixStream::pair().unwrap();
        // b echoes through its split halves.
        let echo = spawn(async move {
            let (mut rd, mut wr) = futures_lite::io::split(b);
            let n = futures_lite::io::copy(&mut rd, &mut wr).await.unwrap();
            wr.close().await.unwrap();
            n
        });
        let data: Vec<u8> = (0..200_000).map(|i| (i % 253) as u8).collect();
        let (mut rd, mut wr) = futures_lite::io::split(a);
        let writer = {
            let data = data.clone();
            spawn(async move {
                wr.write_all(&data).await.unwrap();
                wr.close().await.unwrap();
            })
        };
        let mut back = Vec::new();
        rd.read_to_end(&mut back).await.unwrap();
        writer.await;
        assert_eq!(echo.await, data.len() as u64);
        assert_eq!(back, data);
    });
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn abstract_stream_names_bind_accept_and_report_the_name() {
    use std::os::linux::net::SocketAddrExt;
    run(async {
        let path = abstract_name("stream");
        let listener = UnixListener::bind(&path).unwrap();
        let (client, accepted) = future::zip(UnixStream::connect(&path), listener.accept()).await;
        let (mut client, (mut server, _)) = (client.unwrap(), accepted.unwrap());
        let name = &path.as_bytes()[1..];
        assert_eq!(server.local_addr().unwrap().as_abstract_name(), Some(name));
        assert_eq!(client.peer_addr().unwrap().as_abstract_name(), Some(name));
        client.write_all(LOREM_IPSUM).await.unwrap();
        let mut buf = vec![0; LOREM_IPSUM.len()];
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(&buf).await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, LOREM_IPSUM);
        drop(listener);
        // The name is released with the socket: binding it again works.
        UnixListener::bind(&path).unwrap();
    });
}

// ---- datagrams (tokio uds_datagram.rs, async-io uds_send_recv, uds_send_to_recv_from) ----

#[test]
fn datagram_pair_send_recv_keeps_boundaries() {
    run(async {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.send(LOREM_IPSUM).await.unwrap();
        a.send(b"").await.unwrap();
        a.send(b"two").await.unwrap();
        let mut buf = [0; 1024];
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], LOREM_IPSUM);
        assert_eq!(b.recv(&mut buf).await.unwrap(), 0);
        let mut small = [0; 2];
        assert_eq!(b.recv(&mut small).await.unwrap(), 2);
        assert_eq!(&small, b"tw");
        assert!(a.peer_addr().unwrap().is_unnamed());
    });
}

#[test]
fn datagram_unbound_sender_to_a_bound_receiver() {
    run(async {
        let dir = TempDir::new("dgram_unbound");
        let path = dir.path("sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let sender = UnixDatagram::unbound().unwrap();
        sender.send_to(LOREM_IPSUM, &path).await.unwrap();
        let mut buf = [0; 1024];
        let (n, from) = receiver.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], LOREM_IPSUM);
        assert!(from.is_unnamed());
        assert_eq!(
            receiver.local_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
    });
}

/// tokio's `echo` and `echo_from`: a server answering each datagram to its sender's address.
#[test]
fn datagram_echo_server_answers_each_sender() {
    run(async {
        let dir = TempDir::new("dgram_echo");
        let server_path = dir.path("server");
        let server = UnixDatagram::bind(&server_path).unwrap();
        spawn(async move {
            let mut buf = [0; 1024];
            loop {
                let (n, from) = server.recv_from(&mut buf).await.unwrap();
                let to = from.as_pathname().unwrap().to_owned();
                server.send_to(&buf[..n], to).await.unwrap();
            }
        })
        .detach();
        for i in 0..3 {
            let client_path = dir.path(&format!("client{i}"));
            let client = UnixDatagram::bind(&client_path).unwrap();
            client.connect(&server_path).unwrap();
            assert_eq!(
                client.peer_addr().unwrap().as_pathname(),
                Some(server_path.as_path())
            );
            client.send(b"ECHO").await.unwrap();
            let mut buf = [0; 16];
            let (n, from) = client.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"ECHO");
            assert_eq!(from.as_pathname(), Some(server_path.as_path()));
        }
    });
}

/// A sender that fills the receiver's queue waits for room (the writability event when the
/// receiver dequeues) instead of failing or spinning, and every datagram arrives in order.
#[test]
fn datagram_sender_waits_for_room_in_a_full_queue() {
    run(async {
        const N: u32 = 3000;
        let (a, b) = UnixDatagram::pair().unwrap();
        let sender = spawn(async move {
            for i in 0..N {
                a.send(&i.to_le_bytes()).await.unwrap();
            }
        });
        settle().await;
        assert!(!sender.is_finished(), "{N} datagrams fit without waiting");
        let mut buf = [0; 4];
        for i in 0..N {
            assert_eq!(b.recv(&mut buf).await.unwrap(), 4);
            assert_eq!(u32::from_le_bytes(buf), i);
        }
        sender.await;
    });
}

#[test]
fn datagram_shutdown_write_fails_later_sends() {
    run(async {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.send(b"before").await.unwrap();
        a.shutdown(Shutdown::Write).unwrap();
        let err = a.send(b"x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err:?}");
        // What was sent before the shutdown is still delivered.
        let mut buf = [0; 8];
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"before");
        b.send(b"other way").await.unwrap();
        let n = a.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"other wa");
    });
}

#[test]
fn datagram_to_a_missing_path_fails() {
    run(async {
        let dir = TempDir::new("dgram_missing");
        let sender = UnixDatagram::unbound().unwrap();
        let err = sender.send_to(b"x", dir.path("nobody")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    });
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn datagram_abstract_names() {
    use std::os::linux::net::SocketAddrExt;
    run(async {
        let path = abstract_name("dgram");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let sender = UnixDatagram::unbound().unwrap();
        sender.send_to(b"abstract", &path).await.unwrap();
        let mut buf = [0; 16];
        let (n, _) = receiver.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"abstract");
        sender.connect(&path).unwrap();
        assert_eq!(
            sender.peer_addr().unwrap().as_abstract_name(),
            Some(&path.as_bytes()[1..])
        );
        sender.send(b"connected").await.unwrap();
        let n = receiver.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"connected");
    });
}

#[test]
fn datagram_converts_from_std() {
    run(async {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let a = UnixDatagram::try_from(a).unwrap();
        b.send(b"from std").unwrap();
        let mut buf = [0; 16];
        let n = a.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"from std");
    });
}

/// A peer that passes a file descriptor (`SCM_RIGHTS`) along with some bytes: a read stops at
/// the end of that message though more data is queued behind it, so the short read must not
/// be taken to mean the socket is drained (no further event would announce that data).
#[test]
fn data_queued_behind_a_message_carrying_fds_is_read_without_a_new_event() {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::io::{IoSlice, Write};
    use std::mem::MaybeUninit;
    use std::os::fd::AsFd;
    use std::time::Duration;
    run(async {
        let (mut peer, ours) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut ours = UnixStream::try_from(ours).unwrap();
        // The reader parks first, so the loop's next wait consumes one event for both sends.
        let reader = spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0; 64];
            while got.len() < 10 {
                let n = untangle::time::timeout(Duration::from_secs(10), ours.read(&mut buf))
                    .await
                    .expect("data behind the fd-carrying message was never read")
                    .unwrap();
                assert_ne!(n, 0, "early EOF");
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        settle().await;
        let passed = std::fs::File::open("/dev/null").unwrap();
        let fds = [passed.as_fd()];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        let sent = rustix::net::sendmsg(
            &peer,
            &[IoSlice::new(b"hello")],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
        assert_eq!(sent, 5);
        peer.write_all(b"world").unwrap();
        assert_eq!(reader.await, b"helloworld");
    });
}

/// A sender parked on a full queue is woken when the receiver goes away, and fails instead of
/// waiting forever; later sends fail too.
#[test]
fn datagram_sender_parked_on_a_full_queue_fails_when_the_receiver_is_dropped() {
    run(async {
        let (a, b) = UnixDatagram::pair().unwrap();
        let sender = spawn(async move {
            loop {
                if let Err(err) = a.send(b"fill").await {
                    return (err, a);
                }
            }
        });
        settle().await;
        assert!(!sender.is_finished(), "the queue never filled");
        drop(b);
        let (err, a) = sender.await;
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
        assert!(a.send(b"again").await.is_err());
    });
}

/// Linux refuses a non-blocking connect to a listener with a full backlog (`EAGAIN`); that is
/// an error, not a stream that looks connected.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn connect_to_a_listener_with_a_full_backlog_is_would_block() {
    run(async {
        let dir = TempDir::new("full_backlog");
        let path = dir.path("sock");
        // Backlog 0 (std's `bind` uses the system maximum, thousands): one pending
        // connection fills it.
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};
        let fd = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
        rustix::net::bind(&fd, &SocketAddrUnix::new(&path).unwrap()).unwrap();
        rustix::net::listen(&fd, 0).unwrap();
        let listener = UnixListener::try_from(std::os::unix::net::UnixListener::from(fd)).unwrap();
        let mut held = Vec::new();
        let err = loop {
            match UnixStream::connect(&path).await {
                Ok(stream) => held.push(stream),
                Err(err) => break err,
            }
            assert!(held.len() < 64, "the backlog never filled");
        };
        assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err:?}");
        // Accepting one makes room again.
        let _accepted = listener.accept().await.unwrap();
        held.push(UnixStream::connect(&path).await.unwrap());
    });
}

//! TCP behaviour as tokio's `tests/tcp_*.rs` and async-io's `tests/async.rs` test it, ported to
//! untangle's API: concurrent accepts on one listener, every address form, IPv6 loopback,
//! refused connects, peek, hang-ups in each direction, shutdown and resets, zero-length and
//! after-EOF operations, options, and sockets shared between loops on several threads.

mod common;

use std::future::Future;
use std::io::{ErrorKind, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use common::{run, watchdog};
use futures::StreamExt;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use untangle::net::{TcpListener, TcpStream};
use untangle::{spawn, yield_now};

const LOREM_IPSUM: &[u8] = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n\
Donec pretium ante erat, vitae sodales mi varius quis.\n";

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A connected (client, server) pair.
async fn pair() -> (TcpStream, TcpStream) {
    let (listener, addr) = listener().await;
    let (client, accepted) = future::zip(TcpStream::connect(addr), listener.accept()).await;
    (client.unwrap(), accepted.unwrap().0)
}

/// Lets every other ready task of this loop run until it parks.
async fn settle() {
    for _ in 0..4 {
        yield_now().await;
    }
}

/// Polls `future` once: whether it is still pending.
async fn is_pending<F: Future + Unpin>(future: &mut F) -> bool {
    future::poll_once(future).await.is_none()
}

// ---- accept (tokio tcp_accept.rs) ----

#[test]
fn accept_on_each_address_form() {
    run(async {
        let forms: Vec<TcpListener> = vec![
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            TcpListener::bind(String::from("127.0.0.1:0"))
                .await
                .unwrap(),
            TcpListener::bind("localhost:0").await.unwrap(),
            TcpListener::bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
                .await
                .unwrap(),
            TcpListener::bind(("127.0.0.1", 0)).await.unwrap(),
            TcpListener::bind(("127.0.0.1".parse::<IpAddr>().unwrap(), 0))
                .await
                .unwrap(),
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap(),
        ];
        for listener in forms {
            let addr = listener.local_addr().unwrap();
            let accept = spawn(async move { listener.accept().await.unwrap().0 });
            let client = TcpStream::connect(addr).await.unwrap();
            let server = accept.await;
            assert_eq!(client.local_addr().unwrap(), server.peer_addr().unwrap());
            assert_eq!(client.peer_addr().unwrap(), server.local_addr().unwrap());
        }
    });
}

/// tokio's `accept_many`: every task waiting in `accept` on one shared listener is woken by a
/// connection (a single waker slot would keep only the last one).
#[test]
fn every_task_waiting_in_accept_on_a_shared_listener_is_woken() {
    let _guard = watchdog("every_task_waiting_in_accept_on_a_shared_listener_is_woken");
    const N: usize = 20;
    untangle::block_on(async {
        let (listener, addr) = listener().await;
        let woken = Rc::new(std::cell::Cell::new(0));
        let mut tasks = Vec::new();
        for _ in 0..N {
            let listener = listener.clone();
            let woken = woken.clone();
            tasks.push(spawn(async move {
                let mut accept = pin!(listener.accept());
                future::poll_fn(|cx| match accept.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(result) => Poll::Ready(result),
                })
                .await
                .map(|(stream, _)| {
                    woken.set(woken.get() + 1);
                    stream
                })
            }));
        }
        settle().await;
        // N connections: each accepting task must get one, whichever polled last.
        let mut clients = Vec::new();
        for _ in 0..N {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(woken.get(), N);
    });
}

/// Two tasks accept on clones of one listener; the one that polled last takes the first
/// connection and stops; the other must still be woken by the second.
#[test]
fn an_acceptor_that_polled_first_still_gets_the_next_connection() {
    let _guard = watchdog("an_acceptor_that_polled_first_still_gets_the_next_connection");
    untangle::block_on(async {
        let (listener, addr) = listener().await;
        let (a, b) = (listener.clone(), listener.clone());
        let first = spawn(async move { a.accept().await.unwrap().1 });
        settle().await;
        let second = spawn(async move { b.accept().await.unwrap().1 });
        settle().await;
        let c1 = TcpStream::connect(addr).await.unwrap();
        let c2 = TcpStream::connect(addr).await.unwrap();
        let mut peers = vec![first.await, second.await];
        peers.sort();
        let mut expected = vec![c1.local_addr().unwrap(), c2.local_addr().unwrap()];
        expected.sort();
        assert_eq!(peers, expected);
    });
}

#[test]
fn incoming_on_a_cloned_listener_next_to_accept() {
    run(async {
        let (listener, addr) = listener().await;
        let other = listener.clone();
        let acceptor = spawn(async move { other.accept().await.unwrap().0 });
        let incoming = spawn(async move {
            let mut incoming = listener.incoming();
            incoming.next().await.unwrap().unwrap()
        });
        settle().await;
        let _c1 = TcpStream::connect(addr).await.unwrap();
        let _c2 = TcpStream::connect(addr).await.unwrap();
        acceptor.await;
        incoming.await;
    });
}

// ---- connect (tokio tcp_connect.rs, async-io tcp_connect) ----

/// `::1` may be missing (IPv6 disabled in a container); then the IPv6 tests have nothing to
/// test and say so.
async fn ipv6_listener() -> Option<TcpListener> {
    match TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).await {
        Ok(listener) => Some(listener),
        Err(err) => {
            eprintln!("skipped: no IPv6 loopback on this machine ({err})");
            None
        }
    }
}

#[test]
fn connect_v6_loopback_and_exchange_data() {
    run(async {
        let Some(listener) = ipv6_listener().await else {
            return;
        };
        let addr = listener.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(client.peer_addr().unwrap(), addr);
        assert_eq!(server.local_addr().unwrap(), addr);
        client.write_all(LOREM_IPSUM).await.unwrap();
        let mut buf = vec![0; LOREM_IPSUM.len()];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, LOREM_IPSUM);
        // The `[::1]:port` string form resolves without the resolver.
        let text = format!("[::1]:{}", addr.port());
        TcpStream::connect(text.as_str()).await.unwrap();
        TcpStream::connect(("::1", addr.port())).await.unwrap();
    });
}

#[test]
fn connect_after_the_listener_is_dropped_is_refused() {
    run(async {
        let (listener, addr) = listener().await;
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
        drop(listener);
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
    });
}

#[test]
fn connect_tries_each_address_until_one_answers() {
    run(async {
        // A bound, non-listening socket's port refuses (and stays ours while it is open); the
        // listener behind it answers.
        let (listener, good) = listener().await;
        use rustix::net::{AddressFamily, SocketType};
        let socket = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        rustix::net::bind(&socket, &"127.0.0.1:0".parse::<SocketAddr>().unwrap()).unwrap();
        let refused: SocketAddr = rustix::net::getsockname(&socket)
            .unwrap()
            .try_into()
            .unwrap();
        let addrs = [refused, good];
        let client = TcpStream::connect(&addrs[..]).await.unwrap();
        assert_eq!(client.peer_addr().unwrap(), good);
        drop((listener, socket));
    });
}

#[test]
fn a_cancelled_connect_releases_its_socket() {
    run(async {
        let (listener, addr) = listener().await;
        let before = untangle::__live_sources();
        {
            let mut connect = pin!(TcpStream::connect(addr));
            // Pending (the handshake is in progress) or already done: either way, dropping it
            // must deregister and close its socket.
            let _ = future::poll_once(connect.as_mut()).await;
        }
        assert_eq!(untangle::__live_sources(), before);
        drop(listener);
    });
}

// ---- data, peek, hang-ups (async-io tcp_peek_read, tcp_reader_hangup, tcp_writer_hangup) ----

#[test]
fn peek_then_read_through_incoming() {
    run(async {
        let (listener, addr) = listener().await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(LOREM_IPSUM).await.unwrap();
        let mut incoming = listener.incoming();
        let mut server = incoming.next().await.unwrap().unwrap();
        let mut buf = [0; 1024];
        // A peek may see part of what was sent; it never consumes it.
        let n = server.peek(&mut buf).await.unwrap();
        assert!(n > 0 && LOREM_IPSUM.starts_with(&buf[..n]));
        let n2 = server.peek(&mut buf).await.unwrap();
        assert!(n2 >= n);
        let mut all = vec![0; LOREM_IPSUM.len()];
        server.read_exact(&mut all).await.unwrap();
        assert_eq!(all, LOREM_IPSUM);
    });
}

#[test]
fn many_tasks_peeking_one_stream_are_all_woken() {
    run(async {
        let (mut client, server) = pair().await;
        let server = Rc::new(server);
        let peekers: Vec<_> = (0..8)
            .map(|_| {
                let server = server.clone();
                spawn(async move {
                    let mut buf = [0; 4];
                    let n = server.peek(&mut buf).await.unwrap();
                    buf[..n].to_vec()
                })
            })
            .collect();
        settle().await;
        client.write_all(b"ping").await.unwrap();
        for peeker in peekers {
            let got = peeker.await;
            assert!(!got.is_empty() && b"ping".starts_with(&got));
        }
    });
}

#[test]
fn writing_to_a_dropped_peer_fails_instead_of_hanging_or_killing_the_process() {
    run(async {
        let (mut client, server) = pair().await;
        spawn(async move {
            settle().await;
            drop(server);
        })
        .detach();
        // The first writes fill buffers or are answered by a reset; then writes fail.
        let mut writes = 0;
        let err = loop {
            match client.write_all(LOREM_IPSUM).await {
                Ok(()) => writes += 1,
                Err(err) => break err,
            }
            if writes % 64 == 0 {
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
        // Vectored writes fail the same way.
        let bufs = [IoSlice::new(b"a"), IoSlice::new(b"b")];
        let err = client.write_vectored(&bufs).await.unwrap_err();
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
fn read_to_end_after_the_writer_hangs_up_is_empty() {
    run(async {
        let (mut client, server) = pair().await;
        spawn(async move {
            settle().await;
            drop(server);
        })
        .detach();
        let mut v = Vec::new();
        client.read_to_end(&mut v).await.unwrap();
        assert!(v.is_empty());
    });
}

#[test]
fn reads_after_eof_keep_returning_zero_and_read_exact_fails() {
    run(async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"abc").await.unwrap();
        client.close().await.unwrap();
        let mut buf = [0; 8];
        let mut got = Vec::new();
        loop {
            let n = server.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"abc");
        for _ in 0..3 {
            assert_eq!(server.read(&mut buf).await.unwrap(), 0);
        }
        let err = server.read_exact(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
        // The write half is still open: the half-closed client can read the reply.
        server.write_all(b"reply").await.unwrap();
        let mut reply = [0; 5];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"reply");
    });
}

#[test]
fn zero_length_reads_and_writes_complete_at_once() {
    run(async {
        let (mut client, mut server) = pair().await;
        // Nothing to read: a zero-length read must not wait for data.
        assert_eq!(server.read(&mut []).await.unwrap(), 0);
        assert_eq!(client.write(&[]).await.unwrap(), 0);
        assert_eq!(client.write_vectored(&[]).await.unwrap(), 0);
        // And they do not disturb the data that follows.
        client.write_all(b"x").await.unwrap();
        let mut one = [0];
        server.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"x");
    });
}

// ---- shutdown (tokio tcp_shutdown.rs, async-io shutdown) ----

#[test]
fn shutdown_then_copy_of_an_empty_stream() {
    run(async {
        let (listener, addr) = listener().await;
        let client = spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.close().await.unwrap();
            let n = stream.read(&mut [0; 1]).await.unwrap();
            assert_eq!(n, 0);
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let (mut rd, mut wr) = futures_lite::io::split(stream.clone());
        let n = futures_lite::io::copy(&mut rd, &mut wr).await.unwrap();
        assert_eq!(n, 0);
        stream.close().await.unwrap();
        client.await;
    });
}

#[test]
fn shutdown_can_be_called_many_times() {
    run(async {
        let (mut client, mut server) = pair().await;
        for _ in 0..3 {
            client.close().await.unwrap();
        }
        server.close().await.unwrap();
        // Both FINs sent: the connection is gone, and closing again is still fine.
        assert_eq!(client.read(&mut [0; 1]).await.unwrap(), 0);
        client.close().await.unwrap();
        server.close().await.unwrap();
    });
}

#[test]
fn close_after_a_reset_from_the_peer_is_ok_or_reset() {
    run(async {
        let (mut client, server) = pair().await;
        // Linger 0: closing sends a reset instead of a FIN.
        rustix::net::sockopt::set_socket_linger(&server, Some(std::time::Duration::ZERO)).unwrap();
        drop(server);
        let mut buf = [0; 4];
        match client.read(&mut buf).await {
            Ok(0) => {}
            Err(err) if err.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("read after a reset: {other:?}"),
        }
        match client.close().await {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::ConnectionReset => {}
            Err(err) => panic!("close after a reset: {err:?}"),
        }
        assert!(client.write_all(b"x").await.is_err());
    });
}

#[test]
fn shutdown_write_then_the_writer_still_reads() {
    run(async {
        let (mut reader, writer) = pair().await;
        let mut buf = Vec::new();
        let (read, shut) = future::zip(reader.read_to_end(&mut buf), async {
            writer.shutdown(Shutdown::Write)
        })
        .await;
        read.unwrap();
        shut.unwrap();
        assert!(buf.is_empty());
        let mut writer = writer;
        let err = writer.write_all(b"after shutdown").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err:?}");
        reader.write_all(b"still open").await.unwrap();
        let mut back = [0; 10];
        writer.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"still open");
    });
}

#[test]
fn shutdown_read_wakes_a_parked_reader_with_eof() {
    run(async {
        let (_client, server) = pair().await;
        let reading = server.clone();
        let reader = spawn(async move { (&reading).read(&mut [0; 8]).await.unwrap() });
        settle().await;
        server.shutdown(Shutdown::Read).unwrap();
        assert_eq!(reader.await, 0);
    });
}

// ---- sharing, dropping, readiness ----

#[test]
fn dropping_one_handle_does_not_disturb_a_task_reading_another() {
    run(async {
        let (mut client, server) = pair().await;
        let mut reading = server.clone();
        let reader = spawn(async move {
            let mut buf = [0; 5];
            reading.read_exact(&mut buf).await.unwrap();
            buf
        });
        settle().await;
        drop(server);
        client.write_all(b"still").await.unwrap();
        assert_eq!(&reader.await, b"still");
    });
}

#[test]
fn cancelling_a_parked_read_then_reading_again_gets_the_data() {
    run(async {
        let (mut client, server) = pair().await;
        let mut reading = server.clone();
        let reader = spawn(async move { reading.read(&mut [0; 8]).await.unwrap() });
        settle().await;
        assert!(reader.cancel().await.is_none());
        client.write_all(b"later").await.unwrap();
        let mut buf = [0; 5];
        let mut server = server;
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"later");
    });
}

#[test]
fn readable_is_pending_until_data_then_ready_after_hang_up() {
    run(async {
        let (mut client, server) = pair().await;
        // Drain the optimistic readiness of an accepted socket.
        let mut readable = Box::pin(server.readable());
        let mut drained = false;
        for _ in 0..2 {
            if !is_pending(&mut readable).await {
                let mut probe = [0; 1];
                assert!(future::poll_once((&server).read(&mut probe))
                    .await
                    .is_none());
                readable = Box::pin(server.readable());
            } else {
                drained = true;
                break;
            }
        }
        assert!(drained, "readable() stayed ready with nothing to read");
        client.write_all(b"ping").await.unwrap();
        readable.await.unwrap();
        let mut buf = [0; 4];
        (&server).read_exact(&mut buf).await.unwrap();
        drop(client);
        server.readable().await.unwrap();
        assert_eq!((&server).read(&mut buf).await.unwrap(), 0);
        server.writable().await.unwrap();
    });
}

#[test]
fn nodelay_and_ttl_round_trip() {
    run(async {
        let (listener, addr) = listener().await;
        listener.set_ttl(77).unwrap();
        assert_eq!(listener.ttl().unwrap(), 77);
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        for stream in [&client, &server] {
            stream.set_nodelay(true).unwrap();
            assert!(stream.nodelay().unwrap());
            stream.set_nodelay(false).unwrap();
            assert!(!stream.nodelay().unwrap());
            stream.set_ttl(33).unwrap();
            assert_eq!(stream.ttl().unwrap(), 33);
        }
        assert!(client.set_ttl(0).is_err(), "a TTL of 0 is invalid");
    });
}

/// async-io's `tcp_duplex`: both ends read and write at once from loops on four threads, each
/// direction blocked before the other side starts (the stream moves between loops).
#[test]
fn duplex_from_loops_on_several_threads() {
    let _guard = watchdog("duplex_from_loops_on_several_threads");
    const CHUNKS: usize = 256;
    let (s1, s2) = untangle::block_on(pair());
    let on_thread = |f: Box<dyn FnOnce() + Send>| std::thread::spawn(f);
    let reader = |s: TcpStream| {
        move || {
            untangle::block_on(async move {
                let mut buf = vec![0u8; 4096];
                let mut total = 0;
                loop {
                    match (&s).read(&mut buf).await.unwrap() {
                        0 => return total,
                        n => total += n,
                    }
                }
            })
        }
    };
    let writer = |s: TcpStream| {
        move || {
            untangle::block_on(async move {
                let buf = vec![7u8; 4096];
                for _ in 0..CHUNKS {
                    (&s).write_all(&buf).await.unwrap();
                }
                s.shutdown(Shutdown::Write).unwrap();
            })
        }
    };
    let r1 = std::thread::spawn(reader(s1.clone()));
    let w1 = on_thread(Box::new(writer(s1)));
    let r2 = std::thread::spawn(reader(s2.clone()));
    w1.join().unwrap();
    assert_eq!(r2.join().unwrap(), CHUNKS * 4096);
    let w2 = on_thread(Box::new(writer(s2)));
    w2.join().unwrap();
    assert_eq!(r1.join().unwrap(), CHUNKS * 4096);
}

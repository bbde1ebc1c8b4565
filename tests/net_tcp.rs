//! TCP sockets: many concurrent connections, concurrent read and write on one stream,
//! half-close, hang-up, peek, options, `incoming`, connect errors and host names.

mod common;

use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use common::run;
use futures::StreamExt;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use untangle::net::{TcpListener, TcpStream};
use untangle::spawn;
use untangle::time::{sleep, timeout};

/// A listener on an ephemeral loopback port.
async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A connected (client, server) pair.
async fn pair() -> (TcpStream, TcpStream) {
    let (listener, addr) = listener().await;
    let client = TcpStream::connect(addr).await.unwrap();
    let (server, peer) = listener.accept().await.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    (client, server)
}

/// Deterministic test data, different for each `seed`.
fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(131)) as u8)
        .collect()
}

/// Echoes every connection until its peer closes.
fn spawn_echo_server(listener: TcpListener) {
    spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            spawn(async move {
                let mut buf = vec![0; 4096];
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .detach();
        }
    })
    .detach();
}

#[test]
fn many_connections_transfer_data_concurrently_without_corruption() {
    const CONNECTIONS: usize = 200;
    const LEN: usize = 48 * 1024;
    run(async {
        let (listener, addr) = listener().await;
        spawn_echo_server(listener);
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|id| {
                spawn(async move {
                    let stream = TcpStream::connect(addr).await?;
                    let data = pattern(id, LEN);
                    // Write and read at once, or both sides' buffers fill up and stall.
                    let write = async {
                        let mut writer = &stream;
                        // Odd-sized chunks, so reads and writes interleave unevenly.
                        for chunk in data.chunks(1000 + id) {
                            writer.write_all(chunk).await?;
                        }
                        stream.shutdown(Shutdown::Write)
                    };
                    let read = async {
                        let mut reader = &stream;
                        let mut echoed = Vec::with_capacity(LEN);
                        reader.read_to_end(&mut echoed).await?;
                        io::Result::Ok(echoed)
                    };
                    let ((), echoed) = futures::try_join!(write, read)?;
                    assert!(echoed == data, "connection {id}: echoed data differs");
                    io::Result::Ok(())
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
    });
}

#[test]
fn one_task_reads_while_another_writes_the_same_stream() {
    const LEN: usize = 512 * 1024;
    run(async {
        let (listener, addr) = listener().await;
        spawn_echo_server(listener);
        let stream = TcpStream::connect(addr).await.unwrap();
        let data = pattern(7, LEN);

        // A clone in one task...
        let writer = spawn({
            let mut stream = stream.clone();
            let data = data.clone();
            async move {
                stream.write_all(&data).await.unwrap();
                stream.shutdown(Shutdown::Write).unwrap();
            }
        });
        // ...and a shared reference in another.
        let reader = spawn(async move {
            let mut echoed = Vec::new();
            (&stream).read_to_end(&mut echoed).await.unwrap();
            echoed
        });
        writer.await;
        assert!(reader.await == data);
    });
}

#[test]
fn shutdown_write_sends_eof_and_the_peer_can_still_reply() {
    run(async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"request").await.unwrap();
        client.shutdown(Shutdown::Write).unwrap();

        let mut request = Vec::new();
        server.read_to_end(&mut request).await.unwrap();
        assert_eq!(request, b"request");
        // EOF stays EOF.
        assert_eq!(server.read(&mut [0; 8]).await.unwrap(), 0);

        server.write_all(b"reply").await.unwrap();
        drop(server);
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"reply");
    });
}

#[test]
fn data_and_eof_that_arrive_together_are_both_read() {
    run(async {
        let (mut client, mut server) = pair().await;
        // The client has seen no data yet: its first read waits for an event, and the data
        // and the FIN both arrive before that wait, so one event reports both.
        server.write_all(b"last words").await.unwrap();
        drop(server);
        let mut buf = [0; 64];
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"last words");
        // The short read emptied the queue, but EOF is still there to be read, and no new
        // event will come for it.
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    });
}

#[test]
fn data_and_eof_written_by_another_thread_are_both_read() {
    run(async {
        let (listener, addr) = listener().await;
        let peer = std::thread::spawn(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            std::io::Write::write_all(&mut stream, b"from a thread").unwrap();
        });
        let (mut conn, _) = listener.accept().await.unwrap();
        conn.readable().await.unwrap();
        peer.join().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"from a thread");
    });
}

#[test]
fn close_via_async_write_sends_eof() {
    run(async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"bye").await.unwrap();
        client.close().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
    });
}

#[test]
fn peer_hang_up_gives_eof_then_write_fails_with_broken_pipe_or_reset() {
    run(async {
        let (mut client, server) = pair().await;
        drop(server);
        assert_eq!(client.read(&mut [0; 16]).await.unwrap(), 0);
        // The first write may still be accepted by the kernel; the peer answers with a reset
        // and a later write fails.
        let mut error = None;
        for _ in 0..200 {
            match client.write_all(b"anyone there?").await {
                Ok(()) => sleep(Duration::from_millis(5)).await,
                Err(err) => {
                    error = Some(err);
                    break;
                }
            }
        }
        let error = error.expect("writes to a closed peer kept succeeding");
        assert!(
            matches!(
                error.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
            "unexpected error: {error:?}"
        );
    });
}

#[test]
fn pending_read_is_woken_by_peer_hang_up() {
    run(async {
        let (mut client, server) = pair().await;
        let reader = spawn(async move { client.read(&mut [0; 16]).await.unwrap() });
        sleep(Duration::from_millis(10)).await;
        drop(server);
        assert_eq!(reader.await, 0);
    });
}

#[test]
fn peek_returns_data_without_consuming_it() {
    run(async {
        let (mut client, mut server) = pair().await;
        // Peek waits for data to arrive.
        let peeker = spawn(async move {
            let mut buf = [0; 5];
            let n = server.peek(&mut buf).await.unwrap();
            let peeked = buf[..n].to_vec();
            let mut all = [0; 5];
            server.read_exact(&mut all).await.unwrap();
            (peeked, all)
        });
        sleep(Duration::from_millis(5)).await;
        client.write_all(b"hello").await.unwrap();
        let (peeked, all) = peeker.await;
        assert!(!peeked.is_empty());
        assert!(b"hello".starts_with(&peeked));
        assert_eq!(&all, b"hello");
    });
}

#[test]
fn set_nodelay_and_ttl_are_applied() {
    run(async {
        let (client, server) = pair().await;
        client.set_nodelay(true).unwrap();
        assert!(client.nodelay().unwrap());
        client.set_nodelay(false).unwrap();
        assert!(!client.nodelay().unwrap());
        server.set_ttl(42).unwrap();
    });
}

#[test]
fn incoming_yields_each_accepted_connection() {
    run(async {
        let (listener, addr) = listener().await;
        let clients = spawn(async move {
            let mut streams = Vec::new();
            for i in 0..3u8 {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                stream.write_all(&[i]).await.unwrap();
                streams.push(stream);
            }
            streams
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
        drop(clients.await);
    });
}

#[test]
fn accept_waits_for_a_connection() {
    run(async {
        let (listener, addr) = listener().await;
        let acceptor = spawn(async move { listener.accept().await.unwrap().1 });
        sleep(Duration::from_millis(10)).await;
        let client = TcpStream::connect(addr).await.unwrap();
        assert_eq!(acceptor.await, client.local_addr().unwrap());
    });
}

#[test]
fn connect_to_a_closed_port_is_connection_refused() {
    // A socket bound to a port but not listening: connecting gets a reset, and as long as it
    // stays open no other test can start listening on that port meanwhile.
    use rustix::net::{AddressFamily, SocketType};
    let socket = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    rustix::net::bind(&socket, &any_port).unwrap();
    let addr = match rustix::net::getsockname(&socket).unwrap().try_into() {
        Ok(addr) => addr,
        Err(_) => panic!("not an inet address"),
    };
    let err = run(TcpStream::connect::<SocketAddr>(addr)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
    drop(socket);
}

#[test]
fn connect_by_host_name_resolves_and_connects() {
    run(async {
        let (listener, addr) = listener().await;
        let port = addr.port();
        let mut client = TcpStream::connect(format!("localhost:{port}"))
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        client.write_all(b"by name").await.unwrap();
        let mut buf = [0; 7];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"by name");
        // The (host, port) form too.
        let _second = TcpStream::connect(("localhost", port)).await.unwrap();
        let (_server, _) = listener.accept().await.unwrap();
    });
}

#[test]
fn connect_to_an_unknown_host_fails() {
    run(async {
        assert!(TcpStream::connect("no-such-host.invalid:80").await.is_err());
    });
}

#[test]
fn bind_to_an_address_in_use_fails() {
    run(async {
        let (_listener, addr) = listener().await;
        let err = TcpListener::bind(addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
    });
}

#[test]
fn std_sockets_convert_into_async_ones() {
    run(async {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = TcpListener::try_from(std_listener).unwrap();
        let std_client = std::net::TcpStream::connect(addr).unwrap();
        let mut client = TcpStream::try_from(std_client).unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        client.write_all(b"std").await.unwrap();
        let mut buf = [0; 3];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"std");
    });
}

#[test]
fn readable_and_writable_report_readiness() {
    run(async {
        let (mut client, server) = pair().await;
        server.writable().await.unwrap();
        let waiter = spawn({
            let server = server.clone();
            async move {
                server.readable().await.unwrap();
                let mut buf = [0; 2];
                (&server).read_exact(&mut buf).await.unwrap();
                buf
            }
        });
        sleep(Duration::from_millis(5)).await;
        client.write_all(b"ok").await.unwrap();
        assert_eq!(&waiter.await, b"ok");
    });
}

#[test]
fn cancelled_read_does_not_lose_data_or_wake_ups() {
    run(async {
        let (mut client, mut server) = pair().await;
        let mut buf = [0; 4];
        // A read that times out is dropped while registered.
        assert!(timeout(Duration::from_millis(5), server.read(&mut buf))
            .await
            .is_err());
        client.write_all(b"late").await.unwrap();
        // A new read still gets woken and sees all the data.
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"late");
    });
}

#[test]
fn vectored_reads_and_writes_move_all_bytes() {
    run(async {
        let (mut client, mut server) = pair().await;
        let bufs = [io::IoSlice::new(b"vec"), io::IoSlice::new(b"tored")];
        let n = client.write_vectored(&bufs).await.unwrap();
        assert_eq!(n, 8);
        client.shutdown(Shutdown::Write).unwrap();
        let mut a = [0; 3];
        let mut b = [0; 10];
        // On loopback one 8-byte write arrives as one segment: one read gets all of it.
        let mut slices = [io::IoSliceMut::new(&mut a), io::IoSliceMut::new(&mut b)];
        assert_eq!(server.read_vectored(&mut slices).await.unwrap(), 8);
        assert_eq!(&a, b"vec");
        assert_eq!(&b[..5], b"tored");
    });
}

#[test]
fn large_transfer_with_small_socket_buffers_completes() {
    // Writes that fill the send buffer (short writes, WouldBlock) and resume on writability.
    const LEN: usize = 8 * 1024 * 1024;
    run(async {
        let (mut client, mut server) = pair().await;
        let data = pattern(3, LEN);
        let writer = spawn({
            let data = data.clone();
            async move {
                client.write_all(&data).await.unwrap();
                client.close().await.unwrap();
            }
        });
        let mut received = Vec::with_capacity(LEN);
        let mut buf = vec![0; 7919];
        loop {
            let n = server.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
        writer.await;
        assert!(received == data);
    });
}

#[test]
fn eof_that_arrives_after_a_short_read_is_still_seen() {
    run(async {
        let (mut client, server) = pair().await;
        (&server).write_all(b"first").await.unwrap();
        let mut buf = [0; 64];
        // A short read: the queue is drained and read readiness is cleared.
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"first");
        // The FIN comes later, with its own event (EPOLLRDHUP), which must wake the reader.
        let reader = spawn(async move {
            let mut buf = [0; 64];
            client.read(&mut buf).await.unwrap()
        });
        sleep(Duration::from_millis(10)).await;
        server.shutdown(Shutdown::Write).unwrap();
        assert_eq!(reader.await, 0);
    });
}

#[test]
fn data_that_arrives_after_a_short_read_wakes_the_reader() {
    run(async {
        let (mut client, mut server) = pair().await;
        // Request/response rounds of small messages, each read short: every read after the
        // first clears readiness, so every round needs (and must get) a new event.
        for round in 0..200u32 {
            let message = round.to_le_bytes();
            server.write_all(&message).await.unwrap();
            let mut buf = [0; 64];
            let n = client.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &message);
            client.write_all(&buf[..n]).await.unwrap();
            let n = server.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &message);
        }
    });
}

#[test]
fn data_and_eof_in_one_event_are_both_read_with_vectored_reads() {
    run(async {
        let (mut client, mut server) = pair().await;
        server.write_all(b"split over two buffers").await.unwrap();
        drop(server);
        let (mut a, mut b) = ([0; 8], [0; 64]);
        let mut bufs = [io::IoSliceMut::new(&mut a), io::IoSliceMut::new(&mut b)];
        let n = client.read_vectored(&mut bufs).await.unwrap();
        assert_eq!(n, 22);
        assert_eq!(&a, b"split ov");
        assert_eq!(&b[..14], b"er two buffers");
        let mut bufs = [io::IoSliceMut::new(&mut a), io::IoSliceMut::new(&mut b)];
        assert_eq!(client.read_vectored(&mut bufs).await.unwrap(), 0);
    });
}

#[test]
fn a_reader_sharing_the_stream_with_a_writer_sees_eof_after_short_reads() {
    run(async {
        let (client, mut server) = pair().await;
        let reader = spawn({
            let client = client.clone();
            async move {
                let mut got = Vec::new();
                let mut buf = [0; 4096];
                loop {
                    match (&client).read(&mut buf).await.unwrap() {
                        0 => return got,
                        n => got.extend_from_slice(&buf[..n]),
                    }
                }
            }
        });
        for chunk in 0..20u8 {
            server.write_all(&[chunk; 10]).await.unwrap();
            sleep(Duration::from_millis(1)).await;
        }
        server.close().await.unwrap();
        let got = reader.await;
        assert_eq!(got.len(), 200);
        assert!(got.chunks(10).enumerate().all(|(i, c)| c == [i as u8; 10]));
    });
}

#[test]
fn live_sources_counts_the_registered_sockets() {
    run(async {
        let before = untangle::__live_sources();
        let (listener, _addr) = listener().await;
        assert_eq!(untangle::__live_sources(), before + 1);
        let (client, server) = pair().await;
        // pair()'s own listener is gone again; the two streams remain.
        assert_eq!(untangle::__live_sources(), before + 3);
        drop((client, server));
        drop(listener);
        assert_eq!(untangle::__live_sources(), before);
    });
}

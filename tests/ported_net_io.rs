//! futures-io use of untangle's sockets as tokio's `tests/io_*.rs` test it (read_exact,
//! read_to_end, write_all, copy, split, lines) through futures-lite's extension traits, and
//! `Async<T>` around std types as async-io's tests use it (wrapping, double registration,
//! `into_inner`, re-wrapping, objects that cannot be polled).

mod common;

use std::io::{ErrorKind, IoSliceMut, Read, Write};
use std::net::Shutdown;

use common::run;
use futures_lite::io::BufReader;
use futures_lite::{future, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, StreamExt};
use untangle::net::{TcpListener, TcpStream, UnixStream};
use untangle::{spawn, yield_now, Async};

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = future::zip(TcpStream::connect(addr), listener.accept()).await;
    (client.unwrap(), accepted.unwrap().0)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Writes `chunks` one at a time, letting the reader run in between, then closes.
fn write_in_chunks(mut w: TcpStream, chunks: Vec<Vec<u8>>) -> untangle::Task<()> {
    spawn(async move {
        for chunk in chunks {
            w.write_all(&chunk).await.unwrap();
            yield_now().await;
        }
        w.close().await.unwrap();
    })
}

#[test]
fn read_exact_gathers_chunks_and_fails_at_an_early_eof() {
    run(async {
        let (client, mut server) = tcp_pair().await;
        let writer = write_in_chunks(
            client,
            vec![b"he".to_vec(), b"llo w".to_vec(), b"or".to_vec()],
        );
        let mut buf = [0; 5];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        let mut rest = [0; 8];
        let err = server.read_exact(&mut rest).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
        writer.await;
    });
}

#[test]
fn read_to_end_and_write_all_move_a_megabyte() {
    run(async {
        let (mut client, mut server) = tcp_pair().await;
        let data = pattern(1 << 20);
        let sent = data.clone();
        let writer = spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.close().await.unwrap();
        });
        let mut got = Vec::new();
        assert_eq!(server.read_to_end(&mut got).await.unwrap(), data.len());
        assert!(got == data);
        writer.await;
        // read_to_end appends, and at EOF reads nothing more.
        assert_eq!(server.read_to_end(&mut got).await.unwrap(), 0);
    });
}

#[test]
fn read_to_string_rejects_invalid_utf8() {
    run(async {
        let (client, mut server) = tcp_pair().await;
        let writer = write_in_chunks(client, vec![b"ok \xff\xfe".to_vec()]);
        let mut s = String::new();
        let err = server.read_to_string(&mut s).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
        writer.await;
    });
}

/// tokio's `proxy`: bytes copied from one connection to another, both ways, by `copy` on
/// split halves, arrive intact and the EOF is forwarded.
#[test]
fn copy_proxies_between_two_connections() {
    run(async {
        let (mut client, proxy_in) = tcp_pair().await;
        let (proxy_out, mut upstream) = tcp_pair().await;
        let forward = spawn(async move {
            let n = futures_lite::io::copy(&proxy_in, &mut &proxy_out)
                .await
                .unwrap();
            proxy_out.shutdown(Shutdown::Write).unwrap();
            let back = futures_lite::io::copy(&proxy_out, &mut &proxy_in)
                .await
                .unwrap();
            proxy_in.shutdown(Shutdown::Write).unwrap();
            (n, back)
        });
        let data = pattern(300_000);
        let sent = data.clone();
        let sender = spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.close().await.unwrap();
            let mut reply = Vec::new();
            client.read_to_end(&mut reply).await.unwrap();
            reply
        });
        let mut got = Vec::new();
        upstream.read_to_end(&mut got).await.unwrap();
        assert!(got == data);
        upstream.write_all(b"thanks").await.unwrap();
        upstream.close().await.unwrap();
        assert_eq!(sender.await, b"thanks");
        assert_eq!(forward.await, (data.len() as u64, 6));
    });
}

#[test]
fn split_halves_are_used_by_two_tasks() {
    run(async {
        let (client, mut server) = tcp_pair().await;
        let (mut rd, mut wr) = futures_lite::io::split(client);
        let reader = spawn(async move {
            let mut buf = [0; 4];
            rd.read_exact(&mut buf).await.unwrap();
            buf
        });
        let writer = spawn(async move {
            wr.write_all(b"ping").await.unwrap();
            wr.close().await.unwrap();
        });
        let mut buf = [0; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.unwrap();
        assert_eq!(&reader.await, b"pong");
        writer.await;
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
    });
}

#[test]
fn buf_reader_lines_across_chunk_boundaries() {
    run(async {
        let (client, server) = tcp_pair().await;
        let writer = write_in_chunks(
            client,
            vec![
                b"first li".to_vec(),
                b"ne\nsecond\r\n".to_vec(),
                b"\nthird".to_vec(),
                b" without newline".to_vec(),
            ],
        );
        let lines: Vec<String> = BufReader::new(server)
            .lines()
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(lines, ["first line", "second", "", "third without newline"]);
        writer.await;
    });
}

#[test]
fn read_line_and_read_until_keep_their_delimiters() {
    run(async {
        let (client, server) = tcp_pair().await;
        let writer = write_in_chunks(client, vec![b"a,b".to_vec(), b",c\nrest".to_vec()]);
        let mut reader = BufReader::with_capacity(2, server);
        let mut field = Vec::new();
        reader.read_until(b',', &mut field).await.unwrap();
        assert_eq!(field, b"a,");
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        assert_eq!(line, "b,c\n");
        line.clear();
        assert_eq!(reader.read_line(&mut line).await.unwrap(), 4);
        assert_eq!(line, "rest");
        line.clear();
        assert_eq!(reader.read_line(&mut line).await.unwrap(), 0);
        writer.await;
    });
}

#[test]
fn vectored_reads_fill_buffers_in_order() {
    run(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(b"abcdefgh").await.unwrap();
        let (mut x, mut y) = ([0; 3], [0; 5]);
        let mut got = 0;
        while got < 8 {
            let mut bufs = [
                IoSliceMut::new(&mut x[got.min(3)..]),
                IoSliceMut::new(&mut y),
            ];
            if got >= 3 {
                bufs = [IoSliceMut::new(&mut []), IoSliceMut::new(&mut y[got - 3..])];
            }
            got += b.read_vectored(&mut bufs).await.unwrap();
        }
        assert_eq!((&x, &y), (b"abc", b"defgh"));
    });
}

// ---- Async<T> (async-io) ----

/// async-io's `duplicate_socket_insert`: registering an fd that is already registered fails,
/// and the failure leaves the first registration working.
#[test]
fn registering_an_fd_twice_fails_and_keeps_the_first_registration() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let before = untangle::__live_sources();
        assert!(Async::new(std::os::fd::AsFd::as_fd(&listener)).is_err());
        assert_eq!(untangle::__live_sources(), before);
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"still registered").await.unwrap();
        client.close().await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"still registered");
    });
}

#[test]
fn async_std_tcp_stream_reads_writes_and_comes_back_out() {
    run(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std_client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (std_server, _) = listener.accept().unwrap();
        let mut client = Async::new(std_client).unwrap();
        let server = Async::new(std_server).unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0; 4];
        (&server).read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        // Non-blocking since `Async::new`: the std handle reports WouldBlock.
        let err = server.get_ref().read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        // Out of `Async` (deregistered, still non-blocking), back to blocking std use.
        let before = untangle::__live_sources();
        let mut std_server = server.into_inner().unwrap();
        assert_eq!(untangle::__live_sources(), before - 1);
        std_server.set_nonblocking(false).unwrap();
        client.write_all(b"pong").await.unwrap();
        std_server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        // And into `Async` again: the fd registers anew.
        let mut server = Async::new(std_server).unwrap();
        server.write_all(b"again").await.unwrap();
        let mut five = [0; 5];
        client.read_exact(&mut five).await.unwrap();
        assert_eq!(&five, b"again");
    });
}

#[test]
fn async_std_unix_stream_read_with_and_write_with() {
    run(async {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (a, b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        let reader = spawn(async move {
            let mut buf = [0; 5];
            let n = b.read_with(|s| (&*s).read(&mut buf)).await.unwrap();
            buf[..n].to_vec()
        });
        yield_now().await;
        let n = a.write_with(|s| (&*s).write(b"hello")).await.unwrap();
        assert_eq!(n, 5);
        assert_eq!(reader.await, b"hello");
    });
}

#[test]
fn an_fd_the_poller_cannot_watch_is_an_error_not_a_panic() {
    run(async {
        // Regular files are always ready; epoll refuses them (EPERM).
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        let before = untangle::__live_sources();
        match Async::new(file) {
            Err(_) => assert_eq!(untangle::__live_sources(), before),
            // A poller that accepts files must then report them ready.
            Ok(mut file) => {
                let mut buf = [0; 4];
                file.read_exact(&mut buf).await.unwrap();
            }
        }
    });
}

#[test]
fn zero_length_operations_on_async_std_types_do_not_hang() {
    run(async {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut a, mut b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        assert_eq!(a.write(&[]).await.unwrap(), 0);
        a.write_all(b"x").await.unwrap();
        assert_eq!(b.read(&mut []).await.unwrap(), 0);
        let mut one = [0];
        b.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"x");
    });
}

/// More buffers than one `readv`/`writev`/`sendmsg` takes (`IOV_MAX`, 1024 on Linux): the
/// call moves what the first 1024 hold, which must neither fail nor be taken for a full send
/// buffer or a drained receive queue (no further event would come).
#[test]
fn vectored_io_with_more_buffers_than_iov_max() {
    use std::io::IoSlice;
    use std::time::Duration;
    use untangle::time::timeout;
    const SLICES: usize = 3000;
    async fn check<S>(mut a: S, mut b: S)
    where
        S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
    {
        let data = pattern(SLICES);
        let slices: Vec<IoSlice<'_>> = data.chunks(1).map(IoSlice::new).collect();
        let mut sent = 0;
        while sent < SLICES {
            let n = timeout(Duration::from_secs(10), a.write_vectored(&slices[sent..]))
                .await
                .expect("a vectored write waited with room in the send buffer")
                .unwrap();
            assert!(n > 0);
            sent += n;
        }
        let mut got = vec![0u8; SLICES];
        let mut read = 0;
        while read < SLICES {
            let mut bufs: Vec<IoSliceMut<'_>> =
                got[read..].chunks_mut(1).map(IoSliceMut::new).collect();
            let n = timeout(Duration::from_secs(10), b.read_vectored(&mut bufs))
                .await
                .expect("a vectored read waited with data queued")
                .unwrap();
            assert!(n > 0);
            read += n;
        }
        assert!(got == data);
    }
    run(async {
        let (a, b) = tcp_pair().await;
        check(a, b).await;
        let (a, b) = UnixStream::pair().unwrap();
        check(a, b).await;
    });
}

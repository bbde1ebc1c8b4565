//! `futures` combinators over untangle sockets and timers, beyond tests/interop.rs:
//! `FuturesUnordered` driving many sockets at once, and `select!` in a loop mixing a socket
//! stream with an interval.

mod common;

use std::time::Duration;

use common::run;
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use untangle::net::{TcpListener, TcpStream, UnixStream};
use untangle::spawn;
use untangle::time::{interval, sleep};

#[test]
fn futures_unordered_keeps_a_hundred_socket_exchanges_in_flight_at_once() {
    const CLIENTS: u32 = 100;
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The server answers nobody until every client's request has arrived, then answers in
        // reverse order: this only finishes if all exchanges are in flight together.
        spawn(async move {
            let mut waiting = Vec::new();
            while waiting.len() < CLIENTS as usize {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut id = [0; 4];
                conn.read_exact(&mut id).await.unwrap();
                waiting.push((conn, u32::from_be_bytes(id)));
            }
            while let Some((mut conn, id)) = waiting.pop() {
                conn.write_all(format!("reply {id}").as_bytes())
                    .await
                    .unwrap();
                conn.close().await.unwrap();
            }
        })
        .detach();

        let mut exchanges: FuturesUnordered<_> = (0..CLIENTS)
            .map(|id| async move {
                let mut conn = TcpStream::connect(addr).await.unwrap();
                conn.write_all(&id.to_be_bytes()).await.unwrap();
                let mut reply = String::new();
                conn.read_to_string(&mut reply).await.unwrap();
                (id, reply)
            })
            .collect();
        let mut seen = vec![false; CLIENTS as usize];
        while let Some((id, reply)) = exchanges.next().await {
            assert_eq!(reply, format!("reply {id}"));
            assert!(!std::mem::replace(&mut seen[id as usize], true));
        }
        assert!(seen.iter().all(|&s| s));
    });
}

#[test]
fn select_in_a_loop_serves_socket_lines_and_interval_ticks_until_eof() {
    run(async {
        let (reader, mut writer) = UnixStream::pair().unwrap();
        spawn(async move {
            for i in 0..3 {
                writer
                    .write_all(format!("line {i}\n").as_bytes())
                    .await
                    .unwrap();
                sleep(Duration::from_millis(30)).await;
            }
            // Dropping `writer` closes the socket: the reader sees EOF.
        })
        .detach();

        let mut lines = BufReader::new(reader).lines().fuse();
        let mut ticks = interval(Duration::from_millis(5)).fuse();
        let (mut got, mut tick_count) = (Vec::new(), 0);
        loop {
            // Biased towards the tick: EOF comes 90 ms after the first line, so at least the
            // first tick (due at 5 ms) is ready before the loop can see EOF.
            futures::select_biased! {
                _ = ticks.next() => tick_count += 1,
                line = lines.next() => match line {
                    Some(line) => got.push(line.unwrap()),
                    None => break,
                },
            }
        }
        assert_eq!(got, ["line 0", "line 1", "line 2"]);
        assert!(tick_count >= 1);
    });
}

#[test]
fn select_races_a_socket_read_against_a_timer_and_the_loser_is_dropped() {
    run(async {
        let (mut quiet, _peer) = UnixStream::pair().unwrap();
        let mut buf = [0; 16];
        // Nothing ever arrives: the timer wins, and the cancelled read leaves the socket usable.
        let outcome = futures::select! {
            read = quiet.read(&mut buf).fuse() => Err(read),
            () = sleep(Duration::from_millis(10)).fuse() => Ok("timer"),
        };
        assert_eq!(outcome.unwrap(), "timer");

        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"data").await.unwrap();
        let outcome = futures::select! {
            read = a.read(&mut buf).fuse() => read.unwrap(),
            () = sleep(Duration::from_secs(3600)).fuse() => 0,
        };
        assert_eq!(&buf[..outcome], b"data");
    });
}

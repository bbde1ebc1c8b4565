//! untangle's tasks, timers and sockets with the wider ecosystem: async-channel, `futures`
//! combinators and I/O utilities, tokio's and smol's runtime-independent parts.

mod common;

use std::time::{Duration, Instant};

use common::{run, watchdog};
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use futures::{FutureExt, StreamExt};
use untangle::net::{Shutdown, TcpListener, TcpStream, UnixStream};
use untangle::time::sleep;
use untangle::{spawn, Handle};

#[test]
fn async_channel_carries_messages_between_tasks_with_backpressure() {
    run(async {
        let (tx, rx) = async_channel::bounded::<u32>(4);
        let producers: Vec<_> = (0..3u32)
            .map(|p| {
                let tx = tx.clone();
                spawn(async move {
                    for i in 0..1_000 {
                        tx.send(p * 1_000 + i).await.unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let consumer = spawn(async move {
            let mut sum = 0u64;
            let mut count = 0;
            while let Ok(v) = rx.recv().await {
                sum += u64::from(v);
                count += 1;
            }
            (count, sum)
        });
        for p in producers {
            p.await;
        }
        assert_eq!(consumer.await, (3_000, (0..3_000u64).sum()));
    });
}

#[test]
fn futures_join_drives_socket_futures_concurrently() {
    run(async {
        let (a, b) = UnixStream::pair().unwrap();
        // Both sides write more than a socket buffer holds before reading: only works if join!
        // really interleaves them.
        let data = vec![7u8; 1024 * 1024];
        let side = |stream: UnixStream, data: Vec<u8>| async move {
            let (mut reader, mut writer) = (&stream, &stream);
            let write = async {
                writer.write_all(&data).await.unwrap();
                stream.shutdown(Shutdown::Write).unwrap();
            };
            let read = async {
                let mut got = Vec::new();
                reader.read_to_end(&mut got).await.unwrap();
                got
            };
            let ((), got) = futures::join!(write, read);
            got
        };
        let (got_a, got_b) = futures::join!(side(a, data.clone()), side(b, data.clone()));
        assert!(got_a == data && got_b == data);
    });
}

#[test]
fn futures_select_takes_the_branch_that_completes_first() {
    run(async {
        let (tx, rx) = async_channel::bounded::<&str>(1);
        spawn(async move {
            sleep(Duration::from_millis(5)).await;
            tx.send("message").await.unwrap();
        })
        .detach();
        let slow = sleep(Duration::from_secs(3600)).fuse();
        let recv = rx.recv().fuse();
        futures::pin_mut!(slow, recv);
        let winner = futures::select! {
            () = slow => "timer",
            msg = recv => msg.unwrap(),
        };
        assert_eq!(winner, "message");

        // And the other way round: the timer wins against a future that never completes.
        let start = Instant::now();
        let quick = sleep(Duration::from_millis(10)).fuse();
        let never = futures::future::pending::<()>().fuse();
        futures::pin_mut!(quick, never);
        let winner = futures::select! {
            () = quick => "timer",
            () = never => "never",
        };
        assert_eq!(winner, "timer");
        assert!(start.elapsed() >= Duration::from_millis(10));
    });
}

#[test]
fn futures_io_copy_proxies_between_tcp_streams() {
    const LEN: usize = 2 * 1024 * 1024;
    run(async {
        // origin: sends LEN bytes, then closes.
        let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin_addr = origin.local_addr().unwrap();
        let data: Vec<u8> = (0..LEN).map(|i| (i % 241) as u8).collect();
        spawn({
            let data = data.clone();
            async move {
                let (mut conn, _) = origin.accept().await.unwrap();
                conn.write_all(&data).await.unwrap();
                conn.close().await.unwrap();
            }
        })
        .detach();

        // proxy: copies origin -> client with futures::io::copy.
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let proxied = spawn(async move {
            let (mut client, _) = proxy.accept().await.unwrap();
            let mut upstream = TcpStream::connect(origin_addr).await.unwrap();
            let copied = futures::io::copy(&mut upstream, &mut client).await.unwrap();
            client.close().await.unwrap();
            copied
        });

        let mut client = TcpStream::connect(proxy_addr).await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(proxied.await, LEN as u64);
        assert!(got == data);
    });
}

#[test]
fn futures_buf_reader_reads_lines_from_a_socket() {
    run(async {
        let (a, mut b) = UnixStream::pair().unwrap();
        spawn(async move {
            for i in 0..100 {
                b.write_all(format!("line {i}\n").as_bytes()).await.unwrap();
            }
        })
        .detach();
        let lines: Vec<String> = BufReader::new(a)
            .lines()
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(lines.len(), 100);
        assert_eq!(lines[99], "line 99");
    });
}

#[test]
fn futures_stream_combinators_drive_spawned_tasks() {
    run(async {
        let results: Vec<u32> = futures::stream::iter(0..50u32)
            .map(|i| {
                spawn(async move {
                    sleep(Duration::from_micros(u64::from(50 - i) * 20)).await;
                    i
                })
            })
            .buffered(8)
            .collect()
            .await;
        assert_eq!(results, (0..50).collect::<Vec<_>>());
    });
}

#[test]
fn tokio_sync_primitives_work_inside_untangle() {
    let _watchdog = watchdog("tokio_sync_primitives_work_inside_untangle");
    untangle::block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(2);
        let producer = spawn(async move {
            for i in 0..100 {
                tx.send(i).await.unwrap();
            }
        });
        let mut sum = 0;
        while let Some(v) = rx.recv().await {
            sum += v;
        }
        producer.await;
        assert_eq!(sum, (0..100).sum());

        // A oneshot completed by a plain thread wakes the loop.
        let (tx, rx) = tokio::sync::oneshot::channel::<&str>();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            tx.send("from thread").unwrap();
        });
        assert_eq!(rx.await.unwrap(), "from thread");
        thread.join().unwrap();
    });
}

#[test]
fn smol_timer_from_a_foreign_reactor_wakes_the_loop() {
    let _watchdog = watchdog("smol_timer_from_a_foreign_reactor_wakes_the_loop");
    untangle::block_on(async {
        let start = Instant::now();
        smol::Timer::after(Duration::from_millis(10)).await;
        assert!(start.elapsed() >= Duration::from_millis(10));
    });
}

#[test]
fn untangle_task_can_be_awaited_from_smol_and_tokio_on_other_threads() {
    run(async {
        let handle = Handle::current();
        let (tx, rx) = async_channel::bounded::<u32>(2);
        let smol_side = std::thread::spawn({
            let handle = handle.clone();
            let tx = tx.clone();
            move || {
                let task = handle.spawn(async { 20 });
                tx.send_blocking(smol::block_on(task)).unwrap();
            }
        });
        let tokio_side = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let task = handle.spawn(async { 22 });
            tx.send_blocking(runtime.block_on(task)).unwrap();
        });
        let sum = rx.recv().await.unwrap() + rx.recv().await.unwrap();
        assert_eq!(sum, 42);
        smol_side.join().unwrap();
        tokio_side.join().unwrap();
    });
}

#[test]
fn tokio_runtime_on_another_thread_feeds_the_loop_through_a_channel() {
    run(async {
        let (tx, rx) = async_channel::unbounded::<u32>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            runtime.block_on(async {
                for i in 0..10 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    tx.send(i).await.unwrap();
                }
            });
        });
        let got: Vec<u32> = rx.collect().await;
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        thread.join().unwrap();
    });
}

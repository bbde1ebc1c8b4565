//! Live introspection: task names and spawn locations, `stats()`, `dump()`, and the loop
//! dropping every live task when its thread exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use untangle::{Builder, TaskState};

#[test]
fn dump_lists_names_locations_and_states() {
    untangle::block_on(async {
        let line = line!() + 1;
        let idle = untangle::spawn(std::future::pending::<()>());
        let named = Builder::new()
            .name("conn 12")
            .spawn(std::future::pending::<()>());
        untangle::yield_now().await;
        // The dumping task runs first; the one spawned after it is still queued then.
        let dumper = untangle::spawn(async { untangle::dump() });
        let (tx, rx) = async_channel::bounded::<()>(1);
        let scheduled = untangle::spawn(async move {
            let _ = rx.recv().await;
        });
        let dump = dumper.await;

        assert_eq!(dump.tasks.len(), 4, "{dump}");
        let plain = &dump.tasks[0];
        assert_eq!(plain.name, None);
        assert_eq!(plain.location.file(), file!());
        assert_eq!(plain.location.line(), line);
        assert_eq!(plain.state, TaskState::Idle);
        assert_eq!(plain.polls, 1);
        assert!(plain.since_last_poll.is_some());
        let conn = &dump.tasks[1];
        assert_eq!(conn.name.as_deref(), Some("conn 12"));
        assert_eq!(conn.state, TaskState::Idle);
        assert_eq!(dump.tasks[2].state, TaskState::Running);
        // Spawned, not yet polled: queued behind the dumping task.
        assert_eq!(dump.tasks[3].state, TaskState::Scheduled);
        assert_eq!(dump.tasks[3].since_last_poll, None);

        let table = dump.to_string();
        assert!(
            table.contains("conn 12 (tests/introspection.rs:"),
            "{table}"
        );
        assert!(
            table.contains("scheduled") && table.contains("running"),
            "{table}"
        );
        assert!(table.ends_with("4 tasks"), "{table}");

        drop((idle, named, tx));
        scheduled.await;
        assert_eq!(untangle::dump().tasks.len(), 0);
    });
}

#[test]
fn handle_spawned_tasks_are_registered_when_they_first_run() {
    untangle::block_on(async {
        let handle = untangle::Handle::current();
        let (tx, rx) = async_channel::bounded::<()>(1);
        let task = std::thread::spawn(move || {
            Builder::new()
                .name("from afar")
                .spawn_on(&handle, async move {
                    let _ = rx.recv().await;
                    7
                })
        })
        .join()
        .unwrap();
        while untangle::dump().tasks.is_empty() {
            untangle::yield_now().await;
        }
        let dump = untangle::dump();
        assert_eq!(dump.tasks[0].name.as_deref(), Some("from afar"));
        assert_eq!(dump.tasks[0].location.file(), file!());
        drop(tx);
        assert_eq!(task.await, 7);
        assert!(untangle::dump().tasks.is_empty());
    });
}

#[test]
fn stats_count_spawns_polls_wakes_and_waits() {
    std::thread::spawn(|| {
        untangle::block_on(async {
            let before = untangle::stats();
            let tasks: Vec<_> = (0..10)
                .map(|_| {
                    untangle::spawn(async {
                        untangle::yield_now().await;
                    })
                })
                .collect();
            let alive = untangle::stats().tasks_alive;
            for task in tasks {
                task.await;
            }
            untangle::time::sleep(Duration::from_millis(1)).await;
            let handle = untangle::Handle::current();
            std::thread::spawn(move || handle.spawn(async {}))
                .join()
                .unwrap()
                .await;
            let after = untangle::stats();
            assert_eq!(alive, before.tasks_alive + 10);
            assert_eq!(after.tasks_alive, before.tasks_alive);
            assert_eq!(after.tasks_spawned - before.tasks_spawned, 11);
            assert!(after.polls - before.polls >= 21, "{after}");
            assert!(after.local_wakes - before.local_wakes >= 10, "{after}");
            assert!(after.remote_wakes > before.remote_wakes, "{after}");
            assert!(after.blocking_waits > before.blocking_waits, "{after}");
            assert!(
                after.nonblocking_waits > before.nonblocking_waits,
                "{after}"
            );
            assert_eq!(after.timers, 0);
            assert!(after.to_string().contains(" spawned; "), "{after}");
        });
    })
    .join()
    .unwrap();
}

#[test]
fn stats_and_dump_with_ten_thousand_tasks() {
    std::thread::spawn(|| {
        untangle::block_on(async {
            let tasks: Vec<_> = (0..10_000)
                .map(|i| {
                    Builder::new()
                        .name(format!("task {i}"))
                        .spawn(std::future::pending::<()>())
                })
                .collect();
            untangle::yield_now().await;
            let start = Instant::now();
            let stats = untangle::stats();
            let stats_cost = start.elapsed();
            let start = Instant::now();
            let dump = untangle::dump();
            let dump_cost = start.elapsed();
            let start = Instant::now();
            let table = dump.to_string();
            let format_cost = start.elapsed();
            eprintln!(
                "10,000 tasks: stats() {stats_cost:?}, dump() {dump_cost:?}, Display {format_cost:?} \
                 ({} bytes)",
                table.len()
            );
            assert_eq!(stats.tasks_alive, 10_000);
            assert_eq!(dump.tasks.len(), 10_000);
            drop(tasks);
        });
    })
    .join()
    .unwrap();
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn thread_exit_drops_tasks_whose_waker_another_thread_holds() {
    let dropped = Arc::new(AtomicBool::new(false));
    let (tx, rx) = async_channel::bounded::<u32>(1);
    let (out_tx, out_rx) = mpsc::channel();
    let flag = dropped.clone();
    std::thread::spawn(move || {
        // The loop's output is the task itself, awaited later on another thread.
        #[allow(clippy::async_yields_async)]
        let task = untangle::block_on(async move {
            let task = untangle::spawn(async move {
                let _flag = DropFlag(flag);
                rx.recv().await.unwrap_or(0)
            });
            // Parked on the channel: its only waker is held by the channel, whose sender lives
            // on the test's thread.
            untangle::yield_now().await;
            task
        });
        out_tx.send(task).unwrap();
    })
    .join()
    .unwrap();
    assert!(
        dropped.load(Ordering::SeqCst),
        "the task's future was not dropped"
    );
    let task = out_rx.recv().unwrap();
    assert!(task.is_finished());
    // Awaiting it panics at once (a hang would time out the guard below).
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| untangle::block_on(task)));
        let message = match result {
            Ok(_) => String::from("(no panic)"),
            Err(payload) => payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default(),
        };
        done_tx.send(message).unwrap();
    });
    let message = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("awaiting the task hung");
    assert!(message.contains("loop's thread exited"), "{message}");
    drop(tx);
}

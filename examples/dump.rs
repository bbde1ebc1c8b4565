//! Live introspection: an HTTP server with a few named background tasks that prints the loop's
//! task listing (`untangle::dump()`) and counters (`untangle::stats()`) on `SIGUSR1`.
//!
//! ```text
//! cargo run --example dump
//! curl http://127.0.0.1:8888/ &
//! kill -USR1 <pid>      # the pid is printed at start
//! ```
//!
//! `ADDR` listens elsewhere. `DUMP_AND_EXIT=1` raises `SIGUSR1` itself after a moment, prints
//! once and exits (a smoke test).

use std::time::Duration;

use futures_lite::StreamExt;
use untangle::http::{run_server, Body, Request};
use untangle::signal::{signal, SIGUSR1};
use untangle::Builder;

async fn hello(_req: Request<Body>) -> &'static str {
    "hello, world\n"
}

fn main() -> std::io::Result<()> {
    env_logger::init();
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8888".to_owned());
    let once = std::env::var_os("DUMP_AND_EXIT").is_some();
    eprintln!(
        "pid {}: `kill -USR1 {0}` prints the task dump",
        std::process::id()
    );
    untangle::block_on(async move {
        let mut usr1 = signal(SIGUSR1)?;
        Builder::new()
            .name("http server")
            .spawn(async move {
                if let Err(err) = run_server(addr, hello).await {
                    eprintln!("server: {err}");
                }
            })
            .detach();
        Builder::new()
            .name("ticker (1 s)")
            .spawn(async {
                let mut ticks = untangle::time::interval(Duration::from_secs(1));
                loop {
                    ticks.tick().await;
                }
            })
            .detach();
        for i in 0..3 {
            Builder::new()
                .name(format!("idle worker {i}"))
                .spawn(std::future::pending::<()>())
                .detach();
        }
        if once {
            untangle::spawn(async {
                untangle::time::sleep(Duration::from_millis(50)).await;
                let _ = signal_hook::low_level::raise(SIGUSR1);
            })
            .detach();
        }
        while usr1.next().await.is_some() {
            eprintln!("{}\n{}", untangle::dump(), untangle::stats());
            if once {
                break;
            }
        }
        std::io::Result::Ok(())
    })
}

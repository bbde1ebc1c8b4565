//! The minimal hand-written HTTP loop on tokio's current-thread runtime.
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use untangle_http_bench::{addr, Exchange};

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let listener = tokio::net::TcpListener::bind(addr()).await.unwrap();
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.set_nodelay(true).ok();
            tokio::task::spawn_local(async move {
                let mut exchange = Exchange::default();
                loop {
                    let n = match conn.read(exchange.spare()).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if conn.write_all(exchange.received(n)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

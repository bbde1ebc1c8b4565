//! The minimal hand-written HTTP loop on smol (LocalExecutor driven by async_io::block_on).
use smol::io::{AsyncReadExt, AsyncWriteExt};
use untangle_http_bench::{addr, Exchange};

fn main() {
    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        let listener = smol::net::TcpListener::bind(addr()).await.unwrap();
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.set_nodelay(true).ok();
            ex.spawn(async move {
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
            })
            .detach();
        }
    }));
}

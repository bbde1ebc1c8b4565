//! The minimal hand-written HTTP loop on untangle.
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use untangle::net::TcpListener;
use untangle_http_bench::{addr, Exchange};

fn main() {
    untangle::block_on(async {
        let listener = TcpListener::bind(addr().as_str()).await.unwrap();
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.set_nodelay(true).ok();
            untangle::spawn(async move {
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
    });
}

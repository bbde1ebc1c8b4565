//! The minimal hand-written HTTP loop on smol (LocalExecutor driven by async_io::block_on).
use smol::io::{AsyncReadExt, AsyncWriteExt};
use untangle_http_bench::{addr, count_requests, RESPONSE};

fn main() {
    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        let listener = smol::net::TcpListener::bind(addr()).await.unwrap();
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.set_nodelay(true).ok();
            ex.spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut filled = 0;
                let mut out = Vec::with_capacity(16 * RESPONSE.len());
                loop {
                    let n = match conn.read(&mut buf[filled..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    filled += n;
                    let (count, used) = count_requests(&buf[..filled]);
                    buf.copy_within(used..filled, 0);
                    filled -= used;
                    out.clear();
                    for _ in 0..count {
                        out.extend_from_slice(RESPONSE);
                    }
                    if conn.write_all(&out).await.is_err() {
                        return;
                    }
                }
            })
            .detach();
        }
    }));
}

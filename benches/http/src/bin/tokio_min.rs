//! The minimal hand-written HTTP loop on tokio's current-thread runtime.
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use untangle_http_bench::{addr, count_requests, RESPONSE};

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
            });
        }
    });
}

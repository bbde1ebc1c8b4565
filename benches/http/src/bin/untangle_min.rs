//! The minimal hand-written HTTP loop on untangle.
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use untangle::net::TcpListener;
use untangle_http_bench::{addr, count_requests, RESPONSE};

fn main() {
    untangle::block_on(async {
        let listener = TcpListener::bind(addr().as_str()).await.unwrap();
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.set_nodelay(true).ok();
            untangle::spawn(async move {
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
    });
}

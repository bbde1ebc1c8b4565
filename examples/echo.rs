//! A TCP echo server: one task per connection, code that reads like blocking code.
//!
//! Run: `cargo run --example echo -- 127.0.0.1:7000`, then `nc 127.0.0.1 7000`.

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use untangle::net::{TcpListener, TcpStream};

async fn echo(mut conn: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n]).await?;
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    untangle::block_on(async {
        let listener = TcpListener::bind(addr.as_str()).await?;
        eprintln!("echo server listening on {}", listener.local_addr()?);
        loop {
            let (conn, peer) = listener.accept().await?;
            untangle::spawn(async move {
                if let Err(err) = echo(conn).await {
                    eprintln!("{peer}: {err}");
                }
            })
            .detach();
        }
    })
}

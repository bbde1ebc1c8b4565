//! TechEmpower-style `/plaintext` and `/json` server, for benchmarks.
//!
//! Run: `cargo run --release --example plaintext -- 127.0.0.1:8080`
//!
//! `UNTANGLE_THREADS=N` serves on N loops, one per thread, each with its own `SO_REUSEPORT`
//! listener ([`Server::threads`]); `UNTANGLE_PIN=1` also pins loop `i` to the `i`-th allowed
//! CPU (use with `taskset`). Without `UNTANGLE_THREADS` the server runs on the main thread.

use untangle::http::Body;
use untangle::http::{header, HeaderValue, Request, Response, Server, StatusCode};

pub async fn handle(req: Request<Body>) -> Response<Body> {
    let (content_type, body): (&'static str, Body) = match req.uri().path() {
        "/plaintext" | "/" => ("text/plain", Body::from("Hello, World!")),
        "/json" => (
            "application/json",
            Body::from(r#"{"message":"Hello, World!"}"#),
        ),
        _ => {
            let mut not_found = Response::new(Body::from("not found\n"));
            *not_found.status_mut() = StatusCode::NOT_FOUND;
            return not_found;
        }
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("untangle"));
    response
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    untangle::block_on(async {
        let server = Server::bind(addr.as_str()).await?;
        eprintln!("plaintext server on http://{}", server.local_addr()?);
        match std::env::var("UNTANGLE_THREADS") {
            Ok(n) => {
                let n: usize = n.parse().map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "UNTANGLE_THREADS=N")
                })?;
                let pin = std::env::var("UNTANGLE_PIN").is_ok_and(|v| v == "1");
                eprintln!("{n} threads{}", if pin { ", pinned" } else { "" });
                server.threads(n).pin_to_cpus(pin).serve(handle).await
            }
            Err(_) => server.serve(handle).await,
        }
    })
}

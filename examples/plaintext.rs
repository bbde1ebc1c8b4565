//! TechEmpower-style `/plaintext` and `/json` server, for benchmarks.
//!
//! Run: `cargo run --release --example plaintext -- 127.0.0.1:8080`

use untangle::http::Body;
use untangle::http::{header, HeaderValue, Request, Response, Server, StatusCode};

async fn handle(req: Request<Body>) -> Response<Body> {
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
        server.serve(handle).await
    })
}

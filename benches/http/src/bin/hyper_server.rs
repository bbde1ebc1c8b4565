//! hyper 1.x HTTP/1 server on tokio's current-thread runtime (pipelining enabled), sending the
//! same headers as `examples/plaintext.rs` (hyper adds content-length and date).
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response};
use hyper_util::rt::TokioIo;
use untangle_http_bench::addr;

async fn hello(_: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"Hello, World!")));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
        .headers_mut()
        .insert(header::SERVER, header::HeaderValue::from_static("untangle"));
    Ok(response)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let listener = tokio::net::TcpListener::bind(addr()).await.unwrap();
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            conn.set_nodelay(true).ok();
            tokio::task::spawn_local(async move {
                let _ = http1::Builder::new()
                    .pipeline_flush(true)
                    .serve_connection(TokioIo::new(conn), service_fn(hello))
                    .await;
            });
        }
    });
}

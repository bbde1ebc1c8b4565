//! A hyper 1.x HTTP/1 server on untangle: untangle's `TcpListener` accepts, hyper serves each
//! connection in its own task, with untangle's timers behind hyper's timeouts.
//!
//! ```text
//! cargo run --features hyper --example hyper_server
//! curl http://127.0.0.1:8890/
//! curl -d 'some text' http://127.0.0.1:8890/echo
//! ```
//!
//! Set `ADDR` to listen elsewhere (`ADDR=127.0.0.1:0` picks a free port; the log line says
//! which). It prints nothing but log lines, on stderr.

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use untangle::compat::{HyperIo, HyperTimer};
use untangle::net::TcpListener;

/// `GET /` greets, `POST /echo` answers with the request's body, anything else is a 404.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => {
            Response::new(Full::new(Bytes::from("Hello from hyper on untangle!\n")))
        }
        (&Method::POST, "/echo") => match req.into_body().collect().await {
            Ok(body) => Response::new(Full::new(body.to_bytes())),
            Err(err) => {
                log::warn!("reading a request body: {err}");
                let mut response = Response::new(Full::default());
                *response.status_mut() = StatusCode::BAD_REQUEST;
                response
            }
        },
        _ => {
            let mut response = Response::new(Full::new(Bytes::from("not found\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    Ok(response)
}

fn main() -> std::io::Result<()> {
    // Info and above to stderr unless RUST_LOG says otherwise, so the server's log lines show.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8890".into());
    untangle::block_on(async {
        let listener = TcpListener::bind(addr.as_str()).await?;
        log::info!(
            "hyper_server listening on http://{}",
            listener.local_addr()?
        );
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off, then accept again.
                    log::warn!("accept: {err}");
                    untangle::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(HyperTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(HyperIo::new(stream), hyper::service::service_fn(handle));
            untangle::spawn(async move {
                if let Err(err) = conn.await {
                    log::info!("connection from {peer}: {err}");
                }
            })
            .detach();
        }
    })
}

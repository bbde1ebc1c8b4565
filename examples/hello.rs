//! The seed's example: an HTTP server whose handler looks synchronous while it fetches another
//! URL.
//!
//! ```text
//! cargo run --example hello
//! curl http://127.0.0.1:8888/
//! ```
//!
//! The handler answers with the body of `http::get(UPSTREAM)`. By default the upstream is an
//! embedded service this example starts itself on another local port, answering like httpbin's
//! `/ip` (`{"origin": "<client ip>"}`), so no internet is needed. Set `UPSTREAM=https://…` to
//! fetch something else, and `ADDR` to listen elsewhere.
//!
//! Ctrl-C (`SIGINT`) or `SIGTERM` shuts the server down gracefully: it stops accepting, lets
//! in-flight requests finish, then exits. A second signal exits at once.

use std::net::SocketAddr;
use std::rc::Rc;

use futures_lite::StreamExt;
use untangle::http::{self, header, Body, HeaderValue, Request, Response, Server, StatusCode};
use untangle::signal::{Signals, SIGINT, SIGTERM};

/// The embedded upstream: `{"origin": "<client ip>"}` like httpbin's `/ip`.
async fn ip(req: Request<Body>) -> Response<Body> {
    let origin = req
        .extensions()
        .get::<SocketAddr>()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_default();
    let mut response = Response::new(Body::from(format!("{{\"origin\": \"{origin}\"}}\n")));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn main() -> std::io::Result<()> {
    // Info and above to stderr unless RUST_LOG says otherwise, so the server's log lines show.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8888".into());
    untangle::block_on(async {
        let upstream = match std::env::var("UPSTREAM") {
            Ok(url) => url,
            Err(_) => {
                let embedded = Server::bind("127.0.0.1:0").await?.peer_addr_extension(true);
                let url = format!("http://{}/ip", embedded.local_addr()?);
                untangle::spawn(embedded.serve(ip)).detach();
                url
            }
        };
        let upstream = Rc::new(upstream);
        eprintln!("upstream: {upstream}; try: curl http://{addr}/");
        // Registered now, before serving, so no signal is missed.
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let shutdown = async move {
            let name = |sig| {
                if sig == Some(SIGINT) {
                    "SIGINT"
                } else {
                    "SIGTERM"
                }
            };
            let first = signals.next().await;
            log::info!(
                "{}: shutting down gracefully (again to exit at once)",
                name(first)
            );
            untangle::spawn(async move {
                let second = signals.next().await;
                log::warn!("{}: exiting now", name(second));
                std::process::exit(130);
            })
            .detach();
        };
        let server = Server::bind(addr.as_str()).await?;
        log::info!("HTTP server running at http://{}", server.local_addr()?);
        let served = server
            .with_graceful_shutdown(shutdown)
            .serve(move |_req: Request<Body>| {
                let upstream = upstream.clone();
                async move {
                    // Reads like blocking code; the task suspends while the upstream answers.
                    match http::get(upstream.as_str()).await {
                        Ok(response) => Response::new(response.into_body()),
                        Err(err) => {
                            let mut response = Response::new(Body::from(format!("{err}\n")));
                            *response.status_mut() = StatusCode::BAD_GATEWAY;
                            response
                        }
                    }
                }
            });
        served.await?;
        log::info!("server stopped");
        Ok(())
    })
}

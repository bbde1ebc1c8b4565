//! Adapters that let other crates' runtime traits run on untangle.
//!
//! untangle's sockets speak futures-io (`AsyncRead`/`AsyncWrite`), so every crate written against
//! futures-io (async-tungstenite, futures-rustls, `futures::io`, async-channel, async-lock …) works
//! with them as they are. Crates that define their own runtime traits need a thin adapter; this
//! module has them, each behind the feature named after the crate:
//!
//! | feature | adapters |
//! |---|---|
//! | `hyper` | [`HyperIo`] (hyper's `rt::Read`/`rt::Write` ⇄ futures-io), [`HyperExecutor`] (`rt::Executor`), [`HyperTimer`] (`rt::Timer`) |
//!
//! With `hyper`: a whole HTTP/1 server and a client request on one loop:
//!
//! ```
//! use http_body_util::{BodyExt, Full};
//! use hyper::body::{Bytes, Incoming};
//! use hyper::{Request, Response};
//! use untangle::compat::{HyperIo, HyperTimer};
//! use untangle::net::{TcpListener, TcpStream};
//!
//! async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
//!     Ok(Response::new(Full::new(Bytes::from("hello from hyper"))))
//! }
//!
//! untangle::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     untangle::spawn(async move {
//!         while let Ok((stream, _)) = listener.accept().await {
//!             let conn = hyper::server::conn::http1::Builder::new()
//!                 .timer(HyperTimer::new())
//!                 .serve_connection(HyperIo::new(stream), hyper::service::service_fn(hello));
//!             untangle::spawn(conn).detach();
//!         }
//!     })
//!     .detach();
//!
//!     let stream = TcpStream::connect(addr).await?;
//!     let (mut sender, conn) =
//!         hyper::client::conn::http1::handshake::<_, Full<Bytes>>(HyperIo::new(stream))
//!             .await
//!             .unwrap();
//!     untangle::spawn(conn).detach();
//!     let request = Request::get("/").header("host", "localhost").body(Full::default())?;
//!     let response = sender.send_request(request).await.unwrap();
//!     let body = response.into_body().collect().await.unwrap().to_bytes();
//!     assert_eq!(body, "hello from hyper");
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })
//! .unwrap();
//! ```

#[cfg(feature = "hyper")]
mod hyper;

#[cfg(feature = "hyper")]
pub use self::hyper::{HyperExecutor, HyperIo, HyperTimer};

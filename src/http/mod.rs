//! HTTP/1.1 server and client on the untangle loop.
//!
//! A server whose handlers read like blocking code:
//!
//! ```no_run
//! use untangle::http::{self, Request, Body};
//!
//! async fn handler(_req: Request<Body>) -> Result<Body, http::Error> {
//!     // Looks synchronous; suspends this request's task while the upstream answers.
//!     Ok(http::get("http://127.0.0.1:9000/ip").await?.into_body())
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     untangle::block_on(http::run_server("127.0.0.1:8888", handler))
//! }
//! ```
//!
//! The types are the `http` crate's, re-exported here; bodies are [`Body`].

mod body;
mod buf;
mod client;
mod conn;
mod date;
mod error;
pub(crate) mod h1;
mod pool;
mod response;
mod server;
#[cfg(feature = "tls")]
mod tls;

pub use body::{Body, DEFAULT_BODY_LIMIT};
pub use client::{get, Client, ClientBuilder};
pub use error::{Error, ErrorKind};
pub use response::IntoResponse;
pub use server::{run_server, Server, ThreadedServer};

pub use http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};

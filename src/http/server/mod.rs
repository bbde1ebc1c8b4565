//! The HTTP server: [`run_server`], [`Server`] and its settings, and the accept loop that
//! serves each connection in its own task. [`ThreadedServer`], one loop per thread
//! ([`Server::threads`]), is in `threaded`.

mod conn;
mod state;
mod threaded;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use futures_lite::FutureExt;
use http::Request;

use conn::{serve_conn, Config};
use state::{notify, CancelOnDrop, ConnGuard, ServerState};
pub use threaded::ThreadedServer;

use super::body::{Body, DEFAULT_BODY_LIMIT};
use super::h1::Limits;
use super::response::IntoResponse;
use crate::net::{TcpListener, ToSocketAddrs};
use crate::time::sleep;
#[cfg(feature = "tls")]
use crate::time::timeout;

/// Binds `addr` and serves HTTP/1.1 with `handler` until the process ends.
///
/// Logs `HTTP server running at http://ADDR` (at `info` level) once listening. The handler is
/// any `Fn(Request<Body>) -> impl Future<Output = impl IntoResponse>`; neither needs to be
/// `Send`. Each connection runs in its own task on the current thread's loop. Use [`Server`]
/// for settings, TLS or graceful shutdown.
///
/// # Example
/// ```no_run
/// use untangle::http::{run_server, Request, Body};
///
/// async fn hello(_req: Request<Body>) -> &'static str {
///     "hello, world\n"
/// }
///
/// fn main() -> std::io::Result<()> {
///     untangle::block_on(run_server("127.0.0.1:8888", hello))
/// }
/// ```
pub async fn run_server<A, H, Fut, R>(addr: A, handler: H) -> io::Result<()>
where
    A: ToSocketAddrs,
    H: Fn(Request<Body>) -> Fut + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    let server = Server::bind(addr).await?;
    log::info!("HTTP server running at http://{}", server.local_addr()?);
    server.serve(handler).await
}

/// An HTTP/1.1 server: a listener plus settings, started with [`serve`](Server::serve).
///
/// [`upgrade::on`]: crate::http::upgrade::on
/// [`upgrade`]: crate::http::upgrade
///
/// With [`peer_addr_extension(true)`](Server::peer_addr_extension), requests carry the peer's
/// [`SocketAddr`] in their extensions (`req.extensions().get::<SocketAddr>()`).
///
/// # What handlers see, and when they stop
/// - **Disconnects.** When the client closes the connection while its handler runs (or while
///   a streaming response body waits for its next chunk), the handler's future is dropped —
///   its destructors run — and the connection is closed, as hyper does: a long poll or a
///   stream stops with its client. This is noticed once the request body has been read to its
///   end (before that, its bytes are the handler's to read, and a read of it fails instead). A
///   client that half-closes (shuts down its sending side) and waits for the response counts
///   as gone unless [`half_close(true)`](Server::half_close).
/// - **Upgrades and CONNECT.** A handler answers an `Upgrade` request with `101` and a
///   `CONNECT` with a 2xx to take the connection over, through [`upgrade::on`]
///   (see [`upgrade`] for the rules: requests with a body are not upgraded, upgraded
///   connections are not counted or awaited by the server). Any other answer to `CONNECT` is
///   an ordinary response after which the connection closes: bytes after a CONNECT head may
///   already be tunnel data, so nothing after it is parsed as HTTP. A CONNECT target must be
///   `host:port` (else 400), and only CONNECT may use that form; `*` is accepted only for
///   OPTIONS.
/// - **Versions.** `HTTP/1.x` with x above 1 is served as HTTP/1.1; other major versions are
///   505. Responses are always `HTTP/1.1`.
/// - **Closing.** A response after which the server closes the connection says
///   `Connection: close`: a request body left unread beyond a small drain limit (or a chunked
///   one not yet fully arrived), a refused body, a failed body read, a panic, a shutdown.
/// - **Dropping** the future of [`serve`](Server::serve) stops accepting and drops every
///   connection it started, in-flight handlers included (at the loop's next turn). For a
///   graceful stop use [`with_graceful_shutdown`](Server::with_graceful_shutdown).
///
/// # Example
/// ```
/// use std::time::Duration;
/// use untangle::http::{Server, Request, Body, StatusCode};
///
/// untangle::block_on(async {
///     let server = Server::bind("127.0.0.1:0")
///         .await?
///         .header_read_timeout(Duration::from_secs(10))
///         .max_connections(1000)
///         .with_graceful_shutdown(untangle::time::sleep(Duration::from_millis(50)));
///     // Serves until the shutdown future completes, then finishes in-flight requests.
///     server.serve(|_req: Request<Body>| async { (StatusCode::OK, "hi") }).await
/// })
/// .unwrap();
/// ```
pub struct Server {
    listener: TcpListener,
    config: Config,
    max_connections: usize,
    shutdown: Option<Pin<Box<dyn Future<Output = ()>>>>,
    #[cfg(feature = "tls")]
    tls: Option<futures_rustls::TlsAcceptor>,
}

impl Server {
    /// Binds a listener to `addr` with the default settings.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<Server> {
        Ok(Server::from_listener(TcpListener::bind(addr).await?))
    }

    /// Serves on an existing listener.
    pub fn from_listener(listener: TcpListener) -> Server {
        Server {
            listener,
            config: Config {
                header_read_timeout: Duration::from_secs(30),
                keep_alive_timeout: Duration::from_secs(75),
                limits: Limits {
                    max_header_bytes: 64 * 1024,
                    max_headers: 100,
                    max_uri_bytes: 8 * 1024,
                },
                max_body_bytes: DEFAULT_BODY_LIMIT,
                half_close: false,
                keep_alive: true,
                peer_addr_extension: false,
            },
            max_connections: usize::MAX,
            shutdown: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// How long a client may take to send a whole request head, from its first byte (from the
    /// connection's start for the first request). Then the server answers 408 and closes.
    /// Default 30 s.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Server {
        self.config.header_read_timeout = timeout;
        self
    }

    /// How long a connection may stay idle between requests before it is closed. Default 75 s.
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Server {
        self.config.keep_alive_timeout = timeout;
        self
    }

    /// The largest request head (request line and headers) accepted; larger → 431.
    /// Default 64 KiB.
    pub fn max_header_bytes(mut self, bytes: usize) -> Server {
        self.config.limits.max_header_bytes = bytes.max(64);
        self
    }

    /// The most header fields in a request; more → 431. Default 100, at most 8,192 (the
    /// `http` crate's `HeaderMap` holds at most 32,768 and panics beyond).
    pub fn max_headers(mut self, count: usize) -> Server {
        self.config.limits.max_headers = count.clamp(1, 8192);
        self
    }

    /// The longest request target (URI); longer → 414. Default 8 KiB.
    pub fn max_uri_bytes(mut self, bytes: usize) -> Server {
        self.config.limits.max_uri_bytes = bytes.max(1);
        self
    }

    /// The most bytes [`Body::bytes`]/[`Body::text`] buffer from a request body. Default
    /// 16 MiB. Streaming the body is not limited.
    pub fn max_body_bytes(mut self, bytes: usize) -> Server {
        self.config.max_body_bytes = bytes;
        self
    }

    /// Whether a client may half-close: shut down its sending side and still get its
    /// response (hyper's `http1_half_close`). Default `false`: end of stream from the client
    /// while its handler runs means the client is gone, and the handler is dropped (see
    /// [`Server`]). With `true` the handler runs on and its response is written; the
    /// connection closes after it. A reset connection stops the handler either way.
    pub fn half_close(mut self, allow: bool) -> Server {
        self.config.half_close = allow;
        self
    }

    /// Whether a connection may carry more than one request (HTTP persistence, RFC 9112 §9.3;
    /// hyper's `keep_alive`). Default `true`. With `false` every response says
    /// `Connection: close` and the connection closes after it, whatever the client asked;
    /// requests it had already pipelined behind are not answered.
    pub fn keep_alive(mut self, enable: bool) -> Server {
        self.config.keep_alive = enable;
        self
    }

    /// Whether each request carries the peer's [`SocketAddr`] in its extensions
    /// (`req.extensions().get::<SocketAddr>()`), like axum's `ConnectInfo`. Default `false`:
    /// `http::Extensions` allocates three times on its first insert, which would be most of
    /// a request's heap allocations.
    ///
    /// # Example
    /// ```
    /// use std::net::SocketAddr;
    /// use untangle::http::{Body, Request, Server};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// untangle::block_on(async {
    ///     let server = Server::bind("127.0.0.1:0").await?.peer_addr_extension(true);
    ///     let handler = |req: Request<Body>| async move {
    ///         let peer = req.extensions().get::<SocketAddr>().copied();
    ///         format!("hello {peer:?}")
    ///     };
    ///     # let _ = (server, handler);
    ///     // server.serve(handler).await
    ///     std::io::Result::Ok(())
    /// })
    /// # }
    /// ```
    pub fn peer_addr_extension(mut self, enable: bool) -> Server {
        self.config.peer_addr_extension = enable;
        self
    }

    /// The most connections served at once: at the limit the server stops accepting (new
    /// clients wait in the kernel's backlog) and resumes when a connection closes.
    /// Default: unlimited.
    pub fn max_connections(mut self, count: usize) -> Server {
        self.max_connections = count.max(1);
        self
    }

    /// Stops the server when `signal` completes: it stops accepting, lets in-flight requests
    /// finish (their responses carry `Connection: close`), closes idle connections, and
    /// [`serve`](Server::serve) returns once every connection has closed. Upgraded
    /// connections (WebSocket, CONNECT tunnels) are not waited for: they belong to the tasks
    /// that hold them, which keep running on the loop after `serve` returns.
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Server
    where
        F: Future<Output = ()> + 'static,
    {
        self.shutdown = Some(Box::pin(signal));
        self
    }

    /// Serves HTTPS with this certificate chain (leaf first) and private key (rustls, ring
    /// provider; ALPN `http/1.1`). Fails if the key does not fit the certificate or is not
    /// supported.
    #[cfg(feature = "tls")]
    pub fn tls(
        mut self,
        cert_chain: Vec<rustls_pki_types::CertificateDer<'static>>,
        private_key: rustls_pki_types::PrivateKeyDer<'static>,
    ) -> io::Result<Server> {
        use futures_rustls::rustls;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(cert_chain, private_key)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        self.tls = Some(futures_rustls::TlsAcceptor::from(std::sync::Arc::new(
            config,
        )));
        Ok(self)
    }

    /// Accepts connections and serves each in its own task with `handler`.
    ///
    /// Returns after a graceful shutdown (see
    /// [`with_graceful_shutdown`](Server::with_graceful_shutdown)); otherwise runs forever.
    /// Dropping the returned future stops the server at once: the listener closes and every
    /// connection's task is cancelled (its handler dropped, its socket closed) at the loop's
    /// next turn.
    /// Accept errors never stop it: `ECONNABORTED` is skipped, and running out of file
    /// descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) is logged and retried
    /// with a back-off from 10 ms up to 1 s, so existing connections keep being served.
    pub async fn serve<H, Fut, R>(self, handler: H) -> io::Result<()>
    where
        H: Fn(Request<Body>) -> Fut + 'static,
        Fut: Future<Output = R> + 'static,
        R: IntoResponse,
    {
        let Server {
            listener,
            config,
            max_connections,
            shutdown,
            #[cfg(feature = "tls")]
            tls,
        } = self;
        let handler = Rc::new(handler);
        let config = Rc::new(config);
        let state = Rc::new(ServerState::default());
        // Dropped with this future (or when it returns): cancels the connections left.
        let _connections = CancelOnDrop(state.clone());
        let mut shutdown = shutdown.unwrap_or_else(|| Box::pin(future::pending()));
        let mut backoff = Duration::ZERO;

        loop {
            let accepted = async {
                state
                    .wait_until(|| state.active.get() < max_connections)
                    .await;
                Some(listener.accept().await)
            }
            .or(async {
                shutdown.as_mut().await;
                None
            })
            .await;
            let (stream, peer) = match accepted {
                None => break,
                Some(Ok(pair)) => {
                    backoff = Duration::ZERO;
                    pair
                }
                Some(Err(err)) => {
                    match err.raw_os_error() {
                        Some(errno) if is_resource_exhaustion(errno) => {
                            if backoff.is_zero() {
                                log::error!("accept failed: {err}; backing off");
                            }
                            backoff = (backoff * 2)
                                .clamp(Duration::from_millis(10), Duration::from_secs(1));
                            let stop = async {
                                sleep(backoff).await;
                                false
                            }
                            .or(async {
                                shutdown.as_mut().await;
                                true
                            })
                            .await;
                            if stop {
                                break;
                            }
                        }
                        _ if err.kind() == io::ErrorKind::ConnectionAborted
                            || err.kind() == io::ErrorKind::Interrupted => {}
                        _ => {
                            log::warn!("accept failed: {err}");
                            sleep(Duration::from_millis(10)).await;
                        }
                    }
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let guard = ConnGuard::new(state.clone());
            let key = guard.key;
            let handler = handler.clone();
            let config = config.clone();
            let server = state.clone();
            #[cfg(feature = "tls")]
            if let Some(acceptor) = &tls {
                let acceptor = acceptor.clone();
                let task = crate::spawn(async move {
                    let _guard = guard;
                    let handshake = timeout(config.header_read_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(tls)) => serve_conn(tls, peer, handler, config, server).await,
                        Ok(Err(err)) => log::debug!("{peer}: TLS handshake failed: {err}"),
                        Err(_) => log::debug!("{peer}: TLS handshake timed out"),
                    }
                });
                state.hold(key, task);
                continue;
            }
            let task = crate::spawn(async move {
                let _guard = guard;
                serve_conn(stream, peer, handler, config, server).await;
            });
            state.hold(key, task);
        }

        drop(listener);
        state.shutting_down.set(true);
        notify(&state.shutdown_waiters);
        state.notify_all();
        state.wait_until(|| state.active.get() == 0).await;
        Ok(())
    }
}

/// `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`: the process or system is out of something that
/// closing connections will free; retrying at once would spin.
fn is_resource_exhaustion(errno: i32) -> bool {
    matches!(errno, 24 | 23 | 105 | 12)
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("config", &self.config)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

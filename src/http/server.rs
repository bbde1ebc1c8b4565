//! The HTTP server: [`run_server`], [`Server`] and its settings, the accept loop.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_lite::future;
use futures_lite::FutureExt;
use http::Request;
use slab::Slab;

use super::body::{Body, DEFAULT_BODY_LIMIT};
use super::conn::{serve_conn, Config};
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
/// Requests carry the peer's [`SocketAddr`] in their extensions
/// (`req.extensions().get::<SocketAddr>()`).
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

    /// The most header fields in a request; more → 431. Default 100.
    pub fn max_headers(mut self, count: usize) -> Server {
        self.config.limits.max_headers = count.max(1);
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

    /// The most connections served at once: at the limit the server stops accepting (new
    /// clients wait in the kernel's backlog) and resumes when a connection closes.
    /// Default: unlimited.
    pub fn max_connections(mut self, count: usize) -> Server {
        self.max_connections = count.max(1);
        self
    }

    /// Stops the server when `signal` completes: it stops accepting, lets in-flight requests
    /// finish (their responses carry `Connection: close`), closes idle connections, and
    /// [`serve`](Server::serve) returns once every connection has closed.
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
            let handler = handler.clone();
            let config = config.clone();
            let server = state.clone();
            #[cfg(feature = "tls")]
            if let Some(acceptor) = &tls {
                let acceptor = acceptor.clone();
                crate::spawn(async move {
                    let _guard = guard;
                    let handshake = timeout(config.header_read_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(tls)) => serve_conn(tls, peer, handler, config, server).await,
                        Ok(Err(err)) => log::debug!("{peer}: TLS handshake failed: {err}"),
                        Err(_) => log::debug!("{peer}: TLS handshake timed out"),
                    }
                })
                .detach();
                continue;
            }
            crate::spawn(async move {
                let _guard = guard;
                serve_conn(stream, peer, handler, config, server).await;
            })
            .detach();
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

/// What the accept loop and the connections share: connection count and shutdown state.
///
/// Two waiter lists: `waiters` (the accept loop at its connection limit, and `serve` waiting
/// for the last connection) are woken whenever a connection ends; `shutdown_waiters` (idle
/// connections) only when a graceful shutdown starts, so that a closing connection does not
/// wake every idle one.
#[derive(Default)]
pub(crate) struct ServerState {
    active: Cell<usize>,
    shutting_down: Cell<bool>,
    waiters: RefCell<Slab<Option<Waker>>>,
    shutdown_waiters: RefCell<Slab<Option<Waker>>>,
}

impl ServerState {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    /// Completes once a graceful shutdown has started. Meant to be kept and polled again and
    /// again (it is `Unpin`): it registers once and stays registered until dropped.
    pub(crate) fn shutdown_waiter(&self) -> impl Future<Output = ()> + Unpin + '_ {
        WaitUntil {
            list: &self.shutdown_waiters,
            condition: || self.shutting_down.get(),
            slot: None,
        }
    }

    fn notify_all(&self) {
        notify(&self.waiters);
    }

    fn wait_until<'a>(
        &'a self,
        condition: impl Fn() -> bool + 'a,
    ) -> impl Future<Output = ()> + 'a {
        WaitUntil {
            list: &self.waiters,
            condition,
            slot: None,
        }
    }
}

/// Wakes every waiter of `list`.
fn notify(list: &RefCell<Slab<Option<Waker>>>) {
    let wakers: Vec<Waker> = list
        .borrow_mut()
        .iter_mut()
        .filter_map(|(_, w)| w.take())
        .collect();
    for waker in wakers {
        waker.wake();
    }
}

struct WaitUntil<'a, C> {
    list: &'a RefCell<Slab<Option<Waker>>>,
    condition: C,
    slot: Option<usize>,
}

impl<C: Fn() -> bool> Future for WaitUntil<'_, C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if (this.condition)() {
            return Poll::Ready(());
        }
        let mut waiters = this.list.borrow_mut();
        match this.slot {
            Some(key) => {
                if let Some(slot) = waiters.get_mut(key) {
                    // A waiter polled again by the same task keeps its waker: no clone.
                    match slot {
                        Some(waker) if waker.will_wake(cx.waker()) => {}
                        _ => *slot = Some(cx.waker().clone()),
                    }
                }
            }
            None => this.slot = Some(waiters.insert(Some(cx.waker().clone()))),
        }
        Poll::Pending
    }
}

impl<C> Drop for WaitUntil<'_, C> {
    fn drop(&mut self) {
        if let Some(key) = self.slot.take() {
            self.list.borrow_mut().try_remove(key);
        }
    }
}

// `WaitUntil` holds no self-references, whatever the condition closure is.
impl<C> Unpin for WaitUntil<'_, C> {}

/// Counts a live connection; wakes the accept loop and shutdown waiters when it ends.
struct ConnGuard(Rc<ServerState>);

impl ConnGuard {
    fn new(state: Rc<ServerState>) -> ConnGuard {
        state.active.set(state.active.get() + 1);
        ConnGuard(state)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get() - 1);
        self.0.notify_all();
    }
}

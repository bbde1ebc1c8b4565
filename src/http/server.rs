//! The HTTP server: [`run_server`], [`Server`] and its settings, the accept loop, and
//! [`ThreadedServer`], one loop per thread ([`Server::threads`]).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
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
use crate::threads::{Flag, Threads};
use crate::time::sleep;
#[cfg(feature = "tls")]
use crate::time::timeout;
use crate::Task;

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
/// # What handlers see, and when they stop
/// - **Disconnects.** When the client closes the connection while its handler runs (or while
///   a streaming response body waits for its next chunk), the handler's future is dropped —
///   its destructors run — and the connection is closed, as hyper does: a long poll or a
///   stream stops with its client. This is noticed once the request body has been read to its
///   end (before that, its bytes are the handler's to read, and a read of it fails instead). A
///   client that half-closes (shuts down its sending side) and waits for the response counts
///   as gone unless [`half_close(true)`](Server::half_close).
/// - **CONNECT** is answered `501 Not Implemented` without calling the handler, and the
///   connection closes: a 2xx would turn it into a tunnel (RFC 9110 §9.3.6), which handlers
///   cannot take over yet, and bytes after a CONNECT head may already be tunnel data, so
///   nothing after it is parsed as HTTP. A CONNECT target must be `host:port` (else 400), and
///   only CONNECT may use that form; `*` is accepted only for OPTIONS.
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

    /// Whether a client may half-close: shut down its sending side and still get its
    /// response (hyper's `http1_half_close`). Default `false`: end of stream from the client
    /// while its handler runs means the client is gone, and the handler is dropped (see
    /// [`Server`]). With `true` the handler runs on and its response is written; the
    /// connection closes after it. A reset connection stops the handler either way.
    pub fn half_close(mut self, allow: bool) -> Server {
        self.config.half_close = allow;
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

    /// Serves on `n` threads, each running its own loop and accepting on its own
    /// `SO_REUSEPORT` listener bound to this server's address; the kernel spreads new
    /// connections between them. Each connection stays on the thread that accepted it.
    ///
    /// Settings made on this `Server` before (timeouts, limits, TLS, a graceful shutdown
    /// signal) apply on every thread; [`max_connections`](Server::max_connections) counts per
    /// thread. The listener from [`bind`](Server::bind) becomes the first thread's (its port,
    /// also when bound to port 0, is the one the others bind: `SO_REUSEPORT` is set on it when
    /// serving starts, and Linux lets sockets join its port then). Binding the others, or
    /// registering a listener with its thread's loop, fails [`ThreadedServer::serve`].
    ///
    /// # Panics
    /// Panics if `n` is 0.
    ///
    /// # Example
    /// ```no_run
    /// use untangle::http::{Body, Request, Server};
    ///
    /// fn main() -> std::io::Result<()> {
    ///     untangle::block_on(async {
    ///         Server::bind("127.0.0.1:8080")
    ///             .await?
    ///             .threads(4)
    ///             .with_graceful_shutdown(async {
    ///                 let _ = untangle::signal::ctrl_c().await;
    ///             })
    ///             .serve(|_req: Request<Body>| async { "hello from one of 4 loops\n" })
    ///             .await
    ///     })
    /// }
    /// ```
    pub fn threads(self, n: usize) -> ThreadedServer {
        ThreadedServer {
            server: self,
            threads: Threads::new(n),
        }
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

/// An HTTP/1.1 server on several threads, one loop and one `SO_REUSEPORT` listener each: made
/// by [`Server::threads`], started by [`serve`](ThreadedServer::serve) or
/// [`serve_with`](ThreadedServer::serve_with).
///
/// The returned future runs on the calling thread's loop, which only waits: for the shutdown
/// signal, which it then passes to every thread, and for the threads to end. The threads are
/// named `untangle-0` … `untangle-{n-1}`. Dropping the future before it completes starts a
/// graceful shutdown of the threads, which then end in the background.
///
/// A panic of a thread's loop (not of a handler: that is a 500) stops the other threads and
/// is re-raised by the future.
pub struct ThreadedServer {
    server: Server,
    threads: Threads,
}

impl ThreadedServer {
    /// The address every thread listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// Pins thread `i` to a CPU (see [`Threads::pin_to_cpus`](crate::Threads::pin_to_cpus)).
    /// Default: off.
    pub fn pin_to_cpus(mut self, pin: bool) -> ThreadedServer {
        self.threads = self.threads.pin_to_cpus(pin);
        self
    }

    /// Stops every thread when `signal` completes; `signal` runs on the calling thread's loop,
    /// so it need not be `Send` (e.g. [`ctrl_c`](crate::signal::ctrl_c)). Each thread then
    /// shuts down as [`Server::with_graceful_shutdown`] describes, and
    /// [`serve`](ThreadedServer::serve) returns once all have finished.
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> ThreadedServer
    where
        F: Future<Output = ()> + 'static,
    {
        self.server = self.server.with_graceful_shutdown(signal);
        self
    }

    /// Serves with a clone of `handler` on each thread.
    ///
    /// The handler crosses threads, so it must be `Clone + Send + Sync`; the futures it returns
    /// run on the thread that made them and need not be `Send`. For a handler that is not
    /// `Send` (holding an `Rc`, a per-thread cache), use [`serve_with`](ThreadedServer::serve_with).
    ///
    /// Returns after a graceful shutdown; the first error of a thread (binding or registering
    /// its listener) stops the others and is returned.
    pub async fn serve<H, Fut, R>(self, handler: H) -> io::Result<()>
    where
        H: Fn(Request<Body>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = R> + 'static,
        R: IntoResponse + 'static,
    {
        self.serve_with(move |_index| handler.clone()).await
    }

    /// Serves with a handler that each thread builds for itself: `make_handler(index)` runs on
    /// thread `index` (in `0..n`), so the handler need not be `Send`.
    ///
    /// # Example
    /// ```
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use untangle::http::{Body, Request, Server};
    ///
    /// untangle::block_on(async {
    ///     let server = Server::bind("127.0.0.1:0")
    ///         .await?
    ///         .threads(2)
    ///         .with_graceful_shutdown(untangle::time::sleep(Duration::from_millis(50)));
    ///     server
    ///         .serve_with(|index| {
    ///             let greeting = Rc::new(format!("hello from loop {index}\n"));
    ///             move |_req: Request<Body>| {
    ///                 let greeting = greeting.clone();
    ///                 async move { greeting.to_string() }
    ///             }
    ///         })
    ///         .await
    /// })
    /// .unwrap();
    /// ```
    pub async fn serve_with<M, H, Fut, R>(self, make_handler: M) -> io::Result<()>
    where
        M: Fn(usize) -> H + Send + Sync + 'static,
        H: Fn(Request<Body>) -> Fut + 'static,
        Fut: Future<Output = R> + 'static,
        R: IntoResponse + 'static,
    {
        let ThreadedServer { server, threads } = self;
        let Server {
            listener,
            config,
            max_connections,
            shutdown,
            #[cfg(feature = "tls")]
            tls,
        } = server;
        let count = threads.count();

        // All listeners are bound here, before any thread starts: errors come back at once,
        // and every listener is listening when the threads begin.
        let addr = listener.local_addr()?;
        rustix::net::sockopt::set_socket_reuseport(listener.as_fd(), true)?;
        let mut fds = Vec::with_capacity(count);
        fds.push(Some(listener.as_fd().try_clone_to_owned()?));
        drop(listener);
        for _ in 1..count {
            let extra = TcpListener::bind_reuse_port(addr).await?;
            fds.push(Some(extra.as_fd().try_clone_to_owned()?));
        }

        let stop = Arc::new(Flag::default());
        let setup = Arc::new(ThreadSetup {
            listeners: Mutex::new(fds),
            config,
            max_connections,
            stop: stop.clone(),
            make_handler,
            #[cfg(feature = "tls")]
            tls,
        });
        log::debug!("HTTP server on {addr}: {count} threads");
        let mut group = threads.spawn(move |index| setup.clone().serve(index));
        // Set on every way out of here, a drop of this future included.
        let _stop_on_exit = StopOnDrop(stop.clone());

        let mut shutdown = shutdown.unwrap_or_else(|| Box::pin(future::pending()));
        let finished = async { Some((&mut group).await) }
            .or(async {
                shutdown.as_mut().await;
                None
            })
            .await;
        let results = match finished {
            Some(results) => results,
            None => {
                log::debug!("HTTP server on {addr}: shutting down {count} threads");
                stop.set();
                group.await
            }
        };
        results.into_iter().collect::<io::Result<Vec<()>>>()?;
        Ok(())
    }
}

impl fmt::Debug for ThreadedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadedServer")
            .field("server", &self.server)
            .field("threads", &self.threads)
            .finish()
    }
}

/// What every thread of a [`ThreadedServer`] starts from.
struct ThreadSetup<M> {
    /// Thread `i` takes listener `i`.
    listeners: Mutex<Vec<Option<OwnedFd>>>,
    config: Config,
    max_connections: usize,
    /// The shutdown signal, fanned out to every thread.
    stop: Arc<Flag>,
    make_handler: M,
    #[cfg(feature = "tls")]
    tls: Option<futures_rustls::TlsAcceptor>,
}

impl<M> ThreadSetup<M> {
    /// Builds thread `index`'s handler, then serves its listener until the shutdown signal.
    fn serve<H, Fut, R>(self: Arc<Self>, index: usize) -> impl Future<Output = io::Result<()>>
    where
        M: Fn(usize) -> H,
        H: Fn(Request<Body>) -> Fut + 'static,
        Fut: Future<Output = R> + 'static,
        R: IntoResponse + 'static,
    {
        let fd = self.listeners.lock().unwrap_or_else(|e| e.into_inner())[index].take();
        let handler = (self.make_handler)(index);
        async move {
            let result = match fd {
                Some(fd) => match TcpListener::try_from(std::net::TcpListener::from(fd)) {
                    Ok(listener) => {
                        let server = Server {
                            listener,
                            config: self.config.clone(),
                            max_connections: self.max_connections,
                            shutdown: Some(Box::pin(self.stop.wait())),
                            #[cfg(feature = "tls")]
                            tls: self.tls.clone(),
                        };
                        server.serve(handler).await
                    }
                    Err(err) => Err(err),
                },
                None => Err(io::Error::other("listener already taken")),
            };
            if let Err(err) = &result {
                log::error!("HTTP server thread {index} failed: {err}; stopping the others");
                self.stop.set();
            }
            result
        }
    }
}

/// Sets the flag when dropped.
struct StopOnDrop(Arc<Flag>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.set();
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

/// What the accept loop and the connections share: connection count, the connections' tasks,
/// and shutdown state.
///
/// Two waiter lists: `waiters` (the accept loop at its connection limit, and `serve` waiting
/// for the last connection) are woken whenever a connection ends; `shutdown_waiters` (idle
/// connections) only when a graceful shutdown starts, so that a closing connection does not
/// wake every idle one.
#[derive(Default)]
pub(crate) struct ServerState {
    active: Cell<usize>,
    /// The running connections' tasks, so that dropping `serve` cancels them: a connection
    /// takes its own out (and detaches it) as it ends. One pointer per connection.
    tasks: RefCell<Slab<Task<()>>>,
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

    /// Keeps the task of the connection counted under `key` (see [`ConnGuard`]).
    fn hold(&self, key: usize, task: Task<()>) {
        let held = self.tasks.borrow_mut().insert(task);
        debug_assert_eq!(
            held, key,
            "a connection's task is held under its guard's key"
        );
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

/// Counts a live connection; wakes the accept loop and shutdown waiters when it ends. Lives in
/// the connection's task, whose handle `ServerState::tasks` holds under `key`.
struct ConnGuard {
    state: Rc<ServerState>,
    key: usize,
}

impl ConnGuard {
    fn new(state: Rc<ServerState>) -> ConnGuard {
        state.active.set(state.active.get() + 1);
        // The key the task will be held under: it is inserted before any other connection
        // is accepted, on this one thread.
        let key = state.tasks.borrow().vacant_key();
        ConnGuard { state, key }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        // A connection that ends by itself lets go of its own handle; detaching (not dropping)
        // it, since the task is the one running. Cancelled ones find theirs already gone.
        let task = self.state.tasks.borrow_mut().try_remove(self.key);
        if let Some(task) = task {
            task.detach();
        }
        self.state.active.set(self.state.active.get() - 1);
        self.state.notify_all();
    }
}

/// Cancels the connections still held when `serve`'s future ends or is dropped.
struct CancelOnDrop(Rc<ServerState>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        // Taken out first: dropping a `Task` cancels it, and its future is dropped later, by
        // the loop, when its guard finds the slab empty.
        let tasks = std::mem::take(&mut *self.0.tasks.borrow_mut());
        drop(tasks);
    }
}

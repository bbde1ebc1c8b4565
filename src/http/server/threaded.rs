//! [`ThreadedServer`] and [`Server::threads`], which makes one: one loop and one
//! `SO_REUSEPORT` listener per thread, each serving as a [`Server`] does, with the shutdown
//! signal fanned out to all of them.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use futures_lite::future;
use futures_lite::FutureExt;
use http::Request;

use super::conn::Config;
use super::Server;
use crate::http::body::Body;
use crate::http::response::IntoResponse;
use crate::net::TcpListener;
use crate::threads::{Flag, Threads};

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

impl Server {
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

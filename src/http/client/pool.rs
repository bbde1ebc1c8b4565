//! The client's keep-alive pool: idle connections per scheme + host + port.
//!
//! A connection enters the pool only when its last response was read to the end, the response
//! allowed reuse and no byte is left over in its read buffer. Idle connections expire after the
//! client's `pool_idle_timeout` and at most `pool_max_idle_per_host` are kept per key; the most
//! recently used one is handed out first. A reaper task on the loop closes expired ones, and
//! watches every idle connection for readability, closing one as soon as the server closes it
//! (or sends bytes nobody asked for), so an idle client holds no dead socket.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future::{self, poll_fn};
use futures_lite::io::{AsyncRead, AsyncWrite};

use crate::executor;
use crate::http::buf::ReadBuf;
use crate::net::TcpStream;
use crate::time::{sleep_until, Sleep};

/// A client connection's byte stream: plain TCP or TLS over TCP.
pub(crate) enum Transport {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl Transport {
    /// Plain TCP, where a write that fails took no byte.
    pub(crate) fn is_plain(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Transport::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Transport::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Transport::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Transport::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_close(cx),
            #[cfg(feature = "tls")]
            Transport::Tls(s) => Pin::new(&mut **s).poll_close(cx),
        }
    }
}

/// One client connection with its read buffer (which may hold bytes read ahead).
pub(crate) struct Conn {
    pub(crate) io: Transport,
    pub(crate) rbuf: ReadBuf,
}

impl Conn {
    pub(crate) fn new(io: Transport) -> Conn {
        Conn {
            io,
            rbuf: ReadBuf::new(),
        }
    }

    /// Reads once into the buffer; `Ok(0)` is end of stream.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.rbuf.poll_fill(&mut self.io, cx)
    }
}

/// What a pooled connection is keyed by: scheme, lower-cased host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The idle connections of one client (and its clones).
pub(crate) struct Pool {
    idle: RefCell<HashMap<PoolKey, VecDeque<Idle>>>,
    idle_timeout: Duration,
    max_idle_per_host: usize,
    /// Whether a reaper task is running for this pool.
    reaping: Cell<bool>,
    /// The reaper's waker: a connection checked in is watched from the reaper's next poll.
    reaper: RefCell<Option<Waker>>,
}

impl Pool {
    pub(crate) fn new(idle_timeout: Duration, max_idle_per_host: usize) -> Pool {
        Pool {
            idle: RefCell::new(HashMap::new()),
            idle_timeout,
            max_idle_per_host,
            reaping: Cell::new(false),
            reaper: RefCell::new(None),
        }
    }

    /// The most recently used idle connection for `key` that still looks alive.
    ///
    /// A connection is dropped here when it expired, or when a non-blocking read shows that
    /// the server closed it or sent bytes nobody asked for. Liveness is a hint only: the
    /// server may still close it at the moment the request is written, which the client
    /// handles by retrying (idempotent requests).
    pub(crate) async fn checkout(&self, key: &PoolKey) -> Option<Conn> {
        loop {
            let Idle { mut conn, since } = {
                let mut idle = self.idle.borrow_mut();
                let list = idle.get_mut(key)?;
                let entry = list.pop_back();
                if list.is_empty() {
                    idle.remove(key);
                }
                entry?
            };
            if since.elapsed() >= self.idle_timeout {
                continue;
            }
            // Any outcome but "would block" means the connection is unusable: end of stream,
            // an error, or unsolicited bytes (which must never be read as a response).
            match future::poll_once(poll_fn(|cx| conn.poll_fill(cx))).await {
                None => return Some(conn),
                Some(_) => continue,
            }
        }
    }

    /// Puts a connection whose exchange completed cleanly back into the pool.
    pub(crate) fn checkin(self: &Rc<Self>, key: PoolKey, mut conn: Conn) {
        if self.max_idle_per_host == 0 || self.idle_timeout.is_zero() || !conn.rbuf.is_empty() {
            return;
        }
        conn.rbuf.shrink_if_empty();
        {
            let mut idle = self.idle.borrow_mut();
            let list = idle.entry(key).or_default();
            while list.len() >= self.max_idle_per_host {
                // The least recently used goes first.
                list.pop_front();
            }
            list.push_back(Idle {
                conn,
                since: crate::time::now(),
            });
        }
        self.start_reaper();
    }

    /// Drops expired connections, and those the server closed (or sent unsolicited bytes on)
    /// while idle, noticed by polling each for readability with `cx`, so that the reaper is
    /// woken when one is; returns the earliest expiry of those left, if any.
    fn sweep(&self, cx: &mut Context<'_>) -> Option<Instant> {
        let now = crate::time::now();
        let mut idle = self.idle.borrow_mut();
        let mut next: Option<Instant> = None;
        idle.retain(|_, list| {
            list.retain_mut(|entry| {
                now.duration_since(entry.since) < self.idle_timeout
                    && entry.conn.poll_fill(cx).is_pending()
            });
            if let Some(oldest) = list.front() {
                let expiry = oldest.since + self.idle_timeout;
                next = Some(next.map_or(expiry, |n| n.min(expiry)));
            }
            !list.is_empty()
        });
        next
    }

    /// Starts a task on the current loop that closes idle connections as they expire; it ends
    /// when the pool is empty (or dropped) and starts again with the next check-in.
    fn start_reaper(self: &Rc<Self>) {
        if self.reaping.get() {
            if let Some(waker) = self.reaper.borrow().as_ref() {
                waker.wake_by_ref();
            }
            return;
        }
        if !executor::is_running() {
            return;
        }
        self.reaping.set(true);
        let pool: Weak<Pool> = Rc::downgrade(self);
        // Like hyper's idle connection tasks, one task watches every idle connection: a
        // server's close is acted on at once (its socket released, not left half-closed
        // until it expires), as well as each expiry.
        let mut timer: Option<(Instant, Sleep)> = None;
        crate::spawn(poll_fn(move |cx| {
            let Some(pool) = pool.upgrade() else {
                return Poll::Ready(());
            };
            let Some(next) = pool.sweep(cx) else {
                pool.reaping.set(false);
                pool.reaper.borrow_mut().take();
                return Poll::Ready(());
            };
            {
                let mut reaper = pool.reaper.borrow_mut();
                if !reaper.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *reaper = Some(cx.waker().clone());
                }
            }
            match &mut timer {
                Some((at, sleep)) if *at == next => {
                    if Pin::new(sleep).poll(cx).is_ready() {
                        // The oldest expired: the next sweep drops it.
                        cx.waker().wake_by_ref();
                    }
                }
                _ => {
                    let mut sleep = sleep_until(next);
                    if Pin::new(&mut sleep).poll(cx).is_ready() {
                        cx.waker().wake_by_ref();
                    }
                    timer = Some((next, sleep));
                }
            }
            Poll::Pending
        }))
        .detach();
    }
}

//! The HTTP/1.1 client: [`get`], [`Client`] and [`ClientBuilder`].
//!
//! One request at a time per connection, connections kept alive in a per-client pool (see
//! `pool.rs`), response bodies streamed from the socket, redirects followed (as browsers do),
//! HTTPS through rustls (feature `tls`), `CONNECT` tunnels and forward proxying
//! ([`Client::send_via`]). One exchange on a connection is in `exchange.rs`, opening a
//! connection in `connect.rs`, the response body stream in `body.rs`, URL and `Location`
//! handling in `redirect.rs`, a body that waits for `100 Continue` in `expect.rs`.

mod body;
mod builder;
mod connect;
mod exchange;
mod expect;
mod pool;
mod redirect;
mod upload;

#[cfg(feature = "tls")]
use std::cell::OnceCell;

use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use futures_lite::FutureExt;
use http::{Method, Request, Response, StatusCode, Uri};

use crate::http::body::Body;
use crate::http::error::{Error, ErrorKind};
use crate::http::h1::{Decoder, Framing, ResponseHead};
use crate::http::upgrade::{OnUpgrade, Upgraded};
use crate::time::sleep_until;

use body::ResponseBody;
pub use builder::ClientBuilder;
use builder::Config;
use exchange::{exchange, is_idempotent, Answered, Exchanged, Failure, Prepared, TargetForm};
use pool::{Conn, Pool, PoolKey};
use redirect::{discard, follow, parse_url, Sent, Target};
use upload::Upload;

/// Fetches `url` with `GET` using this thread's default [`Client`] (default settings; its
/// connection pool is shared by all `get` calls on the thread).
///
/// `url` is anything that converts into a [`Uri`]: `&str`, `String`, `Uri`, …; it must be an
/// absolute `http://` or `https://` URL, else the error's kind is [`ErrorKind::InvalidUrl`].
/// Redirects are followed (up to 10). The response body streams from the connection; read it
/// with [`Body::bytes`], [`Body::text`] or as a `Stream`.
///
/// # Example
/// ```no_run
/// untangle::block_on(async {
///     let response = untangle::http::get("http://example.com/").await?;
///     println!("{}", response.status());
///     println!("{}", response.into_body().text().await?);
///     Ok::<_, untangle::http::Error>(())
/// })
/// .unwrap();
/// ```
pub async fn get<U>(url: U) -> Result<Response<Body>, Error>
where
    Uri: TryFrom<U>,
    <Uri as TryFrom<U>>::Error: Into<http::Error>,
{
    let uri = parse_url(url)?;
    let client = DEFAULT_CLIENT.with(Client::clone);
    client.send(get_request(uri)).await
}

thread_local! {
    /// The client behind [`get`]: one per thread, since bodies and connections stay on their
    /// thread's loop.
    static DEFAULT_CLIENT: Client = Client::new();
}

/// Runs `exchange`, failing with [`ErrorKind::Timeout`] at `deadline` if it is still going.
async fn within<F>(deadline: Option<Instant>, exchange: F) -> Result<Response<Body>, Error>
where
    F: std::future::Future<Output = Result<Response<Body>, Error>>,
{
    match deadline {
        None => exchange.await,
        Some(deadline) => {
            exchange
                .or(async {
                    sleep_until(deadline).await;
                    Err(Error::new(ErrorKind::Timeout, "request timed out"))
                })
                .await
        }
    }
}

fn get_request(uri: Uri) -> Request<Body> {
    let mut request = Request::new(Body::empty());
    *request.uri_mut() = uri;
    request
}

/// An HTTP/1.1 client with a keep-alive connection pool.
///
/// Cloning is cheap and the clones share the pool. A client belongs to the thread that made
/// it (like its connections, which live on that thread's loop); it is not `Send`.
///
/// - Connections are kept per scheme + host + port and reused once a response body has been
///   read to its end; a response body dropped unread closes its connection.
/// - Redirects (301, 302, 303, 307, 308) are followed, up to
///   [`ClientBuilder::redirect_limit`], as browsers (Fetch) and curl do: a 303 turns any method but
///   `HEAD` into a bodiless `GET`, a 301 or 302 turns a `POST` into one; otherwise the method and
///   body are sent again. A body that cannot be sent twice (a stream) is not: its request gets
///   the 3xx response itself. When a redirect leaves the
///   host (another host or port, or from `https` to `http`), `Authorization`, `Cookie` and
///   `Proxy-Authorization` are dropped.
/// - A request that finds its pooled connection closed by the server is sent again, once, on
///   a new connection when the server cannot have processed it (the rule hyper follows): any
///   request whose first write failed (nothing of it was sent), and an idempotent one (`GET`,
///   `HEAD`, `PUT`, `DELETE`, `OPTIONS`, `TRACE`, without a streamed body) when the
///   connection ended before any byte of a response.
/// - A request body can wait for the server's go-ahead (`Expect: 100-continue`, per request
///   or above a size: [`ClientBuilder::expect_continue_above`]); see [`Client::send`].
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use untangle::http::{Body, Client, Method, Request};
///
/// untangle::block_on(async {
///     let client = Client::builder().timeout(Duration::from_secs(10)).build();
///     let page = client.get("http://example.com/").await?.into_body().text().await?;
///
///     let request = Request::builder()
///         .method(Method::POST)
///         .uri("http://example.com/form")
///         .header("content-type", "application/x-www-form-urlencoded")
///         .body(Body::from("a=1&b=2"))?;
///     let response = client.send(request).await?;
///     println!("{} ({} bytes of page)", response.status(), page.len());
///     Ok::<_, untangle::http::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Rc<ClientInner>,
}

struct ClientInner {
    config: Config,
    pool: Rc<Pool>,
    /// Built on first HTTPS use: loading the trust anchors costs more than a plain client.
    #[cfg(feature = "tls")]
    tls: OnceCell<Result<crate::http::tls::TlsConnector, String>>,
}

impl ClientBuilder {
    /// Makes the client.
    pub fn build(self) -> Client {
        let pool = Rc::new(Pool::new(
            self.config.pool_idle_timeout,
            self.config.pool_max_idle_per_host,
        ));
        Client {
            inner: Rc::new(ClientInner {
                config: self.config,
                pool,
                #[cfg(feature = "tls")]
                tls: OnceCell::new(),
            }),
        }
    }
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with the default settings (see [`ClientBuilder`]).
    pub fn new() -> Client {
        ClientBuilder::default().build()
    }

    /// Starts building a client with custom settings.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Sends a `GET` request for `url` (anything that converts into a [`Uri`]: `&str`,
    /// `String`, `Uri`, …). See [`send`](Client::send).
    ///
    /// # Example
    /// ```no_run
    /// untangle::block_on(async {
    ///     let client = untangle::http::Client::new();
    ///     let body = client.get("http://example.com/").await?.into_body().bytes().await?;
    ///     println!("{} bytes", body.len());
    ///     Ok::<_, untangle::http::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn get<U>(&self, url: U) -> Result<Response<Body>, Error>
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: Into<http::Error>,
    {
        let uri = parse_url(url)?;
        self.send(get_request(uri)).await
    }

    /// Sends `request` and returns the response once its head has arrived; the body streams
    /// from the connection as it is read.
    ///
    /// The URI must be absolute (`http://` or `https://`, with a host). The request goes out
    /// as HTTP/1.1 (whatever its `version`) with an origin-form target, a `Host` header
    /// (unless the request has one), a default `User-Agent` (unless it has one), and
    /// `Content-Length` when the body's size is known (also `0` for an empty `POST`, `PUT`
    /// or `PATCH`), else chunked encoding. Other headers are sent as they are. Interim (1xx)
    /// responses are skipped, except `101 Switching Protocols`, which is returned with its
    /// connection: [`upgrade::on`](crate::http::upgrade::on) on the response gives it as an
    /// [`Upgraded`](crate::http::upgrade::Upgraded) (it never returns to the pool).
    ///
    /// A `CONNECT` request names its target in authority form (`host:port`) and goes to that
    /// authority itself, as with hyper's client; a 2xx answer is a tunnel, taken with
    /// `upgrade::on`. To open a tunnel through a proxy, see [`send_via`](Client::send_via).
    ///
    /// # Answers that come while the body is being sent
    ///
    /// The response is read while the request body is written, as hyper does. A 3xx, 4xx or
    /// 5xx answer that arrives mid-upload is returned, the rest of the body is not sent, and
    /// the connection closes after that response; so a server that refuses a large upload
    /// and closes gives its `413`, not a broken pipe. A 2xx answer with a body that arrives
    /// mid-upload is returned at once and the upload goes on as its body is read (a
    /// full-duplex server, such as an echo that streams back what it receives); if the
    /// response body ends first, its stream ends only once the rest of the upload has gone
    /// out, and the connection is then reused. The upload moves only while the response body
    /// is polled (there is no background task): a task that feeds the request body (through a
    /// channel, say) must read the response body concurrently, not after it has fed it all,
    /// and dropping the response stops the upload and closes the connection. A 2xx answer
    /// without a body (`204`, `Content-Length: 0`) on a connection the
    /// server keeps open has accepted the request: the rest of the body is sent before the
    /// response is returned (the server may still be reading it, as hyper and curl assume),
    /// and the connection is reused; if the server closes meanwhile, the answer still stands.
    ///
    /// # `Expect: 100-continue`
    ///
    /// A request with a body that carries `Expect: 100-continue` (set on the request, or
    /// added by [`ClientBuilder::expect_continue_above`]) sends its head alone and waits for
    /// the server: on `100 Continue` the body follows; with no answer within
    /// [`ClientBuilder::expect_continue_timeout`] (1 s by default) it is sent anyway. Other
    /// interim responses (`102`, `103`, several of them) are skipped, before and after the
    /// body. A final response that arrives instead of `100 Continue` (`413 Content Too
    /// Large`, `401`, `417 Expectation Failed`, …) is the response returned, not an error: the
    /// body is not sent and the connection is closed after that response, never pooled
    /// (but a 2xx without a body on a connection kept open accepted the request: the body is
    /// sent, as above); during the upload, the rules above apply. A `417` is returned as it
    /// is (the request is not retried without `Expect`). If
    /// the server closes the connection during the upload and its response cannot be read,
    /// the error is the write's ([`ErrorKind::Io`]). An `Expect` header on a request without a
    /// body is sent as it is and nothing waits.
    ///
    /// A status line of a higher HTTP/1 minor version (`HTTP/1.2`) is read as HTTP/1.1 (RFC
    /// 9110 §2.5). An invalid `Content-Length` is [`ErrorKind::BadResponse`] even where
    /// `Transfer-Encoding` overrides it or the response has no body (`HEAD`, `204`, `304`);
    /// only a 2xx to `CONNECT` ignores it. Bytes after a complete response are not its body,
    /// and its connection is then not reused.
    ///
    /// Errors: [`ErrorKind::InvalidUrl`], [`ErrorKind::Connect`], [`ErrorKind::Tls`],
    /// [`ErrorKind::Timeout`], [`ErrorKind::Io`], [`ErrorKind::BadResponse`],
    /// [`ErrorKind::TooManyRedirects`], [`ErrorKind::Request`] (the request body stream
    /// failed or did not match its `Content-Length`).
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Body>, Error> {
        let deadline = self.deadline();
        within(deadline, self.send_following(request, deadline)).await
    }

    /// Sends `request` on a connection to the HTTP proxy at `proxy` (an `http://host:port`
    /// or `https://host:port` URL) rather than to the host its URI names.
    ///
    /// - A **`CONNECT`** request opens a tunnel: its URI is the tunnel's target in authority
    ///   form (`host:port`, as with hyper), written as the request line's target and as
    ///   `Host`. A 2xx answer comes back as a response without a body that carries the
    ///   connection: [`upgrade::on`](crate::http::upgrade::on) on it gives the tunnel as an
    ///   [`Upgraded`](crate::http::upgrade::Upgraded) byte stream, starting with whatever the
    ///   proxy sent right after its head. Any other answer (`407 Proxy Authentication
    ///   Required`, `502`, …) is an ordinary response with its body. Either way the
    ///   connection is a new one and never returns to the pool.
    /// - Any other request to an `http://` URL goes out in absolute form (`GET
    ///   http://host/path HTTP/1.1`), as a forward proxy expects, on a pooled connection to
    ///   the proxy. An `https://` URL through a proxy needs a tunnel and TLS inside it, which
    ///   this client does not do: [`ErrorKind::InvalidUrl`].
    ///
    /// Headers such as `Proxy-Authorization` are sent as the request has them. Redirects are
    /// not followed. [`ClientBuilder::timeout`] and `connect_timeout` apply as for
    /// [`send`](Client::send); an open tunnel has no time limit.
    ///
    /// # Example: a tunnel through an HTTP proxy
    /// ```no_run
    /// use futures_lite::{AsyncReadExt, AsyncWriteExt};
    /// use untangle::http::{upgrade, Body, Client, Method, Request};
    ///
    /// untangle::block_on(async {
    ///     let connect = Request::builder()
    ///         .method(Method::CONNECT)
    ///         .uri("example.com:80")
    ///         .header("proxy-authorization", "Basic dXNlcjpwYXNz")
    ///         .body(Body::empty())?;
    ///     let response = Client::new().send_via("http://proxy.local:3128", connect).await?;
    ///     if !response.status().is_success() {
    ///         let status = response.status();
    ///         let reason = response.into_body().text().await?;
    ///         panic!("the proxy refused: {status} {reason}");
    ///     }
    ///     let mut tunnel = upgrade::on(response).await?;
    ///     // Whatever goes through is between us and example.com:80 (TLS would go here).
    ///     tunnel
    ///         .write_all(b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
    ///         .await?;
    ///     let mut page = Vec::new();
    ///     tunnel.read_to_end(&mut page).await?;
    ///     Ok::<_, Box<dyn std::error::Error>>(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn send_via<U>(
        &self,
        proxy: U,
        request: Request<Body>,
    ) -> Result<Response<Body>, Error>
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: Into<http::Error>,
    {
        let proxy = Target::of(&parse_url(proxy)?)?;
        let deadline = self.deadline();
        within(deadline, async {
            Ok(self
                .execute(request, deadline, Some(&proxy))
                .await?
                .response)
        })
        .await
    }

    /// When a request started now must be done by, if the client has a timeout.
    fn deadline(&self) -> Option<Instant> {
        self.inner
            .config
            .timeout
            .and_then(|t| crate::time::now().checked_add(t))
    }

    async fn send_following(
        &self,
        mut request: Request<Body>,
        deadline: Option<Instant>,
    ) -> Result<Response<Body>, Error> {
        let limit = self.inner.config.redirect_limit;
        let mut redirects = 0;
        loop {
            // A tunnel is never redirected: a 3xx to CONNECT is the proxy's answer.
            if limit == 0 || request.method() == Method::CONNECT {
                return Ok(self.execute(request, deadline, None).await?.response);
            }
            let sent = Sent::of(&request);
            let Exchanged { response, reusable } = self.execute(request, deadline, None).await?;
            let Some(next) = follow(sent, &response)? else {
                return Ok(response);
            };
            if redirects >= limit {
                return Err(Error::new(
                    ErrorKind::TooManyRedirects,
                    format!("more than {limit} redirects (last to {})", next.uri()),
                ));
            }
            redirects += 1;
            if reusable {
                discard(response.into_body()).await;
            }
            request = next;
        }
    }

    /// One request, one response (no redirects): a pooled connection or a new one (to
    /// `proxy` when given), with one retry on a new connection when a pooled one turns out to
    /// be closed.
    async fn execute(
        &self,
        request: Request<Body>,
        deadline: Option<Instant>,
        proxy: Option<&Target>,
    ) -> Result<Exchanged, Error> {
        let tunnel = request.method() == Method::CONNECT;
        let (target, form) = if tunnel {
            if request.body().size_hint() != Some(0) {
                return Err(Error::new(
                    ErrorKind::Request,
                    "a CONNECT request has no content (RFC 9110 §9.3.6)",
                ));
            }
            (Target::connect(request.uri())?, TargetForm::Authority)
        } else {
            let target = Target::of(request.uri())?;
            match proxy {
                None => (target, TargetForm::Origin),
                Some(_) if target.key.https => {
                    return Err(Error::new(
                        ErrorKind::InvalidUrl,
                        format!(
                            "an https URL through a proxy needs a CONNECT tunnel: {}",
                            request.uri()
                        ),
                    ))
                }
                Some(_) => (target, TargetForm::Absolute),
            }
        };
        // Where the connection goes.
        let peer = proxy.unwrap_or(&target);
        let (parts, body) = request.into_parts();
        let mut prepared = Prepared::new(
            &parts,
            body,
            &target,
            form,
            self.inner.config.expect_continue,
        );
        let retry_allowed = is_idempotent(&prepared.method) && prepared.replayable();
        // A tunnel takes its connection for good: a new one, so that no request queued for
        // the pool's connections waits behind it and no stale one fails it.
        let mut use_pool = !tunnel;
        loop {
            let pooled = if use_pool {
                self.inner.pool.checkout(&peer.key).await
            } else {
                None
            };
            let reused = pooled.is_some();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => self.connect(peer).await?,
            };
            match exchange(&mut conn, &mut prepared).await {
                Ok(Answered { head, upload }) => {
                    if head.response.status() == StatusCode::SWITCHING_PROTOCOLS
                        && !prepared.upgrade
                    {
                        // Taking the connection over for a protocol nobody asked for would
                        // hand the caller a hijacked socket and an empty response.
                        return Err(Error::new(
                            ErrorKind::BadResponse,
                            "101 Switching Protocols to a request that asked for no upgrade",
                        ));
                    }
                    let key = peer.key.clone();
                    return Ok(self.respond(conn, head, upload, &prepared, key, deadline));
                }
                // Never written (hyper's "canceled" request): any method may go again.
                Err(Failure::Unsent(err)) if reused => {
                    log::debug!(
                        "pooled connection to {} was closed before the request was written \
                         ({err}); sending it on a new one",
                        target.host_header
                    );
                    use_pool = false;
                }
                Err(Failure::Stale(err)) if reused && retry_allowed => {
                    log::debug!(
                        "pooled connection to {} was closed ({err}); retrying",
                        target.host_header
                    );
                    use_pool = false;
                }
                Err(failure) => return Err(failure.into_error()),
            }
        }
    }

    /// Builds the response around its head; the body keeps the connection until it ends.
    fn respond(
        &self,
        conn: Conn,
        head: ResponseHead,
        upload: Option<Upload>,
        prepared: &Prepared,
        key: PoolKey,
        deadline: Option<Instant>,
    ) -> Exchanged {
        let ResponseHead {
            mut response,
            framing,
            reusable,
        } = head;
        let status = response.status();
        let tunnel = prepared.method == Method::CONNECT;
        if status == StatusCode::SWITCHING_PROTOCOLS || (tunnel && status.is_success()) {
            // The connection now speaks another protocol (or is a tunnel, whose 2xx head has
            // no body whatever its fields say, RFC 9110 §9.3.6): it goes to `upgrade::on(&mut
            // response)`, with what the server sent behind the head, never to the pool.
            let Conn { io, mut rbuf } = conn;
            let buffered = rbuf.split_to(rbuf.len());
            let upgraded = OnUpgrade::ready(Upgraded::new(io, buffered));
            response.extensions_mut().insert(upgraded);
            return Exchanged {
                response: response.map(|()| Body::empty()),
                reusable: false,
            };
        }
        // After a refused CONNECT the proxy may already be reading tunnel bytes, or close
        // (our server does): never reused.
        let reusable = reusable && !prepared.close && framing != Framing::Eof && !tunnel;
        let length = match framing {
            Framing::Empty => Some(0),
            Framing::Length(n) => Some(n),
            Framing::Chunked | Framing::Eof => None,
        };
        let decoder = Decoder::new(framing);
        let body = if decoder.is_done() {
            // (`upload` is `None` here: the upload goes on only for an answer with a body.)
            if reusable && upload.is_none() {
                // Bytes after a bodiless response are not another response: `checkin`
                // refuses a connection whose buffer is not empty.
                self.inner.pool.checkin(key, conn);
            }
            Body::empty()
        } else {
            Body::from_boxed(
                Box::pin(ResponseBody {
                    conn: Some(conn),
                    upload,
                    decoder,
                    eof: false,
                    ahead: None,
                    reuse: reusable.then(|| (self.inner.pool.clone(), key)),
                    deadline: deadline.map(sleep_until),
                }),
                length,
            )
        };
        Exchanged {
            response: response.map(|()| body.with_limit(self.inner.config.max_body_bytes)),
            reusable,
        }
    }
}

//! The HTTP/1.1 client: [`get`], [`Client`] and [`ClientBuilder`].
//!
//! One request at a time per connection, connections kept alive in a per-client pool (see
//! `pool.rs`), response bodies streamed from the socket, redirects followed for `GET`/`HEAD`,
//! HTTPS through rustls (feature `tls`). One exchange on a connection is in `exchange.rs`, the
//! response body stream in `body.rs`, URL and `Location` handling in `redirect.rs`, a body
//! that waits for `100 Continue` in `expect.rs`.

mod body;
mod builder;
mod exchange;
mod expect;
mod pool;
mod redirect;

#[cfg(feature = "tls")]
use std::cell::OnceCell;

use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use futures_lite::FutureExt;
use http::header;
use http::{Method, Request, Response, StatusCode, Uri};

use crate::http::body::Body;
use crate::http::error::{Error, ErrorKind};
use crate::http::h1::{Decoder, Framing, ResponseHead};
use crate::http::upgrade::{OnUpgrade, Upgraded};
use crate::net::TcpStream;
use crate::time::sleep_until;

use body::ResponseBody;
pub use builder::ClientBuilder;
use builder::Config;
use exchange::{exchange, is_idempotent, Exchanged, Failure, Prepared};
use pool::{Conn, Pool, Transport};
use redirect::{discard, parse_url, resolve_location, same_origin_for_credentials, Target};

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
/// - Redirects (301, 302, 303, 307, 308) are followed for `GET` and `HEAD`; a 303 turns any
///   method into `GET`. Other methods get the 3xx response itself. When a redirect leaves the
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
    tls: OnceCell<Result<super::tls::TlsConnector, String>>,
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
    /// # `Expect: 100-continue`
    ///
    /// A request with a body that carries `Expect: 100-continue` (set on the request, or
    /// added by [`ClientBuilder::expect_continue_above`]) sends its head alone and waits for
    /// the server: on `100 Continue` the body follows; with no answer within
    /// [`ClientBuilder::expect_continue_timeout`] (1 s by default) it is sent anyway. Other
    /// interim responses (`102`, `103`, several of them) are skipped, before and after the
    /// body. A final response that arrives before or during the upload (`413 Content Too
    /// Large`, `401`, `417 Expectation Failed`, …) is the response returned, not an error: the
    /// rest of the body is not sent and the connection is closed after that response, never
    /// pooled. A `417` is returned as it is (the request is not retried without `Expect`). If
    /// the server closes the connection during the upload and its response cannot be read,
    /// the error is the write's ([`ErrorKind::Io`]). An `Expect` header on a request without a
    /// body is sent as it is and nothing waits.
    ///
    /// Errors: [`ErrorKind::InvalidUrl`], [`ErrorKind::Connect`], [`ErrorKind::Tls`],
    /// [`ErrorKind::Timeout`], [`ErrorKind::Io`], [`ErrorKind::BadResponse`],
    /// [`ErrorKind::TooManyRedirects`], [`ErrorKind::Request`] (the request body stream
    /// failed or did not match its `Content-Length`).
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Body>, Error> {
        let deadline = self
            .inner
            .config
            .timeout
            .and_then(|t| crate::time::now().checked_add(t));
        let exchange = self.send_following(request, deadline);
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

    async fn send_following(
        &self,
        mut request: Request<Body>,
        deadline: Option<Instant>,
    ) -> Result<Response<Body>, Error> {
        let limit = self.inner.config.redirect_limit;
        let mut redirects = 0;
        loop {
            if limit == 0 {
                return Ok(self.execute(request, deadline).await?.response);
            }
            let method = request.method().clone();
            let uri = request.uri().clone();
            let headers = request.headers().clone();
            let replay = match request.body().size_hint() {
                Some(0) => Some(Bytes::new()),
                _ => request.body().as_full().cloned(),
            };
            let Exchanged { response, reusable } = self.execute(request, deadline).await?;

            let status = response.status();
            let next_method = match status {
                StatusCode::SEE_OTHER if method == Method::HEAD => Method::HEAD,
                StatusCode::SEE_OTHER => Method::GET,
                StatusCode::MOVED_PERMANENTLY
                | StatusCode::FOUND
                | StatusCode::TEMPORARY_REDIRECT
                | StatusCode::PERMANENT_REDIRECT
                    if method == Method::GET || method == Method::HEAD =>
                {
                    method.clone()
                }
                _ => return Ok(response),
            };
            let Some(location) = response.headers().get(header::LOCATION) else {
                return Ok(response);
            };
            // A 307/308 keeps the body; a stream cannot be sent twice.
            let body = if next_method == method && status != StatusCode::SEE_OTHER {
                match replay {
                    Some(bytes) => Body::from(bytes),
                    None => return Ok(response),
                }
            } else {
                Body::empty()
            };
            if redirects >= limit {
                return Err(Error::new(
                    ErrorKind::TooManyRedirects,
                    format!("more than {limit} redirects (last to {location:?})"),
                ));
            }
            let next_uri = resolve_location(&uri, location.as_bytes()).ok_or_else(|| {
                Error::new(
                    ErrorKind::BadResponse,
                    format!("invalid Location header in a redirect: {location:?}"),
                )
            })?;
            redirects += 1;
            log::debug!("redirect {status} from {uri} to {next_uri}");

            let mut headers = headers;
            if !same_origin_for_credentials(&uri, &next_uri) {
                headers.remove(header::AUTHORIZATION);
                headers.remove(header::PROXY_AUTHORIZATION);
                headers.remove(header::COOKIE);
            }
            if uri.authority() != next_uri.authority() {
                headers.remove(header::HOST);
            }
            if next_method != method || status == StatusCode::SEE_OTHER {
                for name in [
                    header::CONTENT_TYPE,
                    header::CONTENT_LENGTH,
                    header::CONTENT_ENCODING,
                    header::CONTENT_LANGUAGE,
                    header::TRANSFER_ENCODING,
                    header::EXPECT,
                ] {
                    headers.remove(name);
                }
            }
            if reusable {
                discard(response.into_body()).await;
            }

            let mut next = Request::new(body);
            *next.method_mut() = next_method;
            *next.uri_mut() = next_uri;
            *next.headers_mut() = headers;
            request = next;
        }
    }

    /// One request, one response (no redirects): a pooled connection or a new one, with one
    /// retry on a new connection when a pooled one turns out to be closed.
    async fn execute(
        &self,
        request: Request<Body>,
        deadline: Option<Instant>,
    ) -> Result<Exchanged, Error> {
        let target = Target::of(request.uri())?;
        let (parts, body) = request.into_parts();
        let mut prepared = Prepared::new(&parts, body, &target, self.inner.config.expect_continue);
        let retry_allowed = is_idempotent(&prepared.method) && prepared.replayable();
        let mut use_pool = true;
        loop {
            let pooled = if use_pool {
                self.inner.pool.checkout(&target.key).await
            } else {
                None
            };
            let reused = pooled.is_some();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => self.connect(&target).await?,
            };
            match exchange(&mut conn, &mut prepared).await {
                Ok(head) => {
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
                    return Ok(self.respond(conn, head, &prepared, target, deadline));
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
        prepared: &Prepared,
        target: Target,
        deadline: Option<Instant>,
    ) -> Exchanged {
        let ResponseHead {
            mut response,
            framing,
            reusable,
        } = head;
        let status = response.status();
        if status == StatusCode::SWITCHING_PROTOCOLS {
            // The connection now speaks another protocol: it goes to `upgrade::on(&mut
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
        let reusable = reusable && !prepared.close && framing != Framing::Eof;
        let length = match framing {
            Framing::Empty => Some(0),
            Framing::Length(n) => Some(n),
            Framing::Chunked | Framing::Eof => None,
        };
        let decoder = Decoder::new(framing);
        let body = if decoder.is_done() {
            if reusable {
                // Bytes after a bodiless response are not another response: `checkin`
                // refuses a connection whose buffer is not empty.
                self.inner.pool.checkin(target.key, conn);
            }
            Body::empty()
        } else {
            Body::from_boxed(
                Box::pin(ResponseBody {
                    conn: Some(conn),
                    decoder,
                    eof: false,
                    reuse: reusable.then(|| (self.inner.pool.clone(), target.key)),
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

    /// Opens a connection (TCP, then TLS for `https`) within the connect timeout.
    async fn connect(&self, target: &Target) -> Result<Conn, Error> {
        let open = async {
            let tcp = TcpStream::connect((target.bare_host(), target.key.port))
                .await
                .map_err(|err| {
                    Error::with_source(
                        ErrorKind::Connect,
                        format!("cannot connect to {}", target.host_header),
                        err,
                    )
                })?;
            let _ = tcp.set_nodelay(true);
            let io = if target.key.https {
                self.tls_handshake(target, tcp).await?
            } else {
                Transport::Plain(tcp)
            };
            Ok(Conn::new(io))
        };
        match self.inner.config.connect_timeout {
            None => open.await,
            Some(limit) => {
                open.or(async {
                    crate::time::sleep(limit).await;
                    Err(Error::new(
                        ErrorKind::Timeout,
                        format!("connecting to {} timed out", target.host_header),
                    ))
                })
                .await
            }
        }
    }

    #[cfg(feature = "tls")]
    async fn tls_handshake(&self, target: &Target, tcp: TcpStream) -> Result<Transport, Error> {
        let connector = self
            .inner
            .tls
            .get_or_init(|| {
                super::tls::TlsConnector::new(&self.inner.config.root_certificates)
                    .map_err(|err| err.to_string())
            })
            .as_ref()
            .map_err(|message| Error::new(ErrorKind::Tls, message.clone()))?
            .clone();
        let stream = connector.connect(target.bare_host(), tcp).await?;
        Ok(Transport::Tls(Box::new(stream)))
    }

    #[cfg(not(feature = "tls"))]
    async fn tls_handshake(&self, _target: &Target, _tcp: TcpStream) -> Result<Transport, Error> {
        Err(Error::new(
            ErrorKind::Tls,
            "https URL, but untangle was built without TLS support (feature `tls`)",
        ))
    }
}

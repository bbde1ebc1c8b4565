//! The HTTP/1.1 client: [`get`], [`Client`] and [`ClientBuilder`].
//!
//! One request at a time per connection, connections kept alive in a per-client pool (see
//! `pool.rs`), response bodies streamed from the socket, redirects followed for `GET`/`HEAD`,
//! HTTPS through rustls (feature `tls`).

#[cfg(feature = "tls")]
use std::cell::OnceCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future::poll_fn;
use futures_lite::io::{AsyncWrite, AsyncWriteExt};
use futures_lite::{FutureExt, Stream, StreamExt};
use http::header;
use http::{Method, Request, Response, StatusCode, Uri};

use super::body::{Body, DEFAULT_BODY_LIMIT};
use super::error::{Error, ErrorKind};
use super::h1::{self, Decoded, Decoder, Framing, ResponseHead};
use super::pool::{Conn, Pool, PoolKey, Transport};
use crate::net::TcpStream;
use crate::time::{sleep_until, Sleep};

/// The `User-Agent` sent unless a request sets its own.
const USER_AGENT: &str = concat!("untangle/", env!("CARGO_PKG_VERSION"));
/// The largest response head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A request body up to this size is copied behind the head so both go out in one write.
const COALESCE_BYTES: usize = 64 * 1024;
/// How much of a redirect response's body is read (to keep its connection) before giving up
/// on the connection instead.
const REDIRECT_DRAIN_BYTES: u64 = 64 * 1024;

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

fn parse_url<U>(url: U) -> Result<Uri, Error>
where
    Uri: TryFrom<U>,
    <Uri as TryFrom<U>>::Error: Into<http::Error>,
{
    Uri::try_from(url).map_err(|err| {
        let err: http::Error = err.into();
        Error::with_source(ErrorKind::InvalidUrl, "invalid URL", err)
    })
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
/// - An idempotent request that finds its pooled connection closed by the server (the write
///   fails, or the connection ends before any byte of a response) is retried once on a new
///   connection.
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

#[derive(Clone)]
struct Config {
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    redirect_limit: usize,
    max_body_bytes: usize,
    #[cfg(feature = "tls")]
    root_certificates: Vec<rustls_pki_types::CertificateDer<'static>>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            connect_timeout: None,
            timeout: None,
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            redirect_limit: 10,
            max_body_bytes: DEFAULT_BODY_LIMIT,
            #[cfg(feature = "tls")]
            root_certificates: Vec::new(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Config");
        d.field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("pool_max_idle_per_host", &self.pool_max_idle_per_host)
            .field("redirect_limit", &self.redirect_limit)
            .field("max_body_bytes", &self.max_body_bytes);
        #[cfg(feature = "tls")]
        d.field("added_root_certificates", &self.root_certificates.len());
        d.finish()
    }
}

/// Settings for a [`Client`]; made by [`Client::builder`].
///
/// # Example
/// ```
/// use std::time::Duration;
/// use untangle::http::Client;
///
/// let client = Client::builder()
///     .connect_timeout(Duration::from_secs(5))
///     .timeout(Duration::from_secs(30))
///     .redirect_limit(3)
///     .max_body_bytes(1 << 20)
///     .build();
/// # drop(client);
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ClientBuilder {
    config: Config,
}

impl ClientBuilder {
    /// Limits how long making a connection may take: DNS resolution, the TCP handshake and,
    /// for `https`, the TLS handshake. Past it the error's kind is [`ErrorKind::Timeout`].
    /// Default: no limit of its own (the system's TCP timeout, and [`timeout`](Self::timeout)
    /// when set).
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.config.connect_timeout = Some(timeout);
        self
    }

    /// Limits a whole request: from the start of [`Client::send`] (or `get`) through
    /// connecting, writing the request, following redirects and receiving the response head,
    /// *and* reading the response body. A body still being read when the time is up fails
    /// with an error of kind [`ErrorKind::Timeout`] (from [`Body::bytes`], or as an
    /// `io::ErrorKind::TimedOut` item of the body stream). Default: no limit.
    pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.config.timeout = Some(timeout);
        self
    }

    /// How long an idle connection stays in the pool before it is closed. Default: 90 s.
    /// Zero disables pooling.
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.config.pool_idle_timeout = timeout;
        self
    }

    /// How many idle connections are kept per scheme + host + port; the least recently used
    /// is closed to make room. Default: 32. Zero disables pooling.
    pub fn pool_max_idle_per_host(mut self, max: usize) -> ClientBuilder {
        self.config.pool_max_idle_per_host = max;
        self
    }

    /// How many redirects one request may follow before it fails with
    /// [`ErrorKind::TooManyRedirects`]. Default: 10. Zero disables following: a 3xx response
    /// is returned as it is.
    pub fn redirect_limit(mut self, limit: usize) -> ClientBuilder {
        self.config.redirect_limit = limit;
        self
    }

    /// How many bytes [`Body::bytes`] and [`Body::text`] may buffer from a response body of
    /// this client before failing with [`ErrorKind::BodyTooLarge`]. Streaming the body is not
    /// limited. Default: [`DEFAULT_BODY_LIMIT`] (16 MiB).
    pub fn max_body_bytes(mut self, limit: usize) -> ClientBuilder {
        self.config.max_body_bytes = limit;
        self
    }

    /// Trusts this certificate (DER: a `Vec<u8>` or a `CertificateDer`) as a root for
    /// `https`, in addition to the webpki-roots set (Mozilla's root program).
    ///
    /// A certificate that cannot be parsed makes every `https` request of the client fail
    /// with [`ErrorKind::Tls`].
    #[cfg(feature = "tls")]
    pub fn add_root_certificate(
        mut self,
        der: impl Into<rustls_pki_types::CertificateDer<'static>>,
    ) -> ClientBuilder {
        self.config.root_certificates.push(der.into());
        self
    }

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

/// Where a request goes.
struct Target {
    key: PoolKey,
    /// The `Host` header value: the host, with the port when it is not the default one.
    host_header: String,
}

impl Target {
    fn of(uri: &Uri) -> Result<Target, Error> {
        let invalid =
            |message: &str| Error::new(ErrorKind::InvalidUrl, format!("{message}: {uri}"));
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(_) => return Err(invalid("unsupported URL scheme (expected http or https)")),
            None => return Err(invalid("the URL must be absolute (http:// or https://)")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("the URL has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("the URL has no host"));
        }
        let default_port = if https { 443 } else { 80 };
        let after_host = &authority.as_str()[host.len()..];
        let port = match authority.port_u16() {
            Some(port) => port,
            None if after_host.len() > 1 => return Err(invalid("invalid port in URL")),
            None => default_port,
        };
        let host = host.to_ascii_lowercase();
        let host_header = if port == default_port {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        Ok(Target {
            key: PoolKey { https, host, port },
            host_header,
        })
    }

    /// The host as the resolver and TLS want it (IPv6 without brackets).
    fn bare_host(&self) -> &str {
        let host = self.key.host.as_str();
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }
}

/// A request body as it will be written.
enum OutBody {
    /// No body, or one already copied behind the head.
    None,
    /// A buffer written after the head (too large to copy).
    Full(Bytes),
    /// A stream: with a declared length (`Some`) or chunked (`None`).
    Stream(Body, Option<u64>),
}

/// A request encoded for the wire.
struct Prepared {
    method: Method,
    head: Vec<u8>,
    body: OutBody,
    /// The request asked for `Connection: close`.
    close: bool,
}

impl Prepared {
    fn new(parts: &http::request::Parts, body: Body, target: &Target) -> Prepared {
        let method = parts.method.clone();
        let headers = &parts.headers;
        let user_length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // The body's own size wins over a Content-Length header; a stream of unknown size
        // uses the header when given, chunked otherwise.
        let known = body.size_hint().or(user_length);

        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(method.as_str().as_bytes());
        head.push(b' ');
        // Origin form: the path (at least "/") and the query.
        let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
        if !path.starts_with('/') {
            head.push(b'/');
        }
        head.extend_from_slice(path.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        if !headers.contains_key(header::HOST) {
            head.extend_from_slice(b"host: ");
            head.extend_from_slice(target.host_header.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        h1::encode_headers(headers, &mut head);
        if !headers.contains_key(header::USER_AGENT) {
            head.extend_from_slice(b"user-agent: ");
            head.extend_from_slice(USER_AGENT.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        let body_method =
            method == Method::POST || method == Method::PUT || method == Method::PATCH;
        match known {
            Some(0) if !body_method => {}
            Some(n) => {
                head.extend_from_slice(b"content-length: ");
                h1::encode_u64(n, &mut head);
                head.extend_from_slice(b"\r\n");
            }
            None => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        head.extend_from_slice(b"\r\n");

        let body = if known == Some(0) && body.size_hint() == Some(0) {
            OutBody::None
        } else if let Some(full) = body.as_full() {
            if full.len() <= COALESCE_BYTES {
                head.extend_from_slice(full);
                OutBody::None
            } else {
                OutBody::Full(full.clone())
            }
        } else {
            OutBody::Stream(body, known)
        };
        let (close, _) = h1::connection_tokens(headers);
        Prepared {
            method,
            head,
            body,
            close,
        }
    }

    /// Whether the request can be written again (its body is not a consumed stream).
    fn replayable(&self) -> bool {
        !matches!(self.body, OutBody::Stream(..))
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// Why an exchange failed: `Stale` when nothing of a response arrived and the connection
/// may simply have been closed by the server while idle (worth one retry if it was pooled).
enum Failure {
    Stale(Error),
    Fatal(Error),
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Stale(err) | Failure::Fatal(err) => err,
        }
    }
}

/// A response whose body may keep its connection for the pool.
struct Exchanged {
    response: Response<Body>,
    /// The connection goes back to the pool once the body is read: worth draining a small
    /// unwanted body (a redirect's) to keep it.
    reusable: bool,
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
    /// responses are skipped, except `101 Switching Protocols`, which is returned (its
    /// connection is not reused).
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
        let mut prepared = Prepared::new(&parts, body, &target);
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
                Ok(head) => return Ok(self.respond(conn, head, &prepared, target, deadline)),
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
            response,
            framing,
            reusable,
        } = head;
        let status = response.status();
        let reusable = reusable
            && !prepared.close
            && status != StatusCode::SWITCHING_PROTOCOLS
            && framing != Framing::Eof;
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

/// Writes the request and reads up to the final response head.
async fn exchange(conn: &mut Conn, prepared: &mut Prepared) -> Result<ResponseHead, Failure> {
    // Until the first response byte, an I/O failure may just mean the server had closed the
    // idle connection.
    let stale = |err: io::Error| Failure::Stale(err.into());
    conn.io.write_all(&prepared.head).await.map_err(stale)?;
    match std::mem::replace(&mut prepared.body, OutBody::None) {
        OutBody::None => {}
        OutBody::Full(bytes) => {
            let written = conn.io.write_all(&bytes).await;
            prepared.body = OutBody::Full(bytes);
            written.map_err(stale)?;
        }
        OutBody::Stream(body, length) => write_stream(&mut conn.io, body, length).await?,
    }
    conn.io.flush().await.map_err(stale)?;
    read_head(conn, &prepared.method).await
}

/// Writes a streaming body: exactly `length` bytes, or chunked.
async fn write_stream(
    io: &mut Transport,
    mut body: Body,
    length: Option<u64>,
) -> Result<(), Failure> {
    let fatal = |err: io::Error| Failure::Fatal(err.into());
    let mut written: u64 = 0;
    let mut chunk_head = Vec::with_capacity(20);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|err| {
            Failure::Fatal(Error::with_source(
                ErrorKind::Request,
                "the request body stream failed",
                err,
            ))
        })?;
        if chunk.is_empty() {
            continue;
        }
        written += chunk.len() as u64;
        match length {
            Some(length) => {
                if written > length {
                    return Err(Failure::Fatal(Error::new(
                        ErrorKind::Request,
                        format!("the request body is longer than its Content-Length ({length})"),
                    )));
                }
                io.write_all(&chunk).await.map_err(fatal)?;
            }
            None => {
                chunk_head.clear();
                h1::encode_chunk_head(chunk.len(), &mut chunk_head);
                write_parts(io, &[&chunk_head, &chunk, b"\r\n"])
                    .await
                    .map_err(fatal)?;
            }
        }
    }
    match length {
        Some(length) if written != length => Err(Failure::Fatal(Error::new(
            ErrorKind::Request,
            format!("the request body is shorter ({written}) than its Content-Length ({length})"),
        ))),
        Some(_) => Ok(()),
        None => io.write_all(h1::CHUNKED_END).await.map_err(fatal),
    }
}

/// Writes all of `parts`, as few writes as the transport allows (vectored).
async fn write_parts(io: &mut Transport, parts: &[&[u8]]) -> io::Result<()> {
    let mut index = 0;
    let mut offset = 0;
    while index < parts.len() {
        if offset == parts[index].len() {
            index += 1;
            offset = 0;
            continue;
        }
        let mut slices = Vec::with_capacity(parts.len() - index);
        slices.push(io::IoSlice::new(&parts[index][offset..]));
        slices.extend(parts[index + 1..].iter().map(|p| io::IoSlice::new(p)));
        let mut n = poll_fn(|cx| Pin::new(&mut *io).poll_write_vectored(cx, &slices)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 && index < parts.len() {
            let left = parts[index].len() - offset;
            if n < left {
                offset += n;
                n = 0;
            } else {
                n -= left;
                index += 1;
                offset = 0;
            }
        }
    }
    Ok(())
}

/// Reads response heads until the final one (1xx other than 101 are skipped).
async fn read_head(conn: &mut Conn, method: &Method) -> Result<ResponseHead, Failure> {
    let mut received = !conn.rbuf.is_empty();
    loop {
        if !conn.rbuf.is_empty() {
            match h1::parse_response(&mut conn.rbuf, method, MAX_HEAD_BYTES) {
                Ok(Some(head)) => {
                    let status = head.response.status();
                    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                        log::trace!("skipping interim response {status}");
                        continue;
                    }
                    return Ok(head);
                }
                Ok(None) => {}
                Err(h1::BadResponse(reason)) => {
                    return Err(Failure::Fatal(Error::new(ErrorKind::BadResponse, reason)))
                }
            }
        }
        match poll_fn(|cx| conn.poll_fill(cx)).await {
            Ok(0) if !received => {
                return Err(Failure::Stale(Error::with_source(
                    ErrorKind::Io,
                    "connection closed before a response",
                    io::Error::from(io::ErrorKind::UnexpectedEof),
                )))
            }
            Ok(0) => {
                return Err(Failure::Fatal(Error::with_source(
                    ErrorKind::Io,
                    "connection closed in the middle of a response head",
                    io::Error::from(io::ErrorKind::UnexpectedEof),
                )))
            }
            Ok(_) => received = true,
            Err(err) if !received => return Err(Failure::Stale(err.into())),
            Err(err) => return Err(Failure::Fatal(err.into())),
        }
    }
}

/// Reads and drops a small unwanted body (a redirect's) so that its connection returns to
/// the pool; gives up (closing the connection) past a few KiB.
async fn discard(mut body: Body) {
    if body.size_hint().is_some_and(|n| n > REDIRECT_DRAIN_BYTES) {
        return;
    }
    let mut total = 0u64;
    while let Some(Ok(chunk)) = body.next().await {
        total += chunk.len() as u64;
        if total > REDIRECT_DRAIN_BYTES {
            return;
        }
    }
}

/// A response body streaming from its connection.
struct ResponseBody {
    /// `None` once the body ended or failed.
    conn: Option<Conn>,
    decoder: Decoder,
    /// The server closed the connection.
    eof: bool,
    /// Where the connection goes when the body is complete, if it may be reused.
    reuse: Option<(Rc<Pool>, PoolKey)>,
    /// The client's whole-request deadline.
    deadline: Option<Sleep>,
}

impl ResponseBody {
    fn finish(&mut self) {
        if let (Some(conn), Some((pool, key))) = (self.conn.take(), self.reuse.take()) {
            pool.checkin(key, conn);
        }
    }

    fn fail(&mut self, err: io::Error) -> Poll<Option<io::Result<Bytes>>> {
        self.conn = None;
        self.reuse = None;
        Poll::Ready(Some(Err(err)))
    }
}

impl Stream for ResponseBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.decode(&mut conn.rbuf, this.eof) {
                Ok(Decoded::Data(data)) => {
                    if this.decoder.is_done() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Ok(Decoded::Done) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(h1::DecodeError::Invalid(reason)) => {
                    return this.fail(Error::new(ErrorKind::BadResponse, reason).into());
                }
                Err(err) => return this.fail(err.into_io()),
            }
            match conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) => this.eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(err)) => return this.fail(err),
                Poll::Pending => {
                    if let Some(deadline) = &mut this.deadline {
                        if Pin::new(deadline).poll(cx).is_ready() {
                            return this.fail(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "request timed out while reading the response body",
                            ));
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Resolves a `Location` value against the URI of the request that got it (RFC 3986 §5.2),
/// percent-encoding bytes that may not appear in a URI.
fn resolve_location(base: &Uri, location: &[u8]) -> Option<Uri> {
    let location = percent_encode_invalid(location.trim_ascii());
    let location = match location.find('#') {
        Some(hash) => &location[..hash],
        None => location.as_str(),
    };
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();

    let has_scheme = location
        .find(':')
        .map(|colon| {
            let s = &location[..colon];
            !s.is_empty()
                && s.as_bytes()[0].is_ascii_alphabetic()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        })
        .unwrap_or(false);
    let resolved = if has_scheme {
        // Absolute; its path is still normalised below.
        let uri = Uri::try_from(location).ok()?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let (path, query) = split_query(path);
        format!(
            "{}://{}{}{}",
            uri.scheme_str()?,
            uri.authority()?.as_str(),
            remove_dot_segments(path),
            query
        )
    } else if let Some(rest) = location.strip_prefix("//") {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (path, query) = split_query(&rest[end..]);
        format!(
            "{scheme}://{}{}{query}",
            &rest[..end],
            remove_dot_segments(path)
        )
    } else {
        let base_path = base.path();
        let (path, query) = split_query(location);
        let path = if path.is_empty() {
            // Same document; a new query if given.
            let query = if query.is_empty() {
                base.query().map(|q| format!("?{q}")).unwrap_or_default()
            } else {
                query.to_owned()
            };
            return Uri::try_from(format!("{scheme}://{authority}{base_path}{query}")).ok();
        } else if path.starts_with('/') {
            remove_dot_segments(path)
        } else {
            let dir = match base_path.rfind('/') {
                Some(slash) => &base_path[..=slash],
                None => "/",
            };
            remove_dot_segments(&format!("{dir}{path}"))
        };
        format!("{scheme}://{authority}{path}{query}")
    };
    Uri::try_from(resolved).ok()
}

/// Splits `path?query` into the path and `?query` (or "").
fn split_query(s: &str) -> (&str, &str) {
    match s.find('?') {
        Some(q) => (&s[..q], &s[q..]),
        None => (s, ""),
    }
}

/// RFC 3986 §5.2.4; the result starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 || out.first().is_some_and(|s| !s.is_empty()) {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

/// Percent-encodes bytes that may not appear in a URI (controls, space, non-ASCII, and
/// `"<>\^`{|}`), leaving everything else, including existing escapes, as it is.
fn percent_encode_invalid(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        let keep = b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether credentials may follow a redirect from `from` to `to`: same host and port, and
/// not from `https` to `http`.
fn same_origin_for_credentials(from: &Uri, to: &Uri) -> bool {
    let (Ok(a), Ok(b)) = (Target::of(from), Target::of(to)) else {
        return false;
    };
    a.key.host == b.key.host && a.key.port == b.key.port && (b.key.https || !a.key.https)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(base: &str, location: &str) -> String {
        resolve_location(&base.parse().unwrap(), location.as_bytes())
            .unwrap()
            .to_string()
    }

    #[test]
    fn locations_resolve_against_the_request_uri() {
        let base = "http://a.example:8080/b/c/d?q";
        assert_eq!(resolve(base, "/x?y"), "http://a.example:8080/x?y");
        assert_eq!(resolve(base, "g"), "http://a.example:8080/b/c/g");
        assert_eq!(resolve(base, "./g/"), "http://a.example:8080/b/c/g/");
        assert_eq!(resolve(base, "../g"), "http://a.example:8080/b/g");
        assert_eq!(resolve(base, "../../../../g"), "http://a.example:8080/g");
        assert_eq!(resolve(base, "?z"), "http://a.example:8080/b/c/d?z");
        assert_eq!(resolve(base, ""), "http://a.example:8080/b/c/d?q");
        assert_eq!(resolve(base, "g#frag"), "http://a.example:8080/b/c/g");
        assert_eq!(resolve(base, "//other/p"), "http://other/p");
        assert_eq!(resolve(base, "https://other/p/../q"), "https://other/q");
        assert_eq!(resolve(base, "/a b"), "http://a.example:8080/a%20b");
        assert_eq!(resolve("http://h", "x"), "http://h/x");
    }

    #[test]
    fn targets_need_absolute_http_urls() {
        let kind = |s: &str| Target::of(&s.parse().unwrap()).err().map(|e| e.kind());
        assert_eq!(kind("/relative"), Some(ErrorKind::InvalidUrl));
        assert_eq!(kind("ftp://h/"), Some(ErrorKind::InvalidUrl));
        assert_eq!(kind("http://user:pw@h/"), Some(ErrorKind::InvalidUrl));
        assert_eq!(kind("http://h:99999/"), Some(ErrorKind::InvalidUrl));
        let t = Target::of(&"HTTP://Example.COM:80/x".parse().unwrap()).unwrap();
        assert_eq!(
            (t.key.host.as_str(), t.key.port, t.host_header.as_str()),
            ("example.com", 80, "example.com")
        );
        let t = Target::of(&"https://[::1]:8443/".parse().unwrap()).unwrap();
        assert_eq!(
            (t.bare_host(), t.host_header.as_str()),
            ("::1", "[::1]:8443")
        );
    }

    #[test]
    fn credentials_stay_on_their_host() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert!(same_origin_for_credentials(
            &u("http://h/a"),
            &u("http://h:80/b")
        ));
        assert!(same_origin_for_credentials(
            &u("http://h/a"),
            &u("https://h:80/b")
        ));
        assert!(!same_origin_for_credentials(
            &u("https://h/a"),
            &u("http://h:443/b")
        ));
        assert!(!same_origin_for_credentials(
            &u("http://h/a"),
            &u("http://h:81/b")
        ));
        assert!(!same_origin_for_credentials(
            &u("http://h/a"),
            &u("http://g/b")
        ));
    }
}

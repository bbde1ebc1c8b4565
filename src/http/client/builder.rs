//! [`ClientBuilder`]: a client's settings ([`Config`]) and the builder methods that set them;
//! `build` is in `mod.rs`, next to the [`Client`](super::Client) it makes.

use std::fmt;
use std::time::Duration;

use crate::http::body::DEFAULT_BODY_LIMIT;

use super::exchange::ExpectContinue;

/// How long a body waits for `100 Continue` unless the client sets another time: 1 s (as
/// curl).
const DEFAULT_EXPECT_CONTINUE_TIMEOUT: Duration = Duration::from_secs(1);

/// A client's settings.
#[derive(Clone)]
pub(super) struct Config {
    pub(super) connect_timeout: Option<Duration>,
    pub(super) timeout: Option<Duration>,
    pub(super) pool_idle_timeout: Duration,
    pub(super) pool_max_idle_per_host: usize,
    pub(super) redirect_limit: usize,
    pub(super) max_body_bytes: usize,
    pub(super) expect_continue: ExpectContinue,
    #[cfg(feature = "tls")]
    pub(super) root_certificates: Vec<rustls_pki_types::CertificateDer<'static>>,
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
            expect_continue: ExpectContinue {
                above: None,
                timeout: DEFAULT_EXPECT_CONTINUE_TIMEOUT,
            },
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
            .field("max_body_bytes", &self.max_body_bytes)
            .field("expect_continue_above", &self.expect_continue.above)
            .field("expect_continue_timeout", &self.expect_continue.timeout);
        #[cfg(feature = "tls")]
        d.field("added_root_certificates", &self.root_certificates.len());
        d.finish()
    }
}

/// Settings for a [`Client`](crate::http::Client); made by [`Client::builder`](crate::http::Client::builder).
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
    pub(super) config: Config,
}

impl ClientBuilder {
    /// Limits how long making a connection may take: DNS resolution, the TCP handshake and,
    /// for `https`, the TLS handshake. Past it the error's kind is [`ErrorKind::Timeout`](crate::http::ErrorKind::Timeout).
    /// Default: no limit of its own (the system's TCP timeout, and [`timeout`](Self::timeout)
    /// when set).
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.config.connect_timeout = Some(timeout);
        self
    }

    /// Limits a whole request: from the start of [`Client::send`](crate::http::Client::send) (or `get`) through
    /// connecting, writing the request, following redirects and receiving the response head,
    /// *and* reading the response body. A body still being read when the time is up fails
    /// with an error of kind [`ErrorKind::Timeout`](crate::http::ErrorKind::Timeout) (from [`Body::bytes`](crate::http::Body::bytes), or as an
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
    /// [`ErrorKind::TooManyRedirects`](crate::http::ErrorKind::TooManyRedirects). Default: 10. Zero disables following: a 3xx response
    /// is returned as it is.
    pub fn redirect_limit(mut self, limit: usize) -> ClientBuilder {
        self.config.redirect_limit = limit;
        self
    }

    /// How many bytes [`Body::bytes`](crate::http::Body::bytes) and [`Body::text`](crate::http::Body::text) may buffer from a response body of
    /// this client before failing with [`ErrorKind::BodyTooLarge`](crate::http::ErrorKind::BodyTooLarge). Streaming the body is not
    /// limited. Default: [`DEFAULT_BODY_LIMIT`] (16 MiB).
    pub fn max_body_bytes(mut self, limit: usize) -> ClientBuilder {
        self.config.max_body_bytes = limit;
        self
    }

    /// Adds `Expect: 100-continue` to requests whose body has a known length (a buffer, or a
    /// stream with a `Content-Length`) of more than `bytes`, so that a server can refuse the
    /// request (a `413`, a `401`, …) before the body is sent. Requests that set an `Expect`
    /// header themselves keep theirs; a stream of unknown length (chunked) gets none. Default:
    /// off (only requests that carry `Expect: 100-continue` themselves wait).
    ///
    /// See [`Client::send`](crate::http::Client::send) for how such a request is sent, and
    /// [`expect_continue_timeout`](Self::expect_continue_timeout).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use untangle::http::Client;
    ///
    /// // Ask before uploading more than 1 MiB; wait at most 500 ms for the server's go-ahead.
    /// let client = Client::builder()
    ///     .expect_continue_above(1 << 20)
    ///     .expect_continue_timeout(Duration::from_millis(500))
    ///     .build();
    /// # drop(client);
    /// ```
    pub fn expect_continue_above(mut self, bytes: u64) -> ClientBuilder {
        self.config.expect_continue.above = Some(bytes);
        self
    }

    /// How long a request with `Expect: 100-continue` waits for `100 Continue` (or a final
    /// response) after its head before it sends the body anyway (RFC 9110 §10.1.1: servers
    /// may ignore the expectation). Default: 1 s. Zero sends the body at once (the header
    /// still goes out, so a final response that arrives during the upload still stops it).
    pub fn expect_continue_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.config.expect_continue.timeout = timeout;
        self
    }

    /// Trusts this certificate (DER: a `Vec<u8>` or a `CertificateDer`) as a root for
    /// `https`, in addition to the webpki-roots set (Mozilla's root program).
    ///
    /// A certificate that cannot be parsed makes every `https` request of the client fail
    /// with [`ErrorKind::Tls`](crate::http::ErrorKind::Tls).
    #[cfg(feature = "tls")]
    pub fn add_root_certificate(
        mut self,
        der: impl Into<rustls_pki_types::CertificateDer<'static>>,
    ) -> ClientBuilder {
        self.config.root_certificates.push(der.into());
        self
    }
}

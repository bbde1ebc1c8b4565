//! [`Error`]: the one error type of the HTTP client and of body consumption.

use std::error::Error as StdError;
use std::fmt;
use std::io;

/// What went wrong, broadly; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The TCP connection could not be made (refused, unreachable, DNS failure).
    Connect,
    /// A connect, request or header timeout expired.
    Timeout,
    /// Reading or writing the connection failed, or it closed early.
    Io,
    /// The URL is malformed or not `http`/`https`.
    InvalidUrl,
    /// The peer sent something that is not valid HTTP/1.x.
    BadResponse,
    /// The TLS handshake or TLS layer failed.
    Tls,
    /// More redirects than the client's `redirect_limit`.
    TooManyRedirects,
    /// A body was larger than the limit for buffering it.
    BodyTooLarge,
    /// The request could not be built or sent (for example an invalid header).
    Request,
    /// A body could not be decoded as asked (for example `text()` on bytes that are not UTF-8).
    Decode,
}

/// The error of the HTTP client and of [`Body::bytes`](super::Body::bytes) /
/// [`Body::text`](super::Body::text).
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Error {
        Error {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The broad category of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether a timeout expired.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// Whether the connection could not be made.
    pub fn is_connect(&self) -> bool {
        self.kind == ErrorKind::Connect
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        if let Some(inner) = err.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
            return Error {
                kind: inner.kind,
                message: inner.message.clone(),
                source: None,
            };
        }
        let kind = match err.kind() {
            io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Io,
        };
        Error::with_source(kind, "I/O error", err)
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match err.kind {
            ErrorKind::Timeout => io::ErrorKind::TimedOut,
            ErrorKind::Connect => io::ErrorKind::ConnectionRefused,
            ErrorKind::BadResponse => io::ErrorKind::InvalidData,
            ErrorKind::InvalidUrl | ErrorKind::Request => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}

impl From<http::Error> for Error {
    fn from(err: http::Error) -> Error {
        Error::with_source(ErrorKind::Request, "invalid request", err)
    }
}

//! [`Body`]: the body of a request or response — empty, a buffer, or a stream of chunks.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_lite::io::AsyncRead;
use futures_lite::{Stream, StreamExt};

use super::error::{Error, ErrorKind};

/// The buffering limit of [`Body::bytes`] and [`Body::text`] unless a server or client sets
/// another: 16 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The body of a request or response.
///
/// A body is a stream of [`Bytes`] chunks (it implements `Stream<Item = io::Result<Bytes>>`).
/// Bodies of incoming requests and responses stream from the connection as they are read;
/// [`bytes`](Body::bytes) and [`text`](Body::text) collect them, refusing to buffer more than
/// a limit (the server's `max_body_bytes`, the client's limit, or [`DEFAULT_BODY_LIMIT`]).
///
/// # Example
/// ```
/// use untangle::http::Body;
///
/// untangle::block_on(async {
///     let body = Body::from("hello");
///     assert_eq!(body.size_hint(), Some(5));
///     assert_eq!(body.text().await.unwrap(), "hello");
///
///     let chunks = futures_lite::stream::iter(vec![
///         Ok(bytes::Bytes::from_static(b"a")),
///         Ok(bytes::Bytes::from_static(b"b")),
///     ]);
///     assert_eq!(Body::from_stream(chunks).bytes().await.unwrap(), "ab");
/// });
/// ```
pub struct Body {
    kind: Kind,
    limit: usize,
}

type BoxStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>>>>;

enum Kind {
    Empty,
    Full(Bytes),
    Stream { stream: BoxStream, len: Option<u64> },
}

impl Body {
    /// An empty body.
    pub fn empty() -> Body {
        Body {
            kind: Kind::Empty,
            limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// A body streamed from `stream`; sent with chunked encoding (HTTP/1.1) since its length
    /// is unknown.
    pub fn from_stream<S>(stream: S) -> Body
    where
        S: Stream<Item = io::Result<Bytes>> + 'static,
    {
        Body::from_boxed(Box::pin(stream), None)
    }

    /// A body read from `reader` until end of file, in chunks of up to 16 KiB.
    pub fn from_reader<R>(reader: R) -> Body
    where
        R: AsyncRead + 'static,
    {
        Body::from_stream(ReaderStream {
            reader: Box::pin(reader),
            buf: vec![0; 16 * 1024],
            done: false,
        })
    }

    pub(crate) fn from_boxed(stream: BoxStream, len: Option<u64>) -> Body {
        Body {
            kind: Kind::Stream { stream, len },
            limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Sets how many bytes [`bytes`](Body::bytes) and [`text`](Body::text) may buffer.
    pub fn with_limit(mut self, limit: usize) -> Body {
        self.limit = limit;
        self
    }

    /// The exact length in bytes, when known in advance.
    pub fn size_hint(&self) -> Option<u64> {
        match &self.kind {
            Kind::Empty => Some(0),
            Kind::Full(bytes) => Some(bytes.len() as u64),
            Kind::Stream { len, .. } => *len,
        }
    }

    /// Whether the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.size_hint() == Some(0)
    }

    /// The whole body as one buffer if it already is one (no streaming needed).
    pub(crate) fn as_full(&self) -> Option<&Bytes> {
        match &self.kind {
            Kind::Full(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// Where the boxed stream of a streaming body lives: while the body is alive no other
    /// stream has this address, so the server can tell whether a response body is the request
    /// body itself (see `server::conn`). `None` for other bodies.
    pub(crate) fn stream_addr(&self) -> Option<usize> {
        match &self.kind {
            Kind::Stream { stream, .. } => {
                Some(stream.as_ref().get_ref() as *const dyn Stream<Item = _> as *const () as usize)
            }
            _ => None,
        }
    }

    /// Collects the whole body.
    ///
    /// Fails with [`ErrorKind::BodyTooLarge`] past the body's limit, and with the stream's
    /// error (for example [`ErrorKind::Io`] when the connection closes early).
    pub async fn bytes(self) -> Result<Bytes, Error> {
        let limit = self.limit;
        let (mut stream, len) = match self.kind {
            Kind::Empty => return Ok(Bytes::new()),
            Kind::Full(bytes) => return Ok(bytes),
            Kind::Stream { stream, len } => (stream, len),
        };
        if len.is_some_and(|len| len > limit as u64) {
            return Err(too_large(limit));
        }
        // One chunk is returned as is; only a second chunk makes us copy.
        let mut first: Option<Bytes> = None;
        let mut joined: Option<BytesMut> = None;
        let mut total = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            total = total.saturating_add(chunk.len());
            if total > limit {
                return Err(too_large(limit));
            }
            if chunk.is_empty() {
                continue;
            }
            if let Some(buf) = &mut joined {
                buf.extend_from_slice(&chunk);
            } else if let Some(previous) = first.take() {
                let capacity = len.map_or(total, |l| l as usize).max(total);
                let mut buf = BytesMut::with_capacity(capacity);
                buf.extend_from_slice(&previous);
                buf.extend_from_slice(&chunk);
                joined = Some(buf);
            } else {
                first = Some(chunk);
            }
        }
        Ok(joined.map(BytesMut::freeze).or(first).unwrap_or_default())
    }

    /// Collects the whole body as UTF-8 text; see [`bytes`](Body::bytes).
    pub async fn text(self) -> Result<String, Error> {
        let bytes = self.bytes().await?;
        String::from_utf8(bytes.into())
            .map_err(|err| Error::with_source(ErrorKind::Decode, "body is not valid UTF-8", err))
    }
}

fn too_large(limit: usize) -> Error {
    Error::new(
        ErrorKind::BodyTooLarge,
        format!("body is larger than the limit of {limit} bytes"),
    )
}

impl Stream for Body {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(_) => match std::mem::replace(&mut self.kind, Kind::Empty) {
                Kind::Full(bytes) if !bytes.is_empty() => Poll::Ready(Some(Ok(bytes))),
                _ => Poll::Ready(None),
            },
            Kind::Stream { stream, .. } => stream.as_mut().poll_next(cx),
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Empty => f.write_str("Body(empty)"),
            Kind::Full(bytes) => write!(f, "Body({} bytes)", bytes.len()),
            Kind::Stream { len, .. } => write!(f, "Body(stream, length {len:?})"),
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body {
            kind: Kind::Full(bytes),
            limit: DEFAULT_BODY_LIMIT,
        }
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::from(Bytes::from_static(s.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Body {
        Body::from(Bytes::from_static(s))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::from(Bytes::from(s))
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::from(Bytes::from(v))
    }
}

impl From<()> for Body {
    fn from(_: ()) -> Body {
        Body::empty()
    }
}

struct ReaderStream {
    reader: Pin<Box<dyn AsyncRead>>,
    buf: Vec<u8>,
    done: bool,
}

impl Stream for ReaderStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        match this.reader.as_mut().poll_read(cx, &mut this.buf) {
            Poll::Ready(Ok(0)) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Ok(n)) => Poll::Ready(Some(Ok(Bytes::copy_from_slice(&this.buf[..n])))),
            Poll::Ready(Err(err)) if err.kind() == io::ErrorKind::Interrupted => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(Err(err)) => {
                this.done = true;
                Poll::Ready(Some(Err(err)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

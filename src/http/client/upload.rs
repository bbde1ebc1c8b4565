//! A request body on its way out, as a state machine polled with the transport it writes to,
//! so that one task can write it while reading the response.
//!
//! Reading while writing matters twice: a server may answer before it has read the whole body
//! (a `413`, then close: the answer must not be lost to the write's `EPIPE`), and a full-duplex
//! server (an echo that streams its answer while the body arrives) stops reading once its own
//! writes fill the client's receive buffer, so a client that only wrote would deadlock. A
//! success answer that arrives mid-upload is therefore returned at once, and its body stream
//! (`body.rs`) carries on with the upload each time it is polled, as hyper's connection task
//! does; a success answer without a body has the rest of the body written before it is
//! returned (`exchange.rs`); an error answer stops the upload (RFC 9112 §9.5: "the server
//! does not wish to receive the message body"), and its connection is not reused.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_lite::io::AsyncWrite;
use futures_lite::Stream;

use crate::http::body::Body;
use crate::http::error::{Error, ErrorKind};
use crate::http::h1;

/// The most slices handed to one vectored write: the queue rarely holds more (a stream's
/// items wait for room), and a small fixed array keeps the write off the heap.
const MAX_SLICES: usize = 16;

/// A request body as it will be written.
pub(super) enum OutBody {
    /// No body, or one already copied behind the head.
    None,
    /// A buffer written after the head (too large to copy).
    Full(Bytes),
    /// A stream: with a declared length (`Some`) or chunked (`None`).
    Stream(Body, Option<u64>),
}

/// Why writing a request body failed.
pub(super) enum WriteError {
    /// The connection failed.
    Io(io::Error),
    /// The body itself: its stream failed or did not match its `Content-Length`.
    Body(Error),
}

/// The part of a request body not yet written.
pub(super) struct Upload {
    /// Framed bytes waiting to be written, in order.
    queue: VecDeque<Bytes>,
    /// The stream still to read from (`None` for a buffer, or once it ended).
    stream: Option<Body>,
    /// The declared length, or `None` for chunked.
    length: Option<u64>,
    /// Content bytes taken from the stream so far.
    taken: u64,
}

impl Upload {
    /// The upload of `body`; `None` when there is nothing to write.
    pub(super) fn new(body: OutBody) -> Option<Upload> {
        let mut upload = Upload {
            queue: VecDeque::new(),
            stream: None,
            length: None,
            taken: 0,
        };
        match body {
            OutBody::None => return None,
            OutBody::Full(bytes) => upload.queue.push_back(bytes),
            OutBody::Stream(body, length) => {
                upload.stream = Some(body);
                upload.length = length;
            }
        }
        Some(upload)
    }

    /// Writes as much as the transport takes; ready once the whole body is written and
    /// flushed.
    pub(super) fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        mut io: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), WriteError>> {
        loop {
            while !self.queue.is_empty() {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut count = 0;
                for (slot, bytes) in slices.iter_mut().zip(&self.queue) {
                    *slot = IoSlice::new(bytes);
                    count += 1;
                }
                let n = ready!(io.as_mut().poll_write_vectored(cx, &slices[..count]))
                    .map_err(WriteError::Io)?;
                if n == 0 {
                    return Poll::Ready(Err(WriteError::Io(io::ErrorKind::WriteZero.into())));
                }
                self.consume(n);
            }
            let Some(stream) = self.stream.as_mut() else {
                return io.as_mut().poll_flush(cx).map_err(WriteError::Io);
            };
            let next = match Pin::new(stream).poll_next(cx) {
                Poll::Ready(next) => next,
                Poll::Pending => {
                    // What was written must reach the server while the producer waits (a
                    // TLS stream buffers records until flushed).
                    ready!(io.as_mut().poll_flush(cx)).map_err(WriteError::Io)?;
                    return Poll::Pending;
                }
            };
            match next {
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => self.frame(chunk)?,
                Some(Err(err)) => {
                    return Poll::Ready(Err(WriteError::Body(Error::with_source(
                        ErrorKind::Request,
                        "the request body stream failed",
                        err,
                    ))))
                }
                None => {
                    self.stream = None;
                    match self.length {
                        Some(length) if self.taken != length => {
                            return Poll::Ready(Err(WriteError::Body(Error::new(
                                ErrorKind::Request,
                                format!(
                                    "the request body is shorter ({}) than its Content-Length \
                                     ({length})",
                                    self.taken
                                ),
                            ))))
                        }
                        Some(_) => {}
                        None => self.queue.push_back(Bytes::from_static(h1::CHUNKED_END)),
                    }
                }
            }
        }
    }

    /// Queues one chunk of content, framed.
    fn frame(&mut self, chunk: Bytes) -> Result<(), WriteError> {
        self.taken += chunk.len() as u64;
        match self.length {
            Some(length) if self.taken > length => Err(WriteError::Body(Error::new(
                ErrorKind::Request,
                format!("the request body is longer than its Content-Length ({length})"),
            ))),
            Some(_) => {
                self.queue.push_back(chunk);
                Ok(())
            }
            None => {
                let mut head = Vec::with_capacity(12);
                h1::encode_chunk_head(chunk.len(), &mut head);
                self.queue.push_back(Bytes::from(head));
                self.queue.push_back(chunk);
                self.queue.push_back(Bytes::from_static(b"\r\n"));
                Ok(())
            }
        }
    }

    /// Drops `n` written bytes from the front of the queue.
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                return;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.queue.pop_front();
        }
    }
}

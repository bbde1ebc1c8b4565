//! The response body stream: reads the body off its connection by its framing, then hands the
//! connection back to the pool if it may be reused. When the response came while the request
//! body was still being written (a full-duplex exchange), each poll carries the upload on
//! first (`upload.rs`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::Stream;

use crate::http::error::{Error, ErrorKind};
use crate::http::h1::{self, Decoded, Decoder};
use crate::time::Sleep;

use super::pool::{Conn, Pool, PoolKey};
use super::upload::{Upload, WriteError};

/// A response body streaming from its connection.
pub(super) struct ResponseBody {
    /// `None` once the body ended or failed.
    pub(super) conn: Option<Conn>,
    /// What is left of the request body to write, if the response came first.
    pub(super) upload: Option<Upload>,
    pub(super) decoder: Decoder,
    /// The server closed the connection.
    pub(super) eof: bool,
    /// What the decoder gave past the last item returned: decoded ahead from buffered bytes,
    /// so that a body whose end is already buffered ends (and frees its connection for the
    /// pool) with its last data, even if it is never polled again (hyper does the same).
    pub(super) ahead: Option<io::Result<Bytes>>,
    /// Where the connection goes when the body is complete, if it may be reused.
    pub(super) reuse: Option<(Rc<Pool>, PoolKey)>,
    /// The client's whole-request deadline.
    pub(super) deadline: Option<Sleep>,
}

impl ResponseBody {
    /// The response body ended: the connection goes back to the pool, unless part of the
    /// request body is still to be sent. Then the connection stays, and the stream ends only
    /// once the rest has gone out (see `poll_next`): a 2xx that came mid-upload accepted the
    /// request, and its server may be reading the body still (hyper and curl send it whole).
    fn finish(&mut self) {
        if self.upload.is_some() {
            return;
        }
        if let (Some(conn), Some((pool, key))) = (self.conn.take(), self.reuse.take()) {
            pool.checkin(key, conn);
        }
    }

    /// `Some` when the client's whole-request deadline has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Option<Poll<Option<io::Result<Bytes>>>> {
        let deadline = self.deadline.as_mut()?;
        if Pin::new(deadline).poll(cx).is_pending() {
            return None;
        }
        Some(self.fail(io::Error::new(
            io::ErrorKind::TimedOut,
            "request timed out while reading the response body",
        )))
    }

    /// Decodes what is already buffered past the item about to be returned: the body's end
    /// (then the connection goes back now), or the next item, kept for the next poll.
    fn look_ahead(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        // (Not while uploading: the upload gets its turn before each read of the body.)
        if self.ahead.is_some()
            || self.upload.is_some()
            || conn.rbuf.is_empty()
            || self.decoder.is_done()
        {
            return;
        }
        match self.decoder.decode(&mut conn.rbuf, self.eof) {
            Ok(Decoded::Data(data)) => {
                self.ahead = Some(Ok(data));
                if self.decoder.is_done() {
                    self.finish();
                }
            }
            Ok(Decoded::Done) => self.finish(),
            Ok(Decoded::NeedMore) => {}
            Err(h1::DecodeError::Invalid(reason)) => {
                self.ahead = Some(Err(Error::new(ErrorKind::BadResponse, reason).into()));
            }
            Err(err) => self.ahead = Some(Err(err.into_io())),
        }
    }

    fn fail(&mut self, err: io::Error) -> Poll<Option<io::Result<Bytes>>> {
        self.conn = None;
        self.upload = None;
        self.reuse = None;
        Poll::Ready(Some(Err(err)))
    }
}

impl Stream for ResponseBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.ahead.take() {
            Some(Ok(data)) => {
                this.look_ahead();
                return Poll::Ready(Some(Ok(data)));
            }
            Some(Err(err)) => return this.fail(err),
            None => {}
        }
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(upload) = this.upload.as_mut() {
                match upload.poll_write(Pin::new(&mut conn.io), cx) {
                    Poll::Ready(Ok(())) => this.upload = None,
                    Poll::Ready(Err(WriteError::Body(err))) => return this.fail(err.into()),
                    // The server stopped reading; its response may still end well, but the
                    // connection is done.
                    Poll::Ready(Err(WriteError::Io(err))) => {
                        log::debug!("the rest of the request body could not be sent: {err}");
                        this.upload = None;
                        this.reuse = None;
                    }
                    Poll::Pending => {}
                }
            }
            if this.decoder.is_done() {
                // The response is whole; what is left is the rest of the upload.
                if this.upload.is_some() {
                    return this.poll_deadline(cx).unwrap_or(Poll::Pending);
                }
                this.finish();
                return Poll::Ready(None);
            }
            match this.decoder.decode(&mut conn.rbuf, this.eof) {
                Ok(Decoded::Data(data)) => {
                    if this.decoder.is_done() {
                        this.finish();
                    } else {
                        this.look_ahead();
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                // The decoder is done now: the check above ends the stream.
                Ok(Decoded::Done) => continue,
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
                Poll::Pending => return this.poll_deadline(cx).unwrap_or(Poll::Pending),
            }
        }
    }
}

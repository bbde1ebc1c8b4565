//! [`ReadBuf`]: a connection's read buffer, handing out parsed heads and body chunks as
//! zero-copy `Bytes`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_lite::io::AsyncRead;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;

/// A read buffer. `buf[..filled]` holds received bytes; `buf[filled..]` is initialised spare
/// room to read into, kept between reads so that reads need no `unsafe` and no re-zeroing.
pub(crate) struct ReadBuf {
    buf: BytesMut,
    filled: usize,
}

impl ReadBuf {
    pub(crate) fn new() -> ReadBuf {
        ReadBuf {
            buf: BytesMut::new(),
            filled: 0,
        }
    }

    /// The received bytes not yet consumed.
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    pub(crate) fn len(&self) -> usize {
        self.filled
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Takes the first `n` received bytes.
    pub(crate) fn split_to(&mut self, n: usize) -> Bytes {
        debug_assert!(n <= self.filled);
        self.filled -= n;
        self.buf.split_to(n).freeze()
    }

    /// Drops the first `n` received bytes.
    pub(crate) fn advance(&mut self, n: usize) {
        let _ = self.split_to(n);
    }

    /// Releases the memory of an empty buffer (for idle connections).
    pub(crate) fn shrink_if_empty(&mut self) {
        if self.filled == 0 {
            self.buf = BytesMut::new();
        }
    }

    fn spare(&mut self) -> &mut [u8] {
        if self.buf.len() - self.filled < READ_SIZE / 4 {
            let want = self.filled + READ_SIZE;
            // Reclaims consumed space when the buffer is no longer shared, else reallocates.
            self.buf.reserve(want - self.buf.len());
            self.buf.resize(want, 0);
        }
        &mut self.buf[self.filled..]
    }

    /// Reads once from `io`; `Ok(0)` means end of stream.
    pub(crate) fn poll_fill<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let spare = self.spare();
        match Pin::new(io).poll_read(cx, spare) {
            Poll::Ready(Ok(n)) => {
                self.filled += n;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }
}

impl ReadBuf {
    /// Appends received bytes by hand (unit tests and the `__fuzz` entry points).
    pub(crate) fn extend_for_test(&mut self, bytes: &[u8]) {
        self.buf.truncate(self.filled);
        self.buf.extend_from_slice(bytes);
        self.filled = self.buf.len();
    }
}

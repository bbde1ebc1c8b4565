//! [`ReadBuf`]: a connection's read buffer, handing out parsed heads and body chunks as
//! zero-copy `Bytes`; and per-thread pools of read and write buffers and of header maps.
//!
//! A connection waiting for its next request gives its (empty) buffers back to its thread's
//! pool and takes one again when bytes arrive, so that idle keep-alive connections hold no
//! buffer memory, while busy ones reuse buffers without allocating: a push and a pop per
//! request instead of a free and a malloc.
//!
//! Header maps go round the same way: the map of a written response is cleared and pooled,
//! and holds the next request head parsed on the thread, so that a request's `HeaderMap` costs
//! no allocation (the handler's response map is the one allocated).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_lite::io::AsyncRead;
use http::HeaderMap;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;

/// The most buffers of each kind a thread's pool keeps; more are freed.
const POOL_MAX: usize = 256;
/// Write buffers that grew beyond this are freed rather than pooled.
const POOLED_WRITE_CAPACITY: usize = 64 * 1024;
/// The capacity of a new write buffer: room for a few pipelined responses.
const WRITE_CAPACITY: usize = 4 * 1024;
/// Header maps with room for more fields than this are freed rather than pooled.
const POOLED_HEADER_CAPACITY: usize = 64;

thread_local! {
    static READ_POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static WRITE_POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static HEADER_POOL: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty header map with room for `fields` fields: a pooled one (see [`give_header_map`])
/// when the thread has one, else a new one.
pub(crate) fn take_header_map(fields: usize) -> HeaderMap {
    match HEADER_POOL.with(|pool| pool.borrow_mut().pop()) {
        Some(mut map) => {
            map.reserve(fields);
            map
        }
        None => HeaderMap::with_capacity(fields),
    }
}

/// Clears `map` and keeps its memory for the next request head (unless it never allocated,
/// grew large, or the pool is full).
pub(crate) fn give_header_map(mut map: HeaderMap) {
    let capacity = map.capacity();
    // `capacity` counts the index only; many values under one name (`len` counts each) grow
    // storage that `clear` keeps.
    if capacity == 0 || capacity > POOLED_HEADER_CAPACITY || map.len() > POOLED_HEADER_CAPACITY {
        return;
    }
    map.clear();
    HEADER_POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_MAX {
            pool.push(map);
        }
    });
}

/// Makes sure `buf` has capacity, from the pool when it has none (after [`give_write_buf`]).
pub(crate) fn take_write_buf(buf: &mut Vec<u8>) {
    if buf.capacity() == 0 {
        *buf = WRITE_POOL
            .with(|pool| pool.borrow_mut().pop())
            .unwrap_or_else(|| Vec::with_capacity(WRITE_CAPACITY));
    }
}

/// Gives an empty write buffer's memory back to the pool, leaving `buf` without capacity.
pub(crate) fn give_write_buf(buf: &mut Vec<u8>) {
    if buf.capacity() == 0 || !buf.is_empty() {
        return;
    }
    let buf = std::mem::take(buf);
    if buf.capacity() <= POOLED_WRITE_CAPACITY {
        WRITE_POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_MAX {
                pool.push(buf);
            }
        });
    }
}

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

    /// The received bytes not yet consumed, to rewrite in place.
    pub(crate) fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.filled]
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

    /// Gives the memory of an empty buffer back to the thread's pool (for a connection that
    /// waits for its next request). Bytes already handed out keep their own reference.
    pub(crate) fn release_if_empty(&mut self) {
        if self.filled != 0 || self.buf.capacity() == 0 {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        READ_POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOL_MAX {
                pool.push(buf);
            }
        });
    }

    fn spare(&mut self) -> &mut [u8] {
        if self.buf.capacity() == 0 {
            if let Some(pooled) = READ_POOL.with(|pool| pool.borrow_mut().pop()) {
                self.buf = pooled;
            }
        }
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

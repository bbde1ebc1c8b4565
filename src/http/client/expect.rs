//! An exchange whose body waits for `100 Continue` (RFC 9110 §10.1.1, §15.2.1).
//!
//! The head goes out alone; then the client waits up to the expect timeout for a response.
//! `100 Continue` or the timeout (a server that ignores `Expect`) lets the body go; a final
//! response instead is the answer, and the body is never sent. While the body is being
//! written the client also reads: a final response that arrives mid-upload (a `413` to a
//! body that turned out too large) stops the upload and is returned.
//!
//! Writing and reading race on one connection, in one task: both futures reach the transport
//! through a `RefCell` that each poll borrows only for the length of one read or write call,
//! and one `poll_fn` polls both with the task's own waker (so a TLS stream, whose reads may
//! write and whose writes may read, wakes the task whichever way it is waiting).
//!
//! A connection whose body was not sent whole is never reused: the server may still be
//! waiting for the rest, or reading it as the next request.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::future::poll_fn;
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use http::StatusCode;

use crate::http::error::{Error, ErrorKind};
use crate::http::h1::ResponseHead;

use super::exchange::{
    read_head, write_head, write_stream, Failure, OutBody, Prepared, WriteError,
};
use super::pool::{Conn, Transport};

/// Writes the head, waits for `100 Continue` (at most `wait`), then writes the body while
/// watching for an early final response; returns the final response head.
pub(super) async fn exchange(
    conn: &mut Conn,
    prepared: &mut Prepared,
    wait: Duration,
) -> Result<ResponseHead, Failure> {
    write_head(&mut conn.io, &prepared.head).await?;
    conn.io
        .flush()
        .await
        .map_err(|err| Failure::Stale(err.into()))?;

    let mut received = !conn.rbuf.is_empty();
    let method = prepared.method.clone();
    let waited = crate::time::timeout(
        wait,
        read_head(&mut conn.io, &mut conn.rbuf, &method, true, &mut received),
    )
    .await;
    match waited {
        Ok(Ok(head)) if head.response.status() == StatusCode::CONTINUE => {}
        Ok(Ok(head)) => return early_final(head),
        Ok(Err(failure)) => return Err(failure),
        Err(_) => log::debug!("no 100 Continue within {wait:?}; sending the body anyway"),
    }

    // The body moves into the upload; a buffer stays behind for a retry on a new connection.
    let body = std::mem::replace(&mut prepared.body, OutBody::None);
    if let OutBody::Full(bytes) = &body {
        prepared.body = OutBody::Full(bytes.clone());
    }
    let replayable = !matches!(body, OutBody::Stream(..));

    let Conn { io, rbuf } = conn;
    let shared = RefCell::new(io);
    let mut upload = pin!(upload(Shared(&shared), body));
    let mut read = pin!(read_head(
        Shared(&shared),
        rbuf,
        &method,
        false,
        &mut received
    ));
    // `None` while the body is still being written.
    let mut sent: Option<Result<(), io::Error>> = None;
    let raced = poll_fn(|cx| {
        // The write goes first: when it finishes in the same turn as the response arrives,
        // the body was sent whole and the connection may be kept.
        if sent.is_none() {
            match upload.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => sent = Some(Ok(())),
                // The request body itself failed: nothing more to wait for.
                Poll::Ready(Err(WriteError::Body(err))) => return Poll::Ready(Err(err)),
                // A broken connection may still hold the response the server sent before it
                // closed (a 413 and a reset): keep reading, which ends with the response or
                // with the end of the stream.
                Poll::Ready(Err(WriteError::Io(err))) => sent = Some(Err(err)),
                Poll::Pending => {}
            }
        }
        read.as_mut().poll(cx).map(Ok)
    })
    .await;
    match (raced, sent) {
        (Err(body_failed), _) => Err(Failure::Fatal(body_failed)),
        (Ok(Ok(head)), Some(Ok(()))) => Ok(head),
        (Ok(Ok(head)), _) => early_final(head),
        // The write failed first: its error says more than the read's end of stream.
        (Ok(Err(Failure::Stale(_))), Some(Err(err))) if replayable => {
            Err(Failure::Stale(err.into()))
        }
        (Ok(Err(_)), Some(Err(err))) => Err(Failure::Fatal(err.into())),
        (Ok(Err(failure)), _) => Err(failure),
    }
}

/// A final response that came before the whole body was sent: returned as the answer, on a
/// connection that is not reused.
fn early_final(mut head: ResponseHead) -> Result<ResponseHead, Failure> {
    // RFC 9110 §7.8: a server must send 100 before 101 to a request expecting it; an
    // upgrade on a connection still owing part of a body would mix the two protocols.
    if head.response.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Failure::Fatal(Error::new(
            ErrorKind::BadResponse,
            "101 Switching Protocols before the request body was sent",
        )));
    }
    log::debug!(
        "final response {} before the request body was sent whole; the connection will close",
        head.response.status()
    );
    head.reusable = false;
    Ok(head)
}

/// Writes the whole body and flushes it.
async fn upload(mut io: Shared<'_, '_>, body: OutBody) -> Result<(), WriteError> {
    match body {
        OutBody::None => {}
        OutBody::Full(bytes) => io.write_all(&bytes).await.map_err(WriteError::Io)?,
        OutBody::Stream(body, length) => write_stream(io, body, length).await?,
    }
    io.flush().await.map_err(WriteError::Io)
}

/// One handle of a transport shared by a reader and a writer in the same task; each poll
/// borrows the transport for that call only, so the two never overlap.
#[derive(Clone, Copy)]
struct Shared<'a, 'b>(&'a RefCell<&'b mut Transport>);

impl Shared<'_, '_> {
    fn with<T>(&self, f: impl FnOnce(Pin<&mut Transport>) -> T) -> T {
        let mut io = self.0.borrow_mut();
        f(Pin::new(&mut **io))
    }
}

impl AsyncRead for Shared<'_, '_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.with(|io| io.poll_read(cx, buf))
    }
}

impl AsyncWrite for Shared<'_, '_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with(|io| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.with(|io| io.poll_write_vectored(cx, bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|io| io.poll_flush(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|io| io.poll_close(cx))
    }
}

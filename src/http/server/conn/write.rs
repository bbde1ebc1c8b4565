//! Writing to one server connection: a response (head, then its body by its framing), an
//! error answer, the drain of an unread request body, and the graceful close.

use std::io;
use std::pin::Pin;
use std::task::{ready, Poll};

use bytes::Bytes;
use futures_lite::future::poll_fn;
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::{FutureExt, Stream};
use http::header;
use http::{Response, StatusCode, Version};

use super::shared::{
    fill, flush, write_all, Config, Inner, Shared, Watch, DRAIN_LIMIT, LINGER, WRITE_BATCH,
};
use crate::http::body::Body;
use crate::http::h1::{self, Decoded, Framing};
use crate::http::{buf, date};
use crate::time::sleep;

/// Writes a response; returns whether the connection can carry another request.
///
/// Takes the response by reference, and its body and header map out of it: a response moved
/// in by value would be copied into this future's state.
pub(super) async fn write_response<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    config: &Config,
    response: &mut Response<Body>,
    is_head: bool,
    version: Version,
    keep_alive: bool,
) -> io::Result<bool> {
    let mut body = std::mem::take(response.body_mut());
    let status = response.status();
    let mut keep = keep_alive;
    {
        let mut inner = shared.borrow_mut();
        if inner.continue_pending {
            // The body was never asked for: the client may or may not send it, so the
            // connection cannot be reused, and nothing may wait for it.
            inner.continue_pending = false;
            inner.continue_refused = true;
            keep = false;
        }
        // Reading the request body failed (bad chunked framing, early close): the connection
        // will close, so the response must say so (RFC 9112 §9.6).
        if inner.body_failed {
            keep = false;
        }
    }
    // One pass over the handler's headers: write them, and note those that steer framing and
    // the connection, instead of a map lookup for each.
    let mut user_length = None;
    let mut user_coding = false;
    let mut user_connection = false;
    let mut user_date = false;
    {
        let mut inner = shared.borrow_mut();
        buf::take_write_buf(&mut inner.wbuf);
        let out = &mut inner.wbuf;
        h1::encode_status_line(status, out);
        for (name, value) in response.headers() {
            if name == header::CONTENT_LENGTH {
                if user_length.is_none() {
                    user_length = Some(
                        value
                            .to_str()
                            .ok()
                            .and_then(|v| v.trim().parse::<u64>().ok()),
                    );
                }
                continue;
            }
            if name == header::TRANSFER_ENCODING {
                user_coding = true;
                continue;
            }
            if name == header::CONNECTION {
                user_connection = true;
                continue;
            }
            if name == header::DATE {
                user_date = true;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    if user_connection && h1::connection_tokens(response.headers()).0 {
        keep = false;
    }
    let user_length = user_length.flatten();
    let bodiless_status = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // RFC 9112 §6.1: Transfer-Encoding only to HTTP/1.1 requests; there a handler's own
    // codings are kept (a body it compressed itself) and chunked, always last, delimits it.
    // Never to HEAD: its response has no body to delimit (hyper does not send chunked for HEAD
    // either). A GET of the same handler would go chunked with no Content-Length, so a HEAD
    // then says no length at all (RFC 9110 §8.6: only the length a GET would carry).
    let head_of_coded = is_head && user_coding && version == Version::HTTP_11;
    let user_coding = user_coding && version == Version::HTTP_11 && !is_head;
    let length = if head_of_coded {
        None
    } else if is_head {
        // RFC 9110 §8.6: a HEAD response may only carry the length a GET would get: the
        // handler's own, or that of the body it gave; an empty body says nothing of it.
        user_length.or(body.size_hint().filter(|&n| n > 0))
    } else {
        // The body's real size wins over a Content-Length that contradicts it.
        body.size_hint().or(user_length)
    };
    let framing = if bodiless_status {
        Framing::Empty
    } else if user_coding {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else if version == Version::HTTP_11 || is_head {
        // A HEAD response of unknown length says no framing at all (`Chunked`, not written).
        Framing::Chunked
    } else {
        keep = false;
        Framing::Eof
    };

    {
        let mut inner = shared.borrow_mut();
        let out = &mut inner.wbuf;
        // Framing, then Date: the order hyper uses, so that benchmark peers send the same bytes.
        match framing {
            Framing::Length(n) => {
                out.extend_from_slice(b"content-length: ");
                h1::encode_u64(n, out);
                out.extend_from_slice(b"\r\n");
            }
            Framing::Chunked if user_coding => {
                h1::encode_transfer_codings(response.headers(), out);
            }
            Framing::Chunked if !is_head => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            }
            _ => {}
        }
        if !user_date {
            out.extend_from_slice(b"date: ");
            date::write(out);
            out.extend_from_slice(b"\r\n");
        }
        if !keep {
            out.extend_from_slice(b"connection: close\r\n");
        } else if version == Version::HTTP_10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
    // Written out: the map's memory holds the next request head (see `buf`).
    buf::give_header_map(std::mem::take(response.headers_mut()));

    if is_head || framing == Framing::Empty {
        drop(body);
        finish_write(shared, keep).await?;
        return Ok(keep);
    }

    if let (Some(full), Framing::Length(_)) = (body.as_full(), framing) {
        let full = full.clone();
        let small = {
            let mut inner = shared.borrow_mut();
            if inner.wbuf.len() + full.len() <= WRITE_BATCH {
                inner.wbuf.extend_from_slice(&full);
                true
            } else {
                false
            }
        };
        if !small {
            write_all(shared, full).await?;
        }
        finish_write(shared, keep).await?;
        return Ok(keep);
    }

    let mut remaining = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    loop {
        let chunk = match next_chunk(shared, config, &mut body).await? {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(err)) => {
                // The response cannot be completed: end it so the client sees an error, not
                // a truncated body that looks whole.
                log::warn!("response body failed: {err}");
                let _ = flush(shared).await;
                return Ok(false);
            }
        };
        if chunk.is_empty() {
            continue;
        }
        let data = match &mut remaining {
            Some(left) => {
                if chunk.len() as u64 > *left {
                    log::warn!("response body longer than its Content-Length; truncated");
                    let data = chunk.slice(..*left as usize);
                    *left = 0;
                    write_all(shared, data).await?;
                    return Ok(false);
                }
                *left -= chunk.len() as u64;
                chunk
            }
            None => chunk,
        };
        if framing == Framing::Chunked {
            let mut inner = shared.borrow_mut();
            h1::encode_chunk_head(data.len(), &mut inner.wbuf);
        }
        let copied = {
            let mut inner = shared.borrow_mut();
            if inner.wbuf.len() + data.len() <= WRITE_BATCH {
                inner.wbuf.extend_from_slice(&data);
                true
            } else {
                false
            }
        };
        if !copied {
            write_all(shared, data).await?;
        }
        if framing == Framing::Chunked {
            shared.borrow_mut().wbuf.extend_from_slice(b"\r\n");
        }
    }
    if remaining.is_some_and(|left| left > 0) {
        log::warn!("response body shorter than its Content-Length; closing");
        flush(shared).await?;
        return Ok(false);
    }
    if framing == Framing::Chunked {
        shared.borrow_mut().wbuf.extend_from_slice(h1::CHUNKED_END);
    }
    finish_write(shared, keep).await?;
    Ok(keep && framing != Framing::Eof)
}

/// Flushes now unless more pipelined requests are already buffered (then responses batch).
async fn finish_write<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    keep: bool,
) -> io::Result<()> {
    let hold = {
        let inner = shared.borrow();
        // Buffered bytes of an unread body are not a next request: holding the response
        // then would delay it until the body is drained, or until the drain gives up and
        // closes, for a client that waits for the response before sending the rest.
        keep && inner.decoder.is_done() && !inner.rbuf.is_empty() && inner.wbuf.len() < WRITE_BATCH
    };
    if hold {
        Ok(())
    } else {
        flush(shared).await
    }
}

/// The next chunk of a response body; flushes what is buffered while the body makes us wait,
/// and watches for the peer's close meanwhile (see
/// [`unless_peer_gone`](super::shared::Inner::poll_peer_gone)). `Err` when the connection failed or the
/// peer went away: the body is then dropped unfinished.
async fn next_chunk<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    config: &Config,
    body: &mut Body,
) -> io::Result<Option<io::Result<Bytes>>> {
    let mut watching = true;
    poll_fn(|cx| {
        if let Poll::Ready(item) = Pin::new(&mut *body).poll_next(cx) {
            return Poll::Ready(Ok(item));
        }
        let mut inner = shared.borrow_mut();
        if !inner.wbuf.is_empty() {
            if let Poll::Ready(Err(err)) = inner.poll_flush(cx) {
                return Poll::Ready(Err(err));
            }
        }
        if watching {
            match inner.poll_peer_gone(cx, config) {
                Watch::Pending => {}
                Watch::Stop => watching = false,
                Watch::Gone => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "peer closed the connection during the response",
                    )))
                }
            }
        }
        Poll::Pending
    })
    .await
}

/// Reads and discards what the handler left of the request body; false when the connection
/// must close instead (too much left, malformed, or too slow).
pub(super) async fn drain_body<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    mut drained: u64,
) -> bool {
    {
        // Nothing left of the body (a bodiless request, or one read to its end): no linger
        // timer to arm, which would cost a clock read per request.
        let inner = shared.borrow();
        if inner.decoder.is_done() {
            return !inner.body_failed;
        }
    }
    // Counted across polls (and from what was drained before the response): a body arriving
    // in many small reads must hit the limit too.
    let drain = poll_fn(|cx| {
        let mut inner = shared.borrow_mut();
        loop {
            if inner.body_failed {
                return Poll::Ready(false);
            }
            let Inner {
                decoder, rbuf, eof, ..
            } = &mut *inner;
            match decoder.decode(rbuf, *eof) {
                Ok(Decoded::Done) => return Poll::Ready(true),
                Ok(Decoded::Data(data)) => {
                    drained += data.len() as u64;
                    if drained > DRAIN_LIMIT {
                        return Poll::Ready(false);
                    }
                }
                Ok(Decoded::NeedMore) => match ready!(inner.poll_fill(cx)) {
                    Ok(_) => {}
                    Err(_) => return Poll::Ready(false),
                },
                Err(_) => return Poll::Ready(false),
            }
        }
    });
    let expired = async {
        sleep(LINGER).await;
        false
    };
    drain.or(expired).await
}

/// Answers a rejected request and closes.
pub(super) async fn write_error<IO: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared<IO>,
    status: StatusCode,
    reason: &'static str,
) -> io::Result<()> {
    {
        let mut inner = shared.borrow_mut();
        let out = &mut inner.wbuf;
        h1::encode_status_line(status, out);
        out.extend_from_slice(b"date: ");
        date::write(out);
        out.extend_from_slice(b"\r\ncontent-type: text/plain\r\ncontent-length: ");
        h1::encode_u64(reason.len() as u64 + 1, out);
        out.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
        out.extend_from_slice(reason.as_bytes());
        out.push(b'\n');
    }
    flush(shared).await
}

/// Closes gracefully: flush, send FIN, then read and discard briefly so that unread input
/// does not make the kernel reset the connection before the client read our last response.
pub(super) async fn close<IO: AsyncRead + AsyncWrite + Unpin>(shared: &Shared<IO>) {
    let linger = async {
        if flush(shared).await.is_err() {
            return;
        }
        if poll_fn(|cx| Pin::new(&mut shared.borrow_mut().io).poll_close(cx))
            .await
            .is_err()
        {
            return;
        }
        let mut discarded = 0;
        loop {
            let n = {
                let mut inner = shared.borrow_mut();
                let len = inner.rbuf.len();
                inner.rbuf.advance(len);
                len
            };
            discarded += n;
            if discarded > DRAIN_LIMIT as usize || shared.borrow().eof {
                return;
            }
            if fill(shared).await.is_err() {
                return;
            }
        }
    };
    linger.or(sleep(LINGER)).await;
}

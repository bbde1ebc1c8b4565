//! An exchange whose body waits for `100 Continue` (RFC 9110 §10.1.1, §15.2.1).
//!
//! The head goes out alone; then the client waits up to the expect timeout for a response.
//! `100 Continue` or the timeout (a server that ignores `Expect`) lets the body go; a final
//! response instead is the answer, and the body is never sent, except after a 2xx without a
//! body on a connection kept open (the server accepted the request and reads on). While the body is being
//! written the client also reads, as for any body (`upload.rs`): an error response that
//! arrives mid-upload (a `413` to a body that turned out too large) stops the upload and is
//! returned.
//!
//! A connection whose body was not sent whole is never reused: the server may still be
//! waiting for the rest, or reading it as the next request.

use std::time::Duration;

use futures_lite::io::AsyncWriteExt;
use http::StatusCode;

use super::exchange::{
    early, finish_upload, read_head, send_body, wants_the_rest, write_head, Answered, Failure,
    Prepared,
};
use super::pool::Conn;

/// Writes the head, waits for `100 Continue` (at most `wait`), then writes the body while
/// watching for an early final response; returns the final response head.
pub(super) async fn exchange(
    conn: &mut Conn,
    prepared: &mut Prepared,
    wait: Duration,
) -> Result<Answered, Failure> {
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
        // A 2xx without a body that keeps the connection open instead: the server accepted
        // the request and means to go on reading (RFC 9110 §10.1.1: a server that answers
        // before the content says whether it closes), so the body follows.
        Ok(Ok(head)) if wants_the_rest(&head) => {
            return match prepared.take_upload() {
                Some(upload) => finish_upload(conn, head, upload).await,
                None => Ok(Answered { head, upload: None }),
            };
        }
        // Any other final answer instead: the body is not sent, and the connection closes
        // after it.
        Ok(Ok(head)) => return early(head, None),
        Ok(Err(failure)) => return Err(failure),
        Err(_) => log::debug!("no 100 Continue within {wait:?}; sending the body anyway"),
    }
    match prepared.take_upload() {
        Some(upload) => send_body(conn, upload, &method, &mut received).await,
        None => {
            let head =
                read_head(&mut conn.io, &mut conn.rbuf, &method, false, &mut received).await?;
            Ok(Answered { head, upload: None })
        }
    }
}

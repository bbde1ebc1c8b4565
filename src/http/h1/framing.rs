//! Body framing (RFC 9112 §6) and the header fields that decide it and connection reuse
//! (Content-Length, Transfer-Encoding, Connection), shared by request and response parsing.

use http::header::{self, HeaderMap};

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (responses only).
    Eof,
}

/// httparse header slots kept on the stack while parsing a head.
pub(super) const STACK_HEADERS: usize = 128;

/// Offsets of `part` (a sub-slice of the buffer starting at address `base`).
pub(super) fn range_of(base: usize, part: &[u8]) -> (usize, usize) {
    let start = part.as_ptr() as usize - base;
    (start, start + part.len())
}

/// Whether the Connection header asks to close, and whether it asks for keep-alive.
pub(crate) fn connection_tokens(headers: &HeaderMap) -> (bool, bool) {
    let mut close = false;
    let mut keep_alive = false;
    for value in headers.get_all(header::CONNECTION) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    (close, keep_alive)
}

/// Parses Content-Length values: every comma-separated element all digits, all equal.
pub(super) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for element in value.as_bytes().split(|&b| b == b',') {
            let element = element.trim_ascii();
            if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
                return Err(());
            }
            let mut n: u64 = 0;
            for &digit in element {
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit - b'0')))
                    .ok_or(())?;
            }
            match length {
                Some(previous) if previous != n => return Err(()),
                _ => length = Some(n),
            }
        }
    }
    Ok(length)
}

/// The codings of all Transfer-Encoding headers, in order.
pub(super) fn transfer_codings(headers: &HeaderMap) -> Option<Vec<&[u8]>> {
    let mut codings = Vec::new();
    let mut present = false;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        present = true;
        for coding in value.as_bytes().split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            if !coding.is_empty() {
                codings.push(coding);
            }
        }
    }
    present.then_some(codings)
}

//! Writing HTTP/1.1 messages: the status line, header fields, chunk heads and numbers.

use http::header::{self, HeaderMap};
use http::StatusCode;

/// Appends `HTTP/1.1 <code> <reason>\r\n` (the reason empty for unknown codes).
pub(crate) fn encode_status_line(status: StatusCode, out: &mut Vec<u8>) {
    // Most responses are 200: one copy of a constant, which compiles to a few stores, rather
    // than four copies of lengths known only at run time.
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends one chunk (size line, data, CRLF) to `out`.
pub(crate) fn encode_chunk_head(len: usize, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(out, "{len:X}\r\n");
}

/// The end of a chunked body: the last chunk and an empty trailer section.
pub(crate) const CHUNKED_END: &[u8] = b"0\r\n\r\n";

/// Appends `name: value\r\n` for every header except the framing ones (`Content-Length`,
/// `Transfer-Encoding`), which the caller writes from the body it actually sends.
pub(crate) fn encode_headers(headers: &HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends the Transfer-Encoding field of a chunked response whose handler set codings of its
/// own: those of `headers`, in order, then `chunked` last and once (RFC 9112 §6.1), wherever
/// the handler put it. `identity` (no coding, no longer registered) is left out.
pub(crate) fn encode_transfer_codings(headers: &HeaderMap, out: &mut Vec<u8>) {
    out.extend_from_slice(b"transfer-encoding: ");
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        for coding in value.as_bytes().split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            // A coding may carry parameters (`chunked;x=1`): the name alone says which it is.
            let name = coding.split(|&b| b == b';').next().unwrap_or(coding);
            let name = name.trim_ascii();
            if name.is_empty()
                || name.eq_ignore_ascii_case(b"chunked")
                || name.eq_ignore_ascii_case(b"identity")
            {
                continue;
            }
            out.extend_from_slice(coding);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(b"chunked\r\n");
}

/// Appends a decimal number.
pub(crate) fn encode_u64(n: u64, out: &mut Vec<u8>) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        for (status, line) in [
            (StatusCode::OK, &b"HTTP/1.1 200 OK\r\n"[..]),
            (StatusCode::NOT_FOUND, b"HTTP/1.1 404 Not Found\r\n"),
            (StatusCode::from_u16(599).unwrap(), b"HTTP/1.1 599 \r\n"),
        ] {
            let mut out = Vec::new();
            encode_status_line(status, &mut out);
            assert_eq!(out, line);
        }
    }

    #[test]
    fn transfer_codings_end_in_one_chunked() {
        for (values, line) in [
            (&["gzip"][..], &b"transfer-encoding: gzip, chunked\r\n"[..]),
            (&["chunked"], b"transfer-encoding: chunked\r\n"),
            (&["gzip, Chunked"], b"transfer-encoding: gzip, chunked\r\n"),
            (
                &["chunked, gzip", "br"],
                b"transfer-encoding: gzip, br, chunked\r\n",
            ),
            (&["identity"], b"transfer-encoding: chunked\r\n"),
            (&["chunked;x=1"], b"transfer-encoding: chunked\r\n"),
            (
                &["gzip, chunked ;q=1"],
                b"transfer-encoding: gzip, chunked\r\n",
            ),
            (
                &["gzip;level=9, Identity ; a=b"],
                b"transfer-encoding: gzip;level=9, chunked\r\n",
            ),
        ] {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(header::TRANSFER_ENCODING, value.parse().unwrap());
            }
            let mut out = Vec::new();
            encode_transfer_codings(&headers, &mut out);
            assert_eq!(out, line, "{values:?}");
        }
    }
}

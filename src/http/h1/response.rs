//! Response head parsing for the client: status, headers, and how the body is framed and
//! whether the connection can be reused after it.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};

use super::framing::{
    connection_tokens, content_length, range_of, transfer_codings, Framing, STACK_HEADERS,
};
use crate::http::buf::ReadBuf;

/// A parsed response head (client side).
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) response: Response<()>,
    pub(crate) framing: Framing,
    /// The connection may be reused after the body.
    pub(crate) reusable: bool,
}

/// Why a response head could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadResponse(pub(crate) &'static str);

/// Parses a response head from the front of `buf`, removing it on success. `method` is the
/// request's (a HEAD response has no body).
pub(crate) fn parse_response(
    buf: &mut ReadBuf,
    method: &Method,
    max_header_bytes: usize,
) -> Result<Option<ResponseHead>, BadResponse> {
    // httparse knows only HTTP/1.0 and HTTP/1.1. A higher minor version of HTTP/1 is read as
    // HTTP/1.1 (RFC 9110 §2.5: SHOULD process it as the highest minor version we conform
    // to), as h11 does and as the server does for requests: its digit becomes `1` in place.
    if let Some(minor) = higher_minor_version(buf.data()) {
        buf.data_mut()[minor] = b'1';
    }
    let mut headers = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let data = buf.data();
    let base = data.as_ptr() as usize;
    let mut res = httparse::Response::new(&mut headers);
    // RFC 9112 §5.2: a user agent replaces each obs-fold of a response with spaces (below)
    // rather than refusing the response.
    let parsed = httparse::ParserConfig::default()
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response(&mut res, data);
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if data.len() >= max_header_bytes {
                return Err(BadResponse("response head too large"));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(BadResponse("too many header fields in response"))
        }
        Err(_) => return Err(BadResponse("malformed response head")),
    };
    if head_len > max_header_bytes {
        return Err(BadResponse("response head too large"));
    }
    let status = StatusCode::from_u16(res.code.unwrap_or(0))
        .map_err(|_| BadResponse("invalid status code"))?;
    let version = if res.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut ranges = Vec::with_capacity(res.headers.len());
    for h in res.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| BadResponse("invalid header name"))?;
        ranges.push((name, range_of(base, h.value)));
    }
    let head = buf.split_to(head_len);
    let mut headers = HeaderMap::with_capacity(ranges.len());
    for (name, (start, end)) in ranges {
        let raw = head.slice(start..end);
        // `HeaderValue` refuses CR and LF, so only a refused value can be a folded one: no
        // second scan of every value.
        let value = HeaderValue::from_maybe_shared(raw.clone())
            .or_else(|err| {
                if !raw.iter().any(|&b| b == b'\r' || b == b'\n') {
                    return Err(err);
                }
                // A folded value: each fold (the line break and the whitespace after it) becomes
                // spaces, one per byte.
                let mut in_fold = false;
                let unfolded: Vec<u8> = raw
                    .iter()
                    .map(|&b| {
                        in_fold =
                            b == b'\r' || b == b'\n' || (in_fold && (b == b' ' || b == b'\t'));
                        if in_fold {
                            b' '
                        } else {
                            b
                        }
                    })
                    .collect();
                HeaderValue::from_bytes(&unfolded)
            })
            .map_err(|_| BadResponse("invalid header value"))?;
        headers.append(name, value);
    }

    let (close, keep_alive_token) = connection_tokens(&headers);
    let mut reusable = !close && (version == Version::HTTP_11 || keep_alive_token);
    // A 2xx to CONNECT starts a tunnel: its Content-Length and Transfer-Encoding mean nothing
    // (RFC 9110 §9.3.6), so not even a malformed one may fail it.
    let tunnel = *method == Method::CONNECT && status.is_success();
    let no_body = *method == Method::HEAD
        || tunnel
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // RFC 9112 §6.3: an invalid Content-Length is an unrecoverable framing error, also where
    // Transfer-Encoding overrides it or the response has no body (HEAD, 204, 304): the peer's
    // framing cannot be trusted, as h11 and llhttp both hold. Only a tunnel and an interim
    // response ignore the field.
    let length = match content_length(&headers) {
        Err(()) if !tunnel && !status.is_informational() => {
            return Err(BadResponse("invalid Content-Length"))
        }
        result => result.unwrap_or(None),
    };
    let framing = if no_body {
        Framing::Empty
    } else if let Some(codings) = transfer_codings(&headers) {
        // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length; the connection is then
        // suspect and not reused. A final coding other than chunked means "until close".
        if headers.contains_key(header::CONTENT_LENGTH) {
            reusable = false;
        }
        match codings.last() {
            Some(last) if last.eq_ignore_ascii_case(b"chunked") && codings.len() == 1 => {
                Framing::Chunked
            }
            Some(last) if last.eq_ignore_ascii_case(b"chunked") => {
                return Err(BadResponse("unsupported transfer coding"))
            }
            _ => {
                reusable = false;
                Framing::Eof
            }
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => {
                reusable = false;
                Framing::Eof
            }
        }
    };

    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Some(ResponseHead {
        response,
        framing,
        reusable,
    }))
}

/// Where the minor digit of an `HTTP/1.x` status line with x of 2 to 9 lies at the front of
/// `data` (after the empty lines httparse skips), if that is what it holds.
fn higher_minor_version(data: &[u8]) -> Option<usize> {
    let start = data.iter().position(|&b| b != b'\r' && b != b'\n')?;
    match data.get(start..start + 9)? {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9', b' '] => Some(start + 7),
        _ => None,
    }
}

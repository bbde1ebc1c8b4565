//! The HTTP/1.1 wire format (RFC 9112): request and response heads (parsed by `httparse` and
//! then checked against the rules it leaves to us), body framing, and the body decoder.
//!
//! Everything here works on buffers and has no I/O, so it can be fuzzed and tested directly.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};

use super::buf::ReadBuf;

/// Limits applied while parsing a request head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    pub(crate) max_uri_bytes: usize,
}

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

/// A request head the server must reject, with the status to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reject {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
}

fn reject(status: StatusCode, reason: &'static str) -> Reject {
    Reject { status, reason }
}

fn bad(reason: &'static str) -> Reject {
    reject(StatusCode::BAD_REQUEST, reason)
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) request: Request<()>,
    pub(crate) framing: Framing,
    /// The client wants the connection kept open after this exchange.
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
}

const STACK_HEADERS: usize = 128;
/// Field offsets kept on the stack; a request with more fields puts them in a `Vec`.
const STACK_RANGES: usize = 32;

/// Where one header field lies in the request head: name and value as offsets.
#[derive(Clone, Copy, Default)]
struct FieldRange {
    name: (u32, u32),
    value: (u32, u32),
}

/// Parses a request head from the front of `buf`, removing it on success.
///
/// `Ok(None)` means more bytes are needed (and the limits are not yet exceeded).
///
/// This is the server's hottest function, so it allocates only what the `http` types need (the
/// header map): httparse fills an uninitialised stack array, field offsets go to a stack array
/// rather than a `Vec`, and the fields that need checking (Host, framing, Connection, Expect)
/// are noted while the map is built, so a request without them costs no map lookups.
pub(crate) fn parse_request(
    buf: &mut ReadBuf,
    limits: &Limits,
) -> Result<Option<RequestHead>, Reject> {
    // Tolerate empty lines before a request line (RFC 9112 §2.2).
    if matches!(buf.data().first(), Some(b'\r' | b'\n')) {
        let leading = buf
            .data()
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        buf.advance(leading);
    }
    if buf.is_empty() {
        return Ok(None);
    }

    let mut stack_headers = [const { std::mem::MaybeUninit::uninit() }; STACK_HEADERS];
    let mut heap_headers;
    let headers = if limits.max_headers <= STACK_HEADERS {
        &mut stack_headers[..limits.max_headers]
    } else {
        heap_headers = vec![std::mem::MaybeUninit::uninit(); limits.max_headers];
        &mut heap_headers[..]
    };
    let data = buf.data();
    let base = data.as_ptr() as usize;
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(data, headers);
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            // A request target already longer than the limit is 414 before its line ends.
            // Only the target counts (after the method's space, up to a space or CR), as in
            // a complete head: how the bytes were split across reads must not matter.
            let line_end = data.iter().position(|&b| b == b'\n');
            let target_len = match data.iter().position(|&b| b == b' ') {
                Some(sp) if line_end.is_none() => data[sp + 1..]
                    .iter()
                    .take_while(|&&b| b != b' ' && b != b'\r')
                    .count(),
                _ => 0,
            };
            if target_len > limits.max_uri_bytes {
                return Err(reject(StatusCode::URI_TOO_LONG, "request line too long"));
            }
            if data.len() >= limits.max_header_bytes {
                return Err(reject(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "request head too large",
                ));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ))
        }
        // httparse knows only HTTP/1.0 and HTTP/1.1. A higher minor version of HTTP/1 is
        // served as HTTP/1.1 (RFC 9110 §6.2: the minor version says what the sender can do,
        // and we answer with the highest we speak): its digit is rewritten in the buffer and
        // the head parsed again. This costs nothing on the path of HTTP/1.0 and 1.1.
        Err(httparse::Error::Version) => {
            if let Some(minor) = higher_minor_version(data) {
                buf.data_mut()[minor] = b'1';
                return parse_request(buf, limits);
            }
            // Only a well-formed version we do not speak (HTTP/2.0 in an HTTP/1 request
            // line) is 505; garbage (`GET /a b HTTP/1.1`) is a malformed request line: 400
            // (RFC 9112 §3).
            if is_well_formed_version_line(data) {
                return Err(reject(
                    StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                    "unsupported HTTP version",
                ));
            }
            return Err(bad("malformed request head"));
        }
        Err(_) => return Err(bad("malformed request head")),
    };
    // Offsets are kept as u32 to keep the stack array small.
    if head_len > limits.max_header_bytes || head_len > u32::MAX as usize {
        return Err(reject(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large",
        ));
    }
    let path = req.path.unwrap_or("");
    if path.len() > limits.max_uri_bytes {
        return Err(reject(StatusCode::URI_TOO_LONG, "request target too long"));
    }
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| bad("invalid method"))?;
    let form = target_form(&method, path.as_bytes())?;
    let version = if req.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let path_range = range_of(base, path.as_bytes());
    let count = req.headers.len();
    // Zeroed, so kept short: most requests have a handful of fields.
    let mut stack_ranges = [FieldRange::default(); STACK_RANGES];
    let mut heap_ranges = Vec::new();
    let ranges = if count <= STACK_RANGES {
        &mut stack_ranges[..count]
    } else {
        heap_ranges.resize(count, FieldRange::default());
        &mut heap_ranges[..]
    };
    for (range, h) in ranges.iter_mut().zip(req.headers.iter()) {
        let name = range_of(base, h.name.as_bytes());
        let value = range_of(base, h.value);
        *range = FieldRange {
            name: (name.0 as u32, name.1 as u32),
            value: (value.0 as u32, value.1 as u32),
        };
    }
    let head = buf.split_to(head_len);

    let uri = Uri::from_maybe_shared(head.slice(path_range.0..path_range.1))
        .map_err(|_| bad("invalid request target"))?;
    if form == TargetForm::Absolute && (uri.scheme().is_none() || uri.authority().is_none()) {
        // `host:port` (authority-form) or anything else that is not `scheme://authority…`:
        // RFC 9112 §3.2.3 allows authority-form only for CONNECT.
        return Err(bad("authority-form target outside CONNECT"));
    }
    let mut headers = HeaderMap::with_capacity(count);
    let mut hosts = 0usize;
    let mut hosts_valid = true;
    let mut framing_fields = false;
    let mut connection = false;
    let mut expect = false;
    for range in ranges.iter() {
        let name = HeaderName::from_bytes(&head[range.name.0 as usize..range.name.1 as usize])
            .map_err(|_| bad("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(
            head.slice(range.value.0 as usize..range.value.1 as usize),
        )
        .map_err(|_| bad("invalid header value"))?;
        if name == header::HOST {
            hosts += 1;
            hosts_valid &= is_valid_host(value.as_bytes());
        } else if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            framing_fields = true;
        } else if name == header::CONNECTION {
            connection = true;
        } else if name == header::EXPECT {
            expect = true;
        }
        headers.append(name, value);
    }
    let framing = if framing_fields {
        request_framing(&headers, version)?
    } else {
        Framing::Empty
    };
    if version == Version::HTTP_11 {
        if hosts != 1 {
            return Err(bad(if hosts == 0 {
                "missing Host header"
            } else {
                "repeated Host header"
            }));
        }
    } else if hosts > 1 {
        return Err(bad("repeated Host header"));
    }
    // RFC 9112 §3.2: a Host field with an invalid value is a 400 too.
    if !hosts_valid {
        return Err(bad("invalid Host header"));
    }
    let (close, keep_alive_token) = if connection {
        connection_tokens(&headers)
    } else {
        (false, false)
    };
    let keep_alive = !close && (version == Version::HTTP_11 || keep_alive_token);
    if form == TargetForm::Authority {
        // A 2xx to CONNECT turns the connection into a tunnel (RFC 9110 §9.3.6), which
        // handlers cannot take over yet; the client may already be sending tunnel bytes, so
        // nothing after this head is parsed as HTTP: the rejection closes the connection.
        return Err(reject(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT is not supported",
        ));
    }
    let expect_continue = expect
        && version == Version::HTTP_11
        && headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));

    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Some(RequestHead {
        request,
        framing,
        keep_alive,
        expect_continue,
    }))
}

/// Whether `value` is a plain `name[:port]`: letters, digits, `.` and `-`, then optionally `:`
/// and 1 to 5 digits. Every such value is a valid Host; this spares the common case the full
/// authority parse (which copies the value).
fn is_simple_host(value: &[u8]) -> bool {
    let (host, port) = match value.iter().position(|&b| b == b':') {
        Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
        None => (value, None),
    };
    !host.is_empty()
        && host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && match port {
            None => true,
            Some(p) => (1..=5).contains(&p.len()) && p.iter().all(u8::is_ascii_digit),
        }
}

/// Whether `value` is a valid Host field value: `uri-host [ ":" port ]` (no userinfo), or
/// empty (RFC 9112 §3.2: a target without authority).
fn is_valid_host(value: &[u8]) -> bool {
    if value.is_empty() || is_simple_host(value) {
        return true;
    }
    if value.contains(&b'@') || http::uri::Authority::try_from(value).is_err() {
        return false;
    }
    // `Authority` accepts any port text; a Host port is digits.
    match value.iter().rposition(|&b| b == b':') {
        Some(colon) if !value[colon..].contains(&b']') => {
            value[colon + 1..].iter().all(u8::is_ascii_digit)
        }
        _ => true,
    }
}

/// The form of a request target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetForm {
    /// `/path?query`
    Origin,
    /// `scheme://authority/path?query`, to be confirmed once parsed as a URI.
    Absolute,
    /// `host:port`, CONNECT's.
    Authority,
    /// `*`, OPTIONS' only.
    Asterisk,
}

/// Checks the bytes of a request target and its form against the method (RFC 9112 §3.2):
/// visible ASCII only (httparse lets bytes from 0x80 through, and `http::Uri` accepts some of
/// them), authority-form for CONNECT and only for it, asterisk-form only for OPTIONS.
fn target_form(method: &Method, target: &[u8]) -> Result<TargetForm, Reject> {
    // One pass that compiles to a vector compare: `b - 0x21` wraps for bytes below 0x21.
    if !target.iter().all(|&b| b.wrapping_sub(0x21) < 0x7f - 0x21) {
        return Err(bad("invalid byte in request target"));
    }
    let connect = *method == Method::CONNECT;
    let form = match target {
        [b'/', ..] => TargetForm::Origin,
        b"*" => TargetForm::Asterisk,
        _ if connect => TargetForm::Authority,
        _ => TargetForm::Absolute,
    };
    match form {
        TargetForm::Authority if !is_authority_form(target) => {
            Err(bad("invalid authority-form target"))
        }
        TargetForm::Origin | TargetForm::Absolute | TargetForm::Asterisk if connect => {
            Err(bad("CONNECT needs an authority-form target"))
        }
        TargetForm::Asterisk if *method != Method::OPTIONS => {
            Err(bad("asterisk-form target outside OPTIONS"))
        }
        form => Ok(form),
    }
}

/// Whether `target` is `uri-host ":" port` (RFC 9112 §3.2.3): no userinfo, no path, a port of
/// 1 to 5 digits.
fn is_authority_form(target: &[u8]) -> bool {
    let Some(colon) = target.iter().rposition(|&b| b == b':') else {
        return false;
    };
    let (host, port) = (&target[..colon], &target[colon + 1..]);
    !host.is_empty()
        && (1..=5).contains(&port.len())
        && port.iter().all(u8::is_ascii_digit)
        && !target
            .iter()
            .any(|&b| matches!(b, b'@' | b'/' | b'?' | b'#'))
        && http::uri::Authority::try_from(target).is_ok()
}

/// Where the minor digit of an `HTTP/1.x` version with x of 2 or more lies in the request line
/// at the front of `data` (`method SP target SP HTTP/1.x`), if that is what it holds.
fn higher_minor_version(data: &[u8]) -> Option<usize> {
    let line_end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let line = &data[..line_end];
    let first = line.iter().position(|&b| b == b' ')?;
    let second = first + 1 + line[first + 1..].iter().position(|&b| b == b' ')?;
    let version = &line[second + 1..];
    match version {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9', ..] => Some(second + 8),
        _ => None,
    }
}

/// Whether the request line is `method SP target SP HTTP-version` with a syntactically valid
/// version (`HTTP/` DIGIT `.` DIGIT), whatever its numbers.
fn is_well_formed_version_line(data: &[u8]) -> bool {
    let end = data
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(data.len());
    let mut parts = data[..end].split(|&b| b == b' ');
    let (Some(_), Some(_), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
}

/// Offsets of `part` (a sub-slice of the buffer starting at address `base`).
fn range_of(base: usize, part: &[u8]) -> (usize, usize) {
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
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
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
fn transfer_codings(headers: &HeaderMap) -> Option<Vec<&[u8]>> {
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

fn request_framing(headers: &HeaderMap, version: Version) -> Result<Framing, Reject> {
    let length = content_length(headers).map_err(|()| bad("invalid Content-Length"))?;
    let Some(codings) = transfer_codings(headers) else {
        return Ok(match length {
            None | Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
        });
    };
    if version == Version::HTTP_10 {
        return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
    }
    if length.is_some() {
        return Err(bad("both Content-Length and Transfer-Encoding"));
    }
    match codings.last() {
        Some(last) if last.eq_ignore_ascii_case(b"chunked") => {}
        _ => return Err(bad("Transfer-Encoding must end with chunked")),
    }
    let chunked = codings
        .iter()
        .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
        .count();
    if chunked > 1 {
        return Err(bad("chunked applied more than once"));
    }
    if codings.len() > 1 {
        return Err(reject(
            StatusCode::NOT_IMPLEMENTED,
            "unsupported transfer coding",
        ));
    }
    Ok(Framing::Chunked)
}

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
    let mut headers = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let data = buf.data();
    let base = data.as_ptr() as usize;
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(data) {
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
        let value = HeaderValue::from_maybe_shared(head.slice(start..end))
            .map_err(|_| BadResponse("invalid header value"))?;
        headers.append(name, value);
    }

    let (close, keep_alive_token) = connection_tokens(&headers);
    let mut reusable = !close && (version == Version::HTTP_11 || keep_alive_token);
    let no_body = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
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
        match content_length(&headers) {
            Err(()) => return Err(BadResponse("invalid Content-Length")),
            Ok(Some(0)) => Framing::Empty,
            Ok(Some(n)) => Framing::Length(n),
            Ok(None) => {
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

/// The longest chunk-size line (size plus extensions) accepted.
pub(crate) const MAX_CHUNK_LINE: usize = 4096;
/// The most trailer bytes accepted after the last chunk.
pub(crate) const MAX_TRAILER_BYTES: usize = 64 * 1024;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Malformed chunked framing.
    Invalid(&'static str),
    /// The connection closed before the body ended.
    Truncated,
}

impl DecodeError {
    pub(crate) fn into_io(self) -> std::io::Error {
        match self {
            DecodeError::Invalid(reason) => {
                std::io::Error::new(std::io::ErrorKind::InvalidData, reason)
            }
            DecodeError::Truncated => std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before the body was complete",
            ),
        }
    }
}

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    Data(Bytes),
    NeedMore,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    SizeLine,
    Data(u64),
    DataEnd,
    Trailers(usize),
}

/// Decodes a body from a read buffer, whatever its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoder {
    Length(u64),
    Chunked(Chunked),
    Eof,
    Done,
}

impl Decoder {
    pub(crate) fn new(framing: Framing) -> Decoder {
        match framing {
            Framing::Empty | Framing::Length(0) => Decoder::Done,
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::Chunked(Chunked::SizeLine),
            Framing::Eof => Decoder::Eof,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        *self == Decoder::Done
    }

    /// Takes the next piece of body from `buf`. `eof` says the peer closed the connection
    /// (no more bytes will come).
    pub(crate) fn decode(&mut self, buf: &mut ReadBuf, eof: bool) -> Result<Decoded, DecodeError> {
        match self {
            Decoder::Done => Ok(Decoded::Done),
            Decoder::Length(remaining) => {
                if buf.is_empty() {
                    return if eof {
                        Err(DecodeError::Truncated)
                    } else {
                        Ok(Decoded::NeedMore)
                    };
                }
                let n = (*remaining).min(buf.len() as u64) as usize;
                *remaining -= n as u64;
                if *remaining == 0 {
                    *self = Decoder::Done;
                }
                Ok(Decoded::Data(buf.split_to(n)))
            }
            Decoder::Eof => {
                if !buf.is_empty() {
                    Ok(Decoded::Data(buf.split_to(buf.len())))
                } else if eof {
                    *self = Decoder::Done;
                    Ok(Decoded::Done)
                } else {
                    Ok(Decoded::NeedMore)
                }
            }
            Decoder::Chunked(state) => match decode_chunked(state, buf)? {
                Some(Decoded::Done) => {
                    *self = Decoder::Done;
                    Ok(Decoded::Done)
                }
                Some(decoded) => Ok(decoded),
                None if eof => Err(DecodeError::Truncated),
                None => Ok(Decoded::NeedMore),
            },
        }
    }
}

/// One step of the chunked decoder; `None` when more bytes are needed.
fn decode_chunked(state: &mut Chunked, buf: &mut ReadBuf) -> Result<Option<Decoded>, DecodeError> {
    loop {
        match *state {
            Chunked::SizeLine => {
                let Some(line) = take_line(buf, MAX_CHUNK_LINE)? else {
                    return Ok(None);
                };
                let size = parse_chunk_size(&line)?;
                *state = if size == 0 {
                    Chunked::Trailers(0)
                } else {
                    Chunked::Data(size)
                };
            }
            Chunked::Data(remaining) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = remaining.min(buf.len() as u64) as usize;
                let left = remaining - n as u64;
                *state = if left == 0 {
                    Chunked::DataEnd
                } else {
                    Chunked::Data(left)
                };
                return Ok(Some(Decoded::Data(buf.split_to(n))));
            }
            Chunked::DataEnd => {
                if buf.len() < 2 {
                    if buf.data() == b"\r" || buf.is_empty() {
                        return Ok(None);
                    }
                    return Err(DecodeError::Invalid("chunk data not followed by CRLF"));
                }
                if &buf.data()[..2] != b"\r\n" {
                    return Err(DecodeError::Invalid("chunk data not followed by CRLF"));
                }
                buf.advance(2);
                *state = Chunked::SizeLine;
            }
            Chunked::Trailers(seen) => {
                let budget = MAX_TRAILER_BYTES.saturating_sub(seen);
                let Some(line) = take_line(buf, budget)? else {
                    return Ok(None);
                };
                if line.is_empty() {
                    return Ok(Some(Decoded::Done));
                }
                check_trailer_field(&line)?;
                *state = Chunked::Trailers(seen + line.len() + 2);
            }
        }
    }
}

/// Checks one trailer field line as a header field line (RFC 9112 §7.1.2, §5): a token name
/// right before a colon, then a value of visible characters, spaces and tabs (obs-text
/// allowed). A line starting with whitespace (obs-fold) fails as a name; so do whitespace
/// before the colon and a line without one. CR, NUL and other controls fail as a value.
fn check_trailer_field(line: &[u8]) -> Result<(), DecodeError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(DecodeError::Invalid("trailer field without a colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(DecodeError::Invalid("invalid trailer field name"));
    }
    if !value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
    {
        return Err(DecodeError::Invalid("invalid trailer field value"));
    }
    Ok(())
}

/// A `tchar` of a token (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Removes one CRLF-terminated line (returned without the CRLF); `None` when incomplete.
fn take_line(buf: &mut ReadBuf, max: usize) -> Result<Option<Bytes>, DecodeError> {
    let data = buf.data();
    match data.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            if lf == 0 || data[lf - 1] != b'\r' {
                return Err(DecodeError::Invalid("line not terminated by CRLF"));
            }
            if lf + 1 > max {
                return Err(DecodeError::Invalid("chunk line or trailers too long"));
            }
            let line = buf.split_to(lf + 1);
            Ok(Some(line.slice(..lf - 1)))
        }
        None if data.len() >= max => Err(DecodeError::Invalid("chunk line or trailers too long")),
        None => Ok(None),
    }
}

/// Parses `chunk-size [ chunk-ext ]`: 1 to 16 hex digits, then optional `;`-extensions.
fn parse_chunk_size(line: &[u8]) -> Result<u64, DecodeError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(DecodeError::Invalid("missing chunk size"));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(digit))
            .ok_or(DecodeError::Invalid("chunk size overflows"))?;
    }
    let rest = &line[digits..];
    let after_ws = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .map_or(&rest[rest.len()..], |i| &rest[i..]);
    if after_ws.is_empty() {
        if rest.is_empty() {
            return Ok(size);
        }
        return Err(DecodeError::Invalid("whitespace after chunk size"));
    }
    if after_ws[0] != b';' {
        return Err(DecodeError::Invalid("invalid character after chunk size"));
    }
    if after_ws
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(DecodeError::Invalid("control character in chunk extension"));
    }
    Ok(size)
}

/// Appends `HTTP/1.1 <code> <reason>\r\n` (the reason empty for unknown codes).
pub(crate) fn encode_status_line(status: StatusCode, out: &mut Vec<u8>) {
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

/// Appends a decimal number.
pub(crate) fn encode_u64(n: u64, out: &mut Vec<u8>) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(bytes: &[u8]) -> ReadBuf {
        let mut b = ReadBuf::new();
        b.extend_for_test(bytes);
        b
    }

    const LIMITS: Limits = Limits {
        max_header_bytes: 64 * 1024,
        max_headers: 100,
        max_uri_bytes: 8 * 1024,
    };

    fn decode_all(framing: Framing, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut b = buf(bytes);
        let mut d = Decoder::new(framing);
        let mut out = Vec::new();
        loop {
            match d.decode(&mut b, true)? {
                Decoded::Data(data) => out.extend_from_slice(&data),
                Decoded::Done => return Ok(out),
                Decoded::NeedMore => unreachable!("eof given"),
            }
        }
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let body = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        assert_eq!(decode_all(Framing::Chunked, body).unwrap(), b"hello world");
    }

    #[test]
    fn chunk_size_overflow_is_rejected() {
        let body = b"10000000000000000\r\n";
        assert!(decode_all(Framing::Chunked, body).is_err());
    }

    #[test]
    fn chunk_line_without_cr_is_rejected() {
        assert!(decode_all(Framing::Chunked, b"5\nhello\r\n0\r\n\r\n").is_err());
    }

    #[test]
    fn simple_hosts_are_valid_authorities() {
        for host in [
            "x",
            "localhost",
            "localhost:8080",
            "127.0.0.1",
            "127.0.0.1:65535",
            "a-b.c",
            "-a",
            "a..b",
            "1:0",
            "example.com:99999",
        ] {
            assert!(is_simple_host(host.as_bytes()), "{host}");
            assert!(
                http::uri::Authority::try_from(host.as_bytes()).is_ok(),
                "fast path accepts {host} but the authority parse does not"
            );
        }
        for host in ["", ":80", "a:", "a:123456", "a b", "[::1]", "a@b", "a:b"] {
            assert!(!is_simple_host(host.as_bytes()), "{host}");
        }
    }

    #[test]
    fn request_with_many_fields_keeps_them_all() {
        let mut raw = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..40 {
            raw.extend_from_slice(format!("X-F{i}: v{i}\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let head = parse_request(&mut buf(&raw), &LIMITS).unwrap().unwrap();
        let headers = head.request.headers();
        assert_eq!(headers.len(), 41);
        assert_eq!(headers["x-f0"], "v0");
        assert_eq!(headers["x-f39"], "v39");
    }

    #[test]
    fn request_head_is_parsed() {
        let mut b = buf(b"GET /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
        let head = parse_request(&mut b, &LIMITS).unwrap().unwrap();
        assert_eq!(head.request.uri(), "/a?b");
        assert_eq!(head.framing, Framing::Length(3));
        assert!(head.keep_alive);
        assert_eq!(b.data(), b"abc");
    }
}

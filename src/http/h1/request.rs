//! Request head parsing for the server, with the RFC 9112 checks httparse leaves to us
//! (request target form, Host, version line, body framing).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};

use super::framing::{
    connection_tokens, content_length, range_of, transfer_codings, Framing, STACK_HEADERS,
};
use crate::http::buf::ReadBuf;

/// Limits applied while parsing a request head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    pub(crate) max_uri_bytes: usize,
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
}

/// What a parsed request head says beyond the `Request` itself (see [`parse_request_into`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadInfo {
    pub(crate) framing: Framing,
    /// The client wants the connection kept open after this exchange.
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
}

/// Field offsets kept on the stack; a request with more fields puts them in a `Vec`.
const STACK_RANGES: usize = 32;
/// Field offsets of a request with few fields, the common case.
const SMALL_RANGES: usize = 8;

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
/// This is the server's hottest function, so it allocates at most what the `http` types need
/// (the header map, usually a pooled one: see `buf::take_header_map`): httparse fills an uninitialised stack array, field offsets go to a stack array
/// rather than a `Vec`, and the fields that need checking (Host, framing, Connection, Expect)
/// are noted while the map is built, so a request without them costs no map lookups.
pub(crate) fn parse_request(
    buf: &mut ReadBuf,
    limits: &Limits,
) -> Result<Option<RequestHead>, Reject> {
    let mut slot = None;
    let info = parse_request_into(buf, limits, &mut slot)?;
    Ok(info.zip(slot).map(|(info, request)| RequestHead {
        request,
        framing: info.framing,
        keep_alive: info.keep_alive,
    }))
}

/// [`parse_request`], building the request in `slot` (with a default body) rather than
/// returning it: the server parses straight into the slot its handler takes the request from,
/// so the request (over 200 bytes) is not copied from one future's state to the next on its way.
pub(crate) fn parse_request_into<B: Default>(
    buf: &mut ReadBuf,
    limits: &Limits,
    slot: &mut Option<Request<B>>,
) -> Result<Option<HeadInfo>, Reject> {
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
                return parse_request_into(buf, limits, slot);
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
    // Zeroed, so kept short: most requests have a handful of fields, and an array of
    // `SMALL_RANGES` is zeroed by a few stores where one of `STACK_RANGES` takes a memset.
    let mut small_ranges;
    let mut stack_ranges;
    let mut heap_ranges;
    let ranges = if count <= SMALL_RANGES {
        small_ranges = [FieldRange::default(); SMALL_RANGES];
        &mut small_ranges[..count]
    } else if count <= STACK_RANGES {
        stack_ranges = [FieldRange::default(); STACK_RANGES];
        &mut stack_ranges[..count]
    } else {
        heap_ranges = vec![FieldRange::default(); count];
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
    let mut headers = crate::http::buf::take_header_map(count);
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
    // CONNECT (the only method with an authority-form target): a 2xx answer turns the
    // connection into a tunnel (RFC 9110 §9.3.6, see `http::upgrade`); the client may already
    // be sending tunnel bytes, so after any other answer nothing is parsed as HTTP either.
    let keep_alive = !close
        && (version == Version::HTTP_11 || keep_alive_token)
        && form != TargetForm::Authority;
    let expect_continue = expect
        && version == Version::HTTP_11
        && headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));

    // Field by field into the slot: each field is small enough to move inline. The slot is
    // empty (a request left there would keep its body and extensions).
    if slot.is_some() {
        // Never the case (the handler took the last request); dropped here all the same, so
        // the request below is always new and its forgotten map always empty.
        *slot = None;
    }
    let request = slot.get_or_insert_with(|| Request::new(B::default()));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    // The map `Request::new` made holds no memory (`HeaderMap::new` does not allocate): it is
    // forgotten rather than dropped, a drop that would only find nothing to free.
    std::mem::forget(std::mem::replace(request.headers_mut(), headers));
    Ok(Some(HeadInfo {
        framing,
        keep_alive,
        expect_continue,
    }))
}

/// The bytes of a plain host name or IPv4 address: letters, digits, `.` and `-`.
const HOST_NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
        b += 1;
    }
    table
};

/// Whether `value` is a plain `name[:port]`: letters, digits, `.` and `-`, then optionally `:`
/// and 1 to 5 digits. Every such value is a valid Host; this spares the common case the full
/// authority parse (which copies the value). One pass with a table lookup per byte: it runs
/// for every request.
fn is_simple_host(value: &[u8]) -> bool {
    let name_len = value
        .iter()
        .position(|&b| !HOST_NAME_BYTE[b as usize])
        .unwrap_or(value.len());
    if name_len == 0 {
        return false;
    }
    match &value[name_len..] {
        [] => true,
        [b':', port @ ..] => (1..=5).contains(&port.len()) && port.iter().all(u8::is_ascii_digit),
        _ => false,
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
///
/// No `#`: a request target has no fragment (RFC 9112 §3.2), and `http::Uri` would drop it
/// silently, so the handler would see another target than a proxy in front of us forwarded
/// (h11 and llhttp pass it through; rejecting is the strict reading).
fn target_form(method: &Method, target: &[u8]) -> Result<TargetForm, Reject> {
    // One pass without early exit, so that it compiles to vector compares (`b - 0x21` wraps
    // for bytes below 0x21); `all` with two conditions would branch per byte.
    let valid = target.iter().fold(true, |ok, &b| {
        ok & (b.wrapping_sub(0x21) < 0x7f - 0x21) & (b != b'#')
    });
    if !valid {
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
        // Each size of the offsets array: small, stack, heap.
        for fields in [SMALL_RANGES - 1, SMALL_RANGES + 1, STACK_RANGES + 8] {
            let mut raw = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
            for i in 0..fields {
                raw.extend_from_slice(format!("X-F{i}: v{i}\r\n").as_bytes());
            }
            raw.extend_from_slice(b"\r\n");
            let head = parse_request(&mut buf(&raw), &LIMITS).unwrap().unwrap();
            let headers = head.request.headers();
            assert_eq!(headers.len(), fields + 1);
            assert_eq!(headers["host"], "x");
            assert_eq!(headers["x-f0"], "v0");
            let last = fields - 1;
            assert_eq!(headers[format!("x-f{last}")], format!("v{last}"));
        }
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

//! URLs and redirects: the target a request URL names (scheme, host, port), `Location`
//! resolution against the request URI (RFC 3986 §5.2), the rule for when credentials may
//! follow a redirect, and draining a redirect's body.

use bytes::Bytes;
use futures_lite::StreamExt;
use http::header::{self, HeaderMap};
use http::{Method, Request, Response, StatusCode, Uri};

use crate::http::body::Body;
use crate::http::error::{Error, ErrorKind};

use super::pool::PoolKey;

/// What a redirect's follow-up keeps of the request sent before it.
pub(super) struct Sent {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    /// The body again, if it can be sent twice (a stream cannot).
    replay: Option<Bytes>,
}

impl Sent {
    pub(super) fn of(request: &Request<Body>) -> Sent {
        let replay = match request.body().size_hint() {
            Some(0) => Some(Bytes::new()),
            _ => request.body().as_full().cloned(),
        };
        Sent {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
            replay,
        }
    }
}

/// The request a redirect asks for, or `None` when `response` is to be returned as it is: not
/// a redirect, no `Location`, or a body that would have to be sent twice but cannot.
///
/// A 303 turns any method but HEAD into a bodiless GET, a 301 or 302 turns a POST into one
/// (what browsers, per Fetch, and curl do; RFC 9110 §15.4.2-4 allow it); otherwise the method
/// and body go again. Credentials stay on their origin (`same_origin_for_credentials`).
pub(super) fn follow(
    sent: Sent,
    response: &Response<Body>,
) -> Result<Option<Request<Body>>, Error> {
    let Sent {
        method,
        uri,
        mut headers,
        replay,
    } = sent;
    let status = response.status();
    let next_method = match status {
        StatusCode::SEE_OTHER if method == Method::HEAD => Method::HEAD,
        StatusCode::SEE_OTHER => Method::GET,
        StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND if method == Method::POST => Method::GET,
        StatusCode::MOVED_PERMANENTLY
        | StatusCode::FOUND
        | StatusCode::TEMPORARY_REDIRECT
        | StatusCode::PERMANENT_REDIRECT => method.clone(),
        _ => return Ok(None),
    };
    let Some(location) = response.headers().get(header::LOCATION) else {
        return Ok(None);
    };
    let same_request = next_method == method && status != StatusCode::SEE_OTHER;
    let body = if same_request {
        match replay {
            Some(bytes) => Body::from(bytes),
            None => return Ok(None),
        }
    } else {
        Body::empty()
    };
    let next_uri = resolve_location(&uri, location.as_bytes()).ok_or_else(|| {
        Error::new(
            ErrorKind::BadResponse,
            format!("invalid Location header in a redirect: {location:?}"),
        )
    })?;
    log::debug!("redirect {status} from {uri} to {next_uri}");
    if !same_origin_for_credentials(&uri, &next_uri) {
        headers.remove(header::AUTHORIZATION);
        headers.remove(header::PROXY_AUTHORIZATION);
        headers.remove(header::COOKIE);
    }
    if uri.authority() != next_uri.authority() {
        headers.remove(header::HOST);
    }
    if !same_request {
        for name in [
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            header::CONTENT_ENCODING,
            header::CONTENT_LANGUAGE,
            header::TRANSFER_ENCODING,
            header::EXPECT,
        ] {
            headers.remove(name);
        }
    }
    let mut next = Request::new(body);
    *next.method_mut() = next_method;
    *next.uri_mut() = next_uri;
    *next.headers_mut() = headers;
    Ok(Some(next))
}

/// How much of a redirect response's body is read (to keep its connection) before giving up
/// on the connection instead.
const REDIRECT_DRAIN_BYTES: u64 = 64 * 1024;
pub(super) fn parse_url<U>(url: U) -> Result<Uri, Error>
where
    Uri: TryFrom<U>,
    <Uri as TryFrom<U>>::Error: Into<http::Error>,
{
    Uri::try_from(url).map_err(|err| {
        let err: http::Error = err.into();
        Error::with_source(ErrorKind::InvalidUrl, "invalid URL", err)
    })
}

/// Where a request goes.
pub(super) struct Target {
    pub(super) key: PoolKey,
    /// The `Host` header value: the host, with the port when it is not the default one.
    pub(super) host_header: String,
}

impl Target {
    /// The target of a request to an absolute `http://` or `https://` URL.
    pub(super) fn of(uri: &Uri) -> Result<Target, Error> {
        Target::parse(uri, false)
    }

    /// The target of a `CONNECT` request: the authority of its URI (`host:port`, or an
    /// absolute URL, whose path is ignored and whose port defaults to the scheme's), which
    /// is also what the request line names (authority form, RFC 9112 §3.2.3), so its `Host`
    /// value always carries the port (RFC 9110 §9.3.6).
    pub(super) fn connect(uri: &Uri) -> Result<Target, Error> {
        Target::parse(uri, true)
    }

    fn parse(uri: &Uri, connect: bool) -> Result<Target, Error> {
        let invalid =
            |message: &str| Error::new(ErrorKind::InvalidUrl, format!("{message}: {uri}"));
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(_) => return Err(invalid("unsupported URL scheme (expected http or https)")),
            None if connect => false,
            None => return Err(invalid("the URL must be absolute (http:// or https://)")),
        };
        let authority = uri.authority().ok_or_else(|| {
            invalid(if connect {
                "a CONNECT request's URI must be host:port"
            } else {
                "the URL has no host"
            })
        })?;
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("the URL has no host"));
        }
        let default_port = if https { 443 } else { 80 };
        let after_host = &authority.as_str()[host.len()..];
        let port = match authority.port_u16() {
            Some(port) => port,
            None if after_host.len() > 1 => return Err(invalid("invalid port in URL")),
            None if connect && uri.scheme().is_none() => {
                return Err(invalid("a CONNECT target needs a port (host:port)"))
            }
            None => default_port,
        };
        let host = host.to_ascii_lowercase();
        let host_header = if port == default_port && !connect {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        Ok(Target {
            key: PoolKey { https, host, port },
            host_header,
        })
    }

    /// The host as the resolver and TLS want it (IPv6 without brackets).
    pub(super) fn bare_host(&self) -> &str {
        let host = self.key.host.as_str();
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }
}

/// Reads and drops a small unwanted body (a redirect's) so that its connection returns to
/// the pool; gives up (closing the connection) past a few KiB.
pub(super) async fn discard(mut body: Body) {
    if body.size_hint().is_some_and(|n| n > REDIRECT_DRAIN_BYTES) {
        return;
    }
    let mut total = 0u64;
    while let Some(Ok(chunk)) = body.next().await {
        total += chunk.len() as u64;
        if total > REDIRECT_DRAIN_BYTES {
            return;
        }
    }
}

/// Resolves a `Location` value against the URI of the request that got it (RFC 3986 §5.2),
/// percent-encoding bytes that may not appear in a URI.
pub(super) fn resolve_location(base: &Uri, location: &[u8]) -> Option<Uri> {
    let location = percent_encode_invalid(location.trim_ascii());
    let location = match location.find('#') {
        Some(hash) => &location[..hash],
        None => location.as_str(),
    };
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();

    let has_scheme = location
        .find(':')
        .map(|colon| {
            let s = &location[..colon];
            !s.is_empty()
                && s.as_bytes()[0].is_ascii_alphabetic()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        })
        .unwrap_or(false);
    let resolved = if has_scheme {
        // Absolute; its path is still normalised below.
        let uri = Uri::try_from(location).ok()?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let (path, query) = split_query(path);
        format!(
            "{}://{}{}{}",
            uri.scheme_str()?,
            uri.authority()?.as_str(),
            remove_dot_segments(path),
            query
        )
    } else if let Some(rest) = location.strip_prefix("//") {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (path, query) = split_query(&rest[end..]);
        format!(
            "{scheme}://{}{}{query}",
            &rest[..end],
            remove_dot_segments(path)
        )
    } else {
        let base_path = base.path();
        let (path, query) = split_query(location);
        let path = if path.is_empty() {
            // Same document; a new query if given.
            let query = if query.is_empty() {
                base.query().map(|q| format!("?{q}")).unwrap_or_default()
            } else {
                query.to_owned()
            };
            return Uri::try_from(format!("{scheme}://{authority}{base_path}{query}")).ok();
        } else if path.starts_with('/') {
            remove_dot_segments(path)
        } else {
            let dir = match base_path.rfind('/') {
                Some(slash) => &base_path[..=slash],
                None => "/",
            };
            remove_dot_segments(&format!("{dir}{path}"))
        };
        format!("{scheme}://{authority}{path}{query}")
    };
    Uri::try_from(resolved).ok()
}

/// Splits `path?query` into the path and `?query` (or "").
fn split_query(s: &str) -> (&str, &str) {
    match s.find('?') {
        Some(q) => (&s[..q], &s[q..]),
        None => (s, ""),
    }
}

/// RFC 3986 §5.2.4; the result starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 || out.first().is_some_and(|s| !s.is_empty()) {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

/// Percent-encodes bytes that may not appear in a URI (controls, space, non-ASCII, and
/// `"<>\^`{|}`), leaving everything else, including existing escapes, as it is.
fn percent_encode_invalid(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        let keep = b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether credentials may follow a redirect from `from` to `to`: same host and port, and
/// not from `https` to `http`.
pub(super) fn same_origin_for_credentials(from: &Uri, to: &Uri) -> bool {
    let (Ok(a), Ok(b)) = (Target::of(from), Target::of(to)) else {
        return false;
    };
    a.key.host == b.key.host && a.key.port == b.key.port && (b.key.https || !a.key.https)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(base: &str, location: &str) -> String {
        resolve_location(&base.parse().unwrap(), location.as_bytes())
            .unwrap()
            .to_string()
    }

    #[test]
    fn locations_resolve_against_the_request_uri() {
        let base = "http://a.example:8080/b/c/d?q";
        assert_eq!(resolve(base, "/x?y"), "http://a.example:8080/x?y");
        assert_eq!(resolve(base, "g"), "http://a.example:8080/b/c/g");
        assert_eq!(resolve(base, "./g/"), "http://a.example:8080/b/c/g/");
        assert_eq!(resolve(base, "../g"), "http://a.example:8080/b/g");
        assert_eq!(resolve(base, "../../../../g"), "http://a.example:8080/g");
        assert_eq!(resolve(base, "?z"), "http://a.example:8080/b/c/d?z");
        assert_eq!(resolve(base, ""), "http://a.example:8080/b/c/d?q");
        assert_eq!(resolve(base, "g#frag"), "http://a.example:8080/b/c/g");
        assert_eq!(resolve(base, "//other/p"), "http://other/p");
        assert_eq!(resolve(base, "https://other/p/../q"), "https://other/q");
        assert_eq!(resolve(base, "/a b"), "http://a.example:8080/a%20b");
        assert_eq!(resolve("http://h", "x"), "http://h/x");
    }

    #[test]
    fn targets_need_absolute_http_urls() {
        let kind = |s: &str| Target::of(&s.parse().unwrap()).err().map(|e| e.kind());
        assert_eq!(kind("/relative"), Some(ErrorKind::InvalidUrl));
        assert_eq!(kind("ftp://h/"), Some(ErrorKind::InvalidUrl));
        assert_eq!(kind("http://user:pw@h/"), Some(ErrorKind::InvalidUrl));
        assert_eq!(kind("http://h:99999/"), Some(ErrorKind::InvalidUrl));
        let t = Target::of(&"HTTP://Example.COM:80/x".parse().unwrap()).unwrap();
        assert_eq!(
            (t.key.host.as_str(), t.key.port, t.host_header.as_str()),
            ("example.com", 80, "example.com")
        );
        let connect = |s: &str| Target::connect(&s.parse().unwrap()).map(|t| t.host_header);
        assert_eq!(connect("Example.com:443").unwrap(), "example.com:443");
        assert_eq!(connect("[::1]:8080").unwrap(), "[::1]:8080");
        assert_eq!(connect("http://h/x").unwrap(), "h:80");
        assert_eq!(connect("h").unwrap_err().kind(), ErrorKind::InvalidUrl);
        assert_eq!(
            connect("h:99999").unwrap_err().kind(),
            ErrorKind::InvalidUrl
        );
        let t = Target::of(&"https://[::1]:8443/".parse().unwrap()).unwrap();
        assert_eq!(
            (t.bare_host(), t.host_header.as_str()),
            ("::1", "[::1]:8443")
        );
    }

    #[test]
    fn credentials_stay_on_their_host() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert!(same_origin_for_credentials(
            &u("http://h/a"),
            &u("http://h:80/b")
        ));
        assert!(same_origin_for_credentials(
            &u("http://h/a"),
            &u("https://h:80/b")
        ));
        assert!(!same_origin_for_credentials(
            &u("https://h/a"),
            &u("http://h:443/b")
        ));
        assert!(!same_origin_for_credentials(
            &u("http://h/a"),
            &u("http://h:81/b")
        ));
        assert!(!same_origin_for_credentials(
            &u("http://h/a"),
            &u("http://g/b")
        ));
    }
}

//! hyper's `response_body_lengths` tests and its other response-framing ones
//! (`tests/server.rs` of hyper 1.x), ported to untangle's server: which of Content-Length,
//! chunked or the close delimits a response, from what the handler set and what its body
//! knows, for HTTP/1.1 and HTTP/1.0 requests. The other ports are in `ported_hyper_server.rs`
//! (where the tests left out are listed) and `ported_hyper_server_conn.rs`.
//!
//! One difference from hyper: its `chunked_response_trumps_length` is `#[ignore]`d there; it
//! holds here (RFC 9112 §6.2).

mod common;
mod ported_hyper_server_support;

use bytes::Bytes;
use ported_hyper_server_support::{exchange, header_value, serve, Client, CLOSE_GET};
use untangle::http::{Body, Response};

enum Bd {
    /// A body whose length is known (one buffer).
    Known(&'static str),
    /// A streamed body (length unknown).
    Unknown(&'static str),
}

/// Serves one response with `headers` and `body` to an HTTP/1.`version` request with
/// `Connection: close`, and checks its framing fields and its body on the wire.
fn run_length_case(
    version: u8,
    headers: &'static [(&'static str, &'static str)],
    body: Bd,
    expects_chunked: bool,
    expects_con_len: bool,
) {
    let text = match body {
        Bd::Known(s) | Bd::Unknown(s) => s,
    };
    let streamed = matches!(body, Bd::Unknown(_));
    let (addr, _bodies) = serve(
        |s| s,
        move || {
            let mut response = Response::builder();
            for (name, value) in headers {
                response = response.header(*name, *value);
            }
            let body = if streamed {
                Body::from_stream(futures_lite::stream::once(Ok(Bytes::from_static(
                    text.as_bytes(),
                ))))
            } else {
                Body::from(text)
            };
            response.body(body).unwrap()
        },
    );
    let out = exchange(
        addr,
        &format!("GET / HTTP/1.{version}\r\nHost: example.domain\r\nConnection: close\r\n\r\n"),
    );
    let end = out.find("\r\n\r\n").expect("a head") + 4;
    let (head, body) = out.split_at(end);
    assert_eq!(
        expects_chunked,
        header_value(head, "transfer-encoding").is_some_and(|v| v.ends_with("chunked")),
        "expects_chunked: {out:?}"
    );
    assert_eq!(
        expects_con_len,
        header_value(head, "content-length").is_some(),
        "expects_con_len: {out:?}"
    );
    if expects_chunked {
        let expected = if text.is_empty() {
            "0\r\n\r\n".to_string()
        } else {
            format!("{:X}\r\n{text}\r\n0\r\n\r\n", text.len())
        };
        assert_eq!(body, expected, "{out:?}");
    } else {
        assert_eq!(body, text, "{out:?}");
    }
}

#[test]
fn fixed_response_known() {
    run_length_case(
        1,
        &[("content-length", "11")],
        Bd::Known("foo bar baz"),
        false,
        true,
    );
}

#[test]
fn fixed_response_unknown() {
    run_length_case(
        1,
        &[("content-length", "11")],
        Bd::Unknown("foo bar baz"),
        false,
        true,
    );
}

#[test]
fn fixed_response_known_empty() {
    run_length_case(1, &[("content-length", "0")], Bd::Known(""), false, true);
}

/// The handler asked for chunked: even with the length known, it gets chunked.
#[test]
fn chunked_response_known() {
    let te = &[("transfer-encoding", "chunked")];
    run_length_case(1, te, Bd::Known("foo bar baz"), true, false);
}

#[test]
fn chunked_response_known_empty() {
    run_length_case(
        1,
        &[("transfer-encoding", "chunked")],
        Bd::Known(""),
        true,
        false,
    );
}

#[test]
fn chunked_response_unknown() {
    let te = &[("transfer-encoding", "chunked")];
    run_length_case(1, te, Bd::Unknown("foo bar baz"), true, false);
}

/// A transfer coding the handler applied itself is kept, and chunked is added last
/// (RFC 9112 §6.1: chunked must be the final coding).
#[test]
fn te_response_adds_chunked() {
    let te = &[("transfer-encoding", "gzip")];
    run_length_case(1, te, Bd::Unknown("foo bar baz"), true, false);
    let (addr, _) = serve(
        |s| s,
        || {
            Response::builder()
                .header("transfer-encoding", "gzip")
                .body(Body::from("x"))
                .unwrap()
        },
    );
    let out = exchange(addr, CLOSE_GET);
    assert!(
        out.contains("\r\ntransfer-encoding: gzip, chunked\r\n"),
        "{out:?}"
    );
}

/// Ignored in hyper ("got in the way of performance"); here it holds: with both fields set,
/// Transfer-Encoding wins and Content-Length is not sent (RFC 9112 §6.2: a sender MUST NOT
/// send Content-Length with Transfer-Encoding).
#[test]
fn chunked_response_trumps_length() {
    let both = &[("transfer-encoding", "chunked"), ("content-length", "11")];
    run_length_case(1, both, Bd::Known("foo bar baz"), true, false);
}

#[test]
fn auto_response_with_unknown_length() {
    run_length_case(1, &[], Bd::Unknown("foo bar baz"), true, false);
}

#[test]
fn auto_response_with_known_length() {
    run_length_case(1, &[], Bd::Known("foo bar baz"), false, true);
}

#[test]
fn auto_response_known_empty() {
    run_length_case(1, &[], Bd::Known(""), false, true);
}

#[test]
fn http10_auto_response_with_unknown_length() {
    run_length_case(0, &[], Bd::Unknown("foo bar baz"), false, false);
}

/// RFC 9112 §6.1: no Transfer-Encoding in a response to an HTTP/1.0 request, even when the
/// handler set one: the body is delimited by the close instead.
#[test]
fn http10_chunked_response() {
    let te = &[("transfer-encoding", "chunked")];
    run_length_case(0, te, Bd::Unknown("foo bar baz"), false, false);
}

#[test]
fn get_chunked_response_with_ka() {
    let (addr, _) = serve(
        |s| s,
        || {
            Response::builder()
                .header("transfer-encoding", "chunked")
                .body(Body::from("foo bar baz"))
                .unwrap()
        },
    );
    let mut client = Client::connect(addr);
    client.send("GET / HTTP/1.1\r\nHost: example.domain\r\nConnection: keep-alive\r\n\r\n");
    let (head, body) = client.response();
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head:?}"
    );
    assert_eq!(body, b"B\r\nfoo bar baz\r\n0\r\n\r\n");
    // The same connection serves the next request.
    client.send("GET /quux HTTP/1.1\r\nHost: example.domain\r\nConnection: close\r\n\r\n");
    let (head, body) = client.response();
    assert!(head.contains("\r\nconnection: close\r\n"), "{head:?}");
    assert_eq!(body, b"B\r\nfoo bar baz\r\n0\r\n\r\n");
    assert_eq!(client.rest(), b"");
}

/// 100 streamed chunks of 1,000 bytes, with keep-alive disabled (hyper's `keep_alive(false)`)
/// so that the client reads to the end.
#[test]
fn streaming_body() {
    let (addr, _) = serve(
        |s| s.keep_alive(false),
        || {
            let chunks = (0..100).map(|_| Ok(Bytes::from_static(&[b'x'; 1_000])));
            Body::from_stream(futures_lite::stream::iter(chunks))
        },
    );
    let mut client = Client::connect(addr);
    client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = client.head();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head:?}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head:?}");
    let body = client.rest();
    // 100 × ("3E8\r\n" + 1,000 bytes + "\r\n") + "0\r\n\r\n".
    assert_eq!(body.len(), 100 * 1_007 + 5);
    assert!(body.ends_with(b"\r\n0\r\n\r\n"));
}

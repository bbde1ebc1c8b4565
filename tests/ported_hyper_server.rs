//! hyper's own HTTP/1 server tests (`tests/server.rs` of hyper 1.x), ported to untangle's
//! server on raw sockets: request bodies, HEAD and bodiless statuses, versions and keep-alive,
//! `Expect: 100-continue`, limits. Response framing (hyper's `response_body_lengths`) is in
//! `ported_hyper_server_framing.rs`; connection-level tests (timeouts, graceful shutdown,
//! upgrades, disconnects) are in `ported_hyper_server_conn.rs`; the harness is in
//! `ported_hyper_server_support/`.
//!
//! Each test keeps hyper's name. Left out, and why:
//! - every `http2_*` and `h2_*` test, `try_h2`, `http1_only`: we serve HTTP/1.1 only.
//! - `get_response_custom_reason_phrase`, `http_10_close_on_no_ka` (a response whose *version*
//!   is set to 1.0), `max_buf_size_panic_too_small` / `max_buf_size_no_panic`,
//!   `pipeline_disabled` / `pipeline_enabled` (the `pipeline_flush` knob, and a single-read
//!   assertion that depends on TCP segmenting): hyper builder knobs or extensions we do not
//!   offer. The behaviour behind `pipeline_enabled` (answers in order, `Connection: close` on
//!   the last) is `tests/http_server.rs::pipelined_requests_are_answered_in_order`.
//! - `http1_trailer_send_fields` / `http1_trailer_fields_not_allowed`: we do not send trailers.
//!   `http1_trailer_recv_fields` (the body before a trailer section) is
//!   `http_server.rs::chunked_body_with_extensions_and_trailers_is_read`; trailers are not
//!   exposed to handlers.
//! - Already covered elsewhere, same behaviour: `keep_alive`, `http_10_keep_alive`,
//!   `header_connection_close`, `expect_continue_sends_100`,
//!   `expect_continue_waits_for_body_poll`, `head_response_doesnt_send_body`,
//!   `skips_content_length_and_body_for_304_responses`, `http_11_uri_too_long`,
//!   `parse_errors_send_4xx_response`, `illegal_request_length_returns_400_response`,
//!   `returning_1xx_response_is_error` (`tests/http_server.rs`, `tests/http_upgrade.rs`).
//!
//! Where we differ from hyper on purpose, the test asserts ours and says why: responses are
//! always `HTTP/1.1` (RFC 9110 §6.2), and an HTTP/1.1 request without `Host` is a 400
//! (RFC 9112 §3.2).

mod common;
mod ported_hyper_server_support;

use std::io::Write;

use ported_hyper_server_support::{body_of, exchange, serve, Client, CLOSE_GET};
use untangle::http::{Body, Response, StatusCode, Version};

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

#[test]
fn get_should_ignore_body() {
    let (addr, bodies) = serve(|s| s, || ());
    // No framing field: no body. What follows is not parsed as a request either, since the
    // connection closes after the response.
    let out = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: example.domain\r\nConnection: close\r\n\r\nI shouldn't be read.\r\n",
    );
    assert_eq!(body_of(&bodies).unwrap(), b"");
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out:?}");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
}

#[test]
fn get_with_body() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send(
        "GET / HTTP/1.1\r\nHost: example.domain\r\nContent-Length: 19\r\n\r\nI'm a good request.\r\n",
    );
    // The trailing CRLF is not part of the body (Content-Length is 19, not 21).
    assert_eq!(body_of(&bodies).unwrap(), b"I'm a good request.");
    let (head, _) = client.response();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head:?}");
}

#[test]
fn post_with_content_length_body() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(body_of(&bodies).unwrap(), b"hello");
    assert!(client.response().0.starts_with("http/1.1 200 ok\r\n"));
}

/// hyper's version of the test sends no `Host`. RFC 9112 §3.2: a server MUST answer 400 to an
/// HTTP/1.1 request without one, and we do.
#[test]
fn post_with_content_length_body_but_no_host_is_400() {
    let (addr, bodies) = serve(|s| s, || ());
    let out = exchange(addr, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out:?}");
    assert!(bodies.try_recv().is_err(), "the handler never ran");
}

#[test]
fn post_with_invalid_prefix_content_length() {
    let (addr, bodies) = serve(|s| s, || ());
    let out = exchange(
        addr,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    );
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out:?}");
    assert!(out.contains("connection: close\r\n"), "{out:?}");
    assert!(bodies.try_recv().is_err(), "the handler never ran");
}

#[test]
fn post_with_chunked_body() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send(
        "POST / HTTP/1.1\r\nHost: example.domain\r\nTransfer-Encoding: chunked\r\n\r\n\
         1\r\nq\r\n2\r\nwe\r\n2\r\nrt\r\n0\r\n\r\n",
    );
    assert_eq!(body_of(&bodies).unwrap(), b"qwert");
    assert!(client.response().0.starts_with("http/1.1 200 ok\r\n"));
}

/// A chunk size past 64 bits fails the body read, and the request hidden behind it is never
/// answered: the connection closes after the error response.
#[test]
fn post_with_chunked_overflow() {
    let (addr, bodies) = serve(|s| s, || ());
    let out = exchange(
        addr,
        "POST / HTTP/1.1\r\nHost: example.domain\r\nTransfer-Encoding: chunked\r\n\r\n\
         f0000000000000003\r\nabc\r\n0\r\n\r\nGET /sneaky HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let err = body_of(&bodies).unwrap_err();
    assert!(err.contains("chunk"), "{err:?}");
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out:?}");
    assert!(out.contains("connection: close\r\n"), "{out:?}");
    assert!(bodies.try_recv().is_err(), "/sneaky was never handled");
}

#[test]
fn post_with_incomplete_body() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send("POST / HTTP/1.1\r\nHost: example.domain\r\nContent-Length: 10\r\n\r\n12345");
    client.stream.shutdown(std::net::Shutdown::Write).unwrap();
    body_of(&bodies).unwrap_err();
    // The half-closed client still gets the handler's answer, which closes the connection.
    let out = String::from_utf8(client.rest()).unwrap();
    assert!(out.starts_with("HTTP/1.1 500 "), "{out:?}");
    assert!(out.contains("connection: close\r\n"), "{out:?}");
}

#[test]
fn post_with_chunked_missing_final_digit() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send(
        "POST / HTTP/1.1\r\nHost: example.domain\r\ntransfer-encoding: chunked\r\n\r\n\
         1\r\nZ\r\n\r\n\r\n",
    );
    body_of(&bodies).unwrap_err();
    let out = String::from_utf8(client.rest()).unwrap();
    assert!(out.starts_with("HTTP/1.1 500 "), "{out:?}");
    assert!(out.contains("connection: close\r\n"), "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// HEAD and bodiless statuses
// ---------------------------------------------------------------------------------------------

/// RFC 9110 §8.6: a response to HEAD may carry the Content-Length a GET would get; the
/// handler's own value is sent as it is, although the handler gives no body.
#[test]
fn head_response_can_send_content_length() {
    let (addr, _) = serve(
        |s| s,
        || {
            Response::builder()
                .header("content-length", "1024")
                .body(Body::empty())
                .unwrap()
        },
    );
    let out = exchange(addr, &CLOSE_GET.replacen("GET", "HEAD", 1));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    assert!(out.contains("\r\ncontent-length: 1024\r\n"), "{out:?}");
    assert!(out.ends_with("\r\n\r\n"), "no body: {out:?}");
}

/// An empty body answering HEAD says nothing of what a GET would get, so no
/// `Content-Length: 0` is made up for it (RFC 9110 §8.6: only the GET's length may be sent).
#[test]
fn no_implicit_zero_content_length_for_head_responses() {
    let (addr, _) = serve(|s| s, || Body::from(""));
    let out = exchange(addr, &CLOSE_GET.replacen("GET", "HEAD", 1));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    assert!(!out.contains("content-length"), "{out:?}");
    assert!(out.ends_with("\r\n\r\n"), "no body: {out:?}");
}

#[test]
fn response_does_not_set_chunked_if_body_not_allowed() {
    let (addr, _) = serve(
        |s| s,
        || {
            Response::builder()
                .status(StatusCode::NOT_MODIFIED)
                .header("transfer-encoding", "chunked")
                .body(Body::empty())
                .unwrap()
        },
    );
    let out = exchange(addr, CLOSE_GET);
    assert!(out.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{out:?}");
    assert!(!out.contains("transfer-encoding"), "{out:?}");
    // No body, not even the last chunk.
    assert!(
        out.ends_with("\r\n\r\n") && !out.contains("0\r\n\r\n"),
        "{out:?}"
    );
}

#[test]
fn skips_content_length_for_304_responses() {
    let (addr, _) = serve(|s| s, || (StatusCode::NOT_MODIFIED, "foo"));
    let out = exchange(addr, CLOSE_GET);
    assert!(out.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{out:?}");
    assert!(!out.contains("content-length"), "{out:?}");
    assert!(out.ends_with("\r\n\r\n"), "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// Versions and keep-alive
// ---------------------------------------------------------------------------------------------

/// hyper answers an HTTP/1.0 request with `HTTP/1.0`. We answer `HTTP/1.1`, as RFC 9110 §6.2
/// recommends (a server sends the highest minor version it conforms to): the response is still
/// one a 1.0 client can read — no chunked coding, and the connection closes after it.
#[test]
fn http_10_request_receives_http_11_response() {
    let (addr, _) = serve(|s| s, || ());
    let out = exchange(addr, "GET / HTTP/1.0\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    assert!(out.contains("\r\ncontent-length: 0\r\n"), "{out:?}");
    assert!(out.contains("\r\nconnection: close\r\n"), "{out:?}");
}

/// The response's own version is not what goes on the wire: an HTTP/1 server writes HTTP/1.1.
#[test]
fn http1_response_with_http2_version() {
    let (addr, _) = serve(
        |s| s,
        || {
            let mut response = Response::new(Body::from("hi"));
            *response.version_mut() = Version::HTTP_2;
            response
        },
    );
    let mut client = Client::connect(addr);
    client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = client.response();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head:?}");
    assert_eq!(body, b"hi");
}

#[test]
fn disable_keep_alive() {
    let (addr, _) = serve(|s| s.keep_alive(false), || "foo bar baz");
    let mut client = Client::connect(addr);
    client.send("GET / HTTP/1.1\r\nHost: example.domain\r\nConnection: keep-alive\r\n\r\n");
    let (head, body) = client.response();
    assert!(head.contains("\r\nconnection: close\r\n"), "{head:?}");
    assert_eq!(body, b"foo bar baz");
    // The server closes: nothing after the response, even for a pipelined request.
    assert_eq!(client.rest(), b"");
}

/// With keep-alive disabled, a request already pipelined behind the first is not answered.
#[test]
fn disable_keep_alive_answers_only_the_first_pipelined_request() {
    let (addr, bodies) = serve(|s| s.keep_alive(false), || "one");
    let mut client = Client::connect(addr);
    client.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = client.response();
    assert!(head.contains("\r\nconnection: close\r\n"), "{head:?}");
    assert_eq!(body, b"one");
    assert_eq!(client.rest(), b"");
    assert!(body_of(&bodies).is_ok());
    assert!(
        bodies.try_recv().is_err(),
        "the second request was never handled"
    );
}

// ---------------------------------------------------------------------------------------------
// Expect: 100-continue
// ---------------------------------------------------------------------------------------------

/// RFC 9110 §10.1.1: the expectation's value is case-insensitive.
#[test]
fn expect_continue_accepts_upper_cased_expectation() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send(
        "POST /foo HTTP/1.1\r\nHost: example.domain\r\nExpect: 100-Continue\r\n\
         Content-Length: 5\r\nConnection: Close\r\n\r\n",
    );
    assert_eq!(client.take(25), b"HTTP/1.1 100 Continue\r\n\r\n");
    client.send("hello");
    assert_eq!(body_of(&bodies).unwrap(), b"hello");
    let out = String::from_utf8(client.rest()).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
}

/// RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored — no
/// interim response, and the body is read as it is.
#[test]
fn expect_continue_but_http_10_is_ignored() {
    let (addr, bodies) = serve(|s| s, || ());
    let mut client = Client::connect(addr);
    client.send(
        "POST /foo HTTP/1.0\r\nHost: example.domain\r\nExpect: 100-Continue\r\n\
         Content-Length: 5\r\nConnection: Close\r\n\r\nhello",
    );
    assert_eq!(body_of(&bodies).unwrap(), b"hello");
    let out = String::from_utf8(client.rest()).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\n"),
        "no 100 first: {out:?}"
    );
    assert!(!out.contains("100 Continue"), "{out:?}");
}

#[test]
fn expect_continue_but_no_body_is_ignored() {
    let (addr, bodies) = serve(|s| s, || ());
    let out = exchange(
        addr,
        "POST /foo HTTP/1.1\r\nHost: example.domain\r\nExpect: 100-continue\r\n\
         Connection: Close\r\n\r\n",
    );
    assert_eq!(body_of(&bodies).unwrap(), b"");
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\n"),
        "no 100 first: {out:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

#[test]
fn header_name_too_long() {
    let (addr, _) = serve(|s| s, || ());
    let mut request = b"GET / HTTP/1.1\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'x', 64 * 1024));
    request.extend_from_slice(b": foo\r\n\r\n");
    let mut client = Client::connect(addr);
    // The server may answer and close before it has read everything.
    let _ = client.stream.write_all(&request);
    let head = client.head();
    assert!(
        head.starts_with("http/1.1 431 request header fields too large\r\n"),
        "{head:?}"
    );
}

/// hyper's `max_buf_size` test: a request line that never ends, longer than the limit. hyper
/// answers 431 (its read buffer is full); we know by then that the target alone is longer than
/// `max_uri_bytes` (8 KiB by default), so the answer is the more precise 414.
#[test]
fn max_buf_size() {
    let (addr, _) = serve(|s| s.max_header_bytes(16_000), || ());
    let mut client = Client::connect(addr);
    client.send("POST /");
    let _ = client.stream.write_all(&[b'a'; 16_000]);
    let head = client.head();
    assert!(head.starts_with("http/1.1 414 "), "{head:?}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head:?}");
}

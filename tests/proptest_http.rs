//! Property tests of the HTTP/1.1 wire format, on the real parsers (`untangle::http::__fuzz`)
//! and on a live server:
//! - any byte sequence gets a valid response or a close, never a panic or a hang;
//! - a valid request split at any byte boundary, across any number of reads, parses
//!   identically to the request received in one piece;
//! - chunked encoding and decoding round-trip, whatever the chunks and the read sizes.
//!
//! Case counts are kept modest so CI stays fast.

mod common;

use std::io::{Read, Write};
use std::sync::OnceLock;

use common::{exchange_raw, parse_responses, serve_in_thread, HANG_GUARD};
use proptest::prelude::*;
use untangle::http::__fuzz::{decode_chunked, encode_chunked, server_parse, ServerEvent};
use untangle::http::{Body, Request, Response};

const LIMITS: (usize, usize, usize) = (64 * 1024, 100, 8 * 1024);

/// One echo server for the whole binary: answers with `METHOD TARGET` and the body.
fn server() -> std::net::SocketAddr {
    static ADDR: OnceLock<std::net::SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        serve_in_thread(
            |s| s.header_read_timeout(std::time::Duration::from_secs(5)),
            |req: Request<Body>| async move {
                let line = format!("{} {}\n", req.method(), req.uri());
                match req.into_body().bytes().await {
                    Ok(body) => {
                        let mut out = line.into_bytes();
                        out.extend_from_slice(&body);
                        Response::new(Body::from(out))
                    }
                    Err(err) => {
                        let mut r = Response::new(Body::from(err.to_string()));
                        *r.status_mut() = untangle::http::StatusCode::BAD_REQUEST;
                        r
                    }
                }
            },
        )
    })
}

/// A valid request: method, target, extra headers, body and whether it is sent chunked
/// (in these chunks) or with Content-Length.
#[derive(Debug, Clone)]
struct ValidRequest {
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    chunks: Option<Vec<Vec<u8>>>,
    body: Vec<u8>,
}

impl ValidRequest {
    fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: example.test\r\n",
            self.method, self.target
        )
        .into_bytes();
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        match &self.chunks {
            Some(chunks) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                let slices: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
                out.extend_from_slice(&encode_chunked(&slices));
            }
            None => {
                out.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes(),
                );
                out.extend_from_slice(&self.body);
            }
        }
        out
    }
}

fn valid_request() -> impl Strategy<Value = ValidRequest> {
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
    let target = "/[a-z0-9._~-]{0,12}(/[a-z0-9]{1,6}){0,3}(\\?[a-z0-9=&]{0,12})?";
    let header = ("x-[a-z]{1,10}", "[ -~]{0,20}")
        .prop_map(|(n, v): (String, String)| (n, v.trim().to_string()));
    let chunks = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..6);
    (
        method,
        target,
        prop::collection::vec(header, 0..6),
        chunks,
        any::<bool>(),
    )
        .prop_map(|(method, target, headers, chunks, chunked)| {
            let body: Vec<u8> = chunks.concat();
            ValidRequest {
                method,
                target,
                headers,
                chunks: chunked.then_some(chunks),
                body,
            }
        })
}

/// Bytes that look like requests often enough to reach deep parser states: a valid request
/// with random bytes spliced in, or raw bytes.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (
            valid_request(),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
        )
            .prop_map(|(req, edits)| {
                let mut bytes = req.encode();
                for (at, byte) in edits {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                bytes
            }),
        prop::collection::vec(
            prop::sample::select(vec![
                &b"GET / HTTP/1.1\r\n"[..],
                b"Host: a\r\n",
                b"Content-Length: 3\r\n",
                b"Transfer-Encoding: chunked\r\n",
                b"\r\n",
                b"\n",
                b"\r",
                b" ",
                b"0\r\n",
                b"5\r\nhello\r\n",
                b"abc",
                b":",
                b"\0",
            ]),
            0..20
        )
        .prop_map(|parts| parts.concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The server answers any bytes with valid responses (or just closes): never a panic, a
    /// hang or a malformed response, and it keeps serving afterwards.
    #[test]
    fn any_bytes_get_valid_responses_or_a_close(bytes in hostile_bytes()) {
        // The parser itself must not panic on them, received whole or byte by byte.
        let whole = server_parse(&bytes, &[], LIMITS);
        let splits: Vec<usize> = (1..bytes.len()).collect();
        let _ = server_parse(&bytes, &splits, LIMITS);
        let responses = parse_responses(&exchange_raw(server(), &bytes));
        for r in &responses {
            prop_assert!((200..600).contains(&r.status), "status {}", r.status);
        }
        let accepted = whole.iter().filter(|e| matches!(e, ServerEvent::Request { .. })).count();
        prop_assert!(responses.len() <= accepted + 1, "{} responses for {whole:?}", responses.len());
        let alive = parse_responses(&exchange_raw(server(), b"GET /alive HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
        prop_assert_eq!(alive.len(), 1);
        prop_assert_eq!(&alive[0].body, b"GET /alive\n");
    }

    /// Split at any set of byte boundaries, a valid request parses exactly as it does in one
    /// piece (head, headers and decoded body).
    #[test]
    fn valid_request_split_anywhere_parses_identically(
        req in valid_request(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let bytes = req.encode();
        let whole = server_parse(&bytes, &[], LIMITS);
        match whole.as_slice() {
            [ServerEvent::Request { method, body, .. }] => {
                prop_assert_eq!(method.as_str(), req.method);
                prop_assert_eq!(body, &req.body);
            }
            other => prop_assert!(false, "valid request parsed as {:?}", other),
        }
        let splits: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len())).collect();
        prop_assert_eq!(&server_parse(&bytes, &splits, LIMITS), &whole);
        // Every single boundary, and every boundary at once (one byte per read).
        for i in 1..bytes.len() {
            prop_assert_eq!(&server_parse(&bytes, &[i], LIMITS), &whole, "split at {}", i);
        }
        let every: Vec<usize> = (1..bytes.len()).collect();
        prop_assert_eq!(&server_parse(&bytes, &every, LIMITS), &whole);
    }

    /// Chunked encode then decode gives the original bytes, whatever the chunks and the sizes
    /// of the reads the encoded body arrives in.
    #[test]
    fn chunked_encode_decode_round_trips(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..10),
        step in 0usize..64,
    ) {
        let slices: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let encoded = encode_chunked(&slices);
        prop_assert_eq!(decode_chunked(&encoded, step), Ok(chunks.concat()));
        // Cut anywhere before the end, the body is incomplete: never a shorter success.
        if encoded.len() > 1 {
            let cut = encoded.len() / 2;
            prop_assert!(decode_chunked(&encoded[..cut], step).is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Over a real socket, one write per piece (the server sees many reads), the server
    /// answers exactly as it does to the request in one write.
    #[test]
    fn valid_request_over_many_writes_gets_the_same_answer(
        req in valid_request(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 1..40),
    ) {
        let bytes = req.encode();
        let once = parse_responses(&exchange_raw(server(), &bytes));
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len())).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        points.dedup();
        let mut stream = std::net::TcpStream::connect(server()).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        for w in points.windows(2) {
            stream.write_all(&bytes[w[0]..w[1]]).unwrap();
        }
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let pieces = parse_responses(&raw);
        prop_assert_eq!(pieces.len(), 1);
        prop_assert_eq!(&pieces[0].body, &once[0].body);
        let mut want = format!("{} {}\n", req.method, req.target).into_bytes();
        want.extend_from_slice(&req.body);
        prop_assert_eq!(&pieces[0].body, &want);
    }

    /// A chunked body streamed by our client reaches our server intact (encoder and decoder
    /// of the two sides agree).
    #[test]
    fn chunked_body_round_trips_through_client_and_server(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..2000), 0..8),
    ) {
        let expected = chunks.concat();
        let url = format!("http://{}/echo", server());
        let got = untangle::block_on(common::within(async move {
            let items: Vec<std::io::Result<bytes::Bytes>> =
                chunks.into_iter().map(|c| Ok(bytes::Bytes::from(c))).collect();
            let request = Request::post(url)
                .body(Body::from_stream(futures_lite::stream::iter(items)))
                .unwrap();
            let client = untangle::http::Client::new();
            let response = client.send(request).await.unwrap();
            response.into_body().bytes().await.unwrap()
        }));
        let mut want = b"POST /echo\n".to_vec();
        want.extend_from_slice(&expected);
        prop_assert_eq!(got.as_ref(), want.as_slice());
    }
}

/// Regression (found by `fuzz/request_head`): a request line whose *method* is long was 414
/// when it arrived in pieces (the partial-line check counted the whole line) but accepted in
/// one piece. Only the target counts now, in both cases. (The fuzzer's target was `a:443`,
/// authority-form, since rejected outside CONNECT; `/a:443` keeps the lengths.)
#[test]
fn request_line_limit_does_not_depend_on_read_boundaries() {
    let input = b"_OSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSNNECT /a:443 HTTP/1.1\r\nHost: a:440\r\n\r\n";
    let limits = (1024, 100, 8);
    let whole = server_parse(input, &[], limits);
    assert!(
        matches!(whole.as_slice(), [ServerEvent::Request { .. }]),
        "{whole:?}"
    );
    let splits: Vec<usize> = (2..input.len()).step_by(2).collect();
    assert_eq!(server_parse(input, &splits, limits), whole);
    // A target over the limit is 414 both ways.
    let long = b"GET /0123456789 HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(server_parse(long, &[], limits), [ServerEvent::Reject(414)]);
    assert_eq!(
        server_parse(long, &[12], limits),
        [ServerEvent::Reject(414)]
    );
}

/// Regression (found by `fuzz/request_head`, a fault of the fuzz target's invariant, not of
/// the server): a target over the limit is 414 as soon as it is seen in pieces; the same
/// bytes in one piece, whose head never ends, are merely incomplete. Neither is accepted.
#[test]
fn target_over_the_limit_is_never_accepted_however_it_arrives() {
    let input = b"P EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE/ HTTP/1.1\r\nHost: a\xa8\nCont";
    let limits = (1024, 100, 8);
    assert_eq!(server_parse(input, &[], limits), [ServerEvent::Incomplete]);
    let splits: Vec<usize> = (7..input.len()).step_by(7).collect();
    assert_eq!(
        server_parse(input, &splits, limits),
        [ServerEvent::Reject(414)]
    );
    // Completed, the head is 414 in one piece too.
    let mut whole = input[..input.len() - 4].to_vec();
    whole.extend_from_slice(b"\r\n");
    assert_eq!(
        server_parse(&whole, &[], limits),
        [ServerEvent::Reject(414)]
    );
}

//! Request smuggling: a table of framing attacks (CL.TE, TE.CL, TE.TE obfuscations, malformed
//! Content-Length, NUL and bare CR, hostile chunk sizes, extensions and line endings).
//!
//! Every case carries a second request, `GET /smuggled`, hidden where another parser might see
//! it as a request of its own: in the body as this server should frame it, or after a head it
//! should reject. Each case is either rejected (one error response, then the connection
//! closes) or framed unambiguously (the body echoed back exactly), and the handler never sees
//! `/smuggled` as a request.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use common::{exchange_raw, parse_responses, serve_in_thread};
use untangle::http::{Body, Request, Response, StatusCode};

/// The hidden request.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/// What a case must produce.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// One response with this status, then close.
    Rejected(u16),
    /// One 200 response per body, echoing exactly these request bodies, in order.
    Framed(&'static [&'static str]),
}

struct Server {
    addr: std::net::SocketAddr,
    smuggled: Arc<AtomicUsize>,
}

/// One server for the whole table: echoes the body of each request (`/ignore` leaves the
/// body unread), counts any request for `/smuggled`.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let smuggled = Arc::new(AtomicUsize::new(0));
        let seen = smuggled.clone();
        let addr = serve_in_thread(
            |s| s.header_read_timeout(std::time::Duration::from_secs(5)),
            move |req: Request<Body>| {
                let seen = seen.clone();
                async move {
                    match req.uri().path() {
                        "/smuggled" => {
                            seen.fetch_add(1, Ordering::SeqCst);
                            Response::new(Body::from("SMUGGLED"))
                        }
                        "/ignore" => Response::new(Body::from("ignored")),
                        _ => match req.into_body().bytes().await {
                            Ok(bytes) => Response::new(Body::from(bytes)),
                            Err(err) => {
                                let mut r = Response::new(Body::from(err.to_string()));
                                *r.status_mut() = StatusCode::BAD_REQUEST;
                                r
                            }
                        },
                    }
                }
            },
        );
        Server { addr, smuggled }
    })
}

fn check(name: &str, request: &[u8], expect: Expect) {
    let server = server();
    let raw = exchange_raw(server.addr, request);
    let responses = parse_responses(&raw);
    for r in &responses {
        assert_ne!(
            r.body, b"SMUGGLED",
            "{name}: the hidden request was answered"
        );
    }
    match expect {
        Expect::Rejected(status) => {
            assert_eq!(
                responses.len(),
                1,
                "{name}: want exactly one response, got {responses:?}"
            );
            assert_eq!(responses[0].status, status, "{name}: {responses:?}");
            assert_eq!(
                responses[0].header("connection"),
                Some("close"),
                "{name}: a rejection must close"
            );
        }
        Expect::Framed(bodies) => {
            let got: Vec<(u16, String)> = responses
                .iter()
                .map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned()))
                .collect();
            let want: Vec<(u16, String)> = bodies.iter().map(|b| (200, b.to_string())).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}

fn post(headers: &str, body: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: a\r\n{headers}\r\n{body}").into_bytes()
}

/// A chunked body whose single chunk is the hidden request.
fn chunked_smuggled() -> String {
    format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len())
}

fn cl(n: usize) -> String {
    format!("Content-Length: {n}\r\n")
}

/// The table. Bodies after a rejected head are whatever a confused parser would take as the
/// end of the first request followed by the hidden one.
fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::*;
    let s = SMUGGLED;
    let n = s.len();
    let mut v: Vec<(&'static str, Vec<u8>, Expect)> = vec![
        // --- CL.TE and TE.CL: both framings present.
        (
            "cl_te_both_present_is_rejected",
            post(
                "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
            Rejected(400),
        ),
        (
            "te_cl_both_present_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                &format!("{:x}\r\n{s}\r\n0\r\n\r\n", n),
            ),
            Rejected(400),
        ),
        (
            "cl_zero_with_te_is_rejected",
            post(
                "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
            Rejected(400),
        ),
        (
            "cl_with_obfuscated_te_is_rejected",
            post(
                &format!("{}Transfer-Encoding: xchunked\r\n", cl(5)),
                &format!("0\r\n\r\n{s}"),
            ),
            Rejected(400),
        ),
        // --- TE.TE: obfuscated Transfer-Encoding.
        (
            "te_xchunked_is_rejected",
            post("Transfer-Encoding: xchunked\r\n", &format!("0\r\n\r\n{s}")),
            Rejected(400),
        ),
        (
            "te_chunked_then_identity_is_rejected",
            post(
                "Transfer-Encoding: chunked, identity\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
            Rejected(400),
        ),
        (
            "te_identity_then_chunked_is_not_implemented",
            post(
                "Transfer-Encoding: identity, chunked\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
            Rejected(501),
        ),
        (
            "te_space_before_colon_is_rejected",
            post("Transfer-Encoding : chunked\r\n", &format!("0\r\n\r\n{s}")),
            Rejected(400),
        ),
        (
            "te_tab_before_colon_is_rejected",
            post("Transfer-Encoding\t: chunked\r\n", &format!("0\r\n\r\n{s}")),
            Rejected(400),
        ),
        (
            "te_in_two_fields_ending_unknown_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
            Rejected(400),
        ),
        (
            "te_chunked_in_two_fields_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
            Rejected(400),
        ),
        (
            "te_chunked_twice_comma_joined_is_rejected",
            post(
                "Transfer-Encoding: chunked, chunked\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
            Rejected(400),
        ),
        (
            "te_as_obs_fold_continuation_is_rejected",
            post(
                "X-Pad: a\r\n Transfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
            Rejected(400),
        ),
        (
            "te_value_obs_folded_is_rejected",
            post(
                "Transfer-Encoding:\r\n chunked\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
            Rejected(400),
        ),
        (
            "te_with_vertical_tab_is_rejected",
            post(
                "Transfer-Encoding: \x0bchunked\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
            Rejected(400),
        ),
        (
            "te_quoted_is_rejected",
            post(
                "Transfer-Encoding: \"chunked\"\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
            Rejected(400),
        ),
        (
            "te_with_parameter_is_rejected",
            post(
                "Transfer-Encoding: chunked;q=1\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
            Rejected(400),
        ),
        (
            "te_with_nul_is_rejected",
            post("Transfer-Encoding: chunked\0\r\n", &format!("0\r\n\r\n{s}")),
            Rejected(400),
        ),
        (
            "te_on_http10_is_rejected",
            format!(
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                chunked_smuggled()
            )
            .into_bytes(),
            Rejected(400),
        ),
        (
            "te_upper_case_is_framed_as_chunked",
            post("Transfer-Encoding: CHUNKED\r\n", &chunked_smuggled()),
            Framed(&[SMUGGLED]),
        ),
        (
            "te_with_trailing_space_is_framed_as_chunked",
            post("Transfer-Encoding: chunked \r\n", &chunked_smuggled()),
            Framed(&[SMUGGLED]),
        ),
        (
            "te_without_space_after_colon_is_framed_as_chunked",
            post("Transfer-Encoding:chunked\r\n", &chunked_smuggled()),
            Framed(&[SMUGGLED]),
        ),
        // --- Content-Length.
        (
            "duplicate_differing_cl_is_rejected",
            post(&format!("Content-Length: 0\r\n{}", cl(n)), s),
            Rejected(400),
        ),
        (
            "comma_joined_differing_cl_is_rejected",
            post(&format!("Content-Length: 0, {n}\r\n"), s),
            Rejected(400),
        ),
        (
            "duplicate_identical_cl_is_framed",
            post(&format!("{}{}", cl(n), cl(n)), s),
            Framed(&[SMUGGLED]),
        ),
        (
            "comma_joined_identical_cl_is_framed",
            post(&format!("Content-Length: {n}, {n}\r\n"), s),
            Framed(&[SMUGGLED]),
        ),
        (
            "cl_with_plus_sign_is_rejected",
            post(&format!("Content-Length: +{n}\r\n"), s),
            Rejected(400),
        ),
        (
            "cl_negative_is_rejected",
            post("Content-Length: -1\r\n", s),
            Rejected(400),
        ),
        (
            "cl_hex_is_rejected",
            post("Content-Length: 0x10\r\n", s),
            Rejected(400),
        ),
        (
            "cl_exponent_is_rejected",
            post("Content-Length: 1e1\r\n", s),
            Rejected(400),
        ),
        (
            "cl_empty_is_rejected",
            post("Content-Length: \r\n", s),
            Rejected(400),
        ),
        (
            "cl_with_inner_space_is_rejected",
            post("Content-Length: 1 0\r\n", s),
            Rejected(400),
        ),
        (
            "cl_overflowing_u64_is_rejected",
            post("Content-Length: 99999999999999999999999\r\n", s),
            Rejected(400),
        ),
        (
            "cl_space_before_colon_is_rejected",
            post("Content-Length : 0\r\n", s),
            Rejected(400),
        ),
        (
            "cl_with_leading_zeros_is_framed",
            post(&format!("Content-Length: 000{n}\r\n"), s),
            Framed(&[SMUGGLED]),
        ),
        (
            "cl_with_nul_is_rejected",
            post("Content-Length: 0\0\r\n", s),
            Rejected(400),
        ),
        // --- NUL and bare CR in the head.
        (
            "nul_in_header_value_is_rejected",
            post(&format!("X: a\0b\r\n{}", cl(0)), s),
            Rejected(400),
        ),
        (
            "bare_cr_in_header_value_is_rejected",
            post(&format!("X: a\rb\r\n{}", cl(0)), s),
            Rejected(400),
        ),
        (
            "bare_cr_as_line_end_is_rejected",
            post(&format!("X: a\r{}", cl(0)), s),
            Rejected(400),
        ),
        (
            "nul_in_request_target_is_rejected",
            format!("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n{s}").into_bytes(),
            Rejected(400),
        ),
        (
            "lf_only_head_is_framed_by_its_cl",
            format!("POST / HTTP/1.1\nHost: a\nContent-Length: {n}\n\n{s}").into_bytes(),
            Framed(&[SMUGGLED]),
        ),
        // --- Chunk sizes.
        (
            "chunk_size_overflowing_u64_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("10000000000000000\r\n{s}\r\n0\r\n\r\n"),
            ),
            Rejected(400),
        ),
        (
            "chunk_size_of_many_leading_zeros_is_framed",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("00000000000000000000{:x}\r\n{s}\r\n0\r\n\r\n", n),
            ),
            Framed(&[SMUGGLED]),
        ),
        (
            "chunk_size_negative_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("-1\r\n{s}\r\n0\r\n\r\n"),
            ),
            Rejected(400),
        ),
        (
            "chunk_size_with_plus_sign_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("+{:x}\r\n{s}\r\n0\r\n\r\n", n),
            ),
            Rejected(400),
        ),
        (
            "chunk_size_with_0x_prefix_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("0x{:x}\r\n{s}\r\n0\r\n\r\n", n),
            ),
            Rejected(400),
        ),
        (
            "chunk_size_with_leading_space_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!(" {:x}\r\n{s}\r\n0\r\n\r\n", n),
            ),
            Rejected(400),
        ),
        (
            "chunk_size_with_trailing_space_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("{:x} \r\n{s}\r\n0\r\n\r\n", n),
            ),
            Rejected(400),
        ),
        (
            "chunk_data_longer_than_its_size_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("1\r\n{s}\r\n0\r\n\r\n"),
            ),
            Rejected(400),
        ),
        (
            "huge_chunk_cut_by_close_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("ffffffffffffffff\r\n{s}"),
            ),
            Rejected(400),
        ),
        // --- Chunk extensions.
        (
            "chunk_extension_within_limit_is_framed",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("{:x};name=\"v a l\";x\r\n{s}\r\n0\r\n\r\n", n),
            ),
            Framed(&[SMUGGLED]),
        ),
        (
            "chunk_extension_past_the_line_limit_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("{:x};{}\r\n{s}\r\n0\r\n\r\n", n, "x".repeat(5000)),
            ),
            Rejected(400),
        ),
        (
            "chunk_extension_with_bare_cr_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("{:x};a\rb\r\n{s}\r\n0\r\n\r\n", n),
            ),
            Rejected(400),
        ),
        (
            "chunk_extension_with_nul_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("{:x};a\0\r\n{s}\r\n0\r\n\r\n", n),
            ),
            Rejected(400),
        ),
        // --- Line endings inside the chunked body.
        (
            "lf_only_chunk_size_line_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("{:x}\n{s}\r\n0\r\n\r\n", n),
            ),
            Rejected(400),
        ),
        (
            "lf_only_after_chunk_data_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("{:x}\r\n{s}\n0\r\n\r\n", n),
            ),
            Rejected(400),
        ),
        (
            "lf_only_last_chunk_line_is_rejected",
            post("Transfer-Encoding: chunked\r\n", &format!("0\n\r\n{s}")),
            Rejected(400),
        ),
        (
            "bare_cr_in_trailer_is_rejected",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("0\r\nX: a\rb\r\n\r\n{s}"),
            ),
            Rejected(400),
        ),
        (
            "trailer_with_content_length_is_dropped_and_framed",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("{:x}\r\n{s}\r\n0\r\nContent-Length: 5\r\n\r\n", n),
            ),
            Framed(&[SMUGGLED]),
        ),
        // --- Unread bodies are drained, never parsed as requests.
        (
            "ignored_cl_body_is_drained_not_parsed",
            format!("POST /ignore HTTP/1.1\r\nHost: a\r\n{}\r\n{s}", cl(n)).into_bytes(),
            Framed(&["ignored"]),
        ),
        (
            "ignored_chunked_body_is_drained_not_parsed",
            format!(
                "POST /ignore HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                chunked_smuggled()
            )
            .into_bytes(),
            Framed(&["ignored"]),
        ),
        (
            "get_with_cl_body_is_framed_by_it",
            format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n{s}", cl(n)).into_bytes(),
            Framed(&[SMUGGLED]),
        ),
        (
            "request_after_connection_close_is_not_processed",
            format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n{s}").into_bytes(),
            Framed(&[""]),
        ),
        (
            "http10_request_without_keep_alive_ends_the_connection",
            format!("GET / HTTP/1.0\r\n\r\n{s}").into_bytes(),
            Framed(&[""]),
        ),
        (
            "expect_continue_body_is_framed_by_its_cl",
            post(&format!("Expect: 100-continue\r\n{}", cl(n)), s),
            Framed(&[SMUGGLED]),
        ),
        (
            "repeated_host_is_rejected",
            format!("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n{s}").into_bytes(),
            Rejected(400),
        ),
    ];
    // A well-framed request followed by a pipelined one is answered twice: the table's hidden
    // request is only ever hidden, never a legitimate pipelined request.
    v.push((
        "pipelined_pair_after_framed_body_is_answered_in_order",
        format!(
            "{}POST / HTTP/1.1\r\nHost: a\r\n{}\r\nxyz",
            String::from_utf8(post(&cl(3), "abc")).unwrap(),
            cl(3)
        )
        .into_bytes(),
        Framed(&["abc", "xyz"]),
    ));
    v
}

#[test]
fn smuggling_table_has_at_least_forty_cases() {
    assert!(cases().len() >= 40, "only {} cases", cases().len());
}

#[test]
fn every_smuggling_case_is_rejected_or_framed_and_never_answers_the_hidden_request() {
    let _guard = common::watchdog("smuggling table");
    let mut failures = Vec::new();
    for (name, request, expect) in cases() {
        let result = std::panic::catch_unwind(|| check(name, &request, expect));
        if let Err(payload) = result {
            failures.push(format!("{name}: {}", common::panic_message(&*payload)));
        }
    }
    assert_eq!(
        server().smuggled.load(Ordering::SeqCst),
        0,
        "the hidden request reached the handler"
    );
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}

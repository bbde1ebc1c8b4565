//! Differential test of the server's HTTP/1.1 parsing and body framing against two independent
//! strict parsers: Python's h11 (`tests/support/h11_oracle.py`, pinned to 0.16.0 by `.ci/run`)
//! and Node's llhttp (`tests/support/llhttp_oracle.js`, Node's own server with
//! `insecureHTTPParser` off).
//!
//! A corpus of raw request streams (generated: methods × versions × targets, header field and
//! framing variants; hand-picked: smuggling and chunked hostile inputs, pipelines) goes through
//! our server, whose handler echoes each request in a canonical form, and through each oracle,
//! which prints the same form. Per case the outcome is the list of requests seen (method,
//! target, version, header fields, whole body) and how the stream ended: `clean`, `reject`
//! (an error answer, then close) or `incomplete` (the peer closed inside a body).
//!
//! Where we differ from both oracles the test fails: that is our bug. Where the oracles differ
//! from each other (or both differ from us on a point RFC 9110/9112 leaves open), the case must
//! be in [`expected`], which states and asserts our choice and why; any other difference from
//! either oracle fails the test too.
//!
//! With `CI` set, a missing `python3` + h11 or `node` fails the test; elsewhere it skips.

mod common;

use common::oracle::hex;

use std::collections::BTreeMap;

use untangle::http::{Body, Method, Request, Response, StatusCode};

/// A named raw request stream.
struct Case {
    name: String,
    bytes: Vec<u8>,
}

fn case(cases: &mut Vec<Case>, name: impl Into<String>, bytes: impl AsRef<[u8]>) {
    let name = name.into();
    assert!(
        cases.iter().all(|c| c.name != name),
        "duplicate case name {name}"
    );
    cases.push(Case {
        name,
        bytes: bytes.as_ref().to_vec(),
    });
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The corpus: generated families first, then hand-picked hostile cases.
fn corpus() -> Vec<Case> {
    let mut c = Vec::new();

    // Methods × versions, origin-form target.
    let methods: &[&[u8]] = &[
        b"GET",
        b"HEAD",
        b"POST",
        b"PUT",
        b"DELETE",
        b"PATCH",
        b"OPTIONS",
        b"TRACE",
        b"FOO",
        b"get",
        b"M-SEARCH",
        b"G@T",
        b"GE T",
        b"G\x80T",
        b"",
        b"G:T",
        b"G\"T",
    ];
    let versions: &[&[u8]] = &[
        b"HTTP/1.1",
        b"HTTP/1.0",
        b"HTTP/1.2",
        b"HTTP/1.9",
        b"HTTP/2.0",
        b"HTTP/3.0",
        b"HTTP/0.9",
        b"http/1.1",
        b"HTTP/1.10",
        b"HTTP/11",
        b"HTTP/1.",
        b"HTTP/1.1 ",
        b"HTTP/ 1.1",
        b"HTTPS/1.1",
        b"",
    ];
    for (mi, m) in methods.iter().enumerate() {
        for (vi, v) in versions.iter().enumerate() {
            let sp: &[u8] = if v.is_empty() { b"" } else { b" " };
            case(
                &mut c,
                format!("method{mi}-version{vi}"),
                cat(&[m, b" /m", sp, v, b"\r\nHost: x\r\n\r\n"]),
            );
        }
    }

    // Request targets, with GET, OPTIONS and CONNECT.
    let long_target = format!("/{}", "a".repeat(7000));
    let targets: Vec<&[u8]> = vec![
        b"/",
        b"/a/b?c=d&e",
        b"/%20",
        b"/%zz",
        b"/%",
        b"/a%2Fb",
        b"/a#frag",
        b"/a?#",
        b"/~!$&'()*+,;=:@",
        b"/a\"b",
        b"/a<b>",
        b"/a{b}",
        b"/a|b",
        b"/a\\b",
        b"/a^b",
        b"/a`b",
        b"/\x7f",
        b"/\x80",
        b"/\xff",
        b"/a\tb",
        b"/a\x00b",
        b"/a\x01b",
        b"*",
        b"**",
        b"http://x/p",
        b"http://x:8080/p?q",
        b"https://x/p",
        b"http://x",
        b"http://u@x/p",
        b"x:80",
        b"x",
        b"//x/p",
        b"?q",
        b"a/b",
        long_target.as_bytes(),
    ];
    for (ti, t) in targets.iter().enumerate() {
        for m in [&b"GET"[..], b"OPTIONS", b"CONNECT"] {
            case(
                &mut c,
                format!("target{ti}-{}", String::from_utf8_lossy(m)),
                cat(&[m, b" ", t, b" HTTP/1.1\r\nHost: x\r\n\r\n"]),
            );
        }
    }

    // Header fields in a bodiless GET.
    let long_value = format!("X-Long: {}\r\n", "v".repeat(8000));
    let fields: Vec<&[u8]> = vec![
        b"X-A: b\r\n",
        b"X-A:b\r\n",
        b"X-A:  b  \r\n",
        b"X-A:\tb\t\r\n",
        b"X-A:\r\n",
        b"X-A: \r\n",
        b"X-A : b\r\n",
        b"X-A\t: b\r\n",
        b": b\r\n",
        b"X-A b\r\n",
        b"X A: b\r\n",
        b"X@A: b\r\n",
        b"X\x80A: b\r\n",
        b"X-A: b\r\n c\r\n",
        b"X-A: b\r\n\tc\r\n",
        b" X-A: b\r\n",
        b"X-A: b\rc\r\n",
        b"X-A: b\x00c\r\n",
        b"X-A: b\x01c\r\n",
        b"X-A: b\x7fc\r\n",
        b"X-A: b\x80c\r\n",
        b"X-A: \xff\xfe\r\n",
        b"X-A: caf\xc3\xa9\r\n",
        b"X-A: a\r\nX-A: b\r\n",
        b"X-A: a\r\nX-B: 1\r\nX-A: b\r\n",
        b"x-a: lower\r\nX-A: upper\r\n",
        b"X-A: b\n",
        b"X-A: b\r\r\n",
        b"X-A: \"quoted, value\"\r\n",
        b"Connection: close\r\n",
        b"Connection: keep-alive\r\n",
        b"Connection: Close\r\n",
        b"Connection: x, close\r\n",
        b"Expect: 100-continue\r\n",
        b"Upgrade: h2c\r\n",
        long_value.as_bytes(),
    ];
    for (fi, f) in fields.iter().enumerate() {
        case(
            &mut c,
            format!("field{fi}"),
            cat(&[b"GET / HTTP/1.1\r\nHost: x\r\n", f, b"\r\n"]),
        );
        case(
            &mut c,
            format!("field{fi}-first"),
            cat(&[b"GET / HTTP/1.1\r\n", f, b"Host: x\r\n\r\n"]),
        );
    }

    // Host.
    let hosts: &[(&str, &[u8])] = &[
        ("missing-1.1", b"GET / HTTP/1.1\r\n\r\n"),
        ("missing-1.0", b"GET / HTTP/1.0\r\n\r\n"),
        (
            "twice-same",
            b"GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n",
        ),
        (
            "twice-differ",
            b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        ),
        ("twice-1.0", b"GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n"),
        ("empty", b"GET / HTTP/1.1\r\nHost:\r\n\r\n"),
        ("port", b"GET / HTTP/1.1\r\nHost: x:8080\r\n\r\n"),
        ("ipv6", b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"),
        ("userinfo", b"GET / HTTP/1.1\r\nHost: u@x\r\n\r\n"),
        ("space", b"GET / HTTP/1.1\r\nHost: x y\r\n\r\n"),
        ("bad-port", b"GET / HTTP/1.1\r\nHost: x:port\r\n\r\n"),
        ("slash", b"GET / HTTP/1.1\r\nHost: x/y\r\n\r\n"),
        (
            "absolute-match",
            b"GET http://x/p HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        (
            "absolute-mismatch",
            b"GET http://x/p HTTP/1.1\r\nHost: y\r\n\r\n",
        ),
        ("absolute-no-host", b"GET http://x/p HTTP/1.1\r\n\r\n"),
        ("comma", b"GET / HTTP/1.1\r\nHost: x, y\r\n\r\n"),
    ];
    for (name, bytes) in hosts {
        case(&mut c, format!("host-{name}"), bytes);
    }

    // Content-Length values, each followed by a 5-byte body and a second request.
    let lengths: &[&[u8]] = &[
        b"5",
        b"05",
        b"00005",
        b"+5",
        b"-5",
        b" 5 ",
        b"5,5",
        b"5, 5",
        b"5,6",
        b"5,",
        b",5",
        b"",
        b"0x5",
        b"5.0",
        b"5 5",
        b"5\t",
        b"1e1",
        b"99999999999999999999999",
        b"18446744073709551615",
        b"\xd9\xa5",
    ];
    for (li, l) in lengths.iter().enumerate() {
        case(
            &mut c,
            format!("content-length{li}"),
            cat(&[
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ",
                l,
                b"\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
            ]),
        );
    }
    let cl_pairs: &[(&str, &[u8])] = &[
        ("same", b"Content-Length: 5\r\nContent-Length: 5\r\n"),
        ("differ", b"Content-Length: 5\r\nContent-Length: 6\r\n"),
        ("zero-five", b"Content-Length: 0\r\nContent-Length: 5\r\n"),
    ];
    for (name, f) in cl_pairs {
        case(
            &mut c,
            format!("content-length-twice-{name}"),
            cat(&[
                b"POST / HTTP/1.1\r\nHost: x\r\n",
                f,
                b"\r\nhelloGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
            ]),
        );
    }

    // Transfer-Encoding variants, each with one chunked body that is also a valid-looking
    // second request if the framing were read differently.
    let chunked_body: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";
    let codings: &[&[u8]] = &[
        b"chunked",
        b"Chunked",
        b"CHUNKED",
        b" chunked ",
        b"gzip, chunked",
        b"chunked, gzip",
        b"chunked, chunked",
        b"chunked,",
        b", chunked",
        b"identity",
        b"identity, chunked",
        b"gzip",
        b"xchunked",
        b"chunked;q=1",
        b"\"chunked\"",
        b"chunk",
        b"",
    ];
    for (ci, coding) in codings.iter().enumerate() {
        for (vi, version) in [&b"HTTP/1.1"[..], b"HTTP/1.0"].iter().enumerate() {
            case(
                &mut c,
                format!("te{ci}-v{vi}"),
                cat(&[
                    b"POST / ",
                    version,
                    b"\r\nHost: x\r\nTransfer-Encoding: ",
                    coding,
                    b"\r\n\r\n",
                    chunked_body,
                ]),
            );
        }
    }
    let te_lines: &[(&str, &[u8])] = &[
        (
            "twice",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        ),
        (
            "gzip-then-chunked",
            b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        ),
        (
            "chunked-then-gzip",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
        ),
        (
            "with-content-length",
            b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        ),
        (
            "content-length-first",
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        ),
        (
            "with-content-length-zero",
            b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
        ),
        ("space-before-colon", b"Transfer-Encoding : chunked\r\n"),
        ("obs-fold", b"Transfer-Encoding:\r\n chunked\r\n"),
        ("vertical-tab", b"Transfer-Encoding: \x0bchunked\r\n"),
        ("underscore-name", b"Transfer_Encoding: chunked\r\n"),
    ];
    for (name, f) in te_lines {
        case(
            &mut c,
            format!("te-lines-{name}"),
            cat(&[b"POST / HTTP/1.1\r\nHost: x\r\n", f, b"\r\n", chunked_body]),
        );
    }

    // Chunked bodies.
    let chunks: &[(&str, &[u8])] = &[
        ("plain", b"5\r\nhello\r\n0\r\n\r\n"),
        ("two-chunks", b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"),
        ("upper-hex", b"A\r\n0123456789\r\n0\r\n\r\n"),
        ("lower-hex", b"a\r\n0123456789\r\n0\r\n\r\n"),
        ("leading-zeros", b"0005\r\nhello\r\n0000\r\n\r\n"),
        (
            "many-leading-zeros",
            b"00000000000000000005\r\nhello\r\n0\r\n\r\n",
        ),
        ("overflow", b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
        ("overflow-max", b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        ("ext", b"5;a=b\r\nhello\r\n0\r\n\r\n"),
        ("ext-bare", b"5;a\r\nhello\r\n0\r\n\r\n"),
        ("ext-quoted", b"5;a=\"b;c\\\"d\"\r\nhello\r\n0\r\n\r\n"),
        ("ext-space", b"5 ;a=b\r\nhello\r\n0\r\n\r\n"),
        ("ext-on-last", b"5\r\nhello\r\n0;a=b\r\n\r\n"),
        ("ext-bare-cr", b"5;a=b\rc\r\nhello\r\n0\r\n\r\n"),
        ("ext-bare-lf", b"5;a=b\nhello\r\n0\r\n\r\n"),
        ("size-space", b"5 \r\nhello\r\n0\r\n\r\n"),
        ("size-tab", b"5\t\r\nhello\r\n0\r\n\r\n"),
        ("size-lead-space", b" 5\r\nhello\r\n0\r\n\r\n"),
        ("size-sign", b"+5\r\nhello\r\n0\r\n\r\n"),
        ("size-negative", b"-5\r\nhello\r\n0\r\n\r\n"),
        ("size-0x", b"0x5\r\nhello\r\n0\r\n\r\n"),
        ("size-not-hex", b"g\r\nhello\r\n0\r\n\r\n"),
        ("size-empty", b"\r\nhello\r\n0\r\n\r\n"),
        ("data-no-crlf", b"5\r\nhello0\r\n\r\n"),
        ("data-too-long", b"5\r\nhelloXX\r\n0\r\n\r\n"),
        ("data-bare-lf", b"5\r\nhello\n0\r\n\r\n"),
        ("data-bare-cr", b"5\r\nhello\r0\r\n\r\n"),
        ("size-bare-lf", b"5\nhello\r\n0\r\n\r\n"),
        ("all-bare-lf", b"5\nhello\n0\n\n"),
        ("last-bare-lf", b"5\r\nhello\r\n0\n\n"),
        ("trailer", b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
        (
            "trailers-two",
            b"5\r\nhello\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n",
        ),
        ("trailer-no-colon", b"5\r\nhello\r\n0\r\nX-T\r\n\r\n"),
        ("trailer-space-colon", b"5\r\nhello\r\n0\r\nX-T : 1\r\n\r\n"),
        ("trailer-fold", b"5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n"),
        ("trailer-bare-lf", b"5\r\nhello\r\n0\r\nX-T: 1\n\r\n"),
        ("trailer-nul", b"5\r\nhello\r\n0\r\nX-T: a\x00b\r\n\r\n"),
        ("last-no-crlf", b"5\r\nhello\r\n0\r\n"),
        ("last-no-line-end", b"5\r\nhello\r\n0"),
        ("truncated-data", b"5\r\nhel"),
        ("no-last-chunk", b"5\r\nhello\r\n"),
        ("empty-body", b"0\r\n\r\n"),
        ("cr-after-last", b"0\r\n\r\r\n"),
    ];
    for (name, body) in chunks {
        case(
            &mut c,
            format!("chunked-{name}"),
            cat(&[
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                body,
            ]),
        );
    }

    // Line endings of the head.
    let heads: &[(&str, &[u8])] = &[
        ("bare-lf", b"GET / HTTP/1.1\nHost: x\n\n"),
        ("bare-lf-end", b"GET / HTTP/1.1\r\nHost: x\r\n\n"),
        ("bare-lf-request-line", b"GET / HTTP/1.1\nHost: x\r\n\r\n"),
        ("bare-cr", b"GET / HTTP/1.1\rHost: x\r\r"),
        (
            "bare-cr-field",
            b"GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n",
        ),
        ("cr-cr-lf", b"GET / HTTP/1.1\r\r\nHost: x\r\n\r\n"),
        ("leading-crlf", b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        (
            "leading-crlf-twice",
            b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        ("leading-lf", b"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("leading-space", b" GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("double-space", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n"),
        (
            "double-space-version",
            b"GET /  HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        ("tab-separator", b"GET\t/\tHTTP/1.1\r\nHost: x\r\n\r\n"),
        ("trailing-space-line", b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n"),
        ("nul-request-line", b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("only-crlf", b"\r\n\r\n"),
        ("garbage", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"),
        ("incomplete-head", b"GET / HTTP/1.1\r\nHost: x\r\n"),
        ("incomplete-line", b"GET / HTT"),
    ];
    for (name, bytes) in heads {
        case(&mut c, format!("head-{name}"), bytes);
    }

    // Pipelines.
    let get: &[u8] = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n";
    let pipelines: &[(&str, Vec<u8>)] = &[
        ("two-gets", cat(&[get, b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"])),
        (
            "get-post-get",
            cat(&[
                get,
                b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
                b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n",
            ]),
        ),
        (
            "chunked-then-get",
            cat(&[
                b"POST /1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
            ]),
        ),
        (
            "chunked-trailers-then-get",
            cat(&[
                b"POST /1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n\r\n",
                b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
            ]),
        ),
        (
            "after-close",
            cat(&[
                b"GET /1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
            ]),
        ),
        (
            "http10-then-get",
            cat(&[b"GET /1 HTTP/1.0\r\n\r\n", b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"]),
        ),
        (
            "http10-keep-alive-then-get",
            cat(&[
                b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
            ]),
        ),
        ("good-then-bad", cat(&[get, b"GET /2 HTTP/1.1\r\n\r\n"])),
        (
            "crlf-between",
            cat(&[get, b"\r\n", b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"]),
        ),
        (
            "smuggle-cl-te",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "smuggle-te-obfuscated",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: x\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "smuggle-chunk-overflow",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "get-with-length-body",
            b"GET /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "ten-gets",
            (0..10)
                .flat_map(|i| format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes())
                .collect(),
        ),
    ];
    for (name, bytes) in pipelines {
        case(&mut c, format!("pipeline-{name}"), bytes);
    }

    // Overlong: beyond every parser's head limit (ours is 64 KiB; h11's 16 KiB; Node's 16 KiB).
    case(
        &mut c,
        "overlong-field",
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-A: {}\r\n\r\n",
            "v".repeat(70_000)
        ),
    );
    case(
        &mut c,
        "overlong-target",
        format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)),
    );
    case(
        &mut c,
        "long-chunk-extension",
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;{}\r\nhello\r\n0\r\n\r\n",
            "e".repeat(5000)
        ),
    );
    case(
        &mut c,
        "many-leading-crlf",
        format!("{}GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\r\n".repeat(1000)),
    );
    case(
        &mut c,
        "length-body-missing",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
    );
    case(
        &mut c,
        "garbage-after-chunked",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nxyz\r\n\r\n",
    );
    case(
        &mut c,
        "many-fields",
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
            (0..200)
                .map(|i| format!("X-{i}: v\r\n"))
                .collect::<String>()
        ),
    );
    c
}

const MINOR: &str = "HTTP/1.x above 1.1 is served as HTTP/1.1 (RFC 9110 §2.5: a higher minor \
                     version is compatible); h11 agrees, llhttp knows only 1.0 and 1.1";
const MAJOR: &str = "a major version we do not speak is 505 (RFC 9110 §15.6.6); llhttp takes \
                     HTTP/2.0 in an HTTP/1 request line, h11 any digit.digit";
const NINE: &str = "HTTP/0.9 (a version in an HTTP/1 request line, or no version at all) is not \
                    served; llhttp takes both, h11 the first";
const METHOD: &str = "methods are case-sensitive tokens and extensible (RFC 9110 §9.1): any token \
                      is passed to the handler, as h11 does; llhttp knows a fixed list";
const CONNECT_FORM: &str = "CONNECT takes only authority-form (RFC 9112 §3.2.3): anything else is \
                            400; both oracles pass any target";
const URI_CHARS: &str = "characters outside RFC 3986 (`<`, `>`, a backtick) in a target are 400: \
                         http::Uri (as in hyper) refuses them; h11 and llhttp take any VCHAR";
const FRAGMENT: &str = "a target has no fragment (RFC 9112 §3.2); http::Uri would drop it \
                        silently, so `#` is 400 rather than a target other than the one sent";
const FORM: &str = "asterisk-form only with OPTIONS, authority-form only with CONNECT, else \
                    origin-form or absolute-form (RFC 9112 §3.2): 400; h11 takes any target";
const ABSOLUTE: &str = "absolute-form without a path reaches the handler as `http://x/` (its \
                        empty path means `/`, RFC 9110 §4.2.3)";
const HOST: &str = "a Host with an invalid value, or more than one Host, is 400 (RFC 9112 §3.2: \
                    MUST); h11 and llhttp check neither the value nor (llhttp) the count";
const LENGTH_LIST: &str =
    "a Content-Length list of equal values, and trailing OWS, is that length \
                           (RFC 9110 §8.6 allows it, §5.5 trims OWS), as h11; llhttp rejects";
const TE_10: &str = "Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112 §6.1): 400; both \
                     oracles decode it as chunked";
const TE_UNKNOWN: &str = "a transfer coding other than chunked is 501 (RFC 9112 §6.1), as h11; \
                          llhttp hands gzip-then-chunked on without decoding gzip";
const TE_EMPTY_ELEMENT: &str = "empty list elements are ignored (RFC 9110 §5.6.1: MUST), so \
                                `chunked,` is chunked; h11 rejects both, llhttp the trailing one";
const TE_AND_CL: &str = "Transfer-Encoding with Content-Length is 400 (RFC 9112 §6.3: ought to be \
                         an error; a smuggling vector), as llhttp; h11 lets chunked win";
const OBS_FOLD: &str = "obs-fold is 400 (RFC 9112 §5.2 allows 400 or unfolding), as llhttp; h11 \
                        unfolds";
const CONTROL: &str = "control characters in a field value are 400 (RFC 9110 §5.5), as llhttp; \
                       h11 takes them";
const BARE_LF: &str = "a bare LF ends a head line (RFC 9112 §2.2: MAY), as h11; llhttp rejects";
const WHITESPACE: &str = "a request line split by more than one space is 400 (RFC 9112 §3: MAY \
                          split on whitespace runs), as h11; llhttp takes it";
const LEADING_CRLF: &str = "empty lines before a request line are skipped (RFC 9112 §2.2: \
                            SHOULD), as llhttp; h11 rejects them";
const BARE_CR: &str = "a bare CR in a head is 400 (RFC 9112 §2.2: MUST reject or replace), as \
                       llhttp; h11 waits for more";
const CLOSE: &str = "nothing is read after a response that closes (Connection: close, HTTP/1.0 \
                     without keep-alive), as h11; llhttp also answers the next request 400";
const KEEP_10: &str = "HTTP/1.0 with `Connection: keep-alive` keeps the connection (RFC 9112 \
                       §9.3, compatibility), as llhttp; h11 closes";
const CHUNK_BWS: &str = "BWS before a chunk extension's `;` is allowed (RFC 9112 §7.1.1 grammar); \
                         both oracles reject it";
const CHUNK_LINE: &str = "a chunk-size line with whitespace but no extension, a bare CR or a \
                          bare LF, or a trailer that is folded or ends in a bare LF, is 400, as \
                          llhttp; h11 takes them (or waits for more)";
const CHUNK_OVERFLOW: &str = "a chunk size over 64 bits is 400 at once, as llhttp; h11 waits for \
                              that much data";
const CHUNK_LINE_LIMIT: &str = "a chunk-size line (size and extensions) over 4 KiB is 400: \
                                extensions carry nothing we use, and an unbounded line is \
                                memory a client makes us hold (hyper bounds them too); neither \
                                oracle has a bound";
const LIMITS: &str = "past our limits (64 KiB head, 8 KiB target, 100 fields): 4xx; h11, fed \
                      everything at once, does not limit a complete head";

/// Our choices where the oracles disagree with each other, or where both differ from us on a
/// point RFC 9110/9112 leaves to the server: case name, our asserted outcome (the number of
/// requests seen and how the stream ended), and why. Asserted whatever the oracles say.
fn expected() -> Vec<(String, usize, &'static str, &'static str)> {
    let mut e = Vec::new();
    let mut add = |name: String, requests: usize, end: &'static str, why: &'static str| {
        e.push((name, requests, end, why));
    };
    // Methods 0 to 10 are tokens; 11 on are not (all three reject those).
    for m in 0..=10 {
        for v in [2, 3] {
            add(format!("method{m}-version{v}"), 1, "clean", MINOR);
        }
        for v in [4, 5] {
            add(format!("method{m}-version{v}"), 0, "reject", MAJOR);
        }
        add(format!("method{m}-version6"), 0, "reject", NINE);
        add(format!("method{m}-version14"), 0, "reject", NINE);
    }
    for m in [8, 9] {
        for v in [0, 1] {
            add(format!("method{m}-version{v}"), 1, "clean", METHOD);
        }
    }
    for t in (0..=34).filter(|&t| t != 29) {
        add(format!("target{t}-CONNECT"), 0, "reject", CONNECT_FORM);
    }
    for method in ["GET", "OPTIONS"] {
        for t in [10, 15] {
            add(format!("target{t}-{method}"), 0, "reject", URI_CHARS);
        }
        for t in [6, 7] {
            add(format!("target{t}-{method}"), 0, "reject", FRAGMENT);
        }
        for t in [23, 29, 30, 32, 33] {
            add(format!("target{t}-{method}"), 0, "reject", FORM);
        }
        add(format!("target27-{method}"), 1, "clean", ABSOLUTE);
    }
    add("target22-GET".into(), 0, "reject", FORM);
    for h in [
        "userinfo",
        "space",
        "bad-port",
        "slash",
        "comma",
        "twice-same",
        "twice-differ",
        "twice-1.0",
    ] {
        add(format!("host-{h}"), 0, "reject", HOST);
    }
    for l in ["content-length6", "content-length7", "content-length15"] {
        add(l.into(), 2, "clean", LENGTH_LIST);
    }
    add("content-length-twice-same".into(), 2, "clean", LENGTH_LIST);
    for t in 0..17 {
        add(format!("te{t}-v1"), 0, "reject", TE_10);
    }
    for t in ["te4-v0", "te10-v0", "te16-v0", "te-lines-gzip-then-chunked"] {
        add(t.into(), 0, "reject", TE_UNKNOWN);
    }
    for t in ["te7-v0", "te8-v0"] {
        add(t.into(), 1, "clean", TE_EMPTY_ELEMENT);
    }
    for t in [
        "te-lines-with-content-length",
        "te-lines-content-length-first",
        "te-lines-with-content-length-zero",
        "pipeline-smuggle-cl-te",
    ] {
        add(t.into(), 0, "reject", TE_AND_CL);
    }
    for f in [
        "te-lines-obs-fold",
        "field13",
        "field13-first",
        "field14",
        "field14-first",
        "field15",
    ] {
        add(f.into(), 0, "reject", OBS_FOLD);
    }
    for f in ["field18", "field18-first", "field19", "field19-first"] {
        add(f.into(), 0, "reject", CONTROL);
    }
    for f in [
        "field26",
        "field26-first",
        "head-bare-lf",
        "head-bare-lf-end",
        "head-bare-lf-request-line",
    ] {
        add(f.into(), 1, "clean", BARE_LF);
    }
    for h in ["head-double-space", "head-double-space-version"] {
        add(h.into(), 0, "reject", WHITESPACE);
    }
    for h in [
        "head-leading-crlf",
        "head-leading-crlf-twice",
        "head-leading-lf",
    ] {
        add(h.into(), 1, "clean", LEADING_CRLF);
    }
    add("head-only-crlf".into(), 0, "clean", LEADING_CRLF);
    add("many-leading-crlf".into(), 1, "clean", LEADING_CRLF);
    add("pipeline-crlf-between".into(), 2, "clean", LEADING_CRLF);
    add("head-bare-cr".into(), 0, "reject", BARE_CR);
    add("pipeline-after-close".into(), 1, "clean", CLOSE);
    add("pipeline-http10-then-get".into(), 1, "clean", CLOSE);
    add(
        "pipeline-http10-keep-alive-then-get".into(),
        2,
        "clean",
        KEEP_10,
    );
    add("chunked-ext-space".into(), 1, "clean", CHUNK_BWS);
    for c in [
        "chunked-size-space",
        "chunked-size-tab",
        "chunked-ext-bare-cr",
        "chunked-trailer-fold",
        "chunked-trailer-bare-lf",
        "chunked-all-bare-lf",
        "chunked-last-bare-lf",
        "chunked-cr-after-last",
    ] {
        add(c.into(), 0, "reject", CHUNK_LINE);
    }
    for c in [
        "chunked-overflow",
        "chunked-overflow-max",
        "pipeline-smuggle-chunk-overflow",
    ] {
        add(c.into(), 0, "reject", CHUNK_OVERFLOW);
    }
    add("long-chunk-extension".into(), 0, "reject", CHUNK_LINE_LIMIT);
    for c in ["overlong-field", "overlong-target", "many-fields"] {
        add(c.into(), 0, "reject", LIMITS);
    }
    e
}

/// How one parser saw a case: the canonical requests, then `END <how>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome(String);

impl Outcome {
    /// h11 lowercases Transfer-Encoding values (raw or not); so does the comparison.
    fn normalized(&self) -> Outcome {
        Outcome(common::oracle::lowercase_transfer_encoding(&self.0))
    }

    fn requests(&self) -> usize {
        self.0.matches("REQ ").count()
    }

    fn end(&self) -> &str {
        self.0.rsplit(' ').next().unwrap_or("")
    }
}

/// The echo handler: the request in the canonical form of the oracles, or, when its body
/// fails, how (`incomplete` when the client closed inside it, `reject` when it is malformed).
async fn echo(req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let mut fields: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| (hex(n.as_str().as_bytes()), hex(v.as_bytes())))
        .collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let body = match body.bytes().await {
        Ok(body) => body,
        Err(err) => {
            let eof = std::error::Error::source(&err)
                .and_then(|e| e.downcast_ref::<std::io::Error>())
                .is_some_and(|e| e.kind() == std::io::ErrorKind::UnexpectedEof);
            let mut response = Response::new(Body::from(if eof { "incomplete" } else { "reject" }));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
                .headers_mut()
                .insert("x-echo", "body-error".parse().unwrap());
            return response;
        }
    };
    let mut line = vec![
        "REQ".to_string(),
        hex(parts.method.as_str().as_bytes()),
        hex(parts.uri.to_string().as_bytes()),
        hex(format!("{:?}", parts.version).as_bytes()),
    ];
    line.extend(fields.into_iter().map(|(n, v)| format!("{n}={v}")));
    line.extend(["BODY".to_string(), hex(&body), ";".to_string()]);
    // In a header: a response to HEAD has no body.
    let mut response = Response::new(Body::empty());
    response
        .headers_mut()
        .insert("x-echo-line", line.join(" ").parse().unwrap());
    if parts.method == Method::CONNECT {
        // Not 2xx: no tunnel.
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    response
        .headers_mut()
        .insert("x-echo", "ok".parse().unwrap());
    response
}

/// Every case through our server, each on its own connection (written, half-closed, read to
/// the server's close).
fn ours(cases: &[Case]) -> Vec<Outcome> {
    let addr = common::serve_in_thread(|s| s.half_close(true).max_body_bytes(usize::MAX), echo);
    cases
        .iter()
        .map(|case| {
            let raw = common::exchange_raw(addr, &case.bytes);
            let mut parts = Vec::new();
            let mut end = "clean".to_string();
            for response in common::parse_responses(&raw) {
                match response.header("x-echo") {
                    Some("ok") => parts.push(response.header("x-echo-line").unwrap().to_string()),
                    Some(_) => end = String::from_utf8(response.body).unwrap(),
                    None => {
                        assert!(
                            response.status >= 400,
                            "{}: server answered {} itself",
                            case.name,
                            response.status
                        );
                        end = "reject".into();
                    }
                }
            }
            parts.extend(["END".to_string(), end]);
            Outcome(parts.join(" "))
        })
        .collect()
}

/// Runs an oracle over every case in one process; `None` when it is not installed (a failure
/// under `CI`).
fn oracle(program: &str, probe: &[&str], script: &str, cases: &[Case]) -> Option<Vec<Outcome>> {
    let input: String = cases.iter().map(|c| hex(&c.bytes) + "\n").collect();
    let lines = common::oracle::run(program, probe, script, input)?;
    Some(lines.into_iter().map(Outcome).collect())
}

#[test]
fn parsing_agrees_with_h11_and_llhttp() {
    let cases = corpus();
    assert!(cases.len() >= 300, "corpus has {} cases", cases.len());
    let h11 = oracle(
        "python3",
        &[
            "-c",
            "import h11; assert h11.__version__ == '0.16.0', h11.__version__",
        ],
        "h11_oracle.py",
        &cases,
    );
    let node = oracle("node", &["--version"], "llhttp_oracle.js", &cases);
    let ours = ours(&cases);
    let expected_list = expected();
    let expected: BTreeMap<&str, (usize, &str, &str)> = expected_list
        .iter()
        .map(|(name, requests, end, why)| (name.as_str(), (*requests, *end, *why)))
        .collect();
    assert_eq!(
        expected.len(),
        expected_list.len(),
        "a case named twice in expected()"
    );
    for name in expected.keys() {
        assert!(
            cases.iter().any(|c| c.name == *name),
            "expected() names no case {name}"
        );
    }

    let mut failures = Vec::new();
    let dump = std::env::var_os("DIFF_DUMP").is_some();
    for (i, case) in cases.iter().enumerate() {
        let us = &ours[i];
        let oracles: Vec<(&str, Outcome)> = [("h11", &h11), ("llhttp", &node)]
            .into_iter()
            .filter_map(|(name, o)| o.as_ref().map(|o| (name, o[i].normalized())))
            .collect();
        if let Some(&(requests, end, _)) = expected.get(case.name.as_str()) {
            // A documented choice: asserted whatever the oracles say.
            if us.requests() != requests || us.end() != end {
                failures.push(format!(
                    "{}: expected {requests} request(s) then {end}, got {us:?}",
                    case.name
                ));
            }
            continue;
        }
        let agree = oracles
            .iter()
            .filter(|(_, o)| *o == us.normalized())
            .count();
        if dump || agree < oracles.len() {
            let mut report = format!(
                "{}: {:?}\n  ours:   {}",
                case.name,
                String::from_utf8_lossy(&case.bytes[..case.bytes.len().min(120)]),
                us.0
            );
            for (name, o) in &oracles {
                report += &format!("\n  {name:<7} {}", o.0);
            }
            if agree < oracles.len() {
                failures.push(report);
            } else {
                eprintln!("{report}");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from an oracle without a documented choice in expected():\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

//! Fuzzes the client's response parsing: status line and headers (`h1::parse_response`),
//! interim responses, framing per RFC 9112 §6.3 and the body decoders.
//!
//! Input: byte 0's low bit says whether the request was `HEAD`; the rest is what the server
//! sent before closing. Checks: no panic, no hang; a HEAD response never has a body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use untangle::http::__fuzz::client_parse;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let head = flags & 1 == 1;
    if let Ok((status, body)) = client_parse(input, head) {
        assert!((100..1000).contains(&status));
        if head {
            assert!(body.is_empty(), "HEAD response with a body");
        }
    }
});

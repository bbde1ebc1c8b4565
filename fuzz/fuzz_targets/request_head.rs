//! Fuzzes the server's request parsing: request heads (`h1::parse_request`) and the body
//! framing they select, over a pipelined byte stream, received whole and in pieces.
//!
//! Input: byte 0 picks the limits, byte 1 the piece size; the rest is what the client sent.
//! Checks: no panic, no hang, and the requests accepted do not depend on how the bytes were
//! split across reads (how a stream that is not accepted ends may: which status, or
//! incomplete).
#![no_main]

use libfuzzer_sys::fuzz_target;
use untangle::http::__fuzz::{server_parse, ServerEvent};

fn normalise(events: Vec<ServerEvent>) -> Vec<ServerEvent> {
    events
        .into_iter()
        .map(|e| match e {
            // How the stream ends when it is not accepted may differ: a head rejected early
            // in pieces (a target over the limit before its line ended) may be merely
            // incomplete when the input stops before the line end is seen whole.
            ServerEvent::Reject(_) | ServerEvent::BadBody | ServerEvent::Incomplete => {
                ServerEvent::Reject(0)
            }
            other => other,
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let limits = match data[0] % 4 {
        0 => (64 * 1024, 100, 8 * 1024),
        1 => (256, 8, 64),
        2 => (64, 2, 16),
        _ => (1024, 100, 8),
    };
    let step = usize::from(data[1] % 17) + 1;
    let input = &data[2..];
    let whole = server_parse(input, &[], limits);
    let splits: Vec<usize> = (step..input.len()).step_by(step).collect();
    let pieces = server_parse(input, &splits, limits);
    assert_eq!(
        normalise(whole),
        normalise(pieces),
        "split every {step} bytes changes the parse"
    );
});

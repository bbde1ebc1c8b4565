//! Fuzzes the chunked body decoder (`h1::Decoder` with chunked framing).
//!
//! Input: byte 0 is the piece size the bytes arrive in (0: all at once); the rest is the body.
//! Checks: no panic, no hang, the result does not depend on the piece size, and what decodes
//! re-encodes to a body that decodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use untangle::http::__fuzz::{decode_chunked, encode_chunked};

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let whole = decode_chunked(input, 0);
    let pieces = decode_chunked(input, usize::from(step));
    assert_eq!(whole.is_ok(), pieces.is_ok(), "piece size {step} changes the outcome");
    if let (Ok(a), Ok(b)) = (&whole, &pieces) {
        assert_eq!(a, b);
        let again = decode_chunked(&encode_chunked(&[a]), 0).expect("re-encoded body decodes");
        assert_eq!(&again, a);
    }
});

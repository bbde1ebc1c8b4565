//! What every hand-written peer server shares: the response bytes and the request counter.

/// The response every minimal server sends: byte for byte what `examples/plaintext.rs` and
/// hyper send (header order and case included), apart from the Date value, which here is a
/// constant of the same length (real servers format it once a second, a negligible cost).
/// `bench.py` checks this before measuring.
pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nserver: untangle\r\ncontent-length: 13\r\ndate: Thu, 26 Nov 2026 00:00:00 GMT\r\n\r\nHello, World!";

/// Counts complete request heads (`\r\n\r\n`) in `buf[..len]`, returning the count and the
/// number of bytes they span; requests here carry no body.
pub fn count_requests(buf: &[u8]) -> (usize, usize) {
    let mut count = 0;
    let mut end = 0;
    let mut i = 0;
    while i + 4 <= buf.len() {
        if &buf[i..i + 4] == b"\r\n\r\n" {
            count += 1;
            end = i + 4;
            i += 4;
        } else {
            i += 1;
        }
    }
    (count, end)
}

/// The listen address from argv[1], default 127.0.0.1:8080.
pub fn addr() -> String {
    std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
}

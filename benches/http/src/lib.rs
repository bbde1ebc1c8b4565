//! What every hand-written peer server shares: the response bytes and the per-connection work
//! (find complete requests in the read buffer, batch one response per request), so the minimal
//! servers and the floor differ only in how they wait for the socket.

/// The response every minimal server sends: byte for byte what `examples/plaintext.rs` and
/// hyper send (header order and case included), apart from the Date value, which here is a
/// constant of the same length (real servers format it once a second, a negligible cost).
/// `bench.py` checks this before measuring.
pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nserver: untangle\r\ncontent-length: 13\r\ndate: Thu, 26 Nov 2026 00:00:00 GMT\r\n\r\nHello, World!";

/// Counts complete request heads (`\r\n\r\n`) in `buf[..len]`, returning the count and the
/// number of bytes they span; requests here carry no body.
fn count_requests(buf: &[u8]) -> (usize, usize) {
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

/// One connection's read buffer and response batch.
pub struct Exchange {
    buf: Vec<u8>,
    filled: usize,
    out: Vec<u8>,
}

impl Default for Exchange {
    fn default() -> Exchange {
        Exchange {
            buf: vec![0; 16 * 1024],
            filled: 0,
            out: Vec::with_capacity(16 * RESPONSE.len()),
        }
    }
}

impl Exchange {
    /// Where the next read goes.
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    /// Takes `n` bytes just read into [`spare`](Exchange::spare); returns the responses to
    /// write, one per complete request (empty while a request is still partial).
    pub fn received(&mut self, n: usize) -> &[u8] {
        self.filled += n;
        let (count, used) = count_requests(&self.buf[..self.filled]);
        self.buf.copy_within(used..self.filled, 0);
        self.filled -= used;
        self.out.clear();
        for _ in 0..count {
            self.out.extend_from_slice(RESPONSE);
        }
        &self.out
    }
}

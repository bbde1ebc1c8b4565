//! The body decoder: takes a message body off a read buffer by its framing (length,
//! chunked with trailers, or until close).

use bytes::Bytes;

use super::framing::Framing;
use crate::http::buf::ReadBuf;

/// The longest chunk-size line (size plus extensions) accepted.
pub(crate) const MAX_CHUNK_LINE: usize = 4096;
/// The most trailer bytes accepted after the last chunk.
pub(crate) const MAX_TRAILER_BYTES: usize = 64 * 1024;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Malformed chunked framing.
    Invalid(&'static str),
    /// The connection closed before the body ended.
    Truncated,
}

impl DecodeError {
    pub(crate) fn into_io(self) -> std::io::Error {
        match self {
            DecodeError::Invalid(reason) => {
                std::io::Error::new(std::io::ErrorKind::InvalidData, reason)
            }
            DecodeError::Truncated => std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before the body was complete",
            ),
        }
    }
}

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    Data(Bytes),
    NeedMore,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    SizeLine,
    Data(u64),
    DataEnd,
    Trailers(usize),
}

/// Decodes a body from a read buffer, whatever its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoder {
    Length(u64),
    Chunked(Chunked),
    Eof,
    Done,
}

impl Decoder {
    pub(crate) fn new(framing: Framing) -> Decoder {
        match framing {
            Framing::Empty | Framing::Length(0) => Decoder::Done,
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::Chunked(Chunked::SizeLine),
            Framing::Eof => Decoder::Eof,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        *self == Decoder::Done
    }

    /// Takes the next piece of body from `buf`. `eof` says the peer closed the connection
    /// (no more bytes will come).
    pub(crate) fn decode(&mut self, buf: &mut ReadBuf, eof: bool) -> Result<Decoded, DecodeError> {
        match self {
            Decoder::Done => Ok(Decoded::Done),
            Decoder::Length(remaining) => {
                if buf.is_empty() {
                    return if eof {
                        Err(DecodeError::Truncated)
                    } else {
                        Ok(Decoded::NeedMore)
                    };
                }
                let n = (*remaining).min(buf.len() as u64) as usize;
                *remaining -= n as u64;
                if *remaining == 0 {
                    *self = Decoder::Done;
                }
                Ok(Decoded::Data(buf.split_to(n)))
            }
            Decoder::Eof => {
                if !buf.is_empty() {
                    Ok(Decoded::Data(buf.split_to(buf.len())))
                } else if eof {
                    *self = Decoder::Done;
                    Ok(Decoded::Done)
                } else {
                    Ok(Decoded::NeedMore)
                }
            }
            Decoder::Chunked(state) => match decode_chunked(state, buf)? {
                Some(Decoded::Done) => {
                    *self = Decoder::Done;
                    Ok(Decoded::Done)
                }
                Some(decoded) => Ok(decoded),
                None if eof => Err(DecodeError::Truncated),
                None => Ok(Decoded::NeedMore),
            },
        }
    }
}

/// One step of the chunked decoder; `None` when more bytes are needed.
fn decode_chunked(state: &mut Chunked, buf: &mut ReadBuf) -> Result<Option<Decoded>, DecodeError> {
    loop {
        match *state {
            Chunked::SizeLine => {
                let Some(line) = take_line(buf, MAX_CHUNK_LINE)? else {
                    return Ok(None);
                };
                let size = parse_chunk_size(&line)?;
                *state = if size == 0 {
                    Chunked::Trailers(0)
                } else {
                    Chunked::Data(size)
                };
            }
            Chunked::Data(remaining) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = remaining.min(buf.len() as u64) as usize;
                let left = remaining - n as u64;
                *state = if left == 0 {
                    Chunked::DataEnd
                } else {
                    Chunked::Data(left)
                };
                return Ok(Some(Decoded::Data(buf.split_to(n))));
            }
            Chunked::DataEnd => {
                if buf.len() < 2 {
                    if buf.data() == b"\r" || buf.is_empty() {
                        return Ok(None);
                    }
                    return Err(DecodeError::Invalid("chunk data not followed by CRLF"));
                }
                if &buf.data()[..2] != b"\r\n" {
                    return Err(DecodeError::Invalid("chunk data not followed by CRLF"));
                }
                buf.advance(2);
                *state = Chunked::SizeLine;
            }
            Chunked::Trailers(seen) => {
                let budget = MAX_TRAILER_BYTES.saturating_sub(seen);
                let Some(line) = take_line(buf, budget)? else {
                    return Ok(None);
                };
                if line.is_empty() {
                    return Ok(Some(Decoded::Done));
                }
                check_trailer_field(&line)?;
                *state = Chunked::Trailers(seen + line.len() + 2);
            }
        }
    }
}

/// Checks one trailer field line as a header field line (RFC 9112 §7.1.2, §5): a token name
/// right before a colon, then a value of visible characters, spaces and tabs (obs-text
/// allowed). A line starting with whitespace (obs-fold) fails as a name; so do whitespace
/// before the colon and a line without one. CR, NUL and other controls fail as a value.
fn check_trailer_field(line: &[u8]) -> Result<(), DecodeError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(DecodeError::Invalid("trailer field without a colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(DecodeError::Invalid("invalid trailer field name"));
    }
    if !value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
    {
        return Err(DecodeError::Invalid("invalid trailer field value"));
    }
    Ok(())
}

/// A `tchar` of a token (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Removes one CRLF-terminated line (returned without the CRLF); `None` when incomplete.
fn take_line(buf: &mut ReadBuf, max: usize) -> Result<Option<Bytes>, DecodeError> {
    let data = buf.data();
    match data.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            if lf == 0 || data[lf - 1] != b'\r' {
                return Err(DecodeError::Invalid("line not terminated by CRLF"));
            }
            if lf + 1 > max {
                return Err(DecodeError::Invalid("chunk line or trailers too long"));
            }
            let line = buf.split_to(lf + 1);
            Ok(Some(line.slice(..lf - 1)))
        }
        None if data.len() >= max => Err(DecodeError::Invalid("chunk line or trailers too long")),
        None => Ok(None),
    }
}

/// Parses `chunk-size [ chunk-ext ]`: 1 to 16 hex digits, then optional `;`-extensions.
fn parse_chunk_size(line: &[u8]) -> Result<u64, DecodeError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(DecodeError::Invalid("missing chunk size"));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(digit))
            .ok_or(DecodeError::Invalid("chunk size overflows"))?;
    }
    let rest = &line[digits..];
    let after_ws = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .map_or(&rest[rest.len()..], |i| &rest[i..]);
    if after_ws.is_empty() {
        if rest.is_empty() {
            return Ok(size);
        }
        return Err(DecodeError::Invalid("whitespace after chunk size"));
    }
    if after_ws[0] != b';' {
        return Err(DecodeError::Invalid("invalid character after chunk size"));
    }
    if after_ws
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(DecodeError::Invalid("control character in chunk extension"));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(bytes: &[u8]) -> ReadBuf {
        let mut b = ReadBuf::new();
        b.extend_for_test(bytes);
        b
    }

    fn decode_all(framing: Framing, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut b = buf(bytes);
        let mut d = Decoder::new(framing);
        let mut out = Vec::new();
        loop {
            match d.decode(&mut b, true)? {
                Decoded::Data(data) => out.extend_from_slice(&data),
                Decoded::Done => return Ok(out),
                Decoded::NeedMore => unreachable!("eof given"),
            }
        }
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let body = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        assert_eq!(decode_all(Framing::Chunked, body).unwrap(), b"hello world");
    }

    #[test]
    fn chunk_size_overflow_is_rejected() {
        let body = b"10000000000000000\r\n";
        assert!(decode_all(Framing::Chunked, body).is_err());
    }

    #[test]
    fn chunk_line_without_cr_is_rejected() {
        assert!(decode_all(Framing::Chunked, b"5\nhello\r\n0\r\n\r\n").is_err());
    }
}

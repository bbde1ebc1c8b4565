//! The HTTP/1.1 wire format (RFC 9112): request and response heads (parsed by `httparse` and
//! then checked against the rules it leaves to us), body framing, and the body decoder.
//!
//! Everything here works on buffers and has no I/O, so it can be fuzzed and tested directly.

mod chunked;
mod encode;
mod framing;
mod request;
mod response;

pub(crate) use chunked::{DecodeError, Decoded, Decoder};
pub(crate) use encode::{
    encode_chunk_head, encode_headers, encode_status_line, encode_transfer_codings, encode_u64,
    CHUNKED_END,
};
pub(crate) use framing::{connection_tokens, Framing};
pub(crate) use request::{parse_request, parse_request_into, HeadInfo, Limits};
pub(crate) use response::{parse_response, BadResponse, ResponseHead};

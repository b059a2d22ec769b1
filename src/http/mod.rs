//! HTTP/1.x message framing over byte buffers, shared by every reader of raw HTTP
//! (recordings, capture, the passive mirror): head parsing, body length rules, route keys.
//!
//! Bytes come in from a `.gor` record or a reassembled TCP stream; out go whole messages
//! ([`frame_request`], [`frame_response`]) with their heads, so a reader can take one
//! message off the front of its buffer and continue with the next, and the route key
//! ([`route_key`]) under which the exchange is compared.
//!
//! Pure: no I/O. Input is untrusted; every failure is an [`HttpError`], never a panic.

mod body;
mod chunked;
mod frame;
mod head;
mod response;
mod route;

#[cfg(test)]
mod proptests;

pub use body::{request_body_length, response_body_length, BodyLength};
pub use chunked::{chunked_trailers, decode_chunked, ChunkedScanner};
pub use frame::{
    final_response_head, frame_request, frame_request_with, frame_response, frame_response_with,
    Frame, Framed,
};
pub use head::{
    parse_request_head, parse_request_head_with, parse_response_head, parse_response_head_with,
    Field, HeadLimits, Header, HttpError, RequestHead, ResponseHead, MAX_HEADERS,
};
pub use response::{Response, ResponseReader};
pub use route::{is_grpc, request_route, request_route_into, route_key, route_key_into};

/// Header fields that describe one connection hop, not the message (RFC 9110 §7.6.1): never
/// forwarded by a proxy or a replay (nor are those the Connection header names).
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The `grpc-status` of a gRPC answer's trailers (or of a trailers-only answer's headers).
pub fn grpc_status(headers: &hyper::HeaderMap) -> Option<u8> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether a comma-separated field (`Connection: keep-alive, Upgrade`), read across all its
/// lines, lists `token`, compared ASCII case-insensitively.
pub fn lists_token<'a>(values: impl IntoIterator<Item = &'a [u8]>, token: &[u8]) -> bool {
    values.into_iter().any(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    })
}

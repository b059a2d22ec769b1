//! HTTP/1.x message framing over byte buffers, shared by every reader of raw HTTP
//! (recordings, capture, the passive mirror): head parsing, body length rules, route keys.
//!
//! Pure: no I/O. Input is untrusted; every failure is an [`HttpError`], never a panic.

mod head;
mod route;

pub use head::{
    parse_request_head, parse_response_head, Header, HttpError, RequestHead, ResponseHead,
};
pub use route::route_key;

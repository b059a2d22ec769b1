//! The traffic model and its formats: an [`Exchange`] is one recorded request with the
//! original response, if it was captured. Recordings are streamed, never loaded whole.

mod error;
pub mod gor;
pub mod summary;

pub use error::RecordingError;
pub use gor::{new_id, GorReader, GorWriter, ReadOptions, ReadStats, Record, RecordKind};
pub use summary::Summary;

use crate::http::{RequestHead, ResponseHead};
use bytes::Bytes;

/// One recorded HTTP exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Record id; a request and its original response share it (24 hex chars in captures).
    /// Shared: every observation of the exchange holds it.
    pub id: std::sync::Arc<str>,
    /// When the request started, in nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// The raw request bytes: head and body, as they were on the wire.
    pub request: Bytes,
    pub request_head: RequestHead,
    /// The original response, when the recording has it.
    pub response: Option<RecordedResponse>,
}

impl Exchange {
    /// The request body as it is sent again: the bytes after the head, de-chunked, cut to
    /// the Content-Length. A chunked body cut short in the recording is sent as far as it goes.
    pub fn request_body(&self) -> Bytes {
        let body = self
            .request
            .slice(self.request_head.head_len.min(self.request.len())..);
        match crate::http::request_body_length(&self.request_head) {
            Ok(crate::http::BodyLength::Chunked) => match crate::http::decode_chunked(&body) {
                Ok(decoded) => Bytes::from(decoded),
                Err(_) => body,
            },
            Ok(crate::http::BodyLength::Fixed(n)) => {
                body.slice(..body.len().min(usize::try_from(n).unwrap_or(usize::MAX)))
            }
            _ => body,
        }
    }
}

/// The response the recorded (stable) service gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedResponse {
    /// The raw response bytes: head and body.
    pub bytes: Bytes,
    pub head: ResponseHead,
    /// Original latency in nanoseconds: request start to response.
    pub latency_ns: u64,
}

/// The header the capture adds to a request it recorded over HTTP/2, in the HTTP/1.1 form a
/// `.gor` file holds (`X-Nprt-Protocol: HTTP/2`): replay and the passive mirror send such an
/// exchange over HTTP/2 again, without the header. GoReplay reads it as any header.
pub const PROTOCOL_HEADER: &str = "x-nprt-protocol";

/// Whether a recorded request carries `X-Nprt-Protocol: HTTP/2`.
pub fn recorded_over_http2(head: &crate::http::RequestHead) -> bool {
    head.header_values(PROTOCOL_HEADER)
        .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"HTTP/2"))
}

impl RecordedResponse {
    /// A gRPC answer's status: from the head (a trailers-only answer) or from the chunked
    /// body's trailers, where an HTTP/2 answer's trailers are kept in a recording.
    pub fn grpc_status(&self) -> Option<u8> {
        let parse = |v: &[u8]| std::str::from_utf8(v).ok()?.trim().parse().ok();
        if let Some(v) = self.head.header("grpc-status") {
            return parse(v);
        }
        let body = self.bytes.get(self.head.head_len..)?;
        let trailers = crate::http::chunked_trailers(body)?;
        trailers
            .iter()
            .find(|(name, _)| name == "grpc-status")
            .and_then(|(_, v)| parse(v.as_bytes()))
    }
}

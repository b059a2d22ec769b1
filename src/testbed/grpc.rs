//! `testbed --grpc`: every call (any method) is a unary gRPC echo, so that gRPC replays and
//! shadows have a service to stage regressions on without writing one.
//!
//! The answer is the request's length-prefixed message(s) sent back as they came, with
//! `content-type: application/grpc` and the trailer `grpc-status: 0`. A staged error is what a
//! gRPC server that cannot serve says: HTTP 200 and a trailers-only answer with
//! `grpc-status: 14` (UNAVAILABLE) — a gRPC client never sees an HTTP 500.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::Response;
use std::pin::Pin;
use std::task::{Context, Poll};

/// UNAVAILABLE: what a staged error answers.
pub const UNAVAILABLE: u8 = 14;
/// INTERNAL: what a body that is not gRPC framing gets.
const INTERNAL: u8 = 13;

/// A response body of at most one data frame, then trailers when there are any.
#[derive(Debug, Default)]
pub struct GrpcBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// Whether `body` is whole gRPC length-prefixed messages: a flag byte (0 or 1), a 4-byte
/// big-endian length, that many bytes; repeated.
pub fn is_framed(mut body: &[u8]) -> bool {
    while !body.is_empty() {
        let Some((&[flag, a, b, c, d], rest)) = body.split_first_chunk::<5>() else {
            return false;
        };
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        if flag > 1 || rest.len() < len {
            return false;
        }
        body = &rest[len..];
    }
    true
}

fn status_headers(map: &mut HeaderMap, status: u8, message: Option<&'static str>) {
    map.insert("grpc-status", HeaderValue::from(u16::from(status)));
    if let Some(message) = message {
        map.insert("grpc-message", HeaderValue::from_static(message));
    }
}

/// The answer to a call whose request body is `body`: the echo, or UNAVAILABLE when the
/// plan staged an error (`failed`). `encoding` is the request's `grpc-encoding`, echoed
/// with compressed messages.
pub fn answer(body: Bytes, failed: bool, encoding: Option<HeaderValue>) -> Response<GrpcBody> {
    let mut response = Response::new(GrpcBody::default());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    if failed {
        // Trailers-only: the status goes in the one HEADERS frame, which ends the stream.
        status_headers(
            headers,
            UNAVAILABLE,
            Some("staged error (nprt testbed --error-rate)"),
        );
        return response;
    }
    if !is_framed(&body) {
        status_headers(
            headers,
            INTERNAL,
            Some("the request is not gRPC length-prefixed messages"),
        );
        return response;
    }
    if let Some(encoding) = encoding {
        headers.insert("grpc-encoding", encoding);
    }
    let mut trailers = HeaderMap::new();
    status_headers(&mut trailers, 0, None);
    *response.body_mut() = GrpcBody {
        data: Some(body).filter(|b| !b.is_empty()),
        trailers: Some(trailers),
    };
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn framing_is_checked() {
        assert!(is_framed(b""));
        assert!(is_framed(b"\0\0\0\0\x02hi"));
        assert!(is_framed(b"\0\0\0\0\x02hi\x01\0\0\0\0"));
        assert!(!is_framed(b"\0\0\0\0\x03hi"), "short message");
        assert!(!is_framed(b"\x02\0\0\0\0"), "bad flag");
        assert!(!is_framed(b"{}"), "JSON is not gRPC");
    }

    #[tokio::test]
    async fn echo_with_trailer_or_trailers_only_error() {
        let ok = answer(Bytes::from_static(b"\0\0\0\0\x02hi"), false, None);
        assert_eq!(ok.headers()["content-type"], "application/grpc");
        assert!(ok.headers().get("grpc-status").is_none());
        let body = ok.into_body().collect().await.unwrap();
        assert_eq!(body.trailers().unwrap()["grpc-status"], "0");
        assert_eq!(&body.to_bytes()[..], b"\0\0\0\0\x02hi");

        let failed = answer(Bytes::from_static(b"\0\0\0\0\x02hi"), true, None);
        assert_eq!(failed.status(), 200);
        assert_eq!(failed.headers()["grpc-status"], "14");
        assert!(failed.body().is_end_stream(), "trailers-only");

        let bad = answer(Bytes::from_static(b"{}"), false, None);
        assert_eq!(bad.headers()["grpc-status"], "13");
    }
}

//! Finding whole messages in a byte buffer, so a reader can take exactly one message off
//! the front and carry on with the rest (pipelining, recordings, reassembled streams).
//!
//! Stateless: each call starts again from the start of the buffer, which keeps callers
//! simple. A reader that must not rescan a large chunked body can drive
//! [`ChunkedScanner`] itself with [`request_body_length`]/[`response_body_length`].

use std::borrow::Cow;

use super::body::{request_body_length, response_body_length, BodyLength};
use super::chunked::{decode_chunked, ChunkedScanner};
use super::{
    parse_request_head_with, parse_response_head, parse_response_head_with, HeadLimits, HttpError,
    RequestHead, ResponseHead,
};

/// One message found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<H> {
    pub head: H,
    pub body: BodyLength,
    /// Offset of the first body byte: the head's length.
    pub body_start: usize,
    /// Length of the whole message (head, body and any chunked framing): the next message
    /// starts at `buf[len..]`.
    pub len: usize,
}

impl<H> Frame<H> {
    /// The body bytes as on the wire, chunked framing included, from the buffer this frame
    /// was found in.
    pub fn raw_body<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.body_start..self.len).unwrap_or_default()
    }

    /// The body's content: chunked framing removed, other bodies as they are.
    ///
    /// # Errors
    /// The chunked body is invalid (cannot happen for a buffer that framed this message).
    pub fn decoded_body<'a>(&self, buf: &'a [u8]) -> Result<Cow<'a, [u8]>, HttpError> {
        let raw = self.raw_body(buf);
        match self.body {
            BodyLength::Chunked => decode_chunked(raw).map(Cow::Owned),
            _ => Ok(Cow::Borrowed(raw)),
        }
    }
}

/// What framing found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed<H> {
    /// The message is not complete: read more and call again with the longer buffer.
    Incomplete,
    /// An interim (1xx, not 101) response; the final response follows at `buf[len..]`.
    /// Only [`frame_response`] gives this.
    Interim(Frame<H>),
    /// A whole message.
    Complete(Frame<H>),
}

/// Frames the request at the start of `buf`.
///
/// # Errors
/// The head is malformed, its body length cannot be decided (see
/// [`request_body_length`]), or the chunked body is invalid.
pub fn frame_request(buf: &[u8]) -> Result<Framed<RequestHead>, HttpError> {
    frame_request_with(buf, &HeadLimits::default())
}

/// Frames the request at the start of `buf`, refusing one beyond `limits`.
///
/// # Errors
/// As [`frame_request`]; [`HttpError::Limit`] when the head has too many fields or bytes,
/// or the body declares or carries more than allowed.
pub fn frame_request_with(
    buf: &[u8],
    limits: &HeadLimits,
) -> Result<Framed<RequestHead>, HttpError> {
    let Some(head) = parse_request_head_with(buf, limits)? else {
        return Ok(Framed::Incomplete);
    };
    let body = request_body_length(&head)?;
    let body_start = head.head_len;
    Ok(match body_end(buf, body_start, body, false, limits)? {
        Some(len) => Framed::Complete(Frame {
            head,
            body,
            body_start,
            len,
        }),
        None => Framed::Incomplete,
    })
}

/// Frames the response at the start of `buf`, sent for a request with `request_method`.
///
/// `at_eof` says the connection has closed after `buf`: only then can a close-delimited
/// body end. At EOF, `Incomplete` means the response was cut short.
///
/// Interim responses (`100 Continue`, `103 Early Hints`) come back as
/// [`Framed::Interim`]; frame again at `buf[len..]` for the next one.
///
/// # Errors
/// The head is malformed, its body length cannot be decided (see
/// [`response_body_length`]), or the chunked body is invalid.
pub fn frame_response(
    buf: &[u8],
    request_method: &str,
    at_eof: bool,
) -> Result<Framed<ResponseHead>, HttpError> {
    frame_response_with(buf, request_method, at_eof, &HeadLimits::default())
}

/// Frames the response at the start of `buf`, refusing one beyond `limits`.
///
/// # Errors
/// As [`frame_response`]; [`HttpError::Limit`] as in [`frame_request_with`]. A
/// close-delimited body is checked against the bytes so far.
pub fn frame_response_with(
    buf: &[u8],
    request_method: &str,
    at_eof: bool,
    limits: &HeadLimits,
) -> Result<Framed<ResponseHead>, HttpError> {
    let Some(head) = parse_response_head_with(buf, limits)? else {
        return Ok(Framed::Incomplete);
    };
    let body_start = head.head_len;
    if head.is_interim() {
        return Ok(Framed::Interim(Frame {
            head,
            body: BodyLength::Empty,
            body_start,
            len: body_start,
        }));
    }
    let body = response_body_length(&head, request_method)?;
    Ok(match body_end(buf, body_start, body, at_eof, limits)? {
        Some(len) => Framed::Complete(Frame {
            head,
            body,
            body_start,
            len,
        }),
        None => Framed::Incomplete,
    })
}

/// The head of the final response in `buf`, skipping any interim responses before it, as
/// in a recording of `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n…`. The body
/// need not be complete.
///
/// `Ok(None)` means no complete final head is in `buf`.
///
/// # Errors
/// A head is malformed.
pub fn final_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    let mut rest = buf;
    loop {
        let Some(head) = parse_response_head(rest)? else {
            return Ok(None);
        };
        if !head.is_interim() {
            return Ok(Some(head));
        }
        rest = rest.get(head.head_len..).unwrap_or_default();
    }
}

/// Where the message whose body starts at `body_start` ends, or `None` if not in `buf` yet.
fn body_end(
    buf: &[u8],
    body_start: usize,
    body: BodyLength,
    at_eof: bool,
    limits: &HeadLimits,
) -> Result<Option<usize>, HttpError> {
    let over = || HttpError::Limit {
        what: "body bytes",
        limit: limits.max_body_bytes,
    };
    Ok(match body {
        BodyLength::Empty | BodyLength::Tunnel => Some(body_start),
        BodyLength::Fixed(n) if n > limits.max_body_bytes => return Err(over()),
        BodyLength::Fixed(n) => {
            let end = usize::try_from(n)
                .ok()
                .and_then(|n| body_start.checked_add(n))
                .ok_or_else(|| {
                    HttpError::Framing(format!("Content-Length {n} does not fit in memory"))
                })?;
            (buf.len() >= end).then_some(end)
        }
        BodyLength::Chunked => ChunkedScanner::with_max_data(limits.max_body_bytes)
            .feed(buf.get(body_start..).unwrap_or_default())?
            .map(|n| body_start + n),
        BodyLength::CloseDelimited if (buf.len() - body_start) as u64 > limits.max_body_bytes => {
            return Err(over())
        }
        BodyLength::CloseDelimited => at_eof.then_some(buf.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_request_head;

    fn complete<H: std::fmt::Debug>(framed: Result<Framed<H>, HttpError>) -> Frame<H> {
        match framed {
            Ok(Framed::Complete(frame)) => frame,
            other => panic!("expected a complete message, got {other:?}"),
        }
    }

    #[test]
    fn pipelined_requests_are_taken_one_after_another() {
        let buf = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
                    POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
                    PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n\
                    GET /d HTTP/1.1\r\n";
        let mut rest = &buf[..];
        let mut seen = Vec::new();
        while let Framed::Complete(frame) = frame_request(rest).unwrap() {
            seen.push((
                frame.head.target().to_owned(),
                frame.decoded_body(rest).unwrap().into_owned(),
            ));
            rest = &rest[frame.len..];
        }
        assert_eq!(
            seen,
            [
                ("/a".to_owned(), b"".to_vec()),
                ("/b".to_owned(), b"abc".to_vec()),
                ("/c".to_owned(), b"hi".to_vec())
            ]
        );
        assert_eq!(rest, b"GET /d HTTP/1.1\r\n");
    }

    #[test]
    fn head_split_across_many_small_reads() {
        let msg = b"POST /upload HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\
                    Content-Length: 5\r\n\r\nhello";
        for cut in 0..msg.len() {
            assert_eq!(
                frame_request(&msg[..cut]),
                Ok(Framed::Incomplete),
                "cut {cut}"
            );
        }
        let frame = complete(frame_request(msg));
        assert_eq!(frame.len, msg.len());
        assert_eq!(frame.raw_body(msg), b"hello");
    }

    #[test]
    fn fixed_and_chunked_responses() {
        let fixed = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1";
        assert_eq!(
            complete(frame_response(fixed, "GET", false)).len,
            fixed.len() - 8
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        3;ext=1\r\nabc\r\n0\r\nServer-Timing: db;dur=5\r\n\r\n";
        let frame = complete(frame_response(chunked, "GET", false));
        assert_eq!(frame.len, chunked.len());
        assert_eq!(frame.decoded_body(chunked).unwrap().as_ref(), b"abc");
    }

    #[test]
    fn responses_without_body_end_at_their_head() {
        for (status, method) in [
            ("200 OK", "HEAD"),
            ("204 No Content", "DELETE"),
            ("304 Not Modified", "GET"),
        ] {
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: 7\r\n\r\n");
            let buf = format!("{head}HTTP/1.1 200 OK\r\n");
            let frame = complete(frame_response(buf.as_bytes(), method, false));
            assert_eq!(frame.len, head.len(), "{status} to {method}");
            assert_eq!(frame.body, BodyLength::Empty);
        }
    }

    #[test]
    fn close_delimited_body_needs_eof() {
        let buf = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it";
        assert_eq!(frame_response(buf, "GET", false), Ok(Framed::Incomplete));
        let frame = complete(frame_response(buf, "GET", true));
        assert_eq!(frame.body, BodyLength::CloseDelimited);
        assert_eq!(frame.raw_body(buf), b"all of it");
    }

    #[test]
    fn tunnel_ends_at_head() {
        let buf = b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01";
        let frame = complete(frame_response(buf, "CONNECT", false));
        assert_eq!((frame.body, frame.len), (BodyLength::Tunnel, buf.len() - 3));
    }

    #[test]
    fn expect_continue_and_interim_responses() {
        let req = b"PUT /f HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n";
        assert_eq!(frame_request(req), Ok(Framed::Incomplete));
        let head = parse_request_head(req).unwrap().unwrap();
        assert!(head.expects_continue());
        let old = parse_request_head(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
        assert!(!old.unwrap().unwrap().expects_continue());

        let buf = b"HTTP/1.1 100 Continue\r\n\r\n\
                    HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n\
                    HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
        let mut rest = &buf[..];
        let mut statuses = Vec::new();
        loop {
            match frame_response(rest, "PUT", false).unwrap() {
                Framed::Interim(f) => {
                    statuses.push((f.head.status, true));
                    rest = &rest[f.len..];
                }
                Framed::Complete(f) => {
                    statuses.push((f.head.status, false));
                    rest = &rest[f.len..];
                    break;
                }
                Framed::Incomplete => panic!("incomplete"),
            }
        }
        assert_eq!(statuses, [(100, true), (103, true), (201, false)]);
        assert!(rest.is_empty());

        let last = final_response_head(buf).unwrap().unwrap();
        assert_eq!((last.status, last.reason.as_str()), (201, "Created"));
        assert_eq!(final_response_head(&buf[..30]), Ok(None));
        let plain = final_response_head(b"HTTP/1.1 404 Not Found\r\n\r\n");
        assert_eq!(plain.unwrap().map(|h| h.status), Some(404));
    }

    #[test]
    fn switching_protocols_is_final_not_interim() {
        let buf = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05";
        let frame = complete(frame_response(buf, "GET", false));
        assert_eq!(frame.body, BodyLength::Tunnel);
        assert_eq!(
            final_response_head(buf).unwrap().map(|h| h.status),
            Some(101)
        );
    }

    #[test]
    fn framing_errors() {
        assert!(
            frame_request(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .is_err()
        );
        assert!(
            frame_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
        assert!(frame_request(b"G@T / HTTP/1.1\r\n\r\n").is_err());
        let huge = b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n";
        // Fits in u64 but not after the head on 64-bit targets.
        assert!(frame_response(huge, "GET", false).is_err());
    }

    fn limit(framed: Result<Framed<impl std::fmt::Debug>, HttpError>) -> &'static str {
        match framed {
            Err(HttpError::Limit { what, .. }) => what,
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    #[test]
    fn header_count_limit() {
        let limits = HeadLimits {
            max_headers: 3,
            ..HeadLimits::default()
        };
        let three = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert!(matches!(
            frame_request_with(three, &limits),
            Ok(Framed::Complete(_))
        ));
        let four = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        assert_eq!(limit(frame_request_with(four, &limits)), "header fields");
        let res = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        assert_eq!(
            limit(frame_response_with(res, "GET", true, &limits)),
            "header fields"
        );
        // Above the stack array: taken from the heap, still counted.
        let many = HeadLimits {
            max_headers: 300,
            ..HeadLimits::default()
        };
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..300 {
            big.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        big.extend_from_slice(b"\r\n");
        assert!(matches!(
            frame_request_with(&big, &many),
            Ok(Framed::Complete(_))
        ));
        assert_eq!(limit(frame_request(&big)), "header fields");
    }

    #[test]
    fn head_size_limit_also_for_unfinished_heads() {
        let limits = HeadLimits {
            max_head_bytes: 64,
            ..HeadLimits::default()
        };
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(60));
        assert_eq!(
            limit(frame_request_with(long.as_bytes(), &limits)),
            "head bytes"
        );
        // Never finished: refused once past the limit, not buffered forever.
        let slow = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(70));
        assert_eq!(
            limit(frame_request_with(slow.as_bytes(), &limits)),
            "head bytes"
        );
        assert_eq!(
            frame_request_with(&slow.as_bytes()[..40], &limits),
            Ok(Framed::Incomplete)
        );
    }

    #[test]
    fn body_size_limit() {
        let limits = HeadLimits {
            max_body_bytes: 4,
            ..HeadLimits::default()
        };
        let ok = b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd";
        assert!(matches!(
            frame_request_with(ok, &limits),
            Ok(Framed::Complete(_))
        ));
        // Refused from the head alone, before any body byte arrived.
        let big = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(limit(frame_request_with(big, &limits)), "body bytes");
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\n";
        assert_eq!(
            limit(frame_request_with(chunked, &limits)),
            "chunked body bytes"
        );
        let close = b"HTTP/1.1 200 OK\r\n\r\nabcde";
        assert_eq!(
            limit(frame_response_with(close, "GET", false, &limits)),
            "body bytes"
        );
    }

    #[test]
    fn huge_hex_chunk_size_is_refused_before_its_data() {
        // 16 hex digits fit in u64; the default limit refuses them at once instead of
        // waiting for 2^64 bytes. 17 digits are malformed.
        let huge = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n";
        assert_eq!(limit(frame_request(huge)), "chunked body bytes");
        let over_default = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                    4000001\r\n";
        assert_eq!(limit(frame_request(over_default)), "chunked body bytes");
        let longer = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n";
        assert!(matches!(frame_request(longer), Err(HttpError::Framing(_))));
        let mut unbounded = ChunkedScanner::new();
        assert_eq!(unbounded.feed(b"ffffffffffffffff\r\nab"), Ok(None));
    }
}

//! How long a message body is, decided from the head alone (RFC 9112 §6.3).

use super::chunked::is_tchar;
use super::{HttpError, RequestHead, ResponseHead};

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body: the message ends with its head.
    Empty,
    /// Exactly this many bytes follow the head (Content-Length).
    Fixed(u64),
    /// Chunked transfer coding; see [`ChunkedScanner`](super::ChunkedScanner).
    Chunked,
    /// The body runs until the server closes the connection (responses only).
    CloseDelimited,
    /// The head ends the HTTP conversation: the bytes after it belong to a tunnel
    /// (2xx to CONNECT) or another protocol (101 Switching Protocols).
    Tunnel,
}

/// The body length of a request.
///
/// Transfer-Encoding wins over Content-Length (RFC 9112 §6.3 rule 3); a request without
/// either has no body.
///
/// # Errors
/// Transfer-Encoding whose final coding is not `chunked` (the server could not find the
/// end), or any Transfer-Encoding in HTTP/1.0; Content-Length that is not a decimal
/// number or whose repeated values differ.
pub fn request_body_length(head: &RequestHead) -> Result<BodyLength, HttpError> {
    match transfer_coding(head.header_values("transfer-encoding"), head.version)? {
        Coding::Absent => {}
        Coding::ChunkedFinal => return Ok(BodyLength::Chunked),
        Coding::Other => {
            return Err(HttpError::Framing(
                "request Transfer-Encoding does not end in chunked".into(),
            ))
        }
    }
    Ok(
        match content_length(head.header_values("content-length"))? {
            Some(n) => BodyLength::Fixed(n),
            None => BodyLength::Empty,
        },
    )
}

/// The body length of a response to a request with method `request_method`.
///
/// In order: a response to HEAD, 1xx, 204 and 304 have no body; 101 and 2xx to CONNECT
/// end HTTP on the connection ([`BodyLength::Tunnel`]); then Transfer-Encoding (chunked
/// final, else close-delimited); then Content-Length; else close-delimited.
///
/// # Errors
/// Transfer-Encoding in HTTP/1.0, `chunked` applied twice, invalid or conflicting
/// Content-Length.
pub fn response_body_length(
    head: &ResponseHead,
    request_method: &str,
) -> Result<BodyLength, HttpError> {
    response_length(head.status, head.version, request_method, |name| {
        head.header_values(name)
    })
}

/// [`response_body_length`] of a head whose fields `values(name)` gives, wherever they are.
pub(super) fn response_length<'a, I>(
    status: u16,
    version: u8,
    request_method: &str,
    values: impl Fn(&'static str) -> I,
) -> Result<BodyLength, HttpError>
where
    I: Iterator<Item = &'a [u8]>,
{
    if status == 101 || (request_method == "CONNECT" && (200..300).contains(&status)) {
        return Ok(BodyLength::Tunnel);
    }
    if request_method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyLength::Empty);
    }
    match transfer_coding(values("transfer-encoding"), version)? {
        Coding::Absent => {}
        Coding::ChunkedFinal => return Ok(BodyLength::Chunked),
        Coding::Other => return Ok(BodyLength::CloseDelimited),
    }
    Ok(match content_length(values("content-length"))? {
        Some(n) => BodyLength::Fixed(n),
        None => BodyLength::CloseDelimited,
    })
}

enum Coding {
    Absent,
    ChunkedFinal,
    Other,
}

/// Reads the transfer codings across every Transfer-Encoding line.
fn transfer_coding<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    version: u8,
) -> Result<Coding, HttpError> {
    let mut present = false;
    let mut codings = 0usize;
    let mut chunked = 0usize;
    let mut last_chunked = false;
    for value in values {
        present = true;
        for element in value.split(|&b| b == b',') {
            // Parameters (`;q=…`) do not change which coding it is.
            let name = element
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            if name.is_empty() {
                continue;
            }
            if !name.iter().all(|&b| is_tchar(b)) {
                return Err(HttpError::Framing("invalid Transfer-Encoding".into()));
            }
            codings += 1;
            last_chunked = name.eq_ignore_ascii_case(b"chunked");
            chunked += usize::from(last_chunked);
        }
    }
    if !present {
        return Ok(Coding::Absent);
    }
    if version == 0 {
        // RFC 9112 §6.1: such framing is faulty even with a Content-Length.
        return Err(HttpError::Framing(
            "Transfer-Encoding in an HTTP/1.0 message".into(),
        ));
    }
    if codings == 0 {
        return Err(HttpError::Framing("empty Transfer-Encoding".into()));
    }
    if chunked > 1 {
        return Err(HttpError::Framing("chunked applied more than once".into()));
    }
    Ok(if last_chunked {
        Coding::ChunkedFinal
    } else {
        Coding::Other
    })
}

/// The Content-Length across every line and list element; repeats must agree.
fn content_length<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Option<u64>, HttpError> {
    let mut found = None;
    for value in values {
        for element in value.split(|&b| b == b',') {
            let n = parse_decimal(element.trim_ascii()).ok_or_else(|| {
                HttpError::Framing(format!(
                    "invalid Content-Length {:?}",
                    String::from_utf8_lossy(value)
                ))
            })?;
            match found {
                Some(f) if f != n => {
                    return Err(HttpError::Framing(format!(
                        "conflicting Content-Length values {f} and {n}"
                    )))
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let d = char::from(b).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_request_head, parse_response_head};

    fn req(head: &str) -> Result<BodyLength, HttpError> {
        let head = parse_request_head(head.as_bytes()).unwrap().unwrap();
        request_body_length(&head)
    }

    fn res(head: &str, method: &str) -> Result<BodyLength, HttpError> {
        let head = parse_response_head(head.as_bytes()).unwrap().unwrap();
        response_body_length(&head, method)
    }

    #[test]
    fn request_without_length_has_no_body() {
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(BodyLength::Empty)
        );
    }

    #[test]
    fn request_content_length() {
        assert_eq!(
            req("POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\n"),
            Ok(BodyLength::Fixed(42))
        );
        assert_eq!(
            req("POST / HTTP/1.1\r\ncontent-length: 007\r\n\r\n"),
            Ok(BodyLength::Fixed(7))
        );
        // Identical repeats are one value.
        assert_eq!(
            req("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n"),
            Ok(BodyLength::Fixed(5))
        );
    }

    #[test]
    fn conflicting_or_invalid_content_length_is_an_error() {
        for head in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1 0\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5,\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
        ] {
            assert!(matches!(req(head), Err(HttpError::Framing(_))), "{head:?}");
        }
    }

    #[test]
    fn request_chunked_wins_over_content_length() {
        assert_eq!(
            req("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(BodyLength::Chunked)
        );
        assert_eq!(
            req("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED\r\nContent-Length: 3\r\n\r\n"),
            Ok(BodyLength::Chunked)
        );
    }

    #[test]
    fn request_transfer_encoding_not_ending_in_chunked_is_an_error() {
        for head in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(matches!(req(head), Err(HttpError::Framing(_))), "{head:?}");
        }
    }

    #[test]
    fn responses_without_body() {
        let cl = "Content-Length: 10\r\n\r\n";
        assert_eq!(
            res(&format!("HTTP/1.1 200 OK\r\n{cl}"), "HEAD"),
            Ok(BodyLength::Empty)
        );
        for status in [
            "100 Continue",
            "103 Early Hints",
            "204 No Content",
            "304 Not Modified",
        ] {
            assert_eq!(
                res(&format!("HTTP/1.1 {status}\r\n{cl}"), "GET"),
                Ok(BodyLength::Empty),
                "{status}"
            );
        }
    }

    #[test]
    fn responses_that_end_http() {
        assert_eq!(
            res("HTTP/1.1 200 Connection established\r\n\r\n", "CONNECT"),
            Ok(BodyLength::Tunnel)
        );
        assert_eq!(
            res(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                "GET"
            ),
            Ok(BodyLength::Tunnel)
        );
        // A refused CONNECT has an ordinary body.
        assert_eq!(
            res("HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n", "CONNECT"),
            Ok(BodyLength::Fixed(2))
        );
    }

    #[test]
    fn response_chunked_content_length_and_close() {
        assert_eq!(
            res(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n",
                "GET"
            ),
            Ok(BodyLength::Chunked)
        );
        assert_eq!(
            res("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET"),
            Ok(BodyLength::CloseDelimited)
        );
        assert_eq!(
            res(
                "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n",
                "POST"
            ),
            Ok(BodyLength::Fixed(9))
        );
        assert_eq!(
            res("HTTP/1.0 200 OK\r\n\r\n", "GET"),
            Ok(BodyLength::CloseDelimited)
        );
        assert!(res(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "GET"
        )
        .is_err());
        assert!(res(
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET"
        )
        .is_err());
    }
}

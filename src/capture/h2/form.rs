//! An HTTP/2 message written in HTTP/1.1 form, the form every `.gor` record has (the
//! recording contract that replay reads):
//!
//! - request: `METHOD PATH HTTP/1.1`, `Host: <:authority>` first, the other fields as
//!   received (pseudo-fields, `host`, `content-length` and `transfer-encoding` dropped),
//!   `X-Nprt-Protocol: HTTP/2`, then `Content-Length: N` and the body, or, when the request
//!   had trailers, `Transfer-Encoding: chunked` with the trailers in the chunked trailer
//!   section;
//! - response: `HTTP/1.1 <status> <reason>`, the fields as received (same drops), then the
//!   body chunked with the trailers after the last chunk when it had trailers (gRPC), else
//!   `Content-Length: N` (a trailers-only answer is its fields and `Content-Length: 0`).

use crate::http::{
    parse_request_head_with, parse_response_head_with, HeadLimits, RequestHead, ResponseHead,
};

/// Decoded header fields, in the order received.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The marker field that says a recorded request came over HTTP/2
/// ([`crate::recording::PROTOCOL_HEADER`], read by [`crate::recording::recorded_over_http2`]).
pub const PROTOCOL_MARKER: &str = "X-Nprt-Protocol: HTTP/2";

/// Why a message cannot be written in HTTP/1.1 form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormError {
    /// A pseudo-field is missing or malformed, or a field has bytes HTTP/1.1 cannot carry.
    Malformed,
    /// The head is beyond the header count or size limits.
    Limit,
}

/// The value of pseudo-field `name`.
pub fn pseudo<'a>(fields: &'a Fields, name: &[u8]) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(n, _)| n.as_slice() == name)
        .map(|(_, v)| v.as_slice())
}

/// Whether a field name and value can be written as an HTTP/1.1 line unchanged: a token
/// for the name, no control byte but HTAB in the value (RFC 9110 §5.5; a CR or LF would
/// inject lines, another control byte makes the record unreadable as HTTP/1.1).
fn writable(name: &[u8], value: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
        && !value.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f)
}

/// Appends the regular fields of `fields` as lines, the ones HTTP/1.1 framing replaces left
/// out.
fn write_fields(out: &mut Vec<u8>, fields: &Fields) -> Result<(), FormError> {
    for (name, value) in fields {
        if name.first() == Some(&b':') {
            continue;
        }
        if !writable(name, value) {
            return Err(FormError::Malformed);
        }
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_slice(),
            b"host" | b"content-length" | b"transfer-encoding"
        ) {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

/// Appends the framing fields, the blank line and the body (chunked with `trailers`).
fn write_body(
    out: &mut Vec<u8>,
    body: &[u8],
    trailers: Option<&Fields>,
) -> Result<usize, FormError> {
    let Some(trailers) = trailers else {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        let head_len = out.len();
        out.extend_from_slice(body);
        return Ok(head_len);
    };
    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
    let head_len = out.len();
    if !body.is_empty() {
        out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        if name.first() == Some(&b':') {
            continue;
        }
        if !writable(name, value) {
            return Err(FormError::Malformed);
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(head_len)
}

fn parsed<T>(r: Result<Option<T>, crate::http::HttpError>) -> Result<T, FormError> {
    match r {
        Ok(Some(head)) => Ok(head),
        Err(e) if e.is_limit() => Err(FormError::Limit),
        _ => Err(FormError::Malformed),
    }
}

/// A request in HTTP/1.1 form and its parsed head.
pub fn request(
    fields: &Fields,
    body: &[u8],
    trailers: Option<&Fields>,
    limits: &HeadLimits,
) -> Result<(Vec<u8>, RequestHead), FormError> {
    let method = pseudo(fields, b":method").ok_or(FormError::Malformed)?;
    let path = pseudo(fields, b":path").ok_or(FormError::Malformed)?;
    let token = |s: &[u8]| !s.is_empty() && s.iter().all(|c| c.is_ascii_graphic());
    if !token(method) || !token(path) {
        return Err(FormError::Malformed);
    }
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let host = pseudo(fields, b":authority").or_else(|| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"host"))
            .map(|(_, v)| v.as_slice())
    });
    if let Some(host) = host {
        if !writable(b"host", host) {
            return Err(FormError::Malformed);
        }
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(host);
        out.extend_from_slice(b"\r\n");
    }
    write_fields(&mut out, fields)?;
    out.extend_from_slice(PROTOCOL_MARKER.as_bytes());
    out.extend_from_slice(b"\r\n");
    let head_len = write_body(&mut out, body, trailers)?;
    let head = parsed(parse_request_head_with(&out, limits))?;
    debug_assert_eq!(head.head_len, head_len);
    Ok((out, head))
}

/// A response in HTTP/1.1 form and its parsed head. An answer HTTP/1.1 gives no body (to
/// HEAD, a 204 or a 304) is written without one, so that it frames as it is stored.
pub fn response(
    fields: &Fields,
    mut body: &[u8],
    mut trailers: Option<&Fields>,
    head_request: bool,
    limits: &HeadLimits,
) -> Result<(Vec<u8>, ResponseHead), FormError> {
    let status = pseudo(fields, b":status")
        .and_then(|s| std::str::from_utf8(s).ok())
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or(FormError::Malformed)?;
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    if head_request || status == 204 || status == 304 {
        (body, trailers) = (&[], None);
    }
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    write_fields(&mut out, fields)?;
    write_body(&mut out, body, trailers)?;
    let head = parsed(parse_response_head_with(&out, limits))?;
    Ok((out, head))
}

//! Request and response heads, parsed with httparse.

use std::mem::MaybeUninit;

/// Most headers a head may carry by default before it is rejected.
pub const MAX_HEADERS: usize = 128;

/// Bounds on one message from an untrusted peer. A message beyond one is refused with
/// [`HttpError::Limit`], so the caller can count it apart from malformed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Header fields a head may carry.
    pub max_headers: usize,
    /// Bytes a head may take, start line and the blank line that ends it included.
    pub max_head_bytes: usize,
    /// Body bytes a message may declare (Content-Length) or carry (the sum of its chunk
    /// sizes, checked as each size is read: a huge hex size is refused before any data).
    pub max_body_bytes: u64,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            max_headers: MAX_HEADERS,
            max_head_bytes: 64 * 1024,
            max_body_bytes: 64 << 20,
        }
    }
}

/// One header field as it appeared on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

/// A parsed request line and header block.
///
/// The head is kept as one copy of its bytes plus the positions of its parts (two
/// allocations), where a `String` per method, target, field name and value took seven for
/// a head with two fields: a replay at full rate parses tens of thousands of heads a second
/// on one thread and frees them on others.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The head as it was on the wire, start line through the blank line.
    raw: Box<[u8]>,
    method: Span,
    target: Span,
    fields: Box<[(Span, Span)]>,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Length in bytes of the head, including the blank line that ends it.
    pub head_len: usize,
}

/// Where a part of [`RequestHead::raw`] is: start and end offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span(u32, u32);

impl Span {
    /// The span of `part` within `whole`; an empty span when `part` is not a slice of it.
    fn of(whole: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
        let end = start
            .checked_add(part.len())
            .filter(|&end| end <= whole.len());
        match (u32::try_from(start), end.map(u32::try_from)) {
            (Ok(from), Some(Ok(to))) => Span(from, to),
            _ => Span(0, 0),
        }
    }

    fn range(self) -> std::ops::Range<usize> {
        self.0 as usize..self.1 as usize
    }
}

impl std::fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &self.method())
            .field("target", &self.target())
            .field("version", &self.version)
            .field("headers", &self.headers().collect::<Vec<_>>())
            .field("head_len", &self.head_len)
            .finish()
    }
}

/// One header field of a [`RequestHead`], borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
}

/// A parsed status line and header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub version: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<Header>,
    pub head_len: usize,
}

/// Why bytes are not an HTTP/1.x message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("malformed HTTP head: {0}")]
    Head(String),
    #[error("malformed HTTP framing: {0}")]
    Framing(String),
    /// A configured [`HeadLimits`] bound was exceeded; `what` names it.
    #[error("HTTP {what} over the limit of {limit}")]
    Limit { what: &'static str, limit: u64 },
}

impl HttpError {
    /// Whether this is a [`HeadLimits`] bound rather than malformed input.
    pub fn is_limit(&self) -> bool {
        matches!(self, HttpError::Limit { .. })
    }
}

/// Values of every field called `name` (ASCII case-insensitive), in wire order.
fn values<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

impl RequestHead {
    /// Copies the head that httparse parsed out of `buf` (`head_len` bytes long).
    fn new(buf: &[u8], req: &httparse::Request<'_, '_>, head_len: usize) -> RequestHead {
        let buf = &buf[..head_len];
        let part = |s: Option<&str>| s.map_or(Span(0, 0), |s| Span::of(buf, s.as_bytes()));
        RequestHead {
            raw: buf.into(),
            method: part(req.method),
            target: part(req.path),
            fields: req
                .headers
                .iter()
                .map(|h| (Span::of(buf, h.name.as_bytes()), Span::of(buf, h.value)))
                .collect(),
            version: req.version.unwrap_or(1),
            head_len,
        }
    }

    /// A part that httparse handed out as `str`, so valid UTF-8: checking it again takes a
    /// few nanoseconds on a few bytes and no `unsafe`.
    fn text(&self, span: Span) -> &str {
        std::str::from_utf8(&self.raw[span.range()]).unwrap_or_default()
    }

    /// The method, as sent (methods are case-sensitive).
    pub fn method(&self) -> &str {
        self.text(self.method)
    }

    /// The request target as sent: usually origin-form, path plus optional query.
    pub fn target(&self) -> &str {
        self.text(self.target)
    }

    /// The header fields in wire order, names in the case they were sent in.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = Field<'_>> + '_ {
        self.fields.iter().map(|&(name, value)| Field {
            name: self.text(name),
            value: &self.raw[value.range()],
        })
    }

    /// The header fields in wire order as bytes, for loops that only compare or copy
    /// names: [`RequestHead::headers`] checks each name is UTF-8 again.
    pub fn header_bytes(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.fields
            .iter()
            .map(|&(name, value)| (&self.raw[name.range()], &self.raw[value.range()]))
    }

    /// The first value of the field `name`, compared ASCII case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_values(name).next()
    }

    /// Every value of the field `name`: a field may be repeated, and some (Content-Length,
    /// Transfer-Encoding) must be read across all their lines.
    pub fn header_values<'n>(&self, name: &'n str) -> impl Iterator<Item = &[u8]> + use<'_, 'n> {
        self.header_bytes()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    /// Whether the client will wait for a `100 Continue` before sending its body, so the
    /// response stream may start with an interim response.
    ///
    /// RFC 9110 §10.1.1: the expectation is ignored in HTTP/1.0 requests.
    pub fn expects_continue(&self) -> bool {
        self.version >= 1
            && self
                .header("expect")
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"))
    }
}

impl ResponseHead {
    /// The first value of the field `name`, compared ASCII case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        first(&self.headers, name)
    }

    /// Every value of the field `name`, in wire order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        values(&self.headers, name)
    }

    /// Whether this is an interim (1xx) response that precedes the final one, such as
    /// `100 Continue` or `103 Early Hints`. `101 Switching Protocols` is final: the
    /// connection stops speaking HTTP/1.x after it.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

fn first<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

fn collect_headers(headers: &[httparse::Header<'_>]) -> Vec<Header> {
    headers
        .iter()
        .map(|h| Header {
            name: h.name.to_owned(),
            value: h.value.to_vec(),
        })
        .collect()
}

/// Parses a request head at the start of `buf`, within the default [`HeadLimits`].
///
/// # Errors
/// `Ok(None)` means the head is not complete yet; an error means it can never be valid.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
    parse_request_head_with(buf, &HeadLimits::default())
}

/// Parses a request head at the start of `buf`, refusing one beyond `limits`.
///
/// # Errors
/// As [`parse_request_head`]; [`HttpError::Limit`] for too many header fields or too many
/// head bytes (also when the head is not complete but already longer than allowed).
pub fn parse_request_head_with(
    buf: &[u8],
    limits: &HeadLimits,
) -> Result<Option<RequestHead>, HttpError> {
    with_headers(limits.max_headers, buf, |headers| {
        let mut req = httparse::Request::new(&mut []);
        let parsed = req.parse_with_uninit_headers(buf, headers);
        match parsed {
            Ok(httparse::Status::Complete(head_len)) => {
                check_head_len(head_len, limits)?;
                Ok(Some(RequestHead::new(buf, &req, head_len)))
            }
            Ok(httparse::Status::Partial) => {
                check_head_len(buf.len(), limits)?;
                Ok(None)
            }
            Err(e) => Err(head_error(e, limits)),
        }
    })
}

/// Parses a response head at the start of `buf`, within the default [`HeadLimits`].
///
/// # Errors
/// `Ok(None)` means the head is not complete yet; an error means it can never be valid.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    parse_response_head_with(buf, &HeadLimits::default())
}

/// Parses a response head at the start of `buf`, refusing one beyond `limits`.
///
/// # Errors
/// As [`parse_response_head`]; [`HttpError::Limit`] as in [`parse_request_head_with`].
pub fn parse_response_head_with(
    buf: &[u8],
    limits: &HeadLimits,
) -> Result<Option<ResponseHead>, HttpError> {
    with_response_head(buf, limits, |head| {
        Ok(ResponseHead {
            version: head.version,
            status: head.status,
            reason: head.reason.to_owned(),
            headers: collect_headers(head.headers),
            head_len: head.head_len,
        })
    })
}

/// A response head parsed in place, its fields borrowed from the buffer.
pub(super) struct RawResponseHead<'h, 'b> {
    pub version: u8,
    pub status: u16,
    pub reason: &'b str,
    pub headers: &'h [httparse::Header<'b>],
    pub head_len: usize,
}

impl<'b> RawResponseHead<'_, 'b> {
    /// Every value of the field `name`, in wire order.
    pub fn values<'n>(&self, name: &'n str) -> impl Iterator<Item = &'b [u8]> + use<'_, 'b, 'n> {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// Parses a response head at the start of `buf` within `limits` and hands it to `take`
/// without copying it; `Ok(None)` when the head is not complete yet.
pub(super) fn with_response_head<T>(
    buf: &[u8],
    limits: &HeadLimits,
    take: impl FnOnce(&RawResponseHead<'_, '_>) -> Result<T, HttpError>,
) -> Result<Option<T>, HttpError> {
    with_headers(limits.max_headers, buf, |headers| {
        let mut res = httparse::Response::new(&mut []);
        let config = httparse::ParserConfig::default();
        match config.parse_response_with_uninit_headers(&mut res, buf, headers) {
            Ok(httparse::Status::Complete(head_len)) => {
                check_head_len(head_len, limits)?;
                take(&RawResponseHead {
                    version: res.version.unwrap_or(1),
                    status: res.code.unwrap_or_default(),
                    reason: res.reason.unwrap_or_default(),
                    headers: res.headers,
                    head_len,
                })
                .map(Some)
            }
            Ok(httparse::Status::Partial) => {
                check_head_len(buf.len(), limits)?;
                Ok(None)
            }
            Err(e) => Err(head_error(e, limits)),
        }
    })
}

/// Runs `parse` on `buf` with room for `max` header fields: on the stack up to
/// [`MAX_HEADERS`], else on the heap, sized by what `buf` can hold (a field line takes at
/// least 3 bytes), never by `max` alone. The room is left uninitialised: httparse writes
/// only the fields it finds, and clearing 4 KiB for every head cost more than parsing it.
fn with_headers<'b, T>(
    max: usize,
    buf: &'b [u8],
    parse: impl FnOnce(&mut [MaybeUninit<httparse::Header<'b>>]) -> T,
) -> T {
    if max <= MAX_HEADERS {
        let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        parse(&mut headers[..max])
    } else {
        let mut headers = Vec::new();
        headers.resize_with(max.min(buf.len() / 3 + 1), MaybeUninit::uninit);
        parse(&mut headers)
    }
}

fn check_head_len(len: usize, limits: &HeadLimits) -> Result<(), HttpError> {
    if len > limits.max_head_bytes {
        return Err(HttpError::Limit {
            what: "head bytes",
            limit: limits.max_head_bytes as u64,
        });
    }
    Ok(())
}

fn head_error(e: httparse::Error, limits: &HeadLimits) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => HttpError::Limit {
            what: "header fields",
            limit: limits.max_headers as u64,
        },
        e => HttpError::Head(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_parts_come_from_the_copied_head() {
        let wire =
            b"PATCH /a/b?c=1 HTTP/1.0\r\nHost: x\r\nX-Obs: caf\xe9\r\nx-obs:  2 \r\n\r\nbody";
        let head = parse_request_head(wire).unwrap().unwrap();
        assert_eq!(head.method(), "PATCH");
        assert_eq!(head.target(), "/a/b?c=1");
        assert_eq!(head.version, 0);
        assert_eq!(head.head_len, wire.len() - 4);
        let fields: Vec<_> = head.headers().map(|f| (f.name, f.value)).collect();
        assert_eq!(
            fields,
            [
                ("Host", &b"x"[..]),
                ("X-Obs", &b"caf\xe9"[..]),
                ("x-obs", &b"2"[..]),
            ]
        );
        assert_eq!(head.headers().len(), 3);
        assert_eq!(head.header("HOST"), Some(&b"x"[..]));
        assert_eq!(head.header_values("X-OBS").count(), 2);
        assert_eq!(head.header("cookie"), None);
        let shown = format!("{head:?}");
        assert!(shown.contains(r#"method: "PATCH""#) && shown.contains(r#"name: "X-Obs""#));
        // The head owns its bytes: nothing after it is kept.
        assert_eq!(
            head.clone(),
            parse_request_head(&wire[..wire.len() - 4])
                .unwrap()
                .unwrap()
        );
    }

    #[test]
    fn a_span_outside_the_head_is_empty() {
        let whole = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(Span::of(whole, &whole[4..5]), Span(4, 5));
        assert_eq!(Span::of(whole, b"elsewhere"), Span(0, 0));
        assert_eq!(Span::of(&whole[4..], whole), Span(0, 0));
    }
}

//! Request and response heads, parsed with httparse.

/// Most headers a head may carry before it is rejected.
pub const MAX_HEADERS: usize = 128;

/// One header field as it appeared on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

/// A parsed request line and header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request target as sent: usually origin-form, path plus optional query.
    pub target: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<Header>,
    /// Length in bytes of the head, including the blank line that ends it.
    pub head_len: usize,
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
}

/// Values of every field called `name` (ASCII case-insensitive), in wire order.
fn values<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

impl RequestHead {
    /// The first value of the field `name`, compared ASCII case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        first(&self.headers, name)
    }

    /// Every value of the field `name`: a field may be repeated, and some (Content-Length,
    /// Transfer-Encoding) must be read across all their lines.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        values(&self.headers, name)
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

/// Parses a request head at the start of `buf`.
///
/// # Errors
/// `Ok(None)` means the head is not complete yet; an error means it can never be valid.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => Ok(Some(RequestHead {
            method: req.method.unwrap_or_default().to_owned(),
            target: req.path.unwrap_or_default().to_owned(),
            version: req.version.unwrap_or(1),
            headers: collect_headers(req.headers),
            head_len,
        })),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(HttpError::Head(e.to_string())),
    }
}

/// Parses a response head at the start of `buf`.
///
/// # Errors
/// `Ok(None)` means the head is not complete yet; an error means it can never be valid.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => Ok(Some(ResponseHead {
            version: res.version.unwrap_or(1),
            status: res.code.unwrap_or_default(),
            reason: res.reason.unwrap_or_default().to_owned(),
            headers: collect_headers(res.headers),
            head_len,
        })),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(HttpError::Head(e.to_string())),
    }
}

//! Redaction of secrets in recorded HTTP: the values of credential headers and of query
//! parameters named like credentials are replaced by [`MARKER`].
//!
//! By default: the headers `Authorization`, `Proxy-Authorization`, `Cookie` and
//! `Set-Cookie`, and every query parameter whose name contains `token`, `key`, `secret`,
//! `password` or `auth` (ASCII case-insensitive, after percent-decoding). `--redact HEADER`
//! adds headers.
//!
//! Used by `nprt redact` (scrubbing a recording before it is shared), by `nprt capture
//! --redact`, and wherever a request target could reach a message a person reads.
//! Redaction keeps a message parseable and its body untouched: the start line and header
//! fields are rewritten in place, so Content-Length stays right and a redacted request still
//! replays (with the marker instead of the secret).
//!
//! Pure: bytes in, bytes out.

use std::borrow::Cow;

/// What a secret value is replaced with: plain letters, valid in a header value and in a
/// query without escaping.
pub const MARKER: &str = "REDACTED";

/// Headers whose values are always redacted.
pub const DEFAULT_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Words that make a query parameter a secret when its name contains one.
pub const SECRET_PARAM_WORDS: [&str; 5] = ["token", "key", "secret", "password", "auth"];

/// Which headers to redact, on top of the query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redactor {
    /// Lower-case header names.
    headers: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new(std::iter::empty::<&str>())
    }
}

impl Redactor {
    /// The default headers plus `extra` (names, any case).
    pub fn new<S: AsRef<str>>(extra: impl IntoIterator<Item = S>) -> Self {
        let mut headers: Vec<String> = DEFAULT_HEADERS.iter().map(|h| (*h).to_owned()).collect();
        for h in extra {
            let h = h.as_ref().trim().to_ascii_lowercase();
            if !h.is_empty() && !headers.contains(&h) {
                headers.push(h);
            }
        }
        Self { headers }
    }

    /// Whether the values of header `name` are redacted.
    pub fn is_secret_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// One line of text meant for a person (an error message quoting input): a secret
    /// header's value and secret query values replaced.
    pub fn line(&self, text: &str) -> String {
        let bytes = text.as_bytes();
        if let Some(new) = self.header_line(bytes) {
            return String::from_utf8_lossy(&new).into_owned();
        }
        redact_text(text).into_owned()
    }

    /// A request or response as on the wire with its secrets redacted: the request target's
    /// secret query values and the secret headers' values. The body and everything the
    /// head does not hold is left as it is; bytes that are not an HTTP head are returned
    /// unchanged.
    pub fn message<'a>(&self, raw: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(head_end) = find_head_end(raw) else {
            // No complete head (a cut record): redact the lines there are.
            return self.head_lines(raw, raw.len());
        };
        self.head_lines(raw, head_end)
    }

    /// Rewrites the lines of `raw[..head_end]`.
    fn head_lines<'a>(&self, raw: &'a [u8], head_end: usize) -> Cow<'a, [u8]> {
        let head = &raw[..head_end];
        let mut out: Option<Vec<u8>> = None;
        let mut at = 0;
        let mut first = true;
        let mut in_secret = false;
        while at < head.len() {
            let end = head[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(head.len(), |i| at + i + 1);
            let line = &head[at..end];
            let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
            let replaced = if first {
                self.start_line(line)
            } else if continuation && in_secret {
                // An obsolete folded line of a secret value: dropped with it.
                Some(Vec::new())
            } else {
                let r = self.header_line(line);
                in_secret = r.is_some() || (continuation && in_secret);
                r
            };
            first = false;
            match (replaced, &mut out) {
                (Some(new), Some(o)) => o.extend_from_slice(&new),
                (Some(new), None) => {
                    let mut o = raw[..at].to_vec();
                    o.extend_from_slice(&new);
                    out = Some(o);
                }
                (None, Some(o)) => o.extend_from_slice(line),
                (None, None) => {}
            }
            at = end;
        }
        match out {
            Some(mut o) => {
                o.extend_from_slice(&raw[head_end..]);
                Cow::Owned(o)
            }
            None => Cow::Borrowed(raw),
        }
    }

    /// A request line with its target redacted; `None` if unchanged (or a status line).
    fn start_line(&self, line: &[u8]) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(line).ok()?;
        let (method, rest) = text.split_once(' ')?;
        if method.starts_with("HTTP/") {
            return None;
        }
        let (target, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        match redact_target(target) {
            Cow::Borrowed(_) => None,
            Cow::Owned(t) => {
                let sep = if tail.is_empty() && !rest.contains(' ') {
                    ""
                } else {
                    " "
                };
                Some(format!("{method} {t}{sep}{tail}").into_bytes())
            }
        }
    }

    /// A header line with its value replaced when the header is secret.
    fn header_line(&self, line: &[u8]) -> Option<Vec<u8>> {
        let colon = line.iter().position(|&b| b == b':')?;
        let name = std::str::from_utf8(&line[..colon]).ok()?.trim();
        if !self.is_secret_header(name) {
            return None;
        }
        let ending: &[u8] = if line.ends_with(b"\r\n") {
            b"\r\n"
        } else if line.ends_with(b"\n") {
            b"\n"
        } else {
            b""
        };
        let mut out = line[..=colon].to_vec();
        out.extend_from_slice(b" ");
        out.extend_from_slice(MARKER.as_bytes());
        out.extend_from_slice(ending);
        Some(out)
    }
}

/// Where the head in `raw` ends (after its blank line), if it does.
fn find_head_end(raw: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at < raw.len() {
        let nl = raw[at..].iter().position(|&b| b == b'\n')? + at;
        let line = &raw[at..nl];
        if line.is_empty() || line == b"\r" {
            return Some(nl + 1);
        }
        at = nl + 1;
    }
    None
}

/// Whether a query parameter called `name` (raw, maybe percent-encoded) holds a secret.
pub fn is_secret_param(name: &str) -> bool {
    let decoded = percent_decode(name).to_ascii_lowercase();
    SECRET_PARAM_WORDS.iter().any(|w| decoded.contains(w))
}

/// A request target (origin or absolute form) with the values of secret query parameters
/// replaced by [`MARKER`], and the password (or a bare token) in the user information of an
/// absolute URL hidden. Borrowed when nothing changed.
pub fn redact_target(target: &str) -> Cow<'_, str> {
    let (before_fragment, fragment) = match target.split_once('#') {
        Some((t, f)) => (t, Some(f)),
        None => (target, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    let path = strip_userinfo(path);
    let query = query.map(redact_query);
    let changed = matches!(path, Cow::Owned(_)) || matches!(query, Some(Cow::Owned(_)));
    if !changed {
        return Cow::Borrowed(target);
    }
    let mut out = path.into_owned();
    if let Some(q) = query {
        out.push('?');
        out.push_str(&q);
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Cow::Owned(out)
}

/// Every URL-like word in free text (an error message, a log line) passed through
/// [`redact_target`]: a word containing `?` or `://`.
pub fn redact_text(text: &str) -> Cow<'_, str> {
    if !text.contains('?') && !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while !rest.is_empty() {
        let word_end = rest
            .find(|c: char| c.is_whitespace() || c == '`' || c == '"' || c == '\'')
            .unwrap_or(rest.len());
        let word = &rest[..word_end];
        match redact_target(word) {
            Cow::Owned(w) => {
                changed = true;
                out.push_str(&w);
            }
            Cow::Borrowed(w) => out.push_str(w),
        }
        let sep_len = rest[word_end..].chars().next().map_or(0, char::len_utf8);
        out.push_str(&rest[word_end..word_end + sep_len]);
        rest = &rest[word_end + sep_len..];
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

fn redact_query(query: &str) -> Cow<'_, str> {
    let mut changed = false;
    let parts: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if is_secret_param(name) && value != MARKER => {
                changed = true;
                Cow::Owned(format!("{name}={MARKER}"))
            }
            _ => Cow::Borrowed(pair),
        })
        .collect();
    if changed {
        Cow::Owned(parts.join("&"))
    } else {
        Cow::Borrowed(query)
    }
}

/// `scheme://user:pass@host/p` → `scheme://user:***@host/p` (the user is kept, it helps to
/// tell which credentials were used; a user without a password may itself be a token, so
/// `scheme://token@host` → `scheme://***@host`); anything else unchanged.
fn strip_userinfo(path: &str) -> Cow<'_, str> {
    const HIDDEN: &str = "***";
    let Some((scheme, rest)) = path.split_once("://") else {
        return Cow::Borrowed(path);
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return Cow::Borrowed(path);
    };
    let (userinfo, host) = (&rest[..at], &rest[at + 1..]);
    let kept = match userinfo.split_once(':') {
        Some((_, HIDDEN)) => return Cow::Borrowed(path),
        Some((user, _)) => format!("{user}:{HIDDEN}"),
        None if userinfo == HIDDEN => return Cow::Borrowed(path),
        None => HIDDEN.to_owned(),
    };
    Cow::Owned(format!("{scheme}://{kept}@{host}"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(r: &Redactor, raw: &str) -> String {
        String::from_utf8(r.message(raw.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn default_headers_and_query_parameters() {
        let r = Redactor::default();
        let raw =
            "GET /a?id=7&access_token=abc&API_KEY=k1&Password=p&x=1&authCode=z#f HTTP/1.1\r\n\
                   Host: h\r\nAuthorization: Bearer s3cret\r\ncookie: sid=1; b=2\r\n\
                   Proxy-Authorization:Basic eA==\r\nX-Other: keep\r\nContent-Length: 4\r\n\r\n\
                   body";
        assert_eq!(
            redacted(&r, raw),
            "GET /a?id=7&access_token=REDACTED&API_KEY=REDACTED&Password=REDACTED&x=1&authCode=REDACTED#f HTTP/1.1\r\n\
             Host: h\r\nAuthorization: REDACTED\r\ncookie: REDACTED\r\n\
             Proxy-Authorization: REDACTED\r\nX-Other: keep\r\nContent-Length: 4\r\n\r\nbody"
        );
        let parsed = crate::http::parse_request_head(redacted(&r, raw).as_bytes());
        assert!(parsed.unwrap().is_some(), "a redacted request still parses");
    }

    #[test]
    fn responses_extra_headers_and_untouched_messages() {
        let r = Redactor::new(["X-Api-Key"]);
        let res = "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nx-api-key: k\r\n\r\nSet-Cookie: body";
        assert_eq!(
            redacted(&r, res),
            "HTTP/1.1 200 OK\r\nSet-Cookie: REDACTED\r\nx-api-key: REDACTED\r\n\r\nSet-Cookie: body"
        );
        let plain = b"GET /a?q=1 HTTP/1.1\r\nHost: h\r\n\r\n";
        assert!(matches!(r.message(plain), Cow::Borrowed(_)));
        assert!(matches!(r.message(b"\x00\x01 not http"), Cow::Borrowed(_)));
        assert_eq!(
            redacted(&r, "GET / HTTP/1.1\r\nCookie: a\r\n b\r\nX: 1\r\n\r\n"),
            "GET / HTTP/1.1\r\nCookie: REDACTED\r\nX: 1\r\n\r\n"
        );
        assert_eq!(r.line("Authorization: Bearer x"), "Authorization: REDACTED");
        // A cut head still has its lines redacted.
        assert_eq!(
            redacted(&r, "GET /?token=t HTTP/1.1\r\nCookie: c"),
            "GET /?token=REDACTED HTTP/1.1\r\nCookie: REDACTED"
        );
    }

    #[test]
    fn targets_and_free_text() {
        assert_eq!(redact_target("/p?%74oken=1&a=2"), "/p?%74oken=REDACTED&a=2");
        assert_eq!(
            redact_target("http://u:pw@host:80/p?secret=x"),
            "http://u:***@host:80/p?secret=REDACTED"
        );
        assert_eq!(
            redact_target("https://ghp_tok@github.com/o/r"),
            "https://***@github.com/o/r"
        );
        assert!(matches!(
            redact_target("http://u:***@h/p"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(redact_target("/p?q=1&flag"), Cow::Borrowed(_)));
        assert_eq!(
            redact_text("request target `/x?token=abc|d`: invalid uri character"),
            "request target `/x?token=REDACTED`: invalid uri character"
        );
        assert!(matches!(redact_text("connect: refused"), Cow::Borrowed(_)));
    }
}

//! Replay targets (`NAME=URL`) and the requests sent to them.

use crate::http::RequestHead;
use crate::recording::Exchange;
use bytes::Bytes;
use hyper::Uri;
use std::borrow::Cow;
use std::io::Write as _;

/// A named service that receives replayed requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    /// Scheme and authority, plus an optional path prefix (without a trailing slash).
    pub base: Uri,
}

impl Target {
    /// Parses `NAME=URL`, e.g. `stable=http://127.0.0.1:8080`.
    ///
    /// # Errors
    /// A message saying what is wrong and what is expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, url) = text.split_once('=').ok_or_else(|| {
            format!("`{text}`: expected NAME=URL, e.g. stable=http://127.0.0.1:8080")
        })?;
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            return Err(format!(
                "`{text}`: the target name must be letters, digits, '-', '_' or '.'"
            ));
        }
        let base: Uri = url
            .parse()
            .map_err(|e| format!("`{text}`: `{url}` is not a URL: {e}"))?;
        match base.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => {
                return Err(format!(
                    "`{text}`: scheme `{other}` is not supported; use http:// or https://"
                ))
            }
            None => {
                return Err(format!(
                    "`{text}`: the URL needs a scheme, e.g. http://{url}"
                ))
            }
        }
        if base.authority().is_none() {
            return Err(format!("`{text}`: the URL has no host"));
        }
        if base.query().is_some() {
            return Err(format!("`{text}`: the URL must not carry a query"));
        }
        Ok(Target {
            name: name.to_owned(),
            base,
        })
    }

    /// The URI a recorded request target is sent to on this service.
    pub fn uri_for(&self, recorded_target: &str) -> Result<Uri, String> {
        let prefix = self.base.path().trim_end_matches('/');
        let path_and_query = origin_form(recorded_target);
        let authority = self.base.authority().map_or("", |a| a.as_str());
        let scheme = self.base.scheme_str().unwrap_or("http");
        format!("{scheme}://{authority}{prefix}{path_and_query}")
            .parse()
            .map_err(|e| {
                // Observations and reports carry this: never with secret query values.
                let shown = crate::redact::redact_target(recorded_target);
                format!("request target `{shown}`: {e}")
            })
    }
}

/// The path and query as they go on the request line, checked by the rules of the `http`
/// crate's URIs, which the HTTP/2 path (and hyper) applies: both protocols send, and refuse,
/// the same requests. A target of plain RFC 3986 characters, nearly every one, is taken as
/// it is; any other goes through `http`'s parser, which also drops a `#fragment`.
fn checked_path(path: &str) -> Result<Cow<'_, str>, hyper::http::uri::InvalidUri> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b);
    if path.len() < usize::from(u16::MAX) && path.bytes().all(plain) {
        return Ok(Cow::Borrowed(path));
    }
    hyper::http::uri::PathAndQuery::try_from(path).map(|p| Cow::Owned(p.as_str().to_owned()))
}

/// Reduces an absolute-form request target (`http://host/p?q`) to origin form (`/p?q`).
fn origin_form(target: &str) -> &str {
    if target.starts_with('/') {
        return target;
    }
    match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => "/",
    }
}

/// Besides the hop-by-hop fields ([`crate::http::HOP_BY_HOP`]), those the client sets itself
/// for the new connection and body.
const SET_BY_CLIENT: [&str; 3] = ["host", "content-length", "expect"];

/// How recorded requests are changed before they are sent.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    /// `regex → replacement` applied in order to the request target (path and query);
    /// `$1`-style groups are expanded.
    pub urls: Vec<(regex::Regex, String)>,
    /// Headers set on every request, replacing recorded ones of the same name.
    pub set_headers: Vec<(String, String)>,
    /// Headers removed from every request (case-insensitive).
    pub remove_headers: Vec<String>,
    /// Send the recorded Host header instead of the target's.
    pub keep_host: bool,
}

impl Rewrite {
    /// Parses `REGEX=REPLACEMENT` for `--rewrite-url`.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse_url_rule(text: &str) -> Result<(regex::Regex, String), String> {
        let (pattern, replacement) = text.split_once('=').ok_or_else(|| {
            format!("`{text}`: expected REGEX=REPLACEMENT, e.g. '^/v1/(.*)=/v2/$1'")
        })?;
        let regex = regex::Regex::new(pattern).map_err(|e| format!("`{text}`: {e}"))?;
        Ok((regex, replacement.to_owned()))
    }

    /// Parses `NAME:VALUE` for `--set-header`.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse_header(text: &str) -> Result<(String, String), String> {
        // Messages name the header, never its value: it may be a credential.
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| "expected NAME:VALUE, e.g. 'X-Replay: 1'".to_owned())?;
        let name = name.trim();
        hyper::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a header name"))?;
        let value = value.trim();
        hyper::header::HeaderValue::from_str(value)
            .map_err(|_| format!("`{name}`: the value is not a valid header value"))?;
        Ok((name.to_owned(), value.to_owned()))
    }

    /// The request target after the `--rewrite-url` rules, borrowed when there are none.
    fn target<'a>(&self, recorded: &'a str) -> Cow<'a, str> {
        let mut target = Cow::Borrowed(recorded);
        for (regex, replacement) in &self.urls {
            if let Cow::Owned(changed) = regex.replace_all(&target, replacement.as_str()) {
                target = Cow::Owned(changed);
            }
        }
        target
    }
}

/// The header fields a replayed request carries: the recorded ones, in order, without the
/// hop-by-hop fields and those the Connection field names, without those the client sets
/// itself (Host, unless the rewrite keeps it; Content-Length; Expect) and without those the
/// rewrite removes or replaces; then the rewrite's own.
fn forwarded_headers<'a>(
    head: &'a RequestHead,
    rewrite: &'a Rewrite,
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
    // Allocates only when the request has a Connection field.
    let connection: Vec<&[u8]> = head.header_values("connection").collect();
    let named_by_connection =
        move |name: &[u8]| crate::http::lists_token(connection.iter().copied(), name);
    let replaced = |name: &[u8]| {
        rewrite
            .remove_headers
            .iter()
            .chain(rewrite.set_headers.iter().map(|(n, _)| n))
            .any(|r| r.as_bytes().eq_ignore_ascii_case(name))
    };
    head.header_bytes()
        .filter(move |&(name, _)| {
            let listed =
                |list: &[&str]| list.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(name));
            let kept_host = rewrite.keep_host && name.eq_ignore_ascii_case(b"host");
            let dropped = !kept_host
                && (listed(&crate::http::HOP_BY_HOP)
                    || listed(&SET_BY_CLIENT)
                    || named_by_connection(name));
            !dropped && !replaced(name)
        })
        .chain(
            rewrite
                .set_headers
                .iter()
                .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        )
}

/// Builds the request to send to `target` for a recorded exchange, for hyper's HTTP/2
/// client (HTTP/1.1 requests are written by `write_request`).
///
/// The Host header becomes the target's (the client sets it from the URI) unless the rewrite
/// keeps the recorded one; the body is the recorded body, de-chunked.
pub fn build_request(
    target: &Target,
    exchange: &Exchange,
    body: Bytes,
    rewrite: &Rewrite,
) -> Result<hyper::Request<http_body_util::Full<Bytes>>, String> {
    let head = &exchange.request_head;
    let uri = target.uri_for(&rewrite.target(head.target()))?;
    let mut builder = hyper::Request::builder().method(head.method()).uri(uri);
    for (name, value) in forwarded_headers(head, rewrite) {
        builder = builder.header(name, value);
    }
    builder
        .body(http_body_util::Full::new(body))
        .map_err(|e| format!("request {}: {e}", exchange.id))
}

/// Writes into `out` the HTTP/1.1 request `target` receives for a recorded exchange: the
/// method, the request target rewritten and put under the target's path prefix, the
/// forwarded header fields (as recorded, names in their recorded case), `Host: host` unless
/// the rewrite keeps the recorded Host, Content-Length, and the recorded body, de-chunked.
///
/// Written by hand rather than through hyper's `Request`: replaying sends recorded bytes
/// that are already valid HTTP, and at full rate building a header map and a URI for each
/// request was a large part of the client's work.
///
/// # Errors
/// The rewritten request target is not one a request line can carry.
pub(crate) fn write_request(
    out: &mut Vec<u8>,
    target: &Target,
    host: &str,
    exchange: &Exchange,
    body: &[u8],
    rewrite: &Rewrite,
) -> Result<(), String> {
    let head = &exchange.request_head;
    let rewritten = rewrite.target(head.target());
    let path = checked_path(origin_form(&rewritten)).map_err(|e| {
        // Observations and reports carry this: never with secret query values.
        let shown = crate::redact::redact_target(&rewritten);
        match rewritten {
            Cow::Borrowed(_) => format!("request target `{shown}`: {e}"),
            Cow::Owned(_) => {
                let recorded = crate::redact::redact_target(head.target());
                format!("request target `{shown}` (`{recorded}` after --rewrite-url): {e}")
            }
        }
    })?;
    out.clear();
    for part in [
        head.method().as_bytes(),
        b" ",
        target.base.path().trim_end_matches('/').as_bytes(),
        path.as_bytes(),
        b" HTTP/1.1\r\n",
    ] {
        out.extend_from_slice(part);
    }
    let mut host_sent = false;
    for (name, value) in forwarded_headers(head, rewrite) {
        host_sent |= name.eq_ignore_ascii_case(b"host");
        for part in [name, b": ", value, b"\r\n"] {
            out.extend_from_slice(part);
        }
    }
    if !host_sent {
        for part in [b"Host: ", host.as_bytes(), b"\r\n"] {
            out.extend_from_slice(part);
        }
    }
    // RFC 9110 §8.6: sent when there is a body, or when the method gives a body a meaning.
    if !body.is_empty() || matches!(head.method(), "POST" | "PUT" | "PATCH") {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(request: &str) -> Exchange {
        let request = Bytes::from(request.to_owned());
        Exchange {
            id: "1".into(),
            start_ns: 0,
            request_head: crate::http::parse_request_head(&request).unwrap().unwrap(),
            request,
            response: None,
        }
    }

    #[test]
    fn requests_lose_hop_headers_and_get_rewritten() {
        let t = Target::parse("a=http://127.0.0.1:9").unwrap();
        let e = exchange(
            "GET /v1/items?id=3 HTTP/1.1\r\nHost: prod\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nCookie: c\r\nAccept: */*\r\nX-Env: prod\r\n\r\n",
        );
        let plain = build_request(&t, &e, Bytes::new(), &Rewrite::default()).unwrap();
        assert_eq!(plain.uri(), "http://127.0.0.1:9/v1/items?id=3");
        let h = plain.headers();
        assert!(h.get("host").is_none(), "the client sets the target's Host");
        assert!(h.get("connection").is_none() && h.get("x-hop").is_none());
        assert_eq!(h.get("accept").unwrap(), "*/*");

        let rewrite = Rewrite {
            urls: vec![Rewrite::parse_url_rule("^/v1/(.*)=/v2/$1").unwrap()],
            set_headers: vec![Rewrite::parse_header("X-Env: staging").unwrap()],
            remove_headers: vec!["cookie".into()],
            keep_host: true,
        };
        let r = build_request(&t, &e, Bytes::new(), &rewrite).unwrap();
        assert_eq!(r.uri(), "http://127.0.0.1:9/v2/items?id=3");
        assert_eq!(r.headers().get("host").unwrap(), "prod");
        assert!(r.headers().get("cookie").is_none());
        let env: Vec<_> = r.headers().get_all("x-env").iter().collect();
        assert_eq!(env, ["staging"]);
        assert!(Rewrite::parse_url_rule("nope")
            .unwrap_err()
            .contains("REGEX=REPLACEMENT"));
        assert!(Rewrite::parse_header("Bad Name: x").is_err());
    }

    fn written(
        target: &str,
        request: &str,
        body: &[u8],
        rewrite: &Rewrite,
    ) -> Result<String, String> {
        let t = Target::parse(&format!("t={target}")).unwrap();
        let mut out = b"left over".to_vec();
        write_request(&mut out, &t, "target:9", &exchange(request), body, rewrite)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn http1_requests_are_written_as_recorded_less_hop_headers() {
        let recorded = "GET /v1/items?id=3 HTTP/1.1\r\nHost: prod\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nTE: trailers\r\nCookie: c\r\naccept: */*\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            written("http://t:9", recorded, b"", &Rewrite::default()).unwrap(),
            "GET /v1/items?id=3 HTTP/1.1\r\nCookie: c\r\naccept: */*\r\nHost: target:9\r\n\r\n"
        );
        let rewrite = Rewrite {
            urls: vec![Rewrite::parse_url_rule("^/v1/(.*)=/v2/$1").unwrap()],
            set_headers: vec![Rewrite::parse_header("Cookie: replay").unwrap()],
            remove_headers: vec!["ACCEPT".into()],
            keep_host: true,
        };
        assert_eq!(
            written("http://t:9/prefix/", recorded, b"", &rewrite).unwrap(),
            "GET /prefix/v2/items?id=3 HTTP/1.1\r\nHost: prod\r\nCookie: replay\r\n\r\n"
        );
        // The body goes with its length; POST says its length even when it is empty.
        let post = "POST http://old.example/form HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            written("http://t:9", post, b"a=1", &Rewrite::default()).unwrap(),
            "POST /form HTTP/1.1\r\nHost: target:9\r\nContent-Length: 3\r\n\r\na=1"
        );
        assert!(written("http://t:9", post, b"", &Rewrite::default())
            .unwrap()
            .contains("Content-Length: 0\r\n"));
    }

    #[test]
    fn http1_targets_follow_the_same_rules_as_http2() {
        // Accepted by both, the fragment dropped as the URI parser does.
        let odd = written(
            "http://t:9",
            "GET /a[1]|b?q={x}#frag HTTP/1.1\r\n\r\n",
            b"",
            &Rewrite::default(),
        );
        assert!(odd.unwrap().starts_with("GET /a[1]|b?q={x} HTTP/1.1\r\n"));
        let t = Target::parse("t=http://t:9").unwrap();
        assert_eq!(
            t.uri_for("/a[1]|b?q={x}#frag").unwrap(),
            "http://t:9/a[1]|b?q={x}"
        );
        // Refused by both, and the message hides the query's secrets.
        let bad = "GET /bad<path?token=sekrit HTTP/1.1\r\n\r\n";
        let e = written("http://t:9", bad, b"", &Rewrite::default()).unwrap_err();
        assert!(
            e.starts_with("request target `/bad<path?token=") && !e.contains("sekrit"),
            "{e}"
        );
        assert!(t.uri_for("/bad<path").is_err());
        let spaced = Rewrite {
            urls: vec![Rewrite::parse_url_rule("a=a b").unwrap()],
            ..Rewrite::default()
        };
        let e = written("http://t:9", "GET /a HTTP/1.1\r\n\r\n", b"", &spaced).unwrap_err();
        assert!(
            e.starts_with("request target `/a b` (`/a` after --rewrite-url): "),
            "{e}"
        );
    }

    #[test]
    fn parses_targets_and_explains_mistakes() {
        let t = Target::parse("stable=http://127.0.0.1:8080").unwrap();
        assert_eq!(t.name, "stable");
        assert_eq!(t.uri_for("/a?b=1").unwrap(), "http://127.0.0.1:8080/a?b=1");
        let p = Target::parse("c=http://h:1/prefix/").unwrap();
        assert_eq!(p.uri_for("/a").unwrap(), "http://h:1/prefix/a");
        assert_eq!(
            p.uri_for("http://old.example/x?y").unwrap(),
            "http://h:1/prefix/x?y"
        );
        assert!(Target::parse("http://x").unwrap_err().contains("NAME=URL"));
        assert!(Target::parse("a=127.0.0.1:80")
            .unwrap_err()
            .contains("scheme"));
        assert!(Target::parse("a b=http://x").unwrap_err().contains("name"));
        assert!(Target::parse("a=ftp://x")
            .unwrap_err()
            .contains("not supported"));
        let tls = Target::parse("a=https://h:8443").unwrap();
        assert_eq!(tls.uri_for("/x").unwrap(), "https://h:8443/x");
    }
}

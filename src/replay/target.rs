//! Replay targets (`NAME=URL`) and the requests sent to them.

use crate::recording::Exchange;
use bytes::Bytes;
use hyper::Uri;

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

    fn target(&self, recorded: &str) -> String {
        let mut target = recorded.to_owned();
        for (regex, replacement) in &self.urls {
            target = regex
                .replace_all(&target, replacement.as_str())
                .into_owned();
        }
        target
    }
}

/// Builds the request to send to `target` for a recorded exchange.
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
    let uri = target.uri_for(&rewrite.target(&head.target))?;
    let mut builder = hyper::Request::builder()
        .method(head.method.as_str())
        .uri(uri);
    let connection_tokens: Vec<String> = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| {
            String::from_utf8_lossy(&h.value)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    let removed = |name: &str| {
        rewrite
            .remove_headers
            .iter()
            .chain(rewrite.set_headers.iter().map(|(n, _)| n))
            .any(|r| r.eq_ignore_ascii_case(name))
    };
    for header in &head.headers {
        let lower = header.name.to_ascii_lowercase();
        let keep_host = rewrite.keep_host && lower == "host";
        if !keep_host
            && (crate::http::HOP_BY_HOP.contains(&lower.as_str())
                || SET_BY_CLIENT.contains(&lower.as_str())
                || connection_tokens.contains(&lower))
        {
            continue;
        }
        if removed(&lower) {
            continue;
        }
        builder = builder.header(header.name.as_str(), header.value.as_slice());
    }
    for (name, value) in &rewrite.set_headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(http_body_util::Full::new(body))
        .map_err(|e| format!("request {}: {e}", exchange.id))
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

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
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "`{text}`: scheme `{other}` is not supported yet; use http://"
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
        format!("http://{authority}{prefix}{path_and_query}")
            .parse()
            .map_err(|e| format!("request target `{recorded_target}`: {e}"))
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

/// Header fields that describe one connection hop and are not forwarded (RFC 9110 §7.6.1),
/// plus those the client sets itself for the new connection and body.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
];

/// Builds the request to send to `target` for a recorded exchange.
///
/// The Host header becomes the target's (the client sets it from the URI); the body is the
/// recorded body, de-chunked.
pub fn build_request(
    target: &Target,
    exchange: &Exchange,
    body: Bytes,
) -> Result<hyper::Request<http_body_util::Full<Bytes>>, String> {
    let head = &exchange.request_head;
    let uri = target.uri_for(&head.target)?;
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
    for header in &head.headers {
        let lower = header.name.to_ascii_lowercase();
        if NOT_FORWARDED.contains(&lower.as_str()) || connection_tokens.contains(&lower) {
            continue;
        }
        builder = builder.header(header.name.as_str(), header.value.as_slice());
    }
    builder
        .body(http_body_util::Full::new(body))
        .map_err(|e| format!("request {}: {e}", exchange.id))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Target::parse("a=https://x")
            .unwrap_err()
            .contains("not supported"));
    }
}

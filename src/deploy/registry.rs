//! Image tags in any OCI distribution v2 registry: does a tag exist (manifest HEAD with the
//! manifest media types in `Accept`), which tags does a repository have (paginated with
//! `Link`), authenticating the way registries ask (a `WWW-Authenticate` bearer challenge
//! answered by the realm's token endpoint, or basic auth).
//!
//! Loopback registries are spoken to over plain HTTP (as docker does for `localhost`) unless
//! an extra CA is configured (`registry.ca_file`: a private CA means the registry has TLS);
//! every other registry over HTTPS with the system's roots plus that CA
//! ([`crate::tls::https_client`]).

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Media types a manifest HEAD accepts: without them some registries answer with a
/// converted schema-1 manifest or 404 for multi-platform images.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Why a registry question got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{registry}: cannot reach the registry: {message}")]
    Unreachable { registry: String, message: String },
    #[error("{registry}: authentication failed: {message}")]
    Auth { registry: String, message: String },
    #[error("{registry}: unexpected answer {status} to {what}")]
    Unexpected {
        registry: String,
        status: u16,
        what: String,
    },
    #[error("{image}: no tag contains commit {commit}")]
    NoTagForCommit { image: String, commit: String },
    #[error("{image}: several tags contain commit {commit}: {tags}; give --tag")]
    AmbiguousCommit {
        image: String,
        commit: String,
        tags: String,
    },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// Where an image lives: the registry host and the repository inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    pub registry: String,
    pub repository: String,
}

/// Splits an image reference (tag and digest dropped) like docker does: the first component
/// is a registry if it has a `.` or `:` or is `localhost`; otherwise Docker Hub, where
/// single names live under `library/`.
pub fn split_image(image: &str) -> ImageName {
    let without_digest = image.split('@').next().unwrap_or(image);
    let name = match without_digest.rsplit_once('/') {
        Some((head, last)) => match last.split_once(':') {
            Some((repo, _tag)) => format!("{head}/{repo}"),
            None => without_digest.to_owned(),
        },
        None => without_digest
            .split(':')
            .next()
            .unwrap_or(without_digest)
            .to_owned(),
    };
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            ImageName {
                registry: first.to_owned(),
                repository: rest.to_owned(),
            }
        }
        Some(_) => ImageName {
            registry: "registry-1.docker.io".to_owned(),
            repository: name,
        },
        None => ImageName {
            registry: "registry-1.docker.io".to_owned(),
            repository: format!("library/{name}"),
        },
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic`, lower-cased.
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parses `Bearer realm="https://auth/token",service="registry",scope="repository:a:pull"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(key.trim().to_ascii_lowercase(), value.to_owned());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// The `rel="next"` target of a `Link` header (`</v2/a/tags/list?n=2&last=b>; rel="next"`).
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .contains("rel=\"next\"")
            .then(|| target.trim().trim_matches(['<', '>']).to_owned())
    })
}

/// Registry credentials: with a bearer challenge they are sent to the token realm, with a
/// basic challenge to the registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

/// A client for one set of credentials; bearer tokens are kept per scope.
pub struct RegistryClient {
    http: crate::tls::HttpsClient<Empty<Bytes>>,
    /// Whether an extra CA was given: loopback registries are then spoken to over https.
    tls_on_loopback: bool,
    credentials: Option<Credentials>,
    tokens: Mutex<BTreeMap<String, String>>,
    timeout: Duration,
}

fn is_loopback(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(registry, |(h, _)| h);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]") || host.starts_with("127.")
}

impl RegistryClient {
    /// A client trusting the system's roots plus `extra_ca` (PEM).
    ///
    /// # Errors
    /// [`RegistryError::Tls`] when the CA file cannot be read or holds no certificate.
    pub fn new(
        credentials: Option<Credentials>,
        extra_ca: Option<&std::path::Path>,
    ) -> Result<RegistryClient, RegistryError> {
        let http = crate::tls::https_client(&crate::tls::ClientOptions {
            extra_ca: extra_ca.map(std::path::Path::to_path_buf),
            ..crate::tls::ClientOptions::default()
        })
        .map_err(|e| RegistryError::Tls(e.to_string()))?;
        Ok(RegistryClient {
            http,
            tls_on_loopback: extra_ca.is_some(),
            credentials,
            tokens: Mutex::new(BTreeMap::new()),
            timeout: Duration::from_secs(30),
        })
    }

    fn base(&self, registry: &str) -> String {
        let scheme = if is_loopback(registry) && !self.tls_on_loopback {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{registry}")
    }

    /// Whether `image` (registry and repository) has `tag`.
    ///
    /// # Errors
    /// Unreachable registry, failed authentication, or an answer other than 200 and 404.
    pub async fn tag_exists(&self, image: &ImageName, tag: &str) -> Result<bool, RegistryError> {
        let url = format!(
            "{}/v2/{}/manifests/{tag}",
            self.base(&image.registry),
            image.repository
        );
        let (status, _) = self.send(Method::HEAD, &url, image).await?;
        match status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            other => Err(RegistryError::Unexpected {
                registry: image.registry.clone(),
                status: other.as_u16(),
                what: format!("HEAD manifest {tag}"),
            }),
        }
    }

    /// Every tag of the repository, following `Link` pagination.
    ///
    /// # Errors
    /// As [`RegistryClient::tag_exists`].
    pub async fn tags(&self, image: &ImageName) -> Result<Vec<String>, RegistryError> {
        let base = self.base(&image.registry);
        let mut url = format!("{base}/v2/{}/tags/list?n=100", image.repository);
        let mut tags = Vec::new();
        // A registry whose links loop must not keep us here forever.
        for _ in 0..10_000 {
            let (status, response) = self.send(Method::GET, &url, image).await?;
            let Some((headers, body)) = response.filter(|_| status == StatusCode::OK) else {
                if status == StatusCode::NOT_FOUND {
                    return Ok(tags);
                }
                return Err(RegistryError::Unexpected {
                    registry: image.registry.clone(),
                    status: status.as_u16(),
                    what: "tags list".to_owned(),
                });
            };
            let page: serde_json::Value =
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            if let Some(list) = page["tags"].as_array() {
                tags.extend(list.iter().filter_map(|t| t.as_str().map(str::to_owned)));
            }
            match headers
                .get(hyper::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
            {
                Some(next) if next.starts_with('/') => url = format!("{base}{next}"),
                Some(next) => url = next,
                None => return Ok(tags),
            }
        }
        Ok(tags)
    }

    /// The one tag that contains `commit` (its short form, `length` hex digits).
    ///
    /// # Errors
    /// [`RegistryError::NoTagForCommit`], [`RegistryError::AmbiguousCommit`], or the
    /// registry's errors.
    pub async fn tag_for_commit(
        &self,
        image: &ImageName,
        commit: &str,
        length: usize,
    ) -> Result<String, RegistryError> {
        let short: String = commit.chars().take(length).collect();
        let mut found: Vec<String> = self
            .tags(image)
            .await?
            .into_iter()
            .filter(|t| t.contains(&short))
            .collect();
        found.sort();
        let name = format!("{}/{}", image.registry, image.repository);
        match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(RegistryError::NoTagForCommit {
                image: name,
                commit: short,
            }),
            many => Err(RegistryError::AmbiguousCommit {
                image: name,
                commit: short,
                tags: many.join(", "),
            }),
        }
    }

    /// One request, answering an authentication challenge once.
    async fn send(
        &self,
        method: Method,
        url: &str,
        image: &ImageName,
    ) -> Result<(StatusCode, Option<(hyper::HeaderMap, Bytes)>), RegistryError> {
        let scope_key = format!("{}/{}", image.registry, image.repository);
        let cached = self
            .tokens
            .lock()
            .ok()
            .and_then(|t| t.get(&scope_key).cloned());
        let (status, headers, body) = self.request(&method, url, cached.as_deref(), image).await?;
        if status != StatusCode::UNAUTHORIZED {
            return Ok((status, Some((headers, body))));
        }
        let challenge = headers
            .get(hyper::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .ok_or_else(|| RegistryError::Auth {
                registry: image.registry.clone(),
                message: "401 without a usable WWW-Authenticate challenge".to_owned(),
            })?;
        let authorization = match challenge.scheme.as_str() {
            "bearer" => {
                let bearer = format!("Bearer {}", self.token(&challenge, image).await?);
                if let Ok(mut t) = self.tokens.lock() {
                    t.insert(scope_key, bearer.clone());
                }
                bearer
            }
            "basic" => self.basic().ok_or_else(|| RegistryError::Auth {
                registry: image.registry.clone(),
                message: "the registry asks for basic auth and no credentials are configured"
                    .to_owned(),
            })?,
            other => {
                return Err(RegistryError::Auth {
                    registry: image.registry.clone(),
                    message: format!("unsupported challenge scheme `{other}`"),
                })
            }
        };
        let (status, headers, body) = self
            .request(&method, url, Some(&authorization), image)
            .await?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Auth {
                registry: image.registry.clone(),
                message: format!("credentials refused ({})", status.as_u16()),
            });
        }
        Ok((status, Some((headers, body))))
    }

    fn basic(&self) -> Option<String> {
        self.credentials.as_ref().map(|c| {
            let raw = format!("{}:{}", c.username, c.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        })
    }

    async fn token(
        &self,
        challenge: &Challenge,
        image: &ImageName,
    ) -> Result<String, RegistryError> {
        let auth_error = |message: String| RegistryError::Auth {
            registry: image.registry.clone(),
            message,
        };
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| auth_error("bearer challenge without realm".to_owned()))?;
        let scope = challenge
            .params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", image.repository));
        let mut url = format!("{realm}?scope={}", encode(&scope));
        if let Some(service) = challenge.params.get("service") {
            url.push_str(&format!("&service={}", encode(service)));
        }
        let basic = self.basic();
        let (status, _headers, body) = self
            .request(&Method::GET, &url, basic.as_deref(), image)
            .await?;
        if status != StatusCode::OK {
            return Err(auth_error(format!(
                "the token endpoint answered {}",
                status.as_u16()
            )));
        }
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| auth_error("the token endpoint's answer is not JSON".to_owned()))?;
        answer["token"]
            .as_str()
            .or_else(|| answer["access_token"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| auth_error("the token endpoint gave no token".to_owned()))
    }

    async fn request(
        &self,
        method: &Method,
        url: &str,
        authorization: Option<&str>,
        image: &ImageName,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), RegistryError> {
        let unreachable = |message: String| RegistryError::Unreachable {
            registry: image.registry.clone(),
            message,
        };
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(url)
            .header(hyper::header::ACCEPT, MANIFEST_ACCEPT)
            .header(hyper::header::USER_AGENT, "nprt");
        if let Some(a) = authorization {
            // "Bearer …" or "Basic …" as given.
            builder = builder.header(hyper::header::AUTHORIZATION, a);
        }
        let request = builder
            .body(Empty::new())
            .map_err(|e| unreachable(format!("bad URL {url}: {e}")))?;
        let response = tokio::time::timeout(self.timeout, self.http.request(request))
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| unreachable(crate::tls::error_chain(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = tokio::time::timeout(self.timeout, response.into_body().collect())
            .await
            .map_err(|_| unreachable("body timed out".to_owned()))?
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        Ok((status, headers, body))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (query values, scopes).
pub(super) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        let cases = [
            ("app", "registry-1.docker.io", "library/app"),
            ("app:1", "registry-1.docker.io", "library/app"),
            ("team/app", "registry-1.docker.io", "team/app"),
            ("registry:5000/app", "registry:5000", "app"),
            ("registry:5000/app:1.0", "registry:5000", "app"),
            ("localhost/app@sha256:ab", "localhost", "app"),
            ("quay.io/team/app:v1", "quay.io", "team/app"),
            ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b"),
        ];
        for (image, registry, repository) in cases {
            assert_eq!(
                split_image(image),
                ImageName {
                    registry: registry.into(),
                    repository: repository.into()
                },
                "{image}"
            );
        }
    }

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        assert_eq!(c.params["service"], "registry.example");
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
        assert_eq!(parse_challenge("Basic").unwrap().params.len(), 0);
        assert!(parse_challenge("Bearer realm=\"unterminated").is_none());
        assert!(parse_challenge("").is_none());
    }

    #[test]
    fn links() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["registry:5000", "quay.io", "10.0.0.1:5000"] {
            assert!(!is_loopback(host), "{host}");
        }
        assert_eq!(encode("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
    }
}

//! The CLI's `--server URL` mode: the deploy operations through a running `nprt serve`
//! instead of straight against the cluster. Answers are read into the same typed outcomes
//! ([`super::outcome`]) the direct mode returns; HTTP statuses map back to the exit codes of
//! the direct mode.
//!
//! The token comes from the environment (`NPRT_TOKEN`) or a file, never from the command
//! line (where `ps` and shell history would show it), and is never formatted into a message.

use super::driver::Request;
use super::outcome::{
    ApiError, Deployed, Promoted, RolledBack, ServiceList, ServiceSettings, Status, Tags,
};
use super::rewrite::Track;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::path::Path;
use std::time::Duration;

/// The environment variable the token is read from.
pub const TOKEN_ENV: &str = "NPRT_TOKEN";

/// Largest answer read from the API.
const MAX_ANSWER: usize = 16 << 20;

/// Why a call to the deploy API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--server {url}: {message}")]
    BadUrl { url: String, message: String },
    #[error("{0}")]
    Token(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot reach the deploy API at {server}: {message}")]
    Unreachable { server: String, message: String },
    #[error("the deploy API at {server} refused the token (401): {message}; check {TOKEN_ENV} or --token-file")]
    Unauthorized { server: String, message: String },
    #[error("the token is not allowed to do this (403): {message}")]
    Forbidden { message: String },
    #[error("another operation is running (409): {message}")]
    Busy { message: String },
    #[error("the deploy API refuses this address for now (429, too many failed authentications); retry in {retry_after} s")]
    RateLimited { retry_after: String },
    #[error("the deploy API refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the deploy API failed ({status}): {message}")]
    Failed { status: u16, message: String },
}

impl ClientError {
    /// Whether the user's input is at fault (exit 2: URL, token, CA file, parameters) rather
    /// than the server or the cluster behind it (exit 4).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ClientError::BadUrl { .. }
                | ClientError::Token(_)
                | ClientError::Tls(_)
                | ClientError::Unauthorized { .. }
                | ClientError::Forbidden { .. }
                | ClientError::Refused { .. }
        )
    }
}

/// Reads the API token: from `token_file` when given, else from `NPRT_TOKEN`.
///
/// # Errors
/// [`ClientError::Token`] naming the file or variable (never the content) when it is
/// missing, empty or not sendable in a header.
pub fn read_token(token_file: Option<&Path>) -> Result<String, ClientError> {
    let (token, source) = match token_file {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| ClientError::Token(format!("--token-file {}: {e}", path.display())))?,
            format!("--token-file {}", path.display()),
        ),
        None => (
            std::env::var(TOKEN_ENV).map_err(|_| {
                ClientError::Token(format!(
                    "--server needs a token: set {TOKEN_ENV} or give --token-file FILE"
                ))
            })?,
            TOKEN_ENV.to_owned(),
        ),
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(ClientError::Token(format!("{source}: the token is empty")));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ClientError::Token(format!(
            "{source}: the token has characters an HTTP header cannot carry (spaces, control or non-ASCII characters)"
        )));
    }
    Ok(token)
}

/// The query of `PUT /SERVICE/deploy|canary` for a deploy request.
pub fn deploy_query(request: &Request, skip_image_check: bool) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(commit) = &request.commit {
        query.push(("commit", commit.clone()));
    }
    if let Some(tag) = &request.tag {
        query.push(("tag", tag.clone()));
    }
    if let Some(exposure) = request.exposure {
        query.push(("exposure", exposure.as_str().to_owned()));
    }
    for w in &request.workloads {
        query.push(("workload", w.clone()));
    }
    if skip_image_check {
        query.push(("skip_image_check", "true".to_owned()));
    }
    if request.with_baseline {
        query.push(("with_baseline", "true".to_owned()));
    }
    if let Some(commit) = &request.baseline_commit {
        query.push(("baseline_commit", commit.clone()));
    }
    if let Some(tag) = &request.baseline_tag {
        query.push(("baseline_tag", tag.clone()));
    }
    query
}

/// A client of one deploy API.
pub struct ApiClient {
    /// The server URL without a trailing slash (it may have a path prefix).
    base: String,
    token: String,
    http: crate::tls::HttpsClient<Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiClient({}, token ***)", self.base)
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl ApiClient {
    /// A client for the API at `server` (`http://` or `https://`), trusting the system's
    /// roots plus `ca` for https; every call waits at most `timeout`.
    ///
    /// # Errors
    /// [`ClientError::BadUrl`], or [`ClientError::Tls`] when the CA file is unusable.
    pub fn new(
        server: &str,
        token: String,
        ca: Option<&Path>,
        timeout: Duration,
    ) -> Result<ApiClient, ClientError> {
        let bad = |message: &str| ClientError::BadUrl {
            url: server.to_owned(),
            message: message.to_owned(),
        };
        let uri: hyper::Uri = server
            .parse()
            .map_err(|_| bad("not a URL; use http://HOST:PORT or https://HOST:PORT"))?;
        let host = uri
            .host()
            .ok_or_else(|| bad("has no host; use http://HOST:PORT or https://HOST:PORT"))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") => {
                if !is_loopback_host(host) {
                    tracing::warn!(
                        server,
                        "the token goes to the deploy API over plain http; use https"
                    );
                }
            }
            _ => return Err(bad("use an http:// or https:// URL")),
        }
        if uri.query().is_some() {
            return Err(bad("must not have a query"));
        }
        let http = crate::tls::https_client(&crate::tls::ClientOptions {
            extra_ca: ca.map(Path::to_path_buf),
            ..crate::tls::ClientOptions::default()
        })?;
        Ok(ApiClient {
            base: server.trim_end_matches('/').to_owned(),
            token,
            http,
            timeout,
        })
    }

    /// `GET /`: the services the API deploys.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn services(&self) -> Result<ServiceList, ClientError> {
        self.call(Method::GET, "/", &[]).await
    }

    /// `GET /SERVICE/config`: a service's settings, secrets by reference only.
    ///
    /// # Errors
    /// [`ClientError`]; [`ClientError::Forbidden`] for another service's token.
    pub async fn settings(&self, service: &str) -> Result<ServiceSettings, ClientError> {
        self.call(Method::GET, &service_path(service, "/config"), &[])
            .await
    }

    /// `GET /SERVICE`: what the service runs.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn status(&self, service: &str) -> Result<Status, ClientError> {
        self.call(Method::GET, &service_path(service, ""), &[])
            .await
    }

    /// `GET /SERVICE/tags`: the registry tags of the service's images.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn tags(&self, service: &str) -> Result<Tags, ClientError> {
        self.call(Method::GET, &service_path(service, "/tags"), &[])
            .await
    }

    /// `PUT /SERVICE/deploy` (stable) or `PUT /SERVICE/canary` (canary, with its baseline
    /// when asked for), by `request.track`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn deploy(
        &self,
        service: &str,
        request: &Request,
        skip_image_check: bool,
    ) -> Result<Deployed, ClientError> {
        let route = match request.track {
            Track::Stable => "/deploy",
            Track::Canary | Track::Baseline => "/canary",
        };
        let query = deploy_query(request, skip_image_check);
        self.call(Method::PUT, &service_path(service, route), &query)
            .await
    }

    /// `DELETE /SERVICE/canary`: the rollback of canary and baseline.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn rollback(&self, service: &str) -> Result<RolledBack, ClientError> {
        self.call(Method::DELETE, &service_path(service, "/canary"), &[])
            .await
    }

    /// `POST /SERVICE/promote`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn promote(&self, service: &str) -> Result<Promoted, ClientError> {
        self.call(Method::POST, &service_path(service, "/promote"), &[])
            .await
    }

    /// Calls `method path?query` and reads the JSON answer of a 2xx as a `T`.
    ///
    /// # Errors
    /// [`ClientError`] by the answer's status; the server's message is quoted.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let mut url = format!("{}{path}", self.base);
        for (i, (key, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&super::registry::encode(key));
            url.push('=');
            url.push_str(&super::registry::encode(value));
        }
        let mut authorization =
            hyper::header::HeaderValue::try_from(format!("Bearer {}", self.token))
                .map_err(|_| ClientError::Token("the token cannot be sent in a header".into()))?;
        // Kept out of any HPACK table and debug output.
        authorization.set_sensitive(true);
        let request = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header(hyper::header::AUTHORIZATION, authorization)
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::USER_AGENT, "nprt")
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::BadUrl {
                url: url.clone(),
                message: e.to_string(),
            })?;
        let unreachable = |message: String| ClientError::Unreachable {
            server: self.base.clone(),
            message,
        };
        let answer = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| unreachable(crate::tls::error_chain(&e)))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("a while")
                .to_owned();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, ClientError>((status, retry_after, body))
        };
        let (status, retry_after, body) = tokio::time::timeout(self.timeout, answer)
            .await
            .map_err(|_| unreachable(format!("no answer within {} s", self.timeout.as_secs())))??;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| ClientError::Failed {
                status: status.as_u16(),
                message: format!("the answer is not the expected JSON: {e}"),
            });
        }
        let message = serde_json::from_slice::<ApiError>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(&body);
                text.chars().take(200).collect::<String>().trim().to_owned()
            });
        Err(match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized {
                server: self.base.clone(),
                message,
            },
            StatusCode::FORBIDDEN => ClientError::Forbidden { message },
            StatusCode::CONFLICT => ClientError::Busy { message },
            StatusCode::TOO_MANY_REQUESTS => ClientError::RateLimited { retry_after },
            s if s.is_client_error() => ClientError::Refused {
                status: s.as_u16(),
                message,
            },
            s => ClientError::Failed {
                status: s.as_u16(),
                message,
            },
        })
    }
}

/// `/SERVICE{rest}`, the service name escaped.
fn service_path(service: &str, rest: &str) -> String {
    format!("/{}{rest}", super::registry::encode(service))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_without_echoing_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        std::fs::write(&file, "s3cret-token\n").unwrap();
        assert_eq!(read_token(Some(&file)).unwrap(), "s3cret-token");
        std::fs::write(&file, "two words s3cret").unwrap();
        let err = read_token(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("cannot carry"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        std::fs::write(&file, "\n").unwrap();
        assert!(read_token(Some(&file))
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let err = read_token(Some(&dir.path().join("missing")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--token-file"), "{err}");
    }

    #[test]
    fn urls_are_checked() {
        let t = || "t".to_owned();
        let d = Duration::from_secs(1);
        assert!(ApiClient::new("http://127.0.0.1:1", t(), None, d).is_ok());
        assert!(ApiClient::new("https://deploy.example/nprt/", t(), None, d).is_ok());
        for bad in ["ftp://x", "127.0.0.1:80", "not a url", "http://x/?a=1"] {
            let err = ApiClient::new(bad, t(), None, d).unwrap_err();
            assert!(matches!(err, ClientError::BadUrl { .. }), "{bad}: {err}");
        }
        assert!(format!(
            "{:?}",
            ApiClient::new("http://127.0.0.1:1", "s3cret".into(), None, d).unwrap()
        )
        .contains("***"));
        assert!(is_loopback_host("[::1]") && is_loopback_host("127.0.0.2"));
        assert!(!is_loopback_host("deploy.example"));
        assert_eq!(super::super::registry::encode("a b/c"), "a%20b%2Fc");
    }
}

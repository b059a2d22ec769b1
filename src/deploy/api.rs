//! `nprt serve`: the deploy driver over HTTP, with the thesis's routes plus rollback (also as
//! an Alertmanager webhook), promote, health and metrics.
//!
//! Every route but `/healthz` needs a token (`Authorization: Bearer TOKEN`, or basic auth
//! with the token as password). Tokens belong to one service each (`api_token_env` or
//! `api_token_file` in deploy.toml) and are compared in constant time; a service-wide route
//! (`/`, `/version`, `/metrics`) takes any service's token. One operation per service runs at
//! a time; a second gets 409 instead of queueing behind a rollout.
//!
//! Under attack: the token is checked before the body is read; failed attempts are logged
//! (address, method, path; never the token) and limited per client address ([`limiter`]:
//! 429 with `Retry-After`); bodies are bounded (413); request heads must arrive within a
//! timeout; TLS when given a certificate. Error answers never carry a secret: tokens and
//! registry passwords are only ever compared or sent, not formatted.
//!
//! [`limiter`]: super::limiter

use super::config::{DeployConfig, Exposure};
use super::driver::Request as DeployRequest;
use super::image::is_tag;
use super::limiter::FailureLimiter;
use super::ops::{self, ClusterAccess, OpError, Settings};
use super::outcome::{ApiError, Ignored, ServiceList};
use super::rewrite::Track;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The API's limits against hostile clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Largest request body accepted (an Alertmanager webhook is a few kilobytes).
    pub max_body: usize,
    /// Failed authentications allowed per client address and window (0: no limit).
    pub auth_failures: u32,
    pub auth_window: Duration,
    /// How many client addresses the failure counts track at most.
    pub tracked_clients: usize,
    /// Time a client has to send a request head, to send its body, and to finish the TLS
    /// handshake.
    pub header_timeout: Duration,
    /// Connections open at once; one beyond is closed at once.
    pub max_connections: usize,
    /// How long operations in flight may finish after a shutdown signal: within the 30 s
    /// Kubernetes gives a terminating pod by default.
    pub grace: Duration,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_body: 1 << 20,
            auth_failures: 10,
            auth_window: Duration::from_secs(60),
            tracked_clients: 10_000,
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            grace: Duration::from_secs(25),
        }
    }
}

/// The API's state: configuration, tokens, which services are busy, counters.
pub struct Api {
    config: DeployConfig,
    tokens: Vec<(String, String)>,
    busy: Mutex<BTreeSet<String>>,
    target: ClusterAccess,
    settings: Settings,
    counters: Mutex<BTreeMap<(String, u16), u64>>,
    limits: ApiLimits,
    failures: Mutex<FailureLimiter>,
}

/// Marks a service busy until dropped.
pub struct Busy<'a> {
    api: &'a Api,
    service: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Ok(mut busy) = self.api.busy.lock() {
            busy.remove(&self.service);
        }
    }
}

impl Api {
    /// Reads every service's token.
    ///
    /// # Errors
    /// A message naming the service and field when a token is missing or unreadable: a
    /// service without a token could not be called, and an unauthenticated one must not be.
    pub fn new(
        config: DeployConfig,
        target: ClusterAccess,
        settings: Settings,
    ) -> Result<Api, String> {
        let mut tokens = Vec::new();
        for service in config.services.values() {
            let Some(secret) = &service.api_token else {
                return Err(format!(
                    "{}: services.{}: set api_token_env or api_token_file; every API call is authenticated",
                    config.file, service.name
                ));
            };
            let token = secret.resolve().map_err(|e| {
                format!("{}: services.{}.api_token: {e}", config.file, service.name)
            })?;
            tokens.push((service.name.clone(), token));
        }
        let limits = ApiLimits::default();
        Ok(Api {
            config,
            tokens,
            busy: Mutex::new(BTreeSet::new()),
            target,
            settings,
            counters: Mutex::new(BTreeMap::new()),
            limits,
            failures: Mutex::new(FailureLimiter::new(
                limits.auth_failures,
                limits.auth_window,
                limits.tracked_clients,
            )),
        })
    }

    /// The same API with other limits.
    #[must_use]
    pub fn with_limits(mut self, limits: ApiLimits) -> Api {
        self.limits = limits;
        self.failures = Mutex::new(FailureLimiter::new(
            limits.auth_failures,
            limits.auth_window,
            limits.tracked_clients,
        ));
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> ApiLimits {
        self.limits
    }

    /// Marks `service` busy, or returns None when an operation on it is running.
    pub fn try_begin(&self, service: &str) -> Option<Busy<'_>> {
        let mut busy = self.busy.lock().ok()?;
        busy.insert(service.to_owned()).then(|| Busy {
            api: self,
            service: service.to_owned(),
        })
    }

    /// The service a token belongs to.
    fn owner(&self, token: &str) -> Option<&str> {
        owner_by(&self.tokens, token, constant_time_eq)
    }

    fn blocked(&self, client: IpAddr) -> Option<Duration> {
        self.failures.lock().ok()?.blocked(client, Instant::now())
    }

    fn failed(&self, client: IpAddr) -> u32 {
        self.failures
            .lock()
            .map(|mut f| f.failed(client, Instant::now()))
            .unwrap_or(0)
    }

    fn count(&self, route: &str, status: StatusCode) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((route.to_owned(), status.as_u16())).or_default() += 1;
        }
    }
}

/// The owner of `token` among `tokens`, compared with `eq` against every one of them (no
/// early exit), so the time taken does not tell which token nearly matched or where it sits.
fn owner_by<'a>(
    tokens: &'a [(String, String)],
    token: &str,
    mut eq: impl FnMut(&[u8], &[u8]) -> bool,
) -> Option<&'a str> {
    let mut found = None;
    for (service, t) in tokens {
        if eq(t.as_bytes(), token.as_bytes()) {
            found = Some(service.as_str());
        }
    }
    found
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    compare_all(a, b).0
}

/// Equality that reads every byte position of the longer input whatever the inputs are (a
/// length difference is folded in, never returned early); also says how many positions it
/// read, so tests can check that it never stops at the first difference.
fn compare_all(a: &[u8], b: &[u8]) -> (bool, usize) {
    let mut diff = u8::from(a.len() != b.len());
    let mut read = 0;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
        read += 1;
    }
    (std::hint::black_box(diff) == 0, read)
}

fn bearer_or_basic(headers: &hyper::HeaderMap) -> Option<String> {
    let value = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(rest.trim().to_owned()),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            text.split_once(':')
                .map(|(_, password)| password.to_owned())
        }
        _ => None,
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// An outcome as the JSON the API answers with.
fn to_json(outcome: &impl serde::Serialize) -> Value {
    // The outcomes are plain structs with string keys: serialising them cannot fail.
    serde_json::to_value(outcome).unwrap_or(Value::Null)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> (StatusCode, Value) {
    let body = ApiError {
        error: message.to_string(),
    };
    (status, to_json(&body))
}

fn op_result<T: serde::Serialize>(result: Result<T, OpError>) -> (StatusCode, Value) {
    match result {
        Ok(v) => (StatusCode::OK, to_json(&v)),
        Err(e) if e.bad_input => error(StatusCode::BAD_REQUEST, e),
        Err(e) => error(StatusCode::BAD_GATEWAY, e),
    }
}

fn parse_query(query: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((decode(k)?, decode(v)?));
    }
    Ok(out)
}

fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or("truncated %-escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad %-escape")?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "query is not UTF-8".to_owned())
}

fn deploy_request(
    track: Track,
    query: &[(String, String)],
) -> Result<(DeployRequest, bool), String> {
    let mut request = DeployRequest::new(track);
    let mut skip_image_check = false;
    let flag = |key: &str, value: &str| match value {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(format!("{key}=`{other}`: use true or false")),
    };
    for (key, value) in query {
        match key.as_str() {
            "commit" if !value.is_empty() && !value.starts_with('-') => {
                request.commit = Some(value.clone());
            }
            "tag" if is_tag(value) => request.tag = Some(value.clone()),
            "tag" => return Err(format!("tag `{value}` is not a valid image tag")),
            "exposure" => request.exposure = Some(value.parse::<Exposure>()?),
            "workload" => request.workloads.push(value.clone()),
            "skip_image_check" => skip_image_check = flag(key, value)?,
            "with_baseline" => request.with_baseline = flag(key, value)?,
            "baseline_commit" if !value.is_empty() && !value.starts_with('-') => {
                request.baseline_commit = Some(value.clone());
            }
            "baseline_tag" if is_tag(value) => request.baseline_tag = Some(value.clone()),
            "baseline_tag" => return Err(format!("baseline_tag `{value}` is not a valid image tag")),
            other => {
                return Err(format!(
                    "unknown parameter `{other}` (or bad value `{value}`); use commit, tag, exposure, workload, skip_image_check, with_baseline, baseline_commit, baseline_tag"
                ))
            }
        }
    }
    request.check_baseline()?;
    Ok((request, skip_image_check))
}

/// Answers one request from `peer`: `/healthz` needs nothing; anything else is refused while
/// the address is blocked, then needs a token, then a body within the limits, and is then
/// routed to its operation.
pub async fn handle(
    api: &Api,
    peer: SocketAddr,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if path == "/healthz" {
        api.count("/healthz", StatusCode::OK);
        return json_response(StatusCode::OK, &json!({"status": "ok"}));
    }
    let client = peer.ip();
    if let Some(wait) = api.blocked(client) {
        api.count("rate_limited", StatusCode::TOO_MANY_REQUESTS);
        tracing::warn!(%client, %method, %path, "refused: too many failed authentications");
        return rate_limited(wait);
    }
    // The token is checked before the body is read: an unauthenticated client gets no
    // buffer and no parsing.
    let token = bearer_or_basic(request.headers());
    let Some(owner) = token.as_deref().and_then(|t| api.owner(t)) else {
        return unauthorized(api, client, &method, &path, token.is_some());
    };
    let owner = owner.to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let body = match read_body(api, request).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let (route, (status, value)) = route(api, &method, &path, &query, &owner, &body).await;
    api.count(&route, status);
    answer(&route, status, value)
}

/// The 429 for a client blocked after too many failed authentications, with `Retry-After` in
/// whole seconds (rounded up, at least 1) so a polite client waits long enough.
fn rate_limited(wait: Duration) -> Response<Full<Bytes>> {
    let (s, v) = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed authentications from this address; try again later",
    );
    let mut r = json_response(s, &v);
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    r.headers_mut()
        .insert(hyper::header::RETRY_AFTER, seconds.max(1).into());
    r
}

/// The 401 for a missing or unknown token; the failure is counted against `client` and
/// logged without the token.
fn unauthorized(
    api: &Api,
    client: IpAddr,
    method: &Method,
    path: &str,
    presented: bool,
) -> Response<Full<Bytes>> {
    let failures = api.failed(client);
    // The token itself is never logged: a near miss is as secret as the real one.
    tracing::warn!(
        %client,
        %method,
        %path,
        presented,
        failures,
        "authentication failed"
    );
    api.count("unauthorized", StatusCode::UNAUTHORIZED);
    let (s, v) = error(
        StatusCode::UNAUTHORIZED,
        "a valid token is required (Authorization: Bearer TOKEN)",
    );
    let mut r = json_response(s, &v);
    r.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Bearer realm=\"nprt\""),
    );
    r
}

/// The whole request body, or the answer when it is larger than `max_body` (413, refused from
/// `Content-Length` before reading when declared), unreadable (400) or too slow (408).
async fn read_body(
    api: &Api,
    request: Request<hyper::body::Incoming>,
) -> Result<Bytes, Response<Full<Bytes>>> {
    let max = api.limits.max_body;
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        api.count("too_large", StatusCode::PAYLOAD_TOO_LARGE);
        let (s, v) = error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {max} bytes"),
        );
        json_response(s, &v)
    };
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    // A trickled body must not hold the connection forever either.
    let read = Limited::new(request.into_body(), max).collect();
    match tokio::time::timeout(api.limits.header_timeout, read).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => {
            let (s, v) = error(StatusCode::BAD_REQUEST, "the request body is unreadable");
            Err(json_response(s, &v))
        }
        Err(_) => {
            let (s, v) = error(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            );
            Err(json_response(s, &v))
        }
    }
}

/// The HTTP answer for a routed result: `/metrics` as Prometheus text, the rest as JSON.
fn answer(route: &str, status: StatusCode, value: Value) -> Response<Full<Bytes>> {
    if route == "/metrics" && status == StatusCode::OK {
        let mut r = Response::new(Full::new(Bytes::from(
            value.as_str().unwrap_or("").to_owned(),
        )));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        return r;
    }
    json_response(status, &value)
}

async fn route(
    api: &Api,
    method: &Method,
    path: &str,
    query: &str,
    owner: &str,
    body: &[u8],
) -> (String, (StatusCode, Value)) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (&Method::GET, [""]) => (
            "/".into(),
            (
                StatusCode::OK,
                to_json(&ServiceList {
                    services: api.config.services.keys().cloned().collect(),
                }),
            ),
        ),
        (&Method::GET, ["version"]) => (
            "/version".into(),
            (
                StatusCode::OK,
                json!({ "version": env!("CARGO_PKG_VERSION") }),
            ),
        ),
        (&Method::GET, ["metrics"]) => (
            "/metrics".into(),
            (StatusCode::OK, Value::String(metrics(api))),
        ),
        (_, [service, rest @ ..]) => {
            let route = format!("/SERVICE/{}", rest.join("/"));
            let Ok(config) = api.config.service(service) else {
                return (
                    route,
                    error(StatusCode::NOT_FOUND, format!("no service `{service}`")),
                );
            };
            if owner != config.name {
                tracing::warn!(token_of = %owner, %service, %method, "refused: a token used on another service");
                return (
                    route,
                    error(
                        StatusCode::FORBIDDEN,
                        format!("this token is not for service `{service}`"),
                    ),
                );
            }
            let query = match parse_query(query) {
                Ok(q) => q,
                Err(e) => return (route, error(StatusCode::BAD_REQUEST, e)),
            };
            let answer = service_route(api, config, method, rest, &query, body).await;
            (route, answer)
        }
        _ => (
            "unknown".into(),
            error(StatusCode::NOT_FOUND, "no such route"),
        ),
    }
}

async fn service_route(
    api: &Api,
    service: &super::config::ServiceConfig,
    method: &Method,
    rest: &[&str],
    query: &[(String, String)],
    body: &[u8],
) -> (StatusCode, Value) {
    let read_only = *method == Method::GET;
    if !read_only
        && !matches!(
            (method, rest),
            (&Method::PUT, ["deploy" | "canary"])
                | (&Method::DELETE, ["canary"])
                | (&Method::POST, ["promote"])
        )
    {
        return error(StatusCode::NOT_FOUND, "no such route");
    }
    if read_only && !matches!(rest, [] | ["tags" | "config"]) {
        return error(StatusCode::NOT_FOUND, "no such route");
    }
    if !matches!(rest, ["deploy" | "canary"]) && !query.is_empty() && *method != Method::DELETE {
        return error(StatusCode::BAD_REQUEST, "this route takes no parameters");
    }
    let _busy = if read_only {
        None
    } else {
        match api.try_begin(&service.name) {
            Some(b) => Some(b),
            None => {
                return error(
                    StatusCode::CONFLICT,
                    format!(
                        "an operation on `{}` is running; try again when it ends",
                        service.name
                    ),
                )
            }
        }
    };
    let settings = api.settings.clone();
    match (method, rest) {
        (&Method::GET, []) => op_result(ops::status(&api.target, service, &settings).await),
        (&Method::GET, ["tags"]) => op_result(ops::tags(service, &settings).await),
        (&Method::GET, ["config"]) => (StatusCode::OK, to_json(&ops::show(service))),
        (&Method::PUT, [kind @ ("deploy" | "canary")]) => {
            let track = if *kind == "deploy" {
                Track::Stable
            } else {
                Track::Canary
            };
            let (request, skip) = match deploy_request(track, query) {
                Ok(r) => r,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            let mut settings = settings;
            settings.skip_image_check |= skip;
            op_result(ops::deploy(&api.target, service, &request, &settings).await)
        }
        (&Method::DELETE, ["canary"]) => {
            if !body.is_empty() {
                // An Alertmanager webhook: roll back on firing alerts, ignore resolved ones.
                let Ok(alert) = serde_json::from_slice::<Value>(body) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "the body is not JSON (an Alertmanager webhook or nothing)",
                    );
                };
                if alert["status"] == "resolved" {
                    let ignored = Ignored {
                        service: service.name.clone(),
                        ignored: "resolved alert".to_owned(),
                    };
                    return (StatusCode::OK, to_json(&ignored));
                }
            }
            op_result(ops::rollback(&api.target, service, &settings).await)
        }
        (&Method::POST, ["promote"]) => {
            op_result(ops::promote(&api.target, service, &settings).await)
        }
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    }
}

fn metrics(api: &Api) -> String {
    let mut text = String::from("# TYPE nprt_api_requests_total counter\n");
    if let Ok(c) = api.counters.lock() {
        for ((route, code), n) in c.iter() {
            text.push_str(&format!(
                "nprt_api_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}\n"
            ));
        }
    }
    text
}

/// Serves the API on `listener` until `shutdown` resolves, then lets the operations in flight
/// finish for `limits.grace` ([`crate::net::serve`]): https when `tls` is given (HTTP/1.1
/// over TLS), else plain http.
///
/// # Errors
/// When accepting connections fails for good.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<Api>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let tls = tls.map(|config| {
        let mut config = (*config).clone();
        // The connections are served as HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    });
    let limits = api.limits;
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
            .http1_only();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let options = crate::net::ServeOptions {
        tls,
        max_connections: limits.max_connections,
        handshake_timeout: limits.header_timeout,
        grace: limits.grace,
        ..crate::net::ServeOptions::new("deploy API")
    };
    let make_service = move |peer: SocketAddr| {
        let api = Arc::clone(&api);
        hyper::service::service_fn(move |req| {
            let api = Arc::clone(&api);
            async move { Ok::<_, hyper::Error>(handle(&api, peer, req).await) }
        })
    };
    crate::net::serve(listener, options, builder, make_service, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_is_compared_and_every_byte_read() {
        let tokens: Vec<(String, String)> = ["a", "b", "c"]
            .iter()
            .map(|s| (s.to_string(), format!("token-{s}-0123456789")))
            .collect();
        // The first token matches: the others are still compared.
        let mut calls = 0;
        let owner = owner_by(&tokens, "token-a-0123456789", |x, y| {
            calls += 1;
            constant_time_eq(x, y)
        });
        assert_eq!(owner, Some("a"));
        assert_eq!(calls, 3);
        let mut calls = 0;
        assert_eq!(
            owner_by(&tokens, "nope", |x, y| {
                calls += 1;
                constant_time_eq(x, y)
            }),
            None
        );
        assert_eq!(calls, 3);
        // A difference in the first byte or in the length does not end the comparison.
        assert_eq!(compare_all(b"xoken-a", b"token-a"), (false, 7));
        assert_eq!(compare_all(b"t", b"token-a"), (false, 7));
        assert_eq!(compare_all(b"token-a-long", b"token-a"), (false, 12));
        assert_eq!(compare_all(b"token-a", b"token-a"), (true, 7));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn deploy_parameters() {
        let q = parse_query("commit=abc&tag=v1&exposure=shared&workload=a%2Db").unwrap();
        let (r, skip) = deploy_request(Track::Canary, &q).unwrap();
        assert_eq!(r.commit.as_deref(), Some("abc"));
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.exposure, Some(Exposure::Shared));
        assert_eq!(r.workloads, ["a-b"]);
        assert!(!skip);
        assert!(!r.with_baseline);
        let q = parse_query("with_baseline=true&baseline_commit=abc&baseline_tag=v0").unwrap();
        let (r, _) = deploy_request(Track::Canary, &q).unwrap();
        assert!(r.with_baseline);
        assert_eq!(r.baseline_commit.as_deref(), Some("abc"));
        assert_eq!(r.baseline_tag.as_deref(), Some("v0"));
        let (r, _) = deploy_request(Track::Canary, &parse_query("with_baseline").unwrap()).unwrap();
        assert!(r.with_baseline);
        for (bad, message) in [
            ("with_baseline=maybe", "with_baseline=`maybe`"),
            (
                "with_baseline=true&baseline_tag=a%20b",
                "baseline_tag `a b`",
            ),
            ("baseline_commit=abc", "needs with_baseline"),
            ("with_baseline=false&baseline_tag=v1", "needs with_baseline"),
            (
                "with_baseline=true&baseline_commit=--all",
                "unknown parameter",
            ),
        ] {
            let err = deploy_request(Track::Canary, &parse_query(bad).unwrap()).unwrap_err();
            assert!(err.contains(message), "{bad}: {err}");
        }
        let err =
            deploy_request(Track::Stable, &parse_query("with_baseline=1").unwrap()).unwrap_err();
        assert!(err.contains("only a canary gets a baseline"), "{err}");
        for bad in [
            "tag=a%20b",
            "exposure=public",
            "colour=red",
            "commit=--all",
            "skip_image_check=maybe",
        ] {
            let q = parse_query(bad).unwrap();
            assert!(deploy_request(Track::Stable, &q).is_err(), "{bad}");
        }
        assert!(parse_query("a=%zz").is_err());
    }
}

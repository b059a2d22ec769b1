//! `nprt serve`: the deploy driver over HTTP, with the thesis's routes plus rollback (also as
//! an Alertmanager webhook), promote, health and metrics.
//!
//! Every route but `/healthz` needs a token (`Authorization: Bearer TOKEN`, or basic auth
//! with the token as password). Tokens belong to one service each (`api_token_env` or
//! `api_token_file` in deploy.toml) and are compared in constant time; a service-wide route
//! (`/`, `/version`, `/metrics`) takes any service's token. One operation per service runs at
//! a time; a second gets 409 instead of queueing behind a rollout.

use super::config::{DeployConfig, Exposure};
use super::driver::Request as DeployRequest;
use super::image::is_tag;
use super::ops::{self, OpError, Settings, Target};
use super::rewrite::Track;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Largest request body accepted (an Alertmanager webhook is a few kilobytes).
const MAX_BODY: usize = 1 << 20;

/// The API's state: configuration, tokens, which services are busy, counters.
pub struct Api {
    config: DeployConfig,
    tokens: Vec<(String, String)>,
    busy: Mutex<BTreeSet<String>>,
    target: Target,
    settings: Settings,
    counters: Mutex<BTreeMap<(String, u16), u64>>,
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
    pub fn new(config: DeployConfig, target: Target, settings: Settings) -> Result<Api, String> {
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
        Ok(Api {
            config,
            tokens,
            busy: Mutex::new(BTreeSet::new()),
            target,
            settings,
            counters: Mutex::new(BTreeMap::new()),
        })
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
        // Compare against every token, so timing does not tell which one nearly matched.
        let mut found = None;
        for (service, t) in &self.tokens {
            if constant_time_eq(t.as_bytes(), token.as_bytes()) {
                found = Some(service.as_str());
            }
        }
        found
    }

    fn count(&self, route: &str, status: StatusCode) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((route.to_owned(), status.as_u16())).or_default() += 1;
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
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

fn error(status: StatusCode, message: impl std::fmt::Display) -> (StatusCode, Value) {
    (status, json!({ "error": message.to_string() }))
}

fn op_result(result: Result<Value, OpError>) -> (StatusCode, Value) {
    match result {
        Ok(v) => (StatusCode::OK, v),
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
    let mut request = DeployRequest {
        track,
        commit: None,
        tag: None,
        exposure: None,
        workloads: Vec::new(),
    };
    let mut skip_image_check = false;
    for (key, value) in query {
        match key.as_str() {
            "commit" if !value.is_empty() && !value.starts_with('-') => {
                request.commit = Some(value.clone());
            }
            "tag" if is_tag(value) => request.tag = Some(value.clone()),
            "tag" => return Err(format!("tag `{value}` is not a valid image tag")),
            "exposure" => request.exposure = Some(value.parse::<Exposure>()?),
            "workload" => request.workloads.push(value.clone()),
            "skip_image_check" => {
                skip_image_check = match value.as_str() {
                    "" | "true" | "1" => true,
                    "false" | "0" => false,
                    other => return Err(format!("skip_image_check=`{other}`: use true or false")),
                }
            }
            other => {
                return Err(format!(
                    "unknown parameter `{other}` (or bad value `{value}`); use commit, tag, exposure, workload, skip_image_check"
                ))
            }
        }
    }
    Ok((request, skip_image_check))
}

/// Answers one request.
pub async fn handle(api: &Api, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let token = bearer_or_basic(request.headers());
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let (s, v) = error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large or unreadable",
            );
            return json_response(s, &v);
        }
    };
    let (route, (status, value)) =
        route(api, &method, &path, &query, token.as_deref(), &body).await;
    api.count(&route, status);
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
    token: Option<&str>,
    body: &[u8],
) -> (String, (StatusCode, Value)) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if path == "/healthz" {
        return ("/healthz".into(), (StatusCode::OK, json!({"status": "ok"})));
    }
    let owner = token.and_then(|t| api.owner(t));
    let Some(owner) = owner else {
        return (
            "unauthorized".into(),
            error(
                StatusCode::UNAUTHORIZED,
                "a valid token is required (Authorization: Bearer TOKEN)",
            ),
        );
    };
    match (method, parts.as_slice()) {
        (&Method::GET, [""]) => (
            "/".into(),
            (
                StatusCode::OK,
                json!({ "services": api.config.services.keys().collect::<Vec<_>>() }),
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
    if read_only && !matches!(rest, [] | ["tags"]) {
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
                    return (
                        StatusCode::OK,
                        json!({"service": service.name, "ignored": "resolved alert"}),
                    );
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

/// Serves the API on `listener` until the task is dropped.
///
/// # Errors
/// When accepting connections fails.
pub async fn serve(listener: tokio::net::TcpListener, api: Arc<Api>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let api = Arc::clone(&api);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let api = Arc::clone(&api);
                async move { Ok::<_, hyper::Error>(handle(&api, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "API connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

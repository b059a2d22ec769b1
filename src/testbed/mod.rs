//! A small configurable HTTP service that answers any path: the stable and the deliberately
//! regressed service that the demo, the tests and the benchmarks point replays at.
//!
//! Every request is answered after `latency` (+ a uniform random `jitter`) with a small JSON
//! body; a fraction `error_rate` of answers are `500`s. Per-route rules override both, so a
//! canary can be made slower or more error-prone on one route only. A request can also cost
//! CPU and memory ([`Cost`]), and `/metrics` shows what the process used, so a resource
//! regression can be staged without a latency one.

mod cost;
pub mod grpc;

pub use cost::{Cost, Ledger, LEAK_LIMIT};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How the testbed answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestbedConfig {
    /// Base latency of every answer, in milliseconds.
    pub latency_ms: f64,
    /// Extra latency, uniform in `0..=jitter_ms`, added to every answer.
    pub jitter_ms: f64,
    /// Fraction (0..=1) of answers that are `500 Internal Server Error`.
    pub error_rate: f64,
    /// Per-route overrides, first match wins.
    pub routes: Vec<RouteRule>,
    /// CPU and memory per request, and `/metrics`.
    pub cost: Cost,
    /// Answer every call as a unary gRPC echo ([`grpc`]); staged errors are gRPC
    /// UNAVAILABLE instead of HTTP 500.
    pub grpc: bool,
}

/// What a route rule changes.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteEffect {
    /// Replace the base latency of matching requests (milliseconds).
    LatencyMs(f64),
    /// Replace the error rate of matching requests.
    ErrorRate(f64),
}

impl RouteEffect {
    /// A latency written with its unit, e.g. `40ms`.
    pub fn latency(text: &str) -> Result<Self, String> {
        let d = crate::spec::parse_duration(text)?;
        Ok(RouteEffect::LatencyMs(d.as_secs_f64() * 1000.0))
    }

    /// An error rate from 0 to 1.
    pub fn error_rate(text: &str) -> Result<Self, String> {
        match text.parse::<f64>() {
            Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(RouteEffect::ErrorRate(rate)),
            _ => Err(format!("`{text}` is not an error rate from 0 to 1")),
        }
    }
}

/// A rule for the requests whose route matches `pattern`.
///
/// The pattern is compared with the request's route key (`GET /users/:id`) when it contains a
/// space, and with its normalised path (`/users/:id`) otherwise; a trailing `*` makes it a
/// prefix match. A gRPC call's route key is its path (`/pkg.Service/Method`), so only a
/// pattern without a method matches it.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRule {
    pub pattern: String,
    pub effect: RouteEffect,
}

impl RouteRule {
    /// Parses `ROUTE=VALUE` as given on the command line.
    ///
    /// # Errors
    /// A message naming what is wrong with the rule.
    pub fn parse(
        text: &str,
        make: fn(&str) -> Result<RouteEffect, String>,
    ) -> Result<Self, String> {
        let (pattern, value) = text
            .rsplit_once('=')
            .ok_or_else(|| format!("`{text}`: expected ROUTE=VALUE, e.g. '/api/items/:id=40ms'"))?;
        let effect = make(value.trim()).map_err(|m| format!("`{text}`: {m}"))?;
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Err(format!("`{text}`: the route is empty"));
        }
        Ok(RouteRule {
            pattern: pattern.to_owned(),
            effect,
        })
    }

    fn matches(&self, route: &str, path: &str) -> bool {
        let subject = if self.pattern.contains(' ') {
            route
        } else {
            path
        };
        match self.pattern.strip_suffix('*') {
            Some(prefix) => subject.starts_with(prefix),
            None => subject == self.pattern,
        }
    }
}

/// What the testbed decided for one request: pure, so it is tested without sockets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub delay: Duration,
    pub status: u16,
}

impl TestbedConfig {
    /// Checks the numbers a user gave.
    ///
    /// # Errors
    /// A message naming the offending option.
    pub fn validate(&self) -> Result<(), String> {
        let ok_ms = |v: f64| v.is_finite() && (0.0..=3_600_000.0).contains(&v);
        if !ok_ms(self.latency_ms) {
            return Err("the latency must be between 0 and 1h".into());
        }
        if !ok_ms(self.jitter_ms) {
            return Err("the jitter must be between 0 and 1h".into());
        }
        let rates =
            std::iter::once(self.error_rate).chain(self.routes.iter().filter_map(
                |r| match r.effect {
                    RouteEffect::ErrorRate(rate) => Some(rate),
                    RouteEffect::LatencyMs(_) => None,
                },
            ));
        for rate in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("error rate {rate} is not between 0 and 1"));
            }
        }
        Ok(())
    }

    /// Decides latency and status for a request, given two uniform random numbers in `0..1`.
    pub fn plan(&self, method: &str, target: &str, jitter_draw: f64, error_draw: f64) -> Plan {
        self.plan_route(
            &crate::http::route_key(method, target),
            jitter_draw,
            error_draw,
        )
    }

    /// [`TestbedConfig::plan`] for a request whose route key is `route`: a gRPC call's
    /// (`/pkg.Service/Method`, see [`crate::http::request_route`]) has no method part, so
    /// only a rule without one (`/pkg.Service/*`) matches it.
    pub fn plan_route(&self, route: &str, jitter_draw: f64, error_draw: f64) -> Plan {
        let path = route.split_once(' ').map_or(route, |(_, p)| p);
        let mut latency = self.latency_ms;
        let mut error_rate = self.error_rate;
        let mut latency_set = false;
        let mut rate_set = false;
        for rule in self.routes.iter().filter(|r| r.matches(route, path)) {
            match rule.effect {
                RouteEffect::LatencyMs(ms) if !latency_set => {
                    latency = ms;
                    latency_set = true;
                }
                RouteEffect::ErrorRate(rate) if !rate_set => {
                    error_rate = rate;
                    rate_set = true;
                }
                _ => {}
            }
        }
        let ms = latency + self.jitter_ms * jitter_draw;
        Plan {
            delay: Duration::from_secs_f64(ms / 1000.0),
            status: if error_draw < error_rate { 500 } else { 200 },
        }
    }
}

/// Serves the testbed on `listener` until the future is dropped; over TLS when `tls` is given
/// (HTTP/1.1 and h2 by ALPN), else plain HTTP/1.1 and h2c (prior knowledge: the auto builder
/// tells the HTTP/2 preface from an HTTP/1.1 request line).
///
/// # Errors
/// Only when accepting connections fails for good (see [`crate::net::serve`]).
pub async fn serve(
    listener: TcpListener,
    config: TestbedConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    serve_until(listener, config, tls, std::future::pending()).await
}

/// [`serve`] until `shutdown` resolves, then lets the requests in flight finish.
///
/// # Errors
/// Only when accepting connections fails for good.
pub async fn serve_until(
    listener: TcpListener,
    config: TestbedConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let config = Arc::new(config);
    let ledger = Arc::new(Ledger::default());
    let options = crate::net::ServeOptions {
        tls,
        ..crate::net::ServeOptions::new("testbed")
    };
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let make_service = move |_peer| {
        let (config, ledger) = (Arc::clone(&config), Arc::clone(&ledger));
        hyper::service::service_fn(move |req| answer(Arc::clone(&config), Arc::clone(&ledger), req))
    };
    crate::net::serve(listener, options, builder, make_service, shutdown).await
}

/// A JSON (or metrics) answer, or a gRPC one.
type Answer = Response<Either<Full<Bytes>, grpc::GrpcBody>>;

async fn answer(
    config: Arc<TestbedConfig>,
    ledger: Arc<Ledger>,
    req: Request<hyper::body::Incoming>,
) -> Result<Answer, hyper::Error> {
    if config.cost.metrics && req.uri().path() == "/metrics" {
        let mut response = Response::new(Full::new(Bytes::from(ledger.render())));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        return Ok(response.map(Either::Left));
    }
    // The CPU is burnt inside the request's latency, not on top of it: a canary costing twice
    // the CPU at the same latency is a resource regression alone.
    // Burnt on a blocking thread: a spin on the async worker would hold up the other
    // connections' answers, a latency regression the staged one does not mean.
    let started = std::time::Instant::now();
    if config.cost.cpu_per_request.is_zero() {
        ledger.charge(&config.cost);
    } else {
        let (cost, ledger) = (config.cost, Arc::clone(&ledger));
        let _ = tokio::task::spawn_blocking(move || ledger.charge(&cost)).await;
    }
    let method = req.method().as_str().to_owned();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
    let encoding = req.headers().get("grpc-encoding").cloned();
    let content_type = req.headers().get(hyper::header::CONTENT_TYPE);
    let route = crate::http::request_route(&method, &target, content_type.map(|v| v.as_bytes()));
    let received = req.into_body().collect().await?.to_bytes();
    let plan = config.plan_route(&route, fastrand::f64(), fastrand::f64());
    let delay = plan.delay.saturating_sub(started.elapsed());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if config.grpc {
        let answer = grpc::answer(received, plan.status == 500, encoding);
        return Ok(answer.map(Either::Right));
    }
    let received = received.len();
    let body = if plan.status == 500 {
        "{\"error\":\"internal error (testbed)\"}\n".to_owned()
    } else {
        format!(
            "{{\"method\":{},\"target\":{},\"received_bytes\":{received}}}\n",
            serde_json::Value::from(method),
            serde_json::Value::from(target)
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(plan.status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response.map(Either::Left))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rules: &[&str]) -> TestbedConfig {
        TestbedConfig {
            latency_ms: 2.0,
            jitter_ms: 10.0,
            error_rate: 0.1,
            routes: rules
                .iter()
                .map(|r| RouteRule::parse(r, RouteEffect::latency).unwrap())
                .collect(),
            ..TestbedConfig::default()
        }
    }

    #[test]
    fn base_latency_jitter_and_errors() {
        let c = config(&[]);
        assert_eq!(
            c.plan("GET", "/", 0.5, 0.5),
            Plan {
                delay: Duration::from_millis(7),
                status: 200
            }
        );
        assert_eq!(c.plan("GET", "/", 0.0, 0.05).status, 500);
    }

    #[test]
    fn route_rules_match_path_route_key_and_prefix() {
        let c = config(&["/items/:id=40ms", "POST /orders=90ms", "/static/*=0ms"]);
        assert_eq!(
            c.plan("GET", "/items/42?x=1", 0.0, 1.0).delay.as_millis(),
            40
        );
        assert_eq!(c.plan("GET", "/items", 0.0, 1.0).delay.as_millis(), 2);
        assert_eq!(c.plan("POST", "/orders", 0.0, 1.0).delay.as_millis(), 90);
        assert_eq!(c.plan("GET", "/orders", 0.0, 1.0).delay.as_millis(), 2);
        assert_eq!(
            c.plan("GET", "/static/app.js", 0.0, 1.0).delay.as_millis(),
            0
        );
    }

    #[test]
    fn grpc_calls_match_rules_by_method_name() {
        let c = config(&["/slow.Service/*=90ms", "POST /echo.Echo/Call=50ms"]);
        let grpc = |path| crate::http::request_route("POST", path, Some(b"application/grpc"));
        let ms = |route: String| c.plan_route(&route, 0.0, 1.0).delay.as_millis();
        assert_eq!(ms(grpc("/slow.Service/Get")), 90);
        // The route of a gRPC call has no method: a rule naming POST is not for it.
        assert_eq!(ms(grpc("/echo.Echo/Call")), 2);
        assert_eq!(
            c.plan("POST", "/echo.Echo/Call", 0.0, 1.0)
                .delay
                .as_millis(),
            50
        );
    }

    #[test]
    fn route_error_rate_overrides_base_rate() {
        let mut c = config(&[]);
        c.routes
            .push(RouteRule::parse("/pay=1", RouteEffect::error_rate).unwrap());
        assert_eq!(c.plan("GET", "/pay", 0.0, 0.99).status, 500);
        assert_eq!(c.plan("GET", "/other", 0.0, 0.99).status, 200);
    }

    #[test]
    fn bad_rules_and_options_are_explained() {
        assert!(RouteRule::parse("/x", RouteEffect::latency)
            .unwrap_err()
            .contains("ROUTE=VALUE"));
        assert!(RouteRule::parse("/x=slow", RouteEffect::latency)
            .unwrap_err()
            .contains("is not a duration"));
        assert!(RouteRule::parse("/x=40", RouteEffect::latency)
            .unwrap_err()
            .contains("40ms"));
        assert!(RouteRule::parse("/x=2", RouteEffect::error_rate)
            .unwrap_err()
            .contains("from 0 to 1"));
        let mut c = config(&[]);
        c.error_rate = 1.5;
        assert!(c.validate().is_err());
        c.error_rate = 0.5;
        c.latency_ms = -1.0;
        assert!(c.validate().unwrap_err().contains("latency"));
    }
}

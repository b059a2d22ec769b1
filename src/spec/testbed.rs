//! A testbed's behaviour: `nprt testbed`'s flags and a scenario's `[[testbeds]]` entries.

use super::units::Span;
use super::SpecError;
use crate::testbed::{Cost, RouteEffect, RouteRule, TestbedConfig};
use std::time::Duration;

/// How a testbed answers. Latencies are durations with a unit (`2ms`).
#[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestbedSpec {
    /// Scenario key only: the testbed's target name.
    #[arg(skip)]
    pub name: String,
    /// Scenario key only (the command's `--listen`): where it listens [default:
    /// 127.0.0.1:0].
    #[arg(skip)]
    pub listen: Option<String>,
    /// Base latency of every answer, e.g. 5ms [default: 0ms].
    #[arg(long, value_name = "D")]
    pub latency: Option<Span>,
    /// Random extra latency, uniform between 0 and D.
    #[arg(long, value_name = "D")]
    pub jitter: Option<Span>,
    /// Fraction of answers that are 500 errors (0 to 1).
    #[arg(long, value_name = "F")]
    pub error_rate: Option<f64>,
    /// Latency of one route instead of --latency, e.g. '/api/items/:id=40ms',
    /// 'POST /orders=90ms' or a gRPC method '/pkg.Service/Get=40ms' (repeatable; the first
    /// match wins).
    #[arg(long, value_name = "ROUTE=D")]
    #[serde(default)]
    pub route_latency: Vec<String>,
    /// Error rate of one route instead of --error-rate, e.g. '/api/pay=0.2' (repeatable).
    #[arg(long, value_name = "ROUTE=F")]
    #[serde(default)]
    pub route_error_rate: Vec<String>,
    /// Serve Prometheus text at /metrics: process CPU seconds, resident memory, requests.
    #[arg(long)]
    #[serde(default)]
    pub metrics: bool,
    /// CPU time every request burns, e.g. 200us or 2ms (a CPU regression without a latency
    /// one, as long as a core is free).
    #[arg(long, value_name = "D")]
    pub cpu_per_request: Option<Span>,
    /// Memory every request keeps for good, e.g. 4KiB (a staged leak; at most 1GiB in all).
    #[arg(long, value_name = "SIZE")]
    pub leak_per_request: Option<super::Size>,
    /// Answer every call (any method) as a unary gRPC echo over HTTP/2 (h2c or TLS): the
    /// request's messages back with grpc-status 0; the error rates answer grpc-status 14
    /// (UNAVAILABLE) instead of HTTP 500.
    #[arg(long)]
    #[serde(default)]
    pub grpc: bool,
}

impl TestbedSpec {
    pub fn config(&self) -> Result<TestbedConfig, SpecError> {
        let mut routes = Vec::new();
        for text in &self.route_latency {
            routes.push(
                RouteRule::parse(text, RouteEffect::latency)
                    .map_err(|m| SpecError::new("route_latency", m))?,
            );
        }
        for text in &self.route_error_rate {
            routes.push(
                RouteRule::parse(text, RouteEffect::error_rate)
                    .map_err(|m| SpecError::new("route_error_rate", m))?,
            );
        }
        let ms = |s: Option<Span>| s.map_or(0.0, |s| s.0.as_secs_f64() * 1000.0);
        let config = TestbedConfig {
            latency_ms: ms(self.latency),
            jitter_ms: ms(self.jitter),
            error_rate: self.error_rate.unwrap_or(0.0),
            routes,
            cost: Cost {
                metrics: self.metrics,
                cpu_per_request: self.cpu_per_request.map_or(Duration::ZERO, |d| d.0),
                leak_per_request: self.leak_per_request.map_or(0, |s| s.bytes()),
            },
            grpc: self.grpc,
        };
        let hour = 3_600_000.0;
        if config.latency_ms > hour {
            return Err(SpecError::new("latency", "must be at most 1h"));
        }
        if config.jitter_ms > hour {
            return Err(SpecError::new("jitter", "must be at most 1h"));
        }
        if config.cost.cpu_per_request > Duration::from_secs(1) {
            return Err(SpecError::new("cpu_per_request", "must be at most 1s"));
        }
        if config.cost.leak_per_request > crate::testbed::LEAK_LIMIT {
            return Err(SpecError::new("leak_per_request", "must be at most 1GiB"));
        }
        if !(0.0..=1.0).contains(&config.error_rate) {
            return Err(SpecError::new(
                "error_rate",
                format!("must be from 0 to 1, got {}", config.error_rate),
            ));
        }
        config
            .validate()
            .map_err(|m| SpecError::new("route_error_rate", m))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_have_units_and_rates_are_checked() {
        let spec: TestbedSpec = toml::from_str(
            "name = \"t\"\nlatency = \"2ms\"\njitter = \"1s\"\nroute_latency = [\"/x=40ms\"]",
        )
        .unwrap();
        let c = spec.config().unwrap();
        assert_eq!((c.latency_ms, c.jitter_ms), (2.0, 1000.0));
        assert!(toml::from_str::<TestbedSpec>("name = \"t\"\nlatency = 2").is_err());
        let spec: TestbedSpec = toml::from_str("name = \"t\"\nerror_rate = 1.5").unwrap();
        assert_eq!(spec.config().unwrap_err().key, "error_rate");
        let spec: TestbedSpec =
            toml::from_str("name = \"t\"\nroute_latency = [\"/x=40\"]").unwrap();
        let e = spec.config().unwrap_err();
        assert_eq!(e.key, "route_latency");
        assert!(e.message.contains("40ms"), "{}", e.message);
        let spec: TestbedSpec = toml::from_str(
            "name = \"t\"\nmetrics = true\ncpu_per_request = \"200us\"\nleak_per_request = \"4KiB\"",
        )
        .unwrap();
        let cost = spec.config().unwrap().cost;
        assert_eq!(
            (cost.metrics, cost.cpu_per_request, cost.leak_per_request),
            (true, Duration::from_micros(200), 4096)
        );
        let spec: TestbedSpec = toml::from_str("name = \"t\"\ngrpc = true").unwrap();
        assert!(spec.config().unwrap().grpc);
        assert!(toml::from_str::<TestbedSpec>("name = \"t\"\ngrpc = \"yes\"").is_err());
    }
}

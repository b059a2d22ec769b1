//! What one target did on one route (or overall): an accumulator that folds observations, and
//! the summary a report shows.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::observation::Observation;

/// 3 significant digits: 0.1% resolution, the usual HdrHistogram choice for latency.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Latencies above one hour are recorded as one hour. Together with auto-resize this bounds a
/// histogram at about 190 KB (u64 counts, 1 µs..1 h at 3 digits) whatever the input, while a
/// histogram of fast routes stays a few tens of KB.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Counts and latency histogram of one target, fed one observation at a time.
#[derive(Debug, Clone)]
pub struct TargetStats {
    requests: u64,
    errors: u64,
    failures: u64,
    /// Bounded by the u16 range, and in practice by the few codes a service returns.
    status: BTreeMap<u16, u64>,
    /// gRPC answers by `grpc-status` (0..=16 and whatever else a server sends, at most 256).
    grpc: BTreeMap<u8, u64>,
    /// Latencies of answered requests only, in µs.
    latency: Histogram<u64>,
}

impl Default for TargetStats {
    fn default() -> Self {
        // new() starts tiny with auto-resize on; the clamp in `add` caps its growth.
        let latency = Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is valid");
        TargetStats {
            requests: 0,
            errors: 0,
            failures: 0,
            status: BTreeMap::new(),
            grpc: BTreeMap::new(),
            latency,
        }
    }
}

impl TargetStats {
    /// gRPC answers by status code.
    pub fn grpc(&self) -> &BTreeMap<u8, u64> {
        &self.grpc
    }

    pub fn add(&mut self, observation: &Observation) {
        self.requests += 1;
        if let Some(code) = observation.status {
            *self.status.entry(code).or_default() += 1;
        }
        if let Some(code) = observation.grpc_status {
            *self.grpc.entry(code).or_default() += 1;
        }
        let error = observation.is_error();
        if error {
            self.errors += 1;
        }
        if observation.failed() {
            self.failures += 1;
        }
        // Failed exchanges stay out of the latency distribution: their "latency" is time to a
        // refused connect or a timeout, which would make a broken target look fast (or slow)
        // for reasons the failure rate already reports.
        if !error {
            // Not saturating_record: with auto-resize it clamps to the *current* range
            // instead of growing. The explicit clamp is what bounds the histogram.
            let us = observation.latency_us.min(MAX_LATENCY_US);
            if self.latency.record(us).is_err() {
                self.latency.saturating_record(us);
            }
        }
    }

    /// Adds another target's counts; exact, as if its observations had been fed here.
    pub fn merge(&mut self, other: &TargetStats) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.failures += other.failures;
        for (&code, &n) in &other.status {
            *self.status.entry(code).or_default() += n;
        }
        for (&code, &n) in &other.grpc {
            *self.grpc.entry(code).or_default() += n;
        }
        // Cannot fail: both auto-resize at the same precision. Should it ever, re-record by
        // value rather than panic and lose the run.
        if self.latency.add(&other.latency).is_err() {
            for v in other.latency.iter_recorded() {
                let us = v.value_iterated_to().min(MAX_LATENCY_US);
                if self.latency.record_n(us, v.count_at_value()).is_err() {
                    self.latency.saturating_record_n(us, v.count_at_value());
                }
            }
        }
    }

    /// Rebuilds the statistics from their parts (a summary file), checking they agree.
    ///
    /// # Errors
    /// The counts contradict each other or the histogram.
    pub fn from_parts(
        requests: u64,
        errors: u64,
        failures: u64,
        status: BTreeMap<u16, u64>,
        histogram: Histogram<u64>,
    ) -> Result<Self, String> {
        let answered: u64 = status.values().sum();
        if errors > failures || failures > requests || answered > requests {
            return Err(format!(
                "inconsistent counts: {requests} requests, {errors} errors, {failures} failures, {answered} with a status"
            ));
        }
        if histogram.len() > requests - errors {
            return Err(format!(
                "{} latencies for {} answered requests",
                histogram.len(),
                requests - errors
            ));
        }
        let mut stats = TargetStats {
            requests,
            errors,
            failures,
            status,
            ..TargetStats::default()
        };
        if histogram.max() > MAX_LATENCY_US {
            return Err(format!("a latency above {MAX_LATENCY_US} µs"));
        }
        // Added rather than taken over, so the histogram keeps this module's precision.
        stats
            .latency
            .add(&histogram)
            .map_err(|e| format!("histogram: {e:?}"))?;
        Ok(stats)
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// 5xx responses plus requests without a response.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Failures over requests, 0 when there were no requests.
    pub fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.requests)
    }

    pub fn status(&self) -> &BTreeMap<u16, u64> {
        &self.status
    }

    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// Latency at `quantile` in ms, `None` when nothing was answered.
    pub fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        (!self.latency.is_empty()).then(|| us_to_ms(self.latency.value_at_quantile(quantile)))
    }

    /// The numbers a report shows; the encoded histogram only when asked, as it is large.
    pub fn summary(&self, include_histogram: bool) -> TargetSummary {
        let q = |quantile| self.quantile_ms(quantile).unwrap_or(0.0);
        TargetSummary {
            requests: self.requests,
            errors: self.errors,
            failures: self.failures,
            failure_rate: round_to(self.failure_rate(), 1e6),
            status: self
                .status
                .iter()
                .map(|(code, n)| (code.to_string(), *n))
                .collect(),
            grpc_status: self
                .grpc
                .iter()
                .map(|(&code, n)| (crate::observation::grpc_name(code).to_owned(), *n))
                .collect(),
            p50_ms: q(0.50),
            p90_ms: q(0.90),
            p99_ms: q(0.99),
            p99_9_ms: q(0.999),
            max_ms: if self.latency.is_empty() {
                0.0
            } else {
                us_to_ms(self.latency.max())
            },
            mean_ms: if self.latency.is_empty() {
                0.0
            } else {
                round_to(self.latency.mean() / 1000.0, 1e3)
            },
            percentiles: if self.latency.is_empty() {
                Vec::new()
            } else {
                PERCENTILES
                    .iter()
                    .map(|&p| [p, us_to_ms(self.latency.value_at_percentile(p))])
                    .collect()
            },
            histogram: if include_histogram {
                super::codec::encode(&self.latency)
            } else {
                None
            },
        }
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Rounds to `1/per` (`per` = 1e3: three decimals). Reported numbers carry no float noise
/// (19.807, not 19.807000000000002), which also makes them read back exactly from JSON.
pub fn round_to(value: f64, per: f64) -> f64 {
    (value * per).round() / per
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The percentiles every summary lists, for charts: dense in the tail, where regressions hide.
pub const PERCENTILES: [f64; 16] = [
    0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 98.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
];

/// One target's numbers on one route or overall. Latencies are of answered requests, in ms;
/// they are 0 when nothing was answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSummary {
    pub requests: u64,
    /// Requests without a response.
    pub errors: u64,
    /// 5xx responses plus requests without a response.
    pub failures: u64,
    /// `failures / requests`, 0..=1.
    pub failure_rate: f64,
    /// Status code (as text, for JSON object keys) → count.
    pub status: BTreeMap<String, u64>,
    /// gRPC answers: status name (`UNAVAILABLE`) → count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grpc_status: BTreeMap<String, u64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// `[percentile, ms]` at each of [`PERCENTILES`]; empty when nothing was answered.
    #[serde(default)]
    pub percentiles: Vec<[f64; 2]>,
    /// The latency histogram in µs, HdrHistogram V2 + DEFLATE, base64; see [`super::codec`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(status: Option<u16>, latency_us: u64) -> Observation {
        Observation {
            id: "1".into(),
            target: "t".into(),
            route: "GET /".into(),
            method: "GET".into(),
            status,
            latency_us,
            bytes: 0,
            error: status.is_none().then(|| "timeout".into()),
            at_ms: None,
            grpc_status: None,
        }
    }

    #[test]
    fn counts_failures_and_keeps_errors_out_of_latency() {
        let mut t = TargetStats::default();
        t.add(&obs(Some(200), 1_000));
        t.add(&obs(Some(503), 2_000));
        t.add(&obs(None, 30_000_000));
        t.add(&obs(Some(200), u64::MAX));
        assert_eq!(t.requests(), 4);
        assert_eq!(t.errors(), 1);
        assert_eq!(t.failures(), 2);
        assert_eq!(t.latency().len(), 3);
        let s = t.summary(false);
        assert_eq!(s.status.get("200"), Some(&2));
        assert_eq!(s.status.get("503"), Some(&1));
        // The absurd latency was clamped to one hour, not dropped.
        assert!(
            (s.max_ms - 3_600_000.0).abs() / 3_600_000.0 < 0.001,
            "{}",
            s.max_ms
        );
        assert!(s.histogram.is_none());
        assert!(t.summary(true).histogram.is_some());
    }

    #[test]
    fn empty_target_has_zero_latencies() {
        let s = TargetStats::default().summary(false);
        assert_eq!(
            (s.requests, s.p99_ms, s.max_ms, s.mean_ms),
            (0, 0.0, 0.0, 0.0)
        );
        assert_eq!(s.failure_rate, 0.0);
    }
}

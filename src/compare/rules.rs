//! The rules that turn two targets' numbers into findings. Pure functions of two
//! [`TargetStats`] and the thresholds, so each rule is tested on its own.

use serde::{Deserialize, Serialize};

use super::checks::Check;
use super::target::{round_to, TargetStats};
use super::Options;

/// Whether a finding fails the run or is only worth reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fail,
    Info,
}

/// Which comparison a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Share of requests answered with 5xx or not answered at all; values in percent.
    FailureRate,
    /// 99th percentile latency of answered requests; values in ms.
    P99Latency,
    /// A status code the candidate returned and the baseline never did; values are counts.
    NewStatus,
    /// Paired shift of latency (Hodges–Lehmann of candidate − baseline); values are medians in ms.
    LatencyShift,
    /// Share of requests slower than the allowance (one-sided KS with tolerance); values in %.
    LatencyDistribution,
    /// The anytime-valid sequential judge over live pairs; values are e-values.
    Sequential,
    /// A resource metric from Prometheus (`[prometheus]` in the judge file); values in the
    /// metric's unit, the finding's message names the metric.
    Resource,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::FailureRate => "failure_rate",
            Metric::P99Latency => "p99_latency",
            Metric::NewStatus => "new_status",
            Metric::LatencyShift => "latency_shift",
            Metric::LatencyDistribution => "latency_distribution",
            Metric::Sequential => "sequential",
            Metric::Resource => "resource",
        }
    }
}

/// Four significant digits whatever the magnitude: CPU seconds per request (0.002134) and
/// bytes a minute (1048576) both read.
pub fn significant(value: f64, change: bool) -> String {
    let text = if value == 0.0 || !value.is_finite() {
        "0".to_owned()
    } else {
        let magnitude = value.abs().log10().floor() as i32;
        if !(-4..9).contains(&magnitude) {
            format!("{value:.3e}")
        } else {
            {
                let s = format!("{value:.*}", (3 - magnitude).max(0) as usize);
                let s = if s.contains('.') {
                    s.trim_end_matches('0').trim_end_matches('.')
                } else {
                    &s
                };
                s.to_owned()
            }
        }
    };
    if change && !text.starts_with('-') && text != "0" {
        format!("+{text}")
    } else {
        text
    }
}

/// One difference between candidate and baseline on one route (or overall).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub route: String,
    pub metric: Metric,
    pub severity: Severity,
    /// Set for [`Metric::NewStatus`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub baseline: f64,
    pub candidate: f64,
    /// The candidate value above which the metric fails; `None` for informational metrics.
    pub threshold: Option<f64>,
    /// Unit of `baseline`, `candidate` and `threshold`: "%", "ms" or "count".
    pub unit: String,
    pub message: String,
    /// The statistical check behind the finding, when one was made: effect, interval,
    /// p-values and the limit on the effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
}

/// All findings for one route, in a fixed order: failure rate, p99, new status codes.
/// `skip_status` lists codes already reported elsewhere (used for the overall row).
pub fn judge(
    route: &str,
    baseline: &TargetStats,
    candidate: &TargetStats,
    options: &Options,
    skip_status: &[u16],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(failure_rate(route, baseline, candidate, options));
    findings.extend(p99_latency(route, baseline, candidate, options));
    findings.extend(new_status(route, baseline, candidate, skip_status));
    findings
}

/// Rule (a): the candidate fails more often than the baseline, by more than the margin.
pub fn failure_rate(
    route: &str,
    baseline: &TargetStats,
    candidate: &TargetStats,
    options: &Options,
) -> Option<Finding> {
    let (b, c) = (baseline.failure_rate(), candidate.failure_rate());
    let limit = b + options.error_rate_margin;
    // Compare with a hair of tolerance so that "exactly at the margin" is not a failure
    // because of float rounding in b + margin.
    if c <= limit + 1e-12 {
        return None;
    }
    Some(Finding {
        route: route.to_owned(),
        metric: Metric::FailureRate,
        severity: Severity::Fail,
        status: None,
        baseline: round_to(b * 100.0, 1e4),
        candidate: round_to(c * 100.0, 1e4),
        threshold: Some(round_to(limit * 100.0, 1e4)),
        unit: "%".into(),
        check: None,
        message: format!(
            "5xx/no-response rate {:.2}% vs {:.2}% ({} of {} vs {} of {}), limit +{} point{}",
            c * 100.0,
            b * 100.0,
            candidate.failures(),
            candidate.requests(),
            baseline.failures(),
            baseline.requests(),
            trim(options.error_rate_margin * 100.0),
            if options.error_rate_margin == 0.01 {
                ""
            } else {
                "s"
            },
        ),
    })
}

/// Rule (b): the candidate's p99 is above both the relative and the absolute allowance, so
/// neither noise on a fast route (absolute) nor a slow route's jitter (relative) fails alone.
pub fn p99_latency(
    route: &str,
    baseline: &TargetStats,
    candidate: &TargetStats,
    options: &Options,
) -> Option<Finding> {
    let b = baseline.quantile_ms(0.99)?;
    let c = candidate.quantile_ms(0.99)?;
    let limit = (b * (1.0 + options.p99_relative)).max(b + options.p99_absolute_ms);
    if c <= limit {
        return None;
    }
    Some(Finding {
        route: route.to_owned(),
        metric: Metric::P99Latency,
        severity: Severity::Fail,
        status: None,
        baseline: b,
        candidate: c,
        // µs resolution, like the histogram the values come from.
        threshold: Some(round_to(limit, 1e3)),
        unit: "ms".into(),
        check: None,
        message: format!(
            "p99 latency {:.1} ms vs {:.1} ms ({}), limit +{}% and {} ms",
            c,
            b,
            change(b, c),
            trim(options.p99_relative * 100.0),
            trim(options.p99_absolute_ms),
        ),
    })
}

/// Rule (c): codes only the candidate returned. 5xx are left to rule (a), which weighs them.
pub fn new_status(
    route: &str,
    baseline: &TargetStats,
    candidate: &TargetStats,
    skip_status: &[u16],
) -> Vec<Finding> {
    candidate
        .status()
        .iter()
        .filter(|(code, _)| {
            !(500..=599).contains(*code)
                && !baseline.status().contains_key(code)
                && !skip_status.contains(code)
        })
        .map(|(&code, &n)| Finding {
            route: route.to_owned(),
            metric: Metric::NewStatus,
            severity: Severity::Info,
            status: Some(code),
            baseline: 0.0,
            candidate: n as f64,
            threshold: None,
            unit: "count".into(),
            check: None,
            message: format!(
                "status {code} returned {n} time{} by the candidate, never by the baseline",
                if n == 1 { "" } else { "s" }
            ),
        })
        .chain(new_grpc_status(route, baseline, candidate))
        .collect()
}

/// gRPC statuses the candidate answered and the baseline never did, by name; the failure
/// statuses are left to the failure rate, as 5xx are.
fn new_grpc_status<'a>(
    route: &'a str,
    baseline: &'a TargetStats,
    candidate: &'a TargetStats,
) -> impl Iterator<Item = Finding> + 'a {
    candidate
        .grpc()
        .iter()
        .filter(|(code, _)| {
            !crate::observation::GRPC_FAILURES.contains(*code)
                && !baseline.grpc().contains_key(code)
        })
        .map(move |(&code, &n)| Finding {
            route: route.to_owned(),
            metric: Metric::NewStatus,
            severity: Severity::Info,
            status: None,
            baseline: 0.0,
            candidate: n as f64,
            threshold: None,
            unit: "count".into(),
            check: None,
            message: format!(
                "gRPC status {} ({code}) returned {n} time{} by the candidate, never by the baseline",
                crate::observation::grpc_name(code),
                if n == 1 { "" } else { "s" }
            ),
        })
}

/// A finding of a statistical metric ([`Metric::LatencyShift`], [`Metric::LatencyDistribution`])
/// whose effect is over its limit; the caller adds the p-values and decides the severity.
pub fn statistical(route: &str, check: &Check, options: &Options) -> Finding {
    let interval = |unit: &str| match check.interval {
        Some([lo, hi]) => format!(
            " ({}% CI {lo:+.1} to {hi:+.1}{unit})",
            trim((1.0 - options.alpha) * 100.0)
        ),
        None => String::new(),
    };
    let message = match check.metric {
        Metric::LatencyShift => format!(
            "paired latency shift {:+.1} ms{}, median {:.1} ms vs {:.1} ms, limit +{}% and {} ms",
            check.effect,
            interval(" ms"),
            check.candidate,
            check.baseline,
            trim(options.shift_relative * 100.0),
            trim(options.shift_absolute_ms),
        ),
        _ => format!(
            "{:.1}% of requests slower than +{}% and {} ms over the baseline \
             ({:.1}% vs {:.1}% below), limit {}%",
            check.effect,
            trim(options.p99_relative * 100.0),
            trim(options.p99_absolute_ms),
            check.candidate,
            check.baseline,
            trim(options.distribution_share * 100.0),
        ),
    };
    Finding {
        route: route.to_owned(),
        metric: check.metric,
        severity: Severity::Fail,
        status: None,
        baseline: check.baseline,
        candidate: check.candidate,
        threshold: Some(check.limit),
        unit: check.unit.clone(),
        message,
        check: None,
    }
}

/// "+377%", "-12%", or "+∞" when the baseline was 0.
fn change(baseline: f64, candidate: f64) -> String {
    if baseline > 0.0 {
        format!("{:+.0}%", (candidate / baseline - 1.0) * 100.0)
    } else {
        "+∞".into()
    }
}

/// 20.0 → "20", 0.5 → "0.5": thresholds are printed as the user wrote them.
pub fn trim(value: f64) -> String {
    let s = format!("{value:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::Observation;

    fn stats(latencies_ms: &[f64], statuses: &[Option<u16>]) -> TargetStats {
        let mut t = TargetStats::default();
        for (i, &ms) in latencies_ms.iter().enumerate() {
            let status = statuses.get(i).copied().unwrap_or(Some(200));
            t.add(&Observation {
                id: i.to_string().into(),
                target: "x".into(),
                route: "GET /".into(),
                method: "GET".into(),
                status,
                latency_us: (ms * 1000.0) as u64,
                bytes: 0,
                error: status.is_none().then(|| "reset".into()),
                at_ms: None,
                grpc_status: None,
            });
        }
        t
    }

    fn options() -> Options {
        Options::new("stable", "canary")
    }

    #[test]
    fn p99_needs_both_relative_and_absolute_excess() {
        let base = stats(&[10.0; 100], &[]);
        // +30% but only 3 ms: within the absolute allowance.
        assert!(p99_latency("r", &base, &stats(&[13.0; 100], &[]), &options()).is_none());
        // +60% and 6 ms: fails, and says so in the agreed words.
        let f = p99_latency("r", &base, &stats(&[16.0; 100], &[]), &options()).unwrap();
        assert_eq!(f.severity, Severity::Fail);
        assert_eq!(
            f.message,
            "p99 latency 16.0 ms vs 10.0 ms (+60%), limit +20% and 5 ms"
        );
        // A slow route: +8 ms is only +4%, within the relative allowance.
        let slow = stats(&[200.0; 100], &[]);
        assert!(p99_latency("r", &slow, &stats(&[208.0; 100], &[]), &options()).is_none());
    }

    #[test]
    fn failure_rate_margin_is_in_points() {
        let base = stats(&[1.0; 100], &[]);
        let one_5xx: Vec<_> = (0..100)
            .map(|i| Some(if i == 0 { 500 } else { 200 }))
            .collect();
        // 1% more failures is exactly the margin: not a finding.
        assert!(failure_rate("r", &base, &stats(&[1.0; 100], &one_5xx), &options()).is_none());
        let two: Vec<_> = (0..100)
            .map(|i| if i < 2 { None } else { Some(200) })
            .collect();
        let f = failure_rate("r", &base, &stats(&[1.0; 100], &two), &options()).unwrap();
        assert_eq!((f.baseline, f.candidate), (0.0, 2.0));
        assert!(
            f.message.starts_with("5xx/no-response rate 2.00% vs 0.00%"),
            "{}",
            f.message
        );
    }

    #[test]
    fn new_status_is_informational_and_skips_5xx() {
        let base = stats(&[1.0; 3], &[]);
        let cand = stats(&[1.0; 3], &[Some(404), Some(502), Some(200)]);
        let f = new_status("r", &base, &cand, &[]);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].status, f[0].severity), (Some(404), Severity::Info));
        assert!(new_status("r", &base, &cand, &[404]).is_empty());
    }

    #[test]
    fn new_grpc_statuses_are_named_and_failures_left_to_the_failure_rate() {
        let grpc = |codes: &[u8]| {
            let mut t = TargetStats::default();
            for &code in codes {
                t.add(&Observation {
                    id: "1".into(),
                    target: "t".into(),
                    route: "POST /shop.Catalog/Get".into(),
                    method: "POST".into(),
                    status: Some(200),
                    latency_us: 1000,
                    bytes: 5,
                    error: None,
                    at_ms: None,
                    grpc_status: Some(code),
                });
            }
            t
        };
        let (base, cand) = (grpc(&[0, 0, 5]), grpc(&[0, 5, 3, 14]));
        let f = new_status("r", &base, &cand, &[]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].message
                .starts_with("gRPC status INVALID_ARGUMENT (3) returned 1 time by the candidate"),
            "{}",
            f[0].message
        );
        assert_eq!(
            cand.failures(),
            1,
            "UNAVAILABLE is a failure, counted there"
        );
        assert_eq!(cand.summary(false).grpc_status["UNAVAILABLE"], 1);
    }
}

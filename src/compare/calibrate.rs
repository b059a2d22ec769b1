//! Calibration: thresholds from an A/A run. Two stable targets get the same traffic; whatever
//! differences the judge measures between them are noise, so the limits are set above them
//! (by a margin) and written as a judge file for [`super::judge_file`] to read.
//!
//! Input is the [`Verdict`] of comparing the two stables (the second one as candidate); the
//! output is TOML text. Pure: the caller reads observations and writes the file.

use std::fmt::Write;

use super::checks::Check;
use super::rules::Metric;
use super::target::round_to;
use super::{Verdict, OVERALL_ROUTE};

/// Limits never go below these, however quiet the A/A run was: a calibrated judge should not
/// fail a canary for 0.1 ms.
const FLOOR_ERROR_RATE: f64 = 0.001;
const FLOOR_RELATIVE: f64 = 0.05;
const FLOOR_ABSOLUTE_MS: f64 = 1.0;
const FLOOR_SHIFT_RELATIVE: f64 = 0.02;
const FLOOR_SHIFT_ABSOLUTE_MS: f64 = 0.5;
const FLOOR_DISTRIBUTION: f64 = 0.01;

/// Limits derived from one route's (or the overall) A/A checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibrated {
    pub error_rate: f64,
    pub p99_relative: f64,
    pub p99_absolute_ms: f64,
    pub shift_relative: f64,
    pub shift_absolute_ms: f64,
    pub distribution: f64,
}

/// The noise bound of a check: the upper end of its interval when there is one (how large the
/// A/A difference could plausibly be), else the size of the effect.
fn bound(check: &Check) -> f64 {
    let upper = check.interval.map_or(check.effect, |[lo, hi]| hi.max(-lo));
    upper.max(check.effect.abs())
}

/// Limits `margin` times above the A/A differences of `checks`, with floors.
pub fn limits(checks: &[Check], margin: f64) -> Calibrated {
    let find = |metric| checks.iter().find(|c| c.metric == metric);
    let relative = |c: &Check, of: f64| if of > 0.0 { bound(c) / of } else { 0.0 };
    let r4 = |x: f64| round_to(x, 1e4);
    let r3 = |x: f64| round_to(x, 1e3);
    let mut out = Calibrated {
        error_rate: FLOOR_ERROR_RATE,
        p99_relative: FLOOR_RELATIVE,
        p99_absolute_ms: FLOOR_ABSOLUTE_MS,
        shift_relative: FLOOR_SHIFT_RELATIVE,
        shift_absolute_ms: FLOOR_SHIFT_ABSOLUTE_MS,
        distribution: FLOOR_DISTRIBUTION,
    };
    if let Some(c) = find(Metric::FailureRate) {
        // Effects are in percentage points; the judge file takes fractions.
        out.error_rate = r4((bound(c) / 100.0 * margin).max(FLOOR_ERROR_RATE));
    }
    if let Some(c) = find(Metric::P99Latency) {
        out.p99_relative = r4((relative(c, c.baseline) * margin).max(FLOOR_RELATIVE));
        out.p99_absolute_ms = r3((bound(c) * margin).max(FLOOR_ABSOLUTE_MS));
    }
    if let Some(c) = find(Metric::LatencyShift) {
        out.shift_relative = r4((relative(c, c.baseline) * margin).max(FLOOR_SHIFT_RELATIVE));
        out.shift_absolute_ms = r3((bound(c) * margin).max(FLOOR_SHIFT_ABSOLUTE_MS));
    }
    if let Some(c) = find(Metric::LatencyDistribution) {
        out.distribution = r4((bound(c) / 100.0 * margin).clamp(FLOOR_DISTRIBUTION, 1.0));
    }
    out
}

fn write_thresholds(out: &mut String, c: &Calibrated, inline: bool) {
    let body = format!(
        "error_rate = {}{sep}p99 = {{ relative = {}, absolute_ms = {} }}{sep}\
         shift = {{ relative = {}, absolute_ms = {} }}{sep}distribution = {}",
        c.error_rate,
        c.p99_relative,
        c.p99_absolute_ms,
        c.shift_relative,
        c.shift_absolute_ms,
        c.distribution,
        sep = if inline { ", " } else { "\n" },
    );
    if inline {
        let _ = writeln!(out, "thresholds = {{ {body} }}");
    } else {
        let _ = writeln!(out, "[thresholds]\n{body}");
    }
}

/// The judge file for an A/A `verdict`: general limits from the overall checks, and one
/// override per judged route from its own checks. `margin` (e.g. 1.5) is how far above the
/// A/A differences the limits are set.
pub fn judge_file(verdict: &Verdict, margin: f64) -> String {
    let t = &verdict.thresholds;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# nprt judge file, calibrated from an A/A run: {} vs {} ({} and {} requests, {} pairs).\n\
         # Limits are {margin}× the largest plausible A/A difference (interval bound), with floors.\n",
        verdict.baseline,
        verdict.candidate,
        verdict.overall.baseline.requests,
        verdict.overall.candidate.requests,
        verdict.overall.paired.pairs,
    );
    let correction = match t.correction {
        super::Correction::Holm => "holm",
        super::Correction::Bh => "bh",
        super::Correction::None => "none",
    };
    let _ = writeln!(
        out,
        "alpha = {}\ncorrection = \"{correction}\"\nmin_requests = {}\nwarmup = {}\n",
        t.alpha, t.min_requests, t.warmup
    );
    write_thresholds(&mut out, &limits(&verdict.overall.checks, margin), false);
    for route in verdict
        .routes
        .iter()
        .filter(|r| r.judged && r.route != OVERALL_ROUTE)
    {
        if route.route == super::OTHER_ROUTE {
            continue;
        }
        let pattern = toml::Value::String(route.route.clone()).to_string();
        let _ = writeln!(out, "\n[[routes]]\npattern = {pattern}");
        write_thresholds(&mut out, &limits(&route.checks, margin), true);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::judge_file;
    use crate::compare::{Comparison, Options};
    use crate::observation::Observation;

    /// Feeds two stables with independent jitter of ±2 ms around 10 ms (route a) and 50 ms
    /// (route b), the same run every time.
    fn feed_aa(c: &mut Comparison) {
        let mut rng = fastrand::Rng::with_seed(3);
        for i in 0..2_000u64 {
            let (route, ms) = if i % 2 == 0 {
                ("GET /a", 10.0)
            } else {
                ("GET /b/:id", 50.0)
            };
            for target in ["stable", "stable-2"] {
                let jitter = (rng.f64() - 0.5) * 4.0;
                c.add(&Observation {
                    id: i.to_string().into(),
                    target: target.into(),
                    route: route.into(),
                    method: "GET".into(),
                    status: Some(if rng.u32(..1000) == 0 { 500 } else { 200 }),
                    latency_us: ((ms + jitter) * 1000.0) as u64,
                    bytes: 0,
                    error: None,
                    at_ms: None,
                    grpc_status: None,
                });
            }
        }
    }

    fn aa() -> Verdict {
        let mut c = Comparison::new(Options::new("stable", "stable-2")).unwrap();
        feed_aa(&mut c);
        c.verdict()
    }

    #[test]
    fn calibrated_file_reads_back_and_passes_its_own_run() {
        let v = aa();
        let text = judge_file(&v, 1.5);
        assert!(text.contains("pattern = \"GET /b/:id\""), "{text}");
        let options = judge_file::parse(&text, Options::new("stable", "stable-2")).unwrap();
        options.validate().unwrap();
        assert_eq!(options.routes.len(), 2);
        // Limits sit above the A/A noise: ±2 ms jitter gives p99 differences of well under
        // 2 ms, so the absolute allowances are small but above the floor or the noise.
        assert!(
            options.p99_absolute_ms >= 1.0 && options.p99_absolute_ms < 10.0,
            "{text}"
        );
        assert!(options.distribution_share >= 0.01);
        // Judged by its own calibration, the A/A run passes.
        let mut again = Comparison::new(options).unwrap();
        feed_aa(&mut again);
        assert_eq!(again.verdict().outcome, crate::compare::Outcome::Pass);
    }

    #[test]
    fn floors_hold_for_a_perfectly_quiet_run() {
        let c = limits(&[], 1.5);
        assert_eq!(c.error_rate, FLOOR_ERROR_RATE);
        assert_eq!(c.p99_absolute_ms, FLOOR_ABSOLUTE_MS);
    }
}

//! The statistical checks of one route (or overall): each metric gets an effect with an
//! interval, a one-sided p-value in the harmful direction, and the limit on the effect. A check
//! fails when its effect is beyond the limit *and* its p-value, adjusted across every route ×
//! metric of the run (see [`super::stats::adjust`]), is below alpha. A check without a test
//! (too few pairs for one) fails on the limit alone, as the fixed-threshold rules did.
//!
//! Inputs are the two targets' accumulated [`TargetStats`] and the route's [`PairedStats`];
//! nothing here does I/O.

use serde::{Deserialize, Serialize};

use super::paired::PairedStats;
use super::rules::Metric;
use super::stats;
use super::target::{round_to, TargetStats};
use super::Options;

/// Fixed seed of the bootstrap: the same input gives the same verdict.
const BOOTSTRAP_SEED: u64 = 0x626f_6f74;

/// Whether a check passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    Pass,
    /// Beyond the limit, but not significant after adjustment: not a failure.
    NotSignificant,
    Fail,
}

/// One metric's comparison on one route (or overall).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub metric: Metric,
    /// The test behind `p_value`: "mcnemar_exact", "fisher_exact", "bootstrap",
    /// "wilcoxon_signed_rank", "smirnov_one_sided", or "none" (limit only).
    pub test: String,
    /// The metric on each side, in `unit`.
    pub baseline: f64,
    pub candidate: f64,
    /// The estimated harmful change, in `unit` (for the failure rate: percentage points).
    pub effect: f64,
    /// 1-α interval of `effect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<[f64; 2]>,
    /// The change that is allowed; the check can fail only when `effect` exceeds it.
    pub limit: f64,
    pub unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// `p_value` adjusted across all checks of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_adjusted: Option<f64>,
    /// Observations or pairs the test used.
    pub samples: u64,
    /// The same effect between the baseline and the second stable (`--noise`), when measured;
    /// `limit` was raised above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
    /// The limit before the noise raised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_without_noise: Option<f64>,
    pub outcome: CheckOutcome,
}

impl Check {
    pub fn over_limit(&self) -> bool {
        // A hair of tolerance: "exactly at the margin" is not beyond it.
        self.effect > self.limit + 1e-9
    }

    /// Sets `p_adjusted` and decides the outcome.
    pub fn decide(&mut self, p_adjusted: Option<f64>, alpha: f64) {
        self.p_adjusted = p_adjusted;
        self.outcome = match (self.over_limit(), p_adjusted) {
            (false, _) => CheckOutcome::Pass,
            (true, None) => CheckOutcome::Fail,
            (true, Some(p)) if p < alpha => CheckOutcome::Fail,
            (true, Some(_)) => CheckOutcome::NotSignificant,
        };
    }

    /// ", p = 0.0012 (adjusted 0.0048)" or "" without a test.
    pub fn p_text(&self) -> String {
        match (self.p_value, self.p_adjusted) {
            (Some(p), Some(a)) => format!(", p = {} (adjusted {})", fmt_p(p), fmt_p(a)),
            (Some(p), None) => format!(", p = {}", fmt_p(p)),
            _ => String::new(),
        }
    }
}

/// 0.0123 → "0.0123", 3.2e-9 → "3.2e-9", 0 (below f64's reach) → "0".
pub fn fmt_p(p: f64) -> String {
    if p <= 0.0 {
        "0".into()
    } else if p >= 0.001 {
        format!("{}", round_to(p, 1e4))
    } else {
        format!("{p:.1e}")
    }
}

/// All checks of one route, in a fixed order: failure rate, p99, shift, distribution. Nothing
/// is decided yet (outcome `Pass`, no adjusted p): the caller adjusts across the whole run.
pub fn checks(
    baseline: &TargetStats,
    candidate: &TargetStats,
    paired: &PairedStats,
    options: &Options,
) -> Vec<Check> {
    let mut out = vec![failure_rate(baseline, candidate, paired, options)];
    out.extend(p99(baseline, candidate, paired, options));
    out.extend(shift(baseline, candidate, paired, options));
    out.extend(distribution(baseline, candidate, options));
    out
}

fn undecided(metric: Metric, test: &str, unit: &str) -> Check {
    Check {
        metric,
        test: test.into(),
        baseline: 0.0,
        candidate: 0.0,
        effect: 0.0,
        interval: None,
        limit: 0.0,
        unit: unit.into(),
        p_value: None,
        p_adjusted: None,
        samples: 0,
        noise: None,
        limit_without_noise: None,
        outcome: CheckOutcome::Pass,
    }
}

/// Paired exact McNemar test when there are enough pairs, otherwise Fisher's exact test on the
/// two targets' counts. The effect is the difference of the failure rates in points.
fn failure_rate(
    baseline: &TargetStats,
    candidate: &TargetStats,
    paired: &PairedStats,
    options: &Options,
) -> Check {
    let (b, c) = (baseline.failure_rate(), candidate.failure_rate());
    let mut check = undecided(Metric::FailureRate, "fisher_exact", "%");
    check.baseline = round_to(b * 100.0, 1e4);
    check.candidate = round_to(c * 100.0, 1e4);
    check.effect = round_to((c - b) * 100.0, 1e4);
    check.limit = round_to(options.error_rate_margin * 100.0, 1e4);
    let z = stats::normal_quantile_upper(options.alpha / 2.0);
    if paired.pairs() >= options.min_requests {
        let m = stats::mcnemar(
            paired.worse(),
            paired.better(),
            paired.pairs(),
            options.alpha,
        );
        check.test = "mcnemar_exact".into();
        check.interval = Some([
            round_to(m.interval.0 * 100.0, 1e4),
            round_to(m.interval.1 * 100.0, 1e4),
        ]);
        check.p_value = Some(m.p_value);
        check.samples = paired.pairs();
    } else {
        let (nb, nc) = (
            baseline.requests().max(1) as f64,
            candidate.requests().max(1) as f64,
        );
        let se = (b * (1.0 - b) / nb + c * (1.0 - c) / nc).sqrt();
        let d = c - b;
        check.interval = Some([
            round_to((d - z * se) * 100.0, 1e4),
            round_to((d + z * se) * 100.0, 1e4),
        ]);
        check.p_value = Some(stats::fisher_greater(
            candidate.failures(),
            candidate.requests(),
            baseline.failures(),
            baseline.requests(),
        ));
        check.samples = baseline.requests() + candidate.requests();
    }
    check
}

/// p99 of the histograms (all answered requests) against the allowance of the fixed rule;
/// with enough answered pairs, a paired bootstrap gives the interval and the p-value.
fn p99(
    baseline: &TargetStats,
    candidate: &TargetStats,
    paired: &PairedStats,
    options: &Options,
) -> Option<Check> {
    let b = baseline.quantile_ms(0.99)?;
    let c = candidate.quantile_ms(0.99)?;
    let mut check = undecided(Metric::P99Latency, "none", "ms");
    check.baseline = b;
    check.candidate = c;
    check.effect = round_to(c - b, 1e3);
    check.limit = round_to((b * options.p99_relative).max(options.p99_absolute_ms), 1e3);
    check.samples = baseline.latency().len().min(candidate.latency().len());
    let pairs = paired.latency_pairs();
    if pairs.len() as u64 >= options.min_requests {
        if let Some(q) = stats::quantile_delta_bootstrap(
            pairs,
            0.99,
            options.bootstrap_resamples,
            options.alpha,
            BOOTSTRAP_SEED,
        ) {
            check.test = "bootstrap".into();
            check.interval = Some([
                round_to(q.interval.0 / 1000.0, 1e3),
                round_to(q.interval.1 / 1000.0, 1e3),
            ]);
            check.p_value = Some(q.p_value);
            check.samples = pairs.len() as u64;
        }
    }
    Some(check)
}

/// Paired location shift: Hodges–Lehmann estimate of candidate − baseline with its interval,
/// Wilcoxon signed-rank p-value. Needs answered pairs.
fn shift(
    baseline: &TargetStats,
    candidate: &TargetStats,
    paired: &PairedStats,
    options: &Options,
) -> Option<Check> {
    let diffs = paired.differences();
    if (diffs.len() as u64) < options.min_requests {
        return None;
    }
    let hl = stats::hodges_lehmann(&diffs, options.alpha)?;
    let test = stats::signed_rank(&diffs, 0);
    let b = baseline.quantile_ms(0.5)?;
    let mut check = undecided(Metric::LatencyShift, "wilcoxon_signed_rank", "ms");
    check.baseline = b;
    check.candidate = candidate.quantile_ms(0.5)?;
    check.effect = round_to(hl.estimate / 1000.0, 1e3);
    check.interval = Some([
        round_to(hl.interval.0 / 1000.0, 1e3),
        round_to(hl.interval.1 / 1000.0, 1e3),
    ]);
    check.limit = round_to(
        (b * options.shift_relative).max(options.shift_absolute_ms),
        1e3,
    );
    check.p_value = Some(test.p_value);
    check.samples = diffs.len() as u64;
    Some(check)
}

/// One-sided two-sample KS on the histograms, with the p99 allowance as tolerance: which share
/// of requests is slower than the baseline's by more than "+p99_relative and +p99_absolute".
/// Sees changes of spread and tail that a location test misses.
fn distribution(
    baseline: &TargetStats,
    candidate: &TargetStats,
    options: &Options,
) -> Option<Check> {
    let buckets = |t: &TargetStats| -> Vec<(u64, u64)> {
        t.latency()
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_since_last_iteration()))
            .collect()
    };
    let (rel, abs_us) = (options.p99_relative, options.p99_absolute_ms * 1000.0);
    let allow = |x: u64| -> u64 {
        let x = x as f64;
        (x * (1.0 + rel)).max(x + abs_us) as u64
    };
    let b = buckets(baseline);
    let c = buckets(candidate);
    let s = stats::smirnov_greater(&b, &c, allow)?;
    let share_le = |buckets: &[(u64, u64)], limit: u64| -> f64 {
        let total: u64 = buckets.iter().map(|&(_, n)| n).sum();
        let below: u64 = buckets
            .iter()
            .take_while(|&&(x, _)| x <= limit)
            .map(|&(_, n)| n)
            .sum();
        below as f64 / total.max(1) as f64
    };
    let mut check = undecided(Metric::LatencyDistribution, "smirnov_one_sided", "%");
    // Where the gap is largest: the baseline's share at or below x, and the candidate's at or
    // below x plus the allowance. Without a gap there is no such place; both read 100%.
    if s.d > 0.0 {
        check.baseline = round_to(share_le(&b, s.at) * 100.0, 1e4);
        check.candidate = round_to(share_le(&c, allow(s.at)) * 100.0, 1e4);
    } else {
        check.baseline = 100.0;
        check.candidate = 100.0;
    }
    check.effect = round_to(s.d * 100.0, 1e4);
    check.limit = round_to(options.distribution_share * 100.0, 1e4);
    check.p_value = Some(s.p_value);
    check.samples = baseline.latency().len().min(candidate.latency().len());
    Some(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_print_readably() {
        assert_eq!(fmt_p(0.012345), "0.0123");
        assert_eq!(fmt_p(3.2e-9), "3.2e-9");
        assert_eq!(fmt_p(0.0), "0");
    }

    #[test]
    fn decide_needs_both_limit_and_significance() {
        let mut c = undecided(Metric::LatencyShift, "wilcoxon_signed_rank", "ms");
        c.effect = 3.0;
        c.limit = 2.0;
        c.p_value = Some(0.001);
        c.decide(Some(0.04), 0.05);
        assert_eq!(c.outcome, CheckOutcome::Fail);
        c.decide(Some(0.06), 0.05);
        assert_eq!(c.outcome, CheckOutcome::NotSignificant);
        c.effect = 2.0;
        c.decide(Some(0.0), 0.05);
        assert_eq!(
            c.outcome,
            CheckOutcome::Pass,
            "at the limit is not beyond it"
        );
        c.effect = 5.0;
        c.decide(None, 0.05);
        assert_eq!(
            c.outcome,
            CheckOutcome::Fail,
            "no test: the limit alone decides"
        );
    }
}

//! Judging one resource metric: the two targets' samples are aligned on the query's steps,
//! divided by the requests each target answered in that step (`per_request`), and compared
//! step by step.
//!
//! # The test, and why paired
//!
//! Both targets are queried over the same window with the same step, so step k of the
//! baseline and step k of the candidate saw the same traffic (replay and the mirror send
//! every exchange to both at once), the same noisy neighbours and the same node. The
//! differences d_k = candidate_k − baseline_k remove all of that, so nprt uses the
//! **Wilcoxon signed-rank test** on them (one-sided in the harmful direction, exact below 50
//! steps) with the **Hodges–Lehmann** estimate of the shift and its distribution-free
//! interval — the same pair as the latency shift. Kayenta's Mann–Whitney on the two series as
//! independent samples throws the pairing away: with per-step load varying by ±30% it needs
//! several times the steps to see a +20% change (measured in the note).
//!
//! A level metric fails when the shift is beyond its allowance (relative to the baseline's
//! median and/or absolute, like the latency limits) *and* significant after adjusting across
//! the metrics (the run's correction); beyond the allowance but not significant is reported,
//! not failed.
//!
//! # Growth
//!
//! A `growth` metric (resident memory) is judged on its slope: the per-step increments
//! v_k − v_{k−1} (per minute, or per request with `per_request`) are compared the same way,
//! so a leak fails even when both targets start at the same level.
//!
//! Pure: samples and counts in, a [`ResourceResult`] out.

use serde::{Deserialize, Serialize};

use super::config::{Harmful, Kind, Metric};
use crate::compare::checks::{Check, CheckOutcome};
use crate::compare::rules::Metric as CheckMetric;
use crate::compare::stats;
use crate::compare::Outcome;

/// Points of each target's series kept for the report's chart.
pub const CHART_POINTS: usize = 120;

/// What one metric's comparison found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceResult {
    pub name: String,
    pub kind: Kind,
    pub harmful: Harmful,
    /// The queries as sent, baseline then candidate.
    pub queries: [String; 2],
    pub outcome: Outcome,
    /// Why it was not judged (INCONCLUSIVE), naming the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The comparison, when judged: medians, shift, interval, allowance, p-values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    /// The shift relative to the baseline's median (0.25 = +25%), when that is defined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative: Option<f64>,
    /// Steps compared.
    pub steps: usize,
    /// Per-step values (seconds since the window's start, value) of baseline and candidate,
    /// thinned to [`CHART_POINTS`].
    pub series: [Vec<(f64, f64)>; 2],
}

impl ResourceResult {
    /// A metric that could not be judged, and why (INCONCLUSIVE).
    pub fn unjudged(metric: &Metric, queries: [String; 2], reason: String) -> ResourceResult {
        ResourceResult {
            name: metric.name.clone(),
            kind: metric.kind,
            harmful: metric.harmful,
            queries,
            outcome: Outcome::Inconclusive,
            reason: Some(reason),
            check: None,
            relative: None,
            steps: 0,
            series: [Vec::new(), Vec::new()],
        }
    }
}

/// One target's aligned input: the query's samples and the answers per step.
pub struct Side<'a> {
    pub samples: &'a [(f64, f64)],
    /// Answers of this target in the step ending at a sample's time.
    pub requests: &'a dyn Fn(f64) -> u64,
}

/// The unit of a metric's compared values.
pub fn unit(metric: &Metric) -> &'static str {
    match (metric.kind, metric.per_request) {
        (Kind::Level, true) => "per request",
        (Kind::Level, false) => "",
        (Kind::Growth, true) => "growth per request",
        (Kind::Growth, false) => "per minute",
    }
}

/// The per-step values of one side, at the sample times: `None` where the step had too
/// little traffic to count (below half the median step, which drops ramp-up and ramp-down).
fn values(metric: &Metric, side: &Side<'_>, step_s: u64) -> Vec<(f64, Option<f64>)> {
    let counts: Vec<u64> = side
        .samples
        .iter()
        .map(|&(t, _)| (side.requests)(t))
        .collect();
    let mut sorted = counts.clone();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    let busy = |n: u64| n > 0 && 2 * n >= median;
    let mut out = Vec::with_capacity(side.samples.len());
    for (i, &(t, v)) in side.samples.iter().enumerate() {
        let value = match metric.kind {
            Kind::Level if !busy(counts[i]) => None,
            Kind::Level if metric.per_request => Some(v * step_s as f64 / counts[i] as f64),
            Kind::Level => Some(v),
            Kind::Growth => {
                let prev = i.checked_sub(1).map(|j| side.samples[j]);
                match prev {
                    // Consecutive steps only: a gap in the series is not a slope.
                    Some((tp, vp)) if (t - tp - step_s as f64).abs() < 0.5 && busy(counts[i]) => {
                        if metric.per_request {
                            Some((v - vp) / counts[i] as f64)
                        } else {
                            Some((v - vp) * 60.0 / step_s as f64)
                        }
                    }
                    _ => None,
                }
            }
        };
        out.push((t, value.filter(|x| x.is_finite())));
    }
    out
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn thin(points: Vec<(f64, f64)>, start: f64) -> Vec<(f64, f64)> {
    let every = points.len().div_ceil(CHART_POINTS).max(1);
    points
        .into_iter()
        .step_by(every)
        .map(|(t, v)| (t - start, v))
        .collect()
}

/// Compares one metric. `queries` are for the report; `alpha` is the interval's level. The
/// returned check is undecided: [`decide_all`] adjusts the p-values across metrics.
pub fn judge(
    metric: &Metric,
    queries: [String; 2],
    sides: [Side<'_>; 2],
    step_s: u64,
    min_steps: usize,
    alpha: f64,
) -> ResourceResult {
    let [b, c] = [
        values(metric, &sides[0], step_s),
        values(metric, &sides[1], step_s),
    ];
    let start = sides
        .iter()
        .filter_map(|s| s.samples.first())
        .map(|&(t, _)| t)
        .fold(f64::INFINITY, f64::min);
    let chart = |v: &[(f64, Option<f64>)]| {
        thin(
            v.iter().filter_map(|&(t, x)| Some((t, x?))).collect(),
            start,
        )
    };
    let mut result = ResourceResult {
        reason: None,
        series: [chart(&b), chart(&c)],
        ..ResourceResult::unjudged(metric, queries, String::new())
    };
    // Pair the steps by time.
    let mut pairs = Vec::new();
    let mut j = 0;
    for &(t, bv) in &b {
        while j < c.len() && c[j].0 < t - 0.5 {
            j += 1;
        }
        if let (Some(bv), Some(&(tc, Some(cv)))) = (bv, c.get(j)) {
            if (tc - t).abs() < 0.5 {
                pairs.push((bv, cv));
            }
        }
    }
    result.steps = pairs.len();
    if pairs.len() < min_steps {
        result.reason = Some(format!(
            "only {} step(s) with traffic on both targets, {min_steps} needed (prometheus.min_steps)",
            pairs.len()
        ));
        return result;
    }
    let sign = match metric.harmful {
        Harmful::Decrease => -1.0,
        Harmful::Increase | Harmful::Both => 1.0,
    };
    let diffs: Vec<f64> = pairs.iter().map(|&(bv, cv)| sign * (cv - bv)).collect();
    let base_median = median(&mut pairs.iter().map(|p| p.0).collect::<Vec<_>>());
    let cand_median = median(&mut pairs.iter().map(|p| p.1).collect::<Vec<_>>());
    let check = compare(metric, &diffs, base_median, cand_median, alpha);
    result.relative =
        (base_median.abs() > f64::EPSILON).then(|| sign * check.effect / base_median.abs());
    result.check = Some(check);
    result.outcome = Outcome::Pass;
    result
}

/// The signed-rank test and Hodges–Lehmann shift of `diffs` (already oriented so that
/// positive is harmful), on integers scaled so the largest difference is 10¹²: the tests in
/// [`stats`] count on integer ranks and Walsh sums.
fn compare(metric: &Metric, diffs: &[f64], base: f64, cand: f64, alpha: f64) -> Check {
    let max = diffs.iter().fold(0.0f64, |m, d| m.max(d.abs()));
    let scale = if max > 0.0 { 1e12 / max } else { 1.0 };
    let ints: Vec<i64> = diffs.iter().map(|d| (d * scale).round() as i64).collect();
    let hl = stats::hodges_lehmann(&ints, alpha).expect("at least min_steps differences");
    let p_value = match metric.harmful {
        Harmful::Both => {
            let up = stats::signed_rank(&ints, 0).p_value;
            let negated: Vec<i64> = ints.iter().map(|d| -d).collect();
            let down = stats::signed_rank(&negated, 0).p_value;
            (2.0 * up.min(down)).min(1.0)
        }
        Harmful::Increase | Harmful::Decrease => stats::signed_rank(&ints, 0).p_value,
    };
    let effect = hl.estimate / scale;
    let mut interval = [hl.interval.0 / scale, hl.interval.1 / scale];
    // With both directions harmful, the effect is the shift's size either way.
    let effect = if metric.harmful == Harmful::Both && effect < 0.0 {
        interval = [-interval[1], -interval[0]];
        -effect
    } else {
        effect
    };
    Check {
        metric: CheckMetric::Resource,
        test: "wilcoxon_signed_rank".into(),
        baseline: base,
        candidate: cand,
        effect,
        interval: Some(interval),
        limit: metric.limit.allowance(base),
        unit: unit(metric).into(),
        p_value: Some(p_value),
        p_adjusted: None,
        samples: diffs.len() as u64,
        noise: None,
        limit_without_noise: None,
        outcome: CheckOutcome::Pass,
    }
}

/// Adjusts the p-values of the judged metrics together (the run's correction) and decides
/// each: FAIL beyond the allowance and significant.
pub fn decide_all(results: &mut [ResourceResult], correction: stats::Correction, alpha: f64) {
    let p: Vec<f64> = results
        .iter()
        .filter_map(|r| r.check.as_ref()?.p_value)
        .collect();
    let mut adjusted = stats::adjust(&p, correction).into_iter();
    for r in results.iter_mut() {
        let Some(check) = r.check.as_mut() else {
            continue;
        };
        let p = check.p_value.and_then(|_| adjusted.next());
        check.decide(p, alpha);
        r.outcome = match check.outcome {
            CheckOutcome::Fail => Outcome::Fail,
            CheckOutcome::Pass | CheckOutcome::NotSignificant => Outcome::Pass,
        };
    }
}

#[cfg(test)]
mod tests;

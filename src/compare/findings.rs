//! Findings: what a reader is told about each route. A check over its limit becomes a
//! finding worded by the fixed rules in [`judge`](super::judge); with a second stable its
//! limit is first raised to the noise between the two stables (Diffy's rule); a check over its
//! limit that is not significant after adjustment stays as information only.

use super::checks::{self, Check, CheckOutcome};
use super::comparison::Pair;
use super::notes::sequential_failure;
use super::rules::{self, Finding, Metric, Severity};
use super::target::{self, TargetStats};
use super::{sequential, stats, Options, SequentialReport, OVERALL_ROUTE};

/// Diffy's rule: with a second stable, a candidate difference counts only beyond the
/// difference between the two stables (by `noise_relative` more), so each limit is raised to
/// that floor where the noise is larger.
pub(super) fn discount_noise(checks: &mut [Check], pair: &Pair, opts: &Options) {
    if opts.noise.is_none() || !pair.noise_enough(opts.min_requests) {
        return;
    }
    let noise = checks::checks(&pair.baseline, &pair.noise, &pair.noise_paired, opts);
    for check in checks {
        if let Some(n) = noise.iter().find(|n| n.metric == check.metric) {
            let floor = target::round_to(n.effect.abs() * (1.0 + opts.noise_relative), 1e4);
            check.noise = Some(n.effect);
            if floor > check.limit {
                check.limit_without_noise = Some(check.limit);
                check.limit = floor;
            }
        }
    }
}

/// Adjusts the p-values of all checks together and decides each.
pub(super) fn adjust_all<'a>(checks: impl Iterator<Item = &'a mut Check>, opts: &Options) {
    let mut checks: Vec<&mut Check> = checks.collect();
    let tested: Vec<f64> = checks.iter().filter_map(|c| c.p_value).collect();
    let mut adjusted = stats::adjust(&tested, opts.correction).into_iter();
    for check in &mut checks {
        let p = if check.p_value.is_some() {
            adjusted.next()
        } else {
            None
        };
        check.decide(p, opts.alpha);
    }
}

/// The findings of one route: the fixed rules' findings (their wording) backed by the
/// decided checks, then the statistical metrics, then new status codes.
pub(super) fn findings_of(
    route: &str,
    baseline: &TargetStats,
    candidate: &TargetStats,
    checks: &[Check],
    opts: &Options,
    skip_status: &[u16],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for check in checks {
        let finding = match check.metric {
            Metric::FailureRate => rules::failure_rate(route, baseline, candidate, opts),
            Metric::P99Latency => rules::p99_latency(route, baseline, candidate, opts),
            Metric::LatencyShift | Metric::LatencyDistribution => {
                let over_before_noise = check
                    .limit_without_noise
                    .is_some_and(|limit| check.effect > limit + 1e-9);
                (check.over_limit() || over_before_noise)
                    .then(|| rules::statistical(route, check, opts))
            }
            Metric::NewStatus | Metric::Sequential | Metric::Resource => None,
        };
        let Some(mut finding) = finding else {
            continue;
        };
        finding.message.push_str(&check.p_text());
        match (check.outcome, check.noise) {
            (CheckOutcome::Fail, _) => {}
            (CheckOutcome::NotSignificant, _) => {
                // Over the limit by the point estimate, but the data do not show it.
                finding.severity = Severity::Info;
                finding.message.push_str(", not significant");
            }
            (CheckOutcome::Pass, Some(noise)) => {
                finding.severity = Severity::Info;
                finding.threshold = Some(check.limit);
                finding.message.push_str(&format!(
                    ", within the noise between the two stables ({noise:+} {})",
                    check.unit
                ));
            }
            (CheckOutcome::Pass, None) => continue,
        }
        finding.check = Some(check.clone());
        out.push(finding);
    }
    out.extend(rules::new_status(route, baseline, candidate, skip_status));
    out
}

/// The live judge's failure as a finding, on the route that decided it.
pub(super) fn sequential_finding(
    s: &SequentialReport,
    o: &sequential::SequentialOptions,
) -> Option<Finding> {
    let sequential::Decision::Fail { e_value, .. } = s.decision else {
        return None;
    };
    Some(Finding {
        route: s.route.clone().unwrap_or_else(|| OVERALL_ROUTE.to_owned()),
        metric: Metric::Sequential,
        severity: Severity::Fail,
        status: None,
        baseline: 1.0,
        candidate: e_value,
        threshold: Some(1.0 / o.alpha),
        unit: "e-value".to_owned(),
        message: format!("live pairs: {}", sequential_failure(s, o)),
        check: None,
    })
}

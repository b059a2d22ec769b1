//! What a person reads instead of the comparison's identifiers: readable check and test names,
//! and every number of a check written with its unit. `compare` names checks with stable ids
//! (`p99_latency`, `wilcoxon_signed_rank`) because JSON readers and CI histories key on them;
//! every renderer but JSON goes through here, so a check reads the same in each format.

use std::fmt::Write;

use crate::compare::rules::significant;
use crate::compare::{Check, CheckOutcome, Metric, TargetSummary, Verdict};

/// The readable name of a check (the metric of a check or a finding). Exhaustive on purpose:
/// a new metric in `compare` does not compile until it has a name here.
pub fn check_name(metric: Metric) -> &'static str {
    match metric {
        Metric::FailureRate => "error rate",
        Metric::P99Latency => "p99 latency",
        Metric::NewStatus => "new status codes",
        Metric::LatencyShift => "median latency shift",
        Metric::LatencyDistribution => "share of slower requests",
        Metric::Sequential => "live sequential judge",
        Metric::Resource => "resource metric",
    }
}

/// What a check compares, in a sentence: the tooltip of its readable name.
pub fn check_description(metric: Metric) -> &'static str {
    match metric {
        Metric::FailureRate => "share of requests answered with 5xx or not answered at all",
        Metric::P99Latency => "99th percentile latency of answered requests",
        Metric::NewStatus => "status codes the candidate returned and the baseline never did",
        Metric::LatencyShift => {
            "paired shift of latency: the typical difference of the same request on both"
        }
        Metric::LatencyDistribution => {
            "share of requests slower than the baseline by more than the p99 allowance"
        }
        Metric::Sequential => "the anytime-valid judge over the live pairs, in their order",
        Metric::Resource => "a Prometheus metric of each target, step by step over the run",
    }
}

/// The readable name of the statistical test behind a check (`Check::test`); an id this does
/// not know is shown as it is rather than hidden.
pub fn test_name(id: &str) -> &str {
    match id {
        "mcnemar_exact" => "McNemar's exact test (paired)",
        "fisher_exact" => "Fisher's exact test",
        "bootstrap" => "paired bootstrap",
        "wilcoxon_signed_rank" => "Wilcoxon signed-rank test",
        "smirnov_one_sided" => "one-sided Kolmogorov–Smirnov test",
        "none" => "limit only (too few pairs for a test)",
        other => other,
    }
}

/// A check's outcome in words.
pub fn outcome_name(outcome: CheckOutcome) -> &'static str {
    match outcome {
        CheckOutcome::Pass => "pass",
        CheckOutcome::NotSignificant => "over the limit, not significant",
        CheckOutcome::Fail => "FAIL",
    }
}

/// How a check's numbers read; `compare` gives them in `Check::unit` and the metric says what
/// they measure (a rate's change is in percentage points, a share of slower requests in %).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    /// Milliseconds: latencies and their changes.
    Ms,
    /// A rate in %, its change in percentage points.
    Rate,
    /// A share of requests in %.
    Share,
    /// How many times something happened.
    Count,
    /// A factor, such as an e-value against its 1/alpha bar.
    Ratio,
    /// A Prometheus metric in its own unit (`Check::unit`), any magnitude.
    Metric,
}

fn scale(check: &Check) -> Scale {
    match check.metric {
        Metric::FailureRate => Scale::Rate,
        Metric::P99Latency | Metric::LatencyShift => Scale::Ms,
        Metric::LatencyDistribution => Scale::Share,
        Metric::NewStatus => Scale::Count,
        Metric::Sequential => Scale::Ratio,
        Metric::Resource => Scale::Metric,
    }
}

/// A metric's number with its unit, when it has one.
fn metric_unit(check: &Check, text: String) -> String {
    if check.unit.is_empty() {
        text
    } else {
        format!("{text} {}", check.unit)
    }
}

/// `value` with at most `decimals` decimals, trailing zeros dropped ("5", "2.3", "0.125").
pub fn trim(value: f64, decimals: usize) -> String {
    let s = format!("{value:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

fn signed(value: f64, decimals: usize) -> String {
    let s = trim(value, decimals);
    if s.starts_with('-') || s == "0" {
        s
    } else {
        format!("+{s}")
    }
}

/// The number with its unit; `change` writes a signed difference (a rate's in points).
fn with_unit(scale: Scale, value: f64, change: bool) -> String {
    let number = |decimals| {
        if change {
            signed(value, decimals)
        } else {
            trim(value, decimals)
        }
    };
    match scale {
        Scale::Ms => format!("{} ms", number(3)),
        Scale::Rate if change => {
            let n = number(2);
            let plural = if matches!(n.as_str(), "+1" | "-1") {
                ""
            } else {
                "s"
            };
            format!("{n} % point{plural}")
        }
        Scale::Rate => format!("{} %", number(2)),
        // A share of requests is never below zero: no sign.
        Scale::Share if change => format!("{} % of requests", trim(value, 2)),
        // Where the gap is largest: each side's share of requests at or below it.
        Scale::Share => format!("{} % below", number(2)),
        Scale::Count => {
            let n = number(0);
            format!("{n} time{}", if n == "1" { "" } else { "s" })
        }
        Scale::Ratio => format!("{}×", number(2)),
        Scale::Metric => significant(value, change),
    }
}

/// One side of a check (its baseline or candidate value), with its unit: "38.1 ms", "2.3 %".
pub fn value(check: &Check, v: f64) -> String {
    let s = scale(check);
    let text = with_unit(s, v, false);
    if s == Scale::Metric {
        metric_unit(check, text)
    } else {
        text
    }
}

/// The change a check measured, signed and with its unit: "+30 ms", "+2.3 % points",
/// "99.8 % of requests".
pub fn effect(check: &Check) -> String {
    change(check, check.effect)
}

/// A signed change with the check's unit.
fn change(check: &Check, v: f64) -> String {
    let s = scale(check);
    let text = with_unit(s, v, true);
    if s == Scale::Metric {
        metric_unit(check, text)
    } else {
        text
    }
}

/// The effect's interval with its unit, or "–" when the check has none.
pub fn interval(check: &Check) -> String {
    let Some([lo, hi]) = check.interval else {
        return "–".to_owned();
    };
    let s = scale(check);
    let bare = |v: f64| match s {
        Scale::Ms => signed(v, 3),
        Scale::Metric => significant(v, true),
        _ => signed(v, 2),
    };
    // The unit goes once, after the pair.
    let unit = match s {
        Scale::Ms => " ms",
        Scale::Rate => " % points",
        Scale::Share => " % of requests",
        Scale::Count => " times",
        Scale::Ratio => "×",
        Scale::Metric if check.unit.is_empty() => "",
        Scale::Metric => return format!("{} to {} {}", bare(lo), bare(hi), check.unit),
    };
    format!("{} to {}{unit}", bare(lo), bare(hi))
}

/// The change a check allows, with its unit ("+5 ms", "+1 % point", "5 % of requests"), and
/// where the noise raised it, the limit before.
pub fn limit(check: &Check) -> String {
    let write = |v: f64| change(check, v);
    let mut out = write(check.limit);
    if let Some(before) = check.limit_without_noise {
        let _ = write!(out, " (raised from {} by the noise)", write(before));
    }
    out
}

/// "change +3.1 ms (interval +2.9 to +3.4 ms), limit +2 ms, p 0.001 (adjusted 0.004),
/// Wilcoxon signed-rank test": one check in a line, for JUnit's output and failure text.
pub fn summary(check: &Check) -> String {
    let mut s = format!("{}: change {}", check_name(check.metric), effect(check));
    if check.interval.is_some() {
        let _ = write!(s, " (interval {})", interval(check));
    }
    let _ = write!(s, ", limit {}", limit(check));
    if let Some(noise) = check.noise {
        let _ = write!(s, " (noise {})", change(check, noise));
    }
    if let Some(p) = check.p_value {
        let _ = write!(s, ", p {}", crate::compare::checks::fmt_p(p));
    }
    if let Some(p) = check.p_adjusted {
        let _ = write!(s, " (adjusted {})", crate::compare::checks::fmt_p(p));
    }
    let _ = write!(s, ", {}", test_name(&check.test));
    s
}

/// A target's gRPC answers by status name, `UNAVAILABLE 31, OK 269`: the other statuses by
/// count, most first, then `OK`, so the failing ones are read first. `None` when the target
/// gave no gRPC answer.
pub fn grpc_counts(s: &TargetSummary) -> Option<String> {
    if s.grpc_status.is_empty() {
        return None;
    }
    let mut counts: Vec<(&str, u64)> = s
        .grpc_status
        .iter()
        .map(|(name, n)| (name.as_str(), *n))
        .collect();
    counts.sort_by_key(|&(name, n)| (name == "OK", std::cmp::Reverse(n)));
    let parts: Vec<String> = counts
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    Some(parts.join(", "))
}

/// Whether any target of `v` gave a gRPC answer: only then do the reports show gRPC statuses,
/// so an HTTP-only report reads as it always did.
pub fn any_grpc(v: &Verdict) -> bool {
    v.sections()
        .any(|s| !s.baseline.grpc_status.is_empty() || !s.candidate.grpc_status.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::{error_regression, p99_regression};

    const IDS: [&str; 12] = [
        "failure_rate",
        "p99_latency",
        "new_status",
        "latency_shift",
        "latency_distribution",
        "sequential",
        "mcnemar_exact",
        "fisher_exact",
        "wilcoxon_signed_rank",
        "smirnov_one_sided",
        "NotSignificant",
        "_",
    ];

    #[test]
    fn every_check_of_a_run_reads_without_ids_and_with_units() {
        for comparison in [p99_regression(), error_regression()] {
            let v = comparison.verdict();
            let checks = v.routes.iter().flat_map(|r| &r.checks);
            for c in checks.chain(&v.overall.checks) {
                let line = summary(c);
                for id in IDS {
                    assert!(!line.contains(id), "{id} in {line}");
                }
                let l = limit(c);
                assert!(
                    [" ms", " % point", " % of requests"]
                        .iter()
                        .any(|u| l.contains(u)),
                    "{l}"
                );
                assert!(
                    value(c, c.baseline).contains(' '),
                    "{}",
                    value(c, c.baseline)
                );
            }
        }
    }

    #[test]
    fn units_follow_what_the_check_measures() {
        let v = p99_regression().verdict();
        let p99 = v.routes[0]
            .checks
            .iter()
            .find(|c| c.metric == Metric::P99Latency)
            .unwrap();
        assert!(effect(p99).starts_with('+') && effect(p99).ends_with(" ms"));
        assert_eq!(limit(p99), format!("+{} ms", trim(p99.limit, 3)));
        let rate = v.routes[0]
            .checks
            .iter()
            .find(|c| c.metric == Metric::FailureRate)
            .unwrap();
        assert_eq!(limit(rate), "+1 % point");
        assert_eq!(value(rate, 0.0), "0 %");
        assert_eq!(with_unit(Scale::Count, 3.0, false), "3 times");
        assert_eq!(with_unit(Scale::Ratio, 20.0, false), "20×");
        assert_eq!(with_unit(Scale::Share, 5.0, true), "5 % of requests");
        let mut r = rate.clone();
        r.interval = Some([0.5, 1.0]);
        assert_eq!(interval(&r), "+0.5 to +1 % points");
        assert_eq!(trim(-0.0001, 2), "0");
        assert_eq!(signed(2.5, 2), "+2.5");
    }

    #[test]
    fn unknown_test_ids_show_as_they_are() {
        assert_eq!(
            test_name("wilcoxon_signed_rank"),
            "Wilcoxon signed-rank test"
        );
        assert_eq!(test_name("brand_new"), "brand_new");
    }
}

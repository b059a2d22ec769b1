//! Notes: what a verdict says besides its findings — routes and targets with too few
//! requests, what was left out (warm-up, other targets, unpaired halves), the noise target, and
//! the live sequential judge's state.

use super::comparison::Pair;
use super::paired::PairedSummary;
use super::rules;
use super::{sequential, Comparison, SequentialReport, OVERALL_ROUTE};

/// "GET /x: too few requests to judge (…)".
pub(super) fn too_few(what: &str, pair: &Pair, min: u64) -> String {
    format!(
        "{what}: too few requests to judge (baseline {}, candidate {}, need {min} each)",
        pair.baseline.requests(),
        pair.candidate.requests(),
    )
}

impl Comparison {
    /// The run's notes after the per-route ones, in report order: unpaired halves, the noise
    /// target, the sequential judge, the warm-up left out, ignored targets.
    pub(super) fn run_notes(
        &self,
        overall_paired: &PairedSummary,
        sequential: Option<&SequentialReport>,
    ) -> Vec<String> {
        let opts = &self.options;
        let mut notes = Vec::new();
        let (ub, uc) = (
            overall_paired.unpaired_baseline,
            overall_paired.unpaired_candidate,
        );
        if ub + uc > 0 {
            notes.push(format!(
                "{ub} baseline and {uc} candidate observations found no partner with the same id \
                 ({} pairs); the failure rate falls back to Fisher's unpaired test on routes \
                 with too few pairs",
                overall_paired.pairs
            ));
        }
        if let Some(noise) = &opts.noise {
            notes.push(format!(
                "noise target {noise}: {} observations, {} paired with the baseline; limits are \
                 raised to {}% beyond the differences between the two stables",
                self.overall.noise.requests(),
                self.overall.noise_paired.pairs(),
                rules::trim(opts.noise_relative * 100.0),
            ));
        }
        if let (Some(s), Some(judge)) = (sequential, &self.sequential) {
            notes.extend(sequential_notes(s, judge.options()));
        }
        if self.warm_skipped > 0 {
            notes.push(format!(
                "left out {} warm-up observations (the first {} of each target and their partners)",
                self.warm_skipped, opts.warmup
            ));
        }
        if self.ignored > 0 {
            let names: Vec<&str> = self.ignored_targets.iter().map(String::as_str).collect();
            notes.push(format!(
                "ignored {} observation{} of other targets ({}{})",
                self.ignored,
                if self.ignored == 1 { "" } else { "s" },
                names.join(", "),
                if self.more_ignored_targets {
                    ", …"
                } else {
                    ""
                },
            ));
        }
        notes
    }
}

pub(super) fn sequential_report(s: &sequential::Sequential) -> SequentialReport {
    let decision = s.decision();
    SequentialReport {
        decision,
        pairs: s.pairs(),
        e_value: s.e_value(),
        route: match decision {
            sequential::Decision::Fail { route, .. } => Some(s.route_name(route).to_owned()),
            _ => None,
        },
        routes: s.routes(),
    }
}

/// "GET /x: more latency above the baseline's p90 than the baseline in the pairs where they
/// differed (e-value 27 ≥ 1/alpha = 20 after 215 pairs, 80 on this route)".
pub(super) fn sequential_failure(
    s: &SequentialReport,
    o: &sequential::SequentialOptions,
) -> String {
    let sequential::Decision::Fail {
        stream,
        route_pairs,
        pairs,
        e_value,
        ..
    } = s.decision
    else {
        return String::new();
    };
    let what = match stream {
        sequential::Stream::Errors => "failures".to_owned(),
        sequential::Stream::Latency(i) => format!(
            "latency above the baseline's p{}",
            rules::trim(sequential::LEVELS.get(i).copied().unwrap_or(0.0) * 100.0)
        ),
    };
    format!(
        "{}: the candidate had more {what} than the baseline in the pairs where they differed \
         (e-value {e_value:.0} ≥ 1/alpha = {:.0} after {pairs} pairs, {route_pairs} on this route)",
        s.route.as_deref().unwrap_or(OVERALL_ROUTE),
        1.0 / o.alpha
    )
}

/// The sequential judge's notes: its decision, and the routes it did not judge.
pub(super) fn sequential_notes(
    s: &SequentialReport,
    o: &sequential::SequentialOptions,
) -> Vec<String> {
    let mut notes = vec![match s.decision {
        sequential::Decision::Fail { .. } => {
            format!("sequential judge: fail — {}", sequential_failure(s, o))
        }
        sequential::Decision::Pass { pairs, .. } => {
            // The allowance at level q is at most the share of pairs above it, 1 − q.
            let levels: Vec<String> = sequential::LEVELS
                .iter()
                .map(|q| {
                    format!(
                        "p{} +{}",
                        rules::trim(q * 100.0),
                        rules::trim(o.latency_margin.min(1.0 - q) * 100.0)
                    )
                })
                .collect();
            format!(
                "sequential judge: pass after {pairs} pairs: every route's confidence interval \
                 is inside its allowance (failure rate +{} points; share above the latency \
                 levels {} points; {}% confidence for the run)",
                rules::trim(o.error_margin * 100.0),
                levels.join(", "),
                rules::trim((1.0 - o.alpha) * 100.0),
            )
        }
        sequential::Decision::Inconclusive { pairs, .. } => {
            format!("sequential judge: inconclusive at the limit of {pairs} pairs")
        }
        sequential::Decision::Continue => format!(
            "sequential judge: undecided after {} pairs (e-value {:.2}, fails at {:.0}; {} of {} \
             routes bounded)",
            s.pairs,
            s.e_value,
            1.0 / o.alpha,
            s.routes.iter().filter(|r| r.bounded).count(),
            s.routes.len(),
        ),
    }];
    let unjudged: Vec<String> = s
        .routes
        .iter()
        .filter(|r| !r.required && !r.bounded)
        .map(|r| format!("{} ({} pairs)", r.route, r.pairs))
        .collect();
    if !unjudged.is_empty() && !matches!(s.decision, sequential::Decision::Fail { .. }) {
        notes.push(format!(
            "sequential judge: not judged for a pass, below {}% of the pairs: {}",
            rules::trim(o.min_route_share * 100.0),
            unjudged.join(", ")
        ));
    }
    notes
}

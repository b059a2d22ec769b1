//! What a comparison decided: the [`Verdict`] every report renders and the `nprt.report/v2`
//! JSON serialises, with its per-route [`RouteReport`]s, the [`Overall`] numbers, the
//! [`Thresholds`] used and the live judge's [`SequentialReport`]. Data only; how a verdict is
//! reached is in `decide`.

use serde::{Deserialize, Serialize};

use crate::Exit;

use super::checks::{Check, CheckOutcome};
use super::paired::PairedSummary;
use super::rules::Finding;
use super::rules::{significant, Metric, Severity};
use super::stats::Correction;
use super::target::TargetSummary;
use super::{sequential, RouteOverride, OVERALL_ROUTE};
use crate::resource::ResourceResult;

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Inconclusive,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
        }
    }
}

/// The thresholds a verdict was reached with, so a report explains itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub min_requests: u64,
    pub p99_relative: f64,
    pub p99_absolute_ms: f64,
    pub error_rate_margin: f64,
    pub shift_relative: f64,
    pub shift_absolute_ms: f64,
    pub distribution_share: f64,
    pub alpha: f64,
    pub correction: Correction,
    pub warmup: u64,
    /// Route overrides, as given; each check carries the limit it was judged by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteOverride>,
}

/// Both targets over all routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overall {
    pub baseline: TargetSummary,
    pub candidate: TargetSummary,
    pub paired: PairedSummary,
    /// Every check made overall, passed or not.
    pub checks: Vec<Check>,
}

/// One route's numbers and findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteReport {
    pub route: String,
    /// False when either target had fewer than `min_requests` here (see the notes).
    pub judged: bool,
    pub baseline: TargetSummary,
    pub candidate: TargetSummary,
    /// Pairs by id, the paired status matrix, unpaired counts.
    pub paired: PairedSummary,
    /// Every check made on this route, passed or not (empty when not judged).
    pub checks: Vec<Check>,
    pub findings: Vec<Finding>,
}

/// Everything a report shows; serialises directly as the `nprt.report/v2` JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Always [`SCHEMA`](super::SCHEMA).
    pub schema: String,
    #[serde(rename = "verdict")]
    pub outcome: Outcome,
    pub baseline: String,
    pub candidate: String,
    pub thresholds: Thresholds,
    pub overall: Overall,
    pub routes: Vec<RouteReport>,
    /// Every finding: the routes' ones, then those under [`OVERALL_ROUTE`].
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
    /// Observations of targets that were neither baseline nor candidate.
    pub ignored: u64,
    /// Whether the summaries carry encoded histograms.
    pub include_histograms: bool,
    /// The sequential judge's state, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SequentialReport>,
    /// The resource metrics from Prometheus (the judge file's `[prometheus]`), when queried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceResult>,
}

/// One route's numbers in report order, or the overall ones under [`OVERALL_ROUTE`]: what
/// every renderer walks.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    pub route: &'a str,
    /// Whether checks were made here (for the overall section: whether it has any).
    pub judged: bool,
    pub baseline: &'a TargetSummary,
    pub candidate: &'a TargetSummary,
    pub paired: &'a PairedSummary,
    pub checks: &'a [Check],
}

impl Verdict {
    /// The routes in report order, then the overall section.
    pub fn sections(&self) -> impl Iterator<Item = Section<'_>> {
        self.routes
            .iter()
            .map(|r| Section {
                route: &r.route,
                judged: r.judged,
                baseline: &r.baseline,
                candidate: &r.candidate,
                paired: &r.paired,
                checks: &r.checks,
            })
            .chain([Section {
                route: OVERALL_ROUTE,
                judged: !self.overall.checks.is_empty(),
                baseline: &self.overall.baseline,
                candidate: &self.overall.candidate,
                paired: &self.overall.paired,
                checks: &self.overall.checks,
            }])
    }
}

/// What the sequential judge decided over the pairs, in the order they formed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialReport {
    pub decision: sequential::Decision,
    /// Pairs fed until the decision (or so far).
    pub pairs: u64,
    /// The run's combined e-value (all routes and streams).
    pub e_value: f64,
    /// The route that decided a `fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Each route's streams, in order of first appearance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<sequential::RouteSummary>,
}

impl Verdict {
    /// The process exit code for this verdict.
    pub fn exit(&self) -> Exit {
        match self.outcome {
            Outcome::Pass => Exit::Pass,
            Outcome::Fail => Exit::Regression,
            Outcome::Inconclusive => Exit::Inconclusive,
        }
    }
}

impl Verdict {
    /// Adds the resource metrics' results: a failing one is a failing finding (and the run
    /// fails), one over its allowance but not significant is information, and one that could
    /// not be judged makes a passing run INCONCLUSIVE, with why in the notes — a missing
    /// series is never a silent pass.
    pub fn add_resources(&mut self, results: Vec<ResourceResult>) {
        for r in &results {
            if let Some(reason) = &r.reason {
                self.notes.push(format!(
                    "resource metric \"{}\" not judged: {reason}",
                    r.name
                ));
            }
            let Some(check) = &r.check else {
                continue;
            };
            let severity = match check.outcome {
                CheckOutcome::Fail => Severity::Fail,
                CheckOutcome::NotSignificant => Severity::Info,
                CheckOutcome::Pass => continue,
            };
            // Like the shift, pointed the harmful way (a harmful drop reads +).
            let relative = r
                .relative
                .map(|x| format!(" ({:+.1}%)", x.abs() * check.effect.signum() * 100.0))
                .unwrap_or_default();
            let mut message = format!(
                "{}: {} → {} {} over {} steps, shift {}{relative}, allowed {}{}",
                r.name,
                significant(check.baseline, false),
                significant(check.candidate, false),
                check.unit,
                r.steps,
                significant(check.effect, true),
                significant(check.limit, true),
                check.p_text(),
            );
            if severity == Severity::Info {
                message.push_str(", not significant");
            }
            self.findings.push(Finding {
                route: OVERALL_ROUTE.to_owned(),
                metric: Metric::Resource,
                severity,
                status: None,
                baseline: check.baseline,
                candidate: check.candidate,
                threshold: Some(check.limit),
                unit: check.unit.clone(),
                message,
                check: Some(check.clone()),
            });
        }
        if results.iter().any(|r| r.outcome == Outcome::Fail) {
            self.outcome = Outcome::Fail;
        } else if self.outcome == Outcome::Pass
            && results.iter().any(|r| r.outcome == Outcome::Inconclusive)
        {
            self.outcome = Outcome::Inconclusive;
        }
        self.resources = results;
    }
}

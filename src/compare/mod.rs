//! The judge: folds [`Observation`]s of a baseline and a candidate target into per-route and
//! overall statistics, and decides whether the candidate regressed.
//!
//! Observations come from `replay` (or an observations file via [`crate::observation`]), one
//! at a time, in any order; a [`Comparison`] keeps only counts and HdrHistograms, so memory
//! depends on [`Options::max_routes`], not on how many observations there are. Comparisons
//! built on many machines [`merge`](Comparison::merge) exactly. [`Comparison::verdict`] applies
//! the rules in [`judge`] and yields a [`Verdict`], which `report` renders.

pub mod codec;
pub mod judge;
pub mod target;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::observation::Observation;
use crate::Exit;

pub use judge::{Finding, Metric, Severity};
pub use target::{TargetStats, TargetSummary};

/// Version tag of the report data; bump when a field changes meaning or disappears.
pub const SCHEMA: &str = "nprt.report/v1";

/// The route that collects everything beyond [`Options::max_routes`].
pub const OTHER_ROUTE: &str = "(other)";

/// The pseudo-route overall findings are reported under.
pub const OVERALL_ROUTE: &str = "(overall)";

/// At most this many distinct names of ignored targets are remembered, for the notes.
const MAX_IGNORED_NAMES: usize = 8;

/// What to compare and how strict to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Target name of the stable version.
    pub baseline: String,
    /// Target name of the version under test.
    pub candidate: String,
    /// Requests each target needs on a route (or overall) before it is judged.
    pub min_requests: u64,
    /// Allowed relative p99 increase (0.20 = +20%)...
    pub p99_relative: f64,
    /// ...and allowed absolute p99 increase, in ms; a p99 fails only above both.
    pub p99_absolute_ms: f64,
    /// Allowed increase of the 5xx-or-no-response rate, as a fraction (0.01 = one point).
    pub error_rate_margin: f64,
    /// Distinct routes kept; later routes are folded into [`OTHER_ROUTE`].
    pub max_routes: usize,
    /// Put each target's encoded histogram into the summaries (large, but mergeable).
    pub include_histograms: bool,
}

impl Options {
    /// The default thresholds for comparing `candidate` against `baseline`.
    pub fn new(baseline: impl Into<String>, candidate: impl Into<String>) -> Options {
        Options {
            baseline: baseline.into(),
            candidate: candidate.into(),
            min_requests: 20,
            p99_relative: 0.20,
            p99_absolute_ms: 5.0,
            error_rate_margin: 0.01,
            max_routes: 1000,
            include_histograms: false,
        }
    }

    /// Checks what the types cannot.
    ///
    /// # Errors
    /// [`OptionsError`] naming the offending option.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.baseline.is_empty() || self.candidate.is_empty() {
            return Err(OptionsError::EmptyTarget);
        }
        if self.baseline == self.candidate {
            return Err(OptionsError::SameTarget(self.baseline.clone()));
        }
        for (name, value) in [
            ("p99 relative", self.p99_relative),
            ("p99 absolute ms", self.p99_absolute_ms),
            ("error rate margin", self.error_rate_margin),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(OptionsError::Threshold { name, value });
            }
        }
        if self.max_routes == 0 {
            return Err(OptionsError::NoRoutes);
        }
        Ok(())
    }
}

/// Options that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionsError {
    #[error("baseline and candidate target names must not be empty")]
    EmptyTarget,
    #[error("baseline and candidate are both {0:?}; compare two different targets")]
    SameTarget(String),
    #[error("{name} threshold must be a finite number ≥ 0, got {value}")]
    Threshold { name: &'static str, value: f64 },
    #[error("max routes must be at least 1")]
    NoRoutes,
}

/// Why two comparisons cannot be merged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot merge a comparison of {other_baseline:?} vs {other_candidate:?} into one of {baseline:?} vs {candidate:?}")]
pub struct MergeError {
    pub baseline: String,
    pub candidate: String,
    pub other_baseline: String,
    pub other_candidate: String,
}

/// Baseline and candidate statistics side by side.
#[derive(Debug, Clone, Default)]
struct Pair {
    baseline: TargetStats,
    candidate: TargetStats,
}

impl Pair {
    fn merge(&mut self, other: &Pair) {
        self.baseline.merge(&other.baseline);
        self.candidate.merge(&other.candidate);
    }

    fn enough(&self, min: u64) -> bool {
        self.baseline.requests() >= min && self.candidate.requests() >= min
    }
}

/// The accumulator: feed observations with [`add`](Comparison::add), then ask for a
/// [`verdict`](Comparison::verdict) (as often as wanted; it does not consume anything).
#[derive(Debug, Clone)]
pub struct Comparison {
    options: Options,
    overall: Pair,
    routes: BTreeMap<String, Pair>,
    ignored: u64,
    ignored_targets: BTreeSet<String>,
    more_ignored_targets: bool,
}

impl Comparison {
    /// # Errors
    /// [`OptionsError`] when the options do not [validate](Options::validate).
    pub fn new(options: Options) -> Result<Comparison, OptionsError> {
        options.validate()?;
        Ok(Comparison {
            options,
            overall: Pair::default(),
            routes: BTreeMap::new(),
            ignored: 0,
            ignored_targets: BTreeSet::new(),
            more_ignored_targets: false,
        })
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Observations seen so far of the baseline and of the candidate.
    pub fn requests(&self) -> (u64, u64) {
        (
            self.overall.baseline.requests(),
            self.overall.candidate.requests(),
        )
    }

    /// Names of the other targets whose observations were ignored (at most a few dozen).
    pub fn ignored_targets(&self) -> impl Iterator<Item = &str> {
        self.ignored_targets.iter().map(String::as_str)
    }

    /// Folds one observation in. Observations of other targets are only counted.
    pub fn add(&mut self, observation: &Observation) {
        let candidate = if observation.target == self.options.baseline {
            false
        } else if observation.target == self.options.candidate {
            true
        } else {
            self.ignore(1, &observation.target);
            return;
        };
        let pick = |pair: &mut Pair| {
            if candidate {
                pair.candidate.add(observation);
            } else {
                pair.baseline.add(observation);
            }
        };
        pick(&mut self.overall);
        pick(self.route_entry(&observation.route));
    }

    /// Adds another comparison of the same two targets, e.g. from another machine. The result
    /// equals feeding all observations into one comparison, except that when routes exceed
    /// `max_routes` which of them land in [`OTHER_ROUTE`] depends on the order they arrived.
    ///
    /// # Errors
    /// [`MergeError`] when the other comparison is of different targets; nothing is changed.
    pub fn merge(&mut self, other: &Comparison) -> Result<(), MergeError> {
        if other.options.baseline != self.options.baseline
            || other.options.candidate != self.options.candidate
        {
            return Err(MergeError {
                baseline: self.options.baseline.clone(),
                candidate: self.options.candidate.clone(),
                other_baseline: other.options.baseline.clone(),
                other_candidate: other.options.candidate.clone(),
            });
        }
        self.overall.merge(&other.overall);
        for (route, pair) in &other.routes {
            self.route_entry(route).merge(pair);
        }
        self.ignored += other.ignored;
        for name in &other.ignored_targets {
            self.ignore(0, name);
        }
        self.more_ignored_targets |= other.more_ignored_targets;
        Ok(())
    }

    fn ignore(&mut self, count: u64, target: &str) {
        self.ignored += count;
        if self.ignored_targets.contains(target) {
            return;
        }
        if self.ignored_targets.len() < MAX_IGNORED_NAMES {
            self.ignored_targets.insert(target.to_owned());
        } else {
            self.more_ignored_targets = true;
        }
    }

    fn route_entry(&mut self, route: &str) -> &mut Pair {
        // Look up first so that a known route costs no String allocation.
        let key = if self.routes.contains_key(route) {
            route
        } else {
            // The cap counts real routes; (other) comes on top of them.
            let real = self.routes.len() - usize::from(self.routes.contains_key(OTHER_ROUTE));
            if real < self.options.max_routes {
                route
            } else {
                OTHER_ROUTE
            }
        };
        self.routes.entry(key.to_owned()).or_default()
    }

    /// Judges what has been fed so far.
    pub fn verdict(&self) -> Verdict {
        let opts = &self.options;
        let histograms = opts.include_histograms;
        let mut findings = Vec::new();
        let mut notes = Vec::new();
        let mut routes = Vec::with_capacity(self.routes.len());
        let mut reported_status = BTreeSet::new();

        // (other) goes last, after the real routes in name order.
        let ordered = self
            .routes
            .iter()
            .filter(|(r, _)| r.as_str() != OTHER_ROUTE)
            .chain(self.routes.get_key_value(OTHER_ROUTE));
        for (route, pair) in ordered {
            let judged = pair.enough(opts.min_requests);
            let route_findings = if judged {
                judge::judge(route, &pair.baseline, &pair.candidate, opts, &[])
            } else {
                notes.push(too_few(route, pair, opts.min_requests));
                Vec::new()
            };
            reported_status.extend(route_findings.iter().filter_map(|f| f.status));
            findings.extend(route_findings.iter().cloned());
            routes.push(RouteReport {
                route: route.clone(),
                judged,
                baseline: pair.baseline.summary(histograms),
                candidate: pair.candidate.summary(histograms),
                findings: route_findings,
            });
        }
        if self.routes.contains_key(OTHER_ROUTE) {
            notes.push(format!(
                "routes beyond the first {} are counted together as {OTHER_ROUTE}",
                opts.max_routes
            ));
        }

        let overall_judged = self.overall.enough(opts.min_requests);
        if overall_judged {
            let skip: Vec<u16> = reported_status.into_iter().collect();
            findings.extend(judge::judge(
                OVERALL_ROUTE,
                &self.overall.baseline,
                &self.overall.candidate,
                opts,
                &skip,
            ));
        } else {
            notes.push(too_few("overall", &self.overall, opts.min_requests));
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

        let outcome = if findings.iter().any(|f| f.severity == Severity::Fail) {
            Outcome::Fail
        } else if !overall_judged {
            Outcome::Inconclusive
        } else {
            Outcome::Pass
        };
        Verdict {
            schema: SCHEMA.to_owned(),
            outcome,
            baseline: opts.baseline.clone(),
            candidate: opts.candidate.clone(),
            thresholds: Thresholds {
                min_requests: opts.min_requests,
                p99_relative: opts.p99_relative,
                p99_absolute_ms: opts.p99_absolute_ms,
                error_rate_margin: opts.error_rate_margin,
            },
            overall: Overall {
                baseline: self.overall.baseline.summary(histograms),
                candidate: self.overall.candidate.summary(histograms),
            },
            routes,
            findings,
            notes,
            ignored: self.ignored,
            include_histograms: histograms,
        }
    }
}

fn too_few(what: &str, pair: &Pair, min: u64) -> String {
    format!(
        "{what}: too few requests to judge (baseline {}, candidate {}, need {min} each)",
        pair.baseline.requests(),
        pair.candidate.requests(),
    )
}

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
}

/// Both targets over all routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overall {
    pub baseline: TargetSummary,
    pub candidate: TargetSummary,
}

/// One route's numbers and findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteReport {
    pub route: String,
    /// False when either target had fewer than `min_requests` here (see the notes).
    pub judged: bool,
    pub baseline: TargetSummary,
    pub candidate: TargetSummary,
    pub findings: Vec<Finding>,
}

/// Everything a report shows; serialises directly as the `nprt.report/v1` JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Always [`SCHEMA`].
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

#[cfg(test)]
pub(crate) mod tests;

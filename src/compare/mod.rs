//! The judge: folds [`Observation`]s of a baseline and a candidate target into per-route and
//! overall statistics, and decides whether the candidate regressed.
//!
//! Observations come from `replay` (or an observations file via [`crate::observation`]), one
//! at a time, in any order; a [`Comparison`] keeps only counts and HdrHistograms, so memory
//! depends on [`Options::max_routes`], not on how many observations there are. Comparisons
//! built on many machines [`merge`](Comparison::merge) exactly. [`Comparison::verdict`] applies
//! the rules in [`judge`] and yields a [`Verdict`], which `report` renders.

pub mod calibrate;
pub mod checks;
pub mod codec;
pub mod judge;
pub mod judge_file;
pub mod paired;
pub mod sequential;
pub mod stats;
pub mod summary;
pub mod target;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::observation::Observation;
use crate::Exit;

pub use checks::{Check, CheckOutcome};
pub use judge::{Finding, Metric, Severity};
pub use paired::{MatrixCell, PairedSummary};
pub use stats::Correction;
pub use target::{TargetStats, TargetSummary};

use paired::{Half, Offer, PairedStats, Pairer, Side, Unpaired};

/// Version tag of the report data; bump when a field changes meaning or disappears.
/// v2: paired summaries, per-metric checks with effects, intervals and p-values.
pub const SCHEMA: &str = "nprt.report/v2";

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
    /// Significance level of every check, after adjustment across routes × metrics.
    pub alpha: f64,
    /// How p-values are adjusted across routes × metrics.
    pub correction: Correction,
    /// Allowed paired median shift, relative to the baseline median (0.10 = +10%)...
    pub shift_relative: f64,
    /// ...and absolute, in ms; the shift fails only above both.
    pub shift_absolute_ms: f64,
    /// Allowed share of requests slower than the p99 allowance (0.05 = 5%).
    pub distribution_share: f64,
    /// Observations waiting for their partner (same id, other target) at most; beyond, the
    /// oldest is counted as unpaired.
    pub max_pending: usize,
    /// Paired latencies sampled per route (uniform reservoir) for the rank tests and bootstrap.
    pub reservoir: usize,
    /// Bootstrap resamples for the p99 interval.
    pub bootstrap_resamples: usize,
    /// The first this many observations of each target are left out (warm-up), and so are
    /// their partners.
    pub warmup: u64,
    /// Thresholds for routes matching a pattern; the first match wins.
    pub routes: Vec<RouteOverride>,
    /// A second stable target: differences that also show between baseline and noise are
    /// discounted (Diffy's rule).
    pub noise: Option<String>,
    /// With noise, a candidate effect must exceed the noise effect by this share too
    /// (0.20 = 20% more than baseline-vs-noise), besides the metric's own limit.
    pub noise_relative: f64,
    /// Also run the anytime-valid sequential judge over the pairs, in the order they form.
    /// It is not merged: after [`Comparison::merge`] it has seen the pairs formed here only.
    pub sequential: Option<sequential::SequentialOptions>,
}

/// Thresholds for the routes that match `pattern`; unset fields keep the general value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteOverride {
    /// `*` matches any run of characters. A pattern starting with `/` is matched against the
    /// route's path, otherwise against the whole route key ("GET /api/items/:id").
    pub pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate_margin: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_relative: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_absolute_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_relative: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_absolute_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution_share: Option<f64>,
}

impl RouteOverride {
    pub fn matches(&self, route: &str) -> bool {
        let subject = if self.pattern.starts_with('/') {
            route.split_once(' ').map_or(route, |(_, path)| path)
        } else {
            route
        };
        glob(&self.pattern, subject)
    }
}

/// `*` matches any run of characters, everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty(); // no `*` at all
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
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
            alpha: 0.05,
            correction: Correction::Holm,
            shift_relative: 0.10,
            shift_absolute_ms: 2.0,
            distribution_share: 0.05,
            max_pending: 100_000,
            reservoir: 10_000,
            bootstrap_resamples: 200,
            warmup: 0,
            routes: Vec::new(),
            noise: None,
            noise_relative: 0.20,
            sequential: None,
        }
    }

    /// The options for one route: the first matching override applied.
    pub fn for_route(&self, route: &str) -> Options {
        let mut o = Options {
            routes: Vec::new(),
            ..self.clone()
        };
        if let Some(r) = self.routes.iter().find(|r| r.matches(route)) {
            o.min_requests = r.min_requests.unwrap_or(o.min_requests);
            o.error_rate_margin = r.error_rate_margin.unwrap_or(o.error_rate_margin);
            o.p99_relative = r.p99_relative.unwrap_or(o.p99_relative);
            o.p99_absolute_ms = r.p99_absolute_ms.unwrap_or(o.p99_absolute_ms);
            o.shift_relative = r.shift_relative.unwrap_or(o.shift_relative);
            o.shift_absolute_ms = r.shift_absolute_ms.unwrap_or(o.shift_absolute_ms);
            o.distribution_share = r.distribution_share.unwrap_or(o.distribution_share);
        }
        o
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
        if let Some(noise) = &self.noise {
            if noise.is_empty() || *noise == self.baseline || *noise == self.candidate {
                return Err(OptionsError::Noise(noise.clone()));
            }
        }
        for (name, value) in [
            ("p99 relative", self.p99_relative),
            ("p99 absolute ms", self.p99_absolute_ms),
            ("error rate margin", self.error_rate_margin),
            ("shift relative", self.shift_relative),
            ("shift absolute ms", self.shift_absolute_ms),
            ("distribution share", self.distribution_share),
            ("noise relative", self.noise_relative),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(OptionsError::Threshold { name, value });
            }
        }
        if self.max_routes == 0 {
            return Err(OptionsError::NoRoutes);
        }
        // Memory and time grow with these: a judge file must not ask for the impossible.
        for (name, value, max) in [
            ("max_routes", self.max_routes, 100_000),
            ("reservoir", self.reservoir, 1_000_000),
            ("bootstrap_resamples", self.bootstrap_resamples, 100_000),
            ("max_pending", self.max_pending, 10_000_000),
        ] {
            if value > max {
                return Err(OptionsError::TooLarge { name, value, max });
            }
        }
        for r in &self.routes {
            for (name, value) in [
                ("route error rate margin", r.error_rate_margin),
                ("route p99 relative", r.p99_relative),
                ("route p99 absolute ms", r.p99_absolute_ms),
                ("route shift relative", r.shift_relative),
                ("route shift absolute ms", r.shift_absolute_ms),
                ("route distribution share", r.distribution_share),
            ] {
                if let Some(value) = value {
                    if !value.is_finite() || value < 0.0 {
                        return Err(OptionsError::Threshold { name, value });
                    }
                }
            }
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(OptionsError::Alpha(self.alpha));
        }
        if let Some(s) = &self.sequential {
            if !(s.alpha > 0.0 && s.alpha < 1.0) {
                return Err(OptionsError::Alpha(s.alpha));
            }
        }
        for (name, value) in [
            ("max pending", self.max_pending),
            ("reservoir", self.reservoir),
            ("bootstrap resamples", self.bootstrap_resamples),
        ] {
            if value == 0 {
                return Err(OptionsError::Zero(name));
            }
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
    #[error("alpha must be between 0 and 1 (exclusive), got {0}")]
    Alpha(f64),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("{name} is {value}, more than the most allowed ({max})")]
    TooLarge {
        name: &'static str,
        value: usize,
        max: usize,
    },
    #[error("the noise target {0:?} must be a third target, neither baseline nor candidate")]
    Noise(String),
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

/// Baseline and candidate statistics side by side, and what their pairs showed.
#[derive(Debug, Clone)]
struct Pair {
    baseline: TargetStats,
    candidate: TargetStats,
    paired: PairedStats,
    /// The second stable, and its pairs with the baseline (empty without `--noise`).
    noise: TargetStats,
    noise_paired: PairedStats,
}

impl Pair {
    fn new(reservoir: usize) -> Pair {
        Pair {
            baseline: TargetStats::default(),
            candidate: TargetStats::default(),
            paired: PairedStats::new(reservoir),
            noise: TargetStats::default(),
            noise_paired: PairedStats::new(reservoir),
        }
    }

    fn merge(&mut self, other: &Pair) {
        self.baseline.merge(&other.baseline);
        self.candidate.merge(&other.candidate);
        self.paired.merge(&other.paired);
        self.noise.merge(&other.noise);
        self.noise_paired.merge(&other.noise_paired);
    }

    fn noise_enough(&self, min: u64) -> bool {
        self.baseline.requests() >= min && self.noise.requests() >= min
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
    pairer: Pairer,
    /// Pairs baseline (as `Side::Baseline`) with noise (as `Side::Candidate`).
    noise_pairer: Pairer,
    /// Observations seen of each target while warming up (baseline, candidate).
    warm_seen: [u64; 2],
    /// Ids left out during warm-up, so that their partners are left out too; at most
    /// 2 × `warmup` entries.
    warm_ids: HashMap<String, Side>,
    warm_skipped: u64,
    sequential: Option<sequential::Sequential>,
}

impl Comparison {
    /// # Errors
    /// [`OptionsError`] when the options do not [validate](Options::validate).
    pub fn new(options: Options) -> Result<Comparison, OptionsError> {
        options.validate()?;
        Ok(Comparison {
            overall: Pair::new(options.reservoir),
            routes: BTreeMap::new(),
            ignored: 0,
            ignored_targets: BTreeSet::new(),
            more_ignored_targets: false,
            pairer: Pairer::new(options.max_pending),
            noise_pairer: Pairer::new(options.max_pending),
            warm_seen: [0; 2],
            warm_ids: HashMap::new(),
            warm_skipped: 0,
            sequential: options.sequential.clone().map(sequential::Sequential::new),
            options,
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

    /// The sequential judge's current decision, when it runs (cheap: no verdict is built).
    pub fn sequential_decision(&self) -> Option<sequential::Decision> {
        self.sequential
            .as_ref()
            .map(sequential::Sequential::decision)
    }

    /// Names of the other targets whose observations were ignored (at most a few dozen).
    pub fn ignored_targets(&self) -> impl Iterator<Item = &str> {
        self.ignored_targets.iter().map(String::as_str)
    }

    /// Folds one observation in. Observations of other targets are only counted.
    pub fn add(&mut self, observation: &Observation) {
        let target = &*observation.target;
        let candidate = if target == self.options.baseline {
            false
        } else if target == self.options.candidate {
            true
        } else if self.options.noise.as_deref() == Some(target) {
            self.add_noise(observation);
            return;
        } else {
            self.ignore(1, &observation.target);
            return;
        };
        if self.warming_up(observation, candidate) {
            return;
        }
        let pick = |pair: &mut Pair| {
            if candidate {
                pair.candidate.add(observation);
            } else {
                pair.baseline.add(observation);
            }
        };
        pick(&mut self.overall);
        pick(self.route_entry(&observation.route));
        let side = if candidate {
            Side::Candidate
        } else {
            Side::Baseline
        };
        let half = Half::of(observation);
        if self.options.noise.is_some() && !candidate {
            let offer = self
                .noise_pairer
                .offer(&observation.id, Side::Baseline, half.clone());
            self.settle_noise(offer);
        }
        let offer = self.pairer.offer(&observation.id, side, half);
        self.settle(offer);
    }

    /// Folds in a histogram summary (from `nprt replay --summary`): counts and latency
    /// distributions of the baseline, candidate and noise targets, without pairing.
    pub fn add_summary(&mut self, summary: &summary::HistogramSummary) {
        for (route, targets) in summary.routes() {
            for (target, stats) in targets {
                let pick: fn(&mut Pair) -> &mut TargetStats = if *target == self.options.baseline {
                    |p| &mut p.baseline
                } else if *target == self.options.candidate {
                    |p| &mut p.candidate
                } else if self.options.noise.as_deref() == Some(target.as_str()) {
                    |p| &mut p.noise
                } else {
                    self.ignore(stats.requests(), target);
                    continue;
                };
                pick(&mut self.overall).merge(stats);
                pick(self.route_entry(route)).merge(stats);
            }
        }
    }

    /// An observation of the second stable: its own statistics, paired with the baseline.
    fn add_noise(&mut self, observation: &Observation) {
        self.overall.noise.add(observation);
        self.route_entry(&observation.route).noise.add(observation);
        let offer =
            self.noise_pairer
                .offer(&observation.id, Side::Candidate, Half::of(observation));
        self.settle_noise(offer);
    }

    fn settle_noise(&mut self, offer: Offer) {
        if let Offer::Paired(baseline, noise) = offer {
            self.overall.noise_paired.add(&baseline, &noise);
            self.route_entry(&baseline.route)
                .noise_paired
                .add(&baseline, &noise);
        }
    }

    /// Whether `observation` belongs to the warm-up (its own target's first `warmup`, or the
    /// partner of one of those); such observations are only counted.
    fn warming_up(&mut self, observation: &Observation, candidate: bool) -> bool {
        if self.options.warmup == 0 {
            return false;
        }
        let side = if candidate {
            Side::Candidate
        } else {
            Side::Baseline
        };
        let seen = &mut self.warm_seen[usize::from(candidate)];
        if self
            .warm_ids
            .get(&*observation.id)
            .is_some_and(|s| *s != side)
        {
            // The partner was warm-up: so is this one, and it counts towards this side's.
            *seen += 1;
            self.warm_ids.remove(&*observation.id);
            self.warm_skipped += 1;
            return true;
        }
        if *seen < self.options.warmup {
            *seen += 1;
            self.warm_ids.insert(observation.id.to_string(), side);
            self.warm_skipped += 1;
            return true;
        }
        false
    }

    /// Books what an offer to the pairer produced.
    fn settle(&mut self, offer: Offer) {
        match offer {
            Offer::Paired(baseline, candidate) => {
                if let Some(s) = self.sequential.as_mut() {
                    s.add(
                        &baseline.route,
                        sequential::PairSample {
                            at_us: 0,
                            baseline_failed: baseline.failed,
                            candidate_failed: candidate.failed,
                            baseline_us: baseline.latency_us.unwrap_or(0),
                            candidate_us: candidate.latency_us.unwrap_or(0),
                        },
                    );
                }
                self.overall.paired.add(&baseline, &candidate);
                self.route_entry(&baseline.route)
                    .paired
                    .add(&baseline, &candidate);
            }
            Offer::Waiting(Some(Unpaired { side, route })) => {
                self.overall.paired.unpaired(side);
                self.route_entry(&route).paired.unpaired(side);
            }
            Offer::Waiting(None) => {}
        }
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
        // Halves waiting there may find their partner here.
        for (id, side, half) in other.pairer.waiting() {
            let offer = self.pairer.offer(id, side, half.clone());
            self.settle(offer);
        }
        for (id, side, half) in other.noise_pairer.waiting() {
            let offer = self.noise_pairer.offer(id, side, half.clone());
            self.settle_noise(offer);
        }
        self.ignored += other.ignored;
        self.warm_skipped += other.warm_skipped;
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
        let reservoir = self.options.reservoir;
        self.routes
            .entry(key.to_owned())
            .or_insert_with(|| Pair::new(reservoir))
    }

    /// Judges what has been fed so far.
    pub fn verdict(&self) -> Verdict {
        let opts = &self.options;
        let histograms = opts.include_histograms;
        let mut notes = Vec::new();

        // Halves still waiting count as unpaired on their route (and overall).
        let mut waiting: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        let mut waiting_total = (0u64, 0u64);
        for (_, side, half) in self.pairer.waiting() {
            let route = if self.routes.contains_key(&*half.route) {
                &*half.route
            } else {
                OTHER_ROUTE
            };
            let slot = waiting.entry(route).or_default();
            match side {
                Side::Baseline => {
                    slot.0 += 1;
                    waiting_total.0 += 1;
                }
                Side::Candidate => {
                    slot.1 += 1;
                    waiting_total.1 += 1;
                }
            }
        }

        // (other) goes last, after the real routes in name order.
        let ordered: Vec<(&String, &Pair)> = self
            .routes
            .iter()
            .filter(|(r, _)| r.as_str() != OTHER_ROUTE)
            .chain(self.routes.get_key_value(OTHER_ROUTE))
            .collect();

        // Every check of the run first, so that p-values are adjusted over all of them.
        let route_opts: Vec<Options> = ordered.iter().map(|(r, _)| opts.for_route(r)).collect();
        let mut route_checks: Vec<Vec<Check>> = ordered
            .iter()
            .zip(&route_opts)
            .map(|((_, pair), ropts)| {
                if pair.enough(ropts.min_requests) {
                    let mut checks =
                        checks::checks(&pair.baseline, &pair.candidate, &pair.paired, ropts);
                    discount_noise(&mut checks, pair, ropts);
                    checks
                } else {
                    Vec::new()
                }
            })
            .collect();
        let overall_judged = self.overall.enough(opts.min_requests);
        let mut overall_checks = if overall_judged {
            let mut checks = checks::checks(
                &self.overall.baseline,
                &self.overall.candidate,
                &self.overall.paired,
                opts,
            );
            discount_noise(&mut checks, &self.overall, opts);
            checks
        } else {
            Vec::new()
        };
        adjust_all(
            route_checks
                .iter_mut()
                .flatten()
                .chain(overall_checks.iter_mut()),
            opts,
        );

        let mut findings = Vec::new();
        let mut routes = Vec::with_capacity(ordered.len());
        let mut reported_status = BTreeSet::new();
        for (((route, pair), checks), ropts) in
            ordered.into_iter().zip(route_checks).zip(&route_opts)
        {
            let judged = pair.enough(ropts.min_requests);
            let route_findings = if judged {
                findings_of(route, &pair.baseline, &pair.candidate, &checks, ropts, &[])
            } else {
                notes.push(too_few(route, pair, ropts.min_requests));
                Vec::new()
            };
            reported_status.extend(route_findings.iter().filter_map(|f| f.status));
            findings.extend(route_findings.iter().cloned());
            let extra = waiting.get(route.as_str()).copied().unwrap_or_default();
            routes.push(RouteReport {
                route: route.clone(),
                judged,
                baseline: pair.baseline.summary(histograms),
                candidate: pair.candidate.summary(histograms),
                paired: pair.paired.summary(extra),
                checks,
                findings: route_findings,
            });
        }
        if self.routes.contains_key(OTHER_ROUTE) {
            notes.push(format!(
                "routes beyond the first {} are counted together as {OTHER_ROUTE}",
                opts.max_routes
            ));
        }

        if overall_judged {
            let skip: Vec<u16> = reported_status.into_iter().collect();
            findings.extend(findings_of(
                OVERALL_ROUTE,
                &self.overall.baseline,
                &self.overall.candidate,
                &overall_checks,
                opts,
                &skip,
            ));
        } else {
            notes.push(too_few("overall", &self.overall, opts.min_requests));
        }
        let overall_paired = self.overall.paired.summary(waiting_total);
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
                judge::trim(opts.noise_relative * 100.0),
            ));
        }
        let sequential = self.sequential.as_ref().map(sequential_report);
        if let (Some(s), Some(judge)) = (&sequential, &self.sequential) {
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

        if let (Some(s), Some(o)) = (&sequential, &opts.sequential) {
            if let sequential::Decision::Fail { e_value, .. } = s.decision {
                findings.push(Finding {
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
                });
            }
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
                shift_relative: opts.shift_relative,
                shift_absolute_ms: opts.shift_absolute_ms,
                distribution_share: opts.distribution_share,
                alpha: opts.alpha,
                correction: opts.correction,
                warmup: opts.warmup,
                routes: opts.routes.clone(),
            },
            overall: Overall {
                baseline: self.overall.baseline.summary(histograms),
                candidate: self.overall.candidate.summary(histograms),
                paired: overall_paired,
                checks: overall_checks,
            },
            routes,
            findings,
            notes,
            ignored: self.ignored,
            include_histograms: histograms,
            sequential,
        }
    }
}

/// Diffy's rule: with a second stable, a candidate difference counts only beyond the
/// difference between the two stables (by `noise_relative` more), so each limit is raised to
/// that floor where the noise is larger.
fn discount_noise(checks: &mut [Check], pair: &Pair, opts: &Options) {
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
fn adjust_all<'a>(checks: impl Iterator<Item = &'a mut Check>, opts: &Options) {
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
fn findings_of(
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
            Metric::FailureRate => judge::failure_rate(route, baseline, candidate, opts),
            Metric::P99Latency => judge::p99_latency(route, baseline, candidate, opts),
            Metric::LatencyShift | Metric::LatencyDistribution => {
                let over_before_noise = check
                    .limit_without_noise
                    .is_some_and(|limit| check.effect > limit + 1e-9);
                (check.over_limit() || over_before_noise)
                    .then(|| judge::statistical(route, check, opts))
            }
            Metric::NewStatus | Metric::Sequential => None,
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
    out.extend(judge::new_status(route, baseline, candidate, skip_status));
    out
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
    /// The sequential judge's state, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SequentialReport>,
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

fn sequential_report(s: &sequential::Sequential) -> SequentialReport {
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
fn sequential_failure(s: &SequentialReport, o: &sequential::SequentialOptions) -> String {
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
            judge::trim(sequential::LEVELS.get(i).copied().unwrap_or(0.0) * 100.0)
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
fn sequential_notes(s: &SequentialReport, o: &sequential::SequentialOptions) -> Vec<String> {
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
                        judge::trim(q * 100.0),
                        judge::trim(o.latency_margin.min(1.0 - q) * 100.0)
                    )
                })
                .collect();
            format!(
                "sequential judge: pass after {pairs} pairs: every route's confidence interval \
                 is inside its allowance (failure rate +{} points; share above the latency \
                 levels {} points; {}% confidence for the run)",
                judge::trim(o.error_margin * 100.0),
                levels.join(", "),
                judge::trim((1.0 - o.alpha) * 100.0),
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
            judge::trim(o.min_route_share * 100.0),
            unjudged.join(", ")
        ));
    }
    notes
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

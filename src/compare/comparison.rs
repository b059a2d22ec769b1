//! The accumulator: a [`Comparison`] folds observations of the baseline, the candidate and
//! (optionally) a second stable into per-route `Pair`s of statistics, pairs observations of
//! the same id across targets, leaves out the warm-up, and merges with comparisons made
//! elsewhere. It keeps counts and histograms only; [`Comparison::verdict`] (in `decide`) reads
//! them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::observation::Observation;
use crate::resource::Timeline;

use super::paired::{Half, Offer, PairedStats, Pairer, Side, Unpaired};
use super::target::TargetStats;
use super::{sequential, summary, Options, OptionsError, OTHER_ROUTE};

/// At most this many distinct names of ignored targets are remembered, for the notes.
const MAX_IGNORED_NAMES: usize = 8;
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
pub(super) struct Pair {
    pub(super) baseline: TargetStats,
    pub(super) candidate: TargetStats,
    pub(super) paired: PairedStats,
    /// The second stable, and its pairs with the baseline (empty without `--noise`).
    pub(super) noise: TargetStats,
    pub(super) noise_paired: PairedStats,
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

    pub(super) fn noise_enough(&self, min: u64) -> bool {
        self.baseline.requests() >= min && self.noise.requests() >= min
    }

    pub(super) fn enough(&self, min: u64) -> bool {
        self.baseline.requests() >= min && self.candidate.requests() >= min
    }
}

/// The accumulator: feed observations with [`add`](Comparison::add), then ask for a
/// [`verdict`](Comparison::verdict) (as often as wanted; it does not consume anything).
#[derive(Debug, Clone)]
pub struct Comparison {
    pub(super) options: Options,
    pub(super) overall: Pair,
    pub(super) routes: BTreeMap<String, Pair>,
    pub(super) ignored: u64,
    pub(super) ignored_targets: BTreeSet<String>,
    pub(super) more_ignored_targets: bool,
    pub(super) pairer: Pairer,
    /// Pairs baseline (as `Side::Baseline`) with noise (as `Side::Candidate`).
    noise_pairer: Pairer,
    /// Observations seen of each target while warming up (baseline, candidate).
    warm_seen: [u64; 2],
    /// Ids left out during warm-up, so that their partners are left out too; at most
    /// 2 × `warmup` entries.
    warm_ids: HashMap<String, Side>,
    pub(super) warm_skipped: u64,
    pub(super) sequential: Option<sequential::Sequential>,
    /// Answers per second of each target, for the resource metrics (bounded, see
    /// [`Timeline`]).
    timeline: Timeline,
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
            timeline: Timeline::default(),
            options,
        })
    }

    /// When each target answered: the window and per-step requests of the resource metrics.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
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
        if let Some(at) = observation.at_ms {
            // Warm-up answers cost CPU too: counted before the warm-up is left out.
            if target == self.options.baseline || target == self.options.candidate {
                self.timeline.add(target, at);
            }
        }
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
        self.timeline.merge(summary.timeline());
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
        self.timeline.merge(&other.timeline);
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
}

//! Pairing: the baseline's and the candidate's observation of the same recorded exchange (same
//! `id`) form a pair, which is what makes nprt's comparisons paired rather than two crowds.
//!
//! Observations arrive in any order, so a half waits in a bounded pending map until its
//! partner comes; when the map is full the oldest half is evicted and counted as unpaired.
//! Per route, a [`PairedStats`] keeps the paired status matrix (exact counts) and a uniform
//! reservoir of paired latencies (bounded), from which the rank tests and the bootstrap draw.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::observation::Observation;

/// Fixed seed of the reservoirs: the same input gives the same verdict.
pub const RESERVOIR_SEED: u64 = 0x6e70_7274;

/// What is kept of one observation while it waits for its partner, and of each side of a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Half {
    pub route: std::sync::Arc<str>,
    pub status: Option<u16>,
    /// 5xx, a gRPC failure status, or no response ([`Observation::failed`]).
    pub failed: bool,
    /// Latency in µs when a response arrived.
    pub latency_us: Option<u64>,
}

impl Half {
    pub fn of(observation: &Observation) -> Half {
        let error = observation.is_error();
        Half {
            route: observation.route.clone(),
            status: observation.status,
            failed: observation.failed(),
            latency_us: (!error).then_some(observation.latency_us),
        }
    }
}

/// Which target a half belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Baseline,
    Candidate,
}

/// A half that found no partner: evicted from a full pending map, or a repeated id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpaired {
    pub side: Side,
    pub route: std::sync::Arc<str>,
}

/// What offering a half produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// The partner was waiting: (baseline, candidate).
    Paired(Half, Half),
    /// Waiting now; possibly another, older half had to leave to make room.
    Waiting(Option<Unpaired>),
}

/// The bounded pending map: id → half, oldest first out.
#[derive(Debug, Clone)]
pub struct Pairer {
    capacity: usize,
    pending: HashMap<String, (u64, Side, Half)>,
    /// Arrival order of the pending ids, for eviction.
    order: BTreeMap<u64, String>,
    next: u64,
}

impl Pairer {
    /// At most `capacity` halves wait at once (at least one).
    pub fn new(capacity: usize) -> Pairer {
        Pairer {
            capacity: capacity.max(1),
            pending: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
        }
    }

    /// Offers one half. A second half of the same side with a waiting id replaces nothing:
    /// the newcomer is returned as unpaired (a repeated id within one target).
    pub fn offer(&mut self, id: &str, side: Side, half: Half) -> Offer {
        if let Some((_, waiting_side, _)) = self.pending.get(id) {
            if *waiting_side == side {
                return Offer::Waiting(Some(Unpaired {
                    side,
                    route: half.route,
                }));
            }
            if let Some((seq, waiting_side, waiting)) = self.pending.remove(id) {
                self.order.remove(&seq);
                return match waiting_side {
                    Side::Baseline => Offer::Paired(waiting, half),
                    Side::Candidate => Offer::Paired(half, waiting),
                };
            }
        }
        let evicted = if self.pending.len() >= self.capacity {
            self.evict_oldest()
        } else {
            None
        };
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, id.to_owned());
        self.pending.insert(id.to_owned(), (seq, side, half));
        Offer::Waiting(evicted)
    }

    fn evict_oldest(&mut self) -> Option<Unpaired> {
        let (_, id) = self.order.pop_first()?;
        let (_, side, half) = self.pending.remove(&id)?;
        Some(Unpaired {
            side,
            route: half.route,
        })
    }

    /// Halves still waiting, oldest first.
    pub fn waiting(&self) -> impl Iterator<Item = (&str, Side, &Half)> {
        self.order.values().filter_map(|id| {
            self.pending
                .get_key_value(id)
                .map(|(id, (_, side, half))| (id.as_str(), *side, half))
        })
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// A uniform random sample of at most `capacity` items of a stream (Vitter's algorithm R),
/// with a fixed seed so that runs repeat.
#[derive(Debug, Clone)]
pub struct Reservoir<T> {
    capacity: usize,
    seen: u64,
    items: Vec<T>,
    rng: fastrand::Rng,
}

impl<T: Clone> Reservoir<T> {
    pub fn new(capacity: usize, seed: u64) -> Reservoir<T> {
        Reservoir {
            capacity,
            seen: 0,
            items: Vec::new(),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    pub fn add(&mut self, item: T) {
        self.seen += 1;
        if self.items.len() < self.capacity {
            self.items.push(item);
        } else if self.capacity > 0 {
            let slot = self.rng.u64(..self.seen);
            if let Ok(slot) = usize::try_from(slot) {
                if slot < self.capacity {
                    self.items[slot] = item;
                }
            }
        }
    }

    /// Combines another reservoir's sample, weighting each side by how many items it saw, so
    /// the result is again a uniform sample of both streams. While neither overflowed, this is
    /// exactly the union.
    pub fn merge(&mut self, other: &Reservoir<T>) {
        let total = self.seen + other.seen;
        if self.items.len() + other.items.len() <= self.capacity {
            self.items.extend(other.items.iter().cloned());
            self.seen = total;
            return;
        }
        let mut mine = std::mem::take(&mut self.items);
        let mut theirs = other.items.clone();
        let (mut rest_mine, mut rest_theirs) = (self.seen, other.seen);
        let mut merged = Vec::with_capacity(self.capacity);
        while merged.len() < self.capacity && (!mine.is_empty() || !theirs.is_empty()) {
            let from_mine = if mine.is_empty() {
                false
            } else if theirs.is_empty() {
                true
            } else {
                self.rng.u64(..rest_mine + rest_theirs) < rest_mine
            };
            let (pool, rest) = if from_mine {
                (&mut mine, &mut rest_mine)
            } else {
                (&mut theirs, &mut rest_theirs)
            };
            let i = self.rng.usize(..pool.len());
            merged.push(pool.swap_remove(i));
            *rest = rest.saturating_sub(1);
        }
        self.items = merged;
        self.seen = total;
    }

    /// Items offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    pub fn items(&self) -> &[T] {
        &self.items
    }
}

/// Paired numbers of one route (or overall).
#[derive(Debug, Clone)]
pub struct PairedStats {
    pairs: u64,
    /// (baseline status, candidate status) → pairs; `None` = no response. Bounded by the
    /// codes a service returns.
    matrix: BTreeMap<(Option<u16>, Option<u16>), u64>,
    /// Baseline fine, candidate failed.
    worse: u64,
    /// Baseline failed, candidate fine.
    better: u64,
    unpaired_baseline: u64,
    unpaired_candidate: u64,
    /// (baseline µs, candidate µs) of pairs where both answered.
    latency: Reservoir<(u64, u64)>,
}

impl PairedStats {
    pub fn new(reservoir: usize) -> PairedStats {
        PairedStats {
            pairs: 0,
            matrix: BTreeMap::new(),
            worse: 0,
            better: 0,
            unpaired_baseline: 0,
            unpaired_candidate: 0,
            latency: Reservoir::new(reservoir, RESERVOIR_SEED),
        }
    }

    pub fn add(&mut self, baseline: &Half, candidate: &Half) {
        self.pairs += 1;
        *self
            .matrix
            .entry((baseline.status, candidate.status))
            .or_default() += 1;
        match (baseline.failed, candidate.failed) {
            (false, true) => self.worse += 1,
            (true, false) => self.better += 1,
            _ => {}
        }
        if let (Some(b), Some(c)) = (baseline.latency_us, candidate.latency_us) {
            self.latency.add((b, c));
        }
    }

    pub fn unpaired(&mut self, side: Side) {
        match side {
            Side::Baseline => self.unpaired_baseline += 1,
            Side::Candidate => self.unpaired_candidate += 1,
        }
    }

    /// Exact for the counts; the latency sample as [`Reservoir::merge`].
    pub fn merge(&mut self, other: &PairedStats) {
        self.pairs += other.pairs;
        for (&key, &n) in &other.matrix {
            *self.matrix.entry(key).or_default() += n;
        }
        self.worse += other.worse;
        self.better += other.better;
        self.unpaired_baseline += other.unpaired_baseline;
        self.unpaired_candidate += other.unpaired_candidate;
        self.latency.merge(&other.latency);
    }

    pub fn pairs(&self) -> u64 {
        self.pairs
    }

    pub fn worse(&self) -> u64 {
        self.worse
    }

    pub fn better(&self) -> u64 {
        self.better
    }

    pub fn unpaired_counts(&self) -> (u64, u64) {
        (self.unpaired_baseline, self.unpaired_candidate)
    }

    pub fn matrix(&self) -> &BTreeMap<(Option<u16>, Option<u16>), u64> {
        &self.matrix
    }

    /// The sampled (baseline µs, candidate µs) latencies of answered pairs.
    pub fn latency_pairs(&self) -> &[(u64, u64)] {
        self.latency.items()
    }

    /// How many answered pairs the sample was drawn from.
    pub fn latency_seen(&self) -> u64 {
        self.latency.seen()
    }

    /// candidate − baseline of each sampled pair, in µs.
    pub fn differences(&self) -> Vec<i64> {
        self.latency
            .items()
            .iter()
            .map(|&(b, c)| c as i64 - b as i64)
            .collect()
    }

    /// The report's view; `extra` adds halves still waiting at report time.
    pub fn summary(&self, extra_unpaired: (u64, u64)) -> PairedSummary {
        PairedSummary {
            pairs: self.pairs,
            unpaired_baseline: self.unpaired_baseline + extra_unpaired.0,
            unpaired_candidate: self.unpaired_candidate + extra_unpaired.1,
            worse: self.worse,
            better: self.better,
            latency_sampled: self.latency.items().len() as u64,
            latency_pairs: self.latency.seen(),
            status_matrix: self
                .matrix
                .iter()
                .map(|(&(baseline, candidate), &count)| MatrixCell {
                    baseline,
                    candidate,
                    count,
                })
                .collect(),
        }
    }
}

/// One cell of the paired status matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixCell {
    /// Baseline status, `null` for no response.
    pub baseline: Option<u16>,
    pub candidate: Option<u16>,
    pub count: u64,
}

/// The paired view of one route (or overall) in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairedSummary {
    pub pairs: u64,
    /// Observations whose partner never came (evicted, repeated id, or still missing).
    pub unpaired_baseline: u64,
    pub unpaired_candidate: u64,
    /// Pairs where only the candidate failed (5xx or no response).
    pub worse: u64,
    /// Pairs where only the baseline failed.
    pub better: u64,
    /// Answered pairs in the latency sample, and answered pairs seen.
    pub latency_sampled: u64,
    pub latency_pairs: u64,
    pub status_matrix: Vec<MatrixCell>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn half(route: &str, status: Option<u16>, us: u64) -> Half {
        Half {
            route: route.into(),
            status,
            failed: status.is_none_or(|s| s >= 500),
            latency_us: status.map(|_| us),
        }
    }

    #[test]
    fn pairs_in_either_order_and_evicts_the_oldest() {
        let mut p = Pairer::new(2);
        assert_eq!(
            p.offer("a", Side::Candidate, half("r", Some(200), 5)),
            Offer::Waiting(None)
        );
        match p.offer("a", Side::Baseline, half("r", Some(500), 3)) {
            Offer::Paired(b, c) => assert_eq!((b.status, c.status), (Some(500), Some(200))),
            other => panic!("{other:?}"),
        }
        assert!(p.is_empty());
        p.offer("x", Side::Baseline, half("r1", Some(200), 1));
        p.offer("y", Side::Baseline, half("r2", Some(200), 1));
        // Full: x, the oldest, leaves.
        assert_eq!(
            p.offer("z", Side::Candidate, half("r3", Some(200), 1)),
            Offer::Waiting(Some(Unpaired {
                side: Side::Baseline,
                route: "r1".into()
            }))
        );
        assert_eq!(p.len(), 2);
        // A repeated id of the same side is refused, not paired.
        assert_eq!(
            p.offer("y", Side::Baseline, half("r2", Some(200), 1)),
            Offer::Waiting(Some(Unpaired {
                side: Side::Baseline,
                route: "r2".into()
            }))
        );
        let ids: Vec<_> = p.waiting().map(|(id, ..)| id).collect();
        assert_eq!(ids, ["y", "z"]);
    }

    #[test]
    fn reservoir_keeps_all_until_full_then_stays_uniform() {
        let mut r = Reservoir::new(100, 1);
        for i in 0..50u64 {
            r.add(i);
        }
        assert_eq!(r.items(), (0..50).collect::<Vec<_>>());
        // Uniform: over 100 000 items the sample mean is near the stream mean (49 999.5);
        // its standard error is about 2 900.
        let mut r = Reservoir::new(100, 1);
        for i in 0..100_000u64 {
            r.add(i);
        }
        assert_eq!(r.items().len(), 100);
        assert_eq!(r.seen(), 100_000);
        let mean = r.items().iter().sum::<u64>() as f64 / 100.0;
        assert!((mean - 49_999.5).abs() < 4.0 * 2_900.0, "{mean}");
    }

    #[test]
    fn reservoir_merge_weights_by_stream_length() {
        // Stream A: 90 000 zeros; stream B: 10 000 ones. A merged sample of 1 000 holds about
        // 100 ones (binomial sd ≈ 9.5).
        let mut a = Reservoir::new(1_000, 1);
        let mut b = Reservoir::new(1_000, 2);
        (0..90_000).for_each(|_| a.add(0u8));
        (0..10_000).for_each(|_| b.add(1u8));
        a.merge(&b);
        assert_eq!(a.items().len(), 1_000);
        assert_eq!(a.seen(), 100_000);
        let ones = a.items().iter().filter(|&&x| x == 1).count();
        assert!((60..=140).contains(&ones), "{ones}");
        // Small reservoirs merge to the exact union.
        let mut c = Reservoir::new(10, 1);
        let mut d = Reservoir::new(10, 1);
        (0..3).for_each(|i| c.add(i));
        (3..6).for_each(|i| d.add(i));
        c.merge(&d);
        assert_eq!(c.items(), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn paired_stats_count_the_matrix_and_discordance() {
        let mut s = PairedStats::new(10);
        s.add(&half("r", Some(200), 10), &half("r", Some(200), 12));
        s.add(&half("r", Some(200), 10), &half("r", Some(503), 12));
        s.add(&half("r", Some(200), 10), &half("r", None, 0));
        s.add(&half("r", None, 0), &half("r", Some(200), 9));
        s.unpaired(Side::Candidate);
        let sum = s.summary((1, 0));
        assert_eq!((sum.pairs, sum.worse, sum.better), (4, 2, 1));
        assert_eq!((sum.unpaired_baseline, sum.unpaired_candidate), (1, 1));
        assert_eq!(sum.latency_pairs, 2, "only pairs where both answered");
        assert_eq!(s.differences(), [2, 2]);
        assert_eq!(
            sum.status_matrix[0],
            MatrixCell {
                baseline: None,
                candidate: Some(200),
                count: 1
            }
        );
    }
}

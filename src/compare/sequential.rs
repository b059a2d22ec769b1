//! Sequential mode for live traffic: an anytime-valid judge that can be consulted after every
//! paired request and still keeps its false-alarm rate at alpha, because every test is an
//! e-process (a nonnegative supermartingale under "the candidate is no worse") and Ville's
//! inequality bounds the chance it ever reaches 1/alpha.
//!
//! Streams, each a one-sided mixture SPRT on *discordant pairs*:
//! - errors: pairs where only the candidate failed vs only the baseline failed;
//! - latency at a few levels (p50, p90, p99 of the baseline's past latencies, a predictable
//!   threshold T): pairs where only the candidate is above T plus the allowance vs only the
//!   baseline above T. Under "no worse" the two requests of a pair are exchangeable, so among
//!   discordant pairs the candidate's share is at most ½ — whatever T is, as long as it is
//!   fixed before the pair arrives. The levels make it see shifts, tails and spread alike.
//!
//! Each stream's e-value mixes the likelihood ratios of q ∈ {0.6, 0.75, 0.9, 0.99} against ½
//! (Wald 1945; the mixture method of Robbins 1970); the overall e-value is a weighted average
//! of the streams' (again an e-process). `fail` when it reaches 1/alpha. `pass` when
//! normal-mixture confidence sequences (Howard et al. 2021, sub-Gaussian increments in [−1, 1])
//! bound every stream's effect below its margin; `inconclusive` at `max_pairs`.
//!
//! A pure state machine: feed [`PairSample`]s, read [`Sequential::decision`].

use serde::{Deserialize, Serialize};

use hdrhistogram::Histogram;

/// The alternatives mixed in each stream's e-value, with equal weights.
const ALTERNATIVES: [f64; 4] = [0.6, 0.75, 0.9, 0.99];

/// Latency levels watched, as quantiles of the baseline's past latencies.
pub const LEVELS: [f64; 3] = [0.5, 0.9, 0.99];

/// Thresholds are re-read from the baseline histogram this often (pairs).
const REFRESH: u64 = 64;

/// One paired observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairSample {
    /// µs since the start of the run, for reporting how long a decision took.
    pub at_us: u64,
    pub baseline_failed: bool,
    pub candidate_failed: bool,
    /// Latencies in µs (ignored for a side that failed).
    pub baseline_us: u64,
    pub candidate_us: u64,
}

/// How strict the sequential judge is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialOptions {
    pub alpha: f64,
    /// Share of alpha spent on the error stream; the rest is split over the latency levels.
    pub error_weight: f64,
    /// Latency allowance: the candidate counts as above T only above T·(1+rel) + abs.
    pub latency_relative: f64,
    pub latency_absolute_ms: f64,
    /// `pass` needs the paired failure-rate difference bounded below this (the sub-Gaussian
    /// confidence sequence is not variance-adaptive, so a margin of 0.02 takes ~50 000 pairs;
    /// an empirical-Bernstein sequence would shorten that for rare errors)...
    pub error_margin: f64,
    /// ...and each level's exceedance difference bounded below this.
    pub latency_margin: f64,
    /// Pairs before the latency thresholds are first set.
    pub warmup_pairs: u64,
    /// Pairs before `pass` may be said.
    pub min_pairs: u64,
    /// `inconclusive` after this many pairs.
    pub max_pairs: u64,
}

impl Default for SequentialOptions {
    fn default() -> Self {
        SequentialOptions {
            alpha: 0.01,
            error_weight: 0.5,
            latency_relative: 0.05,
            latency_absolute_ms: 1.0,
            error_margin: 0.02,
            latency_margin: 0.05,
            warmup_pairs: 128,
            min_pairs: 500,
            max_pairs: 50_000,
        }
    }
}

/// Which stream decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Errors,
    /// Latency at `LEVELS[i]`.
    Latency(usize),
}

/// The sequential judge's state of mind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    Continue,
    Fail {
        stream: Stream,
        pairs: u64,
        elapsed_us: u64,
        e_value: f64,
    },
    Pass {
        pairs: u64,
        elapsed_us: u64,
    },
    Inconclusive {
        pairs: u64,
        elapsed_us: u64,
    },
}

/// A one-sided mixture SPRT on discordant pairs, and the running mean of the ±1/0 increments
/// for its confidence sequence.
#[derive(Debug, Clone, Default)]
struct Discordance {
    worse: u64,
    better: u64,
    /// Pairs fed (concordant included), for the effect's confidence sequence.
    n: u64,
}

impl Discordance {
    fn add(&mut self, worse: bool, better: bool) {
        self.n += 1;
        self.worse += u64::from(worse);
        self.better += u64::from(better);
    }

    /// Mixture of Π (2q)^worse (2(1−q))^better over the alternatives.
    fn e_value(&self) -> f64 {
        let (w, b) = (self.worse as f64, self.better as f64);
        let sum: f64 = ALTERNATIVES
            .iter()
            .map(|&q| (w * (2.0 * q).ln() + b * (2.0 * (1.0 - q)).ln()).exp())
            .sum();
        sum / ALTERNATIVES.len() as f64
    }

    /// Upper end of a one-sided (1−α) normal-mixture confidence sequence for the mean of the
    /// increments (worse − better per pair), valid at all n simultaneously.
    fn upper(&self, alpha: f64) -> f64 {
        if self.n == 0 {
            return 1.0;
        }
        let n = self.n as f64;
        let mean = (self.worse as f64 - self.better as f64) / n;
        mean + normal_mixture_radius(n, alpha)
    }
}

/// Howard, Ramdas, McAuliffe & Sekhon (2021), eq. (14) one-sided, σ = 1 (increments in
/// [−1, 1] are 1-sub-Gaussian), with ρ tuned for n ≈ 1000.
pub fn normal_mixture_radius(n: f64, alpha: f64) -> f64 {
    let rho2 = 2.0 * (1.0 / alpha).ln() / 1000.0;
    let v = n; // intrinsic time: σ² · n
    ((v * rho2 + 1.0) / (rho2) * 2.0 * (((v * rho2 + 1.0).sqrt()) / alpha).ln()).sqrt() / n
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct Sequential {
    options: SequentialOptions,
    pairs: u64,
    errors: Discordance,
    levels: [Discordance; 3],
    thresholds: Option<[u64; 3]>,
    pooled: Histogram<u64>,
    decision: Decision,
}

impl Sequential {
    pub fn new(options: SequentialOptions) -> Sequential {
        Sequential {
            options,
            pairs: 0,
            errors: Discordance::default(),
            levels: Default::default(),
            thresholds: None,
            // 1 µs .. 1 h at 2 significant digits: thresholds need no more, and it stays small.
            pooled: Histogram::new_with_bounds(1, 3_600_000_000, 2)
                .expect("1 µs to 1 h at 2 significant digits is valid"),
            decision: Decision::Continue,
        }
    }

    pub fn decision(&self) -> Decision {
        self.decision
    }

    pub fn pairs(&self) -> u64 {
        self.pairs
    }

    /// The combined e-value now.
    pub fn e_value(&self) -> f64 {
        self.weighted().0
    }

    fn weighted(&self) -> (f64, Stream, f64) {
        let ew = self.options.error_weight;
        let lw = (1.0 - ew) / LEVELS.len() as f64;
        let mut total = ew * self.errors.e_value();
        let mut top = (Stream::Errors, ew * self.errors.e_value());
        for (i, level) in self.levels.iter().enumerate() {
            let part = lw * level.e_value();
            total += part;
            if part > top.1 {
                top = (Stream::Latency(i), part);
            }
        }
        (total, top.0, top.1)
    }

    /// Feeds one pair and returns the (sticky) decision.
    pub fn add(&mut self, s: PairSample) -> Decision {
        if self.decision != Decision::Continue {
            return self.decision;
        }
        self.pairs += 1;
        self.errors.add(
            !s.baseline_failed && s.candidate_failed,
            s.baseline_failed && !s.candidate_failed,
        );
        if !s.baseline_failed && !s.candidate_failed {
            if let Some(t) = self.thresholds {
                let o = &self.options;
                for (level, &threshold) in self.levels.iter_mut().zip(&t) {
                    let allowed = threshold as f64 * (1.0 + o.latency_relative)
                        + o.latency_absolute_ms * 1000.0;
                    let c_over = s.candidate_us as f64 > allowed;
                    let b_over = s.baseline_us > threshold;
                    level.add(c_over && !b_over, b_over && !c_over);
                }
            }
            // The thresholds only ever use pairs before the next one: predictable. Only the
            // baseline's latencies, so that a regressed candidate does not move them.
            let _ = self.pooled.record(s.baseline_us.clamp(1, 3_600_000_000));
        }
        if self.pairs >= self.options.warmup_pairs
            && (self.thresholds.is_none() || self.pairs % REFRESH == 0)
            && !self.pooled.is_empty()
        {
            self.thresholds = Some(LEVELS.map(|q| self.pooled.value_at_quantile(q)));
        }

        let (total, stream, _) = self.weighted();
        let o = &self.options;
        self.decision = if total >= 1.0 / o.alpha {
            Decision::Fail {
                stream,
                pairs: self.pairs,
                elapsed_us: s.at_us,
                e_value: total,
            }
        } else if self.pairs >= o.min_pairs && self.bounded() {
            Decision::Pass {
                pairs: self.pairs,
                elapsed_us: s.at_us,
            }
        } else if self.pairs >= o.max_pairs {
            Decision::Inconclusive {
                pairs: self.pairs,
                elapsed_us: s.at_us,
            }
        } else {
            Decision::Continue
        };
        self.decision
    }

    /// Whether every stream's effect is bounded below its margin (alpha split over streams).
    fn bounded(&self) -> bool {
        let a = self.options.alpha / (1 + LEVELS.len()) as f64;
        self.errors.upper(a) <= self.options.error_margin
            && self.thresholds.is_some()
            && self
                .levels
                .iter()
                .all(|l| l.n > 0 && l.upper(a) <= self.options.latency_margin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(b_fail: bool, c_fail: bool, b: u64, c: u64, at: u64) -> PairSample {
        PairSample {
            at_us: at,
            baseline_failed: b_fail,
            candidate_failed: c_fail,
            baseline_us: b,
            candidate_us: c,
        }
    }

    #[test]
    fn e_value_is_the_mixture_likelihood_ratio() {
        let d = Discordance {
            worse: 3,
            better: 1,
            n: 10,
        };
        // By hand: mean over q of (2q)³ · 2(1−q).
        let want: f64 = ALTERNATIVES
            .iter()
            .map(|q| (2.0 * q).powi(3) * 2.0 * (1.0 - q))
            .sum::<f64>()
            / 4.0;
        assert!((d.e_value() - want).abs() < 1e-12);
        assert_eq!(Discordance::default().e_value(), 1.0);
    }

    #[test]
    fn the_e_value_is_a_supermartingale_under_the_null() {
        // Exact expectation after n discordant pairs at q = ½ (and below): enumerate all
        // 2^12 sequences; the mean must be ≤ 1 (= 1 at ½).
        for p in [0.5f64, 0.4] {
            let n = 12u32;
            let mut mean = 0.0f64;
            for mask in 0u32..1 << n {
                let w = mask.count_ones() as u64;
                let prob = p.powi(w as i32) * (1.0 - p).powi((n - w as u32) as i32);
                let d = Discordance {
                    worse: w,
                    better: n as u64 - w,
                    n: n as u64,
                };
                mean += prob * d.e_value();
            }
            assert!(mean <= 1.0 + 1e-9, "p = {p}: {mean}");
            if p == 0.5 {
                assert!((mean - 1.0).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn a_broken_canary_fails_within_ten_pairs() {
        let mut s = Sequential::new(SequentialOptions::default());
        let mut decision = Decision::Continue;
        for i in 0..100 {
            decision = s.add(pair(false, true, 10_000, 1_000, i * 1000));
            if decision != Decision::Continue {
                break;
            }
        }
        match decision {
            Decision::Fail { stream, pairs, .. } => {
                assert_eq!(stream, Stream::Errors);
                assert!(pairs <= 10, "{pairs}");
            }
            other => panic!("{other:?}"),
        }
        // Sticky.
        assert_eq!(s.add(pair(false, false, 1, 1, 0)), decision);
    }

    #[test]
    fn identical_targets_pass_eventually_and_never_fail() {
        let mut s = Sequential::new(SequentialOptions {
            max_pairs: 200_000,
            ..SequentialOptions::default()
        });
        let mut rng = fastrand::Rng::with_seed(5);
        let mut decision = Decision::Continue;
        for i in 0..200_000u64 {
            let w = 10_000 + rng.u64(..10_000);
            decision = s.add(pair(
                false,
                false,
                w + rng.u64(..500),
                w + rng.u64(..500),
                i,
            ));
            if decision != Decision::Continue {
                break;
            }
        }
        assert!(matches!(decision, Decision::Pass { .. }), "{decision:?}");
    }

    #[test]
    fn confidence_radius_shrinks() {
        let a = normal_mixture_radius(100.0, 0.01);
        let b = normal_mixture_radius(10_000.0, 0.01);
        assert!(a > b && b > 0.0 && b < 0.1, "{a} {b}");
    }
}

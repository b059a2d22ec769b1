//! When each target served requests: answers counted per second of wall-clock time, so a
//! resource metric's step can be divided by the requests of the same step, and the range
//! queries cover exactly the window traffic was sent in.
//!
//! Bounded: at most [`Timeline::max_seconds`] distinct seconds per target (a day by default);
//! beyond, the oldest are dropped, so a shadow running for a week judges its last day.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Seconds kept per target by default: one day.
pub const MAX_SECONDS: usize = 86_400;

/// Targets tracked at most (baseline, candidate, noise and a spare); others are ignored.
const MAX_TARGETS: usize = 4;

/// Per target, answers per unix second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    targets: BTreeMap<String, VecDeque<(u64, u32)>>,
    max_seconds: usize,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::new(MAX_SECONDS)
    }
}

impl Timeline {
    pub fn new(max_seconds: usize) -> Timeline {
        Timeline {
            targets: BTreeMap::new(),
            max_seconds: max_seconds.max(1),
        }
    }

    /// Counts one answer of `target` at `at_ms` (unix milliseconds).
    pub fn add(&mut self, target: &str, at_ms: u64) {
        self.add_count(target, at_ms / 1000, 1);
    }

    fn add_count(&mut self, target: &str, second: u64, count: u32) {
        if !self.targets.contains_key(target) {
            if self.targets.len() >= MAX_TARGETS {
                return;
            }
            self.targets.insert(target.to_owned(), VecDeque::new());
        }
        let Some(seconds) = self.targets.get_mut(target) else {
            return;
        };
        // Answers arrive nearly in order: look from the back.
        match seconds.iter().rposition(|&(s, _)| s <= second) {
            Some(i) if seconds[i].0 == second => seconds[i].1 = seconds[i].1.saturating_add(count),
            Some(i) => seconds.insert(i + 1, (second, count)),
            None => seconds.push_front((second, count)),
        }
        while seconds.len() > self.max_seconds {
            seconds.pop_front();
        }
    }

    /// Adds another timeline (another shard's): as if its answers had been counted here.
    pub fn merge(&mut self, other: &Timeline) {
        for (target, seconds) in &other.targets {
            for &(second, count) in seconds {
                self.add_count(target, second, count);
            }
        }
    }

    /// The first and last second with answers of `target`.
    pub fn span(&self, target: &str) -> Option<(u64, u64)> {
        let s = self.targets.get(target)?;
        Some((s.front()?.0, s.back()?.0))
    }

    /// Answers of `target` in the seconds `from..to` (end excluded).
    pub fn count(&self, target: &str, from: u64, to: u64) -> u64 {
        self.targets.get(target).map_or(0, |s| {
            s.iter()
                .filter(|&&(sec, _)| sec >= from && sec < to)
                .map(|&(_, n)| u64::from(n))
                .sum()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.targets.values().all(VecDeque::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_second_in_any_order_and_merges() {
        let mut t = Timeline::default();
        for ms in [10_500, 10_900, 12_000, 11_999, 9_000] {
            t.add("stable", ms);
        }
        assert_eq!(t.span("stable"), Some((9, 12)));
        assert_eq!(t.count("stable", 10, 12), 3);
        assert_eq!(t.count("stable", 0, 100), 5);
        assert_eq!(t.count("canary", 0, 100), 0);
        let mut other = Timeline::default();
        other.add("stable", 10_001);
        other.add("canary", 13_000);
        t.merge(&other);
        assert_eq!(t.count("stable", 10, 11), 3);
        assert_eq!(t.span("canary"), Some((13, 13)));
    }

    #[test]
    fn memory_is_bounded_by_seconds_and_targets() {
        let mut t = Timeline::new(3);
        for s in 0..10u64 {
            t.add("a", s * 1000);
        }
        assert_eq!(t.span("a"), Some((7, 9)), "the oldest seconds are dropped");
        for i in 0..10 {
            t.add(&format!("t{i}"), 0);
        }
        assert_eq!(t.targets.len(), MAX_TARGETS);
    }
}

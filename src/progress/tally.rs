//! The counting behind a replay's progress, kept apart from the display so it can be tested:
//! exchanges done, requests without answer, and the targets whose first requests all failed.

use super::format;
use crate::observation::Observation;
use std::sync::Arc;

/// A target is named as failing once this many of its first requests got no answer.
pub const EARLY: u32 = 5;

/// Targets watched at most: names beyond the ones given are added as they appear, and a run
/// with a stream of new names must not grow this without bound.
const MAX_WATCHED: usize = 64;

/// One target's first requests.
struct Watch {
    /// Swapped for the observations' own `Arc` on first match, so that later matches are a
    /// pointer comparison.
    name: Arc<str>,
    without_answer: u32,
    /// Answered at least once among its first requests, or already warned about.
    decided: bool,
}

/// What has come back so far.
pub struct Tally {
    per_exchange: u64,
    observations: u64,
    without_answer: u64,
    watches: Vec<Watch>,
}

impl Tally {
    /// A tally for a replay to `targets`: each exchange is one observation per target.
    pub fn new(targets: &[String]) -> Tally {
        Tally {
            per_exchange: targets.len().max(1) as u64,
            observations: 0,
            without_answer: 0,
            watches: targets
                .iter()
                .map(|t| Watch {
                    name: Arc::from(t.as_str()),
                    without_answer: 0,
                    decided: false,
                })
                .collect(),
        }
    }

    /// Exchanges every target has answered (or failed), counted as observations per target:
    /// exact at the end, and off by less than one exchange in between.
    pub fn exchanges(&self) -> u64 {
        self.observations / self.per_exchange
    }

    /// Requests that got no answer, over every target.
    pub fn without_answer(&self) -> u64 {
        self.without_answer
    }

    /// Counts `obs`; returns the warning to print when it makes its target's first
    /// [`EARLY`] requests all unanswered. No allocation unless it returns a warning.
    pub fn observe(&mut self, obs: &Observation) -> Option<String> {
        self.observations += 1;
        if obs.status.is_none() {
            self.without_answer += 1;
        }
        self.watch(obs)
    }

    fn watch(&mut self, obs: &Observation) -> Option<String> {
        let i = self.find(&obs.target)?;
        let w = &mut self.watches[i];
        if w.decided {
            return None;
        }
        if obs.status.is_some() {
            w.decided = true;
            return None;
        }
        w.without_answer += 1;
        if w.without_answer < EARLY {
            return None;
        }
        w.decided = true;
        Some(format::early_failure(&w.name, EARLY, obs.error.as_deref()))
    }

    /// The watch of `target`, added if it is new and there is room. Usually the first
    /// pointer comparison finds it: a replay shares one `Arc` per target name.
    fn find(&mut self, target: &Arc<str>) -> Option<usize> {
        if let Some(i) = self
            .watches
            .iter()
            .position(|w| Arc::ptr_eq(&w.name, target))
        {
            return Some(i);
        }
        if let Some(i) = self.watches.iter().position(|w| *w.name == **target) {
            self.watches[i].name = Arc::clone(target);
            return Some(i);
        }
        if self.watches.len() == MAX_WATCHED {
            return None;
        }
        self.watches.push(Watch {
            name: Arc::clone(target),
            without_answer: 0,
            decided: false,
        });
        Some(self.watches.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(target: &Arc<str>, status: Option<u16>) -> Observation {
        Observation {
            id: "1".into(),
            target: Arc::clone(target),
            route: "GET /".into(),
            method: "GET".into(),
            status,
            latency_us: 10,
            bytes: 0,
            error: status
                .is_none()
                .then(|| "connect: Connection refused".to_owned()),
            at_ms: None,
            grpc_status: None,
        }
    }

    #[test]
    fn exchanges_are_observations_per_target() {
        let mut t = Tally::new(&["stable".into(), "canary".into()]);
        let (s, c): (Arc<str>, Arc<str>) = ("stable".into(), "canary".into());
        for _ in 0..3 {
            t.observe(&obs(&s, Some(200)));
        }
        assert_eq!(t.exchanges(), 1, "three observations of two targets");
        t.observe(&obs(&c, None));
        assert_eq!((t.exchanges(), t.without_answer()), (2, 1));
        assert_eq!(
            Tally::new(&[]).per_exchange,
            1,
            "no names: one per exchange"
        );
    }

    #[test]
    fn a_target_failing_its_first_requests_is_named_once() {
        let mut t = Tally::new(&["stable".into(), "canary".into()]);
        let (s, c): (Arc<str>, Arc<str>) = ("stable".into(), "canary".into());
        let mut warnings = Vec::new();
        for _ in 0..20 {
            warnings.extend(t.observe(&obs(&s, Some(200))));
            warnings.extend(t.observe(&obs(&c, None)));
        }
        assert_eq!(
            warnings,
            vec![
                "warning: target canary: its first 5 requests got no answer \
                  (connect: Connection refused)"
                    .to_owned()
            ]
        );
        assert!(t.watches.iter().all(|w| w.decided));
    }

    #[test]
    fn an_answer_among_the_first_requests_clears_the_target() {
        let mut t = Tally::new(&["canary".into()]);
        let c: Arc<str> = "canary".into();
        for _ in 0..4 {
            assert_eq!(t.observe(&obs(&c, None)), None);
        }
        assert_eq!(t.observe(&obs(&c, Some(503))), None);
        for _ in 0..10 {
            assert_eq!(
                t.observe(&obs(&c, None)),
                None,
                "later failures are not early"
            );
        }
    }

    #[test]
    fn targets_not_named_up_front_are_watched_too_within_a_bound() {
        let mut t = Tally::new(&[]);
        let x: Arc<str> = "x".into();
        let warned: Vec<_> = (0..5).filter_map(|_| t.observe(&obs(&x, None))).collect();
        assert_eq!(warned.len(), 1);
        for i in 0..200 {
            let name: Arc<str> = format!("t{i}").into();
            t.observe(&obs(&name, Some(200)));
        }
        assert_eq!(t.watches.len(), MAX_WATCHED);
    }
}

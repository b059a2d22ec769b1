//! The replay's own account of what it sent and what came back: a pure fold of observations.

use super::{ScheduleStats, Skip, SkipCounts, Target};
use crate::observation::Observation;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Microsecond histogram of how far sends fell behind their schedule.
#[derive(Debug)]
pub struct LagHistogram(Histogram<u64>);

impl Default for LagHistogram {
    fn default() -> Self {
        // 1 µs to 1 h at 3 significant digits; a longer lag is recorded as 1 h.
        let h = Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .expect("constant bounds are valid for a histogram");
        LagHistogram(h)
    }
}

impl LagHistogram {
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us);
    }
    pub(crate) fn add(&mut self, other: &LagHistogram) {
        // Both have the bounds of `default()`, which cannot fail to add up.
        let _ = self.0.add(&other.0);
    }
    /// The given quantile in milliseconds (0 when nothing was recorded).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Per-target counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TargetSummary {
    pub requests: u64,
    /// Requests without a response (refused, reset, timed out).
    pub errors: u64,
    /// Status code → count.
    pub status: BTreeMap<u16, u64>,
    /// The most frequent error message, to show the user why requests failed.
    pub first_error: Option<String>,
}

/// What one replay did.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    pub exchanges_read: u64,
    /// Exchanges not sent, by reason (unsafe method without `--methods all`, filters…).
    pub skipped: SkipCounts,
    /// Exchanges sent (each to every target).
    pub sent: u64,
    pub targets: BTreeMap<String, TargetSummary>,
    pub lag: LagHistogram,
    pub elapsed: Duration,
    /// The replay was stopped (Ctrl-C) before the end of its recording, limit or duration.
    pub interrupted: bool,
    /// ...and some requests were still unanswered when it gave up waiting for them.
    pub unanswered_at_stop: bool,
}

impl ReplaySummary {
    pub fn new(targets: &[Target]) -> Self {
        ReplaySummary {
            targets: targets
                .iter()
                .map(|t| (t.name.clone(), TargetSummary::default()))
                .collect(),
            ..ReplaySummary::default()
        }
    }

    pub fn add(&mut self, obs: &Observation) {
        // Targets are known up front; looking up first saves an allocation per observation.
        let t = match self.targets.get_mut(&*obs.target) {
            Some(t) => t,
            None => self.targets.entry(obs.target.to_string()).or_default(),
        };
        t.requests += 1;
        match obs.status {
            Some(code) => *t.status.entry(code).or_default() += 1,
            None => {
                t.errors += 1;
                if t.first_error.is_none() {
                    t.first_error.clone_from(&obs.error);
                }
            }
        }
    }

    /// After the senders were abandoned at a stop, their counts are lost: what was observed
    /// is what was sent and read.
    pub(crate) fn count_from_observations(&mut self) {
        let most = self.targets.values().map(|t| t.requests).max().unwrap_or(0);
        self.sent = most;
        self.exchanges_read = self.exchanges_read.max(most);
    }

    pub(crate) fn merge_schedule(&mut self, stats: ScheduleStats) {
        self.exchanges_read = stats.exchanges_read;
        self.skipped = stats.skipped;
        self.sent = stats.sent;
        self.lag = stats.lag_us;
    }

    /// Targets that answered no request at all.
    pub fn unreachable_targets(&self) -> Vec<&str> {
        self.targets
            .iter()
            .filter(|(_, t)| t.requests > 0 && t.errors == t.requests)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// A few lines for the terminal.
    pub fn render(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let mut out = String::new();
        if self.interrupted {
            out.push_str("interrupted (Ctrl-C or SIGTERM): ");
        }
        let _ = write!(
            out,
            "replayed {} of {} exchanges in {:.2} s ({:.0} exchanges/s)",
            self.sent,
            self.exchanges_read,
            secs,
            if secs > 0.0 {
                self.sent as f64 / secs
            } else {
                0.0
            },
        );
        let skipped: u64 = self.skipped.values().sum();
        if skipped > 0 {
            let reasons: Vec<String> = self
                .skipped
                .iter()
                .map(|(reason, n)| format!("{n} {}", reason.as_str()))
                .collect();
            let _ = write!(out, ", {skipped} skipped ({})", reasons.join(", "));
            if self.skipped.contains_key(&Skip::UnsafeMethod) {
                out.push_str("; --methods all sends unsafe methods");
            }
        }
        if self.unanswered_at_stop {
            out.push_str("; requests still in flight after the stop were not waited for");
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "sender behind schedule: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.lag.quantile_ms(0.5),
            self.lag.quantile_ms(0.99),
            self.lag.quantile_ms(1.0),
        );
        for (name, t) in &self.targets {
            let codes: Vec<String> = t.status.iter().map(|(c, n)| format!("{c}×{n}")).collect();
            let _ = write!(
                out,
                "  {name}: {} requests, {} without response",
                t.requests, t.errors
            );
            if !codes.is_empty() {
                let _ = write!(out, ", status {}", codes.join(" "));
            }
            if let Some(e) = &t.first_error {
                let _ = write!(out, " (first error: {e})");
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(target: &str, status: Option<u16>) -> Observation {
        Observation {
            id: "1".into(),
            target: target.into(),
            route: "GET /".into(),
            method: "GET".into(),
            status,
            latency_us: 10,
            bytes: 1,
            error: status.is_none().then(|| "connect: refused".to_owned()),
            at_ms: None,
            grpc_status: None,
        }
    }

    #[test]
    fn counts_per_target_and_finds_unreachable_ones() {
        let targets = [
            Target::parse("a=http://127.0.0.1:1").unwrap(),
            Target::parse("b=http://127.0.0.1:2").unwrap(),
        ];
        let mut s = ReplaySummary::new(&targets);
        s.add(&obs("a", Some(200)));
        s.add(&obs("a", Some(500)));
        s.add(&obs("b", None));
        s.add(&obs("b", None));
        assert_eq!(s.targets["a"].status.len(), 2);
        assert_eq!(s.targets["b"].errors, 2);
        assert_eq!(s.unreachable_targets(), vec!["b"]);
        let text = s.render();
        assert!(text.contains("first error: connect: refused"), "{text}");
        assert!(text.contains("200×1 500×1"), "{text}");
    }
}

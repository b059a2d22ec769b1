//! A circuit breaker per shadow endpoint, so that a canary that refuses connections or times
//! out costs the primary's path nothing: after a run of failed copies the endpoint is left
//! alone for a cool-down, then one probe copy is sent; a good answer closes the circuit, a
//! failed one opens it again for twice as long (up to a bound).
//!
//! Pure: fed the outcome of every copy and asked before each one, with the time passed in, so
//! the tests drive it without sockets or clocks.

use std::time::{Duration, Instant};

/// When the breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive copies without an answer (refused, reset, timed out) that open the circuit.
    pub failures: u32,
    /// The first cool-down; each failed probe doubles it...
    pub cooldown: Duration,
    /// ...up to this.
    pub max_cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        // Twenty: the live judge fails a canary that refuses everything after about ten
        // pairs, so the breaker only acts once mirroring goes on regardless (or with a
        // baseline copy that refuses).
        BreakerSettings {
            failures: 20,
            cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(30),
        }
    }
}

/// What may be done with the next copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// The circuit is closed: send.
    Send,
    /// The cool-down is over: send this one copy as a probe; others wait for its outcome.
    Probe,
    /// Open (or a probe is out): do not send.
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, cooldown: Duration },
    Probing { cooldown: Duration },
}

/// The breaker of one endpoint.
#[derive(Debug, Clone)]
pub struct Breaker {
    settings: BreakerSettings,
    state: State,
    /// Times the circuit opened (a failed probe counts again).
    opened: u64,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Breaker {
        Breaker {
            settings,
            state: State::Closed { failures: 0 },
            opened: 0,
        }
    }

    /// Closed with no failure counted: an answer changes nothing (a fast path for callers).
    pub fn is_clear(&self) -> bool {
        self.state == State::Closed { failures: 0 }
    }

    /// Whether [`Breaker::admit`] would let a copy go at `now`, without changing anything.
    pub fn ready(&self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until, .. } => now >= until,
            State::Probing { .. } => false,
        }
    }

    /// Whether the next copy may go, at `now`.
    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            State::Closed { .. } => Admit::Send,
            State::Open { until, cooldown } if now >= until => {
                self.state = State::Probing { cooldown };
                Admit::Probe
            }
            State::Open { .. } | State::Probing { .. } => Admit::Reject,
        }
    }

    /// The outcome of a copy that was sent: `answered` when a response head came back.
    pub fn record(&mut self, now: Instant, answered: bool) {
        let s = self.settings;
        self.state = match (self.state, answered) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < s.failures.max(1) => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (State::Closed { .. }, false) => self.open(now, s.cooldown),
            (State::Probing { cooldown }, false) => {
                self.open(now, (cooldown * 2).min(s.max_cooldown))
            }
            // A copy sent before the circuit opened came back failed: the cool-down stands.
            (open @ State::Open { .. }, false) => open,
        };
    }

    fn open(&mut self, now: Instant, cooldown: Duration) -> State {
        self.opened += 1;
        State::Open {
            until: now + cooldown,
            cooldown,
        }
    }

    /// Until when nothing is sent (`None` when closed or probing).
    pub fn open_until(&self) -> Option<Instant> {
        match self.state {
            State::Open { until, .. } => Some(until),
            _ => None,
        }
    }

    /// How many times the circuit opened.
    pub fn opened(&self) -> u64 {
        self.opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            failures: 3,
            cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(4),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let t = Instant::now();
        let mut b = Breaker::new(settings());
        b.record(t, false);
        b.record(t, false);
        assert!(!b.is_clear());
        b.record(t, true); // an answer resets the run
        assert!(b.is_clear());
        b.record(t, false);
        b.record(t, false);
        assert_eq!(b.admit(t), Admit::Send);
        b.record(t, false);
        assert_eq!(b.admit(t), Admit::Reject);
        assert_eq!(b.open_until(), Some(t + Duration::from_secs(1)));
        assert_eq!(b.opened(), 1);
    }

    #[test]
    fn probes_once_after_the_cooldown_and_backs_off() {
        let t = Instant::now();
        let mut b = Breaker::new(settings());
        for _ in 0..3 {
            b.record(t, false);
        }
        let later = t + Duration::from_millis(999);
        assert!(!b.ready(later));
        assert_eq!(b.admit(later), Admit::Reject);
        let t1 = t + Duration::from_secs(1);
        assert!(b.ready(t1));
        assert_eq!(b.admit(t1), Admit::Probe);
        // One probe at a time.
        assert!(!b.ready(t1));
        assert_eq!(b.admit(t1), Admit::Reject);
        b.record(t1, false);
        // Twice as long now, then capped.
        assert_eq!(b.open_until(), Some(t1 + Duration::from_secs(2)));
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(b.admit(t2), Admit::Probe);
        b.record(t2, false);
        let t3 = t2 + Duration::from_secs(4);
        assert_eq!(b.admit(t3), Admit::Probe);
        b.record(t3, false);
        assert_eq!(b.open_until(), Some(t3 + Duration::from_secs(4)), "capped");
        assert_eq!(b.opened(), 4);
        // A good probe closes it.
        let t4 = t3 + Duration::from_secs(4);
        assert_eq!(b.admit(t4), Admit::Probe);
        b.record(t4, true);
        assert_eq!(b.admit(t4), Admit::Send);
        assert_eq!(b.open_until(), None);
    }

    #[test]
    fn late_failures_of_copies_sent_before_do_not_extend_the_cooldown() {
        let t = Instant::now();
        let mut b = Breaker::new(settings());
        for _ in 0..3 {
            b.record(t, false);
        }
        b.record(t + Duration::from_millis(500), false);
        assert_eq!(b.open_until(), Some(t + Duration::from_secs(1)));
        assert_eq!(b.opened(), 1);
    }
}

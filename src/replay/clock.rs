//! When each exchange is due: pure arithmetic over recorded timestamps, no timers, so each
//! pacing mode is tested exactly.

use super::Pacing;
use std::time::Duration;

/// Turns recorded timestamps (or a fixed rate) into send offsets from the start of the replay.
#[derive(Debug, Clone)]
pub struct Clock {
    pacing: Pacing,
    pass: u32,
    /// Recording time at which the current pass started.
    pass_first_ns: Option<u64>,
    pass_last_ns: u64,
    pass_count: u64,
    /// Replay offset (in recording nanoseconds, before speed) at which the current pass starts.
    pass_base_ns: u64,
}

impl Clock {
    pub fn new(pacing: Pacing) -> Self {
        Clock {
            pacing,
            pass: 0,
            pass_first_ns: None,
            pass_last_ns: 0,
            pass_count: 0,
            pass_base_ns: 0,
        }
    }

    /// The offset from the start of the replay at which exchange number `n` (counting the
    /// exchanges sent, from 0) is due; `None` when it goes as soon as a slot is free.
    ///
    /// `pass` counts the times the recording was restarted by `--loop`: a new pass continues
    /// one mean inter-arrival gap after the previous pass ended, so looping keeps the rate.
    pub fn due(&mut self, n: u64, pass: u32, ts_ns: u64) -> Option<Duration> {
        match self.pacing {
            Pacing::Max { .. } => None,
            Pacing::Rate { per_second } => Some(Duration::from_secs_f64(n as f64 / per_second)),
            Pacing::Original { speed } => {
                if pass != self.pass {
                    if let Some(first) = self.pass_first_ns {
                        let span = self.pass_last_ns.saturating_sub(first);
                        let gap = span / self.pass_count.max(1);
                        self.pass_base_ns += span + gap;
                    }
                    self.pass = pass;
                    self.pass_first_ns = None;
                    self.pass_count = 0;
                }
                let first = *self.pass_first_ns.get_or_insert(ts_ns);
                self.pass_last_ns = self.pass_last_ns.max(ts_ns);
                self.pass_count += 1;
                // Records released late by the reader's window are sent at once, not earlier.
                let recorded = self.pass_base_ns + ts_ns.saturating_sub(first);
                Some(Duration::from_nanos((recorded as f64 / speed) as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn original_pace_scaled_by_speed() {
        let mut c = Clock::new(Pacing::Original { speed: 2.0 });
        let t0 = 1_700_000_000 * 1_000 * MS;
        let offsets: Vec<_> = [0, 10, 30, 100]
            .iter()
            .enumerate()
            .map(|(n, ms)| c.due(n as u64, 0, t0 + ms * MS).unwrap())
            .collect();
        assert_eq!(
            offsets,
            [0, 5, 15, 50].map(Duration::from_millis).to_vec(),
            "half the recorded gaps at speed 2"
        );
    }

    #[test]
    fn fixed_rate_ignores_timestamps() {
        let mut c = Clock::new(Pacing::Rate { per_second: 200.0 });
        assert_eq!(c.due(0, 0, 999), Some(Duration::ZERO));
        assert_eq!(c.due(3, 0, 5), Some(Duration::from_millis(15)));
    }

    #[test]
    fn max_has_no_schedule() {
        let mut c = Clock::new(Pacing::Max { concurrency: 4 });
        assert_eq!(c.due(7, 0, 1), None);
    }

    #[test]
    fn a_loop_continues_after_the_previous_pass() {
        let mut c = Clock::new(Pacing::Original { speed: 1.0 });
        // Pass 0: 0, 10, 20 ms; mean gap 20/3 ms.
        for (n, ms) in [0, 10, 20].iter().enumerate() {
            c.due(n as u64, 0, ms * MS);
        }
        let gap = 20 * MS / 3;
        assert_eq!(c.due(3, 1, 0), Some(Duration::from_nanos(20 * MS + gap)));
        assert_eq!(
            c.due(4, 1, 10 * MS),
            Some(Duration::from_nanos(30 * MS + gap))
        );
    }

    #[test]
    fn records_out_of_order_are_not_sent_before_the_start() {
        let mut c = Clock::new(Pacing::Original { speed: 1.0 });
        c.due(0, 0, 100 * MS);
        assert_eq!(c.due(1, 0, 90 * MS), Some(Duration::ZERO));
    }
}

//! The words and numbers of the progress display, as pure functions: the terminal bar and the
//! plain lines of a CI log say the same things the same way, and both are tested here.

use std::fmt::Write as _;
use std::time::Duration;

/// A duration as a person reads it: `23 s`, `4 min 10 s`, `2 h 05 min`. Seconds are dropped
/// past an hour because an ETA that far out is not that precise.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs} s")
    } else if secs < 3600 {
        format!("{} min {} s", secs / 60, secs % 60)
    } else {
        format!("{} h {:02} min", secs / 3600, (secs % 3600) / 60)
    }
}

/// A rate per second: one decimal below 10 (2.5/s is not 2/s), whole numbers above, where the
/// decimal is noise.
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        "0".to_owned()
    } else if per_sec < 10.0 {
        format!("{per_sec:.1}")
    } else {
        format!("{per_sec:.0}")
    }
}

/// `done` of everything per second over `elapsed`; 0 before any time has passed.
pub fn average_rate(done: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        done as f64 / secs
    } else {
        0.0
    }
}

/// The time left to reach `total` at the average pace so far; `None` while nothing is done
/// (no pace yet), when the total is unknown, or once it is reached.
pub fn eta(done: u64, total: Option<u64>, elapsed: Duration) -> Option<Duration> {
    let total = total?;
    if done == 0 || done >= total {
        return None;
    }
    let per_exchange = elapsed.as_secs_f64() / done as f64;
    Some(Duration::from_secs_f64(
        per_exchange * (total - done) as f64,
    ))
}

/// The periodic line written when stderr is not a terminal, e.g.
/// `12 s: 3400/10000 exchanges (283/s), ETA 23 s, 2 without answer`.
pub fn status_line(
    elapsed: Duration,
    done: u64,
    total: Option<u64>,
    without_answer: u64,
) -> String {
    let mut line = format!("{}: {done}", duration(elapsed));
    if let Some(total) = total {
        let _ = write!(line, "/{total}");
    }
    let _ = write!(line, " exchanges ({}/s)", rate(average_rate(done, elapsed)));
    if let Some(left) = eta(done, total, elapsed) {
        let _ = write!(line, ", ETA {}", duration(left));
    }
    let _ = write!(line, ", {without_answer} without answer");
    line
}

/// The warning for a target whose first `n` requests all failed: named at once, because a
/// target that refuses every connection otherwise shows only in the summary at the end.
pub fn early_failure(target: &str, n: u32, error: Option<&str>) -> String {
    let mut line = format!("warning: target {target}: its first {n} requests got no answer");
    if let Some(error) = error {
        let _ = write!(line, " ({error})");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(duration(Duration::from_millis(900)), "0 s");
        assert_eq!(duration(Duration::from_secs(23)), "23 s");
        assert_eq!(duration(Duration::from_secs(59)), "59 s");
        assert_eq!(duration(Duration::from_secs(60)), "1 min 0 s");
        assert_eq!(duration(Duration::from_secs(250)), "4 min 10 s");
        assert_eq!(duration(Duration::from_secs(3600)), "1 h 00 min");
        assert_eq!(
            duration(Duration::from_secs(2 * 3600 + 5 * 60 + 59)),
            "2 h 05 min"
        );
    }

    #[test]
    fn rates_keep_a_decimal_only_when_it_matters() {
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(f64::NAN), "0");
        assert_eq!(rate(f64::INFINITY), "0");
        assert_eq!(rate(2.46), "2.5");
        assert_eq!(rate(9.94), "9.9");
        assert_eq!(rate(283.33), "283");
        assert_eq!(rate(51_234.6), "51235");
        assert_eq!(average_rate(3400, Duration::from_secs(12)), 3400.0 / 12.0);
        assert_eq!(average_rate(5, Duration::ZERO), 0.0);
    }

    #[test]
    fn eta_is_the_rest_at_the_pace_so_far() {
        let t = Duration::from_secs(10);
        assert_eq!(eta(250, Some(1000), t), Some(Duration::from_secs(30)));
        assert_eq!(eta(0, Some(1000), t), None, "no pace yet");
        assert_eq!(eta(1000, Some(1000), t), None, "done");
        assert_eq!(eta(1200, Some(1000), t), None, "past a stale total");
        assert_eq!(eta(250, None, t), None, "unknown total");
    }

    #[test]
    fn the_status_line_has_count_total_rate_eta_and_failures() {
        assert_eq!(
            status_line(Duration::from_secs(12), 3400, Some(10_000), 2),
            "12 s: 3400/10000 exchanges (283/s), ETA 23 s, 2 without answer"
        );
        assert_eq!(
            status_line(Duration::from_secs(20), 50, None, 0),
            "20 s: 50 exchanges (2.5/s), 0 without answer"
        );
        assert_eq!(
            status_line(Duration::from_secs(10), 0, Some(100), 0),
            "10 s: 0/100 exchanges (0/s), 0 without answer"
        );
    }

    #[test]
    fn the_early_warning_names_the_target_and_the_reason() {
        assert_eq!(
            early_failure("canary", 5, Some("connection refused")),
            "warning: target canary: its first 5 requests got no answer (connection refused)"
        );
        assert_eq!(
            early_failure("b", 5, None),
            "warning: target b: its first 5 requests got no answer"
        );
    }
}

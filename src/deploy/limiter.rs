//! Failed-authentication limits for the deploy API, per client address: after `max` failures
//! within `window`, the address gets 429 with `Retry-After` until that window ends, valid token
//! or not (so a guesser cannot tell a right guess from a blocked one).
//!
//! Pure: the caller passes the time, so the rules are tested without sleeping. Memory is
//! bounded by `capacity` addresses; when that many are being tracked and none has expired,
//! further addresses share one bucket (a distributed attack slows down everyone new rather
//! than growing the table).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The key every address beyond `capacity` shares.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

/// Counts failed authentications per client.
#[derive(Debug)]
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    capacity: usize,
    clients: HashMap<IpAddr, Window>,
}

/// The address a limit applies to: IPv4 as is, IPv6 by its /64 (one host usually holds a
/// whole /64, so per-address limits there would be no limit).
pub fn client_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl FailureLimiter {
    /// `max` failures allowed per `window`; `max` 0 disables the limit.
    pub fn new(max: u32, window: Duration, capacity: usize) -> FailureLimiter {
        FailureLimiter {
            max,
            window,
            capacity: capacity.max(1),
            clients: HashMap::new(),
        }
    }

    fn key(&self, addr: IpAddr) -> IpAddr {
        let key = client_key(addr);
        if self.clients.contains_key(&key) || self.clients.len() < self.capacity {
            key
        } else {
            OVERFLOW
        }
    }

    fn live(&self, key: IpAddr, now: Instant) -> Option<Window> {
        self.clients
            .get(&key)
            .copied()
            .filter(|w| now.saturating_duration_since(w.start) < self.window)
    }

    /// How long `addr` must wait, when it has used up its failures in the current window.
    pub fn blocked(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        if self.max == 0 {
            return None;
        }
        let w = self.live(self.key(addr), now)?;
        (w.failures >= self.max).then(|| {
            self.window
                .saturating_sub(now.saturating_duration_since(w.start))
        })
    }

    /// Records a failure of `addr`; returns its failures in the current window.
    pub fn failed(&mut self, addr: IpAddr, now: Instant) -> u32 {
        if self.clients.len() >= self.capacity {
            let window = self.window;
            self.clients
                .retain(|_, w| now.saturating_duration_since(w.start) < window);
        }
        let key = self.key(addr);
        let window = match self.live(key, now) {
            Some(mut w) => {
                w.failures = w.failures.saturating_add(1);
                w
            }
            None => Window {
                start: now,
                failures: 1,
            },
        };
        self.clients.insert(key, window);
        window.failures
    }

    /// How many addresses are tracked.
    pub fn tracked(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_after_max_failures_until_the_window_ends() {
        let t0 = Instant::now();
        let mut l = FailureLimiter::new(3, Duration::from_secs(60), 100);
        let a = ip("10.0.0.1");
        for n in 1..=3 {
            assert_eq!(l.blocked(a, t0), None, "before failure {n}");
            assert_eq!(l.failed(a, t0), n);
        }
        assert_eq!(l.blocked(a, t0), Some(Duration::from_secs(60)));
        let later = t0 + Duration::from_secs(45);
        assert_eq!(l.blocked(a, later), Some(Duration::from_secs(15)));
        // Another address is not affected.
        assert_eq!(l.blocked(ip("10.0.0.2"), t0), None);
        // A new window starts afresh.
        let next = t0 + Duration::from_secs(60);
        assert_eq!(l.blocked(a, next), None);
        assert_eq!(l.failed(a, next), 1);
    }

    #[test]
    fn zero_disables() {
        let t0 = Instant::now();
        let mut l = FailureLimiter::new(0, Duration::from_secs(60), 10);
        for _ in 0..100 {
            l.failed(ip("10.0.0.1"), t0);
        }
        assert_eq!(l.blocked(ip("10.0.0.1"), t0), None);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let t0 = Instant::now();
        let mut l = FailureLimiter::new(2, Duration::from_secs(10), 10);
        l.failed(ip("2001:db8:1:2::1"), t0);
        l.failed(ip("2001:db8:1:2::ffff"), t0);
        assert!(l.blocked(ip("2001:db8:1:2:abcd::9"), t0).is_some());
        assert!(l.blocked(ip("2001:db8:1:3::1"), t0).is_none());
        l.failed(ip("::ffff:192.0.2.7"), t0);
        l.failed(ip("192.0.2.7"), t0);
        assert!(l.blocked(ip("192.0.2.7"), t0).is_some());
    }

    #[test]
    fn memory_is_bounded_and_overflow_shares_a_bucket() {
        let t0 = Instant::now();
        let mut l = FailureLimiter::new(2, Duration::from_secs(10), 4);
        for i in 0..4 {
            l.failed(ip(&format!("10.0.0.{i}")), t0);
        }
        // Beyond capacity, new addresses share one bucket.
        l.failed(ip("10.0.1.1"), t0);
        l.failed(ip("10.0.1.2"), t0);
        assert!(l.blocked(ip("10.0.1.3"), t0).is_some());
        assert!(l.tracked() <= 5);
        assert!(l.blocked(ip("10.0.0.1"), t0).is_none());
        // Expired entries make room again.
        let later = t0 + Duration::from_secs(11);
        l.failed(ip("10.0.2.1"), later);
        assert_eq!(l.tracked(), 1);
        assert!(l.blocked(ip("10.0.1.3"), later).is_none());
    }
}

//! What a request costs the testbed beyond its latency, so resource regressions can be staged:
//! CPU burnt per request, memory kept per request (a leak), and the process metrics a
//! Prometheus scrape reads at `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The most a staged leak keeps, whatever the traffic: the testbed's memory stays bounded
/// by configuration.
pub const LEAK_LIMIT: usize = 1 << 30;

/// Per-request costs and whether `/metrics` is served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Serve Prometheus text at `/metrics` (process CPU, resident memory, requests).
    pub metrics: bool,
    /// CPU time burnt in every request (on the thread answering it), within the request's
    /// latency: with a latency of 10 ms and 2 ms of CPU, the answer still comes after 10 ms.
    pub cpu_per_request: Duration,
    /// Bytes kept for the life of the process per request, up to [`LEAK_LIMIT`].
    pub leak_per_request: usize,
}

/// A running testbed's counters and its leak.
#[derive(Debug, Default)]
pub struct Ledger {
    requests: AtomicU64,
    leaked: Mutex<Vec<Box<[u8]>>>,
    leaked_bytes: AtomicU64,
}

impl Ledger {
    /// Books one request: counts it, burns its CPU, keeps its leak.
    pub fn charge(&self, cost: &Cost) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !cost.cpu_per_request.is_zero() {
            burn(cost.cpu_per_request);
        }
        let n = cost.leak_per_request;
        if n > 0 && self.leaked_bytes.load(Ordering::Relaxed) + n as u64 <= LEAK_LIMIT as u64 {
            // Written, not just allocated, so the pages are resident.
            let block = vec![0xA5u8; n].into_boxed_slice();
            if let Ok(mut kept) = self.leaked.lock() {
                kept.push(block);
                self.leaked_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }

    /// The Prometheus text exposition of the process and the requests.
    pub fn render(&self) -> String {
        exposition(
            process_cpu_seconds(),
            resident_bytes(),
            self.requests.load(Ordering::Relaxed),
        )
    }
}

/// The exposition text (pure).
fn exposition(cpu_seconds: f64, resident: u64, requests: u64) -> String {
    format!(
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
         # TYPE process_cpu_seconds_total counter\n\
         process_cpu_seconds_total {cpu_seconds}\n\
         # HELP process_resident_memory_bytes Resident memory size in bytes.\n\
         # TYPE process_resident_memory_bytes gauge\n\
         process_resident_memory_bytes {resident}\n\
         # HELP nprt_testbed_requests_total Requests answered, not counting /metrics.\n\
         # TYPE nprt_testbed_requests_total counter\n\
         nprt_testbed_requests_total {requests}\n"
    )
}

/// Spins until this thread has used `cpu` of CPU time (not wall time: a preempted spin still
/// burns what was asked).
fn burn(cpu: Duration) {
    let start = thread_cpu();
    while thread_cpu().saturating_sub(start) < cpu {
        std::hint::spin_loop();
    }
}

fn thread_cpu() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    if unsafe { libc::clock_gettime(id, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// User and system CPU of the whole process.
fn process_cpu_seconds() -> f64 {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID).as_secs_f64()
}

/// Resident set size from `/proc/self/statm` (0 where there is no procfs).
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_the_three_series() {
        let text = exposition(1.5, 4096, 7);
        assert!(text.contains("\nprocess_cpu_seconds_total 1.5\n"), "{text}");
        assert!(
            text.contains("\nprocess_resident_memory_bytes 4096\n"),
            "{text}"
        );
        assert!(text.contains("\nnprt_testbed_requests_total 7\n"), "{text}");
        assert_eq!(text.matches("# TYPE").count(), 3);
    }

    #[test]
    fn a_request_burns_its_cpu_and_keeps_its_leak() {
        let ledger = Ledger::default();
        let cost = Cost {
            metrics: true,
            cpu_per_request: Duration::from_millis(20),
            leak_per_request: 1 << 20,
        };
        let before = thread_cpu();
        ledger.charge(&cost);
        ledger.charge(&cost);
        assert!(thread_cpu() - before >= Duration::from_millis(40));
        assert_eq!(ledger.leaked_bytes.load(Ordering::Relaxed), 2 << 20);
        assert!(ledger.render().contains("nprt_testbed_requests_total 2\n"));
        assert!(resident_bytes() > 2 << 20);
    }

    #[test]
    fn the_leak_stops_at_its_limit() {
        let ledger = Ledger::default();
        ledger
            .leaked_bytes
            .store(LEAK_LIMIT as u64, Ordering::Relaxed);
        ledger.charge(&Cost {
            leak_per_request: 1,
            ..Cost::default()
        });
        assert!(ledger.leaked.lock().unwrap().is_empty());
    }
}

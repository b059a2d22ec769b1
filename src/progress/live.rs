//! Live counters for the commands that run until stopped (`capture`, `shadow`, `mirror`):
//! one status line redrawn every second on a terminal, one plain line every 30 s elsewhere.
//!
//! Why a line every 30 s rather than nothing when stderr is not a terminal: these commands
//! run for minutes to hours, and a CI log (or `kubectl logs`) that stays silent that long
//! cannot tell working from stuck; some CI runners even stop a job after ten minutes without
//! output. Thirty seconds keeps an hour of it to 120 lines.

use super::{format, Ticker};
use crate::capture::CaptureStats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The terminal status line; `wide_msg` cuts the counters at the terminal's width rather
/// than wrapping them onto a second line.
const TEMPLATE: &str = "{spinner} {prefix} {elapsed}: {wide_msg}";
/// How often the terminal status line is redrawn.
const REDRAW_EVERY: Duration = Duration::from_secs(1);
/// How often a plain line is written when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(30);

/// A status line kept up to date until [`LiveCounters::stop`] clears it. Clones share the
/// line: a clone given to whatever prints the final report clears it first (stdout and stderr
/// share a terminal, and a report printed under a status line would start glued to it).
#[derive(Clone, Default)]
pub struct LiveCounters {
    running: Arc<Mutex<Option<Running>>>,
}

/// The line's thread and, on a terminal, its spinner; stopped and cleared when dropped.
struct Running {
    bar: Option<ProgressBar>,
    ticker: Ticker,
}

impl LiveCounters {
    /// Counters started at once; see [`LiveCounters::start`].
    pub fn spawn(
        quiet: bool,
        label: &str,
        status: impl Fn() -> String + Send + 'static,
    ) -> LiveCounters {
        let counters = LiveCounters::default();
        counters.start(quiet, label, status);
        counters
    }

    /// Shows `status()` (e.g. `requests 120, mirrored 118`) after `label` and the time since
    /// the start; nothing at all when `quiet`. `status` runs on the ticker thread, so it
    /// should only read counters. A second start replaces the first.
    ///
    /// The first draw comes after a full period, not at once: the command's own start lines
    /// (printed just after this) then never land in the middle of a half-drawn status line.
    pub fn start(&self, quiet: bool, label: &str, status: impl Fn() -> String + Send + 'static) {
        if quiet {
            return;
        }
        let started = Instant::now();
        let running = if std::io::stderr().is_terminal() {
            // Hidden until the first tick: setting it up would draw it at once.
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
            bar.set_style(
                ProgressStyle::with_template(TEMPLATE)
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(label.to_owned());
            let drawn = bar.clone();
            let mut shown = false;
            let ticker = Ticker::spawn(REDRAW_EVERY, move || {
                drawn.set_message(status());
                if !shown {
                    shown = true;
                    drawn.set_draw_target(ProgressDrawTarget::stderr());
                }
                drawn.tick();
            });
            Running {
                bar: Some(bar),
                ticker,
            }
        } else {
            let label = label.to_owned();
            let ticker = Ticker::spawn(LINE_EVERY, move || {
                eprintln!("{}", counter_line(&label, started.elapsed(), &status()));
            });
            Running { bar: None, ticker }
        };
        let old = self.slot().replace(running);
        drop(old);
    }

    /// Stops the updates and clears the status line, so what follows prints cleanly. Any
    /// clone may stop it; stopping twice is harmless.
    pub fn stop(&self) {
        let running = self.slot().take();
        drop(running);
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        // A panic while drawing leaves nothing half-done worth refusing.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.ticker.stop();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The plain line: `capture 1 min 30 s: packets 1200, connections 10, ...`.
fn counter_line(label: &str, elapsed: Duration, status: &str) -> String {
    format!("{label} {}: {status}", format::duration(elapsed))
}

/// A capture's counts so far, published by the capture loop after every packet (relaxed
/// stores, no lock) and read by the live status line.
#[derive(Debug, Default)]
pub struct CaptureCounters {
    packets: AtomicU64,
    connections: AtomicU64,
    exchanges: AtomicU64,
    dropped: AtomicU64,
}

impl CaptureCounters {
    /// Takes the counts from the capture's statistics.
    pub fn record(&self, s: &CaptureStats) {
        self.packets.store(s.packets, Ordering::Relaxed);
        self.connections.store(s.connections, Ordering::Relaxed);
        self.exchanges.store(s.exchanges, Ordering::Relaxed);
        self.dropped.store(dropped(s), Ordering::Relaxed);
    }

    /// `packets 1200, connections 10, exchanges 400, dropped 0`.
    pub fn status(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "packets {}, connections {}, exchanges {}, dropped {}",
            get(&self.packets),
            get(&self.connections),
            get(&self.exchanges),
            get(&self.dropped)
        )
    }
}

/// Messages and packets lost to the recording: what the kernel dropped (as far as known yet),
/// messages lost in gaps or over the size limit, and requests on connections dropped at a
/// limit. The end-of-run report breaks them down.
fn dropped(s: &CaptureStats) -> u64 {
    s.kernel_drops + s.lost_messages + s.too_large + s.limit_dropped_requests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_line_has_label_time_and_status() {
        assert_eq!(
            counter_line("shadow", Duration::from_secs(90), "requests 3"),
            "shadow 1 min 30 s: requests 3"
        );
    }

    #[test]
    fn the_template_is_valid() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }

    #[test]
    fn capture_counters_show_what_the_capture_counted() {
        let c = CaptureCounters::default();
        assert_eq!(
            c.status(),
            "packets 0, connections 0, exchanges 0, dropped 0"
        );
        c.record(&CaptureStats {
            packets: 1200,
            connections: 10,
            exchanges: 400,
            kernel_drops: 1,
            lost_messages: 2,
            too_large: 3,
            limit_dropped_requests: 4,
            ..CaptureStats::default()
        });
        assert_eq!(
            c.status(),
            "packets 1200, connections 10, exchanges 400, dropped 10"
        );
    }

    #[test]
    fn quiet_counters_start_nothing() {
        let c = LiveCounters::spawn(true, "capture", || unreachable!("never drawn"));
        assert!(c.slot().is_none());
        c.stop();
    }

    #[test]
    fn any_clone_stops_the_line_and_stopping_twice_is_harmless() {
        let c = LiveCounters::spawn(false, "capture", String::new);
        assert!(c.slot().is_some());
        let clone = c.clone();
        clone.stop();
        assert!(c.slot().is_none());
        c.stop();
    }
}

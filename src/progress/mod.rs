//! Progress of a long run on stderr: a live bar when stderr is a terminal, a plain line every
//! ten seconds otherwise (CI logs keep every line, so a redrawn bar would fill them with
//! escape codes), nothing with `--quiet`.
//!
//! Everything drawn comes from a ticker thread reading atomics: the replay's hot path
//! ([`Progress::observe`], 50k+ calls a second) only counts, with no clock read, no lock and
//! no allocation. The one exception is the early-failure warning, printed at once from the
//! hot path because it is rare and urgent.

mod format;
mod live;
mod tally;

pub use live::{CaptureCounters, LiveCounters};

use crate::observation::Observation;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tally::Tally;

/// How often a plain progress line is written when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(10);
/// How often the terminal bar takes the counts (indicatif limits the redraws itself).
const BAR_EVERY: Duration = Duration::from_millis(100);

/// Prints the one line a long command starts with (what it does, to what, at what pace),
/// unless `quiet`: without it a run that takes minutes looks stuck from its first second.
pub fn start_line(quiet: bool, text: &str) {
    if !quiet {
        eprintln!("{text}");
    }
}

/// Counts a replay's observations as they arrive and shows the exchanges done.
pub struct Progress {
    tally: Tally,
    counts: Arc<Counts>,
    display: Display,
}

/// What the hot path publishes for the ticker.
#[derive(Default)]
struct Counts {
    exchanges: AtomicU64,
    without_answer: AtomicU64,
}

enum Display {
    Quiet,
    Bar(ProgressBar, Ticker),
    Lines(Ticker),
}

impl Progress {
    /// A bar on a terminal, periodic lines elsewhere, or nothing when `quiet`.
    /// `total_exchanges` gives the bar its length and the ETA (a spinner without it);
    /// `targets` are the names observations come from, so that an exchange counts once every
    /// target has answered it.
    pub fn new(quiet: bool, total_exchanges: Option<u64>, targets: Vec<String>) -> Self {
        let counts = Arc::new(Counts::default());
        let display = if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = new_bar(total_exchanges);
            let ticker = bar_ticker(bar.clone(), Arc::clone(&counts));
            Display::Bar(bar, ticker)
        } else {
            Display::Lines(line_ticker(total_exchanges, Arc::clone(&counts)))
        };
        Progress {
            tally: Tally::new(&targets),
            counts,
            display,
        }
    }

    /// Counts one observation; names a target at once when its first requests all failed.
    pub fn observe(&mut self, obs: &Observation) {
        if matches!(self.display, Display::Quiet) {
            return;
        }
        if let Some(warning) = self.tally.observe(obs) {
            match &self.display {
                Display::Bar(bar, _) => bar.suspend(|| eprintln!("{warning}")),
                _ => eprintln!("{warning}"),
            }
        }
        // Single writer: plain stores, read by the ticker.
        let c = &self.counts;
        c.exchanges.store(self.tally.exchanges(), Ordering::Relaxed);
        c.without_answer
            .store(self.tally.without_answer(), Ordering::Relaxed);
    }

    /// Stops the display and removes the bar, so the summary prints cleanly.
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        match &mut self.display {
            Display::Quiet => {}
            Display::Bar(bar, ticker) => {
                ticker.stop();
                bar.finish_and_clear();
            }
            Display::Lines(ticker) => ticker.stop(),
        }
    }
}

const BAR_TEMPLATE: &str = "{spinner} [{bar:30}] {pos}/{len} exchanges, {rate}/s, ETA {left}{msg}";
const SPINNER_TEMPLATE: &str = "{spinner} {elapsed} {pos} exchanges, {rate}/s{msg}";

/// The terminal bar: `[####    ] 3400/10000 exchanges, 283/s, ETA 23 s`, or a spinner with
/// the count and rate while the total is unknown.
fn new_bar(total: Option<u64>) -> ProgressBar {
    let template = if total.is_some() {
        BAR_TEMPLATE
    } else {
        SPINNER_TEMPLATE
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#>-")
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&format::rate(s.per_sec()));
        })
        .with_key("left", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&format::duration(s.eta()));
        });
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    bar.set_style(style);
    bar
}

fn bar_ticker(bar: ProgressBar, counts: Arc<Counts>) -> Ticker {
    let mut shown_failures = 0;
    Ticker::spawn(BAR_EVERY, move || {
        let failures = counts.without_answer.load(Ordering::Relaxed);
        if failures != shown_failures {
            shown_failures = failures;
            bar.set_message(format!(", {failures} without answer"));
        }
        // Redraws even when nothing moved, so a stalled run shows its spinner and clock.
        bar.set_position(counts.exchanges.load(Ordering::Relaxed));
    })
}

fn line_ticker(total: Option<u64>, counts: Arc<Counts>) -> Ticker {
    let started = Instant::now();
    Ticker::spawn(LINE_EVERY, move || {
        eprintln!(
            "{}",
            format::status_line(
                started.elapsed(),
                counts.exchanges.load(Ordering::Relaxed),
                total,
                counts.without_answer.load(Ordering::Relaxed),
            )
        );
    })
}

/// A thread calling `tick` every `every` until stopped: the one place progress is drawn
/// from, so a stalled run still shows its clock moving.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn spawn(every: Duration, mut tick: impl FnMut() + Send + 'static) -> Ticker {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("nprt-progress".into())
            .spawn(move || {
                // Ends when the sender is dropped (or sends).
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    tick();
                }
            })
            // No thread, no progress: the run itself goes on.
            .ok();
        Ticker {
            stop: Some(stop),
            thread,
        }
    }

    /// Stops the thread and waits for it, so nothing is drawn after this returns.
    fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn the_ticker_ticks_until_stopped_and_not_after() {
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ticks);
        let mut ticker = Ticker::spawn(Duration::from_millis(5), move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while ticks.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        ticker.stop();
        let at_stop = ticks.load(Ordering::SeqCst);
        assert!(at_stop >= 3, "ticked {at_stop} times");
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ticks.load(Ordering::SeqCst), at_stop, "ticked after stop");
    }

    #[test]
    fn the_bar_templates_are_valid() {
        // An invalid template would silently fall back to indicatif's default.
        for template in [BAR_TEMPLATE, SPINNER_TEMPLATE] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn quiet_progress_counts_nothing_and_starts_no_thread() {
        let mut p = Progress::new(true, Some(10), vec!["a".into()]);
        let obs = Observation {
            id: "1".into(),
            target: "a".into(),
            route: "GET /".into(),
            method: "GET".into(),
            status: None,
            latency_us: 1,
            bytes: 0,
            error: Some("refused".into()),
            at_ms: None,
            grpc_status: None,
        };
        for _ in 0..10 {
            p.observe(&obs);
        }
        assert!(matches!(p.display, Display::Quiet));
        assert_eq!(p.counts.exchanges.load(Ordering::Relaxed), 0);
    }
}

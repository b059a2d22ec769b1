//! Progress of a long run on stderr: a live bar when stderr is a terminal, a plain line every
//! ten seconds otherwise (CI logs), nothing with `--quiet`.

use crate::observation::Observation;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

const LINE_EVERY: Duration = Duration::from_secs(10);

/// Counts observations as they arrive and shows them.
pub struct Progress {
    mode: Mode,
    started: Instant,
    observations: u64,
    errors: u64,
}

enum Mode {
    Quiet,
    Bar(ProgressBar),
    Lines { last: Instant },
}

impl Progress {
    /// A bar on a terminal, periodic lines elsewhere, or nothing when `quiet`.
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {elapsed_precise} {pos} observations ({per_sec}) {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Mode::Bar(bar)
        } else {
            Mode::Lines {
                last: Instant::now(),
            }
        };
        Progress {
            mode,
            started: Instant::now(),
            observations: 0,
            errors: 0,
        }
    }

    pub fn observe(&mut self, obs: &Observation) {
        self.observations += 1;
        if obs.status.is_none() {
            self.errors += 1;
        }
        match &mut self.mode {
            Mode::Quiet => {}
            Mode::Bar(bar) => {
                bar.inc(1);
                if obs.status.is_none() {
                    bar.set_message(format!("{} without response", self.errors));
                }
            }
            Mode::Lines { last } => {
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    let secs = self.started.elapsed().as_secs_f64();
                    eprintln!(
                        "{:.0} s: {} observations ({:.0}/s), {} without response",
                        secs,
                        self.observations,
                        self.observations as f64 / secs,
                        self.errors
                    );
                }
            }
        }
    }

    /// Removes the bar so the summary prints cleanly.
    pub fn finish(self) {
        if let Mode::Bar(bar) = self.mode {
            bar.finish_and_clear();
        }
    }
}

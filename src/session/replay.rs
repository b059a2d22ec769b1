//! The replay run shared by `nprt replay`, scenarios and the demo: recording → targets →
//! observations → progress → comparison, with its output files, and Ctrl-C handled so that
//! what was observed is kept.

use super::output::{check_output_file, AtomicFile};
use super::Failure;
use crate::compare::summary::HistogramSummary;
use crate::compare::{Comparison, Verdict};
use crate::observation::{self, Observation};
use crate::recording::{GorReader, ReadOptions};
use crate::replay::{Passes, ReplayOptions, ReplaySummary};
use std::future::Future;
use std::path::{Path, PathBuf};

fn read_options(skip_bad: bool) -> ReadOptions {
    ReadOptions {
        skip_bad,
        ..ReadOptions::default()
    }
}

/// Opens a recording for reading; every problem is bad input naming the file.
pub fn open_recording(path: &Path, skip_bad: bool) -> Result<GorReader, Failure> {
    GorReader::open(path, read_options(skip_bad)).map_err(Failure::bad_input)
}

/// A replay source that yields `first` and then reopens `path` for each further pass.
pub fn recording_source(first: GorReader, path: PathBuf, skip_bad: bool) -> Passes {
    let mut first = Some(first);
    Box::new(move || {
        let reader = match first.take() {
            Some(reader) => reader,
            None => GorReader::open(&path, read_options(skip_bad))?,
        };
        Ok(Box::new(reader) as crate::replay::Exchanges)
    })
}

/// Recordings larger than this are not read twice to count them: the bar then shows a count
/// and a rate without a total.
const COUNT_AT_MOST: u64 = 1 << 30;

/// How many exchanges a replay of `path` will send: those its filter admits, up to its
/// limit; with `--loop`, the limit alone. Reads the recording once more (up to
/// [`COUNT_AT_MOST`] bytes of file), which costs little beside sending it; a recording that
/// turns out unreadable is left for the run to report.
pub fn planned_exchanges(path: &Path, skip_bad: bool, options: &ReplayOptions) -> Option<u64> {
    if options.looping {
        return options.limit;
    }
    if std::fs::metadata(path).ok()?.len() > COUNT_AT_MOST {
        return options.limit;
    }
    let reader = open_recording(path, skip_bad).ok()?;
    let mut admitted = 0u64;
    for exchange in reader {
        if options.filter.check(&exchange.ok()?).is_ok() {
            admitted += 1;
            if options.limit.is_some_and(|limit| admitted >= limit) {
                break;
            }
        }
    }
    Some(admitted)
}

/// The line a replay starts with: what goes where, how fast.
fn start_text(options: &ReplayOptions, total: Option<u64>) -> String {
    use crate::replay::Pacing;
    let names: Vec<&str> = options.targets.iter().map(|t| t.name.as_str()).collect();
    let pace = match options.pacing {
        Pacing::Original { speed: 1.0 } => "at the recorded pace".to_owned(),
        Pacing::Original { speed } => format!("at {speed}× the recorded pace"),
        Pacing::Rate { per_second } => format!("at {per_second} exchanges/s"),
        Pacing::Max { concurrency } => format!("as fast as they answer, {concurrency} in flight"),
    };
    let count = total.map_or_else(|| "the exchanges".to_owned(), |n| format!("{n} exchanges"));
    let until = options.duration.map_or_else(String::new, |d| {
        format!(" for at most {}", crate::spec::Span(d))
    });
    format!("replaying {count} to {} {pace}{until}", names.join(", "))
}

/// One replay with its outputs: the observations file and the histogram summary (each written
/// when the replay ends, completed or interrupted), and the comparison fed as observations
/// arrive.
pub struct ReplayRun {
    pub options: ReplayOptions,
    pub observations: Option<PathBuf>,
    /// Where to write the histogram summary, if anywhere.
    pub summary: Option<PathBuf>,
    pub comparison: Option<Comparison>,
    pub quiet: bool,
    /// Exchanges the run will send, when known up front: the progress bar's total.
    pub total: Option<u64>,
    /// The judge file's resource metrics, already checked against Prometheus.
    pub resources: Option<super::prometheus::ResourceJudge>,
}

/// What a replay run ended with.
pub struct ReplayDone {
    pub summary: ReplaySummary,
    /// The comparison's verdict; after an interruption, marked so (never a PASS).
    pub verdict: Option<Verdict>,
}

impl ReplayDone {
    pub fn interrupted(&self) -> bool {
        self.summary.interrupted
    }
}

impl ReplayRun {
    /// Checks that the output files can be written; called before anything is sent.
    pub fn check_outputs(&self) -> Result<(), Failure> {
        if let Some(path) = &self.observations {
            check_output_file(path, "observations file")?;
        }
        if let Some(path) = &self.summary {
            check_output_file(path, "summary file")?;
        }
        Ok(())
    }

    /// Runs the replay until the recording (or its limit or duration) ends or `interrupt`
    /// resolves; then answers in flight get [`crate::replay::STOP_GRACE`], and the outputs
    /// are written either way.
    pub async fn execute(
        self,
        source: Passes,
        interrupt: impl Future<Output = ()>,
    ) -> Result<ReplayDone, Failure> {
        self.check_outputs()?;
        let mut file = match &self.observations {
            Some(path) => Some(AtomicFile::create(path)?),
            None => None,
        };
        let mut comparison = self.comparison;
        let mut write_error: Option<std::io::Error> = None;
        let names = self
            .options
            .targets
            .iter()
            .map(|t| t.name.clone())
            .collect();
        crate::progress::start_line(self.quiet, &start_text(&self.options, self.total));
        let mut progress = crate::progress::Progress::new(self.quiet, self.total, names);
        let mut histograms = self.summary.as_ref().map(|_| HistogramSummary::default());
        let stop = self.options.stop.clone();
        let result = {
            let replay = crate::replay::run(source, &self.options, |obs: &Observation| {
                progress.observe(obs);
                if let Some(h) = histograms.as_mut() {
                    h.add(obs);
                }
                if let Some(c) = comparison.as_mut() {
                    c.add(obs);
                }
                if let (Some(f), None) = (file.as_mut(), &write_error) {
                    if let Err(e) = observation::write_line(f.writer(), obs) {
                        write_error = Some(e);
                    }
                }
            });
            tokio::pin!(replay);
            tokio::pin!(interrupt);
            tokio::select! {
                result = &mut replay => result,
                () = &mut interrupt => {
                    stop.stop();
                    replay.await
                }
            }
        };
        progress.finish();
        let summary = result.map_err(|e| match e {
            crate::replay::ReplayError::Task(_) => Failure::runtime(e),
            _ => Failure::bad_input(e),
        })?;
        if let Some(e) = write_error {
            return Err(Failure::bad_input(e));
        }
        if let Some(f) = file {
            f.commit()?;
        }
        if let (Some(path), Some(histograms)) = (&self.summary, histograms) {
            super::output::write_file(path, histograms.to_json().as_bytes())?;
        }
        let mut verdict = comparison.as_ref().map(Comparison::verdict);
        if let (Some(v), Some(c), Some(judge)) = (verdict.as_mut(), &comparison, &self.resources) {
            if !self.quiet {
                eprintln!(
                    "querying Prometheus for {} resource metric(s) (waiting {} ms for the last scrapes)",
                    judge.config().metrics.len(),
                    judge.config().settle_ms
                );
            }
            judge.apply(v, c.timeline()).await;
        }
        if let (Some(v), true) = (verdict.as_mut(), summary.interrupted) {
            mark_interrupted(v, &summary);
        }
        Ok(ReplayDone { summary, verdict })
    }
}

/// An interrupted replay's verdict: a regression already seen stays a FAIL; anything else is
/// INCONCLUSIVE, never a PASS on part of the traffic.
fn mark_interrupted(verdict: &mut Verdict, summary: &ReplaySummary) {
    use crate::compare::Outcome;
    if verdict.outcome == Outcome::Pass {
        verdict.outcome = Outcome::Inconclusive;
    }
    verdict.notes.insert(
        0,
        format!(
            "interrupted (Ctrl-C or SIGTERM) after {} exchanges sent: judged on what was observed until then",
            summary.sent
        ),
    );
}

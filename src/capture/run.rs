//! A whole capture run: packets from an engine through [`Capture`] into a `.gor`
//! recording, which appears under its name only when the run completes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::error::CaptureError;
use super::pcap::{self, FileStats};
use super::{Capture, CaptureStats, Limits};
use crate::recording::{Exchange, GorWriter, RecordKind, RecordingError};

/// Exchanges held back to write them in order of their start: they finish in another
/// order (a long download finishes after many short requests that began later).
const REORDER: usize = 4096;

/// An exchange ordered by start time, then by arrival.
struct ByStart(u64, u64, Exchange);

impl PartialEq for ByStart {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}
impl Eq for ByStart {}
impl PartialOrd for ByStart {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByStart {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

/// What to capture and where to write it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Server ports whose traffic is captured.
    pub ports: Vec<u16>,
    pub limits: Limits,
    pub output: PathBuf,
    /// Stop after writing this many exchanges.
    pub max_exchanges: Option<u64>,
    /// Redact secrets from what is written (`--redact`); `None` keeps the bytes as
    /// captured, so the requests replay exactly.
    pub redact: Option<crate::redact::Redactor>,
    /// Counts published after every packet for a live status line.
    pub counters: Option<std::sync::Arc<crate::progress::CaptureCounters>>,
}

/// The outcome of a run, printed at its end.
#[derive(Debug, Clone)]
pub struct Report {
    pub stats: CaptureStats,
    /// For a file: what reading it found.
    pub file: Option<FileStats>,
    /// Exchanges written to the recording.
    pub written: u64,
    /// Exchanges that could not be stored in `.gor` (payload contains its separator).
    pub unrepresentable: u64,
    /// Exchanges captured after `--max-exchanges` was reached, not written.
    pub over_limit: u64,
    pub output: PathBuf,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.stats)?;
        if let Some(file) = &self.file {
            write!(
                f,
                "{}: {} records, {} unknown blocks skipped, {} packets of unsupported link types",
                file.format, file.records, file.unknown_blocks, file.unsupported_link_packets
            )?;
            if let Some(at) = file.truncated_at {
                write!(
                    f,
                    "; file cut inside a record at byte {at} (record skipped)"
                )?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "wrote {} exchanges to {} ({} not representable in .gor, {} over --max-exchanges)",
            self.written,
            self.output.display(),
            self.unrepresentable,
            self.over_limit
        )
    }
}

/// The recording being written.
pub(crate) struct Sink {
    gor: GorWriter,
    redact: Option<crate::redact::Redactor>,
    counters: Option<std::sync::Arc<crate::progress::CaptureCounters>>,
    held: BinaryHeap<Reverse<ByStart>>,
    arrivals: u64,
    max: u64,
    written: u64,
    unrepresentable: u64,
    over_limit: u64,
}

impl Sink {
    pub(crate) fn create(opts: &Options) -> Result<Self, CaptureError> {
        Ok(Self {
            gor: GorWriter::create(&opts.output)?,
            redact: opts.redact.clone(),
            counters: opts.counters.clone(),
            held: BinaryHeap::new(),
            arrivals: 0,
            max: opts.max_exchanges.unwrap_or(u64::MAX),
            written: 0,
            unrepresentable: 0,
            over_limit: 0,
        })
    }

    /// Whether `--max-exchanges` is reached (counting those held for ordering).
    pub(crate) fn is_full(&self) -> bool {
        self.written + self.held.len() as u64 >= self.max
    }

    /// Takes what the capture finished; writes the oldest once enough are held.
    pub(crate) fn drain(&mut self, cap: &mut Capture) -> Result<(), CaptureError> {
        if let Some(counters) = &self.counters {
            counters.record(cap.stats());
        }
        for ex in cap.take_exchanges() {
            if self.is_full() {
                self.over_limit += 1;
                continue;
            }
            self.arrivals += 1;
            self.held.push(Reverse(ByStart(
                ex.exchange.start_ns,
                self.arrivals,
                ex.exchange,
            )));
            if self.held.len() > REORDER {
                self.write_oldest()?;
            }
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> Result<(), CaptureError> {
        let Some(Reverse(ByStart(_, _, ex))) = self.held.pop() else {
            return Ok(());
        };
        match self.write(&ex) {
            Ok(()) => self.written += 1,
            Err(RecordingError::Unrepresentable { .. }) => self.unrepresentable += 1,
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// The response record goes first: a reader that pairs by id then has it waiting when
    /// the request comes, however far the request is from its neighbours in time.
    fn write(&mut self, ex: &Exchange) -> Result<(), RecordingError> {
        if !crate::recording::gor::is_representable(&ex.request)
            || ex
                .response
                .as_ref()
                .is_some_and(|r| !crate::recording::gor::is_representable(&r.bytes))
        {
            return Err(RecordingError::Unrepresentable {
                file: String::new(),
                id: ex.id.to_string(),
                reason: "the payload contains the record separator",
            });
        }
        if let Some(res) = &ex.response {
            let bytes = scrub(self.redact.as_ref(), &res.bytes);
            self.gor.write_record(
                RecordKind::Response,
                &ex.id,
                ex.start_ns.saturating_add(res.latency_ns),
                res.latency_ns,
                &bytes,
            )?;
        }
        let request = scrub(self.redact.as_ref(), &ex.request);
        self.gor
            .write_record(RecordKind::Request, &ex.id, ex.start_ns, 0, &request)
    }

    pub(crate) fn finish(
        mut self,
        mut cap: Capture,
        file: Option<FileStats>,
    ) -> Result<Report, CaptureError> {
        cap.finish();
        self.drain(&mut cap)?;
        while !self.held.is_empty() {
            self.write_oldest()?;
        }
        let output = self.gor.finish()?;
        Ok(Report {
            stats: cap.stats().clone(),
            file,
            written: self.written,
            unrepresentable: self.unrepresentable,
            over_limit: self.over_limit,
            output,
        })
    }
}

/// The bytes to write: redacted when asked to.
fn scrub<'a>(
    redact: Option<&crate::redact::Redactor>,
    bytes: &'a [u8],
) -> std::borrow::Cow<'a, [u8]> {
    match redact {
        Some(r) => r.message(bytes),
        None => std::borrow::Cow::Borrowed(bytes),
    }
}

/// Captures the exchanges in the pcap or pcapng file at `path`.
///
/// # Errors
/// The file is unreadable or corrupt (nothing is written then), or the recording cannot
/// be written.
pub fn from_file(path: &Path, opts: &Options) -> Result<Report, CaptureError> {
    let mut sink = Sink::create(opts)?;
    let mut cap = Capture::new(opts.ports.clone(), opts.limits.clone());
    let file = pcap::read_file(path, |p| {
        if sink.is_full() {
            return Ok(());
        }
        cap.packet(p.link, p.ts_ns, p.data, p.orig_len);
        sink.drain(&mut cap)
    })?;
    sink.finish(cap, Some(file))
}

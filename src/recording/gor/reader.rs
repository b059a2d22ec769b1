//! Framing: a [`GorReader`] reads the input in chunks, finds each record's separator, and
//! checks the header line, keeping memory bounded by the record size limit; a malformed or
//! oversized record is an error, or counted and stepped over with `skip_bad`. The records go
//! on to `pairing` (for the iterator) or out as they are ([`GorReader::next_raw`]).

use super::pairing::{Pending, Unmatched};
use super::{find_separator, parse_record, RawRecord, Record, READ_CHUNK, SEPARATOR};
use crate::recording::RecordingError;
use flate2::read::MultiGzDecoder;
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

/// Limits and leniency of a [`GorReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// A record (header line and payload) larger than this is an error.
    pub max_record_bytes: usize,
    /// How many requests may wait for their response (and for earlier-starting records)
    /// before the earliest is released; also how many responses may wait for their request.
    pub reorder_window: usize,
    /// Skip and count malformed records instead of failing.
    pub skip_bad: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            max_record_bytes: 64 * 1024 * 1024,
            reorder_window: 10_000,
            skip_bad: false,
        }
    }
}

/// What the reader saw besides the exchanges it yielded.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReadStats {
    /// Bytes of `.gor` data consumed (decompressed for `.gz`).
    pub bytes: u64,
    /// Records framed by a separator, good or bad.
    pub records: u64,
    /// Type-1 records with a parsable request.
    pub requests: u64,
    /// Type-2 records.
    pub responses: u64,
    /// Type-3 records (replayed responses), ignored.
    pub replayed: u64,
    /// Exchanges yielded.
    pub exchanges: u64,
    /// Exchanges yielded with their original response.
    pub paired: u64,
    /// Exchanges yielded without a response (none recorded, unusable, or outside the window).
    pub unanswered: u64,
    /// Final responses whose request never appeared within the window.
    pub orphan_responses: u64,
    /// Type-2 records holding only interim (1xx) responses; the final response is awaited.
    pub interim_responses: u64,
    /// Type-2 records paired with a request but not holding a parsable response head.
    pub bad_responses: u64,
    /// Second requests or final responses with an id already pending; the first one is kept.
    pub duplicates: u64,
    /// Exchanges yielded earlier in time than one already yielded (the window was too small).
    pub late: u64,
    /// Malformed records skipped with `skip_bad`.
    pub skipped: u64,
    /// Of those, records over `max_record_bytes`.
    pub too_large: u64,
}

/// Streams [`Exchange`](crate::recording::Exchange)s out of a `.gor` recording in start-time order.
///
/// Iteration yields `Err` once and then stops, unless `skip_bad` lets it step over a
/// malformed record. [`GorReader::stats`] is complete once iteration has returned `None`.
pub struct GorReader {
    pub(super) name: String,
    pub(super) input: Box<dyn Read + Send>,
    pub(super) opts: ReadOptions,
    pub(super) buf: Vec<u8>,
    /// First unconsumed byte in `buf`.
    pub(super) start: usize,
    /// Where the search for the next separator resumes.
    pub(super) scan: usize,
    /// Stream offset of `buf[0]`.
    pub(super) base: u64,
    /// Discarding an oversized record up to the next separator (`skip_bad`).
    pub(super) resyncing: bool,
    pub(super) eof: bool,
    pub(super) input_done: bool,
    pub(super) stopped: bool,
    pub(super) good_records: u64,
    pub(super) seq: u64,
    /// Requests waiting for their turn, found by id (responses) or by `seq` (release), so
    /// the id is kept once, in the entry, and the order heap holds its hash instead of a
    /// copy. Boxed: the table stays small enough to stay in cache when the window is full.
    pub(super) pending: HashTable<Box<Pending>>,
    pub(super) hasher: DefaultHashBuilder,
    /// (start time, seq, hash of the id) of every pending request, earliest first.
    pub(super) order: BinaryHeap<Reverse<(u64, u64, u64)>>,
    pub(super) unmatched: HashMap<Arc<str>, Unmatched>,
    pub(super) unmatched_order: VecDeque<(Arc<str>, u64)>,
    pub(super) last_start: Option<u64>,
    pub(super) stats: ReadStats,
}

impl GorReader {
    /// Opens a recording; a name ending in `.gz` is read through a gzip decoder.
    ///
    /// # Errors
    /// The file cannot be opened, or a `.gz` file does not start with gzip data.
    pub fn open(path: impl AsRef<Path>, opts: ReadOptions) -> Result<Self, RecordingError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| RecordingError::Open {
            file: name.clone(),
            source,
        })?;
        Self::from_reader(file, name, opts)
    }

    /// Reads a recording from any byte source; `name` is used in errors, and a name ending
    /// in `.gz` means the bytes are gzip.
    ///
    /// # Errors
    /// A `.gz` source that does not start with gzip data, or an I/O error while checking.
    pub fn from_reader<R: Read + Send + 'static>(
        reader: R,
        name: impl Into<String>,
        opts: ReadOptions,
    ) -> Result<Self, RecordingError> {
        let name = name.into();
        let input: Box<dyn Read + Send> = if name.ends_with(".gz") {
            let mut peek = BufReader::with_capacity(READ_CHUNK, reader);
            // One look at the first read is enough: a gzip stream starts with its magic.
            let head = peek.fill_buf().map_err(|source| RecordingError::Io {
                file: name.clone(),
                offset: 0,
                source,
            })?;
            match head.len() {
                // Nothing at all: let the reader report an empty recording.
                0 => Box::new(peek),
                _ if peek.buffer().starts_with(&[0x1f, 0x8b]) => {
                    Box::new(MultiGzDecoder::new(peek))
                }
                _ => return Err(RecordingError::NotGzip { file: name }),
            }
        } else {
            Box::new(reader)
        };
        Ok(Self {
            name,
            input,
            opts,
            buf: Vec::new(),
            start: 0,
            scan: 0,
            base: 0,
            resyncing: false,
            eof: false,
            input_done: false,
            stopped: false,
            good_records: 0,
            seq: 0,
            pending: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            order: BinaryHeap::new(),
            unmatched: HashMap::new(),
            unmatched_order: VecDeque::new(),
            last_start: None,
            stats: ReadStats::default(),
        })
    }

    /// The name used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counts so far; final once iteration has ended.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// The next record in file order, unpaired and unparsed beyond its header line; malformed
    /// records are skipped and counted under `skip_bad`. Use either this or the iterator on
    /// one reader, not both.
    ///
    /// # Errors
    /// A malformed record, an I/O error, or a stream without any record.
    pub fn next_raw(&mut self) -> Result<Option<Record>, RecordingError> {
        match self.next_record()? {
            Some(r) => {
                self.good_records += 1;
                Ok(Some(Record {
                    kind: r.kind,
                    id: r.id.to_string(),
                    ts_ns: r.ts_ns,
                    latency_ns: r.latency_ns,
                    payload: r.payload,
                    offset: r.offset,
                }))
            }
            None if self.good_records == 0 => Err(RecordingError::Empty {
                file: self.name.clone(),
                offset: self.stats.bytes,
            }),
            None => Ok(None),
        }
    }

    /// The next record framed by a separator, `None` at a clean end of data.
    pub(super) fn next_record(&mut self) -> Result<Option<RawRecord>, RecordingError> {
        loop {
            if let Some(pos) = find_separator(&self.buf[self.scan..]) {
                let sep_at = self.scan + pos;
                let offset = self.base + self.start as u64;
                let (from, to) = (self.start, sep_at);
                self.start = sep_at + SEPARATOR.len();
                self.scan = self.start;
                self.stats.bytes = self.base + self.start as u64;
                self.stats.records += 1;
                if self.resyncing {
                    self.resyncing = false;
                    self.stats.skipped += 1;
                    self.stats.too_large += 1;
                    continue;
                }
                if to - from > self.opts.max_record_bytes {
                    self.record_error(RecordingError::TooLarge {
                        file: self.name.clone(),
                        offset,
                        limit: self.opts.max_record_bytes,
                    })?;
                    continue;
                }
                match parse_record(&self.buf[from..to], offset) {
                    Ok(rec) => return Ok(Some(rec)),
                    Err(reason) => {
                        let file = self.name.clone();
                        self.record_error(RecordingError::BadHeader {
                            file,
                            offset,
                            reason,
                        })?;
                        continue;
                    }
                }
            }
            // The separator may straddle the end of what has been read: rescan its length.
            self.scan = self
                .start
                .max(self.buf.len().saturating_sub(SEPARATOR.len() - 1));
            let unconsumed = self.buf.len() - self.start;
            if unconsumed > self.opts.max_record_bytes.saturating_add(SEPARATOR.len()) {
                let offset = self.base + self.start as u64;
                if !self.opts.skip_bad {
                    return Err(RecordingError::TooLarge {
                        file: self.name.clone(),
                        offset,
                        limit: self.opts.max_record_bytes,
                    });
                }
                // Drop what cannot be a separator yet, keeping memory bounded.
                self.resyncing = true;
                self.start = self.scan;
            }
            if self.eof {
                return self.at_end();
            }
            self.fill()?;
        }
    }

    /// End of input with bytes left over: a record without its separator.
    fn at_end(&mut self) -> Result<Option<RawRecord>, RecordingError> {
        let rest = &self.buf[self.start..];
        let offset = self.base + self.start as u64;
        let blank = rest.iter().all(u8::is_ascii_whitespace);
        let was_resyncing = std::mem::take(&mut self.resyncing);
        self.start = self.buf.len();
        self.scan = self.start;
        self.stats.bytes = self.base + self.start as u64;
        if was_resyncing {
            self.stats.skipped += 1;
            self.stats.too_large += 1;
        } else if !blank {
            // Trailing whitespace is tolerated: editors and `echo >>` leave it behind.
            self.record_error(RecordingError::Truncated {
                file: self.name.clone(),
                offset,
            })?;
        }
        Ok(None)
    }

    /// Counts a malformed record under `skip_bad`, or returns it as the error.
    fn record_error(&mut self, err: RecordingError) -> Result<(), RecordingError> {
        if self.opts.skip_bad && err.is_record_error() {
            self.stats.skipped += 1;
            if matches!(err, RecordingError::TooLarge { .. }) {
                self.stats.too_large += 1;
            }
            Ok(())
        } else {
            Err(err)
        }
    }

    fn fill(&mut self) -> Result<(), RecordingError> {
        if self.start > 0 {
            // Only the tail of one unfinished record is moved, never the whole buffer.
            self.buf.drain(..self.start);
            self.base += self.start as u64;
            self.scan -= self.start;
            self.start = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let read = loop {
            match self.input.read(&mut self.buf[len..]) {
                Ok(n) => break Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
        };
        match read {
            Ok(n) => {
                self.buf.truncate(len + n);
                self.eof = n == 0;
                Ok(())
            }
            Err(source) => {
                self.buf.truncate(len);
                Err(RecordingError::Io {
                    file: self.name.clone(),
                    offset: self.base + len as u64,
                    source,
                })
            }
        }
    }
}

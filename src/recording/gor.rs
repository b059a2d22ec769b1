//! GoReplay `.gor` recordings: a streaming reader that turns records into [`Exchange`]s in
//! start-time order, and a writer whose files GoReplay opens unchanged.
//!
//! A record is a header line `<type> <id> <unix-ns> <latency-ns>\n` (type `1` request,
//! `2` original response, `3` replayed response), the raw HTTP bytes, and [`SEPARATOR`].
//! Files written by GoReplay are not in time order and carry its capture warts (orphan
//! responses, interim `100 Continue` records, lost requests), so the reader pairs request and
//! response by id inside a bounded reorder window and counts what it cannot pair in
//! [`ReadStats`]. Memory is bounded by `reorder_window × max_record_bytes`, never by file size.

use super::{Exchange, RecordedResponse, RecordingError};
use crate::http::{parse_request_head, parse_response_head, HttpError, RequestHead, ResponseHead};
use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The bytes that end every record: `"\n🐵🙈🙉\n"`.
pub const SEPARATOR: &[u8] = b"\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n";

/// How much is read from the input at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Longest record id accepted; GoReplay writes 24 or 40 hex chars.
const MAX_ID_LEN: usize = 128;

/// The type digit of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// `1`: a request as the recorded service received it.
    Request,
    /// `2`: the response the recorded service gave.
    Response,
    /// `3`: a response GoReplay got when it replayed the request; nprt does not use these.
    Replayed,
}

impl RecordKind {
    fn digit(self) -> u8 {
        match self {
            Self::Request => b'1',
            Self::Response => b'2',
            Self::Replayed => b'3',
        }
    }
}

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

/// One framed record before pairing.
struct RawRecord {
    offset: u64,
    kind: RecordKind,
    id: Arc<str>,
    ts_ns: u64,
    latency_ns: u64,
    payload: Bytes,
}

/// One record as the file holds it, for tools that copy a recording record by record
/// (`nprt redact`): file order, no pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: RecordKind,
    pub id: String,
    pub ts_ns: u64,
    /// The latency field; a negative one (older GoReplay) or a missing one reads as 0.
    pub latency_ns: u64,
    pub payload: Bytes,
    /// Byte offset of the record in the (decompressed) stream.
    pub offset: u64,
}

/// A request waiting for its response and for its turn.
struct Pending {
    id: Arc<str>,
    seq: u64,
    start_ns: u64,
    request: Bytes,
    head: RequestHead,
    response: Option<RecordedResponse>,
}

/// A response that arrived before its request.
struct Unmatched {
    seq: u64,
    ts_ns: u64,
    response: Option<(Bytes, ResponseHead)>,
}

/// What a type-2 payload holds.
enum ResponseClass {
    /// Only interim 1xx heads: the final response is still to come.
    Interim,
    /// The final response, from its head on (interim heads before it are dropped).
    Final(Bytes, ResponseHead),
    /// Not a complete response head at all.
    Unparsable,
}

/// Streams [`Exchange`]s out of a `.gor` recording in start-time order.
///
/// Iteration yields `Err` once and then stops, unless `skip_bad` lets it step over a
/// malformed record. [`GorReader::stats`] is complete once iteration has returned `None`.
pub struct GorReader {
    name: String,
    input: Box<dyn Read + Send>,
    opts: ReadOptions,
    buf: Vec<u8>,
    /// First unconsumed byte in `buf`.
    start: usize,
    /// Where the search for the next separator resumes.
    scan: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Discarding an oversized record up to the next separator (`skip_bad`).
    resyncing: bool,
    eof: bool,
    input_done: bool,
    stopped: bool,
    good_records: u64,
    seq: u64,
    /// Requests waiting for their turn, found by id (responses) or by `seq` (release), so
    /// the id is kept once, in the entry, and the order heap holds its hash instead of a
    /// copy. Boxed: the table stays small enough to stay in cache when the window is full.
    pending: HashTable<Box<Pending>>,
    hasher: DefaultHashBuilder,
    /// (start time, seq, hash of the id) of every pending request, earliest first.
    order: BinaryHeap<Reverse<(u64, u64, u64)>>,
    unmatched: HashMap<Arc<str>, Unmatched>,
    unmatched_order: VecDeque<(Arc<str>, u64)>,
    last_start: Option<u64>,
    stats: ReadStats,
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
    fn next_record(&mut self) -> Result<Option<RawRecord>, RecordingError> {
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

    fn process(&mut self, rec: RawRecord) -> Result<(), RecordingError> {
        self.seq += 1;
        match rec.kind {
            RecordKind::Request => self.on_request(rec)?,
            RecordKind::Response => self.on_response(rec),
            RecordKind::Replayed => self.stats.replayed += 1,
        }
        self.good_records += 1;
        Ok(())
    }

    fn on_request(&mut self, rec: RawRecord) -> Result<(), RecordingError> {
        let head = match parse_request_head(&rec.payload) {
            Ok(Some(head)) => head,
            Ok(None) => {
                return Err(RecordingError::BadRequest {
                    file: self.name.clone(),
                    offset: rec.offset,
                    source: HttpError::Head("incomplete request head".into()),
                })
            }
            Err(source) => {
                return Err(RecordingError::BadRequest {
                    file: self.name.clone(),
                    offset: rec.offset,
                    source,
                })
            }
        };
        self.stats.requests += 1;
        let hash = self.hasher.hash_one(&rec.id);
        if self.pending.find(hash, |p| p.id == rec.id).is_some() {
            self.stats.duplicates += 1;
            return Ok(());
        }
        let mut response = None;
        if let Some(early) = self.unmatched.remove(&rec.id) {
            match early.response {
                Some((bytes, head)) => {
                    response = Some(RecordedResponse {
                        bytes,
                        head,
                        latency_ns: early.ts_ns.saturating_sub(rec.ts_ns),
                    });
                }
                None => self.stats.bad_responses += 1,
            }
        }
        let pending = Box::new(Pending {
            id: rec.id,
            seq: self.seq,
            start_ns: rec.ts_ns,
            request: rec.payload,
            head,
            response,
        });
        self.order.push(Reverse((rec.ts_ns, self.seq, hash)));
        let hasher = &self.hasher;
        self.pending
            .insert_unique(hash, pending, |p| hasher.hash_one(&p.id));
        Ok(())
    }

    fn on_response(&mut self, rec: RawRecord) {
        self.stats.responses += 1;
        let response = match classify_response(&rec.payload) {
            ResponseClass::Interim => {
                self.stats.interim_responses += 1;
                return;
            }
            ResponseClass::Final(bytes, head) => Some((bytes, head)),
            ResponseClass::Unparsable => None,
        };
        let hash = self.hasher.hash_one(&rec.id);
        if let Some(pending) = self.pending.find_mut(hash, |p| p.id == rec.id) {
            match (response, &pending.response) {
                (_, Some(_)) => self.stats.duplicates += 1,
                (Some((bytes, head)), None) => {
                    pending.response = Some(RecordedResponse {
                        bytes,
                        head,
                        latency_ns: rec.ts_ns.saturating_sub(pending.start_ns),
                    });
                }
                (None, None) => self.stats.bad_responses += 1,
            }
            return;
        }
        if self.unmatched.contains_key(&rec.id) {
            self.stats.duplicates += 1;
            return;
        }
        self.unmatched_order.push_back((rec.id.clone(), self.seq));
        self.unmatched.insert(
            rec.id,
            Unmatched {
                seq: self.seq,
                ts_ns: rec.ts_ns,
                response,
            },
        );
        self.evict_unmatched();
    }

    /// Keeps early responses within the window: the oldest one gives up as an orphan.
    fn evict_unmatched(&mut self) {
        while self.unmatched.len() > self.opts.reorder_window {
            let Some((id, seq)) = self.unmatched_order.pop_front() else {
                break;
            };
            if self.unmatched.get(&id).is_some_and(|u| u.seq == seq) {
                self.unmatched.remove(&id);
                self.stats.orphan_responses += 1;
            }
        }
        // Entries of responses that found their request linger in the queue; prune them
        // so the queue stays proportional to the window.
        if self.unmatched_order.len() > 2 * self.opts.reorder_window + 64 {
            let live = &self.unmatched;
            self.unmatched_order
                .retain(|(id, seq)| live.get(id).is_some_and(|u| u.seq == *seq));
        }
    }

    /// The earliest pending exchange, if the window is full or `drain` is set.
    fn release(&mut self, drain: bool) -> Option<Exchange> {
        if !drain && self.pending.len() <= self.opts.reorder_window {
            return None;
        }
        while let Some(Reverse((_, seq, hash))) = self.order.pop() {
            let Ok(entry) = self.pending.find_entry(hash, |p| p.seq == seq) else {
                continue;
            };
            let p = entry.remove().0;
            self.stats.exchanges += 1;
            if p.response.is_some() {
                self.stats.paired += 1;
            } else {
                self.stats.unanswered += 1;
            }
            if self.last_start.is_some_and(|last| p.start_ns < last) {
                self.stats.late += 1;
            }
            self.last_start = Some(self.last_start.map_or(p.start_ns, |l| l.max(p.start_ns)));
            return Some(Exchange {
                id: p.id,
                start_ns: p.start_ns,
                request: p.request,
                request_head: p.head,
                response: p.response,
            });
        }
        None
    }
}

impl Iterator for GorReader {
    type Item = Result<Exchange, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped {
            return None;
        }
        loop {
            if let Some(ex) = self.release(self.input_done) {
                return Some(Ok(ex));
            }
            if self.input_done {
                self.stopped = true;
                return None;
            }
            let step = self
                .next_record()
                .and_then(|rec| rec.map(|rec| self.process(rec)).transpose());
            match step {
                Ok(Some(())) => {}
                Ok(None) => {
                    self.input_done = true;
                    self.stats.orphan_responses += self.unmatched.len() as u64;
                    self.unmatched.clear();
                    self.unmatched_order.clear();
                    if self.good_records == 0 {
                        self.stopped = true;
                        return Some(Err(RecordingError::Empty {
                            file: self.name.clone(),
                            offset: self.stats.bytes,
                        }));
                    }
                }
                Err(e) if self.opts.skip_bad && e.is_record_error() => self.stats.skipped += 1,
                Err(e) => {
                    self.stopped = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Position of the first separator in `hay`.
fn find_separator(hay: &[u8]) -> Option<usize> {
    // Anchor on the 🐵's last byte, which plain text and most bodies never contain.
    const ANCHOR: usize = 4;
    let mut i = ANCHOR;
    while i < hay.len() {
        let p = hay[i..].iter().position(|&b| b == SEPARATOR[ANCHOR])?;
        let at = i + p - ANCHOR;
        if hay.len() - at < SEPARATOR.len() {
            return None;
        }
        if &hay[at..at + SEPARATOR.len()] == SEPARATOR {
            return Some(at);
        }
        i += p + 1;
    }
    None
}

/// Splits a record into header fields and payload.
fn parse_record(record: &[u8], offset: u64) -> Result<RawRecord, String> {
    let (line, payload) = match record.iter().position(|&b| b == b'\n') {
        Some(nl) => (&record[..nl], &record[nl + 1..]),
        None => (record, &[][..]),
    };
    let line = std::str::from_utf8(line).map_err(|_| "header line is not text".to_owned())?;
    // Not a record header, maybe an HTTP line: shown without secrets.
    let shown =
        || crate::redact::Redactor::default().line(&line.chars().take(80).collect::<String>());
    let mut fields = [""; 4];
    let mut count = 0;
    for field in line.split(' ').take(5) {
        if let Some(slot) = fields.get_mut(count) {
            *slot = field;
        }
        count += 1;
    }
    // GoReplay before 1.0 wrote three fields; it has written four since.
    if !(3..=4).contains(&count) {
        return Err(format!(
            "expected `<type> <id> <unix-ns> <latency-ns>`, got {:?}",
            shown()
        ));
    }
    let kind = match fields[0] {
        "1" => RecordKind::Request,
        "2" => RecordKind::Response,
        "3" => RecordKind::Replayed,
        other => return Err(format!("unknown record type {other:?} in {:?}", shown())),
    };
    let id = fields[1];
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("bad record id in {:?}", shown()));
    }
    let ts_ns = fields[2]
        .parse::<u64>()
        .map_err(|_| format!("timestamp {:?} is not a number", fields[2]))?;
    let mut latency_ns = 0;
    if let Some(latency) = fields.get(3).filter(|_| count == 4) {
        // Some GoReplay versions write -1 for "no latency".
        latency_ns = latency
            .parse::<i64>()
            .map_err(|_| format!("latency {latency:?} is not a number"))?
            .max(0)
            .unsigned_abs();
    }
    Ok(RawRecord {
        offset,
        kind,
        id: id.into(),
        ts_ns,
        latency_ns,
        payload: Bytes::copy_from_slice(payload),
    })
}

/// Finds the final response in a type-2 payload, past any interim 1xx heads.
fn classify_response(payload: &Bytes) -> ResponseClass {
    let mut at = 0;
    loop {
        match parse_response_head(&payload[at..]) {
            Ok(Some(head)) if is_interim(head.status) => {
                at += head.head_len;
                if at >= payload.len() {
                    return ResponseClass::Interim;
                }
            }
            Ok(Some(head)) => return ResponseClass::Final(payload.slice(at..), head),
            Ok(None) | Err(_) => return ResponseClass::Unparsable,
        }
    }
}

/// 1xx responses are followed by the real one, except 101, after which HTTP ends.
fn is_interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

/// Whether `payload` survives a write and read unchanged: GoReplay does not escape the
/// separator, so a payload that would form one with the bytes around it cannot be stored.
pub fn is_representable(payload: &[u8]) -> bool {
    let n = SEPARATOR.len();
    if payload.len() <= 4 * n {
        // Short payloads: test the exact bytes that will be written after the header.
        let mut framed = Vec::with_capacity(1 + payload.len() + n);
        framed.push(b'\n');
        framed.extend_from_slice(payload);
        framed.extend_from_slice(SEPARATOR);
        return find_separator(&framed) == Some(framed.len() - n);
    }
    find_separator(payload).is_none()
        && !payload.starts_with(&SEPARATOR[1..])
        && !payload.ends_with(&SEPARATOR[..n - 1])
}

/// A new record id like GoReplay's: 24 lowercase hex characters.
pub fn new_id() -> String {
    format!("{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..))
}

enum Sink {
    Plain(BufWriter<tempfile::NamedTempFile>),
    Gzip(GzEncoder<BufWriter<tempfile::NamedTempFile>>),
}

/// Writes a `.gor` recording (gzip when the name ends in `.gz`).
///
/// Output goes to a temporary file beside the target and is renamed into place by
/// [`GorWriter::finish`]; a writer dropped before that leaves nothing behind.
pub struct GorWriter {
    name: String,
    path: PathBuf,
    sink: Sink,
}

impl GorWriter {
    /// Starts a recording at `path`.
    ///
    /// # Errors
    /// The temporary file cannot be created in the target's directory.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, RecordingError> {
        let path = path.as_ref().to_path_buf();
        let name = path.display().to_string();
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".nprt-")
            .suffix(".gor.tmp")
            .tempfile_in(&dir)
            .map_err(|source| RecordingError::Write {
                file: name.clone(),
                source,
            })?;
        let out = BufWriter::with_capacity(READ_CHUNK, tmp);
        let sink = if name.ends_with(".gz") {
            Sink::Gzip(GzEncoder::new(out, flate2::Compression::default()))
        } else {
            Sink::Plain(out)
        };
        Ok(Self { name, path, sink })
    }

    /// Writes one record as GoReplay does: header line, payload, separator.
    ///
    /// # Errors
    /// An id with whitespace, a payload that would be misread (see [`is_representable`]),
    /// or an I/O error.
    pub fn write_record(
        &mut self,
        kind: RecordKind,
        id: &str,
        ts_ns: u64,
        latency_ns: u64,
        payload: &[u8],
    ) -> Result<(), RecordingError> {
        let bad = |reason| RecordingError::Unrepresentable {
            file: self.name.clone(),
            id: id.to_owned(),
            reason,
        };
        if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("the id must be 1 to 128 visible ASCII characters"));
        }
        if !is_representable(payload) {
            return Err(bad("the payload contains the record separator"));
        }
        let header = format!("{} {id} {ts_ns} {latency_ns}\n", char::from(kind.digit()));
        let out: &mut dyn Write = match &mut self.sink {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w,
        };
        out.write_all(header.as_bytes())
            .and_then(|()| out.write_all(payload))
            .and_then(|()| out.write_all(SEPARATOR))
            .map_err(|source| RecordingError::Write {
                file: self.name.clone(),
                source,
            })
    }

    /// Writes an exchange: its request (latency 0, as GoReplay writes requests) and, if it
    /// has one, its response stamped at `start + latency` with the latency in the last field.
    ///
    /// # Errors
    /// As [`GorWriter::write_record`].
    pub fn write_exchange(&mut self, ex: &Exchange) -> Result<(), RecordingError> {
        self.write_record(RecordKind::Request, &ex.id, ex.start_ns, 0, &ex.request)?;
        if let Some(res) = &ex.response {
            self.write_record(
                RecordKind::Response,
                &ex.id,
                ex.start_ns.saturating_add(res.latency_ns),
                res.latency_ns,
                &res.bytes,
            )?;
        }
        Ok(())
    }

    /// Flushes and moves the recording into place.
    ///
    /// # Errors
    /// Flushing, compressing or renaming failed; the target is then left untouched.
    pub fn finish(self) -> Result<PathBuf, RecordingError> {
        let werr = |source| RecordingError::Write {
            file: self.name.clone(),
            source,
        };
        let out = match self.sink {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w.finish().map_err(werr)?,
        };
        let tmp = out.into_inner().map_err(|e| werr(e.into_error()))?;
        tmp.as_file().sync_all().map_err(werr)?;
        tmp.persist(&self.path).map_err(|e| werr(e.error))?;
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: Vec<u8>, name: &str, opts: ReadOptions) -> (Vec<Exchange>, ReadStats) {
        let mut r = GorReader::from_reader(std::io::Cursor::new(bytes), name, opts).unwrap();
        let out: Vec<Exchange> = r.by_ref().map(Result::unwrap).collect();
        (out, r.stats().clone())
    }

    fn rec(kind: u8, id: &str, ts: u64, payload: &str) -> Vec<u8> {
        let mut v = format!("{kind} {id} {ts} 0\n").into_bytes();
        v.extend_from_slice(payload.as_bytes());
        v.extend_from_slice(SEPARATOR);
        v
    }

    const GET: &str = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn finds_separator_across_anchor_positions() {
        assert_eq!(find_separator(SEPARATOR), Some(0));
        assert_eq!(find_separator(&SEPARATOR[..13]), None);
        let mut v = b"ab\xb5\xb5".to_vec();
        v.extend_from_slice(SEPARATOR);
        assert_eq!(find_separator(&v), Some(4));
        assert_eq!(find_separator(b""), None);
    }

    #[test]
    fn pairs_response_before_request() {
        let mut f = rec(2, "b", 1_500, OK);
        f.extend(rec(1, "b", 1_000, GET));
        f.extend(rec(1, "a", 900, GET));
        let (ex, stats) = read_all(f, "t.gor", ReadOptions::default());
        assert_eq!(ex.iter().map(|e| &*e.id).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(ex[1].response.as_ref().unwrap().latency_ns, 500);
        assert_eq!((stats.paired, stats.unanswered), (1, 1));
    }

    #[test]
    fn interim_then_final_in_one_payload_uses_final_status() {
        let both = format!("HTTP/1.1 100 Continue\r\n\r\n{OK}");
        let mut f = rec(1, "a", 1, GET);
        f.extend(rec(2, "a", 5, "HTTP/1.1 100 Continue\r\n\r\n"));
        f.extend(rec(2, "a", 9, &both));
        let (ex, stats) = read_all(f, "t.gor", ReadOptions::default());
        let res = ex[0].response.as_ref().unwrap();
        assert_eq!(res.head.status, 200);
        assert_eq!(&res.bytes[..], OK.as_bytes());
        assert_eq!(res.latency_ns, 8);
        assert_eq!(stats.interim_responses, 1);
    }

    #[test]
    fn small_window_releases_early_and_counts_late() {
        let mut f = rec(1, "a", 30, GET);
        f.extend(rec(1, "b", 20, GET));
        f.extend(rec(1, "c", 10, GET));
        let opts = ReadOptions {
            reorder_window: 1,
            ..ReadOptions::default()
        };
        let (ex, stats) = read_all(f, "t.gor", opts);
        assert_eq!(ex.len(), 3);
        assert_eq!(stats.late, 1);
    }

    #[test]
    fn duplicates_and_replayed_are_counted() {
        let mut f = rec(1, "a", 1, GET);
        f.extend(rec(1, "a", 2, GET));
        f.extend(rec(2, "a", 3, OK));
        f.extend(rec(2, "a", 4, OK));
        f.extend(rec(3, "a", 5, OK));
        let (ex, stats) = read_all(f, "t.gor", ReadOptions::default());
        assert_eq!(ex.len(), 1);
        assert_eq!((stats.duplicates, stats.replayed), (2, 1));
    }

    #[test]
    fn header_variants() {
        assert!(parse_record(b"1 abc 12\nGET", 0).is_ok());
        assert!(parse_record(b"2 abc 12 -1\n", 0).is_ok());
        for bad in [
            &b"4 abc 12 0\n"[..],
            b"1 abc\n",
            b"1 abc 12 0 9\n",
            b"1 abc x12 0\n",
            b"1  12 0\n",
            b"1 abc 12 zz\n",
        ] {
            assert!(parse_record(bad, 0).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn representable_matches_framing() {
        let sep = SEPARATOR;
        assert!(is_representable(b""));
        assert!(is_representable(b"x\n\xf0\x9f"));
        assert!(!is_representable(sep));
        assert!(!is_representable(&sep[1..]));
        assert!(!is_representable(&sep[..13]));
        assert!(!is_representable(&sep[1..13]));
        let long_tail = [vec![b'x'; 100], sep[..13].to_vec()].concat();
        assert!(!is_representable(&long_tail));
        let long_head = [sep[1..].to_vec(), vec![b'x'; 100]].concat();
        assert!(!is_representable(&long_head));
    }

    #[test]
    fn ids_are_24_hex() {
        let id = new_id();
        assert_eq!(id.len(), 24);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn too_large_record_is_error_or_skipped() {
        let mut f = rec(1, "a", 1, &"x".repeat(1_000));
        f.extend(rec(1, "b", 2, GET));
        let small = ReadOptions {
            max_record_bytes: 200,
            ..ReadOptions::default()
        };
        let mut r =
            GorReader::from_reader(std::io::Cursor::new(f.clone()), "t.gor", small).unwrap();
        let err = r.next().unwrap().unwrap_err();
        assert!(err.to_string().contains("at byte 0"), "{err}");
        let skip = ReadOptions {
            skip_bad: true,
            ..small
        };
        let (ex, stats) = read_all(f, "t.gor", skip);
        assert_eq!(ex.len(), 1);
        assert_eq!((stats.skipped, stats.too_large), (1, 1));
    }

    #[test]
    fn oversized_record_spanning_reads_is_skipped() {
        let mut f = rec(1, "a", 1, &"x".repeat(3 * READ_CHUNK));
        f.extend(rec(1, "b", 2, GET));
        let opts = ReadOptions {
            max_record_bytes: READ_CHUNK / 2,
            skip_bad: true,
            ..ReadOptions::default()
        };
        let (ex, stats) = read_all(f, "t.gor", opts);
        assert_eq!(ex.iter().map(|e| &*e.id).collect::<Vec<_>>(), ["b"]);
        assert_eq!((stats.skipped, stats.too_large), (1, 1));
    }
}

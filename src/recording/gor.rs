//! GoReplay `.gor` recordings: a streaming reader that turns records into
//! [`Exchange`](super::Exchange)s in start-time order, and a writer whose files GoReplay opens
//! unchanged.
//!
//! A record is a header line `<type> <id> <unix-ns> <latency-ns>\n` (type `1` request,
//! `2` original response, `3` replayed response), the raw HTTP bytes, and [`SEPARATOR`].
//! Files written by GoReplay are not in time order and carry its capture warts (orphan
//! responses, interim `100 Continue` records, lost requests), so the reader pairs request and
//! response by id inside a bounded reorder window and counts what it cannot pair in
//! [`ReadStats`]. Memory is bounded by `reorder_window × max_record_bytes`, never by file size.
//!
//! Data order, one file per step: `reader` frames the bytes into records (header line,
//! payload) and checks their headers; `pairing` matches each request with its response by id
//! and releases exchanges in start-time order; `writer` writes records back. This file holds
//! the record format both sides share.

mod pairing;
mod reader;
mod writer;

pub use reader::{GorReader, ReadOptions, ReadStats};
pub use writer::GorWriter;

use bytes::Bytes;
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

#[cfg(test)]
mod tests;

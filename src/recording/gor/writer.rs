//! Writing: a [`GorWriter`] writes records as GoReplay does, refusing ids and payloads that
//! would not read back the same, into a temporary file renamed into place at the end.

use super::{is_representable, RecordKind, MAX_ID_LEN, READ_CHUNK, SEPARATOR};
use crate::recording::{Exchange, RecordingError};
use flate2::write::GzEncoder;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

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

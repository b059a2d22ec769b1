//! The one error type of recordings: every variant names the file, and every variant about
//! content names the byte offset of the offending record, so a user can look at it with `xxd`.

use crate::http::HttpError;

/// Why a recording could not be read or written.
///
/// Offsets count bytes of the `.gor` stream; for a `.gz` file that is the decompressed stream.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("{file}: cannot open: {source}")]
    Open {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: read error at byte {offset}: {source}")]
    Io {
        file: String,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not gzip data at byte 0 (the name ends in .gz)")]
    NotGzip { file: String },
    #[error("{file}: no records (end of data at byte {offset}); is this a GoReplay .gor file?")]
    Empty { file: String, offset: u64 },
    #[error("{file}: truncated record at byte {offset}: no closing separator before end of data")]
    Truncated { file: String, offset: u64 },
    #[error("{file}: record at byte {offset} is larger than the limit of {limit} bytes")]
    TooLarge {
        file: String,
        offset: u64,
        limit: usize,
    },
    #[error("{file}: bad record header at byte {offset}: {reason}")]
    BadHeader {
        file: String,
        offset: u64,
        reason: String,
    },
    #[error("{file}: bad HTTP request in record at byte {offset}: {source}")]
    BadRequest {
        file: String,
        offset: u64,
        #[source]
        source: HttpError,
    },
    #[error("{file}: cannot write: {source}")]
    Write {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: record {id:?} cannot be written in .gor format: {reason}")]
    Unrepresentable {
        file: String,
        id: String,
        reason: &'static str,
    },
}

impl RecordingError {
    /// Whether `skip_bad` may step over this error: the record is malformed, but the
    /// stream around it is intact.
    pub fn is_record_error(&self) -> bool {
        matches!(
            self,
            Self::Truncated { .. }
                | Self::TooLarge { .. }
                | Self::BadHeader { .. }
                | Self::BadRequest { .. }
        )
    }
}

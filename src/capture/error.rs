//! The one error type of capture: every variant about a file names it, and every variant
//! about its content names the byte offset, so a user can look at it with `xxd`.

use crate::recording::RecordingError;

/// Why a capture could not run or its input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{file}: cannot open: {source}")]
    Open {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: read error at byte {offset}: {source}")]
    Read {
        file: String,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not a pcap or pcapng file (magic {magic} at byte 0)")]
    BadMagic { file: String, magic: String },
    #[error("{file}: corrupt capture at byte {offset}: {reason}")]
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },
    #[error(
        "{file}: link type {linktype} at byte {offset} is not supported \
         (Ethernet, Linux cooked SLL/SLL2, raw IP and BSD loopback are)"
    )]
    UnsupportedLink {
        file: String,
        offset: u64,
        linktype: u32,
    },
    #[error("interface {interface}: {what}: {source}")]
    Live {
        interface: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Recording(#[from] RecordingError),
}

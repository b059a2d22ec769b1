//! Observations: one line per exchange per target, the contract between everything that sends
//! traffic (replay, later the shadow proxy and the passive mirror) and the judge in `compare`.
//!
//! Stored as NDJSON so that any verdict can be recomputed offline from the files alone.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What one target answered to one recorded exchange.
///
/// The text fields are shared, not owned: every target's observation of an exchange has the
/// same id, route and method, and every observation of a target the same name, so a replay
/// at full rate makes no copy of them per observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The exchange id from the recording; the same id across targets pairs the observations.
    pub id: Arc<str>,
    /// The target's name as given on the command line (`--target NAME=URL`).
    pub target: Arc<str>,
    /// Route key: method + normalised path, or a gRPC call's `/package.Service/Method`; see
    /// [`crate::http::request_route`].
    pub route: Arc<str>,
    pub method: Arc<str>,
    /// Final status code, `None` when no response arrived.
    pub status: Option<u16>,
    /// Latency in microseconds, from the scheduled send time to the end of the response.
    pub latency_us: u64,
    /// Response body bytes received.
    pub bytes: u64,
    /// Why no response arrived (connect refused, timeout, reset…), `None` on success.
    pub error: Option<String>,
    /// When the answer ended (or the exchange gave up), unix milliseconds: the judge counts
    /// each target's answers per second to divide its resource metrics per request. Absent
    /// in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    /// A gRPC answer's status (`grpc-status`, from the trailers or a trailers-only answer's
    /// headers): 0 OK … 16 UNAUTHENTICATED. A gRPC failure travels in an HTTP 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u8>,
}

/// gRPC statuses that are the server's failure, counted like a 5xx: UNKNOWN,
/// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE, DATA_LOSS. The others
/// (NOT_FOUND, INVALID_ARGUMENT…) are answers about the request, like a 4xx.
pub const GRPC_FAILURES: [u8; 6] = [2, 4, 8, 13, 14, 15];

/// The name of a gRPC status code, as the gRPC specification spells it.
pub fn grpc_name(code: u8) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES
        .get(usize::from(code))
        .copied()
        .unwrap_or("UNKNOWN_CODE")
}

impl Observation {
    /// No usable answer (no status, or an error reading it).
    pub fn is_error(&self) -> bool {
        self.status.is_none() || self.error.is_some()
    }

    /// A failure of the target: no usable answer, a 5xx, or a gRPC failure status.
    pub fn failed(&self) -> bool {
        self.is_error()
            || self.status.is_some_and(|s| (500..=599).contains(&s))
            || self.grpc_status.is_some_and(|g| GRPC_FAILURES.contains(&g))
    }
}

/// Now, in unix milliseconds, for [`Observation::at_ms`].
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Errors reading an observations file.
#[derive(Debug, thiserror::Error)]
pub enum ObservationError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not an observation: {source}")]
    Parse {
        path: PathBuf,
        line: u64,
        #[source]
        source: serde_json::Error,
    },
}

/// Streams the observations of an NDJSON file, one at a time; blank lines are ignored.
pub fn read_file(
    path: &Path,
) -> Result<impl Iterator<Item = Result<Observation, ObservationError>>, ObservationError> {
    let file = std::fs::File::open(path).map_err(|source| ObservationError::Io {
        path: path.to_owned(),
        source,
    })?;
    let path = path.to_owned();
    let mut reader = std::io::BufReader::new(file);
    let mut line_no = 0u64;
    let mut line = String::new();
    Ok(std::iter::from_fn(move || loop {
        line.clear();
        line_no += 1;
        match reader.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => {
                return Some(serde_json::from_str(&line).map_err(|source| {
                    ObservationError::Parse {
                        path: path.clone(),
                        line: line_no,
                        source,
                    }
                }))
            }
            Err(source) => {
                return Some(Err(ObservationError::Io {
                    path: path.clone(),
                    source,
                }))
            }
        }
    }))
}

/// Writes one observation as one NDJSON line.
pub fn write_line(out: &mut impl Write, observation: &Observation) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, observation)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obs.ndjson");
        let obs = Observation {
            id: "a1".into(),
            target: "stable".into(),
            route: "GET /users/:id".into(),
            method: "GET".into(),
            status: None,
            latency_us: 1200,
            bytes: 0,
            error: Some("connection refused".into()),
            at_ms: None,
            grpc_status: None,
        };
        let mut buf = Vec::new();
        write_line(&mut buf, &obs).unwrap();
        buf.extend_from_slice(b"\n{\"id\": 3}\n");
        std::fs::write(&path, &buf).unwrap();
        let mut it = read_file(&path).unwrap();
        assert_eq!(it.next().unwrap().unwrap(), obs);
        let err = it.next().unwrap().unwrap_err().to_string();
        assert!(err.contains("obs.ndjson:3:"), "{err}");
    }
}

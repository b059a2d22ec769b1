//! The session layer: what every command does around its capability, done one way.
//!
//! The command line (`src/cli/`) only parses arguments and prints; scenarios
//! (`crate::scenario`) and the demo build the same runs from a file. Both come here for:
//! - [`Failure`]: the one error type, whose [`FailureKind`] alone gives the exit code (2 for
//!   anything local, 4 for a target, the cluster, the registry or the deploy API, 3 for an
//!   interruption before any verdict);
//! - [`output`]: output files checked before any work starts and written atomically;
//! - [`signal`]: Ctrl-C and SIGTERM;
//! - [`compare`]: observation files and summaries fed into a comparison;
//! - [`replay`]: the replay run with its observations, summary, comparison and interruption;
//! - [`prometheus`]: the judge file's resource metrics, checked before traffic and queried
//!   after it;
//! - [`testbed`]: testbeds started in this process, and binding listening sockets.

pub mod compare;
mod error;
pub mod output;
pub mod prometheus;
pub mod replay;
pub mod signal;
pub mod testbed;

pub use error::{CommandResult, Failure, FailureKind};
pub use output::{write_reports, AtomicFile};
pub use signal::shutdown_signal;

//! nprt — nonfunctional production regression testing for HTTP services.
//!
//! Modules are listed in pipeline order; data only moves forward:
//! recordings of HTTP exchanges are replayed to named targets, every response becomes an
//! [`observation::Observation`], observations are compared per route into a verdict, and the
//! verdict is rendered as a report with an exit code.

pub mod capture;
pub mod cli;
pub mod compare;
mod demo;
pub mod deploy;
pub mod http;
pub mod net;
pub mod notify;
pub mod observation;
mod progress;
pub mod recording;
pub mod redact;
pub mod replay;
pub mod report;
pub mod resource;
pub mod scenario;
pub mod session;
pub mod shadow;
pub mod spec;
pub mod testbed;
pub mod tls;

/// Process exit codes, the same for every command (see DESIGN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything ran and nothing regressed.
    Pass = 0,
    /// A regression was found.
    Regression = 1,
    /// Bad input or usage.
    BadInput = 2,
    /// Not enough data to decide.
    Inconclusive = 3,
    /// A target, server or cluster could not be reached.
    Runtime = 4,
}

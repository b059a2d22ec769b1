//! The live sources of a scenario: the inline shadow proxy and the passive mirror
//! (`src/shadow`), judged as the traffic flows. Every live run of `nprt run` goes through
//! [`run`].

use super::file::{LiveSource, LiveSpec};
use crate::cli::Failure;
use crate::compare::Comparison;
use crate::replay::Target;
use std::path::PathBuf;

/// What a live run needs: the settings from the scenario, the resolved targets, the
/// comparison to feed, and where its outputs go.
pub struct Live<'a> {
    pub source: LiveSource,
    pub spec: &'a LiveSpec,
    /// The shadow proxy's primary (for the mirror: none, the captured answers are the baseline).
    pub primary: Option<Target>,
    pub shadow: Target,
    pub comparison: Comparison,
    pub observations: Option<PathBuf>,
    pub summary: Option<PathBuf>,
    pub quiet: bool,
}

/// The end of a run of traffic, whatever its source.
pub struct Traffic {
    pub verdict: crate::compare::Verdict,
    /// What the source says about itself (sent, skipped, dropped), for stderr.
    pub log: String,
    /// Targets that answered nothing.
    pub unreachable: Vec<String>,
}

/// Runs the live source for `live.spec.duration` and returns the verdict.
///
/// # Errors
/// For now always a runtime [`Failure`]: the shadow module is being written beside this one.
pub async fn run(live: Live<'_>) -> Result<Traffic, Failure> {
    let name = match live.source {
        LiveSource::Shadow => "shadow",
        LiveSource::Mirror => "mirror",
    };
    Err(Failure::runtime(anyhow::anyhow!(
        "source `{name}` needs the shadow module (src/shadow), which this build does not have yet; use source.kind = \"recording\", or `nprt {name}` once it is there"
    )))
}

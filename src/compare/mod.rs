//! The judge: folds [`Observation`](crate::observation::Observation)s of a baseline and a
//! candidate target into per-route and overall statistics, and decides whether the candidate
//! regressed.
//!
//! Data moves in this order, one file per step:
//!
//! 1. [`options`]: what to compare and how strict to be ([`Options`], per-route overrides);
//! 2. [`comparison`]: a [`Comparison`] takes observations from `replay` (or an observations
//!    file via [`crate::observation`]) one at a time, in any order, into per-route
//!    [`TargetStats`] ([`target`]) and pairs them by id ([`paired`]), feeding the live
//!    [`sequential`] judge as pairs form. It keeps only counts, HdrHistograms and bounded
//!    samples, so memory depends on [`Options::max_routes`], not on how many observations
//!    there are; comparisons built on many machines [`merge`](Comparison::merge) exactly;
//! 3. `decide`: [`Comparison::verdict`] makes every [`checks`] check (with the tests in
//!    [`stats`]), adjusts their p-values together, turns them into findings (`findings`,
//!    worded by the rules in [`judge`]) and notes (`notes`);
//! 4. [`verdict`]: the resulting [`Verdict`], which `report` renders.
//!
//! [`judge_file`] reads per-route thresholds from a file, [`calibrate`] writes one from a
//! verdict, [`summary`] and [`codec`] carry histograms between processes.

pub mod calibrate;
pub mod checks;
pub mod codec;
pub mod comparison;
mod decide;
mod findings;
pub mod judge_file;
mod notes;
pub mod options;
pub mod paired;
pub mod rules;
pub mod sequential;
pub mod stats;
pub mod summary;
pub mod target;
pub mod verdict;

pub use checks::{Check, CheckOutcome};
pub use comparison::{Comparison, MergeError};
pub use options::{Options, OptionsError, RouteOverride};
pub use paired::{MatrixCell, PairedSummary};
pub use rules::{Finding, Metric, Severity};
pub use stats::Correction;
pub use target::{TargetStats, TargetSummary};
pub use verdict::{Outcome, Overall, RouteReport, Section, SequentialReport, Thresholds, Verdict};

/// Version tag of the report data; bump when a field changes meaning or disappears.
/// v2: paired summaries, per-metric checks with effects, intervals and p-values.
pub const SCHEMA: &str = "nprt.report/v2";

/// The route that collects everything beyond [`Options::max_routes`].
pub const OTHER_ROUTE: &str = "(other)";

/// The pseudo-route overall findings are reported under.
pub const OVERALL_ROUTE: &str = "(overall)";

#[cfg(test)]
pub(crate) mod tests;

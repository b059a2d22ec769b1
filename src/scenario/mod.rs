//! Scenarios: one file that says where traffic comes from, where it goes, how it is judged and
//! what happens after the verdict, run end to end by `nprt run SCENARIO.toml`.
//!
//! A scenario is a traffic source (a recording replayed with pacing, the inline shadow proxy,
//! or the passive mirror) × targets (fixed URLs, testbeds started in this process, and
//! optionally a canary the deploy driver deploys first) × a judge × what to do on a pass
//! (report, or promote) and on a fail (report, or roll back).
//!
//! In data order:
//! - [`set`] (pure): `--set key=value` overrides applied to the TOML tree before validation;
//! - [`file`](mod@file) (pure but for [`file::load`]): the file format — the tables as written, checked
//!   section by section into a typed [`Scenario`]; every error names the file and the field;
//! - [`run::describe`] (pure): what `nprt run --check` prints, the scenario as understood;
//! - [`deployer`]: the canary's deploy, rollback and promotion, directly with a kubeconfig or
//!   through a deploy API server;
//! - [`live`]: the live sources (shadow proxy, passive mirror): the mirroring built, the source
//!   started, the result collected;
//! - [`run`](mod@run): the orchestration — testbeds, deploy, traffic, verdict, action, reports, timings,
//!   and the rollback on Ctrl-C.

pub mod deployer;
pub mod file;
pub mod live;
pub mod run;
pub mod set;

pub use file::{
    load, parse, Action, CanaryDeploy, Judging, LiveSource, LiveSpec, Loaded, RecordingSpec,
    ReportSpec, Scenario, Source, TestbedSpec,
};
pub use run::{describe, run, Timings, REPORT_FILES};

/// A scenario that cannot be run as written: the file, where in it, the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ScenarioError {
    /// The scenario file as given.
    pub file: String,
    /// 1-based line and column of the field in the file, when it is there.
    pub position: Option<(usize, usize)>,
    /// The dotted field (`replay.rate`), when the error is about one.
    pub field: Option<String>,
    /// Whether the field's value came from `--set` rather than the file.
    pub from_set: bool,
    pub message: String,
}

impl ScenarioError {
    fn render(&self) -> String {
        let mut text = self.file.clone();
        if let Some((line, column)) = self.position {
            text.push_str(&format!(":{line}:{column}"));
        }
        text.push_str(": ");
        if let Some(field) = &self.field {
            text.push_str(field);
            if self.from_set {
                text.push_str(" (from --set)");
            }
            text.push_str(": ");
        }
        text.push_str(&self.message);
        text
    }
}

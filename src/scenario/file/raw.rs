//! The scenario file as written: the TOML tables serde reads, before any check. Every field is
//! optional or defaulted where the file may leave it out, so that a missing field is reported
//! by the checks, with its meaning, rather than by serde.

use super::Action;
use crate::spec::{MirrorSpec, ReplaySpec};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) name: Option<String>,
    pub(super) on_pass: Option<Action>,
    pub(super) on_fail: Option<Action>,
    pub(super) on_inconclusive: Option<Action>,
    pub(super) source: RawSource,
    pub(super) replay: Option<ReplaySpec>,
    pub(super) shadow: Option<MirrorSpec>,
    pub(super) mirror: Option<MirrorSpec>,
    #[serde(default)]
    pub(super) targets: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) testbeds: Vec<crate::spec::testbed::TestbedSpec>,
    pub(super) deploy: Option<crate::spec::deploy::DeploySpec>,
    #[serde(default)]
    pub(super) judge: crate::spec::judge::JudgeSpec,
    pub(super) report: RawReport,
    pub(super) notify: Option<crate::notify::RawNotify>,
}

/// `source.kind`: which of the three sources, each with its own section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SourceKind {
    Recording,
    Shadow,
    Mirror,
}

impl SourceKind {
    /// The kind as written, which is also the name of its section (`[shadow]`, `[mirror]`).
    pub(super) fn name(self) -> &'static str {
        match self {
            SourceKind::Recording => "recording",
            SourceKind::Shadow => "shadow",
            SourceKind::Mirror => "mirror",
        }
    }
}

/// `[source]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) kind: SourceKind,
    pub(super) recording: Option<String>,
    #[serde(default)]
    pub(super) skip_bad: bool,
}

/// `[report]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReport {
    pub(super) dir: String,
    #[serde(default)]
    pub(super) observations: bool,
    pub(super) summary: Option<bool>,
}

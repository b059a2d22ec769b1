//! Telling people what happened: one message per decided verdict and per rollback or
//! promotion, posted to a chat's incoming webhook (Slack, Mattermost) or to any endpoint that
//! takes a JSON document — what the thesis's Deployer did with Slack and Flagger does with its
//! alert providers.
//!
//! In data order:
//! - an [`Event`] says what happened (pure data, built from a verdict or an action);
//! - [`message`] (pure) turns it into a body: [`Format::Slack`] or [`Format::Json`];
//! - [`spec`] reads where to send it: `[notify]` in a scenario or `--notify-url` on
//!   `nprt shadow`/`nprt mirror`, the URL only by reference (an environment variable or a
//!   file), because a webhook URL is itself the credential;
//! - [`scenario`] builds the events of `nprt run` from a scenario and its deploy;
//! - [`send`] posts it with a timeout; a notification that fails is logged (naming only the
//!   webhook's host) and counted, and never changes a verdict or an exit code.

pub mod message;
pub mod scenario;
pub mod send;
pub mod spec;

pub use send::{LiveVerdict, Notifier};
pub use spec::{NotifyArgs, NotifyError, RawNotify, Spec, UrlSource};

use crate::compare::rules::Severity;
use crate::compare::Verdict;
use std::time::SystemTime;

/// The shape of the body posted.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Deserialize,
    serde::Serialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A Slack incoming webhook's `{"text": …}`; Mattermost takes the same.
    #[default]
    Slack,
    /// A generic JSON document (`nprt.notification/v1`) for anything else.
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Slack => "slack",
            Format::Json => "json",
        }
    }
}

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The verdict was decided.
    Verdict,
    /// The canary was rolled back (or its rollback failed).
    Rollback,
    /// The canary's version was promoted to stable (or its promotion failed).
    Promotion,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Verdict => "verdict",
            Kind::Rollback => "rollback",
            Kind::Promotion => "promotion",
        }
    }
}

/// One failing finding, shown as one line.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FindingLine {
    pub route: String,
    pub metric: String,
    pub message: String,
}

/// Something worth telling: a decided verdict, a rollback or a promotion, with enough
/// context for a reader in a chat channel to know which service and versions it is about and
/// where the report is.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: Kind,
    /// A verdict's outcome (`pass`, `fail`, `inconclusive`); for a rollback or promotion, what
    /// it acted on: the verdict's outcome, `unreachable`, `error` or `interrupted`.
    pub outcome: String,
    /// Why a rollback or promotion failed; `None` when it was done.
    pub error: Option<String>,
    /// What ran, for the reader: `scenario demo`, `nprt shadow`.
    pub run: String,
    /// The deployed service, when the run deployed one.
    pub service: Option<String>,
    /// The target names compared.
    pub baseline: String,
    pub candidate: String,
    /// Versions, when known (a canary this run deployed, its baseline copy).
    pub stable_version: Option<String>,
    pub canary_version: Option<String>,
    /// The failing findings of the verdict (for a fail), in report order.
    pub findings: Vec<FindingLine>,
    /// Where the reports are.
    pub report: Option<String>,
    pub at: SystemTime,
}

impl Event {
    /// A decided verdict, with its failing findings.
    pub fn verdict(verdict: &Verdict, run: impl Into<String>) -> Event {
        Event {
            kind: Kind::Verdict,
            outcome: verdict.outcome.as_str().to_owned(),
            error: None,
            run: run.into(),
            service: None,
            baseline: verdict.baseline.clone(),
            candidate: verdict.candidate.clone(),
            stable_version: None,
            canary_version: None,
            findings: verdict
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Fail)
                .map(|f| FindingLine {
                    route: f.route.clone(),
                    metric: f.metric.as_str().to_owned(),
                    message: f.message.clone(),
                })
                .collect(),
            report: None,
            at: SystemTime::now(),
        }
    }

    /// A rollback or promotion carried out because of `on` (see [`Event::outcome`]); `error`
    /// when it failed.
    pub fn action(kind: Kind, on: &str, error: Option<String>, run: impl Into<String>) -> Event {
        Event {
            kind,
            outcome: on.to_owned(),
            error,
            run: run.into(),
            service: None,
            baseline: String::new(),
            candidate: String::new(),
            stable_version: None,
            canary_version: None,
            findings: Vec::new(),
            report: None,
            at: SystemTime::now(),
        }
    }

    /// The versions of a canary this run deployed, from the deploy driver's outcome
    /// (`version`, and `baseline.version` when a baseline copy of stable was deployed too).
    #[must_use]
    pub fn with_deploy(mut self, service: &str, versions: Versions<'_>) -> Event {
        self.service = Some(service.to_owned());
        if let Some(v) = versions.canary {
            self.canary_version = Some(v.to_owned());
        }
        if let Some(v) = versions.stable {
            self.stable_version = Some(v.to_owned());
        }
        self
    }

    /// Where the reports are: the folder as an absolute path when it can be made one (a
    /// relative path means nothing to a reader in a chat channel).
    #[must_use]
    pub fn with_report(mut self, dir: &std::path::Path) -> Event {
        let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        self.report = Some(shown.display().to_string());
        self
    }
}

/// The versions a deploy outcome names: the canary's, and the stable one its baseline copy
/// runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Versions<'a> {
    pub canary: Option<&'a str>,
    pub stable: Option<&'a str>,
}

impl<'a> Versions<'a> {
    pub fn of(deployed: Option<&'a crate::deploy::outcome::Deployed>) -> Self {
        Versions {
            canary: deployed.map(|d| d.version.as_str()),
            stable: deployed
                .and_then(|d| d.baseline.as_ref())
                .map(|b| b.version.as_str()),
        }
    }
}

#[cfg(test)]
mod tests;

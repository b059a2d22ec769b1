//! The scenario file (TOML): parsed, overridden with `--set`, and checked into a typed
//! [`Scenario`] before anything runs.
//!
//! ```toml
//! name = "demo"
//! on_pass = "report"          # report | promote
//! on_fail = "report"          # report | rollback
//!
//! [source]
//! kind = "recording"          # recording | shadow | mirror
//! recording = "../replay/demo.gor"
//!
//! [replay]                    # pacing and filters, as `nprt replay`
//! speed = 20.0
//!
//! [[testbeds]]                # services started in this process
//! name = "stable"
//! latency_ms = 2.0
//!
//! [targets]                   # services that run elsewhere
//! canary = "http://canary.staging:8080"
//!
//! [judge]
//! baseline = "stable"
//! candidate = "canary"
//!
//! [report]
//! dir = "reports"
//! ```
//!
//! Paths in the file are relative to the file's folder; paths given with `--set` are relative
//! to the current directory. [`parse`] is pure; [`load`] reads the file and what it refers to
//! (judge file, deploy config, recording) so that every mistake is found before anything runs.
//!
//! In data order:
//! - `raw`: the file as written, the tables serde reads;
//! - `ctx`: where each field is in the file, for the messages, and what paths are relative to;
//! - `check`: the file as written checked, section by section, into a [`Scenario`];
//! - here: the typed scenario, [`parse`] (text, `--set`, serde, the checks) and [`load`].

mod check;
mod ctx;
mod raw;

use self::ctx::{position, serde_field, Ctx};
use self::raw::RawScenario;
use super::set::{self, Override};
use super::ScenarioError;
use crate::compare::Options as CompareOptions;
use crate::deploy::driver::Request;
use crate::replay::{ReplayOptions, Target};
use crate::spec::live::MirrorSettings;
use crate::testbed::TestbedConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A checked scenario, ready to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The scenario file as given.
    pub file: PathBuf,
    pub name: String,
    pub source: Source,
    /// Services that run elsewhere, by name.
    pub targets: Vec<Target>,
    /// Services started in this process; their names are targets too.
    pub testbeds: Vec<TestbedSpec>,
    /// A canary to deploy before the traffic, and to roll back or promote after the verdict.
    pub deploy: Option<CanaryDeploy>,
    pub judge: Judging,
    pub on_pass: Action,
    pub on_fail: Action,
    /// What an inconclusive verdict (too little data) or a run that broke off does; by default
    /// the same as `on_fail`.
    pub on_inconclusive: Action,
    pub report: ReportSpec,
    /// Where to post the verdict and the rollback or promotion (the URL is read by [`load`]).
    pub notify: Option<crate::notify::Spec>,
}

/// Where the traffic comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A recording replayed to every target.
    Recording(Box<RecordingSpec>),
    /// The inline tee proxy: users' requests go to the primary, copies to the shadow.
    Shadow(LiveSpec),
    /// The passive mirror: captured requests are sent to the shadow and its answers compared
    /// with the captured ones.
    Mirror(LiveSpec),
}

impl Source {
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Recording(_) => "recording",
            Source::Shadow(_) => "shadow",
            Source::Mirror(_) => "mirror",
        }
    }
}

/// A live source: which of the two, and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveSource {
    Shadow,
    Mirror,
}

/// A recording and how to replay it. `options.targets` is filled in when the run starts
/// (testbeds get their ports then).
#[derive(Debug, Clone)]
pub struct RecordingSpec {
    pub path: PathBuf,
    pub skip_bad: bool,
    pub options: ReplayOptions,
}

/// The settings of the shadow proxy or the passive mirror.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSpec {
    /// Shadow proxy: the address users connect to.
    pub listen: Option<SocketAddr>,
    /// Passive mirror: the interface and port captured.
    pub interface: Option<String>,
    pub port: Option<u16>,
    /// Shadow proxy: where users' requests go (default: the judge's baseline target).
    pub primary: Option<String>,
    /// How long the live run lasts at most before the verdict.
    pub duration: Duration,
    /// What the command line's `nprt shadow`/`nprt mirror` take as flags: the shadow (default:
    /// the judge's candidate target), the baseline copy, what is mirrored, the sender's
    /// limits, the metrics address.
    pub settings: MirrorSettings,
}

/// A service started in this process.
#[derive(Debug, Clone, PartialEq)]
pub struct TestbedSpec {
    pub name: String,
    pub listen: SocketAddr,
    pub config: TestbedConfig,
}

/// The canary to deploy, and how to reach the deploy driver.
#[derive(Debug, Clone)]
pub struct CanaryDeploy {
    /// The deploy.toml (direct deploys).
    pub config: Option<PathBuf>,
    pub service: String,
    pub request: Request,
    pub skip_image_check: bool,
    /// The kubeconfig context (direct deploys; default: the current one).
    pub context: Option<String>,
    pub timeout: Duration,
    pub force: bool,
    /// A deploy API server to go through instead of the cluster directly.
    pub server: Option<String>,
    /// The environment variable holding the server's token.
    pub token_env: Option<String>,
    /// Whether Ctrl-C or SIGTERM rolls back a canary this run deployed.
    pub rollback_on_interrupt: bool,
}

/// How the verdict is reached.
#[derive(Debug, Clone)]
pub struct Judging {
    /// As written, the judge file's path resolved against the scenario's folder.
    pub spec: crate::spec::judge::JudgeSpec,
    /// The target names, before the judge file.
    pub base: CompareOptions,
    /// The options the run uses: `base`, the judge file (read by [`load`]) and the overrides.
    pub options: CompareOptions,
}

/// Where the reports go.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSpec {
    pub dir: PathBuf,
    /// Also write every observation (NDJSON) as `observations.ndjson`.
    pub observations: bool,
    /// Also write the histogram summary as `summary.json` (small, mergeable).
    pub summary: bool,
}

/// What happens after the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Only the reports.
    Report,
    /// Deploy the canary's version as stable and remove the canary.
    Promote,
    /// Remove the canary.
    Rollback,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Report => "report",
            Action::Promote => "promote",
            Action::Rollback => "rollback",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and loading.

/// The pacing keys of `[replay]`, of which one may be set.
const PACING: [&str; 3] = ["speed", "rate", "max"];

/// Parses a scenario's text with the `--set` overrides applied and checks everything that
/// can be checked without reading other files. `file` names the file in messages and its
/// folder anchors relative paths.
///
/// # Errors
/// [`ScenarioError`] naming the file, the field and, when the field is in the file, its line.
pub fn parse(text: &str, file: &Path, overrides: &[Override]) -> Result<Scenario, ScenarioError> {
    let name = file.display().to_string();
    let whole = |message: String| ScenarioError {
        file: name.clone(),
        position: None,
        field: None,
        from_set: false,
        message,
    };
    let mut table: toml::Table = toml::from_str(text).map_err(|e| ScenarioError {
        position: e.span().map(|s| position(text, s.start)),
        ..whole(e.message().trim().to_owned())
    })?;
    for o in overrides {
        set::apply(&mut table, o).map_err(|m| ScenarioError {
            field: Some(o.key.clone()),
            from_set: true,
            ..whole(m)
        })?;
    }
    // One pacing set with --set replaces the file's: `--set replay.rate=200` on a file with
    // `speed = 2.0` means "at 200 per second instead".
    let pacing_set: Vec<&str> = PACING
        .iter()
        .copied()
        .filter(|p| overrides.iter().any(|o| o.key == format!("replay.{p}")))
        .collect();
    if !pacing_set.is_empty() {
        if let Some(toml::Value::Table(replay)) = table.get_mut("replay") {
            for p in PACING.iter().filter(|p| !pacing_set.contains(p)) {
                replay.remove(*p);
            }
        }
    }
    let ctx = Ctx {
        file: name.clone(),
        text,
        doc: toml::de::DeTable::parse(text).ok(),
        overrides,
        base: file.parent().map(Path::to_owned).unwrap_or_default(),
    };
    let raw: RawScenario = toml::Value::Table(table).try_into().map_err(|e| {
        let (field, message) = serde_field(&e);
        match field {
            Some(f) => {
                // serde's path has no array indexes: a --set with one names the element.
                let without_indexes = |key: &str| {
                    key.split('.')
                        .filter(|p| p.parse::<usize>().is_err())
                        .collect::<Vec<_>>()
                        .join(".")
                };
                let f = overrides
                    .iter()
                    .find(|o| without_indexes(&o.key) == f)
                    .map_or(f, |o| o.key.clone());
                ctx.err(&f, message)
            }
            None => whole(message),
        }
    })?;
    check::check(&raw, &ctx)
}

/// Reads a scenario file, applies the overrides, checks it, and reads what it refers to: the
/// judge file into the judge's options, the deploy config (the service must be in it), and
/// the first record of the recording.
///
/// # Errors
/// [`ScenarioError`] naming the file and field.
pub fn load(path: &Path, overrides: &[Override]) -> Result<Loaded, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.display().to_string(),
        position: None,
        field: None,
        from_set: false,
        message: format!("cannot read the scenario: {e}"),
    })?;
    let mut scenario = parse(&text, path, overrides)?;
    let ctx = Ctx {
        file: path.display().to_string(),
        text: &text,
        doc: toml::de::DeTable::parse(&text).ok(),
        overrides,
        base: PathBuf::new(),
    };
    if scenario.judge.spec.file.is_some() {
        let judge = &scenario.judge;
        scenario.judge.options = judge
            .spec
            .options(judge.base.clone())
            .map_err(|e| ctx.err("judge.file", e.message))?;
    }
    let deploy_config = match scenario.deploy.as_ref().and_then(|d| d.config.as_ref()) {
        Some(config) => {
            let loaded = crate::deploy::DeployConfig::load(config)
                .map_err(|e| ctx.err("deploy.config", e.to_string()))?;
            let service = &scenario.deploy.as_ref().expect("deploy is set").service;
            loaded
                .service(service)
                .map_err(|e| ctx.err("deploy.service", e.to_string()))?;
            Some(loaded)
        }
        None => None,
    };
    if let Some(notify) = &scenario.notify {
        notify
            .read_url()
            .map_err(|e| ctx.err(&e.field, e.message))?;
    }
    if let Source::Recording(r) = &scenario.source {
        let mut reader = crate::recording::GorReader::open(
            &r.path,
            crate::recording::ReadOptions {
                skip_bad: r.skip_bad,
                ..Default::default()
            },
        )
        .map_err(|e| ctx.err("source.recording", e.to_string()))?;
        if let Some(Err(e)) = reader.next() {
            return Err(ctx.err("source.recording", e.to_string()));
        }
    }
    Ok(Loaded {
        scenario,
        deploy_config,
    })
}

/// A scenario with the files it refers to read.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub scenario: Scenario,
    /// The deploy config of a direct deploy.
    pub deploy_config: Option<crate::deploy::DeployConfig>,
}

#[cfg(test)]
mod tests;

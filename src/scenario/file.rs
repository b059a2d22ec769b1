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

use super::set::{self, Override};
use super::ScenarioError;
use crate::compare::Options as CompareOptions;
use crate::deploy::driver::Request;
use crate::deploy::rewrite::Track;
use crate::deploy::Exposure;
use crate::replay::{Filter, HeaderRule, MethodPolicy, Pacing, ReplayOptions, Rewrite, Target};
use crate::testbed::{RouteEffect, RouteRule, TestbedConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
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
    pub deploy: Option<DeploySpec>,
    pub judge: JudgeSpec,
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
    /// Where the copies go (default: the judge's candidate target).
    pub shadow: Option<String>,
    /// A fresh copy of stable that gets every copy at the same moment as the shadow; the
    /// shadow is then judged against it, with the primary as the noise target.
    pub shadow_baseline: Option<String>,
    /// Share of requests copied, 0 to 100.
    pub mirror_percent: f64,
    pub methods: MethodPolicy,
    /// Largest request body copied, in bytes; larger requests are not mirrored (counted).
    pub max_body: usize,
    /// Copies waiting for the shadow at most; beyond, they are dropped (counted).
    pub queue: usize,
    /// How long the live run lasts before the verdict.
    pub duration: Duration,
    /// Shadow proxy: where to serve its metrics.
    pub metrics: Option<SocketAddr>,
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
pub struct DeploySpec {
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
pub struct JudgeSpec {
    /// A judge file read by [`load`] into `options`.
    pub file: Option<PathBuf>,
    pub options: CompareOptions,
    /// `min_requests` given in the scenario: it wins over the judge file.
    pub min_requests: Option<u64>,
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
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    on_pass: Option<Action>,
    on_fail: Option<Action>,
    on_inconclusive: Option<Action>,
    source: RawSource,
    replay: Option<RawReplay>,
    shadow: Option<RawLive>,
    mirror: Option<RawLive>,
    #[serde(default)]
    targets: BTreeMap<String, String>,
    #[serde(default)]
    testbeds: Vec<RawTestbed>,
    deploy: Option<RawDeploy>,
    #[serde(default)]
    judge: RawJudge,
    report: RawReport,
    notify: Option<crate::notify::RawNotify>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SourceKind {
    Recording,
    Shadow,
    Mirror,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: SourceKind,
    recording: Option<String>,
    #[serde(default)]
    skip_bad: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Methods {
    Safe,
    All,
}

impl From<Methods> for MethodPolicy {
    fn from(m: Methods) -> Self {
        match m {
            Methods::Safe => MethodPolicy::Safe,
            Methods::All => MethodPolicy::All,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplay {
    speed: Option<f64>,
    rate: Option<f64>,
    #[serde(default)]
    max: bool,
    concurrency: Option<usize>,
    max_in_flight: Option<usize>,
    limit: Option<u64>,
    duration: Option<String>,
    #[serde(default, rename = "loop")]
    looping: bool,
    timeout: Option<String>,
    methods: Option<Methods>,
    #[serde(default)]
    allow_methods: Vec<String>,
    #[serde(default)]
    allow_urls: Vec<String>,
    #[serde(default)]
    deny_urls: Vec<String>,
    #[serde(default)]
    allow_headers: Vec<String>,
    #[serde(default)]
    deny_headers: Vec<String>,
    sample: Option<f64>,
    shard: Option<String>,
    #[serde(default)]
    rewrite_urls: Vec<String>,
    #[serde(default)]
    set_headers: Vec<String>,
    #[serde(default)]
    remove_headers: Vec<String>,
    #[serde(default)]
    keep_host: bool,
    #[serde(default)]
    h2: bool,
    ca_cert: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ByteSize {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLive {
    listen: Option<String>,
    interface: Option<String>,
    port: Option<u16>,
    primary: Option<String>,
    shadow: Option<String>,
    shadow_baseline: Option<String>,
    mirror_percent: Option<f64>,
    methods: Option<Methods>,
    max_body: Option<ByteSize>,
    queue: Option<usize>,
    duration: Option<String>,
    metrics: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestbed {
    name: String,
    listen: Option<String>,
    #[serde(default)]
    latency_ms: f64,
    #[serde(default)]
    jitter_ms: f64,
    #[serde(default)]
    error_rate: f64,
    #[serde(default)]
    route_latency: Vec<String>,
    #[serde(default)]
    route_error_rate: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeploy {
    config: Option<String>,
    service: String,
    commit: Option<String>,
    tag: Option<String>,
    exposure: Option<Exposure>,
    #[serde(default)]
    workloads: Vec<String>,
    #[serde(default)]
    skip_image_check: bool,
    context: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    force: bool,
    server: Option<String>,
    token_env: Option<String>,
    rollback_on_interrupt: Option<bool>,
    #[serde(default)]
    with_baseline: bool,
    baseline_commit: Option<String>,
    baseline_tag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJudge {
    baseline: Option<String>,
    candidate: Option<String>,
    noise: Option<String>,
    file: Option<String>,
    min_requests: Option<u64>,
    #[serde(default)]
    sequential: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    dir: String,
    #[serde(default)]
    observations: bool,
    summary: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Errors with positions.

/// Where fields are in the file, for messages.
struct Ctx<'a> {
    file: String,
    text: &'a str,
    doc: Option<toml::Spanned<toml::de::DeTable<'a>>>,
    overrides: &'a [Override],
    /// The scenario file's folder.
    base: PathBuf,
}

impl Ctx<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> ScenarioError {
        let from_set = self.overrides.iter().any(|o| o.covers(field));
        let position = if from_set {
            None
        } else {
            self.doc
                .as_ref()
                .and_then(|d| locate(d.get_ref(), field))
                .map(|offset| position(self.text, offset))
        };
        ScenarioError {
            file: self.file.clone(),
            position,
            field: Some(field.to_owned()),
            from_set,
            message: message.into(),
        }
    }

    /// A path field: relative to the file's folder, or to the current directory when it came
    /// from `--set`.
    fn path(&self, field: &str, value: &str) -> PathBuf {
        let p = Path::new(value);
        if p.is_absolute() || self.overrides.iter().any(|o| o.covers(field)) {
            p.to_owned()
        } else {
            normalize(&self.base.join(p))
        }
    }
}

/// `a/b/../c` → `a/c`, without touching the file system (messages show the shorter path).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// The byte offset of the key of a dotted `field` (`replay.rate`, `testbeds.1.name`); when a
/// part is an array and the next is not an index, the first element holding the rest is used.
fn locate(table: &toml::de::DeTable<'_>, field: &str) -> Option<usize> {
    let parts: Vec<&str> = field.split('.').collect();
    locate_in(table, &parts)
}

fn locate_in(table: &toml::de::DeTable<'_>, parts: &[&str]) -> Option<usize> {
    let (first, rest) = parts.split_first()?;
    let (key, value) = table.iter().find(|(k, _)| k.get_ref() == first)?;
    if rest.is_empty() {
        return Some(key.span().start);
    }
    locate_value(value.get_ref(), rest).or(Some(key.span().start))
}

fn locate_value(value: &toml::de::DeValue<'_>, parts: &[&str]) -> Option<usize> {
    match value {
        toml::de::DeValue::Table(t) => locate_in(t, parts),
        toml::de::DeValue::Array(items) => match parts[0].parse::<usize>() {
            Ok(i) => {
                let item = items.get(i)?;
                if parts.len() == 1 {
                    Some(item.span().start)
                } else {
                    locate_value(item.get_ref(), &parts[1..]).or(Some(item.span().start))
                }
            }
            Err(_) => items
                .iter()
                .find_map(|item| locate_value(item.get_ref(), parts)),
        },
        _ => None,
    }
}

/// 1-based line and column of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The field a serde error is about: the keys toml reports (`in `a.b``), plus the field an
/// unknown-field or missing-field message names.
fn serde_field(error: &toml::de::Error) -> (Option<String>, String) {
    let message = error.message().trim().to_owned();
    let shown = error.to_string();
    let mut keys: Vec<String> = shown
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `").and_then(|r| r.strip_suffix('`')))
        .map(|k| k.split('.').map(str::to_owned).collect())
        .unwrap_or_default();
    for prefix in ["unknown field `", "missing field `"] {
        if let Some(name) = message
            .strip_prefix(prefix)
            .and_then(|r| r.split('`').next())
        {
            keys.push(name.to_owned());
        }
    }
    let field = (!keys.is_empty()).then(|| keys.join("."));
    (field, message)
}

// ---------------------------------------------------------------------------------------------
// Parsing and checking.

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
    check(raw, &ctx)
}

fn check(raw: RawScenario, ctx: &Ctx<'_>) -> Result<Scenario, ScenarioError> {
    let judge = &raw.judge;
    let baseline = judge.baseline.clone().unwrap_or_else(|| "stable".into());
    let candidate = judge.candidate.clone().unwrap_or_else(|| "canary".into());

    // Targets: fixed URLs and testbeds, one namespace.
    let mut targets = Vec::new();
    for (name, url) in &raw.targets {
        let field = format!("targets.{name}");
        targets.push(Target::parse(&format!("{name}={url}")).map_err(|m| ctx.err(&field, m))?);
    }
    let mut testbeds: Vec<TestbedSpec> = Vec::new();
    for (i, t) in raw.testbeds.iter().enumerate() {
        testbeds.push(check_testbed(i, t, ctx)?);
        let name = &t.name;
        if raw.targets.contains_key(name) || testbeds[..i].iter().any(|b| &b.name == name) {
            return Err(ctx.err(
                &format!("testbeds.{i}.name"),
                format!("`{name}` names another target already; every target needs its own name"),
            ));
        }
    }
    let is_target = |n: &str| raw.targets.contains_key(n) || testbeds.iter().any(|t| t.name == n);
    let names = || {
        let mut all: Vec<&str> = raw.targets.keys().map(String::as_str).collect();
        all.extend(testbeds.iter().map(|t| t.name.as_str()));
        if all.is_empty() {
            "none (add [targets] or [[testbeds]])".to_owned()
        } else {
            all.join(", ")
        }
    };

    // The source, and the sections that belong to the other kinds.
    let kind = raw.source.kind;
    for (present, section, wanted) in [
        (raw.replay.is_some(), "replay", SourceKind::Recording),
        (raw.shadow.is_some(), "shadow", SourceKind::Shadow),
        (raw.mirror.is_some(), "mirror", SourceKind::Mirror),
    ] {
        if present && kind != wanted {
            return Err(ctx.err(
                section,
                format!(
                    "[{section}] is for source.kind = \"{}\", but source.kind is \"{}\"",
                    kind_name(wanted),
                    kind_name(kind)
                ),
            ));
        }
    }
    let source = match kind {
        SourceKind::Recording => {
            let Some(path) = &raw.source.recording else {
                return Err(ctx.err(
                    "source.recording",
                    "missing: a recording source needs the .gor file to replay",
                ));
            };
            for (field, name) in [
                ("judge.baseline", &baseline),
                ("judge.candidate", &candidate),
            ] {
                if !is_target(name) {
                    return Err(ctx.err(
                        field,
                        format!("`{name}` is not a target; the targets are {}", names()),
                    ));
                }
            }
            let replay = raw.replay.unwrap_or_default();
            Source::Recording(Box::new(RecordingSpec {
                path: ctx.path("source.recording", path),
                skip_bad: raw.source.skip_bad,
                options: check_replay(&replay, ctx)?,
            }))
        }
        SourceKind::Shadow | SourceKind::Mirror => {
            if raw.source.recording.is_some() {
                return Err(ctx.err(
                    "source.recording",
                    format!(
                        "only a recording source reads a recording; source.kind is \"{}\"",
                        kind_name(kind)
                    ),
                ));
            }
            if judge.noise.is_some() {
                return Err(ctx.err(
                    "judge.noise",
                    "a live source has one primary and one shadow; a noise target needs a recording source",
                ));
            }
            let section = kind_name(kind);
            let live = match kind {
                SourceKind::Shadow => raw.shadow.as_ref(),
                _ => raw.mirror.as_ref(),
            };
            let Some(live) = live else {
                return Err(ctx.err(
                    section,
                    format!("missing: source.kind = \"{section}\" needs a [{section}] section"),
                ));
            };
            let spec = check_live(kind, live, ctx)?;
            if spec.primary.is_none() && kind == SourceKind::Shadow && !is_target(&baseline) {
                return Err(ctx.err(
                    "shadow.primary",
                    format!("missing: give the primary's URL, or a target named `{baseline}` (judge.baseline)"),
                ));
            }
            if spec.shadow.is_none() && !is_target(&candidate) {
                return Err(ctx.err(
                    &format!("{section}.shadow"),
                    format!("missing: give the shadow's URL, or a target named `{candidate}` (judge.candidate)"),
                ));
            }
            match kind {
                SourceKind::Shadow => Source::Shadow(spec),
                _ => Source::Mirror(spec),
            }
        }
    };

    // The judge.
    let mut options = CompareOptions::new(baseline.clone(), candidate.clone());
    if let Some(noise) = &judge.noise {
        if !is_target(noise) {
            return Err(ctx.err(
                "judge.noise",
                format!("`{noise}` is not a target; the targets are {}", names()),
            ));
        }
        options.noise = Some(noise.clone());
    }
    if judge.sequential {
        options.sequential = Some(crate::compare::sequential::SequentialOptions {
            alpha: options.alpha,
            ..Default::default()
        });
    }
    if let Some(n) = judge.min_requests {
        options.min_requests = n;
    }
    options.validate().map_err(|e| {
        let field = if options.baseline == options.candidate {
            "judge.candidate"
        } else {
            "judge"
        };
        ctx.err(field, e.to_string())
    })?;

    let deploy = raw
        .deploy
        .as_ref()
        .map(|d| check_deploy(d, ctx))
        .transpose()?;
    let on_pass = raw.on_pass.unwrap_or(Action::Report);
    let on_fail = raw.on_fail.unwrap_or(Action::Report);
    let on_inconclusive = raw.on_inconclusive.unwrap_or(on_fail);
    if on_pass == Action::Rollback {
        return Err(ctx.err(
            "on_pass",
            "must be \"report\" or \"promote\"; a passing canary is not rolled back",
        ));
    }
    for (field, action) in [("on_fail", on_fail), ("on_inconclusive", on_inconclusive)] {
        if action == Action::Promote {
            return Err(ctx.err(
                field,
                "must be \"report\" or \"rollback\"; only a passing canary is promoted",
            ));
        }
    }
    for (field, action) in [
        ("on_pass", on_pass),
        ("on_fail", on_fail),
        ("on_inconclusive", on_inconclusive),
    ] {
        if action != Action::Report && deploy.is_none() {
            return Err(ctx.err(
                field,
                format!(
                    "\"{}\" needs a [deploy] section: only a canary this run deployed is promoted or rolled back",
                    action.as_str()
                ),
            ));
        }
    }

    if raw.report.dir.trim().is_empty() {
        return Err(ctx.err("report.dir", "must not be empty"));
    }
    let report = ReportSpec {
        dir: ctx.path("report.dir", &raw.report.dir),
        observations: raw.report.observations,
        summary: raw.report.summary.unwrap_or(true),
    };
    let name = match raw.name {
        Some(n) if n.trim().is_empty() => return Err(ctx.err("name", "must not be empty")),
        Some(n) => n,
        None => ctx
            .file
            .rsplit('/')
            .next()
            .unwrap_or(&ctx.file)
            .trim_end_matches(".toml")
            .to_owned(),
    };
    let notify = raw.notify.as_ref().map(|n| n.check(|f, v| ctx.path(f, v)));
    let notify = notify
        .transpose()
        .map_err(|e| ctx.err(&e.field, e.message))?;
    Ok(Scenario {
        file: PathBuf::from(&ctx.file),
        name,
        source,
        targets,
        testbeds,
        deploy,
        judge: JudgeSpec {
            file: judge.file.as_ref().map(|f| ctx.path("judge.file", f)),
            options,
            min_requests: judge.min_requests,
        },
        on_pass,
        on_fail,
        on_inconclusive,
        report,
        notify,
    })
}

fn kind_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Recording => "recording",
        SourceKind::Shadow => "shadow",
        SourceKind::Mirror => "mirror",
    }
}

fn duration(ctx: &Ctx<'_>, field: &str, text: &str) -> Result<Duration, ScenarioError> {
    let d = crate::cli::parse_duration(text).map_err(|m| ctx.err(field, m))?;
    if d.is_zero() {
        return Err(ctx.err(field, "must be longer than zero"));
    }
    Ok(d)
}

fn positive(ctx: &Ctx<'_>, field: &str, value: f64) -> Result<f64, ScenarioError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ctx.err(field, format!("must be a positive number, got {value}")))
    }
}

fn at_least_one(ctx: &Ctx<'_>, field: &str, value: usize) -> Result<usize, ScenarioError> {
    if value >= 1 {
        Ok(value)
    } else {
        Err(ctx.err(field, "must be at least 1"))
    }
}

fn check_replay(r: &RawReplay, ctx: &Ctx<'_>) -> Result<ReplayOptions, ScenarioError> {
    let chosen: Vec<&str> = [
        (r.speed.is_some(), "speed"),
        (r.rate.is_some(), "rate"),
        (r.max, "max"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| *name)
    .collect();
    if chosen.len() > 1 {
        return Err(ctx.err(
            &format!("replay.{}", chosen[1]),
            format!(
                "choose one pacing: replay.{} and replay.{} are both set",
                chosen[0], chosen[1]
            ),
        ));
    }
    let concurrency = at_least_one(ctx, "replay.concurrency", r.concurrency.unwrap_or(16))?;
    let pacing = if r.max {
        Pacing::Max { concurrency }
    } else if let Some(rate) = r.rate {
        Pacing::Rate {
            per_second: positive(ctx, "replay.rate", rate)?,
        }
    } else {
        Pacing::Original {
            speed: positive(ctx, "replay.speed", r.speed.unwrap_or(1.0))?,
        }
    };
    let regexes = |field: &str, patterns: &[String]| {
        patterns
            .iter()
            .map(|p| regex::Regex::new(p).map_err(|e| ctx.err(field, format!("`{p}`: {e}"))))
            .collect::<Result<Vec<_>, _>>()
    };
    let headers = |field: &str, rules: &[String]| {
        rules
            .iter()
            .map(|h| HeaderRule::parse(h).map_err(|m| ctx.err(field, m)))
            .collect::<Result<Vec<_>, _>>()
    };
    if let Some(s) = r.sample {
        if !(s > 0.0 && s <= 100.0) {
            return Err(ctx.err(
                "replay.sample",
                format!("must be a percentage above 0 and at most 100, got {s}"),
            ));
        }
    }
    let shard = r
        .shard
        .as_deref()
        .map(|s| parse_shard(s).map_err(|m| ctx.err("replay.shard", m)))
        .transpose()?;
    let duration_opt = r
        .duration
        .as_deref()
        .map(|d| duration(ctx, "replay.duration", d))
        .transpose()?;
    if r.looping && r.limit.is_none() && duration_opt.is_none() {
        return Err(ctx.err(
            "replay.loop",
            "a looping replay needs replay.limit or replay.duration to end",
        ));
    }
    Ok(ReplayOptions {
        targets: Vec::new(),
        pacing,
        filter: Filter {
            methods: r.methods.unwrap_or(Methods::Safe).into(),
            allow_methods: r
                .allow_methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
            allow_urls: regexes("replay.allow_urls", &r.allow_urls)?,
            deny_urls: regexes("replay.deny_urls", &r.deny_urls)?,
            allow_headers: headers("replay.allow_headers", &r.allow_headers)?,
            deny_headers: headers("replay.deny_headers", &r.deny_headers)?,
            sample_percent: r.sample,
            shard,
        },
        rewrite: Rewrite {
            urls: r
                .rewrite_urls
                .iter()
                .map(|u| Rewrite::parse_url_rule(u).map_err(|m| ctx.err("replay.rewrite_urls", m)))
                .collect::<Result<_, _>>()?,
            set_headers: r
                .set_headers
                .iter()
                .map(|h| Rewrite::parse_header(h).map_err(|m| ctx.err("replay.set_headers", m)))
                .collect::<Result<_, _>>()?,
            remove_headers: r.remove_headers.clone(),
            keep_host: r.keep_host,
        },
        timeout: r
            .timeout
            .as_deref()
            .map(|t| duration(ctx, "replay.timeout", t))
            .transpose()?
            .unwrap_or(Duration::from_secs(30)),
        max_in_flight: at_least_one(ctx, "replay.max_in_flight", r.max_in_flight.unwrap_or(4096))?,
        limit: r.limit,
        duration: duration_opt,
        looping: r.looping,
        h2: r.h2,
        ca_cert: r.ca_cert.as_deref().map(|c| ctx.path("replay.ca_cert", c)),
    })
}

/// Parses `I/N` with `0 <= I < N`.
fn parse_shard(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("`{text}` is not a shard like \"0/4\" (index from 0, below the count)");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

fn url(ctx: &Ctx<'_>, field: &str, text: &str) -> Result<String, ScenarioError> {
    Target::parse(&format!("x={text}")).map_err(|m| {
        ctx.err(
            field,
            m.replacen("`x=", "`", 1)
                .replace("the target name must be", "the URL must be"),
        )
    })?;
    Ok(text.to_owned())
}

fn socket_addr(ctx: &Ctx<'_>, field: &str, text: &str) -> Result<SocketAddr, ScenarioError> {
    text.parse().map_err(|_| {
        ctx.err(
            field,
            format!("`{text}` is not an address like 127.0.0.1:8080 or 0.0.0.0:8080"),
        )
    })
}

fn byte_size(ctx: &Ctx<'_>, field: &str, size: &ByteSize) -> Result<usize, ScenarioError> {
    let bytes = match size {
        ByteSize::Bytes(n) => *n,
        ByteSize::Text(text) => {
            let t = text.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (number, unit) = t.split_at(split);
            let n: u64 = number.parse().map_err(|_| {
                ctx.err(
                    field,
                    format!("`{text}` is not a size like 65536, \"64KiB\" or \"1MiB\""),
                )
            })?;
            let scale = match unit.trim() {
                "" | "B" => 1,
                "KiB" | "K" | "KB" | "kB" => 1024,
                "MiB" | "M" | "MB" => 1024 * 1024,
                "GiB" | "G" | "GB" => 1024 * 1024 * 1024,
                other => {
                    return Err(ctx.err(
                        field,
                        format!("unknown unit `{other}` in `{text}`: use B, KiB, MiB or GiB"),
                    ))
                }
            };
            n.saturating_mul(scale)
        }
    };
    usize::try_from(bytes).map_err(|_| ctx.err(field, "too large"))
}

fn check_live(kind: SourceKind, l: &RawLive, ctx: &Ctx<'_>) -> Result<LiveSpec, ScenarioError> {
    let section = kind_name(kind);
    let f = |name: &str| format!("{section}.{name}");
    let (listen, interface, port, metrics) = match kind {
        SourceKind::Shadow => {
            for (present, name) in [
                (l.interface.is_some(), "interface"),
                (l.port.is_some(), "port"),
            ] {
                if present {
                    return Err(ctx.err(
                        &f(name),
                        "the shadow proxy listens on shadow.listen; interface and port are for the passive mirror",
                    ));
                }
            }
            let Some(listen) = &l.listen else {
                return Err(ctx.err(
                    &f("listen"),
                    "missing: the address users connect to, like 0.0.0.0:8080",
                ));
            };
            let metrics = l
                .metrics
                .as_deref()
                .map(|m| socket_addr(ctx, &f("metrics"), m))
                .transpose()?;
            (
                Some(socket_addr(ctx, &f("listen"), listen)?),
                None,
                None,
                metrics,
            )
        }
        _ => {
            for (present, name) in [
                (l.listen.is_some(), "listen"),
                (l.primary.is_some(), "primary"),
                (l.metrics.is_some(), "metrics"),
            ] {
                if present {
                    return Err(ctx.err(
                        &f(name),
                        "the passive mirror sits beside the service; listen, primary and metrics are for the shadow proxy",
                    ));
                }
            }
            let Some(interface) = &l.interface else {
                return Err(ctx.err(
                    &f("interface"),
                    "missing: the network interface to capture on, like eth0",
                ));
            };
            if interface.trim().is_empty() {
                return Err(ctx.err(&f("interface"), "must not be empty"));
            }
            let Some(port) = l.port else {
                return Err(ctx.err(&f("port"), "missing: the service's TCP port to capture"));
            };
            if port == 0 {
                return Err(ctx.err(&f("port"), "must be a TCP port from 1 to 65535"));
            }
            (None, Some(interface.clone()), Some(port), None)
        }
    };
    let mirror_percent = l.mirror_percent.unwrap_or(100.0);
    if !(mirror_percent > 0.0 && mirror_percent <= 100.0) {
        return Err(ctx.err(
            &f("mirror_percent"),
            format!("must be above 0 and at most 100, got {mirror_percent}"),
        ));
    }
    let Some(d) = &l.duration else {
        return Err(ctx.err(
            &f("duration"),
            "missing: how long to compare live traffic before the verdict, like \"10m\"",
        ));
    };
    Ok(LiveSpec {
        listen,
        interface,
        port,
        primary: l
            .primary
            .as_deref()
            .map(|u| url(ctx, &f("primary"), u))
            .transpose()?,
        shadow: l
            .shadow
            .as_deref()
            .map(|u| url(ctx, &f("shadow"), u))
            .transpose()?,
        shadow_baseline: l
            .shadow_baseline
            .as_deref()
            .map(|u| url(ctx, &f("shadow_baseline"), u))
            .transpose()?,
        mirror_percent,
        methods: l.methods.unwrap_or(Methods::Safe).into(),
        max_body: l
            .max_body
            .as_ref()
            .map(|s| byte_size(ctx, &f("max_body"), s))
            .transpose()?
            .unwrap_or(1024 * 1024),
        queue: at_least_one(ctx, &f("queue"), l.queue.unwrap_or(1024))?,
        duration: duration(ctx, &f("duration"), d)?,
        metrics,
    })
}

fn check_testbed(i: usize, t: &RawTestbed, ctx: &Ctx<'_>) -> Result<TestbedSpec, ScenarioError> {
    let f = |name: &str| format!("testbeds.{i}.{name}");
    Target::parse(&format!("{}=http://127.0.0.1", t.name)).map_err(|_| {
        ctx.err(
            &f("name"),
            format!(
                "`{}`: a target name must be letters, digits, '-', '_' or '.'",
                t.name
            ),
        )
    })?;
    let mut routes = Vec::new();
    for text in &t.route_latency {
        routes.push(
            RouteRule::parse(text, RouteEffect::LatencyMs)
                .map_err(|m| ctx.err(&f("route_latency"), m))?,
        );
    }
    for text in &t.route_error_rate {
        routes.push(
            RouteRule::parse(text, RouteEffect::ErrorRate)
                .map_err(|m| ctx.err(&f("route_error_rate"), m))?,
        );
    }
    let config = TestbedConfig {
        latency_ms: t.latency_ms,
        jitter_ms: t.jitter_ms,
        error_rate: t.error_rate,
        routes,
    };
    for (name, value, max) in [
        ("latency_ms", t.latency_ms, 3_600_000.0),
        ("jitter_ms", t.jitter_ms, 3_600_000.0),
        ("error_rate", t.error_rate, 1.0),
    ] {
        if !(value.is_finite() && (0.0..=max).contains(&value)) {
            return Err(ctx.err(
                &f(name),
                format!("must be between 0 and {max}, got {value}"),
            ));
        }
    }
    config
        .validate()
        .map_err(|m| ctx.err(&f("route_error_rate"), m))?;
    Ok(TestbedSpec {
        name: t.name.clone(),
        listen: socket_addr(
            ctx,
            &f("listen"),
            t.listen.as_deref().unwrap_or("127.0.0.1:0"),
        )?,
        config,
    })
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_deploy(d: &RawDeploy, ctx: &Ctx<'_>) -> Result<DeploySpec, ScenarioError> {
    if d.service.trim().is_empty() {
        return Err(ctx.err("deploy.service", "must name a service of the deploy config"));
    }
    if let Some(tag) = &d.tag {
        if !crate::deploy::image::is_tag(tag) {
            return Err(ctx.err("deploy.tag", format!("`{tag}` is not a valid image tag")));
        }
    }
    if let Some(commit) = &d.commit {
        if commit.trim().is_empty() {
            return Err(ctx.err("deploy.commit", "must not be empty"));
        }
    }
    match (&d.server, &d.config) {
        (Some(_), None) | (None, Some(_)) => {}
        (Some(_), Some(_)) => {
            return Err(ctx.err(
                "deploy.config",
                "give deploy.config (deploy directly with a kubeconfig) or deploy.server (through the deploy API), not both",
            ))
        }
        (None, None) => {
            return Err(ctx.err(
                "deploy.config",
                "missing: the deploy.toml to deploy with directly, or deploy.server for the deploy API",
            ))
        }
    }
    if let Some(server) = &d.server {
        url(ctx, "deploy.server", server)?;
        if d.context.is_some() {
            return Err(ctx.err(
                "deploy.context",
                "a kubeconfig context is for direct deploys; the deploy API server has its own cluster access",
            ));
        }
    }
    match (&d.server, &d.token_env) {
        (Some(_), None) => {
            return Err(ctx.err(
                "deploy.token_env",
                "missing: the environment variable holding the deploy API's token",
            ))
        }
        (None, Some(_)) => {
            return Err(ctx.err(
                "deploy.token_env",
                "a token is for the deploy API; set deploy.server too, or remove it",
            ))
        }
        (_, Some(env)) if !is_env_name(env) => {
            return Err(ctx.err(
                "deploy.token_env",
                format!("`{env}` is not an environment variable name; the token itself never goes in a scenario file"),
            ))
        }
        _ => {}
    }
    for (i, w) in d.workloads.iter().enumerate() {
        if !crate::deploy::config::is_dns_label(w) {
            return Err(ctx.err(
                &format!("deploy.workloads.{i}"),
                format!("`{w}` is not a workload name"),
            ));
        }
    }
    let request = Request {
        track: Track::Canary,
        commit: d.commit.clone(),
        tag: d.tag.clone(),
        exposure: d.exposure,
        workloads: d.workloads.clone(),
        with_baseline: d.with_baseline,
        baseline_commit: d.baseline_commit.clone(),
        baseline_tag: d.baseline_tag.clone(),
    };
    request
        .check_baseline()
        .map_err(|e| ctx.err("deploy.with_baseline", e))?;
    Ok(DeploySpec {
        config: d.config.as_deref().map(|c| ctx.path("deploy.config", c)),
        service: d.service.clone(),
        request,
        skip_image_check: d.skip_image_check,
        context: d.context.clone(),
        timeout: d
            .timeout
            .as_deref()
            .map(|t| duration(ctx, "deploy.timeout", t))
            .transpose()?
            .unwrap_or(Duration::from_secs(300)),
        force: d.force,
        server: d.server.clone(),
        token_env: d.token_env.clone(),
        rollback_on_interrupt: d.rollback_on_interrupt.unwrap_or(true),
    })
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
    if let Some(file) = &scenario.judge.file {
        let judge_text = std::fs::read_to_string(file)
            .map_err(|e| ctx.err("judge.file", format!("cannot read {}: {e}", file.display())))?;
        let mut options =
            crate::compare::judge_file::parse(&judge_text, scenario.judge.options.clone())
                .map_err(|e| {
                    ctx.err(
                        "judge.file",
                        format!("{}:{}:{}: {}", file.display(), e.line, e.column, e.message),
                    )
                })?;
        if let Some(n) = scenario.judge.min_requests {
            options.min_requests = n;
        }
        if let Some(seq) = &mut options.sequential {
            seq.alpha = options.alpha;
        }
        options
            .validate()
            .map_err(|e| ctx.err("judge.file", e.to_string()))?;
        scenario.judge.options = options;
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

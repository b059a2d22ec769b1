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
use crate::replay::{ReplayOptions, Target};
use crate::spec::live::MirrorSettings;
use crate::spec::{MirrorSpec, ReplaySpec};
use crate::testbed::TestbedConfig;
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
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    on_pass: Option<Action>,
    on_fail: Option<Action>,
    on_inconclusive: Option<Action>,
    source: RawSource,
    replay: Option<ReplaySpec>,
    shadow: Option<MirrorSpec>,
    mirror: Option<MirrorSpec>,
    #[serde(default)]
    targets: BTreeMap<String, String>,
    #[serde(default)]
    testbeds: Vec<crate::spec::testbed::TestbedSpec>,
    deploy: Option<crate::spec::deploy::DeploySpec>,
    #[serde(default)]
    judge: crate::spec::judge::JudgeSpec,
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
            if spec.settings.shadow.is_none() && !is_target(&candidate) {
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
    let mut base = CompareOptions::new(baseline.clone(), candidate.clone());
    if let Some(noise) = &judge.noise {
        if !is_target(noise) {
            return Err(ctx.err(
                "judge.noise",
                format!("`{noise}` is not a target; the targets are {}", names()),
            ));
        }
        base.noise = Some(noise.clone());
    }
    // The judge file is read by `load`; here its overrides alone are applied and checked.
    let options = judge.apply(base.clone(), None).map_err(|e| {
        let field = if base.baseline == base.candidate {
            "judge.candidate"
        } else {
            "judge"
        };
        ctx.err(field, e.message)
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
        judge: Judging {
            spec: crate::spec::judge::JudgeSpec {
                file: judge
                    .file
                    .as_ref()
                    .map(|f| ctx.path("judge.file", &f.to_string_lossy())),
                ..judge.clone()
            },
            base,
            options,
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

fn check_replay(r: &ReplaySpec, ctx: &Ctx<'_>) -> Result<ReplayOptions, ScenarioError> {
    let mut r = r.clone();
    r.ca =
        r.ca.as_deref()
            .map(|c| ctx.path("replay.ca", &c.to_string_lossy()));
    r.options().map_err(|e| spec_error(ctx, "replay", &e))
}

/// A spec's error at its key in `section`.
fn spec_error(ctx: &Ctx<'_>, section: &str, e: &crate::spec::SpecError) -> ScenarioError {
    ctx.err(&format!("{section}.{}", e.key), e.for_key(section))
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

fn check_live(kind: SourceKind, l: &MirrorSpec, ctx: &Ctx<'_>) -> Result<LiveSpec, ScenarioError> {
    let section = kind_name(kind);
    let f = |name: &str| format!("{section}.{name}");
    let (listen, interface, port) = match kind {
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
            (Some(socket_addr(ctx, &f("listen"), listen)?), None, None)
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
            (None, Some(interface.clone()), Some(port))
        }
    };
    let Some(duration) = l.duration else {
        return Err(ctx.err(
            &f("duration"),
            "missing: how long to compare live traffic before the verdict, like \"10m\"",
        ));
    };
    let mut spec = l.clone();
    spec.ca = spec
        .ca
        .as_deref()
        .map(|c| ctx.path(&f("ca"), &c.to_string_lossy()));
    let settings = spec.settings().map_err(|e| spec_error(ctx, section, &e))?;
    Ok(LiveSpec {
        listen,
        interface,
        port,
        primary: l
            .primary
            .as_deref()
            .map(|u| url(ctx, &f("primary"), u))
            .transpose()?,
        duration: duration.0,
        settings,
    })
}

fn check_testbed(
    i: usize,
    t: &crate::spec::testbed::TestbedSpec,
    ctx: &Ctx<'_>,
) -> Result<TestbedSpec, ScenarioError> {
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
    let config = t
        .config()
        .map_err(|e| ctx.err(&f(e.key), e.for_key(&format!("testbeds.{i}"))))?;
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

fn check_deploy(
    d: &crate::spec::deploy::DeploySpec,
    ctx: &Ctx<'_>,
) -> Result<CanaryDeploy, ScenarioError> {
    if d.service.trim().is_empty() {
        return Err(ctx.err("deploy.service", "must name a service of the deploy config"));
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
    let request = d
        .request(Track::Canary)
        .map_err(|e| spec_error(ctx, "deploy", &e))?;
    Ok(CanaryDeploy {
        config: d.config.as_deref().map(|c| ctx.path("deploy.config", c)),
        service: d.service.clone(),
        request,
        skip_image_check: d.skip_image_check,
        context: d.context.clone(),
        timeout: d.timeout.map_or(Duration::from_secs(300), |t| t.0),
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

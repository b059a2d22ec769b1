//! The file as written, checked into a [`Scenario`]. [`check`] reads as the list of its steps,
//! in the order of the file's meaning: the targets and testbeds (one namespace), the source,
//! the judge, the deploy, the actions after the verdict, the reports and the notifications.
//! The first mistake found is the one reported. The checks of one section alone (a testbed,
//! the live settings, the deploy) come after the steps. All of it is pure: what the scenario
//! refers to is read by [`super::load`].

use super::ctx::Ctx;
use super::raw::{RawReport, RawScenario, SourceKind};
use super::{
    Action, CanaryDeploy, Judging, LiveSpec, RecordingSpec, ReportSpec, Scenario, Source,
    TestbedSpec,
};
use crate::compare::Options as CompareOptions;
use crate::deploy::rewrite::Track;
use crate::replay::{ReplayOptions, Target};
use crate::scenario::ScenarioError;
use crate::spec::judge::JudgeSpec;
use crate::spec::{MirrorSpec, ReplaySpec};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Checks every section of `raw` and puts the scenario together.
pub(super) fn check(raw: &RawScenario, ctx: &Ctx<'_>) -> Result<Scenario, ScenarioError> {
    let judge = &raw.judge;
    let baseline = judge.baseline.clone().unwrap_or_else(|| "stable".into());
    let candidate = judge.candidate.clone().unwrap_or_else(|| "canary".into());
    let (targets, testbeds) = check_targets(raw, ctx)?;
    let names = Names {
        fixed: &raw.targets,
        testbeds: &testbeds,
    };
    let source = check_source(raw, &names, &baseline, &candidate, ctx)?;
    let judging = check_judge(judge, &names, baseline, candidate, ctx)?;
    let deploy = raw
        .deploy
        .as_ref()
        .map(|d| check_deploy(d, ctx))
        .transpose()?;
    let (on_pass, on_fail, on_inconclusive) = check_actions(raw, deploy.is_some(), ctx)?;
    let report = check_report(&raw.report, ctx)?;
    let name = scenario_name(raw.name.as_deref(), ctx)?;
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
        judge: judging,
        on_pass,
        on_fail,
        on_inconclusive,
        report,
        notify,
    })
}

/// The names a scenario can give a target: its fixed URLs and its testbeds, one namespace.
struct Names<'a> {
    fixed: &'a BTreeMap<String, String>,
    testbeds: &'a [TestbedSpec],
}

impl Names<'_> {
    fn contains(&self, name: &str) -> bool {
        self.fixed.contains_key(name) || self.testbeds.iter().any(|t| t.name == name)
    }

    /// Every name, for a message about one that is not there.
    fn listed(&self) -> String {
        let mut all: Vec<&str> = self.fixed.keys().map(String::as_str).collect();
        all.extend(self.testbeds.iter().map(|t| t.name.as_str()));
        if all.is_empty() {
            "none (add [targets] or [[testbeds]])".to_owned()
        } else {
            all.join(", ")
        }
    }

    /// `name`, the value of `field`, must be a target.
    fn require(&self, ctx: &Ctx<'_>, field: &str, name: &str) -> Result<(), ScenarioError> {
        if self.contains(name) {
            return Ok(());
        }
        Err(ctx.err(
            field,
            format!(
                "`{name}` is not a target; the targets are {}",
                self.listed()
            ),
        ))
    }
}

/// The targets: the fixed URLs, then the testbeds, every name its own.
fn check_targets(
    raw: &RawScenario,
    ctx: &Ctx<'_>,
) -> Result<(Vec<Target>, Vec<TestbedSpec>), ScenarioError> {
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
    Ok((targets, testbeds))
}

/// The source of `source.kind`; the sections of the other kinds are refused.
fn check_source(
    raw: &RawScenario,
    names: &Names<'_>,
    baseline: &str,
    candidate: &str,
    ctx: &Ctx<'_>,
) -> Result<Source, ScenarioError> {
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
                    wanted.name(),
                    kind.name()
                ),
            ));
        }
    }
    match kind {
        SourceKind::Recording => recording_source(raw, names, baseline, candidate, ctx),
        SourceKind::Shadow | SourceKind::Mirror => {
            live_source(kind, raw, names, baseline, candidate, ctx)
        }
    }
}

/// A recording source: the file to replay, how (`[replay]`), and the judge's two targets, which
/// the recording is sent to.
fn recording_source(
    raw: &RawScenario,
    names: &Names<'_>,
    baseline: &str,
    candidate: &str,
    ctx: &Ctx<'_>,
) -> Result<Source, ScenarioError> {
    let Some(path) = &raw.source.recording else {
        return Err(ctx.err(
            "source.recording",
            "missing: a recording source needs the .gor file to replay",
        ));
    };
    for (field, name) in [("judge.baseline", baseline), ("judge.candidate", candidate)] {
        names.require(ctx, field, name)?;
    }
    let replay = raw.replay.clone().unwrap_or_default();
    Ok(Source::Recording(Box::new(RecordingSpec {
        path: ctx.path("source.recording", path),
        skip_bad: raw.source.skip_bad,
        options: check_replay(&replay, ctx)?,
    })))
}

/// A live source: its section (`[shadow]` or `[mirror]`), and a primary and a shadow, each a
/// URL there or the judge's target of that name.
fn live_source(
    kind: SourceKind,
    raw: &RawScenario,
    names: &Names<'_>,
    baseline: &str,
    candidate: &str,
    ctx: &Ctx<'_>,
) -> Result<Source, ScenarioError> {
    if raw.source.recording.is_some() {
        return Err(ctx.err(
            "source.recording",
            format!(
                "only a recording source reads a recording; source.kind is \"{}\"",
                kind.name()
            ),
        ));
    }
    if raw.judge.noise.is_some() {
        return Err(ctx.err(
            "judge.noise",
            "a live source has one primary and one shadow; a noise target needs a recording source",
        ));
    }
    let section = kind.name();
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
    if spec.primary.is_none() && kind == SourceKind::Shadow && !names.contains(baseline) {
        return Err(ctx.err(
            "shadow.primary",
            format!(
                "missing: give the primary's URL, or a target named `{baseline}` (judge.baseline)"
            ),
        ));
    }
    if spec.settings.shadow.is_none() && !names.contains(candidate) {
        return Err(ctx.err(
            &format!("{section}.shadow"),
            format!(
                "missing: give the shadow's URL, or a target named `{candidate}` (judge.candidate)"
            ),
        ));
    }
    Ok(match kind {
        SourceKind::Shadow => Source::Shadow(spec),
        _ => Source::Mirror(spec),
    })
}

/// The judge: the targets compared (and the noise target), with the judge's overrides applied.
/// The judge file is read by `load`; here its overrides alone are applied and checked.
fn check_judge(
    judge: &JudgeSpec,
    names: &Names<'_>,
    baseline: String,
    candidate: String,
    ctx: &Ctx<'_>,
) -> Result<Judging, ScenarioError> {
    let mut base = CompareOptions::new(baseline, candidate);
    if let Some(noise) = &judge.noise {
        names.require(ctx, "judge.noise", noise)?;
        base.noise = Some(noise.clone());
    }
    let options = judge.apply(base.clone(), None).map_err(|e| {
        let field = if base.baseline == base.candidate {
            "judge.candidate"
        } else {
            "judge"
        };
        ctx.err(field, e.message)
    })?;
    Ok(Judging {
        spec: JudgeSpec {
            file: judge
                .file
                .as_ref()
                .map(|f| ctx.path("judge.file", &f.to_string_lossy())),
            ..judge.clone()
        },
        base,
        options,
    })
}

/// What happens on a pass, a fail and an inconclusive verdict: only a passing canary is
/// promoted, only a canary this run deployed is promoted or rolled back.
fn check_actions(
    raw: &RawScenario,
    has_deploy: bool,
    ctx: &Ctx<'_>,
) -> Result<(Action, Action, Action), ScenarioError> {
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
        if action != Action::Report && !has_deploy {
            return Err(ctx.err(
                field,
                format!(
                    "\"{}\" needs a [deploy] section: only a canary this run deployed is promoted or rolled back",
                    action.as_str()
                ),
            ));
        }
    }
    Ok((on_pass, on_fail, on_inconclusive))
}

/// Where the reports go.
fn check_report(report: &RawReport, ctx: &Ctx<'_>) -> Result<ReportSpec, ScenarioError> {
    if report.dir.trim().is_empty() {
        return Err(ctx.err("report.dir", "must not be empty"));
    }
    Ok(ReportSpec {
        dir: ctx.path("report.dir", &report.dir),
        observations: report.observations,
        summary: report.summary.unwrap_or(true),
    })
}

/// The scenario's name: as written, or the file's name without `.toml`.
fn scenario_name(name: Option<&str>, ctx: &Ctx<'_>) -> Result<String, ScenarioError> {
    match name {
        Some(n) if n.trim().is_empty() => Err(ctx.err("name", "must not be empty")),
        Some(n) => Ok(n.to_owned()),
        None => Ok(ctx
            .file
            .rsplit('/')
            .next()
            .unwrap_or(&ctx.file)
            .trim_end_matches(".toml")
            .to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// One section alone.

/// `[replay]`: the pacing and filters of `nprt replay`, its CA file relative to the scenario.
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

/// A URL field, checked as `nprt replay --target` checks one; the message speaks of the URL.
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

/// An address to listen on.
fn socket_addr(ctx: &Ctx<'_>, field: &str, text: &str) -> Result<SocketAddr, ScenarioError> {
    text.parse().map_err(|_| {
        ctx.err(
            field,
            format!("`{text}` is not an address like 127.0.0.1:8080 or 0.0.0.0:8080"),
        )
    })
}

/// `[shadow]` or `[mirror]`: each has keys of its own, refused in the other.
fn check_live(kind: SourceKind, l: &MirrorSpec, ctx: &Ctx<'_>) -> Result<LiveSpec, ScenarioError> {
    let section = kind.name();
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

/// The testbed `testbeds.{i}`: a target name, an address, and how it behaves.
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

/// Whether `name` can be an environment variable's name (so that no token is written in its
/// place).
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `[deploy]`: directly with a deploy config, or through a deploy API server with a token.
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

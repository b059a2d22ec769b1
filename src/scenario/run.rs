//! `nprt run`: one scenario from the canary's deploy to the verdict and the rollback or
//! promotion.
//!
//! In order: start the testbeds, deploy the canary (if the scenario has one), send the traffic
//! (a recording, or a live source), judge, write every report, act on the verdict (report,
//! promote, roll back), and write `scenario.json` with the timings. Ctrl-C or SIGTERM at any
//! point after the deploy started rolls the canary back unless `rollback_on_interrupt = false`.

mod describe;

pub use describe::describe;

use super::deployer::{Deployer, Op};
use super::file::{Action, LiveSource, Loaded, Scenario, Source};
use super::live::{self, Live, Traffic};
use crate::compare::{Comparison, Outcome, Verdict};
use crate::deploy::ops::OpError;
use crate::deploy::outcome::Deployed;
use crate::notify::scenario as notify;
use crate::replay::Target;
use crate::report::{self, Format};
use crate::resource::promql::TargetLabels;
use crate::session::prometheus::ResourceJudge;
use crate::session::replay::{recording_source, ReplayRun};
use crate::session::{shutdown_signal, write_reports, AtomicFile, Failure};
use crate::Exit;
use serde_json::{json, Value};
use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;
use tokio::time::Instant;

/// The report files every run writes into the report folder.
pub const REPORT_FILES: [&str; 7] = [
    "report.json",
    "report.txt",
    "report.html",
    "report.md",
    "junit.xml",
    "scenario.json",
    "scenario.md",
];

/// How long the phases of a run took, each measured from the start of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Timings {
    /// Until the canary had rolled out.
    pub to_deploy_ms: Option<u64>,
    /// Until the verdict.
    pub to_verdict_ms: Option<u64>,
    /// Until the canary was gone again.
    pub to_rollback_ms: Option<u64>,
    /// Until the canary's version was stable.
    pub to_promote_ms: Option<u64>,
    pub total_ms: u64,
    /// Live runs, from the first mirrored request: until the live judge decided (the run
    /// ends then, not at its duration; until the end of the run when it never decided)...
    pub verdict_after_first_mirror_ms: Option<u64>,
    /// ...and until the rollback or promotion was done.
    pub action_after_first_mirror_ms: Option<u64>,
    /// From the live judge's decision until the rollback or promotion started.
    pub action_start_after_verdict_ms: Option<u64>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn seconds(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
        None => "-".to_owned(),
    }
}

fn bad(message: String) -> Failure {
    Failure::bad_input(anyhow::anyhow!(message))
}

fn op_failure(what: &str, e: OpError) -> Failure {
    let error = anyhow::anyhow!("{what}: {}", e.message);
    if e.bad_input {
        Failure::bad_input(error)
    } else {
        Failure::runtime(error)
    }
}

/// What the run did, written as `scenario.json` and summarised on stdout.
struct Record {
    started: Instant,
    /// Live runs: the first mirrored request, and the live judge's decision.
    first_mirrored: Option<std::time::Instant>,
    decided: Option<std::time::Instant>,
    timings: Timings,
    deploy: Option<Deployed>,
    action: Option<Value>,
    /// Where the messages go (`[notify]`); it counts those sent and failed.
    notifier: Option<crate::notify::Notifier>,
}

impl Record {
    fn mark(&self) -> Option<u64> {
        Some(millis(self.started.elapsed()))
    }
}

/// Runs a loaded scenario and returns the verdict's exit code.
///
/// # Errors
/// A [`Failure`] with exit 2 (the scenario or what it names is wrong), 3 (interrupted before
/// a verdict; the canary rolled back unless the scenario says otherwise) or 4 (a target, the
/// cluster or the deploy driver failed).
pub async fn run(loaded: Loaded, quiet: bool) -> Result<Exit, Failure> {
    let scenario = &loaded.scenario;
    let deployer = scenario
        .deploy
        .as_ref()
        .map(|d| Deployer::new(d, loaded.deploy_config.as_ref()))
        .transpose()
        .map_err(|e| op_failure("deploy", e))?;
    let canary_started = Cell::new(false);
    let mut record = Record {
        started: Instant::now(),
        first_mirrored: None,
        decided: None,
        timings: Timings::default(),
        deploy: None,
        action: None,
        notifier: scenario
            .notify
            .as_ref()
            .and_then(crate::notify::Spec::start),
    };
    let notifier = record.notifier.clone();
    tokio::select! {
        outcome = execute(scenario, deployer.as_ref(), &canary_started, &mut record, quiet) => outcome,
        () = shutdown_signal() => Err(interrupted(scenario, deployer.as_ref(), canary_started.get(), notifier).await),
    }
}

/// The rollback of an interrupted run, and the failure it ends with.
async fn interrupted(
    scenario: &Scenario,
    deployer: Option<&Deployer>,
    started: bool,
    notifier: Option<crate::notify::Notifier>,
) -> Failure {
    let (Some(deployer), Some(spec), true) = (deployer, &scenario.deploy, started) else {
        return Failure::interrupted(anyhow::anyhow!("interrupted; nothing was deployed"));
    };
    if !spec.rollback_on_interrupt {
        return Failure::interrupted(anyhow::anyhow!(
            "interrupted; the canary of {} is left running (rollback_on_interrupt = false): `nprt rollback {}` removes it",
            spec.service,
            spec.service
        ));
    }
    eprintln!(
        "interrupted: rolling back the canary of {} (interrupt again to leave it)…",
        spec.service
    );
    let t = Instant::now();
    let rollback = tokio::select! {
        result = deployer.run(Op::Rollback) => result,
        () = shutdown_signal() => {
            return Failure::interrupted(anyhow::anyhow!(
                "interrupted twice; the rollback of {} was abandoned and its canary may still run: `nprt rollback {}` removes it",
                spec.service,
                spec.service
            ))
        }
    };
    let took = seconds(Some(millis(t.elapsed())));
    let error = rollback.as_ref().err().map(|e| e.message.clone());
    let event = notify::action_event(scenario, Op::Rollback, "interrupted", error, None);
    notify::send(notifier, event).await;
    match rollback {
        Ok(_) => Failure::interrupted(anyhow::anyhow!(
            "interrupted; the canary of {} was rolled back in {took}",
            spec.service,
        )),
        Err(e) => op_failure(
            "interrupted, and the rollback of the canary failed (run `nprt rollback` by hand)",
            e,
        ),
    }
}

async fn execute(
    scenario: &Scenario,
    deployer: Option<&Deployer>,
    canary_started: &Cell<bool>,
    record: &mut Record,
    quiet: bool,
) -> Result<Exit, Failure> {
    let dir = &scenario.report.dir;
    crate::session::output::prepare_output_dir(dir, "report.dir")?;
    let targets = start_targets(scenario).await?;

    if let (Some(deployer), Some(spec)) = (deployer, &scenario.deploy) {
        eprintln!("deploying {} as a canary…", spec.service);
        canary_started.set(true);
        match deployer.canary().await {
            Ok(outcome) => {
                record.timings.to_deploy_ms = record.mark();
                eprintln!(
                    "canary {} {} rolled out after {}",
                    spec.service,
                    outcome.version,
                    seconds(record.timings.to_deploy_ms)
                );
                record.deploy = Some(outcome);
            }
            Err(e) => {
                let failure = op_failure("deploy of the canary", e);
                // A half-applied canary is cleaned up too; the deploy's error is the one
                // reported.
                clean_up_after_error(scenario, Some(deployer), record).await;
                return Err(failure);
            }
        }
    }

    let traffic = match traffic(scenario, &targets, record.deploy.as_ref(), quiet).await {
        Ok(t) => t,
        Err(failure) => {
            // A run that broke off after the deploy leaves no verdict: the canary is treated
            // as on an inconclusive one.
            if canary_started.get() {
                clean_up_after_error(scenario, deployer, record).await;
            }
            return Err(failure);
        }
    };
    record.timings.to_verdict_ms = record.mark();
    record.first_mirrored = traffic.first_mirrored;
    record.decided = traffic.decided;
    if let Some(first) = record.first_mirrored {
        let at = record.decided.unwrap_or_else(std::time::Instant::now);
        record.timings.verdict_after_first_mirror_ms =
            Some(millis(at.saturating_duration_since(first)));
    }
    eprint!("{}", traffic.log);
    let verdict = traffic.verdict;
    print!("{}", report::render(&verdict, Format::Text));

    let (on, action) = if !traffic.unreachable.is_empty() {
        ("unreachable", scenario.on_inconclusive)
    } else {
        match verdict.outcome {
            Outcome::Pass => ("pass", scenario.on_pass),
            Outcome::Fail => ("fail", scenario.on_fail),
            Outcome::Inconclusive => ("inconclusive", scenario.on_inconclusive),
        }
    };
    // The canary is handled first: the reports can wait, a regressed canary should not; the
    // verdict's message goes out beside it.
    let told = notify::verdict_event(scenario, &verdict, record.deploy.as_ref());
    let told = notify::send(record.notifier.clone(), told);
    let (acted, ()) = tokio::join!(act(scenario, deployer, action, on, record), told);
    write_reports(dir, &verdict)?;
    write_record(scenario, &verdict, record)?;
    print_summary(scenario, &verdict, record);
    acted?;
    if !traffic.unreachable.is_empty() {
        return Err(Failure::runtime(anyhow::anyhow!(
            "no request reached {}",
            traffic.unreachable.join(", ")
        )));
    }
    Ok(verdict.exit())
}

/// Sends the scenario's traffic to its targets and judges it.
async fn traffic(
    scenario: &Scenario,
    targets: &[Target],
    deployed: Option<&Deployed>,
    quiet: bool,
) -> Result<Traffic, Failure> {
    let comparison = Comparison::new(scenario.judge.options.clone()).map_err(Failure::bad_input)?;
    let dir = &scenario.report.dir;
    let observations = scenario
        .report
        .observations
        .then(|| dir.join("observations.ndjson"));
    let summary = scenario.report.summary.then(|| dir.join("summary.json"));
    Ok(match &scenario.source {
        Source::Recording(spec) => {
            let mut options = spec.options.clone();
            options.targets = targets.to_vec();
            let first = crate::session::replay::open_recording(&spec.path, spec.skip_bad)?;
            let source = recording_source(first, spec.path.clone(), spec.skip_bad);
            let total =
                crate::session::replay::planned_exchanges(&spec.path, spec.skip_bad, &options);
            let resources = resources(scenario, deployed, &comparison).await?;
            let done = ReplayRun {
                options,
                observations,
                summary,
                comparison: Some(comparison),
                quiet,
                total,
                resources,
            }
            .execute(source, std::future::pending())
            .await?;
            replayed(done)?
        }
        Source::Shadow(spec) | Source::Mirror(spec) => {
            let kind = if matches!(scenario.source, Source::Shadow(_)) {
                LiveSource::Shadow
            } else {
                LiveSource::Mirror
            };
            let find = |url: &Option<String>, name: &str| -> Result<Target, Failure> {
                match url {
                    Some(u) => Target::parse(&format!("{name}={u}")).map_err(bad),
                    None => targets
                        .iter()
                        .find(|t| t.name == name)
                        .cloned()
                        .ok_or_else(|| bad(format!("no target named `{name}`"))),
                }
            };
            let options = &scenario.judge.options;
            let primary = match kind {
                LiveSource::Shadow => Some(find(&spec.primary, &options.baseline)?),
                LiveSource::Mirror => None,
            };
            let shadow = find(&spec.settings.shadow, &options.candidate)?;
            // The baseline copy: given in the file, or the one deployed beside the canary
            // (`deploy.with_baseline`).
            let deployed_baseline = deployed.and_then(Deployed::baseline_url).map(str::to_owned);
            let baseline = spec
                .settings
                .shadow_baseline
                .clone()
                .or(deployed_baseline)
                .map(|u| Target::parse(&format!("{}={u}", crate::shadow::SHADOW_BASELINE)))
                .transpose()
                .map_err(bad)?;
            let live_options = crate::shadow::live_options(
                options.clone(),
                baseline.as_ref().map(|b| b.name.as_str()),
            );
            let comparison = Comparison::new(live_options).map_err(Failure::bad_input)?;
            live::run(Live {
                resources: resources(scenario, deployed, &comparison).await?,
                source: kind,
                spec,
                primary,
                shadow,
                baseline,
                comparison,
                observations,
                summary,
                quiet,
            })
            .await?
        }
    })
}

/// A replay's end as the scenario's traffic.
fn replayed(done: crate::session::replay::ReplayDone) -> Result<Traffic, Failure> {
    Ok(Traffic {
        first_mirrored: None,
        decided: None,
        log: done.summary.render(),
        unreachable: done
            .summary
            .unreachable_targets()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        verdict: done
            .verdict
            .ok_or_else(|| Failure::runtime(anyhow::anyhow!("the replay made no comparison")))?,
    })
}

/// The judge file's resource metrics for this run, checked against Prometheus.
async fn resources(
    scenario: &Scenario,
    deployed: Option<&Deployed>,
    comparison: &Comparison,
) -> Result<Option<ResourceJudge>, Failure> {
    ResourceJudge::prepare(comparison.options(), |name| {
        target_labels(scenario, deployed, name)
    })
    .await
}

/// What the placeholders of a resource query know of a target: its name, and for the
/// targets a deploy made (the candidate, and the baseline deployed beside it) the version,
/// track, namespace and workload; for the stable beside a canary, its track and workload.
fn target_labels(scenario: &Scenario, deployed: Option<&Deployed>, name: &str) -> TargetLabels {
    let mut labels = crate::session::prometheus::named(name);
    let Some(d) = deployed else {
        return labels;
    };
    let workload = |applied: &[String]| {
        applied.iter().find_map(|a| {
            let (kind, name) = a.split_once('/')?;
            matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet").then(|| name.to_owned())
        })
    };
    let namespace = d.services.first().map(|s| s.namespace.clone());
    let options = &scenario.judge.options;
    if name == options.candidate {
        labels.version = Some(d.version.clone());
        labels.track = Some(d.track.as_str().to_owned());
        labels.workload = workload(&d.applied);
        labels.namespace = namespace;
    } else if let Some(b) = d
        .baseline
        .as_ref()
        .filter(|_| name == options.baseline || name == crate::shadow::SHADOW_BASELINE)
    {
        labels.version = Some(b.version.clone());
        labels.track = Some("baseline".to_owned());
        labels.workload = workload(&b.applied);
        labels.namespace = namespace;
    } else if name == options.baseline {
        labels.track = Some("stable".to_owned());
        labels.workload = workload(&d.applied)
            .map(|w| w.strip_suffix("-canary").map_or(w.clone(), str::to_owned));
        labels.namespace = namespace;
    }
    labels
}

/// Binds the testbeds (on their own tasks, for the life of the process) and returns every
/// target: the fixed ones, then the testbeds.
async fn start_targets(scenario: &Scenario) -> Result<Vec<Target>, Failure> {
    let mut targets = scenario.targets.clone();
    for tb in &scenario.testbeds {
        let what = format!("testbed {}", tb.name);
        let url = crate::session::testbed::start(&what, tb.listen, tb.config.clone()).await?;
        eprintln!("testbed {} on {url}", tb.name);
        targets.push(Target::parse(&format!("{}={url}", tb.name)).map_err(bad)?);
    }
    Ok(targets)
}

/// Carries out `action` (chosen because the verdict was `on`), recording when it finished.
/// After a run broke off with an error, the canary is handled as on an inconclusive verdict;
/// a failure of that is printed, and the run's own error stays the one reported.
async fn clean_up_after_error(
    scenario: &Scenario,
    deployer: Option<&Deployer>,
    record: &mut Record,
) {
    if let Err(cleanup) = act(
        scenario,
        deployer,
        scenario.on_inconclusive,
        "error",
        record,
    )
    .await
    {
        eprintln!("Error: {:#}", cleanup.error);
    }
}

async fn act(
    scenario: &Scenario,
    deployer: Option<&Deployer>,
    action: Action,
    on: &str,
    record: &mut Record,
) -> Result<(), Failure> {
    let (op, Some(deployer), Some(spec)) = (
        match action {
            Action::Report => None,
            Action::Rollback => Some(Op::Rollback),
            Action::Promote => Some(Op::Promote),
        },
        deployer,
        &scenario.deploy,
    ) else {
        record.action = Some(json!({ "on": on, "action": "report" }));
        return Ok(());
    };
    let Some(op) = op else {
        record.action = Some(json!({ "on": on, "action": "report" }));
        return Ok(());
    };
    eprintln!("{on}: {} the canary of {}…", op.as_str(), spec.service);
    if let Some(decided) = record.decided {
        record.timings.action_start_after_verdict_ms = Some(millis(decided.elapsed()));
    }
    let result = deployer.run(op).await;
    let at = record.mark();
    if let Some(first) = record.first_mirrored {
        record.timings.action_after_first_mirror_ms = Some(millis(first.elapsed()));
    }
    match op {
        Op::Promote => record.timings.to_promote_ms = at,
        _ => record.timings.to_rollback_ms = at,
    }
    let error = result.as_ref().err().map(|e| e.message.clone());
    let event = notify::action_event(scenario, op, on, error, record.deploy.as_ref());
    notify::send(record.notifier.clone(), event).await;
    match result {
        Ok(outcome) => {
            record.action = Some(json!({ "on": on, "action": op.as_str(), "outcome": outcome }));
            Ok(())
        }
        Err(e) => {
            record.action = Some(json!({ "on": on, "action": op.as_str(), "error": e.message }));
            Err(op_failure(&format!("{} of the canary", op.as_str()), e))
        }
    }
}

fn write_record(scenario: &Scenario, verdict: &Verdict, record: &Record) -> Result<(), Failure> {
    let mut timings = record.timings;
    timings.total_ms = millis(record.started.elapsed());
    let value = json!({
        "schema": "nprt.scenario/v1",
        "scenario": scenario.name,
        "file": scenario.file.display().to_string(),
        "source": scenario.source.kind(),
        "baseline": verdict.baseline,
        "candidate": verdict.candidate,
        "verdict": verdict.outcome.as_str(),
        "exit": verdict.exit() as i32,
        "deploy": record.deploy,
        "action": record.action,
        "notifications": record.notifier.as_ref().map(crate::notify::Notifier::counts_json),
        "timing_ms": timings,
    });
    let dir = &scenario.report.dir;
    let text = serde_json::to_string_pretty(&value).map_err(Failure::runtime)? + "\n";
    let mut file = AtomicFile::create(&dir.join("scenario.json"))?;
    file.writer()
        .write_all(text.as_bytes())
        .map_err(Failure::runtime)?;
    file.commit()?;
    let mut file = AtomicFile::create(&dir.join("scenario.md"))?;
    file.writer()
        .write_all(markdown(scenario, verdict, record, &timings).as_bytes())
        .map_err(Failure::runtime)?;
    file.commit()
}

/// The times a run took and what it did after its verdict, as (label, value) rows: the
/// terminal summary and `scenario.md` show the same ones.
fn outcome_rows(t: &Timings, action: Option<&Value>) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("time to deploy", seconds(t.to_deploy_ms)),
        ("time to verdict", seconds(t.to_verdict_ms)),
        ("time to rollback", seconds(t.to_rollback_ms)),
    ];
    if t.to_promote_ms.is_some() {
        rows.push(("time to promote", seconds(t.to_promote_ms)));
    }
    if t.verdict_after_first_mirror_ms.is_some() {
        rows.push((
            "verdict after first copy",
            seconds(t.verdict_after_first_mirror_ms),
        ));
    }
    if t.action_start_after_verdict_ms.is_some() {
        rows.push((
            "action started after verdict",
            seconds(t.action_start_after_verdict_ms),
        ));
    }
    if let Some(a) = action {
        let on = a["on"].as_str().unwrap_or("");
        rows.push((
            "action",
            format!("{} (on {on})", a["action"].as_str().unwrap_or("")),
        ));
    }
    rows
}

/// The run at a glance, for a CI job summary above `report.md`.
fn markdown(scenario: &Scenario, verdict: &Verdict, record: &Record, t: &Timings) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## nprt scenario `{}`: {}\n",
        scenario.name,
        verdict.outcome.as_str().to_uppercase()
    );
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(
        md,
        "| candidate | `{}` vs baseline `{}` |",
        verdict.candidate, verdict.baseline
    );
    let _ = writeln!(md, "| source | {} |", scenario.source.kind());
    if let Some(d) = &record.deploy {
        let _ = writeln!(md, "| canary | {} {} |", d.service, d.version);
    }
    for (label, value) in outcome_rows(t, record.action.as_ref()) {
        let _ = writeln!(md, "| {label} | {value} |");
    }
    let _ = writeln!(md, "| exit code | {} |", verdict.exit() as i32);
    md
}

fn print_summary(scenario: &Scenario, verdict: &Verdict, record: &Record) {
    let t = &record.timings;
    let mut text = format!(
        "\nscenario {} ({}): {}, exit {}\n",
        scenario.name,
        scenario.file.display(),
        verdict.outcome.as_str().to_uppercase(),
        verdict.exit() as i32
    );
    for (label, value) in outcome_rows(t, record.action.as_ref()) {
        let _ = writeln!(text, "  {label:<17} {value}");
    }
    let _ = writeln!(
        text,
        "  reports           {}/ ({})",
        scenario.report.dir.display(),
        REPORT_FILES.join(", ")
    );
    print!("{text}");
    let _ = std::io::stdout().flush();
}

//! `nprt replay`: options into a [`crate::replay`] run, its outputs (observations, summary,
//! reports) and the comparison at the end.

use super::*;

#[derive(Debug, Args)]
pub(super) struct ReplayArgs {
    /// A GoReplay recording (.gor, or .gor.gz for gzip).
    recording: PathBuf,
    /// A service to send the traffic to, as NAME=URL; give one per target.
    #[arg(long = "target", value_name = "NAME=URL", required = true)]
    targets: Vec<String>,
    #[command(flatten)]
    spec: crate::spec::ReplaySpec,
    /// Print only the verdict: no progress, summary or warnings on stderr (errors still are).
    #[arg(long, short)]
    quiet: bool,
    /// Write one NDJSON observation per exchange per target to FILE.
    #[arg(long, value_name = "FILE")]
    observations: Option<PathBuf>,
    /// Write per-route, per-target counts and HdrHistograms to FILE: small, and merged exactly
    /// by `nprt compare` with the summaries of other shards.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Compare at the end: the target the candidate is judged against.
    #[arg(long, value_name = "NAME", requires = "candidate")]
    baseline: Option<String>,
    /// Compare at the end: the target being judged.
    #[arg(long, value_name = "NAME", requires = "baseline")]
    candidate: Option<String>,
    /// Write the comparison in every format into DIR (report.json, .txt, .html, .md, junit.xml).
    #[arg(long, value_name = "DIR", requires = "baseline")]
    report: Option<PathBuf>,
    #[command(flatten)]
    judge: JudgeArgs,
    #[command(flatten)]
    read: ReadArgs,
}

pub(super) async fn replay(args: ReplayArgs) -> CommandResult {
    use crate::session::prometheus::{named, ResourceJudge};
    let targets = args
        .targets
        .iter()
        .map(|t| Target::parse(t).map_err(usage("--target")))
        .collect::<Result<Vec<_>, _>>()?;
    if let (Some(b), Some(c)) = (&args.baseline, &args.candidate) {
        for name in [b, c] {
            if !targets.iter().any(|t| &t.name == name) {
                return Err(Failure::bad_input_msg(format!(
                    "`{name}` is not one of the --target names"
                )));
            }
        }
    }
    let mut options = args.spec.options().map_err(flag_error)?;
    options.targets = targets;
    // Opened once here so that a missing or unreadable file is reported before anything is
    // sent; `--loop` reopens it for each further pass.
    let first = open_recording(&args.recording, &args.read)?;
    let reader = recording_source(first, args.recording.clone(), args.read.skip_bad);
    let comparison = match (&args.baseline, &args.candidate) {
        (Some(b), Some(c)) => Some(new_comparison(b, c, None, &args.judge.spec)?),
        _ => None,
    };
    let total =
        crate::session::replay::planned_exchanges(&args.recording, args.read.skip_bad, &options);
    let resources = match &comparison {
        Some(c) => ResourceJudge::prepare(c.options(), named).await?,
        None => None,
    };
    let run = ReplayRun {
        options,
        observations: args.observations.clone(),
        summary: args.summary.clone(),
        comparison,
        quiet: args.quiet,
        total,
        resources,
    };
    run.check_outputs()?;
    if let Some(dir) = &args.report {
        crate::session::output::prepare_output_dir(dir, "--report")?;
    }
    let done = run.execute(reader, shutdown_signal()).await?;
    // --quiet leaves only the verdict (stdout) and errors.
    if !args.quiet {
        eprint!("{}", done.summary.render());
        if let Some(path) = &args.observations {
            eprintln!("observations written to {}", path.display());
        }
    }
    let unreachable = done.summary.unreachable_targets();
    let mut exit = if done.interrupted() {
        Exit::Inconclusive
    } else {
        Exit::Pass
    };
    if let Some(verdict) = &done.verdict {
        let text = report::render(verdict, args.judge.format.into());
        match (args.quiet, args.judge.format) {
            // --quiet: the verdict line alone (machine formats stay whole).
            (true, FormatArg::Text) => println!("{}", text.lines().next().unwrap_or_default()),
            _ => print!("{text}"),
        }
        if let Some(dir) = &args.report {
            write_reports(dir, verdict)?;
        }
        exit = verdict.exit();
    }
    if !unreachable.is_empty() && !done.interrupted() {
        return Err(unreachable_failure(&done.summary, &unreachable));
    }
    Ok(exit)
}

/// `no request reached canary (connect: Connection refused)`: with the reason, because under
/// `--quiet` this error is all that is printed.
fn unreachable_failure(summary: &crate::replay::ReplaySummary, names: &[&str]) -> Failure {
    let named: Vec<String> = names
        .iter()
        .map(|name| {
            match summary
                .targets
                .get(*name)
                .and_then(|t| t.first_error.as_ref())
            {
                Some(error) => format!("{name} ({error})"),
                None => (*name).to_owned(),
            }
        })
        .collect();
    Failure::runtime(anyhow::anyhow!("no request reached {}", named.join(", ")))
}

//! The command line: parse, validate, run, and map every outcome to an exit code.
//!
//! Results go to stdout (or the files asked for), logs and errors to stderr.

use crate::compare::{Comparison, Options as CompareOptions};
use crate::recording::{GorReader, ReadOptions};
use crate::replay::Target;
use crate::report::{self, Format};
use crate::session::compare::feed_files;
use crate::session::replay::{open_recording as open_gor, recording_source, ReplayRun};
use crate::session::{shutdown_signal, write_reports, AtomicFile, CommandResult, Failure};
use crate::Exit;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod capture;
mod deploy;
mod redact;
mod replay;
mod run;
mod shadow;

use capture::*;
use deploy::*;
use redact::*;
use replay::*;
use run::*;
use shadow::*;

#[derive(Debug, Parser)]
#[command(
    name = "nprt",
    version,
    about = "Nonfunctional production regression testing: replay real traffic to stable and canary, compare status codes and latency",
    after_help = "Exit codes: 0 pass, 1 regression, 2 bad input or usage, 3 inconclusive, 4 target unreachable."
)]
struct Cli {
    /// Log format on stderr (filter with RUST_LOG, e.g. RUST_LOG=nprt=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay the bundled recording to a stable and a regressed canary testbed and compare them.
    Demo(DemoArgs),
    /// Run a configurable HTTP service that answers any path (a stand-in stable or canary).
    Testbed(TestbedArgs),
    /// Record HTTP exchanges from a live interface or a pcap/pcapng file into a .gor file.
    Capture(CaptureArgs),
    /// Count what a recording holds: exchanges, methods, routes, status codes, time span.
    Inspect(InspectArgs),
    /// Copy a recording with secrets (credential headers, token query values) redacted.
    Redact(RedactArgs),
    /// Send every recorded request to every target and observe the answers.
    Replay(Box<ReplayArgs>),
    /// Compare the observations of a baseline and a candidate target.
    Compare(CompareArgs),
    /// Tee proxy: forward to the primary, mirror a copy to the shadow, judge the shadow live.
    Shadow(Box<ShadowArgs>),
    /// Passive mirror: capture live traffic, send each request to the shadow, judge it live.
    Mirror(Box<MirrorArgs>),
    /// Derive a judge file from an A/A run: two stable targets that got the same traffic.
    Calibrate(CalibrateArgs),
    /// List the services of a deploy.toml.
    Ls(LsArgs),
    /// Show one service's settings from a deploy.toml (secrets by reference only).
    Show(TagsArgs),
    /// Deploy a service's manifests at a commit as the stable release.
    Deploy(DeployArgs),
    /// Deploy a service at a commit as an isolated canary next to the stable release.
    Canary(DeployArgs),
    /// Delete a service's canary objects and wait until they are gone.
    Rollback(ServiceArgs),
    /// Deploy the canary's commit as the stable release, then remove the canary.
    Promote(ServiceArgs),
    /// Show the versions a service runs, read back from the cluster.
    Status(ServiceArgs),
    /// List the registry tags of a service's own (untagged) images.
    Tags(TagsArgs),
    /// Serve the deploy HTTP API (every call authenticated with the service's token).
    Serve(ServeArgs),
    /// Run a scenario file: deploy a canary, send traffic, judge, then report, promote or roll back.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Folder for the JSON report and the observations (default: a new temporary folder).
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct TestbedArgs {
    /// Address to listen on; port 0 picks a free port (the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    spec: crate::spec::testbed::TestbedSpec,
    /// Serve https with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// Skip malformed records (counted) instead of stopping at the first one.
    #[arg(long)]
    skip_bad: bool,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// A GoReplay recording (.gor, or .gor.gz for gzip).
    recording: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(Debug, Args)]
struct JudgeArgs {
    /// Output format of the comparison on stdout.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
    #[command(flatten)]
    spec: crate::spec::judge::JudgeSpec,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Text,
    Json,
    Html,
    Junit,
    Markdown,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Text => Format::Text,
            FormatArg::Json => Format::Json,
            FormatArg::Html => Format::Html,
            FormatArg::Junit => Format::Junit,
            FormatArg::Markdown => Format::Markdown,
        }
    }
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// Observation files (NDJSON) written by `nprt replay --observations`.
    #[arg(required = true)]
    observations: Vec<PathBuf>,
    /// The target the candidate is judged against.
    #[arg(long, value_name = "NAME")]
    baseline: String,
    /// The target being judged.
    #[arg(long, value_name = "NAME")]
    candidate: String,
    /// A second stable target: differences that also show between the two stables are
    /// discounted.
    #[arg(long, value_name = "NAME")]
    noise: Option<String>,
    #[command(flatten)]
    judge: JudgeArgs,
}

#[derive(Debug, Args)]
struct CalibrateArgs {
    /// Observation files (NDJSON) of an A/A run.
    #[arg(required = true)]
    observations: Vec<PathBuf>,
    /// One stable target.
    #[arg(long, value_name = "NAME")]
    baseline: String,
    /// The other stable target, which got the same traffic.
    #[arg(long, value_name = "NAME")]
    noise: String,
    /// Where to write the judge file (TOML).
    #[arg(long, value_name = "JUDGE.toml")]
    output: PathBuf,
    /// How far above the A/A differences the limits go (1.5 = 50% above).
    #[arg(long, value_name = "X", default_value_t = 1.5)]
    margin: f64,
    /// A judge file whose alpha, minimum samples and warm-up to keep.
    #[arg(long, value_name = "FILE")]
    judge: Option<PathBuf>,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::BadInput as i32
            } else {
                0 // --help, --version
            };
        }
    };
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return Exit::Runtime as i32;
        }
    };
    let outcome = runtime.block_on(run(cli.command));
    // Request tasks still waiting on a hung target must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match outcome {
        Ok(exit) => exit as i32,
        Err(failure) => {
            // Errors may quote input (a request target): never with its secrets.
            eprintln!("Error: {}", crate::redact::redact_text(&failure.message()));
            failure.exit() as i32
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only on a terminal: logs redirected to a file or a pipe stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn run(command: Command) -> CommandResult {
    match command {
        Command::Demo(args) => crate::demo::run(args.report).await,
        Command::Testbed(args) => testbed(args).await,
        Command::Capture(args) => capture(args).await,
        Command::Inspect(args) => inspect(&args),
        Command::Redact(args) => redact(&args),
        Command::Replay(args) => replay(*args).await,
        Command::Compare(args) => compare(&args).await,
        Command::Calibrate(args) => calibrate(&args),
        Command::Shadow(args) => shadow_proxy(*args).await,
        Command::Mirror(args) => mirror(*args).await,
        Command::Ls(args) => deploy_ls(&args).await,
        Command::Show(args) => deploy_show(&args).await,
        Command::Deploy(args) => deploy(&args, crate::deploy::rewrite::Track::Stable).await,
        Command::Canary(args) => deploy(&args, crate::deploy::rewrite::Track::Canary).await,
        Command::Rollback(args) => rollback(&args).await,
        Command::Promote(args) => promote(&args).await,
        Command::Status(args) => deploy_status(&args).await,
        Command::Tags(args) => deploy_tags(&args).await,
        Command::Serve(args) => serve(&args).await,
        Command::Run(args) => run_scenario(&args).await,
    }
}

async fn testbed(args: TestbedArgs) -> CommandResult {
    let config = args.spec.config().map_err(flag_error)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(std::sync::Arc::new(
            crate::tls::server_config(cert, key).map_err(Failure::bad_input)?,
        )),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = crate::session::testbed::bind("--listen", args.listen).await?;
    let addr = listener.local_addr().map_err(Failure::bad_input)?;
    println!("nprt testbed listening on {scheme}://{addr}");
    let _ = std::io::stdout().flush();
    // Ctrl-C or SIGTERM: requests in flight are answered before it exits.
    crate::testbed::serve_until(listener, config, tls, shutdown_signal())
        .await
        .map_err(Failure::bad_input)?;
    Ok(Exit::Pass)
}

/// A spec's mistake, named by its flag (`--max-in-flight: must be at least 1`).
fn flag_error(e: crate::spec::SpecError) -> Failure {
    Failure::bad_input_msg(e.for_flag())
}

fn usage(option: &'static str) -> impl Fn(String) -> Failure {
    move |message| Failure::bad_input(anyhow::anyhow!("{option}: {message}"))
}

fn open_recording(path: &Path, read: &ReadArgs) -> Result<GorReader, Failure> {
    open_gor(path, read.skip_bad)
}

fn inspect(args: &InspectArgs) -> CommandResult {
    let mut reader = open_recording(&args.recording, &args.read)?;
    let mut summary = crate::recording::Summary::default();
    for exchange in reader.by_ref() {
        summary.add(&exchange.map_err(Failure::bad_input)?);
    }
    let summary = summary.finish(reader.stats());
    let text = if args.json {
        serde_json::to_string_pretty(&summary).map_err(Failure::runtime)? + "\n"
    } else {
        summary.to_string()
    };
    print!("{text}");
    Ok(Exit::Pass)
}

fn new_comparison(
    baseline: &str,
    candidate: &str,
    noise: Option<&str>,
    judge: &crate::spec::judge::JudgeSpec,
) -> Result<Comparison, Failure> {
    let mut base = CompareOptions::new(baseline, candidate);
    base.noise = noise.map(str::to_owned);
    let options = judge.options(base).map_err(flag_error)?;
    Comparison::new(options).map_err(Failure::bad_input)
}

async fn compare(args: &CompareArgs) -> CommandResult {
    use crate::session::prometheus::{named, ResourceJudge};
    let mut comparison = new_comparison(
        &args.baseline,
        &args.candidate,
        args.noise.as_deref(),
        &args.judge.spec,
    )?;
    feed_files(&mut comparison, &args.observations)?;
    let (baseline, candidate) = comparison.requests();
    for (name, count) in [(&args.baseline, baseline), (&args.candidate, candidate)] {
        if count == 0 {
            return Err(no_observations(&comparison, name, &args.observations));
        }
    }
    let mut verdict = comparison.verdict();
    if let Some(judge) = ResourceJudge::prepare(comparison.options(), named).await? {
        judge.apply(&mut verdict, comparison.timeline()).await;
    }
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    print!(
        "{}",
        report::render_for(&verdict, args.judge.format.into(), tty)
    );
    Ok(verdict.exit())
}

fn no_observations(comparison: &Comparison, name: &str, paths: &[PathBuf]) -> Failure {
    let others: Vec<&str> = comparison.ignored_targets().collect();
    Failure::bad_input(anyhow::anyhow!(
        "no observation of target `{name}` in {}; other targets found: {}",
        join_paths(paths),
        if others.is_empty() {
            "none".to_owned()
        } else {
            others.join(", ")
        }
    ))
}

fn calibrate(args: &CalibrateArgs) -> CommandResult {
    if !(args.margin.is_finite() && args.margin >= 1.0) {
        return Err(Failure::bad_input_msg(format!(
            "--margin must be a number ≥ 1, got {}",
            args.margin
        )));
    }
    crate::session::output::check_output_file(&args.output, "--output")?;
    let judge = crate::spec::judge::JudgeSpec {
        file: args.judge.clone(),
        ..Default::default()
    };
    let mut comparison = new_comparison(&args.baseline, &args.noise, None, &judge)?;
    feed_files(&mut comparison, &args.observations)?;
    let (baseline, noise) = comparison.requests();
    for (name, count) in [(&args.baseline, baseline), (&args.noise, noise)] {
        if count == 0 {
            return Err(no_observations(&comparison, name, &args.observations));
        }
    }
    let verdict = comparison.verdict();
    if verdict.outcome == crate::compare::Outcome::Inconclusive {
        eprintln!("Error: too few requests to calibrate; nothing written");
        for note in &verdict.notes {
            eprintln!("  {note}");
        }
        return Ok(Exit::Inconclusive);
    }
    let text = crate::compare::calibrate::judge_file(&verdict, args.margin);
    let mut file = AtomicFile::create(&args.output)?;
    file.writer()
        .write_all(text.as_bytes())
        .map_err(Failure::runtime)?;
    file.commit()?;
    print!("{text}");
    eprintln!("judge file written to {}", args.output.display());
    Ok(Exit::Pass)
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

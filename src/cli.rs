//! The command line: parse, validate, run, and map every outcome to an exit code.
//!
//! Results go to stdout (or the files asked for), logs and errors to stderr.

use crate::compare::{Comparison, Options as CompareOptions};
use crate::observation::{self, Observation};
use crate::recording::{GorReader, ReadOptions};
use crate::replay::{MethodPolicy, Pacing, ReplayOptions, Target};
use crate::report::{self, Format};
use crate::testbed::{RouteEffect, RouteRule, TestbedConfig};
use crate::Exit;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Count what a recording holds: exchanges, methods, routes, status codes, time span.
    Inspect(InspectArgs),
    /// Send every recorded request to every target and observe the answers.
    Replay(ReplayArgs),
    /// Compare the observations of a baseline and a candidate target.
    Compare(CompareArgs),
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
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, Args)]
struct TagsArgs {
    /// The service, as named in deploy.toml.
    service: String,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Debug, Args)]
struct ClusterArgs {
    /// The kubeconfig context to use (default: the current context; in a pod, its service account).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Seconds to wait for rollouts and deletions.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    timeout: u64,
    /// Take over fields another field manager owns instead of failing on the conflict.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct ServiceArgs {
    /// The service, as named in deploy.toml.
    service: String,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, Args)]
struct DeployArgs {
    /// The service, as named in deploy.toml.
    service: String,
    /// The commit (or branch, or tag) whose manifests to deploy; default: the branch head.
    #[arg(long, value_name = "C")]
    commit: Option<String>,
    /// The image tag to deploy instead of the one tag_format gives for the commit.
    #[arg(long, value_name = "T")]
    tag: Option<String>,
    /// How the canary meets traffic: shadow (mirrored only) or shared (takes user traffic).
    #[arg(long, value_name = "shadow|shared")]
    exposure: Option<crate::deploy::Exposure>,
    /// Canary this workload even if no Service selects it; repeat for more. Only the named
    /// workloads get a canary.
    #[arg(long, value_name = "NAME")]
    workload: Vec<String>,
    /// Print the rewritten objects as YAML instead of applying them; contacts no cluster.
    #[arg(long)]
    dry_run: bool,
    /// Apply without checking that the registry has every image tag the release uses.
    #[arg(long)]
    skip_image_check: bool,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// The deploy driver's configuration.
    #[arg(long, value_name = "FILE", default_value = "deploy.toml")]
    config: PathBuf,
}

#[derive(Debug, Args)]
struct LsArgs {
    #[command(flatten)]
    config: ConfigArg,
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
    /// Base latency of every answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0.0)]
    latency: f64,
    /// Random extra latency, uniform between 0 and MS.
    #[arg(long, value_name = "MS", default_value_t = 0.0)]
    jitter: f64,
    /// Fraction of answers that are 500 errors (0 to 1).
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    error_rate: f64,
    /// Latency of one route instead of --latency, e.g. '/api/items/:id=40' or 'POST /orders=90'.
    #[arg(long, value_name = "ROUTE=MS")]
    route_latency: Vec<String>,
    /// Error rate of one route instead of --error-rate, e.g. '/api/pay=0.2'.
    #[arg(long, value_name = "ROUTE=F")]
    route_error_rate: Vec<String>,
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
struct ReplayArgs {
    /// A GoReplay recording (.gor, or .gor.gz for gzip).
    recording: PathBuf,
    /// A service to send the traffic to, as NAME=URL; give one per target.
    #[arg(long = "target", value_name = "NAME=URL", required = true)]
    targets: Vec<String>,
    /// Replay at the recording's pace times X (2 = twice as fast).
    #[arg(long, value_name = "X", default_value_t = 1.0, conflicts_with = "max")]
    speed: f64,
    /// Replay as fast as possible, with --concurrency exchanges in flight.
    #[arg(long)]
    max: bool,
    /// Exchanges in flight with --max.
    #[arg(long, value_name = "N", default_value_t = 16)]
    concurrency: usize,
    /// Which methods to send: safe (GET, HEAD, OPTIONS) or all.
    #[arg(long, value_enum, default_value_t = Methods::Safe)]
    methods: Methods,
    /// Time allowed per request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    timeout: u64,
    /// Write one NDJSON observation per exchange per target to FILE.
    #[arg(long, value_name = "FILE")]
    observations: Option<PathBuf>,
    /// Compare at the end: the target the candidate is judged against.
    #[arg(long, value_name = "NAME", requires = "candidate")]
    baseline: Option<String>,
    /// Compare at the end: the target being judged.
    #[arg(long, value_name = "NAME", requires = "baseline")]
    candidate: Option<String>,
    /// Write report.json and report.txt of the comparison into DIR.
    #[arg(long, value_name = "DIR", requires = "baseline")]
    report: Option<PathBuf>,
    #[command(flatten)]
    judge: JudgeArgs,
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Methods {
    Safe,
    All,
}

#[derive(Debug, Args)]
struct JudgeArgs {
    /// Output format of the comparison on stdout.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
    /// Fewest requests per target for a verdict other than inconclusive.
    #[arg(long, value_name = "N")]
    min_requests: Option<u64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Text,
    Json,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Text => Format::Text,
            FormatArg::Json => Format::Json,
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
    #[command(flatten)]
    judge: JudgeArgs,
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl Failure {
    pub(crate) fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            exit: Exit::BadInput,
            error: error.into(),
        }
    }
    pub(crate) fn runtime(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            exit: Exit::Runtime,
            error: error.into(),
        }
    }
}

type Outcome = Result<Exit, Failure>;

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
            eprintln!("Error: {}", error_chain(&failure.error));
            failure.exit as i32
        }
    }
}

/// The error and its causes on one line; a cause whose text the message already quotes is
/// not repeated.
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn run(command: Command) -> Outcome {
    match command {
        Command::Demo(args) => crate::demo::run(args.report).await,
        Command::Testbed(args) => testbed(args).await,
        Command::Inspect(args) => inspect(&args),
        Command::Replay(args) => replay(args).await,
        Command::Compare(args) => compare(&args),
        Command::Ls(args) => deploy_ls(&args),
        Command::Show(args) => deploy_show(&args),
        Command::Deploy(args) => deploy(&args, crate::deploy::rewrite::Track::Stable).await,
        Command::Canary(args) => deploy(&args, crate::deploy::rewrite::Track::Canary).await,
        Command::Rollback(args) => rollback(&args).await,
        Command::Promote(args) => promote(&args).await,
        Command::Status(args) => deploy_status(&args).await,
        Command::Tags(args) => deploy_tags(&args).await,
        Command::Serve(args) => serve(&args).await,
    }
}

async fn testbed(args: TestbedArgs) -> Outcome {
    let mut routes = Vec::new();
    for text in &args.route_latency {
        routes.push(
            RouteRule::parse(text, RouteEffect::LatencyMs).map_err(usage("--route-latency"))?,
        );
    }
    for text in &args.route_error_rate {
        routes.push(
            RouteRule::parse(text, RouteEffect::ErrorRate).map_err(usage("--route-error-rate"))?,
        );
    }
    let config = TestbedConfig {
        latency_ms: args.latency,
        jitter_ms: args.jitter,
        error_rate: args.error_rate,
        routes,
    };
    config.validate().map_err(Failure::bad_input_msg)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener.local_addr().map_err(Failure::runtime)?;
    println!("nprt testbed listening on http://{addr}");
    let _ = std::io::stdout().flush();
    tokio::select! {
        result = crate::testbed::serve(listener, config) => result.map_err(Failure::runtime)?,
        () = shutdown_signal() => {}
    }
    Ok(Exit::Pass)
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

impl Failure {
    fn bad_input_msg(message: String) -> Self {
        Failure::bad_input(anyhow::anyhow!(message))
    }
}

fn usage(option: &'static str) -> impl Fn(String) -> Failure {
    move |message| Failure::bad_input(anyhow::anyhow!("{option} {message}"))
}

fn open_recording(path: &Path, read: &ReadArgs) -> Result<GorReader, Failure> {
    let options = ReadOptions {
        skip_bad: read.skip_bad,
        ..ReadOptions::default()
    };
    GorReader::open(path, options).map_err(Failure::bad_input)
}

fn inspect(args: &InspectArgs) -> Outcome {
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
    judge: &JudgeArgs,
) -> Result<Comparison, Failure> {
    let mut options = CompareOptions::new(baseline, candidate);
    if let Some(n) = judge.min_requests {
        options.min_requests = n;
    }
    Comparison::new(options).map_err(Failure::bad_input)
}

fn compare(args: &CompareArgs) -> Outcome {
    let mut comparison = new_comparison(&args.baseline, &args.candidate, &args.judge)?;
    for path in &args.observations {
        for obs in observation::read_file(path).map_err(Failure::bad_input)? {
            comparison.add(&obs.map_err(Failure::bad_input)?);
        }
    }
    let (baseline, candidate) = comparison.requests();
    for (name, count) in [(&args.baseline, baseline), (&args.candidate, candidate)] {
        if count == 0 {
            let others: Vec<&str> = comparison.ignored_targets().collect();
            return Err(Failure::bad_input(anyhow::anyhow!(
                "no observation of target `{name}` in {}; other targets found: {}",
                join_paths(&args.observations),
                if others.is_empty() {
                    "none".to_owned()
                } else {
                    others.join(", ")
                }
            )));
        }
    }
    let verdict = comparison.verdict();
    print!("{}", report::render(&verdict, args.judge.format.into()));
    Ok(verdict.exit())
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn replay(args: ReplayArgs) -> Outcome {
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
    let options = ReplayOptions {
        targets,
        pacing: if args.max {
            Pacing::Max {
                concurrency: args.concurrency,
            }
        } else {
            Pacing::Original { speed: args.speed }
        },
        methods: match args.methods {
            Methods::Safe => MethodPolicy::Safe,
            Methods::All => MethodPolicy::All,
        },
        timeout: Duration::from_millis(args.timeout),
        ..ReplayOptions::default()
    };
    let reader = open_recording(&args.recording, &args.read)?;
    let comparison = match (&args.baseline, &args.candidate) {
        (Some(b), Some(c)) => Some(new_comparison(b, c, &args.judge)?),
        _ => None,
    };
    let run = ReplayRun {
        options,
        observations: args.observations.clone(),
        comparison,
    };
    let done = run.execute(reader).await?;
    eprint!("{}", done.summary.render());
    if let Some(path) = &args.observations {
        eprintln!("observations written to {}", path.display());
    }
    let unreachable = done.summary.unreachable_targets();
    if let Some(verdict) = done.verdict {
        print!("{}", report::render(&verdict, args.judge.format.into()));
        if let Some(dir) = &args.report {
            write_reports(dir, &verdict)?;
        }
        if !unreachable.is_empty() {
            return Err(Failure::runtime(anyhow::anyhow!(
                "no request reached {}",
                unreachable.join(", ")
            )));
        }
        return Ok(verdict.exit());
    }
    if !unreachable.is_empty() {
        return Err(Failure::runtime(anyhow::anyhow!(
            "no request reached {}",
            unreachable.join(", ")
        )));
    }
    Ok(Exit::Pass)
}

/// One replay with its outputs: the observations file (written only when the replay
/// completes) and the comparison fed as observations arrive.
pub(crate) struct ReplayRun {
    pub options: ReplayOptions,
    pub observations: Option<PathBuf>,
    pub comparison: Option<Comparison>,
}

pub(crate) struct ReplayDone {
    pub summary: crate::replay::ReplaySummary,
    pub verdict: Option<crate::compare::Verdict>,
}

impl ReplayRun {
    pub(crate) async fn execute<I>(self, exchanges: I) -> Result<ReplayDone, Failure>
    where
        I: Iterator<Item = Result<crate::recording::Exchange, crate::recording::RecordingError>>
            + Send
            + 'static,
    {
        let mut file = match &self.observations {
            Some(path) => Some(AtomicFile::create(path)?),
            None => None,
        };
        let mut comparison = self.comparison;
        let mut write_error: Option<std::io::Error> = None;
        let summary = crate::replay::run(exchanges, &self.options, |obs: &Observation| {
            if let Some(c) = comparison.as_mut() {
                c.add(obs);
            }
            if let (Some(f), None) = (file.as_mut(), &write_error) {
                if let Err(e) = observation::write_line(f.writer(), obs) {
                    write_error = Some(e);
                }
            }
        })
        .await
        .map_err(|e| match e {
            crate::replay::ReplayError::Task(_) => Failure::runtime(e),
            _ => Failure::bad_input(e),
        })?;
        if let Some(e) = write_error {
            return Err(Failure::runtime(e));
        }
        if let Some(f) = file {
            f.commit()?;
        }
        Ok(ReplayDone {
            summary,
            verdict: comparison.map(|c| c.verdict()),
        })
    }
}

/// Writes `report.json` and `report.txt` into `dir`, creating it.
pub(crate) fn write_reports(dir: &Path, verdict: &crate::compare::Verdict) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot create {}: {e}", dir.display())))?;
    for (name, format) in [("report.json", Format::Json), ("report.txt", Format::Text)] {
        let mut file = AtomicFile::create(&dir.join(name))?;
        file.writer()
            .write_all(report::render(verdict, format).as_bytes())
            .map_err(Failure::runtime)?;
        file.commit()?;
    }
    Ok(())
}

/// An output file that appears under its name only once it is complete.
pub(crate) struct AtomicFile {
    path: PathBuf,
    writer: std::io::BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    pub(crate) fn create(path: &Path) -> Result<Self, Failure> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".nprt-")
            .tempfile_in(dir)
            .map_err(|e| {
                Failure::runtime(anyhow::anyhow!("cannot write {}: {e}", path.display()))
            })?;
        Ok(AtomicFile {
            path: path.to_owned(),
            writer: std::io::BufWriter::new(temp),
        })
    }

    pub(crate) fn writer(&mut self) -> &mut impl Write {
        &mut self.writer
    }

    pub(crate) fn commit(self) -> Result<(), Failure> {
        let fail = |e: &dyn std::fmt::Display| {
            Failure::runtime(anyhow::anyhow!("cannot write {}: {e}", self.path.display()))
        };
        let temp = self.writer.into_inner().map_err(|e| fail(&e.error()))?;
        temp.persist(&self.path).map_err(|e| fail(&e.error))?;
        Ok(())
    }
}

fn load_deploy_config(arg: &ConfigArg) -> Result<crate::deploy::DeployConfig, Failure> {
    crate::deploy::DeployConfig::load(&arg.config).map_err(Failure::bad_input)
}

fn deploy_ls(args: &LsArgs) -> Outcome {
    let config = load_deploy_config(&args.config)?;
    for service in config.services.values() {
        println!(
            "{}\t{}\t{}\t{}/\tnamespace={}\texposure={}",
            service.name,
            service.repository,
            service.branch,
            service.manifests,
            service
                .namespace
                .as_deref()
                .unwrap_or("(kubeconfig default)"),
            match service.exposure {
                crate::deploy::Exposure::Shadow => "shadow",
                crate::deploy::Exposure::Shared => "shared",
            }
        );
    }
    Ok(Exit::Pass)
}

fn op_failure(e: crate::deploy::ops::OpError) -> Failure {
    if e.bad_input {
        Failure::bad_input(e)
    } else {
        Failure::runtime(e)
    }
}

fn settings(config: &ConfigArg, cluster: &ClusterArgs) -> crate::deploy::ops::Settings {
    crate::deploy::ops::Settings {
        cache: crate::deploy::git::default_cache_dir(),
        config_file: config.config.clone(),
        timeout: Duration::from_secs(cluster.timeout),
        force: cluster.force,
        skip_image_check: false,
    }
}

fn target(cluster: &ClusterArgs) -> crate::deploy::ops::Target {
    crate::deploy::ops::Target::Kubeconfig {
        context: cluster.context.clone(),
    }
}

fn print_outcome(outcome: &serde_json::Value) -> Outcome {
    println!("{outcome}");
    Ok(Exit::Pass)
}

async fn deploy(args: &DeployArgs, track: crate::deploy::rewrite::Track) -> Outcome {
    use crate::deploy::driver::{prepare, Request};
    let config = load_deploy_config(&args.config)?;
    let service = config.service(&args.service).map_err(Failure::bad_input)?;
    if let Some(tag) = &args.tag {
        if !crate::deploy::image::is_tag(tag) {
            return Err(Failure::bad_input_msg(format!(
                "--tag `{tag}` is not a valid image tag"
            )));
        }
    }
    let request = Request {
        track,
        commit: args.commit.clone(),
        tag: args.tag.clone(),
        exposure: args.exposure,
        workloads: args.workload.clone(),
    };
    let mut settings = settings(&args.config, &args.cluster);
    settings.skip_image_check = args.skip_image_check;
    if !args.dry_run {
        let outcome =
            crate::deploy::ops::deploy(&target(&args.cluster), service, &request, &settings)
                .await
                .map_err(op_failure)?;
        for workload in outcome["left_alone"].as_array().into_iter().flatten() {
            eprintln!("left alone: {}", workload.as_str().unwrap_or(""));
        }
        return print_outcome(&outcome);
    }
    let prepared = prepare(service, &request, &settings.cache).map_err(|e| op_failure(e.into()))?;
    eprintln!(
        "{} {} at {} as {} ({} objects from {} files)",
        track.as_str(),
        service.name,
        prepared.commit,
        prepared.release.version,
        prepared.plan.objects.len(),
        prepared.files
    );
    for (workload, why) in &prepared.plan.left_alone {
        eprintln!("left alone: {workload}: {why}");
    }
    let yaml =
        crate::deploy::manifest::to_yaml(&prepared.plan.objects).map_err(Failure::runtime)?;
    print!("{yaml}");
    if !yaml.ends_with('\n') {
        println!();
    }
    Ok(Exit::Pass)
}

async fn rollback(args: &ServiceArgs) -> Outcome {
    let config = load_deploy_config(&args.config)?;
    let service = config.service(&args.service).map_err(Failure::bad_input)?;
    let outcome = crate::deploy::ops::rollback(
        &target(&args.cluster),
        service,
        &settings(&args.config, &args.cluster),
    )
    .await
    .map_err(op_failure)?;
    print_outcome(&outcome)
}

async fn promote(args: &ServiceArgs) -> Outcome {
    let config = load_deploy_config(&args.config)?;
    let service = config.service(&args.service).map_err(Failure::bad_input)?;
    let outcome = crate::deploy::ops::promote(
        &target(&args.cluster),
        service,
        &settings(&args.config, &args.cluster),
    )
    .await
    .map_err(op_failure)?;
    print_outcome(&outcome)
}

async fn deploy_status(args: &ServiceArgs) -> Outcome {
    let config = load_deploy_config(&args.config)?;
    let service = config.service(&args.service).map_err(Failure::bad_input)?;
    let outcome = crate::deploy::ops::status(
        &target(&args.cluster),
        service,
        &settings(&args.config, &args.cluster),
    )
    .await
    .map_err(op_failure)?;
    for s in outcome["workloads"].as_array().into_iter().flatten() {
        let text = |key: &str| s[key].as_str().unwrap_or("-").to_owned();
        println!(
            "{}\t{}\t{}\t{}\tready {}",
            text("object"),
            text("track"),
            text("version"),
            text("commit"),
            text("ready")
        );
    }
    Ok(Exit::Pass)
}

async fn deploy_tags(args: &TagsArgs) -> Outcome {
    let config = load_deploy_config(&args.config)?;
    let service = config.service(&args.service).map_err(Failure::bad_input)?;
    let settings = crate::deploy::ops::Settings {
        cache: crate::deploy::git::default_cache_dir(),
        config_file: args.config.config.clone(),
        timeout: Duration::from_secs(30),
        force: false,
        skip_image_check: false,
    };
    let outcome = crate::deploy::ops::tags(service, &settings)
        .await
        .map_err(op_failure)?;
    for (image, tags) in outcome["images"].as_object().into_iter().flatten() {
        for tag in tags.as_array().into_iter().flatten() {
            println!("{image}\t{}", tag.as_str().unwrap_or(""));
        }
    }
    Ok(Exit::Pass)
}

async fn serve(args: &ServeArgs) -> Outcome {
    let config = load_deploy_config(&args.config)?;
    let api = crate::deploy::api::Api::new(
        config,
        target(&args.cluster),
        settings(&args.config, &args.cluster),
    )
    .map_err(Failure::bad_input_msg)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener.local_addr().map_err(Failure::runtime)?;
    println!("nprt deploy API listening on http://{addr}");
    let _ = std::io::stdout().flush();
    tokio::select! {
        result = crate::deploy::api::serve(listener, std::sync::Arc::new(api)) => result.map_err(Failure::runtime)?,
        () = shutdown_signal() => {}
    }
    Ok(Exit::Pass)
}

fn deploy_show(args: &TagsArgs) -> Outcome {
    let config = load_deploy_config(&args.config)?;
    let service = config.service(&args.service).map_err(Failure::bad_input)?;
    let secret = |s: &Option<crate::deploy::SecretRef>| match s {
        Some(crate::deploy::SecretRef::Env(var)) => format!("env {var}"),
        Some(crate::deploy::SecretRef::File(path)) => format!("file {}", path.display()),
        None => "none".to_owned(),
    };
    let outcome = serde_json::json!({
        "service": service.name,
        "repository": service.repository,
        "branch": service.branch,
        "manifests": service.manifests,
        "namespace": service.namespace,
        "exposure": match service.exposure {
            crate::deploy::Exposure::Shadow => "shadow",
            crate::deploy::Exposure::Shared => "shared",
        },
        "tag_format": service.tag_format,
        "commit_length": service.commit_length,
        "registry_username": service.registry.username,
        "registry_password": secret(&service.registry.password),
        "api_token": secret(&service.api_token),
    });
    let text = serde_json::to_string_pretty(&outcome).map_err(Failure::runtime)?;
    println!("{text}");
    Ok(Exit::Pass)
}

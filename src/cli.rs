//! The command line: parse, validate, run, and map every outcome to an exit code.
//!
//! Results go to stdout (or the files asked for), logs and errors to stderr.

use crate::compare::summary::HistogramSummary;
use crate::compare::{Comparison, Options as CompareOptions};
use crate::observation::{self, Observation};
use crate::recording::{GorReader, ReadOptions};
use crate::replay::{
    Filter, HeaderRule, MethodPolicy, Pacing, ReplayOptions, Rewrite, Source, Target,
};
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
    /// Record HTTP exchanges from a live interface or a pcap/pcapng file into a .gor file.
    Capture(CaptureArgs),
    /// Count what a recording holds: exchanges, methods, routes, status codes, time span.
    Inspect(InspectArgs),
    /// Send every recorded request to every target and observe the answers.
    Replay(Box<ReplayArgs>),
    /// Compare the observations of a baseline and a candidate target.
    Compare(CompareArgs),
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
    /// Serve https with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CaptureArgs {
    /// Read packets from this pcap or pcapng file.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "interface",
        conflicts_with = "interface"
    )]
    pcap: Option<PathBuf>,
    /// Capture live on this interface (needs root or CAP_NET_RAW), e.g. lo or eth0.
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// Server port of the HTTP traffic to capture; give one per port.
    #[arg(long = "port", value_name = "P", required = true)]
    ports: Vec<u16>,
    /// The recording to write (.gor, or .gor.gz for gzip); mode 0600.
    #[arg(long, value_name = "REC.gor")]
    output: PathBuf,
    /// Live: stop after this long, e.g. 30s, 5m, 1h (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after writing N exchanges.
    #[arg(long, value_name = "N")]
    max_exchanges: Option<u64>,
    /// Live capture engine (libpcap needs the `libpcap` cargo feature).
    #[arg(long, value_enum, default_value_t = Engine::AfPacket)]
    engine: Engine,
    /// libpcap engine: BPF filter (default: `tcp port P` for each --port).
    #[arg(long, value_name = "EXPR")]
    bpf: Option<String>,
    /// Live: print the counters to stderr every SECONDS.
    #[arg(long, value_name = "SECONDS")]
    stats: Option<u64>,
    /// Connections tracked at once.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_connections: usize,
    /// Largest message kept, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    max_message_bytes: usize,
    /// End a connection after this many seconds without packets.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    idle_timeout: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Engine {
    AfPacket,
    Libpcap,
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
    #[arg(long, value_name = "X", default_value_t = 1.0, conflicts_with_all = ["max", "rate"])]
    speed: f64,
    /// Send N exchanges per second, whatever the recorded timing (open model).
    #[arg(long, value_name = "N", conflicts_with = "max")]
    rate: Option<f64>,
    /// Replay as fast as possible, with --concurrency exchanges in flight (closed model).
    #[arg(long)]
    max: bool,
    /// Exchanges in flight with --max.
    #[arg(long, value_name = "N", default_value_t = 16)]
    concurrency: usize,
    /// With --speed or --rate: most requests in flight to one target; a send beyond it is
    /// recorded as an error, so a stalled target never delays the others.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_in_flight: usize,
    /// Stop sending after this long: 30s, 5m, 1h, 500ms.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after sending N exchanges.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Start the recording again when it ends (needs --limit or --duration).
    #[arg(long = "loop")]
    looping: bool,
    /// Which methods to send: safe (GET, HEAD, OPTIONS) or all.
    #[arg(long, value_enum, default_value_t = Methods::Safe)]
    methods: Methods,
    /// Send only these methods (repeatable); overrides --methods.
    #[arg(long, value_name = "METHOD")]
    allow_method: Vec<String>,
    /// Send only requests whose target (path and query) matches REGEX (repeatable).
    #[arg(long, value_name = "REGEX")]
    allow_url: Vec<String>,
    /// Do not send requests whose target matches REGEX (repeatable).
    #[arg(long, value_name = "REGEX")]
    deny_url: Vec<String>,
    /// Send only requests with a header matching NAME:REGEX (repeatable).
    #[arg(long, value_name = "NAME:REGEX")]
    allow_header: Vec<String>,
    /// Do not send requests with a header matching NAME:REGEX (repeatable).
    #[arg(long, value_name = "NAME:REGEX")]
    deny_header: Vec<String>,
    /// Send this percentage of the exchanges, the same ones on every run.
    #[arg(long, value_name = "PERCENT")]
    sample: Option<f64>,
    /// Replay shard I of N (0-based): a deterministic 1/N of the exchanges.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(u32, u32)>,
    /// Rewrite request targets, REGEX=REPLACEMENT with $1 groups (repeatable).
    #[arg(long, value_name = "REGEX=REPLACEMENT")]
    rewrite_url: Vec<String>,
    /// Set a header on every request, NAME:VALUE (repeatable).
    #[arg(long, value_name = "NAME:VALUE")]
    set_header: Vec<String>,
    /// Remove a header from every request (repeatable).
    #[arg(long, value_name = "NAME")]
    remove_header: Vec<String>,
    /// Send the recorded Host header instead of the target's.
    #[arg(long)]
    keep_host: bool,
    /// Speak HTTP/2 with prior knowledge (h2c) to the targets.
    #[arg(long)]
    h2: bool,
    /// Trust the CA certificates in this PEM file for https targets, besides the system's.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Time allowed per request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    timeout: u64,
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
    /// Fewest requests per target for a verdict other than inconclusive (overrides the judge
    /// file).
    #[arg(long, value_name = "N")]
    min_requests: Option<u64>,
    /// A judge file (TOML): alpha, thresholds, route overrides, minimum samples, warm-up.
    #[arg(long, value_name = "FILE")]
    judge: Option<PathBuf>,
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
    /// Also run the anytime-valid sequential judge over the pairs in file order, and report
    /// after how many pairs it would have stopped.
    #[arg(long)]
    sequential: bool,
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
        Command::Capture(args) => capture(args).await,
        Command::Inspect(args) => inspect(&args),
        Command::Replay(args) => replay(*args).await,
        Command::Compare(args) => compare(&args),
        Command::Calibrate(args) => calibrate(&args),
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
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(std::sync::Arc::new(
            crate::tls::server_config(cert, key).map_err(Failure::bad_input)?,
        )),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener.local_addr().map_err(Failure::runtime)?;
    println!("nprt testbed listening on {scheme}://{addr}");
    let _ = std::io::stdout().flush();
    tokio::select! {
        result = crate::testbed::serve(listener, config, tls) => result.map_err(Failure::runtime)?,
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

/// A replay source that yields `first` and then reopens `path` for each further pass.
fn recording_source(first: GorReader, path: PathBuf, skip_bad: bool) -> Source {
    let mut first = Some(first);
    Box::new(move || {
        let reader = match first.take() {
            Some(reader) => reader,
            None => GorReader::open(
                &path,
                ReadOptions {
                    skip_bad,
                    ..ReadOptions::default()
                },
            )?,
        };
        Ok(Box::new(reader) as crate::replay::Exchanges)
    })
}

/// Parses `30s`, `5m`, `1h`, `250ms` or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30s, 5m, 1h or 500ms"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// Parses `I/N` with `0 <= I < N`.
fn parse_shard(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("`{text}` is not a shard like 0/4 (index from 0, below the count)");
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

async fn capture(args: CaptureArgs) -> Outcome {
    use crate::capture::{run, CaptureError, Limits};
    let opts = run::Options {
        ports: args.ports.clone(),
        limits: Limits {
            max_connections: args.max_connections,
            max_message_bytes: args.max_message_bytes,
            idle_timeout_ns: args.idle_timeout.saturating_mul(1_000_000_000),
            ..Limits::default()
        },
        output: args.output.clone(),
        max_exchanges: args.max_exchanges,
    };
    let fail = |e: CaptureError| {
        if e.is_bad_input() {
            Failure::bad_input(e)
        } else {
            Failure::runtime(e)
        }
    };
    let report = if let Some(path) = args.pcap {
        tokio::task::spawn_blocking(move || run::from_file(&path, &opts))
            .await
            .map_err(Failure::runtime)?
            .map_err(fail)?
    } else {
        let interface = args.interface.unwrap_or_default();
        let live = crate::capture::live::LiveOptions {
            interface,
            duration: args.duration,
            stats_every: args.stats.map(Duration::from_secs),
            libpcap: matches!(args.engine, Engine::Libpcap),
            bpf: args.bpf.clone(),
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let signal = tokio::spawn(async move {
            shutdown_signal().await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let result =
            tokio::task::spawn_blocking(move || crate::capture::live::run(&live, &opts, &stop))
                .await
                .map_err(Failure::runtime)?;
        signal.abort();
        result.map_err(fail)?
    };
    eprint!("{report}");
    Ok(Exit::Pass)
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
    if let Some(path) = &judge.judge {
        options = read_judge_file(path, options)?;
    }
    if let Some(n) = judge.min_requests {
        options.min_requests = n;
    }
    Comparison::new(options).map_err(Failure::bad_input)
}

/// Reads a judge file on top of `base`; any problem is bad input naming the file and line.
fn read_judge_file(path: &Path, base: CompareOptions) -> Result<CompareOptions, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::bad_input(anyhow::anyhow!(
            "cannot read judge file {}: {e}",
            path.display()
        ))
    })?;
    crate::compare::judge_file::parse(&text, base).map_err(|e| {
        Failure::bad_input(anyhow::anyhow!(
            "{}:{}:{}: {}",
            path.display(),
            e.line,
            e.column,
            e.message
        ))
    })
}

fn compare(args: &CompareArgs) -> Outcome {
    let mut comparison = new_comparison(&args.baseline, &args.candidate, &args.judge)?;
    if args.noise.is_some() || args.sequential {
        let mut options = comparison.options().clone();
        options.noise = args.noise.clone();
        if args.sequential {
            options.sequential = Some(crate::compare::sequential::SequentialOptions {
                alpha: options.alpha,
                ..Default::default()
            });
        }
        comparison = Comparison::new(options).map_err(Failure::bad_input)?;
    }
    feed_files(&mut comparison, &args.observations)?;
    let (baseline, candidate) = comparison.requests();
    for (name, count) in [(&args.baseline, baseline), (&args.candidate, candidate)] {
        if count == 0 {
            return Err(no_observations(&comparison, name, &args.observations));
        }
    }
    let verdict = comparison.verdict();
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

fn calibrate(args: &CalibrateArgs) -> Outcome {
    if !(args.margin.is_finite() && args.margin >= 1.0) {
        return Err(Failure::bad_input_msg(format!(
            "--margin must be a number ≥ 1, got {}",
            args.margin
        )));
    }
    let judge = JudgeArgs {
        format: FormatArg::Text,
        min_requests: None,
        judge: args.judge.clone(),
    };
    let mut comparison = new_comparison(&args.baseline, &args.noise, &judge)?;
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

/// Feeds every observation of `paths` into `comparison`.
/// Whether `path` is a histogram summary (`replay --summary`) rather than observations.
fn is_summary(path: &Path) -> Result<bool, Failure> {
    use std::io::Read;
    let mut start = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut start))
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("{}: {e}", path.display())))?;
    Ok(HistogramSummary::sniff(&start[..n]))
}

fn feed_files(comparison: &mut Comparison, paths: &[PathBuf]) -> Result<(), Failure> {
    let mut observation_paths = Vec::new();
    for path in paths {
        if is_summary(path)? {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::bad_input(anyhow::anyhow!("{}: {e}", path.display())))?;
            let summary = HistogramSummary::from_json(&text)
                .map_err(|e| Failure::bad_input(anyhow::anyhow!("{}: {e}", path.display())))?;
            comparison.add_summary(&summary);
        } else {
            observation_paths.push(path);
        }
    }
    // The files are read in turn, one line each, so that when every target has its own file
    // (in the same exchange order) partners arrive close together and the bounded pending map
    // of the pairing does not overflow.
    let mut files = observation_paths
        .into_iter()
        .map(|path| observation::read_file(path).map_err(Failure::bad_input))
        .collect::<Result<Vec<_>, _>>()?;
    while !files.is_empty() {
        let mut i = 0;
        while i < files.len() {
            match files[i].next() {
                Some(obs) => {
                    comparison.add(&obs.map_err(Failure::bad_input)?);
                    i += 1;
                }
                None => {
                    drop(files.remove(i));
                }
            }
        }
    }
    Ok(())
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
    let regexes = |option: &'static str, patterns: &[String]| {
        patterns
            .iter()
            .map(|p| regex::Regex::new(p).map_err(|e| usage(option)(format!("`{p}`: {e}"))))
            .collect::<Result<Vec<_>, _>>()
    };
    let headers = |option: &'static str, rules: &[String]| {
        rules
            .iter()
            .map(|r| HeaderRule::parse(r).map_err(usage(option)))
            .collect::<Result<Vec<_>, _>>()
    };
    let filter = Filter {
        methods: match args.methods {
            Methods::Safe => MethodPolicy::Safe,
            Methods::All => MethodPolicy::All,
        },
        allow_methods: args
            .allow_method
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect(),
        allow_urls: regexes("--allow-url", &args.allow_url)?,
        deny_urls: regexes("--deny-url", &args.deny_url)?,
        allow_headers: headers("--allow-header", &args.allow_header)?,
        deny_headers: headers("--deny-header", &args.deny_header)?,
        sample_percent: args.sample,
        shard: args.shard,
    };
    let rewrite = Rewrite {
        urls: args
            .rewrite_url
            .iter()
            .map(|r| Rewrite::parse_url_rule(r).map_err(usage("--rewrite-url")))
            .collect::<Result<_, _>>()?,
        set_headers: args
            .set_header
            .iter()
            .map(|h| Rewrite::parse_header(h).map_err(usage("--set-header")))
            .collect::<Result<_, _>>()?,
        remove_headers: args.remove_header.clone(),
        keep_host: args.keep_host,
    };
    let options = ReplayOptions {
        targets,
        pacing: match (args.max, args.rate) {
            (true, _) => Pacing::Max {
                concurrency: args.concurrency,
            },
            (false, Some(per_second)) => Pacing::Rate { per_second },
            (false, None) => Pacing::Original { speed: args.speed },
        },
        filter,
        rewrite,
        timeout: Duration::from_millis(args.timeout),
        limit: args.limit,
        duration: args.duration,
        looping: args.looping,
        max_in_flight: args.max_in_flight,
        h2: args.h2,
        ca_cert: args.ca_cert.clone(),
    };
    // Opened once here so that a missing or unreadable file is reported before anything is
    // sent; `--loop` reopens it for each further pass.
    let first = open_recording(&args.recording, &args.read)?;
    let reader = recording_source(first, args.recording.clone(), args.read.skip_bad);
    let comparison = match (&args.baseline, &args.candidate) {
        (Some(b), Some(c)) => Some(new_comparison(b, c, &args.judge)?),
        _ => None,
    };
    let run = ReplayRun {
        options,
        observations: args.observations.clone(),
        summary: args.summary.clone(),
        comparison,
        quiet: args.quiet,
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
    /// Where to write the histogram summary, if anywhere.
    pub summary: Option<PathBuf>,
    pub comparison: Option<Comparison>,
    pub quiet: bool,
}

pub(crate) struct ReplayDone {
    pub summary: crate::replay::ReplaySummary,
    pub verdict: Option<crate::compare::Verdict>,
}

impl ReplayRun {
    pub(crate) async fn execute(self, source: Source) -> Result<ReplayDone, Failure> {
        let mut file = match &self.observations {
            Some(path) => Some(AtomicFile::create(path)?),
            None => None,
        };
        let mut comparison = self.comparison;
        let mut write_error: Option<std::io::Error> = None;
        let mut progress = crate::progress::Progress::new(self.quiet);
        let mut histograms = self.summary.as_ref().map(|_| HistogramSummary::default());
        let summary = crate::replay::run(source, &self.options, |obs: &Observation| {
            progress.observe(obs);
            if let Some(h) = histograms.as_mut() {
                h.add(obs);
            }
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
        });
        progress.finish();
        let summary = summary?;
        if let Some(e) = write_error {
            return Err(Failure::runtime(e));
        }
        if let Some(f) = file {
            f.commit()?;
        }
        if let (Some(path), Some(histograms)) = (&self.summary, histograms) {
            let mut f = AtomicFile::create(path)?;
            f.writer()
                .write_all(histograms.to_json().as_bytes())
                .map_err(Failure::runtime)?;
            f.commit()?;
        }
        Ok(ReplayDone {
            summary,
            verdict: comparison.map(|c| c.verdict()),
        })
    }
}

/// Writes the report in every format into `dir`, creating it: report.json, report.txt,
/// report.html, report.md and junit.xml.
pub(crate) fn write_reports(dir: &Path, verdict: &crate::compare::Verdict) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot create {}: {e}", dir.display())))?;
    let formats = [
        ("report.json", Format::Json),
        ("report.txt", Format::Text),
        ("report.html", Format::Html),
        ("report.md", Format::Markdown),
        ("junit.xml", Format::Junit),
    ];
    for (name, format) in formats {
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

/// Runs one cluster operation on the service `args` names, with its config and cluster.
async fn service_op(
    args: &ServiceArgs,
    op: impl AsyncFnOnce(
        &crate::deploy::ops::Target,
        &crate::deploy::config::ServiceConfig,
        &crate::deploy::ops::Settings,
    ) -> Result<serde_json::Value, crate::deploy::ops::OpError>,
) -> Result<serde_json::Value, Failure> {
    let config = load_deploy_config(&args.config)?;
    let service = config.service(&args.service).map_err(Failure::bad_input)?;
    op(
        &target(&args.cluster),
        service,
        &settings(&args.config, &args.cluster),
    )
    .await
    .map_err(op_failure)
}

async fn rollback(args: &ServiceArgs) -> Outcome {
    print_outcome(&service_op(args, crate::deploy::ops::rollback).await?)
}

async fn promote(args: &ServiceArgs) -> Outcome {
    print_outcome(&service_op(args, crate::deploy::ops::promote).await?)
}

async fn deploy_status(args: &ServiceArgs) -> Outcome {
    let outcome = service_op(args, crate::deploy::ops::status).await?;
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

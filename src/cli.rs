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
    /// Record HTTP exchanges from a live interface or a pcap/pcapng file into a .gor file.
    Capture(CaptureArgs),
    /// Count what a recording holds: exchanges, methods, routes, status codes, time span.
    Inspect(InspectArgs),
    /// Send every recorded request to every target and observe the answers.
    Replay(ReplayArgs),
    /// Compare the observations of a baseline and a candidate target.
    Compare(CompareArgs),
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

/// `90`, `90s`, `500ms`, `5m`, `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (num, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 5m or 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
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
            eprintln!("Error: {:#}", failure.error);
            failure.exit as i32
        }
    }
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
        Command::Replay(args) => replay(args).await,
        Command::Compare(args) => compare(&args),
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
            crate::replay::ReplayError::Recording(e) => Failure::bad_input(e),
            other => Failure::bad_input(other),
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

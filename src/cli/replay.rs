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
    /// Print only the verdict: no progress, summary or warnings on stderr (errors still are).
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
pub(super) enum Methods {
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

/// A replay source that yields `first` and then reopens `path` for each further pass.
pub(crate) fn recording_source(first: GorReader, path: PathBuf, skip_bad: bool) -> Source {
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

/// Parses `I/N` with `0 <= I < N`.
pub(super) fn parse_shard(text: &str) -> Result<(u32, u32), String> {
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

pub(super) async fn replay(args: ReplayArgs) -> Outcome {
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
        methods: args.methods.into(),
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
    // --quiet leaves only the verdict (stdout) and errors.
    if !args.quiet {
        eprint!("{}", done.summary.render());
        if let Some(path) = &args.observations {
            eprintln!("observations written to {}", path.display());
        }
    }
    let unreachable = done.summary.unreachable_targets();
    if let Some(verdict) = done.verdict {
        print!("{}", report::render(&verdict, args.judge.format.into()));
        if let Some(dir) = &args.report {
            write_reports(dir, &verdict)?;
        }
        if !unreachable.is_empty() {
            return Err(unreachable_failure(&done.summary, &unreachable));
        }
        return Ok(verdict.exit());
    }
    if !unreachable.is_empty() {
        return Err(unreachable_failure(&done.summary, &unreachable));
    }
    Ok(Exit::Pass)
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
        let names = self
            .options
            .targets
            .iter()
            .map(|t| t.name.clone())
            .collect();
        let mut progress = crate::progress::Progress::new(self.quiet, None, names);
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

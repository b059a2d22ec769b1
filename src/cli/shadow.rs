//! `nprt shadow` (the inline tee proxy) and `nprt mirror` (the passive mirror), on top of
//! [`crate::shadow`]: both judge the shadow live and end with the verdict's exit code.

use super::*;
use crate::progress::LiveCounters;
use crate::shadow::{
    self, ConnectionLimits, JudgeSettings, Metrics, MirrorPolicy, Mirroring, OnFail, ShadowTarget,
};
use std::sync::Arc;

#[derive(Debug, Args)]
pub(super) struct ShadowArgs {
    /// Address the proxy listens on (clients connect here); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The stable service: every request goes here and its response goes back to the client.
    #[arg(long, value_name = "URL")]
    primary: String,
    /// Client connections open at once; further ones are closed at once and counted.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_connections: usize,
    /// A client must send a whole request head within this long (against slowloris).
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "10s")]
    header_timeout: Duration,
    #[command(flatten)]
    mirror: MirrorSettings,
}

#[derive(Debug, Args)]
pub(super) struct MirrorArgs {
    /// Interface to capture on (needs root or CAP_NET_RAW), e.g. lo or eth0.
    #[arg(long, value_name = "IF")]
    interface: String,
    /// Server port of the stable service's HTTP traffic; give one per port.
    #[arg(long = "port", value_name = "P", required = true)]
    ports: Vec<u16>,
    /// Connections tracked at once by the capture.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_tracked_connections: usize,
    #[command(flatten)]
    mirror: MirrorSettings,
}

/// What the proxy and the passive mirror share: the shadow, what is mirrored, the judge.
#[derive(Debug, Args)]
struct MirrorSettings {
    /// The shadow (the isolated canary): copies of requests go here; its answers are only judged.
    #[arg(long, value_name = "URL")]
    shadow: String,
    /// A fresh copy of stable beside the canary (e.g. `nprt canary --with-baseline`'s
    /// SVC-baseline): every copy goes to it and to the canary at the same moment, the canary
    /// is judged against it, and primary vs baseline is the live A/A noise.
    #[arg(long, value_name = "URL")]
    shadow_baseline: Option<String>,
    /// Copies that waited inside nprt longer than this count as nprt saturated; above 1% of
    /// them the verdict is INCONCLUSIVE, never FAIL, on latency.
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "100ms")]
    max_queue_wait: Duration,
    /// Share of eligible requests mirrored, 0 to 100.
    #[arg(long, value_name = "P", default_value_t = 100.0)]
    mirror_percent: f64,
    /// Which methods are mirrored: safe (GET, HEAD, OPTIONS) or all (writes reach the shadow).
    #[arg(long, value_enum, default_value_t = Methods::Safe)]
    methods: Methods,
    /// Largest request body mirrored, in bytes; larger requests are not mirrored (counted).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_body: u64,
    /// Mirrored requests waiting for the shadow at most; beyond, they are dropped (counted).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    queue: usize,
    /// Requests in flight to the shadow at most.
    #[arg(long, value_name = "N", default_value_t = 64)]
    shadow_concurrency: usize,
    /// A shadow request without a complete answer after this long counts as an error.
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "10s")]
    shadow_timeout: Duration,
    /// Extra CA certificate (PEM) trusted for https primaries and shadows.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (/metrics).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Append every observation (primary and shadow) to this NDJSON file.
    #[arg(long, value_name = "FILE")]
    observations: Option<PathBuf>,
    /// A judge file (TOML): thresholds for the reports' fixed-horizon checks.
    #[arg(long, value_name = "FILE")]
    judge: Option<PathBuf>,
    /// Folder for the reports (JSON, text, HTML, Markdown, JUnit), rewritten periodically.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// How often the reports are rewritten while running.
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "30s")]
    report_every: Duration,
    /// Called once when the live judge fails the shadow (e.g. the deploy API's
    /// DELETE /SERVICE/canary); a bearer token is read from the NPRT_TOKEN environment variable.
    #[arg(long, value_name = "URL")]
    on_fail_url: Option<String>,
    /// Keep mirroring after the judge fails the shadow (default: stop at the first fail).
    #[arg(long)]
    keep_mirroring: bool,
    /// Method of the on-fail call.
    #[arg(long, value_name = "METHOD", default_value = "DELETE")]
    on_fail_method: String,
    /// Stop after this long (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// No start line or live counters on stderr (the verdict, the final counts and errors
    /// still print).
    #[arg(long, short)]
    quiet: bool,
}

impl MirrorSettings {
    /// Validates everything and opens the output files; nothing runs yet. `live` is cleared
    /// before the final report prints.
    fn mirroring(&self, live: &LiveCounters) -> Result<Mirroring, Failure> {
        let base = shadow::parse_base(&self.shadow).map_err(usage("--shadow"))?;
        let baseline = match &self.shadow_baseline {
            Some(url) => Some(crate::replay::Target {
                name: shadow::SHADOW_BASELINE.to_owned(),
                base: shadow::parse_base(url).map_err(usage("--shadow-baseline"))?,
            }),
            None => None,
        };
        if !(0.0..=100.0).contains(&self.mirror_percent) {
            return Err(Failure::bad_input_msg(format!(
                "--mirror-percent {} is not between 0 and 100",
                self.mirror_percent
            )));
        }
        if self.queue == 0 || self.shadow_concurrency == 0 {
            return Err(Failure::bad_input_msg(
                "--queue and --shadow-concurrency must be at least 1".into(),
            ));
        }
        let on_fail = match &self.on_fail_url {
            Some(url) => Some(OnFail {
                url: shadow::parse_url(url).map_err(usage("--on-fail-url"))?,
                method: hyper::Method::from_bytes(self.on_fail_method.as_bytes()).map_err(
                    |_| {
                        Failure::bad_input_msg(format!(
                            "--on-fail-method `{}` is not an HTTP method",
                            self.on_fail_method
                        ))
                    },
                )?,
                token: std::env::var("NPRT_TOKEN").ok().filter(|t| !t.is_empty()),
            }),
            None => None,
        };
        let mut options = CompareOptions::new(shadow::PRIMARY, shadow::SHADOW);
        if let Some(path) = &self.judge {
            options = read_judge_file(path, options)?;
        }
        let options = shadow::live_options(options, baseline.as_ref().map(|b| b.name.as_str()));
        let comparison = Comparison::new(options).map_err(Failure::bad_input)?;
        let observations: Option<Box<dyn Write + Send>> = match &self.observations {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        Failure::bad_input(anyhow::anyhow!("cannot open {}: {e}", path.display()))
                    })?;
                Some(Box::new(std::io::BufWriter::new(file)))
            }
            None => None,
        };
        if let Some(dir) = &self.report {
            std::fs::create_dir_all(dir).map_err(|e| {
                Failure::bad_input(anyhow::anyhow!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let dir = self.report.clone();
        let live = live.clone();
        let reports = Box::new(move |verdict: &crate::compare::Verdict, last: bool| {
            if let Some(dir) = &dir {
                if let Err(e) = write_reports(dir, verdict) {
                    tracing::error!(error = %e.error, "cannot write the reports");
                }
            }
            if last {
                live.stop();
                print!("{}", report::render(verdict, Format::Text));
                let _ = std::io::stdout().flush();
            }
        });
        Ok(Mirroring {
            primary_name: shadow::PRIMARY.to_owned(),
            target: ShadowTarget {
                canary: crate::replay::Target {
                    name: shadow::SHADOW.to_owned(),
                    base,
                },
                baseline,
                concurrency: self.shadow_concurrency,
                queue: self.queue,
                timeout: self.shadow_timeout,
                max_queue_wait: self.max_queue_wait,
                breaker: shadow::BreakerSettings::default(),
            },
            policy: MirrorPolicy {
                methods: self.methods.into(),
                percent: self.mirror_percent,
                max_body: self.max_body,
            },
            extra_ca: self.ca.clone(),
            judge: JudgeSettings {
                comparison,
                observations,
                report_every: self.report_every,
                on_fail,
                reports,
                backlog: 65_536,
                also: None,
                keep_mirroring: self.keep_mirroring,
                decided: None,
            },
        })
    }

    /// Prints the start line (`copies of ... from`) and starts `live` on `metrics`.
    fn announce(&self, label: &str, from: &str, metrics: &Arc<Metrics>, live: &LiveCounters) {
        let baseline = self.shadow_baseline.as_ref();
        let until = self.duration.map_or_else(
            || "until Ctrl-C or SIGTERM".to_owned(),
            |d| format!("for {d:?}"),
        );
        crate::progress::start_line(
            self.quiet,
            &format!(
                "{label}: copies of {}% of the {} {from} go to {}{}, judged live {until}",
                self.mirror_percent,
                if matches!(self.methods, Methods::All) {
                    "requests"
                } else {
                    "safe requests"
                },
                self.shadow,
                baseline.map_or_else(String::new, |b| format!(" and {b}")),
            ),
        );
        let metrics = Arc::clone(metrics);
        live.start(self.quiet, label, move || {
            let t = metrics.totals();
            format!(
                "requests {}, mirrored {}, not mirrored {}, dropped {}, shadow errors {}",
                t.requests,
                t.mirrored,
                t.skipped,
                t.dropped,
                metrics.shadow_errors()
            )
        });
    }

    /// Starts the metrics endpoint, if asked for.
    async fn serve_metrics(&self, metrics: &Arc<Metrics>) -> Result<(), Failure> {
        let Some(addr) = self.metrics else {
            return Ok(());
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot listen on {addr}: {e}")))?;
        let bound = listener.local_addr().map_err(Failure::runtime)?;
        println!("nprt metrics on http://{bound}/metrics");
        tokio::spawn(shadow::metrics::serve(listener, Arc::clone(metrics)));
        Ok(())
    }

    /// Resolves on Ctrl-C, SIGTERM or the end of `--duration`.
    fn stop(&self) -> impl std::future::Future<Output = ()> {
        let duration = self.duration;
        async move {
            match duration {
                Some(d) => tokio::select! {
                    () = shutdown_signal() => {}
                    () = tokio::time::sleep(d) => {}
                },
                None => shutdown_signal().await,
            }
        }
    }
}

pub(super) async fn shadow_proxy(args: ShadowArgs) -> Outcome {
    let primary = shadow::parse_base(&args.primary).map_err(usage("--primary"))?;
    let counters = LiveCounters::default();
    let mirroring = args.mirror.mirroring(&counters)?;
    let metrics = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot listen on {}: {e}", args.listen)))?;
    args.mirror.serve_metrics(&metrics).await?;
    let addr = listener.local_addr().map_err(Failure::runtime)?;
    println!("nprt shadow listening on http://{addr}");
    let _ = std::io::stdout().flush();
    let from = format!("to {}", args.primary);
    args.mirror.announce("shadow", &from, &metrics, &counters);
    let limits = ConnectionLimits {
        max_connections: args.max_connections,
        header_timeout: args.header_timeout,
        ..ConnectionLimits::default()
    };
    let outcome = shadow::run_proxy(
        listener,
        primary,
        mirroring,
        limits,
        metrics,
        args.mirror.stop(),
    )
    .await
    .map_err(Failure::runtime)?;
    counters.stop();
    finish(&outcome)
}

pub(super) async fn mirror(args: MirrorArgs) -> Outcome {
    let counters = LiveCounters::default();
    let mirroring = args.mirror.mirroring(&counters)?;
    let metrics = Arc::new(Metrics::new());
    args.mirror.serve_metrics(&metrics).await?;
    let from = format!("to ports {:?} on {}", args.ports, args.interface);
    args.mirror.announce("mirror", &from, &metrics, &counters);
    let live = crate::capture::live::LiveOptions {
        interface: args.interface.clone(),
        duration: args.mirror.duration,
        stats_every: None,
        libpcap: false,
        bpf: None,
    };
    let limits = crate::capture::Limits {
        max_connections: args.max_tracked_connections,
        ..crate::capture::Limits::default()
    };
    let outcome = shadow::passive::run_mirror(
        live,
        args.ports.clone(),
        limits,
        mirroring,
        metrics,
        shutdown_signal(),
    )
    .await
    .map_err(|e| match e.downcast_ref::<crate::capture::CaptureError>() {
        Some(c) if c.is_bad_input() => Failure::bad_input(e),
        _ => Failure::runtime(e),
    })?;
    counters.stop();
    eprint!("{}", outcome.capture);
    finish(&outcome.run)
}

/// Prints the counters and maps the verdict to the exit code.
fn finish(outcome: &shadow::RunOutcome) -> Outcome {
    let t = outcome.totals;
    eprintln!(
        "requests {}, mirrored {}, not mirrored {}, dropped {}{}",
        t.requests,
        t.mirrored,
        t.skipped,
        t.dropped,
        if outcome.judge.on_fail_called {
            "; the on-fail URL was called"
        } else {
            ""
        }
    );
    Ok(outcome.judge.verdict.exit())
}

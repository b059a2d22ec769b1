//! `nprt shadow` (the inline tee proxy) and `nprt mirror` (the passive mirror), on top of
//! [`crate::shadow`]: both judge the shadow live and end with the verdict's exit code.

use super::*;
use crate::progress::LiveCounters;
use crate::shadow::{self, ConnectionLimits, JudgeSettings, Metrics, Mirroring, OnFail};
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
    #[arg(long, value_name = "D", default_value = "10s")]
    header_timeout: crate::spec::Span,
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
    /// Connections tracked at once by the capture; beyond, the least recently active ones
    /// are ended, counted.
    #[arg(
        long,
        alias = "max-tracked-connections",
        value_name = "N",
        default_value_t = 100_000
    )]
    max_connections: usize,
    #[command(flatten)]
    mirror: MirrorSettings,
}

/// What the proxy and the passive mirror share: the shadow, what is mirrored, the judge.
#[derive(Debug, Args)]
struct MirrorSettings {
    #[command(flatten)]
    spec: crate::spec::MirrorSpec,
    /// Write every observation (primary and shadow) to this NDJSON file, as they come.
    #[arg(long, value_name = "FILE")]
    observations: Option<PathBuf>,
    /// A judge file (TOML): thresholds for the reports' fixed-horizon checks.
    #[arg(long, value_name = "FILE")]
    judge: Option<PathBuf>,
    /// Folder for the reports (JSON, text, HTML, Markdown, JUnit), rewritten periodically.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// How often the reports are rewritten while running.
    #[arg(long, value_name = "D", default_value = "30s")]
    report_every: crate::spec::Span,
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
    #[command(flatten)]
    notify: crate::notify::NotifyArgs,
    /// No start line or live counters on stderr (the verdict, the final counts and errors
    /// still print).
    #[arg(long, short)]
    quiet: bool,
}

impl MirrorSettings {
    /// The verdict's message (`--notify-url`); `run` names the command in it.
    fn notify(&self, run: &str) -> Result<Option<Arc<crate::notify::LiveVerdict>>, Failure> {
        let report = self.report.clone();
        self.notify
            .live(run, report)
            .map_err(Failure::bad_input_msg)
    }

    /// Validates everything and opens the output files; nothing runs yet. Every verdict is
    /// offered to `notify`, which sends the live judge's fail at once; `live` is cleared
    /// before the final report prints.
    fn mirroring(
        &self,
        notify: Option<Arc<crate::notify::LiveVerdict>>,
        live: &LiveCounters,
    ) -> Result<Mirroring, Failure> {
        let settings = self.settings()?;
        let url = settings.shadow.as_deref().unwrap_or_default();
        let canary = crate::replay::Target {
            name: shadow::SHADOW.to_owned(),
            base: shadow::parse_base(url).map_err(usage("--shadow"))?,
        };
        let baseline = match &settings.shadow_baseline {
            Some(url) => Some(crate::replay::Target {
                name: shadow::SHADOW_BASELINE.to_owned(),
                base: shadow::parse_base(url).map_err(usage("--shadow-baseline"))?,
            }),
            None => None,
        };
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
        let judge = crate::spec::judge::JudgeSpec {
            file: self.judge.clone(),
            ..Default::default()
        };
        let options = judge
            .options(CompareOptions::new(shadow::PRIMARY, shadow::SHADOW))
            .map_err(flag_error)?;
        let options = shadow::live_options(options, baseline.as_ref().map(|b| b.name.as_str()));
        let comparison = Comparison::new(options).map_err(Failure::bad_input)?;
        let observations = match &self.observations {
            Some(path) => Some(crate::session::output::stream_file(path, "--observations")?),
            None => None,
        };
        if let Some(dir) = &self.report {
            crate::session::output::prepare_output_dir(dir, "--report")?;
        }
        let dir = self.report.clone();
        let live = live.clone();
        let reports = Box::new(move |verdict: &crate::compare::Verdict, last: bool| {
            if let Some(dir) = &dir {
                if let Err(e) = write_reports(dir, verdict) {
                    tracing::error!(error = %e.error, "cannot write the reports");
                }
            }
            if let Some(n) = &notify {
                n.offer(verdict);
            }
            if last {
                live.stop();
                print!("{}", report::render(verdict, Format::Text));
                let _ = std::io::stdout().flush();
            }
        });
        Ok(Mirroring {
            primary_name: shadow::PRIMARY.to_owned(),
            target: settings.target(canary, baseline.clone()),
            policy: settings.policy,
            extra_ca: settings.ca.clone(),
            judge: JudgeSettings {
                comparison,
                observations,
                report_every: self.report_every.0,
                on_fail,
                reports,
                backlog: 65_536,
                also: None,
                keep_mirroring: self.keep_mirroring,
                decided: None,
                resources: None,
            },
        })
    }

    fn settings(&self) -> Result<crate::spec::live::MirrorSettings, Failure> {
        self.spec.settings().map_err(flag_error)
    }

    /// Prints the start line (`copies of ... from`) and starts `live` on `metrics`.
    fn announce(
        &self,
        label: &str,
        from: &str,
        mirroring: &Mirroring,
        metrics: &Arc<Metrics>,
        live: &LiveCounters,
    ) {
        let until = self.spec.duration.map_or_else(
            || "until Ctrl-C or SIGTERM".to_owned(),
            |d| format!("for {d}"),
        );
        // The URLs as the user wrote them; percent and methods as validated, with defaults.
        let s = &self.spec;
        crate::progress::start_line(
            self.quiet,
            &format!(
                "{label}: copies of {}% of the {} {from} go to {}{}, judged live {until}",
                mirroring.policy.percent,
                match (mirroring.policy.methods, mirroring.policy.grpc.is_empty()) {
                    (crate::replay::MethodPolicy::All, _) => "requests".to_owned(),
                    (crate::replay::MethodPolicy::Safe, true) => "safe requests".to_owned(),
                    (crate::replay::MethodPolicy::Safe, false) => format!(
                        "safe requests and gRPC calls to {}",
                        mirroring.policy.grpc.join(", ")
                    ),
                },
                s.shadow.as_deref().unwrap_or_default(),
                s.shadow_baseline
                    .as_ref()
                    .map_or_else(String::new, |b| format!(" and {b}")),
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
        let Some(addr) = self.spec.metrics else {
            return Ok(());
        };
        let listener = crate::session::testbed::bind("--metrics", addr).await?;
        let bound = listener.local_addr().map_err(Failure::bad_input)?;
        println!("nprt metrics on http://{bound}/metrics");
        tokio::spawn(shadow::metrics::serve(listener, Arc::clone(metrics)));
        Ok(())
    }

    /// Resolves on Ctrl-C, SIGTERM or the end of `--duration`.
    fn stop(&self) -> impl std::future::Future<Output = ()> {
        crate::session::signal::shutdown_or_after(self.spec.duration.map(|d| d.0))
    }
}

/// The judge file's resource metrics, checked against Prometheus before any traffic.
async fn with_resources(mirroring: &mut Mirroring) -> Result<(), Failure> {
    let judge = &mut mirroring.judge;
    let resources = crate::session::prometheus::ResourceJudge::prepare(
        judge.comparison.options(),
        crate::session::prometheus::named,
    )
    .await?;
    judge.resources = resources.map(Arc::new);
    Ok(())
}

pub(super) async fn shadow_proxy(args: ShadowArgs) -> CommandResult {
    let primary = shadow::parse_base(&args.primary).map_err(usage("--primary"))?;
    let notify = args.mirror.notify("shadow")?;
    let counters = LiveCounters::default();
    let mut mirroring = args.mirror.mirroring(notify.clone(), &counters)?;
    with_resources(&mut mirroring).await?;
    let metrics = Arc::new(Metrics::new());
    let listener = crate::session::testbed::bind("--listen", args.listen).await?;
    args.mirror.serve_metrics(&metrics).await?;
    let addr = listener.local_addr().map_err(Failure::bad_input)?;
    println!("nprt shadow listening on http://{addr}");
    let _ = std::io::stdout().flush();
    let from = format!("to {}", args.primary);
    args.mirror
        .announce("shadow", &from, &mirroring, &metrics, &counters);
    let limits = ConnectionLimits {
        max_connections: args.max_connections,
        header_timeout: args.header_timeout.0,
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
    if let Some(n) = notify {
        n.finish(&outcome.judge.verdict).await;
    }
    finish(&outcome)
}

pub(super) async fn mirror(args: MirrorArgs) -> CommandResult {
    let notify = args.mirror.notify("mirror")?;
    let counters = LiveCounters::default();
    let mut mirroring = args.mirror.mirroring(notify.clone(), &counters)?;
    with_resources(&mut mirroring).await?;
    let metrics = Arc::new(Metrics::new());
    args.mirror.serve_metrics(&metrics).await?;
    let from = format!("to ports {:?} on {}", args.ports, args.interface);
    args.mirror
        .announce("mirror", &from, &mirroring, &metrics, &counters);
    let live = crate::capture::live::LiveOptions {
        interface: args.interface.clone(),
        duration: args.mirror.spec.duration.map(|d| d.0),
        stats_every: None,
        libpcap: false,
        bpf: None,
    };
    let limits = crate::capture::Limits {
        max_connections: args.max_connections,
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
        // The capture is all on this machine (interface, permissions).
        Some(_) => Failure::bad_input(e),
        None => Failure::runtime(e),
    })?;
    counters.stop();
    eprint!("{}", outcome.capture);
    if let Some(n) = notify {
        n.finish(&outcome.run.judge.verdict).await;
    }
    finish(&outcome.run)
}

/// Prints the counters and maps the verdict to the exit code.
fn finish(outcome: &shadow::RunOutcome) -> CommandResult {
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

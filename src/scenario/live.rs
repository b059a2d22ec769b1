//! The live sources of a scenario: the inline shadow proxy and the passive mirror
//! (`src/shadow`), judged as the traffic flows. Every live run of `nprt run` goes through
//! [`run`], in three steps: build the mirroring (what is copied where, and the judge fed with
//! it), start the source until the judge decides, and collect the result (the summary file, the
//! totals, the times).

use super::file::{LiveSource, LiveSpec};
use crate::compare::sequential::Decision;
use crate::compare::summary::HistogramSummary;
use crate::compare::Comparison;
use crate::replay::Target;
use crate::session::Failure;
use crate::shadow::{self, JudgeSettings, Metrics, Mirroring, RunOutcome};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a live run needs: the settings from the scenario, the resolved targets, the
/// comparison to feed, and where its outputs go.
pub struct Live<'a> {
    pub source: LiveSource,
    pub spec: &'a LiveSpec,
    /// The shadow proxy's primary (for the mirror: none, the captured answers are the baseline).
    pub primary: Option<Target>,
    pub shadow: Target,
    /// The shadow's baseline copy: a fresh stable sent every copy beside the shadow.
    pub baseline: Option<Target>,
    pub comparison: Comparison,
    pub observations: Option<PathBuf>,
    pub summary: Option<PathBuf>,
    pub quiet: bool,
    /// The judge file's resource metrics, already checked against Prometheus.
    pub resources: Option<crate::session::prometheus::ResourceJudge>,
}

/// The end of a run of traffic, whatever its source.
pub struct Traffic {
    pub verdict: crate::compare::Verdict,
    /// What the source says about itself (sent, skipped, dropped), for stderr.
    pub log: String,
    /// Targets that answered nothing.
    pub unreachable: Vec<String>,
    /// Live runs: when the first request was mirrored, and when the live judge decided
    /// (the run ends then, not at its duration).
    pub first_mirrored: Option<std::time::Instant>,
    pub decided: Option<std::time::Instant>,
}

/// Runs the live source until the live judge decides or `live.spec.duration` passes, and
/// returns the verdict. (Ctrl-C is the scenario's business: it drops this future and rolls
/// back.)
///
/// # Errors
/// Bad input for unusable settings or output files; runtime when the proxy cannot listen or
/// the capture cannot start.
pub async fn run(live: Live<'_>) -> Result<Traffic, Failure> {
    let Live {
        source,
        spec,
        primary,
        shadow,
        baseline,
        comparison,
        observations,
        summary,
        quiet,
        resources,
    } = live;
    // The mirroring: what is copied where, and the judge fed with the answers.
    let histograms = summary
        .as_ref()
        .map(|_| Arc::new(Mutex::new(HistogramSummary::default())));
    let (decided_tx, decided_rx) = tokio::sync::oneshot::channel();
    let judge = judge_settings(
        comparison,
        observations.as_deref(),
        histograms.clone(),
        decided_tx,
        spec,
        resources.map(Arc::new),
    )?;
    let mirroring = mirroring(spec, primary.as_ref(), &shadow, baseline, judge);
    // The source, until the judge decides: the run ends then, so the scenario acts at once.
    let metrics = serve_metrics(spec).await?;
    let until_decided = until_decided(decided_rx, spec.duration);
    let (outcome, capture) = match source {
        LiveSource::Shadow => {
            let proxy = Proxy {
                spec,
                primary: primary.as_ref(),
                shadow: &shadow,
                quiet,
            };
            (proxy.run(mirroring, &metrics, until_decided).await?, None)
        }
        LiveSource::Mirror => passive_mirror(spec, mirroring, &metrics, until_decided).await?,
    };
    // The result.
    if let (Some(path), Some(histograms)) = (&summary, histograms) {
        write_summary(path, &histograms)?;
    }
    Ok(traffic(outcome, capture, &metrics))
}

/// What is copied where: the primary's name in the reports (the judge's baseline when there
/// is no primary), the shadow and its baseline copy, which requests, and the judge.
fn mirroring(
    spec: &LiveSpec,
    primary: Option<&Target>,
    shadow: &Target,
    baseline: Option<Target>,
    judge: JudgeSettings,
) -> Mirroring {
    let primary_name = primary.map_or_else(
        || judge.comparison.options().baseline.clone(),
        |t| t.name.clone(),
    );
    Mirroring {
        primary_name,
        target: spec.settings.target(shadow.clone(), baseline),
        policy: spec.settings.policy.clone(),
        extra_ca: spec.settings.ca.clone(),
        judge,
    }
}

/// The metrics, served on `metrics` when the settings name an address.
async fn serve_metrics(spec: &LiveSpec) -> Result<Arc<Metrics>, Failure> {
    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = spec.settings.metrics {
        let listener = crate::session::testbed::bind("shadow.metrics", addr).await?;
        tokio::spawn(shadow::metrics::serve(listener, Arc::clone(&metrics)));
    }
    Ok(metrics)
}

/// Resolves when the judge has decided, or when `duration` has passed.
async fn until_decided<T>(decided: tokio::sync::oneshot::Receiver<T>, duration: Duration) {
    let decided = async {
        if decided.await.is_err() {
            // The judge ended without deciding: the duration ends the run.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = decided => {}
        () = tokio::time::sleep(duration) => {}
    }
}

/// The live judge: the comparison, the observations file and the histograms it feeds, and
/// who is told when it decides. It reports nothing on its own: the scenario writes its reports
/// once, from the verdict returned.
fn judge_settings(
    comparison: Comparison,
    observations: Option<&Path>,
    histograms: Option<Arc<Mutex<HistogramSummary>>>,
    decided: tokio::sync::oneshot::Sender<Decision>,
    spec: &LiveSpec,
    resources: Option<Arc<crate::session::prometheus::ResourceJudge>>,
) -> Result<JudgeSettings, Failure> {
    let observations = match observations {
        Some(path) => Some(crate::session::output::stream_file(path, "observations")?),
        None => None,
    };
    let also = histograms.map(|h| {
        Box::new(move |o: &crate::observation::Observation| {
            if let Ok(mut h) = h.lock() {
                h.add(o);
            }
        }) as crate::shadow::judge::Tap
    });
    Ok(JudgeSettings {
        comparison,
        observations,
        report_every: spec.duration.max(Duration::from_secs(1)),
        on_fail: None,
        reports: Box::new(|_, _| {}),
        backlog: 65_536,
        also,
        keep_mirroring: false,
        decided: Some(decided),
        resources,
    })
}

/// The shadow proxy: where it listens, where users' requests go, and where the copies go.
struct Proxy<'a> {
    spec: &'a LiveSpec,
    /// Where users' requests go (none: the scenario named no primary, which is refused).
    primary: Option<&'a Target>,
    shadow: &'a Target,
    quiet: bool,
}

impl Proxy<'_> {
    /// Listens, and proxies and mirrors until `until` resolves.
    async fn run(
        self,
        mirroring: Mirroring,
        metrics: &Arc<Metrics>,
        until: impl Future<Output = ()>,
    ) -> Result<RunOutcome, Failure> {
        let (Some(listen), Some(primary)) = (self.spec.listen, self.primary) else {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "source.listen and a primary are needed for the shadow proxy"
            )));
        };
        let listener = crate::session::testbed::bind("shadow.listen", listen).await?;
        if !self.quiet {
            eprintln!(
                "shadow proxy on http://{listen} for {:?}: {} → {}, copies → {}",
                self.spec.duration, primary.name, primary.base, self.shadow.base
            );
        }
        shadow::run_proxy(
            listener,
            primary.base.clone(),
            mirroring,
            shadow::ConnectionLimits::default(),
            Arc::clone(metrics),
            until,
        )
        .await
        .map_err(Failure::runtime)
    }
}

/// The passive mirror: captures the service's port until `until` resolves; returns the run and
/// what the capture says about itself.
async fn passive_mirror(
    spec: &LiveSpec,
    mirroring: Mirroring,
    metrics: &Arc<Metrics>,
    until: impl Future<Output = ()>,
) -> Result<(RunOutcome, Option<String>), Failure> {
    let (Some(interface), Some(port)) = (spec.interface.clone(), spec.port) else {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "source.interface and source.port are needed for the passive mirror"
        )));
    };
    let live_options = crate::capture::live::LiveOptions {
        interface,
        duration: Some(spec.duration),
        stats_every: None,
        libpcap: false,
        bpf: None,
    };
    let outcome = shadow::passive::run_mirror(
        live_options,
        vec![port],
        crate::capture::Limits::default(),
        mirroring,
        Arc::clone(metrics),
        until,
    )
    .await
    .map_err(Failure::runtime)?;
    Ok((outcome.run, Some(outcome.capture.to_string())))
}

/// `summary.json`: the histograms of every judged observation.
fn write_summary(path: &Path, histograms: &Mutex<HistogramSummary>) -> Result<(), Failure> {
    let histograms = histograms
        .lock()
        .map_err(|_| Failure::runtime(anyhow::anyhow!("the summary was poisoned")))?;
    let mut file = crate::session::AtomicFile::create(path)?;
    std::io::Write::write_all(file.writer(), histograms.to_json().as_bytes())
        .map_err(Failure::runtime)?;
    file.commit()
}

/// The run's result: the verdict, what the source says about itself, and when the first copy
/// went out and the judge decided.
fn traffic(outcome: RunOutcome, capture: Option<String>, metrics: &Metrics) -> Traffic {
    let t = outcome.totals;
    let mut log = format!(
        "requests {}, mirrored {}, not mirrored {}, dropped {}\n",
        t.requests, t.mirrored, t.skipped, t.dropped
    );
    if let Some(capture) = capture {
        log.push_str(&capture);
    }
    Traffic {
        verdict: outcome.judge.verdict,
        log,
        unreachable: Vec::new(),
        first_mirrored: metrics.first_mirrored(),
        decided: metrics.decided(),
    }
}

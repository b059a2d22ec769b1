//! The live sources of a scenario: the inline shadow proxy and the passive mirror
//! (`src/shadow`), judged as the traffic flows. Every live run of `nprt run` goes through
//! [`run`].

use super::file::{LiveSource, LiveSpec};
use crate::compare::Comparison;
use crate::replay::Target;
use crate::session::Failure;
use std::path::PathBuf;

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
    use crate::compare::summary::HistogramSummary;
    use crate::shadow::{self, JudgeSettings, Metrics, Mirroring};
    use std::sync::{Arc, Mutex};

    let spec = live.spec;
    let observations = match &live.observations {
        Some(path) => Some(crate::session::output::stream_file(path, "observations")?),
        None => None,
    };
    let histograms = live
        .summary
        .as_ref()
        .map(|_| Arc::new(Mutex::new(HistogramSummary::default())));
    let also = histograms.clone().map(|h| {
        Box::new(move |o: &crate::observation::Observation| {
            if let Ok(mut h) = h.lock() {
                h.add(o);
            }
        }) as crate::shadow::judge::Tap
    });
    // The run ends the moment the live judge decides, so the scenario acts at once.
    let (decided_tx, decided_rx) = tokio::sync::oneshot::channel();
    let until_decided = {
        let duration = spec.duration;
        async move {
            let decided = async {
                if decided_rx.await.is_err() {
                    // The judge ended without deciding: the duration ends the run.
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = decided => {}
                () = tokio::time::sleep(duration) => {}
            }
        }
    };
    let primary_name = live.primary.as_ref().map_or_else(
        || live.comparison.options().baseline.clone(),
        |t| t.name.clone(),
    );
    let mirroring = Mirroring {
        primary_name,
        target: spec
            .settings
            .target(live.shadow.clone(), live.baseline.clone()),
        policy: spec.settings.policy,
        extra_ca: spec.settings.ca.clone(),
        judge: JudgeSettings {
            comparison: live.comparison,
            observations,
            // The scenario writes its reports once, from the verdict returned.
            report_every: spec.duration.max(std::time::Duration::from_secs(1)),
            on_fail: None,
            reports: Box::new(|_, _| {}),
            backlog: 65_536,
            also,
            keep_mirroring: false,
            decided: Some(decided_tx),
        },
    };
    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = spec.settings.metrics {
        let listener = crate::session::testbed::bind("shadow.metrics", addr).await?;
        tokio::spawn(shadow::metrics::serve(listener, Arc::clone(&metrics)));
    }
    let duration = spec.duration;
    let (outcome, capture) = match live.source {
        LiveSource::Shadow => {
            let (Some(listen), Some(primary)) = (spec.listen, &live.primary) else {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "source.listen and a primary are needed for the shadow proxy"
                )));
            };
            let listener = crate::session::testbed::bind("shadow.listen", listen).await?;
            if !live.quiet {
                eprintln!(
                    "shadow proxy on http://{listen} for {duration:?}: {} → {}, copies → {}",
                    primary.name, primary.base, live.shadow.base
                );
            }
            let outcome = shadow::run_proxy(
                listener,
                primary.base.clone(),
                mirroring,
                shadow::ConnectionLimits::default(),
                Arc::clone(&metrics),
                until_decided,
            )
            .await
            .map_err(Failure::runtime)?;
            (outcome, None)
        }
        LiveSource::Mirror => {
            let (Some(interface), Some(port)) = (spec.interface.clone(), spec.port) else {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "source.interface and source.port are needed for the passive mirror"
                )));
            };
            let live_options = crate::capture::live::LiveOptions {
                interface,
                duration: Some(duration),
                stats_every: None,
                libpcap: false,
                bpf: None,
            };
            let outcome = shadow::passive::run_mirror(
                live_options,
                vec![port],
                crate::capture::Limits::default(),
                mirroring,
                Arc::clone(&metrics),
                until_decided,
            )
            .await
            .map_err(Failure::runtime)?;
            (outcome.run, Some(outcome.capture))
        }
    };
    if let (Some(path), Some(histograms)) = (&live.summary, histograms) {
        let histograms = histograms
            .lock()
            .map_err(|_| Failure::runtime(anyhow::anyhow!("the summary was poisoned")))?;
        let mut file = crate::session::AtomicFile::create(path)?;
        std::io::Write::write_all(file.writer(), histograms.to_json().as_bytes())
            .map_err(Failure::runtime)?;
        file.commit()?;
    }
    let t = outcome.totals;
    let mut log = format!(
        "requests {}, mirrored {}, not mirrored {}, dropped {}\n",
        t.requests, t.mirrored, t.skipped, t.dropped
    );
    if let Some(capture) = capture {
        log.push_str(&capture.to_string());
    }
    Ok(Traffic {
        verdict: outcome.judge.verdict,
        log,
        unreachable: Vec::new(),
        first_mirrored: metrics.first_mirrored(),
        decided: metrics.decided(),
    })
}

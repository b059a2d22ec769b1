//! The live judge: one task that folds the primary's and the shadow's observations into a
//! [`Comparison`] with the sequential judge riding along, writes periodic reports, and on the
//! first `fail` stops mirroring and calls the on-fail URL exactly once.
//!
//! Nothing here is on the users' path: observations arrive through a bounded channel that is
//! only ever offered to (`try_send`); when it is full the observation is dropped and counted.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::sync::mpsc;

use super::metrics::{Drop, Metrics};
use crate::compare::sequential::Decision;
use crate::compare::{Comparison, Verdict};
use crate::observation::Observation;

/// Where the judge's verdicts go: called with each periodic verdict (`last == false`) and
/// the final one. The command line writes every report format from it.
pub type ReportSink = Box<dyn FnMut(&Verdict, bool) + Send>;

/// Something else that sees every judged observation.
pub type Tap = Box<dyn FnMut(&Observation) + Send>;

/// A request made once when the judge first fails, e.g. the deploy API's rollback route.
#[derive(Debug, Clone)]
pub struct OnFail {
    pub url: hyper::Uri,
    pub method: hyper::Method,
    /// Sent as `Authorization: Bearer …` (from the environment, never from the command line).
    pub token: Option<String>,
}

/// How the live judge runs.
pub struct JudgeSettings {
    pub comparison: Comparison,
    /// NDJSON observations, flushed at every report.
    pub observations: Option<Box<dyn Write + Send>>,
    pub report_every: Duration,
    pub on_fail: Option<OnFail>,
    pub reports: ReportSink,
    /// Observations waiting for the judge at most; beyond, they are dropped and counted.
    pub backlog: usize,
    /// Also sees every judged observation (e.g. to build a histogram summary).
    pub also: Option<Tap>,
    /// Keep mirroring after a `fail` (to watch a known-bad canary, or to benchmark).
    pub keep_mirroring: bool,
}

/// The sending side, cloned into every task that observes something.
#[derive(Clone)]
pub struct JudgeHandle {
    tx: mpsc::Sender<Observation>,
    metrics: Arc<Metrics>,
}

impl JudgeHandle {
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Offers an observation without ever waiting.
    pub fn send(&self, observation: Observation) {
        self.metrics.observed(&observation);
        if self.tx.try_send(observation).is_err() {
            self.metrics.dropped(Drop::JudgeBusy);
        }
    }
}

/// What the judge ended with.
pub struct JudgeOutcome {
    pub verdict: Verdict,
    /// The on-fail request was made (successfully or not; see the log).
    pub on_fail_called: bool,
}

/// Starts the judge task. `stopped` is set on the first `fail`, which stops mirroring. The
/// task ends once every [`JudgeHandle`] is dropped.
pub fn start(
    settings: JudgeSettings,
    metrics: Arc<Metrics>,
    stopped: Arc<AtomicBool>,
) -> (JudgeHandle, tokio::task::JoinHandle<JudgeOutcome>) {
    let (tx, rx) = mpsc::channel(settings.backlog.max(1));
    let handle = JudgeHandle {
        tx,
        metrics: Arc::clone(&metrics),
    };
    let task = tokio::spawn(run(rx, settings, metrics, stopped));
    (handle, task)
}

async fn run(
    mut rx: mpsc::Receiver<Observation>,
    mut settings: JudgeSettings,
    metrics: Arc<Metrics>,
    stopped: Arc<AtomicBool>,
) -> JudgeOutcome {
    let mut ticker = tokio::time::interval(settings.report_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut decision = Decision::Continue;
    let mut on_fail_call: Option<tokio::task::JoinHandle<()>> = None;
    let mut failed = false;
    loop {
        tokio::select! {
            observation = rx.recv() => {
                let Some(observation) = observation else { break };
                if let Some(out) = settings.observations.as_mut() {
                    if let Err(e) = crate::observation::write_line(out, &observation) {
                        tracing::warn!(error = %e, "cannot write the observations file; no longer writing it");
                        settings.observations = None;
                    }
                }
                settings.comparison.add(&observation);
                if let Some(also) = settings.also.as_mut() {
                    also(&observation);
                }
                let now = settings.comparison.sequential_decision().unwrap_or(Decision::Continue);
                if std::mem::discriminant(&now) != std::mem::discriminant(&decision) {
                    metrics.set_decision(&now);
                    decision = now;
                    if matches!(decision, Decision::Fail { .. }) && !failed {
                        failed = true;
                        if settings.keep_mirroring {
                            eprintln!("judge: fail — the shadow regressed; mirroring goes on (--keep-mirroring)");
                        } else {
                            stopped.store(true, Ordering::SeqCst);
                            eprintln!("judge: fail — the shadow regressed; mirroring stopped");
                        }
                        tracing::warn!(?decision, "the shadow regressed");
                        on_fail_call = settings.on_fail.clone().map(|o| tokio::spawn(call_on_fail(o)));
                        report(&mut settings, false).await;
                    }
                }
            }
            _ = ticker.tick() => {
                report(&mut settings, false).await;
            }
        }
    }
    let verdict = report(&mut settings, true).await;
    let on_fail_called = on_fail_call.is_some();
    if let Some(call) = on_fail_call {
        // The call has its own timeout; waiting for it here keeps it from being cut off.
        let _ = call.await;
    }
    JudgeOutcome {
        verdict,
        on_fail_called,
    }
}

/// Builds a verdict off the async threads (the bootstrap takes a while) and hands it on.
async fn report(settings: &mut JudgeSettings, last: bool) -> Verdict {
    if let Some(out) = settings.observations.as_mut() {
        let _ = out.flush();
    }
    let comparison = settings.comparison.clone();
    let verdict = match tokio::task::spawn_blocking(move || comparison.verdict()).await {
        Ok(v) => v,
        Err(_) => settings.comparison.verdict(),
    };
    (settings.reports)(&verdict, last);
    verdict
}

/// Makes the on-fail request, with an Alertmanager-shaped body so that the deploy API's
/// rollback route (which also takes Alertmanager webhooks) acts on it.
async fn call_on_fail(on_fail: OnFail) {
    let body = serde_json::json!({
        "version": "4",
        "status": "firing",
        "receiver": "nprt-shadow",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "NprtShadowRegression"},
            "annotations": {"summary": "nprt's live judge failed the shadow"},
        }],
    });
    let mut request = hyper::Request::builder()
        .method(on_fail.method.clone())
        .uri(on_fail.url.clone())
        .header("content-type", "application/json");
    if let Some(token) = &on_fail.token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let Ok(request) = request.body(Full::new(Bytes::from(body.to_string()))) else {
        tracing::error!("cannot build the on-fail request");
        return;
    };
    let client = match super::client(None, 1) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the on-fail client");
            return;
        }
    };
    let url = redacted(&on_fail.url);
    match tokio::time::timeout(Duration::from_secs(30), client.request(request)).await {
        Ok(Ok(response)) => {
            let status = response.status();
            eprintln!("on-fail: {} {url} answered {status}", on_fail.method);
            if !status.is_success() {
                tracing::error!(%status, %url, "the on-fail URL did not accept the call");
            }
        }
        Ok(Err(e)) => eprintln!("on-fail: {} {url} failed: {e}", on_fail.method),
        Err(_) => eprintln!("on-fail: {} {url} timed out after 30 s", on_fail.method),
    }
}

/// The URL without its query (which may carry a token), for messages.
fn redacted(url: &hyper::Uri) -> String {
    let port = url.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}{}",
        url.scheme_str().unwrap_or("http"),
        url.host().unwrap_or_default(),
        url.path()
    )
}

//! The live judge: one task that folds the primary's and the shadow's observations into a
//! [`Comparison`] with the sequential judge riding along, writes periodic reports, and on the
//! first `fail` stops mirroring and calls the on-fail URL exactly once.
//!
//! nprt's own queueing is judged too: when copies waited inside nprt longer than the bound
//! (or were dropped because nprt could not keep up), a latency difference may be nprt's, not
//! the canary's. Then latency findings are not held against the canary and the verdict is
//! INCONCLUSIVE with that reason, never FAIL ([`saturation`]); failures (5xx, no answer) are
//! still judged.
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
use crate::resource::ResourceResult;
use crate::session::prometheus::ResourceJudge;

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
    /// Told once when the sequential judge decides (pass, fail or inconclusive), so that a
    /// scenario can act at once instead of at the end of its duration.
    pub decided: Option<tokio::sync::oneshot::Sender<Decision>>,
    /// The judge file's resource metrics: looked at every `live_interval` during the run (a
    /// failing one stops mirroring like a failing sequential judge), judged in the final
    /// verdict.
    pub resources: Option<Arc<ResourceJudge>>,
}

/// The alpha of the k-th live look at the resource metrics (k from 1): α·6/(π²k²), which
/// sums to α over every look however long the run, so stopping on any look keeps the chance
/// of failing a healthy candidate at α (Bonferroni over the looks, spent as a series).
pub fn look_alpha(alpha: f64, k: u32) -> f64 {
    alpha * 6.0 / (std::f64::consts::PI.powi(2) * f64::from(k).powi(2))
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
    let mut look_ticker = look_ticker(&settings);
    let mut look: Option<tokio::task::JoinHandle<Option<ResourceResult>>> = None;
    let mut looks = 0u32;
    let mut resource_fail: Option<ResourceResult> = None;
    loop {
        tokio::select! {
            _ = look_ticker.tick(), if settings.resources.is_some() && look.is_none() && !failed => {
                looks += 1;
                look = Some(start_look(&settings, looks));
            }
            result = async { look.as_mut().expect("checked in the guard").await }, if look.is_some() => {
                look = None;
                if let (Ok(Some(r)), false) = (result, failed) {
                    failed = true;
                    let what = format!("resource metric \"{}\" regressed (live look {looks})", r.name);
                    on_fail_call = fail(&settings, &stopped, &what);
                    resource_fail = Some(r);
                }
            }
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
                let mut now = settings.comparison.sequential_decision().unwrap_or(Decision::Continue);
                if let Decision::Fail { pairs, elapsed_us, stream, .. } = now {
                    // Checked until a FAIL is taken (the sequential decision is sticky).
                    if !matches!(decision, Decision::Fail { .. })
                        && !stream_is_failures(stream)
                        && saturation(&metrics).is_some()
                    {
                        // The latency difference may be nprt's own queueing.
                        now = Decision::Inconclusive { pairs, elapsed_us };
                    }
                }
                if std::mem::discriminant(&now) != std::mem::discriminant(&decision) {
                    metrics.set_decision(&now);
                    decision = now;
                    if decision != Decision::Continue {
                        if let Some(decided) = settings.decided.take() {
                            let _ = decided.send(decision);
                        }
                    }
                    if matches!(decision, Decision::Fail { .. }) && !failed {
                        failed = true;
                        tracing::warn!(?decision, "the shadow regressed");
                        on_fail_call = fail(&settings, &stopped, "the shadow regressed");
                        report(&mut settings, &metrics).await;
                    }
                }
            }
            _ = ticker.tick() => {
                report(&mut settings, &metrics).await;
            }
        }
    }
    if let Some(look) = look {
        look.abort();
    }
    let verdict = final_verdict(&mut settings, &metrics, resource_fail).await;
    (settings.reports)(&verdict, true);
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

/// A FAIL taken: said on stderr, mirroring stopped (unless `--keep-mirroring`), and the
/// on-fail request started.
fn fail(
    settings: &JudgeSettings,
    stopped: &AtomicBool,
    what: &str,
) -> Option<tokio::task::JoinHandle<()>> {
    if settings.keep_mirroring {
        eprintln!("judge: fail — {what}; mirroring goes on (--keep-mirroring)");
    } else {
        stopped.store(true, Ordering::SeqCst);
        eprintln!("judge: fail — {what}; mirroring stopped");
    }
    settings
        .on_fail
        .clone()
        .map(|o| tokio::spawn(call_on_fail(o)))
}

/// Ticks every `live_interval` of the resource metrics (hourly and unused without them).
fn look_ticker(settings: &JudgeSettings) -> tokio::time::Interval {
    let every = settings
        .resources
        .as_ref()
        .map_or(Duration::from_secs(3600), |r| {
            Duration::from_millis(r.config().live_interval_ms)
        });
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// The k-th live look at the resource metrics, on its own task (queries take a while), at
/// its share of alpha, over the answers so far.
fn start_look(settings: &JudgeSettings, k: u32) -> tokio::task::JoinHandle<Option<ResourceResult>> {
    let alpha = look_alpha(settings.comparison.options().alpha, k);
    let judge = settings.resources.clone().expect("called with resources");
    let timeline = settings.comparison.timeline().clone();
    tokio::spawn(async move { judge.look(&timeline, alpha).await })
}

/// The last verdict: the comparison's, with the resource metrics judged over the whole run.
/// A metric a live look failed stays failed, whatever the final look says: mirroring stopped
/// on it.
async fn final_verdict(
    settings: &mut JudgeSettings,
    metrics: &Metrics,
    live_fail: Option<ResourceResult>,
) -> Verdict {
    let mut verdict = verdict_now(settings, metrics).await;
    if let Some(judge) = settings.resources.clone() {
        let timeline = settings.comparison.timeline().clone();
        let mut results = judge.results(&timeline).await;
        if let Some(failed) = live_fail {
            if let Some(slot) = results
                .iter_mut()
                .find(|r| r.name == failed.name && r.outcome != crate::compare::Outcome::Fail)
            {
                *slot = failed;
            }
        }
        verdict.add_resources(results);
    }
    verdict
}

/// A report during the run, handed on (not the last: that is [`final_verdict`]).
async fn report(settings: &mut JudgeSettings, metrics: &Metrics) {
    let verdict = verdict_now(settings, metrics).await;
    (settings.reports)(&verdict, false);
}

/// The comparison's verdict so far, built off the async threads (the bootstrap takes a
/// while), with the observations file flushed and nprt's own saturation accounted for.
async fn verdict_now(settings: &mut JudgeSettings, metrics: &Metrics) -> Verdict {
    if let Some(out) = settings.observations.as_mut() {
        let _ = out.flush();
    }
    let comparison = settings.comparison.clone();
    let mut verdict = match tokio::task::spawn_blocking(move || comparison.verdict()).await {
        Ok(v) => v,
        Err(_) => settings.comparison.verdict(),
    };
    account_for_nprt(&mut verdict, metrics);
    verdict
}

/// Whether a sequential stream is the failures' (not a latency level's).
fn stream_is_failures(stream: crate::compare::sequential::Stream) -> bool {
    matches!(stream, crate::compare::sequential::Stream::Errors)
}

/// Share of copies beyond which nprt counts as saturated.
const SATURATED_SHARE: f64 = 0.01;

/// Why nprt's own measurement cannot be trusted, if it cannot: copies waited inside nprt
/// longer than the bound, or were dropped because the queue or the judge could not keep up.
pub fn saturation(metrics: &Metrics) -> Option<String> {
    let q = metrics.queueing();
    let queue_full = metrics.dropped_count(Drop::QueueFull);
    let judge_busy = metrics.dropped_count(Drop::JudgeBusy);
    #[allow(clippy::cast_precision_loss)]
    let share = |part: u64, whole: u64| part as f64 / whole.max(1) as f64;
    let mut reasons = Vec::new();
    if q.sent >= 100 && share(q.late, q.sent) > SATURATED_SHARE {
        reasons.push(format!(
            "{:.1}% of copies waited inside nprt longer than the bound (p99 wait {:.1} ms)",
            100.0 * share(q.late, q.sent),
            q.wait_p99_ms
        ));
    }
    if share(queue_full, q.sent + queue_full) > SATURATED_SHARE {
        reasons.push(format!(
            "{queue_full} copies dropped because nprt's queue was full"
        ));
    }
    if judge_busy > 0 {
        reasons.push(format!(
            "{judge_busy} observations dropped because the judge could not keep up"
        ));
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// Adds what nprt itself did to a live verdict: its queue wait (kept out of the latencies),
/// the shadow's circuit breaker, and, when nprt was saturated, takes latency findings off the
/// canary: INCONCLUSIVE instead of FAIL, with the reason.
fn account_for_nprt(verdict: &mut crate::compare::Verdict, metrics: &Metrics) {
    use crate::compare::rules::{Metric, Severity};
    use crate::compare::Outcome;
    let q = metrics.queueing();
    if q.sent > 0 {
        verdict.notes.push(format!(
            "nprt's queue: copies waited p50 {:.2} ms, p99 {:.2} ms inside nprt before they \
             were sent (not counted in any latency)",
            q.wait_p50_ms, q.wait_p99_ms
        ));
    }
    let down = metrics.skipped_count(super::Skip::ShadowDown);
    if q.breaker_opened > 0 || down > 0 {
        verdict.notes.push(format!(
            "the shadow refused or timed out repeatedly: its circuit opened {} time{}, {down} \
             cop{} not sent while it was open",
            q.breaker_opened,
            if q.breaker_opened == 1 { "" } else { "s" },
            if down == 1 { "y" } else { "ies" },
        ));
    }
    let Some(reason) = saturation(metrics) else {
        return;
    };
    let sequential_latency = verdict.sequential.as_ref().is_some_and(
        |s| matches!(s.decision, Decision::Fail { stream, .. } if !stream_is_failures(stream)),
    );
    let mut demoted = 0;
    for f in &mut verdict.findings {
        let latency = match f.metric {
            Metric::P99Latency | Metric::LatencyShift | Metric::LatencyDistribution => true,
            Metric::Sequential => sequential_latency,
            // Resources are queried from Prometheus, not timed by nprt.
            Metric::FailureRate | Metric::NewStatus | Metric::Resource => false,
        };
        if latency && f.severity == Severity::Fail {
            f.severity = Severity::Info;
            f.message = format!("not judged, nprt was saturated: {}", f.message);
            demoted += 1;
        }
    }
    verdict.notes.push(format!(
        "nprt itself was saturated ({reason}): latency differences are not held against the \
         candidate"
    ));
    if demoted > 0
        && verdict.outcome == Outcome::Fail
        && !verdict
            .findings
            .iter()
            .any(|f| f.severity == Severity::Fail)
    {
        verdict.outcome = Outcome::Inconclusive;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::{error_regression, p99_regression};
    use crate::compare::Outcome;
    use std::time::Duration;

    #[test]
    fn a_saturated_nprt_turns_a_latency_fail_into_inconclusive_with_the_reason() {
        let metrics = Metrics::new();
        for i in 0..200u64 {
            // 5% of the copies waited longer than the bound.
            let late = i % 20 == 0;
            metrics.queue_wait(Duration::from_millis(if late { 300 } else { 1 }), late);
        }
        let mut v = p99_regression().verdict();
        assert_eq!(v.outcome, Outcome::Fail);
        account_for_nprt(&mut v, &metrics);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        let notes = v.notes.join("\n");
        assert!(notes.contains("nprt itself was saturated"), "{notes}");
        assert!(notes.contains("5.0% of copies waited"), "{notes}");
        assert!(notes.contains("nprt's queue: copies waited p50"), "{notes}");
    }

    #[test]
    fn failures_still_fail_a_saturated_run_and_a_quiet_one_is_left_alone() {
        let saturated = Metrics::new();
        saturated.dropped(Drop::JudgeBusy);
        let mut v = error_regression().verdict();
        assert_eq!(v.outcome, Outcome::Fail);
        account_for_nprt(&mut v, &saturated);
        assert_eq!(
            v.outcome,
            Outcome::Fail,
            "5xx are the canary's, whatever nprt did"
        );

        let quiet = Metrics::new();
        for _ in 0..200 {
            quiet.queue_wait(Duration::from_millis(1), false);
        }
        assert!(saturation(&quiet).is_none());
        let mut v = p99_regression().verdict();
        account_for_nprt(&mut v, &quiet);
        assert_eq!(v.outcome, Outcome::Fail);
    }
}

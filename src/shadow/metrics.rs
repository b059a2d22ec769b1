//! What the shadow proxy and the passive mirror count, exposed in the Prometheus/OpenMetrics
//! text format on `--metrics ADDR` (prometheus-client does the encoding).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

use super::forward::Skip;
use crate::compare::sequential::Decision;
use crate::observation::Observation;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    target: String,
    /// The status code, or "error" when no response arrived.
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// Why mirrored work was thrown away; each is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// The mirror queue was full.
    QueueFull,
    /// The judge could not keep up; the observation was not judged.
    JudgeBusy,
    /// A client connection beyond `--max-connections` was closed at once.
    Connections,
}

impl Drop {
    fn as_str(self) -> &'static str {
        match self {
            Drop::QueueFull => "queue_full",
            Drop::JudgeBusy => "judge_busy",
            Drop::Connections => "connections",
        }
    }
}

const STATES: [&str; 4] = ["continue", "pass", "fail", "inconclusive"];

/// The counters; cheap to update from any task (atomics), shared by `Arc`.
pub struct Metrics {
    registry: Registry,
    requests: Counter,
    mirrored: Counter,
    skipped: Family<Reason, Counter>,
    dropped: Family<Reason, Counter>,
    shadow_errors: Counter,
    latency: Family<TargetLabel, Histogram>,
    statuses: Family<StatusLabel, Counter>,
    verdict: Family<StateLabel, Gauge>,
    queue_wait: Histogram,
    breaker_opened: Family<TargetLabel, Counter>,
    /// Plain copies of a few counters, for the final summary line and the tests.
    plain: [AtomicU64; 4],
    /// nprt's own queueing of the copies, for the verdict's saturation rule.
    waits: Mutex<Waits>,
    first_mirrored: OnceLock<Instant>,
    decided: OnceLock<Instant>,
}

/// How long copies waited inside nprt before they were sent, in µs.
struct Waits {
    histogram: hdrhistogram::Histogram<u64>,
    /// Copies that waited longer than the bound given with them.
    late: u64,
    breaker_opened: u64,
}

/// nprt's own queueing so far: excluded from the latencies, and the reason for an
/// INCONCLUSIVE verdict when it grows too large.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Queueing {
    /// Copies that were sent (their wait measured).
    pub sent: u64,
    pub wait_p50_ms: f64,
    pub wait_p99_ms: f64,
    /// Copies that waited longer than the saturation bound.
    pub late: u64,
    /// Times a shadow endpoint's circuit opened.
    pub breaker_opened: u64,
}

/// Totals for the summary printed at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub mirrored: u64,
    pub skipped: u64,
    pub dropped: u64,
}

impl Waits {
    fn new() -> Waits {
        Waits {
            // 1 µs .. 1 h at 2 significant digits.
            histogram: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2)
                .expect("1 µs to 1 h at 2 significant digits is valid"),
            late: 0,
            breaker_opened: 0,
        }
    }
}

/// Registers `metric` under `name` and hands it back: the registry keeps one handle, the
/// `Metrics` field the other (both update the same atomics).
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered (in the order the exposition lists them), and every skip and
    /// drop reason and verdict state shown from the start, at 0, so a dashboard sees the
    /// series before the first event.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let r = &mut registry;
        let queue_wait = registered(
            r,
            "nprt_shadow_queue_wait_seconds",
            "How long copies waited inside nprt before they were sent (not part of any latency)",
            // 10 µs to ~5 s, doubling.
            Histogram::new(exponential_buckets(0.000_01, 2.0, 20)),
        );
        let breaker_opened = registered(
            r,
            "nprt_shadow_breaker_opened",
            "Times a shadow endpoint's circuit opened after it refused or timed out repeatedly",
            Family::<TargetLabel, Counter>::default(),
        );
        let requests = registered(
            r,
            "nprt_shadow_requests",
            "Requests seen (proxied or captured)",
            Counter::default(),
        );
        let mirrored = registered(
            r,
            "nprt_shadow_mirrored",
            "Requests sent to the shadow",
            Counter::default(),
        );
        let skipped = registered(
            r,
            "nprt_shadow_skipped",
            "Requests not mirrored, by reason",
            Family::<Reason, Counter>::default(),
        );
        let dropped = registered(
            r,
            "nprt_shadow_dropped",
            "Mirrored work thrown away, by reason",
            Family::<Reason, Counter>::default(),
        );
        let shadow_errors = registered(
            r,
            "nprt_shadow_errors",
            "Shadow requests that got no response (refused, reset, timeout)",
            Counter::default(),
        );
        let latency = registered(
            r,
            "nprt_shadow_latency_seconds",
            "Latency of mirrored requests, by target (primary or shadow)",
            // 100 µs to ~52 s, doubling.
            Family::<TargetLabel, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 20))
            }),
        );
        let statuses = registered(
            r,
            "nprt_shadow_responses",
            "Responses of mirrored requests, by target and status code",
            Family::<StatusLabel, Counter>::default(),
        );
        let verdict = registered(
            r,
            "nprt_shadow_verdict",
            "The live judge's current state (1 for the current one)",
            Family::<StateLabel, Gauge>::default(),
        );
        let metrics = Metrics {
            registry,
            requests,
            mirrored,
            skipped,
            dropped,
            shadow_errors,
            latency,
            statuses,
            verdict,
            queue_wait,
            breaker_opened,
            plain: Default::default(),
            waits: Mutex::new(Waits::new()),
            first_mirrored: OnceLock::new(),
            decided: OnceLock::new(),
        };
        metrics.show_every_label();
        metrics
    }

    /// Creates every skip and drop reason at 0 and sets the verdict to "continue".
    fn show_every_label(&self) {
        for reason in Skip::ALL {
            self.skipped.get_or_create_owned(&Reason {
                reason: reason.as_str(),
            });
        }
        for reason in [Drop::QueueFull, Drop::JudgeBusy, Drop::Connections] {
            self.dropped.get_or_create_owned(&Reason {
                reason: reason.as_str(),
            });
        }
        self.set_decision(&Decision::Continue);
    }

    pub fn request(&self) {
        self.requests.inc();
        self.plain[0].fetch_add(1, Ordering::Relaxed);
    }

    pub fn mirrored(&self) {
        self.first_mirrored.get_or_init(Instant::now);
        self.mirrored.inc();
        self.plain[1].fetch_add(1, Ordering::Relaxed);
    }

    pub fn skipped(&self, reason: Skip) {
        self.skipped
            .get_or_create(&Reason {
                reason: reason.as_str(),
            })
            .inc();
        self.plain[2].fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self, reason: Drop) {
        self.dropped
            .get_or_create(&Reason {
                reason: reason.as_str(),
            })
            .inc();
        self.plain[3].fetch_add(1, Ordering::Relaxed);
    }

    /// When the first request was mirrored (the start of the time to a verdict).
    pub fn first_mirrored(&self) -> Option<Instant> {
        self.first_mirrored.get().copied()
    }

    /// When the live judge first decided (pass, fail or inconclusive).
    pub fn decided(&self) -> Option<Instant> {
        self.decided.get().copied()
    }

    /// A copy is being sent after waiting `wait` inside nprt; `late` when that is longer than
    /// the saturation bound.
    pub fn queue_wait(&self, wait: Duration, late: bool) {
        self.queue_wait.observe(wait.as_secs_f64());
        let us = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        if let Ok(mut w) = self.waits.lock() {
            let _ = w.histogram.record(us.clamp(1, 3_600_000_000));
            w.late += u64::from(late);
        }
    }

    /// The circuit of the shadow endpoint `target` opened.
    pub fn breaker_opened(&self, target: &str) {
        self.breaker_opened
            .get_or_create(&TargetLabel {
                target: target.to_owned(),
            })
            .inc();
        if let Ok(mut w) = self.waits.lock() {
            w.breaker_opened += 1;
        }
    }

    /// nprt's own queueing so far.
    pub fn queueing(&self) -> Queueing {
        let Ok(w) = self.waits.lock() else {
            return Queueing::default();
        };
        #[allow(clippy::cast_precision_loss)]
        let ms = |q: f64| w.histogram.value_at_quantile(q) as f64 / 1000.0;
        Queueing {
            sent: w.histogram.len(),
            wait_p50_ms: ms(0.5),
            wait_p99_ms: ms(0.99),
            late: w.late,
            breaker_opened: w.breaker_opened,
        }
    }

    /// Work thrown away so far for `reason`.
    pub fn dropped_count(&self, reason: Drop) -> u64 {
        self.dropped
            .get_or_create(&Reason {
                reason: reason.as_str(),
            })
            .get()
    }

    /// Requests not mirrored so far for `reason`.
    pub fn skipped_count(&self, reason: Skip) -> u64 {
        self.skipped
            .get_or_create(&Reason {
                reason: reason.as_str(),
            })
            .get()
    }

    /// A shadow request got no response.
    pub fn shadow_error(&self) {
        self.shadow_errors.inc();
    }

    /// Shadow requests without a response so far (for the live status line).
    pub fn shadow_errors(&self) -> u64 {
        self.shadow_errors.get()
    }

    /// Counts one judged observation: its latency and status by target.
    pub fn observed(&self, o: &Observation) {
        let code = o
            .status
            .map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.statuses
            .get_or_create(&StatusLabel {
                target: o.target.to_string(),
                code,
            })
            .inc();
        if o.error.is_none() {
            #[allow(clippy::cast_precision_loss)]
            self.latency
                .get_or_create(&TargetLabel {
                    target: o.target.to_string(),
                })
                .observe(o.latency_us as f64 / 1e6);
        }
    }

    pub fn set_decision(&self, decision: &Decision) {
        if *decision != Decision::Continue {
            self.decided.get_or_init(Instant::now);
        }
        let now = match decision {
            Decision::Continue => "continue",
            Decision::Pass { .. } => "pass",
            Decision::Fail { .. } => "fail",
            Decision::Inconclusive { .. } => "inconclusive",
        };
        for state in STATES {
            self.verdict
                .get_or_create(&StateLabel { state })
                .set(i64::from(state == now));
        }
    }

    pub fn totals(&self) -> Totals {
        let get = |i: usize| self.plain[i].load(Ordering::Relaxed);
        Totals {
            requests: get(0),
            mirrored: get(1),
            skipped: get(2),
            dropped: get(3),
        }
    }

    /// The exposition in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Connections the metrics endpoint serves at once: a scraper or two, and a person with curl.
const METRICS_CONNECTIONS: usize = 64;

/// Serves `/metrics` (and `/healthz`) on `listener` until the task is dropped. A failed
/// accept (a full file table under load) is waited out ([`crate::net::serve`]): the
/// endpoint is there to watch exactly such moments.
///
/// # Errors
/// When accepting connections fails for good.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
            .http1_only();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let options = crate::net::ServeOptions {
        max_connections: METRICS_CONNECTIONS,
        ..crate::net::ServeOptions::new("metrics")
    };
    let make_service = move |_peer| {
        let metrics = Arc::clone(&metrics);
        hyper::service::service_fn(move |req: hyper::Request<_>| {
            let metrics = Arc::clone(&metrics);
            async move {
                let (status, content_type, body) = match req.uri().path() {
                    "/metrics" => (
                        200,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        metrics.encode(),
                    ),
                    "/healthz" => (200, "text/plain", "ok\n".to_owned()),
                    _ => (404, "text/plain", "not found\n".to_owned()),
                };
                hyper::Response::builder()
                    .status(status)
                    .header("content-type", content_type)
                    .body(Full::new(Bytes::from(body)))
            }
        })
    };
    crate::net::serve(
        listener,
        options,
        builder,
        make_service,
        std::future::pending(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_appear_in_the_exposition() {
        let m = Metrics::new();
        m.request();
        m.request();
        m.mirrored();
        m.skipped(Skip::UnsafeMethod);
        m.dropped(Drop::QueueFull);
        let obs = |target: &str, status: Option<u16>, error: Option<&str>| Observation {
            id: "1".into(),
            target: target.into(),
            route: "GET /".into(),
            method: "GET".into(),
            status,
            latency_us: 1500,
            bytes: 3,
            error: error.map(str::to_owned),
            at_ms: None,
            grpc_status: None,
        };
        m.observed(&obs("primary", Some(200), None));
        m.observed(&obs("shadow", None, Some("connection refused")));
        m.shadow_error();
        assert_eq!(m.shadow_errors(), 1);
        assert!(m.decided().is_none(), "continue is no decision");
        assert!(m.first_mirrored().is_some());
        m.set_decision(&Decision::Pass {
            pairs: 3,
            elapsed_us: 0,
        });
        let text = m.encode();
        for line in [
            "nprt_shadow_requests_total 2",
            "nprt_shadow_mirrored_total 1",
            "nprt_shadow_skipped_total{reason=\"unsafe_method\"} 1",
            "nprt_shadow_skipped_total{reason=\"percent\"} 0",
            "nprt_shadow_dropped_total{reason=\"queue_full\"} 1",
            "nprt_shadow_errors_total 1",
            "nprt_shadow_responses_total{target=\"primary\",code=\"200\"} 1",
            "nprt_shadow_responses_total{target=\"shadow\",code=\"error\"} 1",
            "nprt_shadow_latency_seconds_count{target=\"primary\"} 1",
            "nprt_shadow_verdict{state=\"pass\"} 1",
            "nprt_shadow_verdict{state=\"continue\"} 0",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
        assert_eq!(
            m.totals(),
            Totals {
                requests: 2,
                mirrored: 1,
                skipped: 1,
                dropped: 1
            }
        );
    }
}

//! The shadow's side: a bounded queue of mirrored requests, drained by a dispatcher that sends
//! at most `concurrency` of them at once through the shadow's own connection pool. Offering
//! to the queue never waits: when it is full the request is dropped and counted.
//!
//! With a baseline copy (`--shadow-baseline`), every job goes to the baseline and to the
//! canary at the same moment, through the same pool and limits, so that anything nprt adds
//! to a copy's latency falls on both alike. The time a job waited inside nprt (queue,
//! concurrency limit, task start) is measured and kept out of every latency; a circuit
//! breaker per endpoint ([`super::breaker`]) stops sending to an endpoint that refuses or
//! times out, until a probe gets an answer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderValue};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::breaker::{Admit, Breaker, BreakerSettings};
use super::forward::{Skip, SHADOW_HEADER};
use super::judge::JudgeHandle;
use super::metrics::{Drop, Metrics};
use super::Client;
use crate::observation::Observation;
use crate::replay::Target;

/// How long the shadow's requests in flight may finish when mirroring ends.
const DRAIN: Duration = Duration::from_secs(5);

/// How often a dispatcher waiting for a free slot looks whether mirroring stopped.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// One request on its way to the shadow.
#[derive(Debug)]
pub struct MirrorJob {
    /// Pairs the shadow's observation with the primary's.
    pub id: Arc<str>,
    pub route: Arc<str>,
    pub method: hyper::Method,
    /// Path and query, appended to the shadow's base URL.
    pub path_and_query: String,
    /// Already without hop-by-hop headers.
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the job was offered: the time until it is sent is nprt's, not the shadow's.
    pub queued: Instant,
    /// The client spoke HTTP/2 (gRPC does): the copies go over HTTP/2 too.
    pub http2: bool,
}

/// The shadow's clients: HTTP/1.1, and HTTP/2 for copies of HTTP/2 requests.
#[derive(Clone)]
pub struct Clients {
    pub http1: Client<Full<Bytes>>,
    pub http2: Client<Full<Bytes>>,
}

impl Clients {
    fn of(&self, job: &MirrorJob) -> &Client<Full<Bytes>> {
        if job.http2 {
            &self.http2
        } else {
            &self.http1
        }
    }
}

/// How the shadow is reached.
#[derive(Debug, Clone)]
pub struct ShadowTarget {
    /// The canary (its name is the target name in observations and reports).
    pub canary: Target,
    /// A fresh copy of stable that gets every copy at the same moment as the canary.
    pub baseline: Option<Target>,
    /// Jobs in flight at most (a job with a baseline copy is two requests).
    pub concurrency: usize,
    /// Requests waiting for a free slot at most.
    pub queue: usize,
    /// A shadow request without a complete answer after this long is an error.
    pub timeout: Duration,
    /// A copy that waited inside nprt longer than this counts towards saturation.
    pub max_queue_wait: Duration,
    pub breaker: BreakerSettings,
}

/// Whether copies are sent at all: closed while an endpoint's circuit is open, so that the
/// proxy does not even build a copy then.
struct Gate {
    start: Instant,
    /// Until when (ms since `start`) nothing is sent.
    closed_until_ms: AtomicU64,
}

impl Gate {
    fn open_at(&self, now: Instant) -> bool {
        let ms = u64::try_from(now.saturating_duration_since(self.start).as_millis())
            .unwrap_or(u64::MAX);
        ms >= self.closed_until_ms.load(Ordering::Relaxed)
    }

    fn close_until(&self, until: Instant) {
        let ms = u64::try_from(until.saturating_duration_since(self.start).as_millis())
            .unwrap_or(u64::MAX);
        self.closed_until_ms.fetch_max(ms, Ordering::Relaxed);
    }
}

/// The offering side of the queue.
#[derive(Clone)]
pub struct Sender {
    tx: mpsc::Sender<MirrorJob>,
    metrics: Arc<Metrics>,
    gate: Arc<Gate>,
}

impl Sender {
    /// Queues a job without waiting; `false` when it was dropped (full queue, or stopped).
    pub fn offer(&self, job: MirrorJob) -> bool {
        match self.tx.try_send(job) {
            Ok(()) => {
                self.metrics.mirrored();
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.dropped(Drop::QueueFull);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.metrics.skipped(Skip::Stopped);
                false
            }
        }
    }

    /// Whether a copy made now would be sent: `Err(ShadowDown)` while a circuit is open.
    ///
    /// # Errors
    /// [`Skip::ShadowDown`] while an endpoint is left alone.
    pub fn accepting(&self) -> Result<(), Skip> {
        if self.gate.open_at(Instant::now()) {
            Ok(())
        } else {
            Err(Skip::ShadowDown)
        }
    }
}

/// Starts the dispatcher. It ends when every [`Sender`] is dropped and the requests in
/// flight are done.
pub fn start(
    target: ShadowTarget,
    client: Clients,
    judge: JudgeHandle,
    metrics: Arc<Metrics>,
    stopped: Arc<AtomicBool>,
) -> (Sender, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(target.queue.max(1));
    let gate = Arc::new(Gate {
        start: Instant::now(),
        closed_until_ms: AtomicU64::new(0),
    });
    let sender = Sender {
        tx,
        metrics: Arc::clone(&metrics),
        gate: Arc::clone(&gate),
    };
    let task = tokio::spawn(dispatch(rx, target, client, judge, metrics, stopped, gate));
    (sender, task)
}

/// The endpoints of a run and their breakers.
struct Endpoints {
    target: ShadowTarget,
    breakers: Mutex<Vec<Breaker>>,
    /// Every breaker closed with no failure counted: nothing to lock for while answers come.
    clear: AtomicBool,
    gate: Arc<Gate>,
    metrics: Arc<Metrics>,
}

impl Endpoints {
    fn all(&self) -> impl Iterator<Item = &Target> {
        std::iter::once(&self.target.canary).chain(self.target.baseline.as_ref())
    }

    /// Whether a job may go now: every endpoint must take it, so that a job is sent to both
    /// or to neither (a copy only one side got would stay unpaired).
    fn admit(&self, now: Instant) -> bool {
        if self.clear.load(Ordering::Relaxed) {
            return true;
        }
        let Ok(mut breakers) = self.breakers.lock() else {
            return true;
        };
        if !breakers.iter().all(|b| b.ready(now)) {
            return false;
        }
        breakers.iter_mut().all(|b| b.admit(now) != Admit::Reject)
    }

    /// Books the outcome of one endpoint's copy.
    fn record(&self, index: usize, answered: bool) {
        if answered && self.clear.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let Ok(mut breakers) = self.breakers.lock() else {
            return;
        };
        let Some(breaker) = breakers.get_mut(index) else {
            return;
        };
        let opened = breaker.opened();
        breaker.record(now, answered);
        let (now_opened, until) = (breaker.opened() > opened, breaker.open_until());
        self.clear
            .store(breakers.iter().all(Breaker::is_clear), Ordering::Relaxed);
        drop(breakers);
        if now_opened {
            let name = self.all().nth(index).map_or("shadow", |e| e.name.as_str());
            tracing::warn!(
                target = name,
                "the shadow endpoint refused or timed out repeatedly; copies paused"
            );
            self.metrics.breaker_opened(name);
            if let Some(until) = until {
                self.gate.close_until(until);
            }
        }
    }
}

async fn dispatch(
    mut rx: mpsc::Receiver<MirrorJob>,
    target: ShadowTarget,
    client: Clients,
    judge: JudgeHandle,
    metrics: Arc<Metrics>,
    stopped: Arc<AtomicBool>,
    gate: Arc<Gate>,
) {
    let limit = target.concurrency.max(1);
    let timeout = target.timeout;
    let breakers = Mutex::new(
        std::iter::once(target.breaker)
            .chain(target.baseline.as_ref().map(|_| target.breaker))
            .map(Breaker::new)
            .collect(),
    );
    let endpoints = Arc::new(Endpoints {
        target,
        breakers,
        clear: AtomicBool::new(true),
        gate,
        metrics: Arc::clone(&metrics),
    });
    let mut in_flight = JoinSet::new();
    while let Some(job) = rx.recv().await {
        while in_flight.try_join_next().is_some() {}
        // Waiting here lets the queue fill up; offers beyond it are dropped, not waited for.
        // A stop ends the wait (a hanging shadow would otherwise hold it for its timeout).
        while in_flight.len() >= limit && !stopped.load(Ordering::Relaxed) {
            let _ = tokio::time::timeout(STOP_CHECK, in_flight.join_next()).await;
        }
        if stopped.load(Ordering::Relaxed) {
            metrics.skipped(Skip::Stopped);
            continue;
        }
        if !endpoints.admit(Instant::now()) {
            metrics.skipped(Skip::ShadowDown);
            continue;
        }
        let (client, endpoints, judge) = (client.clone(), Arc::clone(&endpoints), judge.clone());
        in_flight.spawn(async move {
            let mut job = job;
            let wait = job.queued.elapsed();
            endpoints
                .metrics
                .queue_wait(wait, wait > endpoints.target.max_queue_wait);
            let timeout = endpoints.target.timeout;
            let baseline_headers = endpoints
                .target
                .baseline
                .as_ref()
                .map(|_| job.headers.clone());
            let canary_headers = std::mem::take(&mut job.headers);
            let client = client.of(&job);
            let canary = send(
                client,
                &endpoints.target.canary,
                timeout,
                &job,
                canary_headers,
            );
            let (canary, baseline) = match (&endpoints.target.baseline, baseline_headers) {
                (Some(baseline), Some(headers)) => {
                    let (c, b) =
                        tokio::join!(canary, send(client, baseline, timeout, &job, headers));
                    (c, Some(b))
                }
                _ => (canary.await, None),
            };
            for (index, observation) in std::iter::once(canary).chain(baseline).enumerate() {
                endpoints.record(index, observation.error.is_none());
                if observation.error.is_some() {
                    endpoints.metrics.shadow_error();
                }
                judge.send(observation);
            }
        });
    }
    // At the end, the requests in flight get a little while; then they are cut off (their
    // partners stay unpaired), so that a hanging shadow cannot hold up the verdict.
    let drain = DRAIN.min(timeout);
    let _ = tokio::time::timeout(drain, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
}

/// Sends one job to `endpoint` and observes the answer. The latency runs from the request
/// handed to the connection to the response head read, the same points the primary is timed
/// at; the body is read (and counted) after.
async fn send(
    client: &Client<Full<Bytes>>,
    endpoint: &Target,
    timeout: Duration,
    job: &MirrorJob,
    mut headers: HeaderMap,
) -> Observation {
    headers.insert(SHADOW_HEADER, HeaderValue::from_static("1"));
    headers.remove(hyper::header::HOST);
    let mut latency = Duration::ZERO;
    let result = match super::join(&endpoint.base, &job.path_and_query) {
        Ok(uri) => {
            let mut request = hyper::Request::new(Full::new(job.body.clone()));
            *request.method_mut() = job.method.clone();
            *request.uri_mut() = uri;
            *request.headers_mut() = headers;
            if job.http2 {
                *request.version_mut() = hyper::Version::HTTP_2;
            }
            let started = Instant::now();
            let answer = tokio::time::timeout(timeout, async {
                let response = client
                    .request(request)
                    .await
                    .map_err(|e| super::describe_error(&e))?;
                latency = started.elapsed();
                let status = response.status().as_u16();
                let mut grpc = crate::http::grpc_status(response.headers());
                let mut body = response.into_body();
                let mut bytes = 0u64;
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| format!("reading body: {e}"))?;
                    if let Some(data) = frame.data_ref() {
                        bytes += data.len() as u64;
                    }
                    if let Some(trailers) = frame.trailers_ref() {
                        grpc = crate::http::grpc_status(trailers).or(grpc);
                    }
                }
                Ok::<_, String>((status, bytes, grpc))
            })
            .await;
            if latency.is_zero() {
                latency = started.elapsed();
            }
            answer.unwrap_or_else(|_| Err(format!("timeout after {timeout:?}")))
        }
        Err(e) => Err(e),
    };
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    let (status, bytes, grpc_status, error) = match result {
        Ok((status, bytes, grpc)) => (Some(status), bytes, grpc, None),
        Err(e) => (None, 0, None, Some(e)),
    };
    Observation {
        id: Arc::clone(&job.id),
        target: endpoint.name.as_str().into(),
        route: Arc::clone(&job.route),
        method: job.method.as_str().into(),
        status,
        latency_us,
        bytes,
        error,
        at_ms: Some(crate::observation::now_ms()),
        grpc_status,
    }
}

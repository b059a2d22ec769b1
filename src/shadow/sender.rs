//! The shadow's side: a bounded queue of mirrored requests, drained by a dispatcher that sends
//! at most `concurrency` of them at once through the shadow's own connection pool. Offering
//! to the queue never waits: when it is full the request is dropped and counted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderValue};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::forward::{Skip, SHADOW_HEADER};
use super::judge::JudgeHandle;
use super::metrics::{Drop, Metrics};
use super::Client;
use crate::observation::Observation;

/// How long the shadow's requests in flight may finish when mirroring ends.
const DRAIN: Duration = Duration::from_secs(5);

/// How often a dispatcher waiting for a free slot looks whether mirroring stopped.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// One request on its way to the shadow.
#[derive(Debug)]
pub struct MirrorJob {
    /// Pairs the shadow's observation with the primary's.
    pub id: String,
    pub route: String,
    pub method: hyper::Method,
    /// Path and query, appended to the shadow's base URL.
    pub path_and_query: String,
    /// Already without hop-by-hop headers.
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How the shadow is reached.
#[derive(Debug, Clone)]
pub struct ShadowTarget {
    /// The shadow's target name in observations and reports.
    pub name: String,
    /// Scheme and authority (and an optional path prefix) of the shadow.
    pub base: hyper::Uri,
    /// Requests in flight to the shadow at most.
    pub concurrency: usize,
    /// Requests waiting for a free slot at most.
    pub queue: usize,
    /// A shadow request without a complete answer after this long is an error.
    pub timeout: Duration,
}

/// The offering side of the queue.
#[derive(Clone)]
pub struct Sender {
    tx: mpsc::Sender<MirrorJob>,
    metrics: Arc<Metrics>,
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
}

/// Starts the dispatcher. It ends when every [`Sender`] is dropped and the requests in
/// flight are done.
pub fn start(
    target: ShadowTarget,
    client: Client<Full<Bytes>>,
    judge: JudgeHandle,
    metrics: Arc<Metrics>,
    stopped: Arc<AtomicBool>,
) -> (Sender, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(target.queue.max(1));
    let sender = Sender {
        tx,
        metrics: Arc::clone(&metrics),
    };
    let task = tokio::spawn(dispatch(rx, target, client, judge, metrics, stopped));
    (sender, task)
}

async fn dispatch(
    mut rx: mpsc::Receiver<MirrorJob>,
    target: ShadowTarget,
    client: Client<Full<Bytes>>,
    judge: JudgeHandle,
    metrics: Arc<Metrics>,
    stopped: Arc<AtomicBool>,
) {
    let limit = target.concurrency.max(1);
    let target = Arc::new(target);
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
        let (client, target, judge) = (client.clone(), Arc::clone(&target), judge.clone());
        in_flight.spawn(async move {
            let observation = send(&client, &target, job).await;
            if observation.error.is_some() {
                judge.metrics().shadow_error();
            }
            judge.send(observation);
        });
    }
    // At the end, the requests in flight get a little while; then they are cut off (their
    // partners stay unpaired), so that a hanging shadow cannot hold up the verdict.
    let drain = DRAIN.min(target.timeout);
    let _ = tokio::time::timeout(drain, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
}

/// Sends one job and observes the answer; latency counts from the send, not from the queue.
async fn send(client: &Client<Full<Bytes>>, target: &ShadowTarget, job: MirrorJob) -> Observation {
    let started = Instant::now();
    let MirrorJob {
        id,
        route,
        method,
        path_and_query,
        mut headers,
        body,
    } = job;
    let method_name = method.as_str().to_owned();
    headers.insert(SHADOW_HEADER, HeaderValue::from_static("1"));
    headers.remove(hyper::header::HOST);
    let result = match super::join(&target.base, &path_and_query) {
        Ok(uri) => {
            let mut request = hyper::Request::new(Full::new(body));
            *request.method_mut() = method;
            *request.uri_mut() = uri;
            *request.headers_mut() = headers;
            tokio::time::timeout(target.timeout, async {
                let response = client
                    .request(request)
                    .await
                    .map_err(|e| super::describe_error(&e))?;
                let status = response.status().as_u16();
                let mut body = response.into_body();
                let mut bytes = 0u64;
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| format!("reading body: {e}"))?;
                    if let Some(data) = frame.data_ref() {
                        bytes += data.len() as u64;
                    }
                }
                Ok::<_, String>((status, bytes))
            })
            .await
            .unwrap_or_else(|_| Err(format!("timeout after {:?}", target.timeout)))
        }
        Err(e) => Err(e),
    };
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let (status, bytes, error) = match result {
        Ok((status, bytes)) => (Some(status), bytes, None),
        Err(e) => (None, 0, Some(e)),
    };
    Observation {
        id: id.into(),
        target: target.name.as_str().into(),
        route: route.into(),
        method: method_name.into(),
        status,
        latency_us,
        bytes,
        error,
    }
}

//! Replay: sends every recorded request to every named target and turns each answer into an
//! [`Observation`].
//!
//! Exchanges come from a recording (read on a blocking thread, through a bounded channel, so
//! memory does not grow with the recording), are scheduled by [`Pacing`], and fan out to all
//! targets at the same moment. Each target has its own connection pool. Latency is measured
//! from the scheduled send time, so a sender that falls behind shows up as latency rather than
//! being hidden (the coordinated-omission rule); how far it fell behind is reported too.

mod summary;
mod target;

pub use summary::{ReplaySummary, TargetSummary};
pub use target::{build_request, Target};

use crate::observation::Observation;
use crate::recording::Exchange;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// When requests are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// The recording's own timing, sped up by the factor (2.0 = twice as fast).
    Original { speed: f64 },
    /// As fast as possible with this many exchanges in flight (closed model).
    Max { concurrency: usize },
}

/// Which recorded methods are replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MethodPolicy {
    /// Only GET, HEAD and OPTIONS: replaying writes against a shared backend is opt-in.
    #[default]
    Safe,
    /// Every method.
    All,
}

impl MethodPolicy {
    /// Whether a request with this method is sent.
    pub fn allows(self, method: &str) -> bool {
        match self {
            MethodPolicy::All => true,
            MethodPolicy::Safe => matches!(method, "GET" | "HEAD" | "OPTIONS"),
        }
    }
}

/// Everything a replay needs besides the exchanges.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub targets: Vec<Target>,
    pub pacing: Pacing,
    pub methods: MethodPolicy,
    /// Time allowed for one request, from its scheduled send to the end of the response body.
    pub timeout: Duration,
    /// Most exchanges in flight in [`Pacing::Original`]: the bound on memory and sockets when
    /// a target stops answering.
    pub max_in_flight: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            targets: Vec::new(),
            pacing: Pacing::Original { speed: 1.0 },
            methods: MethodPolicy::Safe,
            timeout: Duration::from_secs(30),
            max_in_flight: 4096,
        }
    }
}

/// Why a replay stopped before the end of the recording.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The recording could not be read (bad input).
    #[error(transparent)]
    Recording(#[from] crate::recording::RecordingError),
    #[error("invalid replay options: {0}")]
    Options(String),
    /// A task of the replay itself died (a bug, not bad input).
    #[error("the replay {0}")]
    Task(String),
}

type HttpClient = Client<HttpConnector, http_body_util::Full<Bytes>>;

/// Replays `exchanges` to every target, calling `observe` once per exchange per target.
///
/// The iterator is consumed on a blocking thread. Returns when every sent request has been
/// answered, failed or timed out.
///
/// # Errors
/// [`ReplayError::Recording`] when the recording turns out to be malformed part-way; the
/// observations made until then have been passed to `observe`.
pub async fn run<I>(
    exchanges: I,
    options: &ReplayOptions,
    mut observe: impl FnMut(&Observation),
) -> Result<ReplaySummary, ReplayError>
where
    I: Iterator<Item = Result<Exchange, crate::recording::RecordingError>> + Send + 'static,
{
    validate(options)?;
    let (exchange_tx, exchange_rx) = mpsc::channel::<Exchange>(1024);
    let reader = tokio::task::spawn_blocking(move || -> Result<(), ReplayError> {
        for exchange in exchanges {
            if exchange_tx.blocking_send(exchange?).is_err() {
                break; // the scheduler stopped early
            }
        }
        Ok(())
    });
    let (obs_tx, mut obs_rx) = mpsc::channel::<Observation>(4096);
    let started = Instant::now();
    let scheduler = tokio::spawn(schedule(exchange_rx, options.clone(), obs_tx, started));

    let mut summary = ReplaySummary::new(&options.targets);
    // Ends when the scheduler and every request task have dropped their senders.
    while let Some(obs) = obs_rx.recv().await {
        summary.add(&obs);
        observe(&obs);
    }
    summary.elapsed = started.elapsed();
    let join =
        |what: &str, e: tokio::task::JoinError| ReplayError::Task(format!("{what} failed: {e}"));
    let schedule_stats = scheduler.await.map_err(|e| join("scheduler", e))?;
    summary.merge_schedule(schedule_stats);
    reader.await.map_err(|e| join("recording reader", e))??;
    Ok(summary)
}

/// What the scheduler counted; merged into the [`ReplaySummary`].
#[derive(Debug, Default)]
pub(crate) struct ScheduleStats {
    pub exchanges_read: u64,
    pub skipped_unsafe: u64,
    pub sent: u64,
    /// How late each exchange was sent relative to its schedule, in microseconds.
    pub lag_us: summary::LagHistogram,
}

async fn schedule(
    mut exchanges: mpsc::Receiver<Exchange>,
    options: ReplayOptions,
    observations: mpsc::Sender<Observation>,
    started: Instant,
) -> ScheduleStats {
    let clients: Vec<(Target, HttpClient)> = options
        .targets
        .iter()
        .map(|t| (t.clone(), new_client()))
        .collect();
    let slots = Arc::new(Semaphore::new(match options.pacing {
        Pacing::Max { concurrency } => concurrency,
        Pacing::Original { .. } => options.max_in_flight,
    }));
    let mut stats = ScheduleStats::default();
    let mut first_ts: Option<u64> = None;
    while let Some(exchange) = exchanges.recv().await {
        stats.exchanges_read += 1;
        if !options.methods.allows(&exchange.request_head.method) {
            stats.skipped_unsafe += 1;
            continue;
        }
        let scheduled = match options.pacing {
            Pacing::Original { speed } => {
                let t0 = *first_ts.get_or_insert(exchange.start_ns);
                let offset_ns = exchange.start_ns.saturating_sub(t0) as f64 / speed;
                let due = started + Duration::from_nanos(offset_ns as u64);
                tokio::time::sleep_until(due).await;
                Some(due)
            }
            Pacing::Max { .. } => None,
        };
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let permit = Arc::new(permit);
        // Open model: latency counts from the scheduled time, so waiting for a free slot is
        // latency too. Closed model: a request starts when a slot frees up.
        let due = scheduled.unwrap_or_else(Instant::now);
        let lag = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
        stats.lag_us.record(lag);
        stats.sent += 1;
        let exchange = Arc::new(exchange);
        let body = request_body(&exchange);
        for (target, client) in &clients {
            let (target, client, exchange, body, permit, tx) = (
                target.clone(),
                client.clone(),
                Arc::clone(&exchange),
                body.clone(),
                Arc::clone(&permit),
                observations.clone(),
            );
            let timeout = options.timeout;
            tokio::spawn(async move {
                let obs = send_one(&client, &target, &exchange, body, due, timeout).await;
                drop(permit);
                let _ = tx.send(obs).await;
            });
        }
    }
    stats
}

fn validate(options: &ReplayOptions) -> Result<(), ReplayError> {
    if options.targets.is_empty() {
        return Err(ReplayError::Options(
            "at least one --target is needed".into(),
        ));
    }
    for (i, t) in options.targets.iter().enumerate() {
        if options.targets[..i].iter().any(|o| o.name == t.name) {
            return Err(ReplayError::Options(format!(
                "target name `{}` is given twice",
                t.name
            )));
        }
    }
    match options.pacing {
        Pacing::Original { speed } if !(speed.is_finite() && speed > 0.0) => Err(
            ReplayError::Options(format!("--speed must be a positive number, not {speed}")),
        ),
        Pacing::Max { concurrency: 0 } => Err(ReplayError::Options(
            "--concurrency must be at least 1".into(),
        )),
        _ if options.max_in_flight == 0 => Err(ReplayError::Options(
            "max_in_flight must be at least 1".into(),
        )),
        _ => Ok(()),
    }
}

fn new_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(usize::MAX)
        .build(connector)
}

/// The recorded request body as it is sent again: the bytes after the head, de-chunked.
fn request_body(exchange: &Exchange) -> Bytes {
    let body = exchange
        .request
        .slice(exchange.request_head.head_len.min(exchange.request.len())..);
    match crate::http::request_body_length(&exchange.request_head) {
        Ok(crate::http::BodyLength::Chunked) => match crate::http::decode_chunked(&body) {
            Ok(decoded) => Bytes::from(decoded),
            // A chunked body cut short in the recording is sent as far as it goes.
            Err(_) => body,
        },
        Ok(crate::http::BodyLength::Fixed(n)) => body.slice(..body.len().min(n as usize)),
        _ => body,
    }
}

async fn send_one(
    client: &HttpClient,
    target: &Target,
    exchange: &Exchange,
    body: Bytes,
    due: Instant,
    timeout: Duration,
) -> Observation {
    let method = exchange.request_head.method.clone();
    let route = crate::http::route_key(&method, &exchange.request_head.target);
    let result = match build_request(target, exchange, body) {
        Ok(request) => tokio::time::timeout_at(due + timeout, async {
            let response = client.request(request).await.map_err(describe_error)?;
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
        .unwrap_or_else(|_| Err(format!("timeout after {} ms", timeout.as_millis()))),
        Err(e) => Err(e),
    };
    let latency_us = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
    let (status, bytes, error) = match result {
        Ok((status, bytes)) => (Some(status), bytes, None),
        Err(e) => (None, 0, Some(e)),
    };
    Observation {
        id: exchange.id.clone(),
        target: target.name.clone(),
        route,
        method,
        status,
        latency_us,
        bytes,
        error,
    }
}

/// A short reason with the root cause, e.g. `connect: Connection refused (os error 111)`.
fn describe_error(e: hyper_util::client::legacy::Error) -> String {
    let mut text = if e.is_connect() {
        "connect".to_owned()
    } else {
        "request".to_owned()
    };
    let mut source = std::error::Error::source(&e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    if let Some(root) = last {
        text.push_str(": ");
        text.push_str(&root);
    }
    text
}

//! Replay: sends every recorded request to every named target and turns each answer into an
//! [`Observation`].
//!
//! Exchanges come from a recording (read on a blocking thread, through a bounded channel, so
//! memory does not grow with the recording), are scheduled by [`Pacing`], and fan out to all
//! targets at the same moment. Latency is measured from the scheduled send time, so a sender
//! that falls behind shows up as latency rather than being hidden (the coordinated-omission
//! rule); how far it fell behind is reported too.
//!
//! Requests go out from long-lived loops that each own their connections (`conn`): in the
//! closed model `--concurrency` lanes (`closed`), each with one connection per target; in the
//! open model a pool of workers per target (`open`). No task is spawned per request, and
//! observations reach the caller through a buffer drained on a tick (`sink`), so the cost
//! of a request is close to its socket reads and writes.

mod clock;
mod closed;
mod conn;
mod filter;
mod open;
mod sink;
mod stop;
mod summary;
mod target;

pub use clock::Clock;
pub use filter::{Filter, HeaderRule, Skip, SkipCounts};
pub use stop::Stop;
pub use summary::{ReplaySummary, TargetSummary};
pub use target::{build_request, Rewrite, Target};

use crate::observation::Observation;
use crate::recording::{Exchange, RecordingError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// When requests are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// The recording's own timing, sped up by the factor (2.0 = twice as fast).
    Original { speed: f64 },
    /// A fixed number of exchanges per second, whatever the answers (open model).
    Rate { per_second: f64 },
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
    pub filter: Filter,
    pub rewrite: Rewrite,
    /// Time allowed for one request, from its scheduled send to the end of the response body.
    pub timeout: Duration,
    /// Most requests in flight to one target in the open-model pacings: the bound on memory
    /// and sockets when a target stops answering. A send beyond it is observed as an error.
    pub max_in_flight: usize,
    /// Stop after sending this many exchanges.
    pub limit: Option<u64>,
    /// Stop sending after this long (requests in flight still finish).
    pub duration: Option<Duration>,
    /// Start the recording again when it ends (until `limit` or `duration`).
    pub looping: bool,
    /// Speak HTTP/2 with prior knowledge to every target instead of HTTP/1.1.
    pub h2: bool,
    /// A PEM file of CA certificates trusted for https targets besides the system's.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Ends the sending early when stopped (Ctrl-C); requests in flight still finish.
    pub stop: Stop,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            targets: Vec::new(),
            pacing: Pacing::Original { speed: 1.0 },
            filter: Filter::default(),
            rewrite: Rewrite::default(),
            timeout: Duration::from_secs(30),
            max_in_flight: 4096,
            limit: None,
            duration: None,
            looping: false,
            h2: false,
            ca_cert: None,
            stop: Stop::default(),
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

/// A stream of recorded exchanges.
pub type Exchanges = Box<dyn Iterator<Item = Result<Exchange, RecordingError>> + Send>;

/// Opens the recording, once per pass: `--loop` calls it again at the end.
pub type Passes = Box<dyn FnMut() -> Result<Exchanges, RecordingError> + Send>;

/// Replays the recording to every target, calling `observe` once per exchange per target.
///
/// The recording is read on a blocking thread. Returns when every sent request has been
/// answered, failed or timed out.
///
/// # Errors
/// [`ReplayError::Recording`] when the recording turns out to be malformed part-way; the
/// observations made until then have been passed to `observe`.
pub async fn run(
    source: Passes,
    options: &ReplayOptions,
    mut observe: impl FnMut(&Observation),
) -> Result<ReplaySummary, ReplayError> {
    validate(options)?;
    let tls = crate::tls::client_config(options.ca_cert.as_deref())
        .map_err(|e| ReplayError::Options(e.to_string()))?;
    let rewrite = Arc::new(options.rewrite.clone());
    let endpoints = options
        .targets
        .iter()
        .map(|t| {
            conn::Endpoint::new(t, options.h2, &tls, Arc::clone(&rewrite), options.timeout)
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(ReplayError::Options)?;
    let (writer, batches) = Batches::channel(8);
    let looping = options.looping;
    let reader = tokio::task::spawn_blocking(move || read_passes(source, looping, &writer));
    let started = Instant::now();
    let sink = Arc::new(sink::Sink::new());
    let mut engine = {
        let (options, sink) = (options.clone(), Arc::clone(&sink));
        tokio::spawn(async move {
            match options.pacing {
                Pacing::Max { concurrency } => {
                    let admission = Admission::new(&options, started);
                    closed::run(batches, admission, concurrency, &endpoints, &sink).await
                }
                Pacing::Original { .. } | Pacing::Rate { .. } => {
                    Ok(open::run(batches, &options, started, &endpoints, &sink).await)
                }
            }
        })
    };

    let mut summary = ReplaySummary::new(&options.targets);
    // The senders never wake this loop per observation: it takes what they have put into the
    // sink on a short tick, or sooner when the sink fills up.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut taken = Vec::new();
    // After a stop, answers in flight get a short grace; those still out then are dropped.
    let mut grace: Option<Instant> = None;
    let finished = loop {
        let finished = tokio::select! {
            finished = &mut engine => Some(finished),
            _ = tick.tick() => None,
            () = sink.filling() => None,
            () = options.stop.stopped(), if grace.is_none() => {
                grace = Some(Instant::now() + STOP_GRACE);
                None
            }
            () = sleep_until_some(grace) => {
                engine.abort();
                summary.unanswered_at_stop = true;
                Some(Ok(Ok(ScheduleStats::default())))
            }
        };
        // After the engine has finished, every observation is in the sink.
        sink.take(&mut taken);
        let n = taken.len();
        for obs in taken.drain(..) {
            summary.add(&obs);
            observe(&obs);
        }
        sink.consumed(n);
        if let Some(finished) = finished {
            break finished;
        }
    };
    summary.elapsed = started.elapsed();
    summary.interrupted = options.stop.is_stopped();
    let join =
        |what: &str, e: tokio::task::JoinError| ReplayError::Task(format!("{what} failed: {e}"));
    let schedule_stats = finished.map_err(|e| join("sender", e))??;
    summary.merge_schedule(schedule_stats);
    if summary.unanswered_at_stop {
        summary.count_from_observations();
    }
    reader.await.map_err(|e| join("recording reader", e))??;
    Ok(summary)
}

/// How long a stopped replay waits for answers still in flight.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Sleeps until `at`, or forever when there is no `at`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Exchanges handed from the reader thread to the senders, with the pass each belongs to.
/// Batches, because one cross-thread wake-up per exchange costs more than reading it; each
/// exchange already behind the `Arc` it is sent with, so it is not moved again.
type Batch = Vec<(u32, Arc<Exchange>)>;

const BATCH: usize = 128;

/// The senders' end of the reader's batches, with the way back for emptied ones: a batch is
/// a few KiB, beyond glibc's per-thread caches, and allocating one per 128 exchanges on the
/// reader's thread to free it on a sender's made the allocator consolidate its free lists
/// every time (3% of the CPU of a full-rate replay, measured with batches of whole
/// exchanges). Only batches that exist come back, so no more circulate than the channel
/// holds plus one per sender thread and the one being filled.
pub(crate) struct Batches {
    rx: mpsc::Receiver<Batch>,
    spares: std::sync::mpsc::Sender<Batch>,
}

/// The reader's end of [`Batches`].
struct BatchWriter {
    tx: mpsc::Sender<Batch>,
    spares: std::sync::mpsc::Receiver<Batch>,
}

impl Batches {
    /// A channel holding up to `capacity` batches.
    fn channel(capacity: usize) -> (BatchWriter, Batches) {
        let (tx, rx) = mpsc::channel(capacity);
        let (spare_tx, spare_rx) = std::sync::mpsc::channel();
        let writer = BatchWriter {
            tx,
            spares: spare_rx,
        };
        let batches = Batches {
            rx,
            spares: spare_tx,
        };
        (writer, batches)
    }

    pub(crate) async fn recv(&mut self) -> Option<Batch> {
        self.rx.recv().await
    }

    /// Tells the reader to stop.
    pub(crate) fn close(&mut self) {
        self.rx.close();
    }

    /// Where emptied batches go back to the reader.
    pub(crate) fn spares(&self) -> std::sync::mpsc::Sender<Batch> {
        self.spares.clone()
    }
}

impl BatchWriter {
    /// An empty batch to fill, given back by the senders when one is.
    fn empty(&self) -> Batch {
        self.spares
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH))
    }

    /// Hands `batch` over; `false` when the senders want no more.
    fn send(&self, batch: Batch) -> bool {
        self.tx.blocking_send(batch).is_ok()
    }
}

/// Feeds the senders, pass after pass when looping; stops when they want no more.
fn read_passes(mut source: Passes, looping: bool, out: &BatchWriter) -> Result<(), ReplayError> {
    let mut batch = out.empty();
    // Whatever was read before an error is still replayed; a send fails only when the
    // senders stopped early, and then nothing more is wanted.
    let flush = |batch: &mut Batch| out.send(std::mem::replace(batch, out.empty()));
    for pass in 0u32.. {
        let mut any = false;
        for exchange in source()? {
            any = true;
            match exchange {
                Ok(exchange) => batch.push((pass, Arc::new(exchange))),
                Err(e) => {
                    flush(&mut batch);
                    return Err(e.into());
                }
            }
            if batch.len() == BATCH && !flush(&mut batch) {
                return Ok(());
            }
        }
        if !looping || !any {
            break;
        }
    }
    if !batch.is_empty() {
        flush(&mut batch);
    }
    Ok(())
}

/// What the senders counted; merged into the [`ReplaySummary`].
#[derive(Debug, Default)]
pub(crate) struct ScheduleStats {
    pub exchanges_read: u64,
    pub skipped: SkipCounts,
    pub sent: u64,
    /// How late each exchange was sent relative to its schedule, in microseconds.
    pub lag_us: summary::LagHistogram,
}

impl ScheduleStats {
    /// Adds the counts of another sending thread.
    pub(crate) fn merge(&mut self, other: ScheduleStats) {
        self.exchanges_read += other.exchanges_read;
        for (skip, n) in other.skipped {
            *self.skipped.entry(skip).or_default() += n;
        }
        self.sent += other.sent;
        self.lag_us.add(&other.lag_us);
    }
}

/// Which exchanges are sent and when sending stops (filters, `--limit`, `--duration`), with
/// the counts of what was read, skipped and sent.
pub(crate) struct Admission {
    filter: Filter,
    limit: Option<u64>,
    deadline: Option<Instant>,
    /// Exchanges admitted by this admission and every [`fork`](Self::fork) of it: what
    /// `limit` counts when several threads send.
    admitted: Arc<AtomicU64>,
    stop: Stop,
    pub stats: ScheduleStats,
}

/// What [`Admission::admit`] decided for one exchange.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    Send,
    Skip,
    /// `--limit` reached or `--duration` over: this exchange and all after it stay unsent.
    Stop,
}

impl Admission {
    pub(crate) fn new(options: &ReplayOptions, started: Instant) -> Self {
        Admission {
            filter: options.filter.clone(),
            limit: options.limit,
            deadline: options.duration.map(|d| started + d),
            admitted: Arc::default(),
            stop: options.stop.clone(),
            stats: ScheduleStats::default(),
        }
    }

    /// Another admission for another sending thread: the same rules and the same `--limit`
    /// (counted across both), stats of its own.
    pub(crate) fn fork(&self) -> Self {
        Admission {
            filter: self.filter.clone(),
            limit: self.limit,
            deadline: self.deadline,
            admitted: Arc::clone(&self.admitted),
            stop: self.stop.clone(),
            stats: ScheduleStats::default(),
        }
    }

    /// Decides for the next exchange read; the caller counts it in `stats.sent` once sent.
    pub(crate) fn admit(&mut self, exchange: &Exchange) -> Admit {
        let limited = |admitted: u64| self.limit.is_some_and(|limit| admitted >= limit);
        if limited(self.admitted.load(Ordering::Relaxed))
            || self.deadline.is_some_and(|d| Instant::now() >= d)
            || self.stop.is_stopped()
        {
            return Admit::Stop;
        }
        if let Err(skip) = self.filter.check(exchange) {
            self.stats.exchanges_read += 1;
            *self.stats.skipped.entry(skip).or_default() += 1;
            return Admit::Skip;
        }
        // Another thread may have taken the last place since the check above.
        if self.limit.is_some() && limited(self.admitted.fetch_add(1, Ordering::Relaxed)) {
            return Admit::Stop;
        }
        self.stats.exchanges_read += 1;
        Admit::Send
    }

    fn past_deadline(&self, due: Instant) -> bool {
        self.deadline.is_some_and(|d| due >= d)
    }
}

/// Paces the exchanges of the open-model pacings (original, rate) and hands each one, with
/// its due time, to `dispatch` at that time, never waiting for answers: latency counts from
/// the scheduled time, and how late the scheduler itself was is recorded.
async fn schedule<F, D>(
    mut batches: Batches,
    options: &ReplayOptions,
    started: Instant,
    mut dispatch: D,
) -> ScheduleStats
where
    D: FnMut(Arc<Exchange>, Instant) -> F,
    F: std::future::Future<Output = ()>,
{
    let mut clock = Clock::new(options.pacing);
    let mut admission = Admission::new(options, started);
    let spares = batches.spares();
    'batches: while let Some(mut batch) = batches.recv().await {
        for (pass, exchange) in batch.drain(..) {
            match admission.admit(&exchange) {
                Admit::Send => {}
                Admit::Skip => continue,
                Admit::Stop => break 'batches,
            }
            let scheduled = clock
                .due(admission.stats.sent, pass, exchange.start_ns)
                .map(|offset| started + offset);
            if let Some(due) = scheduled {
                if admission.past_deadline(due) {
                    break 'batches;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    () = admission.stop.stopped() => break 'batches,
                }
            }
            let due = scheduled.unwrap_or_else(Instant::now);
            admission
                .stats
                .lag_us
                .record(u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX));
            admission.stats.sent += 1;
            dispatch(exchange, due).await;
        }
        let _ = spares.send(batch);
    }
    admission.stats
}

/// The guard for options built by hand (library callers): the command line and scenarios
/// have checked theirs through [`crate::spec::ReplaySpec`] already, naming the flag or key.
fn validate(options: &ReplayOptions) -> Result<(), ReplayError> {
    if options.targets.is_empty() {
        return Err(ReplayError::Options("at least one target is needed".into()));
    }
    for (i, t) in options.targets.iter().enumerate() {
        if options.targets[..i].iter().any(|o| o.name == t.name) {
            return Err(ReplayError::Options(format!(
                "target name `{}` is given twice",
                t.name
            )));
        }
    }
    if options.filter.shard.is_some_and(|(i, n)| n == 0 || i >= n) {
        return Err(ReplayError::Options(
            "the shard must be I/N with 0 <= I < N".into(),
        ));
    }
    if options
        .filter
        .sample_percent
        .is_some_and(|p| !(0.0..=100.0).contains(&p))
    {
        return Err(ReplayError::Options(
            "the sample must be a percentage between 0 and 100".into(),
        ));
    }
    if options.looping && options.limit.is_none() && options.duration.is_none() {
        return Err(ReplayError::Options(
            "a looping replay needs a limit or a duration, or it would never end".into(),
        ));
    }
    match options.pacing {
        Pacing::Original { speed } if !(speed.is_finite() && speed > 0.0) => Err(
            ReplayError::Options(format!("the speed must be a positive number, not {speed}")),
        ),
        Pacing::Rate { per_second } if !(per_second.is_finite() && per_second > 0.0) => {
            Err(ReplayError::Options(format!(
                "the rate must be a positive number, not {per_second}"
            )))
        }
        Pacing::Max { concurrency: 0 } => Err(ReplayError::Options(
            "the concurrency must be at least 1".into(),
        )),
        _ if options.max_in_flight == 0 => Err(ReplayError::Options(
            "max_in_flight must be at least 1".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Mutex;

    fn exchange(i: u64, ts_ms: u64, method: &str) -> Exchange {
        let request = Bytes::from(format!("{method} /r/{i} HTTP/1.1\r\n\r\n"));
        Exchange {
            id: format!("{i:024x}").into(),
            start_ns: 1_700_000_000_000_000_000 + ts_ms * 1_000_000,
            request_head: crate::http::parse_request_head(&request).unwrap().unwrap(),
            request,
            response: None,
        }
    }

    /// Runs the pacing over `exchanges` with time paused: the open-model scheduler, or for
    /// `Max` the closed model's feed with one stand-in lane per slot, each holding its
    /// exchange for `hold`. Returns (id, send offset in ms) in send order, and the stats.
    async fn run_schedule(
        exchanges: Vec<(u32, Exchange)>,
        options: ReplayOptions,
        hold: Duration,
    ) -> (Vec<(std::sync::Arc<str>, u128)>, ScheduleStats) {
        let (writer, rx) = Batches::channel(exchanges.len().max(1));
        let tx = writer.tx;
        // Batches of two, so that batch boundaries are crossed too.
        for pair in exchanges.chunks(2) {
            let batch = pair
                .iter()
                .map(|(p, e)| (*p, Arc::new(e.clone())))
                .collect();
            tx.send(batch).await.unwrap();
        }
        drop(tx);
        let started = Instant::now();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = {
            let sent = Arc::clone(&sent);
            move |e: &Exchange, due: Instant| {
                assert!(due <= Instant::now(), "never sent before it is due");
                sent.lock()
                    .unwrap()
                    .push((e.id.clone(), started.elapsed().as_millis()));
            }
        };
        let stats = match options.pacing {
            Pacing::Max { concurrency } => {
                let feed = Arc::new(closed::Feed::new(rx, Admission::new(&options, started)));
                let share = Arc::new(feed.share());
                let lanes: Vec<_> = (0..concurrency)
                    .map(|_| {
                        let (share, log) = (Arc::clone(&share), log.clone());
                        tokio::spawn(async move {
                            while let Some((e, due)) = share.next().await {
                                log(&e, due);
                                tokio::time::sleep(hold).await;
                            }
                        })
                    })
                    .collect();
                for lane in lanes {
                    lane.await.unwrap();
                }
                share.stats()
            }
            _ => {
                schedule(rx, &options, started, |e, due| {
                    log(&e, due);
                    std::future::ready(())
                })
                .await
            }
        };
        let sent = sent.lock().unwrap().clone();
        (sent, stats)
    }

    fn offsets(sent: &[(std::sync::Arc<str>, u128)]) -> Vec<u128> {
        sent.iter().map(|(_, ms)| *ms).collect()
    }

    fn options(pacing: Pacing) -> ReplayOptions {
        ReplayOptions {
            pacing,
            ..ReplayOptions::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn original_pace_sends_at_recorded_offsets_scaled() {
        let recorded: Vec<_> = [0, 100, 150, 400]
            .iter()
            .enumerate()
            .map(|(i, ms)| (0, exchange(i as u64, *ms, "GET")))
            .collect();
        let (sent, stats) = run_schedule(
            recorded,
            options(Pacing::Original { speed: 2.0 }),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(offsets(&sent), [0, 50, 75, 200]);
        assert_eq!(stats.sent, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_rate_is_an_open_model() {
        // Each request takes 1 s, far longer than the 10 ms gap: the schedule does not wait.
        let recorded: Vec<_> = (0..5).map(|i| (0, exchange(i, 0, "GET"))).collect();
        let (sent, _) = run_schedule(
            recorded,
            options(Pacing::Rate { per_second: 100.0 }),
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(offsets(&sent), [0, 10, 20, 30, 40]);
    }

    #[tokio::test(start_paused = true)]
    async fn max_is_a_closed_model_with_n_in_flight() {
        let recorded: Vec<_> = (0..6).map(|i| (0, exchange(i, i * 1000, "GET"))).collect();
        let (sent, stats) = run_schedule(
            recorded,
            options(Pacing::Max { concurrency: 2 }),
            Duration::from_millis(30),
        )
        .await;
        assert_eq!(offsets(&sent), [0, 0, 30, 30, 60, 60]);
        assert_eq!(stats.lag_us.quantile_ms(1.0), 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn lane_threads_send_every_exchange_once_and_share_the_limit() {
        for (threads, limit) in [(1, None), (2, None), (2, Some(37))] {
            let (writer, rx) = Batches::channel(64);
            let tx = writer.tx;
            let recorded: Vec<_> = (0..100).map(|i| (0, exchange(i, 0, "GET"))).collect();
            // A reader slower than the lanes: they often find the feed dry, and wait together.
            tokio::spawn(async move {
                for batch in recorded.chunks(4) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let batch = batch
                        .iter()
                        .map(|(p, e)| (*p, Arc::new(e.clone())))
                        .collect();
                    let _ = tx.send(batch).await;
                }
            });
            let mut opts = options(Pacing::Max { concurrency: 4 });
            opts.limit = limit;
            let feed = Arc::new(closed::Feed::new(rx, Admission::new(&opts, Instant::now())));
            // A share per thread, the four lanes spread over them, taking turns at every await.
            let shares: Vec<_> = (0..threads).map(|_| Arc::new(feed.share())).collect();
            let lanes: Vec<_> = (0..4)
                .map(|lane| {
                    let share = Arc::clone(&shares[lane % threads]);
                    tokio::spawn(async move {
                        let mut sent = Vec::new();
                        while let Some((e, _)) = share.next().await {
                            sent.push(e.id.clone());
                            tokio::task::yield_now().await;
                        }
                        sent
                    })
                })
                .collect();
            let mut sent = Vec::new();
            for lane in lanes {
                sent.extend(lane.await.unwrap());
            }
            let mut stats = ScheduleStats::default();
            for share in &shares {
                stats.merge(share.stats());
            }
            let wanted = limit.unwrap_or(100);
            assert_eq!(
                (sent.len() as u64, stats.sent),
                (wanted, wanted),
                "{limit:?}"
            );
            sent.sort();
            sent.dedup();
            assert_eq!(sent.len() as u64, wanted, "each exchange once");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_open_model_never_waits_for_answers() {
        let recorded: Vec<_> = (0..3).map(|i| (0, exchange(i, 0, "GET"))).collect();
        let mut opts = options(Pacing::Rate { per_second: 500.0 });
        opts.max_in_flight = 1;
        let (sent, stats) = run_schedule(recorded, opts, Duration::from_secs(20)).await;
        assert_eq!(offsets(&sent), [0, 2, 4]);
        assert_eq!(stats.lag_us.quantile_ms(1.0), 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn limit_duration_and_filters() {
        let recorded = || -> Vec<(u32, Exchange)> {
            (0..10)
                .map(|i| {
                    (
                        0,
                        exchange(i, i * 10, if i % 3 == 0 { "POST" } else { "GET" }),
                    )
                })
                .collect()
        };
        let mut opts = options(Pacing::Original { speed: 1.0 });
        opts.limit = Some(4);
        let (sent, stats) = run_schedule(recorded(), opts, Duration::ZERO).await;
        // POSTs 0 and 3 are skipped; the timeline starts at the first exchange sent.
        assert_eq!(offsets(&sent), [0, 10, 30, 40]);
        assert_eq!(stats.skipped[&Skip::UnsafeMethod], 2);

        let mut opts = options(Pacing::Original { speed: 1.0 });
        opts.duration = Some(Duration::from_millis(45));
        let (sent, _) = run_schedule(recorded(), opts, Duration::ZERO).await;
        assert_eq!(offsets(&sent), [0, 10, 30, 40]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_pass_follows_the_previous_one() {
        let pass = |p: u32| (0..3).map(move |i| (p, exchange(i, i * 10, "GET")));
        let recorded: Vec<_> = pass(0).chain(pass(1)).collect();
        let (sent, _) = run_schedule(
            recorded,
            options(Pacing::Original { speed: 1.0 }),
            Duration::ZERO,
        )
        .await;
        // Pass 0 at 0, 10, 20; mean gap 20/3 ms; pass 1 from 26.67 ms (tokio's timers round
        // up to the millisecond).
        assert_eq!(offsets(&sent), [0, 10, 20, 27, 37, 47]);
    }
}

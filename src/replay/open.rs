//! The open model (`--speed`, `--rate`): the schedule sends each exchange to every target at
//! its due time, whatever the answers. Each target has its own pool of workers, each worker
//! a loop owning one connection: a due exchange goes to an idle worker of the target, or waits
//! for the first one free while a new one connects, as long as the target has fewer than
//! `max_in_flight` requests in flight; beyond that it is observed as not sent. A slow target
//! therefore fills only its own pool.

use super::conn::{Conn, Endpoint, Job, Link};
use super::sink::Sink;
use super::{schedule, Batches, ReplayOptions, ScheduleStats};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Schedules the exchanges onto the targets' pools; returns when every worker has put its
/// last observation into `sink`.
pub(super) async fn run(
    batches: Batches,
    options: &ReplayOptions,
    started: Instant,
    endpoints: &[Arc<Endpoint>],
    sink: &Arc<Sink>,
) -> ScheduleStats {
    let pools: Vec<Arc<Pool>> = endpoints
        .iter()
        .map(|e| Arc::new(Pool::new(Arc::clone(e), options.max_in_flight)))
        .collect();
    // Every worker holds a clone; `recv` answers `None` once the last one has finished.
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let limit = options.max_in_flight;
    let stats = schedule(batches, options, started, |exchange, due| {
        let job = Job::new(exchange, due);
        let mut not_sent = Vec::new();
        for pool in &pools {
            if let Err(job) = pool.dispatch(job.clone(), sink, &alive) {
                let error = format!("not sent: {limit} requests already in flight to this target");
                not_sent.push(job.observed(&pool.endpoint.target, Err(error), 0));
            }
        }
        let sink = Arc::clone(sink);
        async move {
            for observation in not_sent {
                sink.push(observation).await;
            }
        }
    })
    .await;
    for pool in &pools {
        pool.close();
    }
    drop(alive);
    let _ = all_done.recv().await;
    stats
}

/// One target's workers.
struct Pool {
    endpoint: Arc<Endpoint>,
    /// The pool's one HTTP/2 connection, for the exchanges recorded over HTTP/2.
    link: Arc<Link>,
    max_in_flight: usize,
    state: Mutex<PoolState>,
}

struct PoolState {
    /// Idle workers, each waiting for its next job; the last to finish is used first, so the
    /// warmest connections carry the traffic.
    idle: Vec<oneshot::Sender<Job>>,
    /// Jobs due while every worker was busy: the first worker free takes the oldest, be it
    /// one that finished a request or a new one that has just connected. (A job never waits
    /// for one particular new connection: under load that would open one per job.)
    queue: VecDeque<Job>,
    /// Jobs queued or being sent: at most `max_in_flight`.
    in_flight: usize,
    /// Workers still opening their connection, each about to take a queued job.
    connecting: usize,
    workers: usize,
    closed: bool,
}

impl Pool {
    fn new(endpoint: Arc<Endpoint>, max_in_flight: usize) -> Self {
        Pool {
            link: Link::new(Arc::clone(&endpoint)),
            endpoint,
            max_in_flight,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                queue: VecDeque::new(),
                in_flight: 0,
                connecting: 0,
                workers: 0,
                closed: false,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `job` to an idle worker now, or queues it for the first one free (opening one
    /// more connection if none is on its way); gives it back when `max_in_flight` jobs are
    /// already in flight.
    fn dispatch(
        self: &Arc<Self>,
        mut job: Job,
        sink: &Arc<Sink>,
        alive: &mpsc::Sender<()>,
    ) -> Result<(), Job> {
        let mut state = self.state();
        if state.in_flight >= self.max_in_flight {
            return Err(job);
        }
        state.in_flight += 1;
        while let Some(worker) = state.idle.pop() {
            match worker.send(job) {
                Ok(()) => return Ok(()),
                // That worker is gone (its task was dropped at shutdown).
                Err(back) => {
                    job = back;
                    state.workers -= 1;
                }
            }
        }
        state.queue.push_back(job);
        if state.connecting < state.queue.len() && state.workers < self.max_in_flight {
            state.workers += 1;
            state.connecting += 1;
            drop(state);
            tokio::spawn(worker(Arc::clone(self), Arc::clone(sink), alive.clone()));
        }
        Ok(())
    }

    /// The next queued job, or a place in the idle list to wait for one; `None` when closed.
    fn next(&self) -> Option<Result<Job, oneshot::Receiver<Job>>> {
        let mut state = self.state();
        if let Some(job) = state.queue.pop_front() {
            return Some(Ok(job));
        }
        if state.closed {
            state.workers -= 1;
            return None;
        }
        let (give, take) = oneshot::channel();
        state.idle.push(give);
        Some(Err(take))
    }

    /// No more jobs: idle workers end now, busy ones once the queue is empty.
    fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.idle.clear();
    }
}

async fn worker(pool: Arc<Pool>, sink: Arc<Sink>, _alive: mpsc::Sender<()>) {
    let mut conn = Conn::sharing(Arc::clone(&pool.endpoint), Arc::clone(&pool.link));
    // A failure here is met again, and observed, by the first request.
    conn.connect_ahead().await;
    pool.state().connecting -= 1;
    loop {
        let job = match pool.next() {
            None => return,
            Some(Ok(job)) => job,
            Some(Err(wait)) => match conn.idle(wait).await {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let observation = conn.exchange(&job).await;
        drop(job);
        sink.push(observation).await;
        pool.state().in_flight -= 1;
    }
}

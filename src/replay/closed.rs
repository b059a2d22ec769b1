//! The closed model (`--max --concurrency N`): N lanes, each a loop that takes the next
//! exchange, sends it to every target at once over the lane's own connections, and takes the
//! next one when every target has answered. A lane is one of the N slots; latency counts from
//! the moment the lane took the exchange.
//!
//! Lanes take exchanges from a shared [`Feed`] without waking anyone while it holds exchanges,
//! and drive their connections themselves: the only wake-ups per request are the socket's.

use super::conn::{Conn, Endpoint, Job, Link};
use super::sink::Sink;
use super::{Admission, Admit, Batch, Batches, ReplayError, ScheduleStats};
use crate::recording::Exchange;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Runs `concurrency` lanes until the exchanges run out or [`Admission`] stops them; returns
/// when every lane has put its last observation into `sink`, with what the lanes counted.
///
/// The lanes run on one thread per core, each with a single-threaded runtime, as a load
/// generator's event loops do: a lane's task, its sockets and its timers stay on one thread,
/// with no work stealing and no waking of idle threads between a request and its response.
pub(super) async fn run(
    batches: Batches,
    admission: Admission,
    concurrency: usize,
    endpoints: &[Arc<Endpoint>],
    sink: &Arc<Sink>,
) -> Result<ScheduleStats, ReplayError> {
    let feed = Arc::new(Feed::new(batches, admission));
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(concurrency);
    let mut finished = Vec::with_capacity(threads);
    for thread in 0..threads {
        // Lanes thread, thread + threads, … : `concurrency` in all.
        let lanes = (concurrency - thread).div_ceil(threads);
        let (share, sink, endpoints) = (feed.share(), Arc::clone(sink), endpoints.to_vec());
        let (done, finish) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("nprt-lanes".into())
            .spawn(move || {
                let result = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(run_lanes(lanes, share, &endpoints, sink)),
                    Err(e) => Err(format!("cannot start a runtime for the lanes: {e}")),
                };
                let _ = done.send(result);
            })
            .map_err(|e| ReplayError::Task(format!("cannot start a lane thread: {e}")))?;
        finished.push(finish);
    }
    let mut stats = ScheduleStats::default();
    for finish in finished {
        let share_stats = finish
            .await
            .map_err(|_| ReplayError::Task("a lane thread died".into()))?
            .map_err(ReplayError::Task)?;
        stats.merge(share_stats);
    }
    Ok(stats)
}

/// Runs `lanes` lanes on the calling thread; returns what their share of the feed counted.
async fn run_lanes(
    lanes: usize,
    share: Share,
    endpoints: &[Arc<Endpoint>],
    sink: Arc<Sink>,
) -> Result<ScheduleStats, String> {
    let share = Arc::new(share);
    // Exchanges recorded over HTTP/2 are streams on one connection per target for all the
    // lanes of this thread.
    let links: Vec<_> = endpoints.iter().map(|e| Link::new(Arc::clone(e))).collect();
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..lanes {
        let conns = endpoints
            .iter()
            .zip(&links)
            .map(|(e, link)| Conn::sharing(Arc::clone(e), Arc::clone(link)))
            .collect();
        running.spawn(lane(Arc::clone(&share), conns, Arc::clone(&sink)));
    }
    while let Some(done) = running.join_next().await {
        done.map_err(|e| format!("lane failed: {e}"))?;
    }
    Ok(share.stats())
}

async fn lane(share: Arc<Share>, mut conns: Vec<Conn>, sink: Arc<Sink>) {
    while let Some((exchange, due)) = share.next().await {
        let job = Job::new(exchange, due);
        if let [conn] = conns.as_mut_slice() {
            let observation = conn.exchange(&job).await;
            sink.push(observation).await;
        } else {
            // Every target at the same moment, each on its own connection.
            let observations = join_all(conns.iter_mut().map(|c| c.exchange(&job))).await;
            for observation in observations {
                sink.push(observation).await;
            }
        }
    }
}

/// Polls all `futures` in the calling task until each has finished; outputs in input order.
pub(super) async fn join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(out) => *output = Some(out),
                    Poll::Pending => all = false,
                }
            }
        }
        if all {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// The exchanges of the closed model, as they come from the reader in batches.
///
/// Every lane thread takes a [`Share`] of it: the lanes of one thread take exchanges from
/// their share with no other thread involved, and only when it runs dry does one of them
/// fetch the reader's next batch. One hand-over between threads per batch, not per request.
pub(super) struct Feed {
    batches: Mutex<Batches>,
    /// Where emptied batches go back to the reader.
    spares: std::sync::mpsc::Sender<Batch>,
    admission: Admission,
}

impl Feed {
    pub(super) fn new(batches: Batches, admission: Admission) -> Self {
        Feed {
            spares: batches.spares(),
            batches: Mutex::new(batches),
            admission,
        }
    }

    /// A share for the lanes of one thread, admitting with its own fork of the admission.
    pub(super) fn share(self: &Arc<Self>) -> Share {
        Share {
            feed: Arc::clone(self),
            spares: self.spares.clone(),
            local: std::sync::Mutex::new(Local {
                exchanges: VecDeque::new(),
                admission: self.admission.fork(),
                stopped: false,
                exhausted: false,
            }),
        }
    }

    /// Tells the reader to stop reading.
    async fn close(&self) {
        self.batches.lock().await.close();
    }
}

/// One lane thread's part of the [`Feed`].
pub(super) struct Share {
    feed: Arc<Feed>,
    spares: std::sync::mpsc::Sender<Batch>,
    /// Only the lanes of one thread lock it, and never across an `.await`.
    local: std::sync::Mutex<Local>,
}

struct Local {
    exchanges: VecDeque<(u32, Arc<Exchange>)>,
    admission: Admission,
    /// The admission said stop: no more exchanges are sent, queued or not.
    stopped: bool,
    /// The reader has nothing more: the queued exchanges are the last.
    exhausted: bool,
}

impl Share {
    fn local(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next exchange to send and the moment its lane took it; `None` when sending is over.
    pub(super) async fn next(&self) -> Option<(Arc<Exchange>, Instant)> {
        loop {
            let (stopped, exhausted) = {
                let mut local = self.local();
                while !local.stopped {
                    let Some((_pass, exchange)) = local.exchanges.pop_front() else {
                        break;
                    };
                    match local.admission.admit(&exchange) {
                        Admit::Send => {
                            // No schedule to fall behind: the exchange is due when a lane
                            // is free.
                            local.admission.stats.sent += 1;
                            local.admission.stats.lag_us.record(0);
                            return Some((exchange, Instant::now()));
                        }
                        Admit::Skip => {}
                        Admit::Stop => local.stopped = true,
                    }
                }
                (local.stopped, local.exhausted)
            };
            if stopped {
                self.feed.close().await;
                return None;
            }
            if exhausted {
                return None;
            }
            // Dry: this lane fetches the next batch for every lane of its thread (another
            // lane of the thread may be doing the same: both batches are queued).
            let batch = self.feed.batches.lock().await.recv().await;
            let mut local = self.local();
            match batch {
                Some(mut batch) => {
                    local.exchanges.extend(batch.drain(..));
                    let _ = self.spares.send(batch);
                }
                None => local.exhausted = true,
            }
        }
    }

    /// What this share's admission counted.
    pub(super) fn stats(&self) -> ScheduleStats {
        std::mem::take(&mut self.local().admission.stats)
    }
}

//! Where the senders put their observations for the one consumer (the caller's `observe`).
//!
//! A plain buffer behind a mutex, drained by the consumer on a short tick: a sender never
//! wakes anyone to hand over an observation, which at tens of thousands of requests a second
//! is what a channel per observation cost. Observations keep the order in which they were
//! pushed. The buffer holds at most [`CAPACITY`] observations not yet consumed; a sender
//! beyond that waits, so memory stays bounded when the consumer (writing a file) is slower
//! than the targets.

use crate::observation::Observation;
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::{Notify, Semaphore};

/// Observations pushed but not yet consumed, at most.
pub(crate) const CAPACITY: usize = 16_384;

#[derive(Debug)]
pub(crate) struct Sink {
    buffer: Mutex<Vec<Observation>>,
    /// One permit per free place; the consumer gives them back once it has consumed.
    room: Semaphore,
    /// Wakes the consumer before its tick when the buffer is half full.
    filling: Notify,
}

impl Sink {
    pub(crate) fn new() -> Self {
        Sink {
            buffer: Mutex::new(Vec::new()),
            room: Semaphore::new(CAPACITY),
            filling: Notify::new(),
        }
    }

    fn buffer(&self) -> MutexGuard<'_, Vec<Observation>> {
        // A sender that panicked while pushing left a valid Vec behind.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds one observation, waiting while [`CAPACITY`] observations are unconsumed.
    pub(crate) async fn push(&self, observation: Observation) {
        match self.room.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(_) => match self.room.acquire().await {
                Ok(permit) => permit.forget(),
                // The semaphore is never closed; were it, the observation would have nowhere
                // to go anyway.
                Err(_) => return,
            },
        }
        let len = {
            let mut buffer = self.buffer();
            buffer.push(observation);
            buffer.len()
        };
        if len == CAPACITY / 2 {
            self.filling.notify_one();
        }
    }

    /// Resolves when the buffer is half full (or was since the last call).
    pub(crate) async fn filling(&self) {
        self.filling.notified().await;
    }

    /// Moves everything pushed so far into `into` (which should be empty), in push order.
    pub(crate) fn take(&self, into: &mut Vec<Observation>) {
        std::mem::swap(&mut *self.buffer(), into);
    }

    /// Gives back the room of `n` consumed observations.
    pub(crate) fn consumed(&self, n: usize) {
        self.room.add_permits(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn obs(i: usize) -> Observation {
        Observation {
            id: i.to_string().into(),
            target: "t".into(),
            route: "GET /".into(),
            method: "GET".into(),
            status: Some(200),
            latency_us: 1,
            bytes: 0,
            error: None,
            at_ms: None,
            grpc_status: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_order_and_holds_senders_back_when_full() {
        let sink = Arc::new(Sink::new());
        for i in 0..CAPACITY {
            sink.push(obs(i)).await;
        }
        let pusher = {
            let sink = Arc::clone(&sink);
            tokio::spawn(async move { sink.push(obs(CAPACITY)).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!pusher.is_finished(), "no room until something is consumed");
        let mut got = Vec::new();
        sink.take(&mut got);
        assert_eq!(got.len(), CAPACITY);
        assert!(got.iter().enumerate().all(|(i, o)| *o.id == *i.to_string()));
        sink.consumed(got.len());
        pusher.await.unwrap();
        let mut rest = Vec::new();
        sink.take(&mut rest);
        assert_eq!(rest, [obs(CAPACITY)]);
    }
}

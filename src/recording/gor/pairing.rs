//! Pairing: each request waits (at most `reorder_window` of them) for its response, matched
//! by id in either order; exchanges leave in start-time order once the window is full or the
//! input has ended. What cannot be paired (orphan, duplicate, interim or unparsable
//! responses, late exchanges) is counted in [`ReadStats`](super::ReadStats).

use super::reader::GorReader;
use super::{RawRecord, RecordKind};
use crate::http::{parse_request_head, parse_response_head, HttpError, RequestHead, ResponseHead};
use crate::recording::{Exchange, RecordedResponse, RecordingError};
use bytes::Bytes;
use std::cmp::Reverse;
use std::hash::BuildHasher;
use std::sync::Arc;

/// A request waiting for its response and for its turn.
pub(super) struct Pending {
    id: Arc<str>,
    seq: u64,
    start_ns: u64,
    request: Bytes,
    head: RequestHead,
    response: Option<RecordedResponse>,
}

/// A response that arrived before its request.
pub(super) struct Unmatched {
    seq: u64,
    ts_ns: u64,
    response: Option<(Bytes, ResponseHead)>,
}

/// What a type-2 payload holds.
enum ResponseClass {
    /// Only interim 1xx heads: the final response is still to come.
    Interim,
    /// The final response, from its head on (interim heads before it are dropped).
    Final(Bytes, ResponseHead),
    /// Not a complete response head at all.
    Unparsable,
}

impl GorReader {
    pub(super) fn process(&mut self, rec: RawRecord) -> Result<(), RecordingError> {
        self.seq += 1;
        match rec.kind {
            RecordKind::Request => self.on_request(rec)?,
            RecordKind::Response => self.on_response(rec),
            RecordKind::Replayed => self.stats.replayed += 1,
        }
        self.good_records += 1;
        Ok(())
    }

    fn on_request(&mut self, rec: RawRecord) -> Result<(), RecordingError> {
        let head = match parse_request_head(&rec.payload) {
            Ok(Some(head)) => head,
            Ok(None) => {
                return Err(RecordingError::BadRequest {
                    file: self.name.clone(),
                    offset: rec.offset,
                    source: HttpError::Head("incomplete request head".into()),
                })
            }
            Err(source) => {
                return Err(RecordingError::BadRequest {
                    file: self.name.clone(),
                    offset: rec.offset,
                    source,
                })
            }
        };
        self.stats.requests += 1;
        let hash = self.hasher.hash_one(&rec.id);
        if self.pending.find(hash, |p| p.id == rec.id).is_some() {
            self.stats.duplicates += 1;
            return Ok(());
        }
        let mut response = None;
        if let Some(early) = self.unmatched.remove(&rec.id) {
            match early.response {
                Some((bytes, head)) => {
                    response = Some(RecordedResponse {
                        bytes,
                        head,
                        latency_ns: early.ts_ns.saturating_sub(rec.ts_ns),
                    });
                }
                None => self.stats.bad_responses += 1,
            }
        }
        let pending = Box::new(Pending {
            id: rec.id,
            seq: self.seq,
            start_ns: rec.ts_ns,
            request: rec.payload,
            head,
            response,
        });
        self.order.push(Reverse((rec.ts_ns, self.seq, hash)));
        let hasher = &self.hasher;
        self.pending
            .insert_unique(hash, pending, |p| hasher.hash_one(&p.id));
        Ok(())
    }

    fn on_response(&mut self, rec: RawRecord) {
        self.stats.responses += 1;
        let response = match classify_response(&rec.payload) {
            ResponseClass::Interim => {
                self.stats.interim_responses += 1;
                return;
            }
            ResponseClass::Final(bytes, head) => Some((bytes, head)),
            ResponseClass::Unparsable => None,
        };
        let hash = self.hasher.hash_one(&rec.id);
        if let Some(pending) = self.pending.find_mut(hash, |p| p.id == rec.id) {
            match (response, &pending.response) {
                (_, Some(_)) => self.stats.duplicates += 1,
                (Some((bytes, head)), None) => {
                    pending.response = Some(RecordedResponse {
                        bytes,
                        head,
                        latency_ns: rec.ts_ns.saturating_sub(pending.start_ns),
                    });
                }
                (None, None) => self.stats.bad_responses += 1,
            }
            return;
        }
        if self.unmatched.contains_key(&rec.id) {
            self.stats.duplicates += 1;
            return;
        }
        self.unmatched_order.push_back((rec.id.clone(), self.seq));
        self.unmatched.insert(
            rec.id,
            Unmatched {
                seq: self.seq,
                ts_ns: rec.ts_ns,
                response,
            },
        );
        self.evict_unmatched();
    }

    /// Keeps early responses within the window: the oldest one gives up as an orphan.
    fn evict_unmatched(&mut self) {
        while self.unmatched.len() > self.opts.reorder_window {
            let Some((id, seq)) = self.unmatched_order.pop_front() else {
                break;
            };
            if self.unmatched.get(&id).is_some_and(|u| u.seq == seq) {
                self.unmatched.remove(&id);
                self.stats.orphan_responses += 1;
            }
        }
        // Entries of responses that found their request linger in the queue; prune them
        // so the queue stays proportional to the window.
        if self.unmatched_order.len() > 2 * self.opts.reorder_window + 64 {
            let live = &self.unmatched;
            self.unmatched_order
                .retain(|(id, seq)| live.get(id).is_some_and(|u| u.seq == *seq));
        }
    }

    /// The earliest pending exchange, if the window is full or `drain` is set.
    fn release(&mut self, drain: bool) -> Option<Exchange> {
        if !drain && self.pending.len() <= self.opts.reorder_window {
            return None;
        }
        while let Some(Reverse((_, seq, hash))) = self.order.pop() {
            let Ok(entry) = self.pending.find_entry(hash, |p| p.seq == seq) else {
                continue;
            };
            let p = entry.remove().0;
            self.stats.exchanges += 1;
            if p.response.is_some() {
                self.stats.paired += 1;
            } else {
                self.stats.unanswered += 1;
            }
            if self.last_start.is_some_and(|last| p.start_ns < last) {
                self.stats.late += 1;
            }
            self.last_start = Some(self.last_start.map_or(p.start_ns, |l| l.max(p.start_ns)));
            return Some(Exchange {
                id: p.id,
                start_ns: p.start_ns,
                request: p.request,
                request_head: p.head,
                response: p.response,
            });
        }
        None
    }
}

impl Iterator for GorReader {
    type Item = Result<Exchange, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped {
            return None;
        }
        loop {
            if let Some(ex) = self.release(self.input_done) {
                return Some(Ok(ex));
            }
            if self.input_done {
                self.stopped = true;
                return None;
            }
            let step = self
                .next_record()
                .and_then(|rec| rec.map(|rec| self.process(rec)).transpose());
            match step {
                Ok(Some(())) => {}
                Ok(None) => {
                    self.input_done = true;
                    self.stats.orphan_responses += self.unmatched.len() as u64;
                    self.unmatched.clear();
                    self.unmatched_order.clear();
                    if self.good_records == 0 {
                        self.stopped = true;
                        return Some(Err(RecordingError::Empty {
                            file: self.name.clone(),
                            offset: self.stats.bytes,
                        }));
                    }
                }
                Err(e) if self.opts.skip_bad && e.is_record_error() => self.stats.skipped += 1,
                Err(e) => {
                    self.stopped = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Finds the final response in a type-2 payload, past any interim 1xx heads.
fn classify_response(payload: &Bytes) -> ResponseClass {
    let mut at = 0;
    loop {
        match parse_response_head(&payload[at..]) {
            Ok(Some(head)) if is_interim(head.status) => {
                at += head.head_len;
                if at >= payload.len() {
                    return ResponseClass::Interim;
                }
            }
            Ok(Some(head)) => return ResponseClass::Final(payload.slice(at..), head),
            Ok(None) | Err(_) => return ResponseClass::Unparsable,
        }
    }
}

/// 1xx responses are followed by the real one, except 101, after which HTTP ends.
fn is_interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

//! One TCP connection to a captured server port: two reassembled directions, two message
//! readers, and the pairing of requests with responses by their order on the connection.

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;

use super::decode::Segment;
use super::h2::{frame, upgrade, H2Conn, H2Limits, UpgradeRequest};
use super::message::{Head, Message, Reader, Side, Step};
use super::reassembly::{Event, Reassembler};
use super::{CaptureStats, CapturedExchange, Limits};
use crate::http::RequestHead;
use crate::recording::{new_id, Exchange, RecordedResponse};

/// A connection between a client and a captured server.
#[derive(Debug)]
pub struct Connection {
    pub client: SocketAddr,
    pub server: SocketAddr,
    up: Reassembler,
    down: Reassembler,
    req: Reader,
    res: Reader,
    /// Whole requests waiting for their responses, oldest first (pipelining).
    queue: VecDeque<Message>,
    /// Packet time of the last segment, for the idle timeout.
    pub last_ns: u64,
    /// Joined after its start: heads are looked for, and responses to requests
    /// before the join are skipped.
    midstream: bool,
    up_done: bool,
    down_done: bool,
    max_message: usize,
    max_pipelined: usize,
    /// Dropped at a limit: its packets are ignored until it closes or idles.
    dropped: bool,
    /// Initial sequence number of the client's SYN, when seen.
    client_isn: Option<u32>,
    /// HTTP/1 or HTTP/2, told by the first bytes.
    proto: Proto,
    h2_limits: H2Limits,
    /// Bytes held while the protocol is not known yet.
    max_held: usize,
}

/// Bytes held to tell the protocol of a connection joined mid-way: more than two frames of
/// the default size (16 KiB).
const MAX_HELD_MIDSTREAM: usize = 64 << 10;

/// Which protocol a connection speaks, decided from its first bytes: HTTP/2 with prior
/// knowledge starts with the client's preface; anything else is read as HTTP/1.
#[derive(Debug)]
enum Proto {
    /// Not known yet: the first bytes of each direction are held until they tell.
    Sniff(Box<Held>),
    Http1,
    H2(Box<H2Conn>),
    /// HTTP/2 joined mid-way (no HPACK state): ignored, counted.
    Skipped,
}

/// The first bytes of each direction, with the time each chunk was seen.
#[derive(Debug, Default)]
struct Held {
    up: Vec<(Vec<u8>, u64)>,
    down: Vec<(Vec<u8>, u64)>,
    bytes: usize,
}

/// Where the reassembled bytes of a connection go, by its protocol.
struct Route<'a> {
    proto: &'a mut Proto,
    req: &'a mut Reader,
    res: &'a mut Reader,
    out: &'a mut Vec<CapturedExchange>,
    stats: &'a mut CaptureStats,
    how: Sniffing,
}

/// What telling a connection's protocol needs besides its bytes.
#[derive(Debug, Clone, Copy)]
struct Sniffing {
    client: SocketAddr,
    server: SocketAddr,
    h2_limits: H2Limits,
    midstream: bool,
    max_held: usize,
}

impl Route<'_> {
    fn event(&mut self, to_server: bool, e: Event<'_>) {
        match (&mut *self.proto, e) {
            (Proto::Http1, e) => self.http1(to_server, e),
            (Proto::H2(h), Event::Data(d, ts)) => h.push(to_server, d, ts, self.out, self.stats),
            (Proto::H2(h), Event::Gap(_)) => h.gap(self.stats),
            (Proto::Skipped, _) => {}
            (Proto::Sniff(_), Event::Gap(n)) => {
                self.decide(Proto::Http1);
                self.http1(to_server, Event::Gap(n));
            }
            (Proto::Sniff(held), Event::Data(d, ts)) => {
                held.bytes += d.len();
                let side = if to_server {
                    &mut held.up
                } else {
                    &mut held.down
                };
                side.push((d.to_vec(), ts));
                let next = self.sniff();
                if let Some(next) = next {
                    self.decide(next);
                }
            }
        }
    }

    fn http1(&mut self, to_server: bool, e: Event<'_>) {
        let reader = if to_server {
            &mut *self.req
        } else {
            &mut *self.res
        };
        match e {
            Event::Data(d, ts) => reader.push(d, ts),
            Event::Gap(n) => reader.gap(n),
        }
    }

    /// The protocol the held bytes tell, if they tell yet.
    fn sniff(&self) -> Option<Proto> {
        let Proto::Sniff(held) = &*self.proto else {
            return None;
        };
        // Joined mid-way, two frame headers come within the default frame size; the bytes
        // are looked at again with each segment, so few are held.
        let how = self.how;
        let max_held = if how.midstream {
            how.max_held.min(MAX_HELD_MIDSTREAM)
        } else {
            how.max_held
        };
        if held.bytes > max_held {
            return Some(Proto::Http1);
        }
        let joined = |side: &[(Vec<u8>, u64)]| -> Vec<u8> {
            side.iter().flat_map(|(d, _)| d.iter().copied()).collect()
        };
        let up = joined(&held.up);
        let head = &up[..up.len().min(frame::PREFACE.len())];
        if !up.is_empty() && frame::PREFACE.starts_with(head) {
            if head.len() == frame::PREFACE.len() {
                let h2 = H2Conn::new(how.client, how.server, how.h2_limits);
                return Some(Proto::H2(Box::new(h2)));
            }
            return None;
        }
        if !how.midstream {
            // From its start, HTTP/2 is told by the preface alone; until the client has
            // said something (an HTTP/2 server may send its SETTINGS first), wait.
            return (!up.is_empty()).then_some(Proto::Http1);
        }
        let looks = [up, joined(&held.down)]
            .into_iter()
            .filter(|d| !d.is_empty())
            .map(|d| frame::looks_like_frames(&d))
            .collect::<Vec<_>>();
        if looks.contains(&frame::Looks::Frames) {
            Some(Proto::Skipped)
        } else if looks.contains(&frame::Looks::NotFrames) {
            Some(Proto::Http1)
        } else {
            None
        }
    }

    /// Takes protocol `next`, handing it the bytes held so far.
    fn decide(&mut self, next: Proto) {
        if !matches!(self.proto, Proto::Sniff(_)) {
            return;
        }
        let Proto::Sniff(held) = std::mem::replace(self.proto, next) else {
            return;
        };
        match &*self.proto {
            Proto::H2(_) => self.stats.h2_connections += 1,
            Proto::Skipped => self.stats.h2_midstream += 1,
            _ => {}
        }
        // The server's bytes first: its SETTINGS came before the client's headers.
        for (d, ts) in &held.down {
            self.event(false, Event::Data(d, *ts));
        }
        for (d, ts) in &held.up {
            self.event(true, Event::Data(d, *ts));
        }
    }
}

impl Connection {
    /// A connection first seen with `seg`; `syn` says its start was seen.
    pub fn new(client: SocketAddr, server: SocketAddr, syn: bool, limits: &Limits) -> Self {
        let mut res = Reader::new(Side::Response, syn, limits.max_message_bytes)
            .with_head_limits(limits.http());
        if !syn {
            // Nothing the server sends before the first request we see can be paired.
            res.min_start_ns = u64::MAX;
        }
        Self {
            client,
            server,
            up: Reassembler::new(limits.max_pending_bytes, limits.hole_timeout_ns),
            down: Reassembler::new(limits.max_pending_bytes, limits.hole_timeout_ns),
            req: Reader::new(Side::Request, syn, limits.max_message_bytes)
                .with_head_limits(limits.http()),
            res,
            queue: VecDeque::new(),
            last_ns: 0,
            midstream: !syn,
            up_done: false,
            down_done: false,
            max_message: limits.max_message_bytes,
            max_pipelined: limits.max_pipelined,
            dropped: false,
            client_isn: None,
            proto: Proto::Sniff(Box::default()),
            h2_limits: H2Limits::new(limits),
            max_held: limits.max_pending_bytes.max(frame::PREFACE.len()),
        }
    }

    fn sniffing(&self) -> Sniffing {
        Sniffing {
            client: self.client,
            server: self.server,
            h2_limits: self.h2_limits,
            midstream: self.midstream,
            max_held: self.max_held,
        }
    }

    /// Whether a client SYN with `isn` starts a new connection on this 4-tuple (port
    /// reuse) rather than repeating this one's SYN.
    pub fn is_new_syn(&self, isn: u32) -> bool {
        self.client_isn.is_some_and(|mine| mine != isn)
            || (self.client_isn.is_none() && self.up.is_started())
    }

    /// Whether both directions ended: the connection can be forgotten.
    pub fn is_closed(&self) -> bool {
        self.up_done && self.down_done
    }

    /// Bytes this connection holds in memory.
    pub fn buffered(&self) -> usize {
        self.up.pending_bytes()
            + self.down.pending_bytes()
            + self.req.buffered()
            + self.res.buffered()
            + self.queue.iter().map(|m| m.bytes.len()).sum::<usize>()
            + match &self.proto {
                Proto::Sniff(held) => held.bytes,
                Proto::H2(h) => h.buffered(),
                _ => 0,
            }
    }

    /// Feeds one segment, `to_server` telling its direction; finished exchanges go to `out`.
    pub fn segment(
        &mut self,
        seg: &Segment<'_>,
        to_server: bool,
        ts_ns: u64,
        out: &mut Vec<CapturedExchange>,
        stats: &mut CaptureStats,
    ) {
        self.last_ns = self.last_ns.max(ts_ns);
        if self.dropped {
            if seg.rst {
                (self.up_done, self.down_done) = (true, true);
            } else if seg.fin && to_server {
                self.up_done = true;
            } else if seg.fin {
                self.down_done = true;
            }
            return;
        }
        let how = self.sniffing();
        let stream = if to_server {
            &mut self.up
        } else {
            &mut self.down
        };
        if seg.syn {
            stream.syn(seg.seq);
            if to_server {
                self.client_isn.get_or_insert(seg.seq);
            }
        }
        let seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        // Where reassembled bytes go, by the protocol (the reassemblers borrowed apart).
        let mut route = Route {
            how,
            proto: &mut self.proto,
            req: &mut self.req,
            res: &mut self.res,
            out,
            stats,
        };
        stream.segment(seq, seg.payload, seg.missing, seg.fin, ts_ns, &mut |e| {
            route.event(to_server, e)
        });
        self.pump(out, stats);
        if seg.rst {
            self.end(false, out, stats);
            return;
        }
        if !self.up_done && self.up.is_finished() {
            self.up_done = true;
            if let Some(m) = self.req.finish(true) {
                self.request(m, stats);
            }
            self.pump(out, stats);
        }
        if !self.down_done && self.down.is_finished() {
            self.down_done = true;
            if let Some(m) = self.res.finish(true) {
                self.response(m, out, stats);
            }
            self.pump(out, stats);
        }
        if self.is_closed() {
            self.unanswered(out, stats);
            if let Proto::H2(h) = &mut self.proto {
                h.end(out, stats);
            }
        }
    }

    /// The connection ends without a FIN on every side (RST, idle, end of the capture):
    /// holes are skipped, what is in progress is handed out cut short, and requests
    /// still waiting are written without a response.
    pub fn end(&mut self, clean: bool, out: &mut Vec<CapturedExchange>, stats: &mut CaptureStats) {
        // Where reassembled bytes go, by the protocol (the reassemblers borrowed apart).
        let mut route = Route {
            how: self.sniffing(),
            proto: &mut self.proto,
            req: &mut self.req,
            res: &mut self.res,
            out,
            stats,
        };
        self.up.flush(&mut |e| route.event(true, e));
        self.down.flush(&mut |e| route.event(false, e));
        // Whatever is still held never told its protocol: it is read as HTTP/1.
        route.decide(Proto::Http1);
        self.pump(out, stats);
        if let Proto::H2(h) = &mut self.proto {
            h.end(out, stats);
        }
        if !self.up_done {
            self.up_done = true;
            if let Some(m) = self.req.finish(clean) {
                self.request(m, stats);
            }
            self.pump(out, stats);
        }
        if !self.down_done {
            self.down_done = true;
            if let Some(m) = self.res.finish(clean) {
                self.response(m, out, stats);
            }
        }
        self.unanswered(out, stats);
    }

    /// Adds what the connection's parts counted to `stats`; call once, when it is dropped.
    pub fn count_into(&self, stats: &mut CaptureStats) {
        for r in [&self.up, &self.down] {
            stats.duplicate_bytes += r.counts.duplicate_bytes;
            stats.out_of_window_bytes += r.counts.out_of_window_bytes;
            stats.gap_bytes += r.counts.gap_bytes;
            stats.forced_gaps += r.counts.forced_gaps;
        }
        for r in [&self.req, &self.res] {
            stats.non_http_bytes += r.counts.skipped_bytes;
            stats.resyncs += r.counts.resyncs;
            stats.lost_messages += r.counts.lost_messages;
            stats.too_large += r.counts.too_large;
            stats.tunnel_bytes += r.counts.tunnel_bytes;
            stats.over_limit_heads += r.counts.over_limit_heads;
        }
        if let Proto::H2(h) = &self.proto {
            stats.h2_resets += h.counts.resets;
            stats.h2_bad_streams += h.counts.bad_streams;
            stats.h2_undecodable += h.counts.undecodable;
        }
    }

    /// Frames and pairs as far as the bytes allow.
    fn pump(&mut self, out: &mut Vec<CapturedExchange>, stats: &mut CaptureStats) {
        loop {
            loop {
                let step = self.req.step(None);
                if self.req.counts.over_limit_heads > 0 {
                    // A request was dropped: the responses can no longer be paired by order.
                    self.drop_whole(0, stats);
                    return;
                }
                let Step::Message(m) = step else { break };
                self.request(m, stats);
                if self.dropped {
                    return;
                }
            }
            let method = self
                .queue
                .front()
                .and_then(|m| match &m.head {
                    Head::Request(h) => Some(h.method()),
                    Head::Response(_) => None,
                })
                .or_else(|| self.req.partial_request().map(|h| h.method()));
            let step = self.res.step(method);
            if self.res.counts.over_limit_heads > 0 {
                self.drop_whole(0, stats);
                return;
            }
            match step {
                Step::Message(m) => self.response(m, out, stats),
                Step::Interim => stats.interim_responses += 1,
                Step::NeedMethod => {
                    if self.res.buffered() > self.max_message {
                        // Responses nobody asked for pile up: let them go, counted.
                        stats.orphan_responses += 1;
                        self.res.drop_buffered();
                    }
                    return;
                }
                Step::Pending => return,
            }
        }
    }

    fn request(&mut self, m: Message, stats: &mut CaptureStats) {
        if self.midstream && self.res.min_start_ns == u64::MAX {
            self.res.min_start_ns = m.first_ns;
        }
        if self.queue.len() >= self.max_pipelined {
            stats.pipeline_floods += 1;
            self.drop_whole(1, stats);
            return;
        }
        self.queue.push_back(m);
    }

    /// A limit tripped (a pipelining flood, a head too large): the connection is dropped
    /// whole, its buffers freed and its waiting requests (and `more` not queued) counted,
    /// and what it sends from now on is ignored until it closes or idles.
    fn drop_whole(&mut self, more: u64, stats: &mut CaptureStats) {
        stats.limit_dropped_connections += 1;
        stats.limit_dropped_requests += self.queue.len() as u64 + more;
        self.count_into(stats);
        self.queue = VecDeque::new();
        // Fresh parts hold nothing; nothing is fed to them any more.
        self.up = Reassembler::new(0, 0);
        self.down = Reassembler::new(0, 0);
        self.req = Reader::new(Side::Request, false, 0);
        self.res = Reader::new(Side::Response, false, 0);
        self.dropped = true;
    }

    fn response(&mut self, m: Message, out: &mut Vec<CapturedExchange>, stats: &mut CaptureStats) {
        let request = match self.queue.pop_front() {
            Some(r) => r,
            None => match self.req.take_partial() {
                // The server answered before the request body was finished.
                Some(r) => r,
                None => {
                    stats.orphan_responses += 1;
                    // A switch nobody asked for: what follows is not HTTP/1 either.
                    if matches!(&m.head, Head::Response(h) if h.status == 101) {
                        self.res.enter_tunnel();
                    }
                    return;
                }
            },
        };
        if let (Head::Request(req), Head::Response(res)) = (&request.head, &m.head) {
            if upgrade::asks_h2c(req) && upgrade::grants_h2c(res) {
                self.upgrade(&request, req, stats, out);
                return;
            }
            if res.status == 101 || (req.method() == "CONNECT" && (200..300).contains(&res.status))
            {
                self.req.enter_tunnel();
                self.res.enter_tunnel();
            } else if upgrade::asks_h2c(req) {
                // The upgrade was declined: HTTP/1 goes on. (The reader waits after the
                // request that asked, the last one queued; answers to earlier ones leave it.)
                self.req.resume();
            }
        }
        self.emit(request, Some(m), out, stats);
    }

    /// The server switched to HTTP/2 after `request` (RFC 7540 §3.2): the connection is
    /// decoded as HTTP/2 from here, the request being its stream 1 and the 101 no exchange.
    /// What each reader holds past the request and the 101 goes to the decoder, the
    /// server's first: its SETTINGS may come with the 101, the client's preface after it.
    fn upgrade(
        &mut self,
        request: &Message,
        head: &RequestHead,
        stats: &mut CaptureStats,
        out: &mut Vec<CapturedExchange>,
    ) {
        stats.h2_connections += 1;
        stats.h2_upgrades += 1;
        let from = UpgradeRequest {
            bytes: &request.bytes,
            head,
            first_ns: request.first_ns,
            last_ns: request.last_ns,
            truncated: request.truncated,
        };
        let mut h2 = H2Conn::upgraded(self.client, self.server, self.h2_limits, &from, stats);
        for (reader, to_server) in [(&mut self.res, false), (&mut self.req, true)] {
            let (chunks, gap) = reader.take_rest();
            for (d, ts) in chunks {
                h2.push(to_server, &d, ts, out, stats);
            }
            if gap {
                h2.gap(stats);
            }
        }
        // Requests pipelined before the upgrade were answered already; any other was
        // sent over a connection the server switched: it gets no HTTP/1 answer.
        self.unanswered(out, stats);
        self.proto = Proto::H2(Box::new(h2));
    }

    /// Requests that will get no response: written as they are, counted.
    fn unanswered(&mut self, out: &mut Vec<CapturedExchange>, stats: &mut CaptureStats) {
        while let Some(r) = self.queue.pop_front() {
            stats.unanswered += 1;
            self.emit(r, None, out, stats);
        }
    }

    fn emit(
        &self,
        request: Message,
        response: Option<Message>,
        out: &mut Vec<CapturedExchange>,
        stats: &mut CaptureStats,
    ) {
        let Head::Request(request_head) = request.head else {
            return;
        };
        let response_truncated = response.as_ref().is_some_and(|m| m.truncated);
        let last_ns = response
            .as_ref()
            .map(|m| m.last_ns.saturating_sub(request.first_ns));
        let response = response.and_then(|m| match m.head {
            Head::Response(head) => Some(RecordedResponse {
                bytes: Bytes::from(m.bytes),
                head,
                latency_ns: m.first_ns.saturating_sub(request.first_ns),
            }),
            Head::Request(_) => None,
        });
        if request.truncated || response_truncated {
            stats.truncated_exchanges += 1;
        }
        stats.exchanges += 1;
        out.push(CapturedExchange {
            exchange: Exchange {
                id: new_id().into(),
                start_ns: request.first_ns,
                request: Bytes::from(request.bytes),
                request_head,
                response,
            },
            request_truncated: request.truncated,
            response_truncated,
            latency_last_byte_ns: last_ns,
            client: self.client,
            server: self.server,
        });
    }
}

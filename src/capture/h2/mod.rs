//! HTTP/2 connections (h2c with prior knowledge, or reached through the HTTP/1.1 upgrade:
//! [`upgrade`]) decoded into the same exchanges as HTTP/1: frames of both directions
//! ([`frame`]), header blocks through one HPACK decoder per direction, streams paired by
//! their id, each exchange written in HTTP/1.1 form ([`form`]) when its response ends.
//!
//! HPACK state is the whole connection's history: a connection whose preface was not seen
//! (joined mid-way), or whose bytes went missing, cannot be decoded, and is counted and
//! skipped rather than decoded wrong.

pub mod form;
pub mod frame;
#[cfg(test)]
mod tests;
pub mod upgrade;

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use loona_hpack::Decoder;

use self::form::{Fields, FormError};
use self::frame::{Frame, FrameError, FrameReader};
use super::{CaptureStats, CapturedExchange, Limits};
use crate::http::{HeadLimits, RequestHead};
use crate::recording::{new_id, Exchange, RecordedResponse};

/// The HPACK dynamic table size both sides start with (RFC 7541 §4.2, RFC 9113 §6.5.2).
const DEFAULT_TABLE: usize = 4096;

/// The bounds an HTTP/2 connection is held to, from the capture's [`Limits`].
#[derive(Debug, Clone, Copy)]
pub struct H2Limits {
    pub head: HeadLimits,
    /// Largest body kept, and largest frame buffered.
    pub max_message: usize,
    /// Streams open at once (requests waiting for their responses).
    pub max_streams: usize,
}

impl H2Limits {
    pub fn new(limits: &Limits) -> Self {
        Self {
            head: limits.http(),
            max_message: limits.max_message_bytes,
            max_streams: limits.max_pipelined.max(1),
        }
    }
}

/// One direction's half of a stream.
#[derive(Debug, Default)]
struct Part {
    fields: Option<Fields>,
    body: Vec<u8>,
    trailers: Option<Fields>,
    ended: bool,
    too_large: bool,
    first_ns: u64,
    last_ns: u64,
}

#[derive(Debug, Default)]
struct Stream {
    req: Part,
    res: Part,
    /// Stream 1 of an upgraded connection: its request came over HTTP/1.1 and is already
    /// written in the recorded form ([`upgrade::request`]).
    written: Option<Written>,
}

/// A request already in its recorded form, and whether bytes of it were missing.
#[derive(Debug)]
struct Written {
    bytes: Vec<u8>,
    head: RequestHead,
    truncated: bool,
}

/// The HTTP/1.1 request that asked for the upgrade, as the capture framed it.
#[derive(Debug)]
pub struct UpgradeRequest<'a> {
    pub bytes: &'a [u8],
    pub head: &'a RequestHead,
    pub first_ns: u64,
    pub last_ns: u64,
    pub truncated: bool,
}

/// A header block being received (HEADERS or PUSH_PROMISE, then CONTINUATION).
#[derive(Debug)]
struct Block {
    stream: u32,
    bytes: Vec<u8>,
    end_stream: bool,
    push: bool,
    ts_ns: u64,
}

/// What stops decoding a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Framing or HPACK broke (a gap, a protocol error): counted as undecodable.
    Broken,
    /// A limit tripped (a header block too large, too many streams): dropped whole.
    Limit,
}

/// Counters of one connection, added to [`CaptureStats`] when it ends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct H2Counts {
    pub resets: u64,
    pub bad_streams: u64,
    pub undecodable: u64,
}

/// One HTTP/2 connection being decoded.
pub struct H2Conn {
    client: SocketAddr,
    server: SocketAddr,
    limits: H2Limits,
    /// Index 0: the client's direction (requests), 1: the server's (responses).
    readers: [FrameReader; 2],
    hpack: [Decoder<'static>; 2],
    blocks: [Option<Block>; 2],
    streams: HashMap<u32, Stream>,
    stop: Option<Stop>,
    pub counts: H2Counts,
}

impl std::fmt::Debug for H2Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Conn")
            .field("client", &self.client)
            .field("server", &self.server)
            .field("streams", &self.streams.len())
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

impl H2Conn {
    pub fn new(client: SocketAddr, server: SocketAddr, limits: H2Limits) -> Self {
        let max_frame = limits.max_message.max(limits.head.max_head_bytes);
        let decoder = || {
            let mut d = Decoder::new();
            d.set_max_allowed_table_size(DEFAULT_TABLE);
            d
        };
        Self {
            client,
            server,
            limits,
            readers: [
                FrameReader::new(true, max_frame),
                FrameReader::new(false, max_frame),
            ],
            hpack: [decoder(), decoder()],
            blocks: [None, None],
            streams: HashMap::new(),
            stop: None,
            counts: H2Counts::default(),
        }
    }

    /// An HTTP/2 connection reached through the h2c upgrade: stream 1 is `request`, whole
    /// and half-closed (its response comes as HTTP/2), and the client's `HTTP2-Settings`
    /// count as its first SETTINGS. The client's bytes start with the preface, the
    /// server's with its SETTINGS, as with prior knowledge. A request whose rewritten head
    /// is beyond the limits opens no stream 1 (its response is then an orphan).
    pub fn upgraded(
        client: SocketAddr,
        server: SocketAddr,
        limits: H2Limits,
        request: &UpgradeRequest<'_>,
        stats: &mut CaptureStats,
    ) -> Self {
        let mut conn = Self::new(client, server, limits);
        if let Some(settings) = upgrade::client_settings(request.head) {
            // Whole settings by construction; a value the decoder cannot take is ignored.
            let _ = conn.settings(0, &settings);
        }
        match upgrade::request(request.bytes, request.head, &limits.head) {
            Some((bytes, head)) => {
                let req = Part {
                    ended: true,
                    first_ns: request.first_ns,
                    last_ns: request.last_ns,
                    ..Part::default()
                };
                let written = Written {
                    bytes,
                    head,
                    truncated: request.truncated,
                };
                let stream = Stream {
                    req,
                    written: Some(written),
                    ..Stream::default()
                };
                conn.streams.insert(1, stream);
            }
            None => stats.over_limit_heads += 1,
        }
        conn
    }

    /// Bytes held in memory.
    pub fn buffered(&self) -> usize {
        let parts = self.streams.values();
        self.readers
            .iter()
            .map(FrameReader::buffered)
            .sum::<usize>()
            + parts
                .map(|s| {
                    s.req.body.len()
                        + s.res.body.len()
                        + s.written.as_ref().map_or(0, |w| w.bytes.len())
                })
                .sum::<usize>()
    }

    /// Whether decoding stopped: further bytes are ignored.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_some()
    }

    /// Reassembled bytes of one direction, first seen at `ts_ns`.
    pub fn push(
        &mut self,
        to_server: bool,
        data: &[u8],
        ts_ns: u64,
        out: &mut Vec<CapturedExchange>,
        stats: &mut CaptureStats,
    ) {
        if self.stop.is_some() {
            return;
        }
        let d = usize::from(!to_server);
        self.readers[d].push(data, ts_ns);
        while self.stop.is_none() {
            match self.readers[d].next_frame() {
                None => break,
                Some(Ok(f)) => {
                    if let Err(stop) = self.frame(d, f, out, stats) {
                        self.stop_with(stop, stats);
                    }
                }
                Some(Err(FrameError::TooLarge)) => self.stop_with(Stop::Limit, stats),
                Some(Err(_)) => self.stop_with(Stop::Broken, stats),
            }
        }
        if self.streams.len() > self.limits.max_streams {
            stats.pipeline_floods += 1;
            self.stop_with(Stop::Limit, stats);
        }
    }

    /// Bytes of one direction were never seen: frames and HPACK state are lost.
    pub fn gap(&mut self, stats: &mut CaptureStats) {
        if self.stop.is_none() {
            self.stop_with(Stop::Broken, stats);
        }
    }

    /// The connection ended: streams with a request are written, cut short where their
    /// response had begun, without a response where it had not.
    pub fn end(&mut self, out: &mut Vec<CapturedExchange>, stats: &mut CaptureStats) {
        let mut ids: Vec<u32> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(s) = self.streams.remove(&id) {
                self.emit(s, out, stats);
            }
        }
    }

    fn stop_with(&mut self, stop: Stop, stats: &mut CaptureStats) {
        self.stop = Some(stop);
        let requests = self.streams.len() as u64;
        match stop {
            Stop::Broken => {
                self.counts.undecodable += 1;
                stats.lost_messages += requests;
            }
            Stop::Limit => {
                stats.limit_dropped_connections += 1;
                stats.limit_dropped_requests += requests;
            }
        }
        self.streams = HashMap::new();
        self.blocks = [None, None];
        self.readers = [FrameReader::new(false, 0), FrameReader::new(false, 0)];
    }

    /// One frame of direction `d`.
    fn frame(
        &mut self,
        d: usize,
        f: Frame,
        out: &mut Vec<CapturedExchange>,
        stats: &mut CaptureStats,
    ) -> Result<(), Stop> {
        use frame::*;
        let h = f.head;
        if self.blocks[d].is_some() && h.kind != CONTINUATION {
            return Err(Stop::Broken);
        }
        match h.kind {
            DATA => self.data(d, f, out, stats),
            HEADERS | PUSH_PROMISE => {
                if h.stream == 0 {
                    return Err(Stop::Broken);
                }
                self.blocks[d] = Some(Block {
                    stream: h.stream,
                    bytes: Vec::new(),
                    end_stream: h.kind == HEADERS && h.flags & END_STREAM != 0,
                    push: h.kind == PUSH_PROMISE,
                    ts_ns: f.ts_ns,
                });
                self.fragment(d, &f, out, stats)?;
            }
            CONTINUATION => {
                if self.blocks[d].as_ref().map(|b| b.stream) != Some(h.stream) {
                    return Err(Stop::Broken);
                }
                self.fragment(d, &f, out, stats)?;
            }
            SETTINGS if h.flags & ACK == 0 => self.settings(d, &f.payload)?,
            RST_STREAM => {
                if let Some(s) = self.streams.remove(&h.stream) {
                    self.counts.resets += 1;
                    // A reset stream has no response, whatever of one was seen.
                    let s = Stream {
                        res: Part::default(),
                        ..s
                    };
                    self.emit(s, out, stats);
                }
            }
            // Flow control, liveness, priority and shutdown carry nothing recorded;
            // GOAWAY's unprocessed streams are reset or end with the connection.
            _ => {}
        }
        Ok(())
    }

    /// SETTINGS from direction `d`: its header table size bounds what the other side's
    /// encoder may use, so the decoder of the other direction may grow to it (never beyond
    /// the capture's head size limit, which bounds memory).
    fn settings(&mut self, d: usize, payload: &[u8]) -> Result<(), Stop> {
        if payload.len() % 6 != 0 {
            return Err(Stop::Broken);
        }
        for s in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            let value = u32::from_be_bytes([s[2], s[3], s[4], s[5]]) as usize;
            if id == 0x1 {
                let cap = self.limits.head.max_head_bytes.max(DEFAULT_TABLE);
                self.hpack[1 - d].set_max_allowed_table_size(value.clamp(DEFAULT_TABLE, cap));
            }
        }
        Ok(())
    }

    fn data(
        &mut self,
        d: usize,
        f: Frame,
        out: &mut Vec<CapturedExchange>,
        stats: &mut CaptureStats,
    ) {
        let id = f.head.stream;
        let max = self.limits.max_message;
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let part = if d == 0 { &mut s.req } else { &mut s.res };
        if part.fields.is_none() || part.ended {
            return;
        }
        part.last_ns = f.ts_ns;
        if f.cut || part.body.len() + f.payload.len() > max {
            part.too_large = true;
            part.body = Vec::new();
        } else if !part.too_large {
            part.body.extend_from_slice(&f.payload);
        }
        if f.head.flags & frame::END_STREAM != 0 {
            self.end_part(d, id, out, stats);
        }
    }

    /// A header block fragment; the whole block is decoded when it ends.
    fn fragment(
        &mut self,
        d: usize,
        f: &Frame,
        out: &mut Vec<CapturedExchange>,
        stats: &mut CaptureStats,
    ) -> Result<(), Stop> {
        let Some(block) = self.blocks[d].as_mut() else {
            return Err(Stop::Broken);
        };
        block.bytes.extend_from_slice(&f.payload);
        if block.bytes.len() > self.limits.head.max_head_bytes {
            stats.over_limit_heads += 1;
            return Err(Stop::Limit);
        }
        if f.head.flags & frame::END_HEADERS == 0 {
            return Ok(());
        }
        let Some(block) = self.blocks[d].take() else {
            return Err(Stop::Broken);
        };
        let mut fields = Fields::new();
        let mut size = 0usize;
        self.hpack[d]
            .decode_with_cb(&block.bytes, |n, v| {
                size += n.len() + v.len() + 4;
                if size <= self.limits.head.max_head_bytes {
                    fields.push((n.into_owned(), v.into_owned()));
                }
            })
            .map_err(|_| Stop::Broken)?;
        if block.push {
            // The promise only had to go through the decoder; pushed streams are not
            // requests of the client.
            return Ok(());
        }
        if size > self.limits.head.max_head_bytes || fields.len() > self.limits.head.max_headers {
            stats.over_limit_heads += 1;
            return Err(Stop::Limit);
        }
        self.headers(d, block, fields, out, stats);
        Ok(())
    }

    /// A decoded header block on a stream: a request's head, a response's, or trailers.
    fn headers(
        &mut self,
        d: usize,
        block: Block,
        fields: Fields,
        out: &mut Vec<CapturedExchange>,
        stats: &mut CaptureStats,
    ) {
        let id = block.stream;
        if d == 0 && !self.streams.contains_key(&id) {
            self.streams.insert(id, Stream::default());
        }
        let Some(s) = self.streams.get_mut(&id) else {
            // A response on a stream never requested (pushed, or opened before the join).
            stats.orphan_responses += 1;
            return;
        };
        let part = if d == 0 { &mut s.req } else { &mut s.res };
        if part.ended {
            return;
        }
        if part.fields.is_none() {
            let interim = d == 1
                && form::pseudo(&fields, b":status").is_some_and(|v| v.first() == Some(&b'1'));
            if interim {
                stats.interim_responses += 1;
                return;
            }
            part.first_ns = block.ts_ns;
            part.fields = Some(fields);
        } else {
            part.trailers = Some(fields);
        }
        part.last_ns = block.ts_ns;
        if block.end_stream {
            self.end_part(d, id, out, stats);
        }
    }

    /// END_STREAM on one side of a stream; the response's end writes the exchange.
    fn end_part(
        &mut self,
        d: usize,
        id: u32,
        out: &mut Vec<CapturedExchange>,
        stats: &mut CaptureStats,
    ) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if d == 0 {
            s.req.ended = true;
            return;
        }
        s.res.ended = true;
        if let Some(s) = self.streams.remove(&id) {
            self.emit(s, out, stats);
        }
    }

    /// Writes a stream as an exchange in HTTP/1.1 form; one that cannot be is counted.
    fn emit(&mut self, s: Stream, out: &mut Vec<CapturedExchange>, stats: &mut CaptureStats) {
        let (req, res) = (s.req, s.res);
        if req.too_large || res.too_large {
            stats.too_large += 1;
            return;
        }
        let limits = &{ self.limits.head };
        let (request, request_head, written_truncated) = match (s.written, &req.fields) {
            (Some(w), _) => (w.bytes, w.head, w.truncated),
            (None, Some(fields)) => {
                match form::request(fields, &req.body, req.trailers.as_ref(), limits) {
                    Ok((bytes, head)) => (bytes, head, false),
                    Err(e) => {
                        self.bad(e, stats);
                        return;
                    }
                }
            }
            (None, None) => return,
        };
        let response = res.fields.as_ref().and_then(|fields| {
            let head_request = request_head.method() == "HEAD";
            match form::response(
                fields,
                &res.body,
                res.trailers.as_ref(),
                head_request,
                limits,
            ) {
                Ok((bytes, head)) => Some(RecordedResponse {
                    bytes: Bytes::from(bytes),
                    head,
                    latency_ns: res.first_ns.saturating_sub(req.first_ns),
                }),
                Err(e) => {
                    self.bad(e, stats);
                    None
                }
            }
        });
        let request_truncated = written_truncated || (!req.ended && response.is_none());
        let response_truncated = response.is_some() && !res.ended;
        if response.is_none() {
            stats.unanswered += 1;
        }
        if request_truncated || response_truncated {
            stats.truncated_exchanges += 1;
        }
        stats.exchanges += 1;
        out.push(CapturedExchange {
            latency_last_byte_ns: response
                .as_ref()
                .map(|_| res.last_ns.saturating_sub(req.first_ns)),
            exchange: Exchange {
                id: new_id().into(),
                start_ns: req.first_ns,
                request: Bytes::from(request),
                request_head,
                response,
            },
            request_truncated,
            response_truncated,
            client: self.client,
            server: self.server,
        });
    }

    fn bad(&mut self, e: FormError, stats: &mut CaptureStats) {
        match e {
            FormError::Limit => stats.over_limit_heads += 1,
            FormError::Malformed => self.counts.bad_streams += 1,
        }
    }
}

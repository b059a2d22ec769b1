//! HTTP/1.x messages out of one reassembled direction of a connection, framed
//! incrementally: each byte is looked at once however the stream was cut, so a multi-MB
//! chunked body costs no rescans.
//!
//! Heads are parsed and body lengths decided by `crate::http`; this reader only keeps the
//! position. After a gap or garbage it resynchronises on the next parseable head.

use std::collections::VecDeque;

use super::h2::upgrade;
use crate::http::{
    parse_request_head_with, parse_response_head_with, request_body_length, response_body_length,
    BodyLength, ChunkedScanner, HeadLimits, RequestHead, ResponseHead,
};

/// Methods a resynchronising request reader looks for.
const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"PATCH ",
    b"OPTIONS ",
    b"CONNECT ",
    b"TRACE ",
];

/// Which direction this reader frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// A parsed head of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    Request(RequestHead),
    Response(ResponseHead),
}

/// One whole (or, at the end of a stream, cut-short) message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub head: Head,
    /// Head and body as on the wire, less any bytes the capture missed.
    pub bytes: Vec<u8>,
    /// When the first and the last byte were seen, in ns since the epoch.
    pub first_ns: u64,
    pub last_ns: u64,
    /// Bytes are missing: snaplen, a capture gap inside the body, or the stream ended
    /// before the message did.
    pub truncated: bool,
}

/// What [`Reader::step`] found.
#[derive(Debug)]
pub enum Step {
    /// A whole message.
    Message(Message),
    /// An interim (1xx) response was consumed; the final one follows.
    Interim,
    /// A response head waits for the method of its request to know its body length.
    NeedMethod,
    /// Nothing more can be framed with the bytes so far.
    Pending,
}

#[derive(Debug)]
enum Body {
    Fixed(u64),
    Chunked(ChunkedScanner),
    Close,
}

#[derive(Debug)]
enum Phase {
    /// Looking for the start of a head after a gap, garbage or a mid-stream join.
    Resync,
    /// At the start of a message.
    Head,
    Body {
        head: Head,
        body: Body,
    },
    /// The connection left HTTP (101, CONNECT): everything after is ignored.
    Tunnel,
    /// A `101 Switching Protocols`, or a request asking for the h2c upgrade, was framed:
    /// nothing more is framed until the caller decides whether the connection leaves
    /// HTTP/1 ([`Reader::enter_tunnel`], [`Reader::take_rest`]) or goes on
    /// ([`Reader::resume`]). The bytes that arrive meanwhile are held, up to
    /// `max_message`: past it framing goes on as HTTP/1, which bounds a client that keeps
    /// sending while its server never answers.
    Switching,
}

/// Counts of bytes and messages this reader could not use.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReaderCounts {
    /// Bytes skipped while looking for a head (non-HTTP payload, mid-stream joins).
    pub skipped_bytes: u64,
    /// Times the reader lost the message boundary and had to look for a head.
    pub resyncs: u64,
    /// Messages dropped because a gap broke their framing.
    pub lost_messages: u64,
    /// Messages larger than the limit, framed and dropped.
    pub too_large: u64,
    /// Bytes after a protocol switch, ignored.
    pub tunnel_bytes: u64,
    /// Heads beyond the header count or head size limit, dropped.
    pub over_limit_heads: u64,
}

/// Frames the messages of one direction.
#[derive(Debug)]
pub struct Reader {
    side: Side,
    phase: Phase,
    /// `buf[start..]` is the current message and what follows; `buf[start..pos]` has
    /// been framed.
    buf: Vec<u8>,
    start: usize,
    pos: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// (stream offset, time first seen) of every data chunk still in `buf`.
    marks: VecDeque<(u64, u64)>,
    /// (stream offset, length) of every gap not yet framed up to.
    gaps: VecDeque<(u64, u64)>,
    /// The current message lost bytes.
    truncated: bool,
    /// The current message is framed but its bytes are not kept (too large, or already
    /// handed out by [`Reader::take_partial`]).
    discard: Option<Discard>,
    /// During resynchronisation, heads first seen before this time are not taken.
    pub min_start_ns: u64,
    max_message: usize,
    /// Bounds on heads; a head beyond them is not used.
    head_limits: HeadLimits,
    pub counts: ReaderCounts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discard {
    TooLarge,
    Taken,
}

impl Reader {
    /// A reader of `side`; `synced` is false for a stream joined mid-way.
    pub fn new(side: Side, synced: bool, max_message: usize) -> Self {
        Self {
            side,
            phase: if synced { Phase::Head } else { Phase::Resync },
            buf: Vec::new(),
            start: 0,
            pos: 0,
            base: 0,
            marks: VecDeque::new(),
            gaps: VecDeque::new(),
            truncated: false,
            discard: None,
            min_start_ns: 0,
            max_message,
            head_limits: HeadLimits {
                max_body_bytes: u64::MAX,
                ..HeadLimits::default()
            },
            counts: ReaderCounts::default(),
        }
    }

    /// The same reader with these bounds on heads (bodies are bounded by `max_message`).
    pub fn with_head_limits(mut self, limits: HeadLimits) -> Self {
        self.head_limits = limits;
        self
    }

    /// Whether the reader is looking for the next head.
    pub fn is_resyncing(&self) -> bool {
        matches!(self.phase, Phase::Resync)
    }

    /// Bytes held in memory.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Appends stream bytes first seen at `ts_ns`.
    pub fn push(&mut self, data: &[u8], ts_ns: u64) {
        if matches!(self.phase, Phase::Tunnel) {
            self.counts.tunnel_bytes += data.len() as u64;
            return;
        }
        let at = self.base + self.buf.len() as u64;
        if self.marks.back().is_none_or(|&(_, t)| t != ts_ns) {
            self.marks.push_back((at, ts_ns));
        }
        self.buf.extend_from_slice(data);
    }

    /// `n` bytes of the stream were never seen, after the bytes pushed so far. The gap
    /// takes effect when framing reaches it.
    pub fn gap(&mut self, n: u64) {
        if matches!(self.phase, Phase::Tunnel) {
            return;
        }
        let at = self.base + self.buf.len() as u64;
        match self.gaps.back_mut() {
            Some((last, len)) if *last == at => *len += n,
            _ => self.gaps.push_back((at, n)),
        }
    }

    /// Where framing must stop: the next gap, or the end of the bytes.
    fn limit(&self) -> usize {
        self.gaps.front().map_or(self.buf.len(), |&(at, _)| {
            usize::try_from(at - self.base).map_or(self.buf.len(), |i| i.min(self.buf.len()))
        })
    }

    /// Framing reached the next gap: carry on across it if the message allows, else drop
    /// the message and look for the next head after it.
    fn cross_gap(&mut self) {
        let limit = self.limit();
        let Some((_, n)) = self.gaps.pop_front() else {
            return;
        };
        let empty = self.start == limit;
        match &mut self.phase {
            Phase::Tunnel => {}
            Phase::Resync => self.skip_to(limit),
            Phase::Body {
                body: Body::Fixed(rest),
                ..
            } if *rest >= n => {
                *rest -= n;
                self.truncated = true;
            }
            Phase::Body {
                body: Body::Close, ..
            } => self.truncated = true,
            Phase::Head if empty => self.lose(false, limit),
            _ => self.lose(true, limit),
        }
    }

    /// Drops everything buffered (counted) and looks for the next head.
    pub fn drop_buffered(&mut self) {
        self.gaps.clear();
        self.lose(true, self.buf.len());
    }

    /// Drops the message in progress, and the bytes up to `upto`, and looks for the next
    /// head.
    fn lose(&mut self, had_message: bool, upto: usize) {
        if had_message && self.discard.is_none() {
            self.counts.lost_messages += 1;
        }
        self.counts.resyncs += 1;
        self.truncated = false;
        self.discard = None;
        self.phase = Phase::Resync;
        self.skip_to(upto.max(self.start));
    }

    /// The bytes at `start` are not a usable head: look for one from the next byte on.
    fn not_a_head(&mut self) {
        self.counts.resyncs += 1;
        self.counts.skipped_bytes += 1;
        self.start += 1;
        self.pos = self.start;
        self.phase = Phase::Resync;
        self.compact();
    }

    /// The request head whose body is still arriving, if any.
    pub fn partial_request(&self) -> Option<&RequestHead> {
        match &self.phase {
            Phase::Body {
                head: Head::Request(head),
                ..
            } if self.discard.is_none() => Some(head),
            _ => None,
        }
    }

    /// Hands out the message in progress as it is so far (marked truncated) and frames the
    /// rest of it without keeping it: a response came before the request body finished.
    pub fn take_partial(&mut self) -> Option<Message> {
        let Phase::Body { head, .. } = &self.phase else {
            return None;
        };
        let head = head.clone();
        let end = self.pos;
        let bytes = self.buf.get(self.start..end).unwrap_or_default().to_vec();
        let first_ns = self.ts_at(self.base + self.start as u64);
        let last_ns = self.ts_at((self.base + end as u64).saturating_sub(1));
        self.discard = Some(Discard::Taken);
        self.start = end;
        self.compact();
        Some(Message {
            head,
            bytes,
            first_ns,
            last_ns,
            truncated: true,
        })
    }

    /// Frames as far as the bytes allow. `method` is the method of the request the next
    /// response answers (responses only; `None` when not known yet).
    pub fn step(&mut self, method: Option<&str>) -> Step {
        loop {
            let limit = self.limit();
            match &mut self.phase {
                Phase::Tunnel => return Step::Pending,
                Phase::Switching if self.buf.len() - self.start > self.max_message => {
                    self.phase = Phase::Head;
                }
                Phase::Switching => return Step::Pending,
                Phase::Resync => {
                    if !self.resync() {
                        if self.gaps.is_empty() {
                            return Step::Pending;
                        }
                        self.cross_gap();
                    }
                }
                Phase::Head => match self.head(method) {
                    Some(Step::Pending) if !self.gaps.is_empty() => self.cross_gap(),
                    Some(step) => return step,
                    None => continue,
                },
                Phase::Body { body, .. } => {
                    let avail = self.buf.get(self.pos..limit).unwrap_or_default();
                    let done = match body {
                        Body::Fixed(rest) => {
                            let take =
                                usize::try_from(*rest).map_or(avail.len(), |r| r.min(avail.len()));
                            *rest -= take as u64;
                            self.pos += take;
                            *rest == 0
                        }
                        Body::Chunked(scanner) => match scanner.feed(avail) {
                            Ok(Some(n)) => {
                                self.pos += n;
                                true
                            }
                            Ok(None) => {
                                self.pos = limit;
                                false
                            }
                            Err(_) => {
                                let upto = self.pos;
                                self.lose(true, upto);
                                continue;
                            }
                        },
                        Body::Close => {
                            self.pos = limit;
                            false
                        }
                    };
                    if self.discard.is_none() && self.pos - self.start > self.max_message {
                        self.counts.too_large += 1;
                        self.discard = Some(Discard::TooLarge);
                    }
                    if done {
                        if let Some(message) = self.complete() {
                            return Step::Message(message);
                        }
                        continue;
                    }
                    if self.discard.is_some() {
                        // Framed bytes of a message not kept: let them go.
                        self.start = self.pos;
                        self.compact();
                    }
                    if self.gaps.is_empty() {
                        return Step::Pending;
                    }
                    self.cross_gap();
                }
            }
        }
    }

    /// The stream ended. `clean` says it ended with a FIN (a close-delimited body is then
    /// whole); otherwise the capture stopped or the connection was reset or idle.
    /// Returns the message in progress, cut short if it is.
    pub fn finish(&mut self, clean: bool) -> Option<Message> {
        if !self.gaps.is_empty() {
            // A gap nobody framed up to: the message in progress lost bytes.
            self.truncated = true;
        }
        self.gaps.clear();
        let message = match &self.phase {
            Phase::Body { body, .. } => {
                if !matches!(body, Body::Close) || !clean {
                    self.truncated = true;
                }
                self.pos = self.buf.len();
                self.complete()
            }
            Phase::Head | Phase::Resync | Phase::Switching if self.buffered() > 0 => {
                self.counts.skipped_bytes += self.buffered() as u64;
                None
            }
            _ => None,
        };
        self.start = self.buf.len();
        self.pos = self.start;
        self.compact();
        message
    }

    /// Ends the message at `pos` and starts the next. After a message that may switch the
    /// protocol (a 101; a request asking for h2c) framing waits for the caller's decision.
    fn complete(&mut self) -> Option<Message> {
        let Phase::Body { head, .. } = std::mem::replace(&mut self.phase, Phase::Head) else {
            return None;
        };
        let switching = match &head {
            Head::Response(h) => h.status == 101,
            Head::Request(h) => upgrade::asks_h2c(h),
        };
        let end = self.pos;
        let kept = self.discard.take().is_none();
        let message = kept.then(|| Message {
            bytes: self.buf.get(self.start..end).unwrap_or_default().to_vec(),
            first_ns: self.ts_at(self.base + self.start as u64),
            last_ns: self.ts_at((self.base + end as u64).saturating_sub(1)),
            truncated: self.truncated,
            head,
        });
        self.truncated = false;
        self.start = end;
        if switching {
            self.phase = Phase::Switching;
        }
        self.compact();
        message
    }

    /// The protocol did not switch (the upgrade was declined): framing goes on as HTTP/1.
    pub fn resume(&mut self) {
        if matches!(self.phase, Phase::Switching) {
            self.phase = Phase::Head;
        }
    }

    /// Stops framing: the connection no longer speaks HTTP/1.x.
    pub fn enter_tunnel(&mut self) {
        self.counts.tunnel_bytes += (self.buf.len() - self.start) as u64;
        self.gaps.clear();
        self.phase = Phase::Tunnel;
        self.start = self.buf.len();
        self.pos = self.start;
        self.compact();
    }

    /// Stops framing and hands out the bytes not framed yet, each chunk with the time it
    /// was first seen, for the protocol the connection switched to (h2c). `true` with
    /// them when bytes after them were never seen: what follows cannot be read.
    pub fn take_rest(&mut self) -> (Vec<(Vec<u8>, u64)>, bool) {
        let limit = self.limit();
        let gap = !self.gaps.is_empty();
        let mut chunks = Vec::new();
        let mut at = self.start;
        while at < limit {
            let off = self.base + at as u64;
            // The chunk ends where the next time mark starts.
            let next = self
                .marks
                .iter()
                .find(|&&(o, _)| o > off)
                .and_then(|&(o, _)| usize::try_from(o - self.base).ok())
                .map_or(limit, |n| n.min(limit));
            chunks.push((self.buf[at..next].to_vec(), self.ts_at(off)));
            at = next;
        }
        self.gaps.clear();
        self.phase = Phase::Tunnel;
        self.start = self.buf.len();
        self.pos = self.start;
        self.compact();
        (chunks, gap)
    }

    /// Parses the head at `start`. `None` means the phase changed: go on stepping.
    fn head(&mut self, method: Option<&str>) -> Option<Step> {
        let rest = self.buf.get(self.start..self.limit()).unwrap_or_default();
        if rest.is_empty() {
            return Some(Step::Pending);
        }
        let parsed = match self.side {
            Side::Request => {
                parse_request_head_with(rest, &self.head_limits).map(|h| h.map(Head::Request))
            }
            Side::Response => {
                parse_response_head_with(rest, &self.head_limits).map(|h| h.map(Head::Response))
            }
        };
        let head = match parsed {
            Ok(Some(head)) => head,
            Ok(None) => return Some(Step::Pending),
            Err(e) => {
                if e.is_limit() {
                    self.counts.over_limit_heads += 1;
                }
                self.not_a_head();
                return None;
            }
        };
        let (head_len, body) = match &head {
            Head::Request(h) => (h.head_len, request_body_length(h)),
            Head::Response(h) if h.is_interim() => {
                self.start += h.head_len;
                self.pos = self.start;
                self.compact();
                return Some(Step::Interim);
            }
            Head::Response(h) => {
                let Some(method) = method else {
                    return Some(Step::NeedMethod);
                };
                (h.head_len, response_body_length(h, method))
            }
        };
        let body = match body {
            Ok(BodyLength::Empty | BodyLength::Tunnel) => Body::Fixed(0),
            Ok(BodyLength::Fixed(n)) => Body::Fixed(n),
            Ok(BodyLength::Chunked) => Body::Chunked(ChunkedScanner::new()),
            Ok(BodyLength::CloseDelimited) => Body::Close,
            Err(_) => {
                self.not_a_head();
                return None;
            }
        };
        self.pos = self.start + head_len;
        self.phase = Phase::Body { head, body };
        None
    }

    /// Looks for a parseable head in the buffer; `true` when found (phase is then Head).
    fn resync(&mut self) -> bool {
        let limit = self.limit();
        let mut i = self.start;
        while i < limit {
            let rest = self.buf.get(i..limit).unwrap_or_default();
            let candidate = match self.side {
                Side::Request => METHODS
                    .iter()
                    .any(|m| rest.starts_with(m) || (rest.len() < m.len() && m.starts_with(rest))),
                Side::Response => {
                    rest.starts_with(b"HTTP/1.") || (rest.len() < 7 && b"HTTP/1.".starts_with(rest))
                }
            } && (i == 0 || !self.buf[i - 1].is_ascii_alphanumeric());
            if candidate && self.ts_at(self.base + i as u64) >= self.min_start_ns {
                let parsed = match self.side {
                    Side::Request => {
                        parse_request_head_with(rest, &self.head_limits).map(|h| h.is_some())
                    }
                    Side::Response => {
                        parse_response_head_with(rest, &self.head_limits).map(|h| h.is_some())
                    }
                };
                match parsed {
                    Ok(true) => {
                        self.skip_to(i);
                        self.phase = Phase::Head;
                        return true;
                    }
                    Ok(false) => {
                        // Maybe a head, not complete yet: wait for more.
                        self.skip_to(i);
                        return false;
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        self.skip_to(limit);
        false
    }

    fn skip_to(&mut self, i: usize) {
        self.counts.skipped_bytes += (i - self.start) as u64;
        self.start = i;
        self.pos = i;
        self.compact();
    }

    /// When the byte at stream offset `at` was first seen.
    fn ts_at(&self, at: u64) -> u64 {
        let i = self.marks.partition_point(|&(off, _)| off <= at);
        i.checked_sub(1)
            .and_then(|i| self.marks.get(i))
            .map_or(0, |&(_, ts)| ts)
    }

    /// Frees the consumed front of the buffer and the time marks before it.
    fn compact(&mut self) {
        let consumed = self.base + self.start as u64;
        while self.marks.len() > 1 && self.marks.get(1).is_some_and(|&(off, _)| off <= consumed) {
            self.marks.pop_front();
        }
        if self.start == self.buf.len() {
            self.base += self.start as u64;
            self.buf.clear();
            self.start = 0;
            self.pos = 0;
        } else if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.base += self.start as u64;
            self.pos -= self.start;
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(r: &mut Reader, method: Option<&str>) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            match r.step(method) {
                Step::Message(m) => out.push(m),
                Step::Interim => {}
                Step::NeedMethod | Step::Pending => return out,
            }
        }
    }

    #[test]
    fn pipelined_requests_fed_byte_by_byte() {
        let wire = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
                     PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        let mut r = Reader::new(Side::Request, true, 1 << 20);
        let mut got = Vec::new();
        for (i, b) in wire.iter().enumerate() {
            r.push(&[*b], i as u64);
            got.extend(messages(&mut r, None));
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got.iter().map(|m| m.bytes.len()).sum::<usize>(), wire.len());
        assert_eq!(got[1].first_ns, 19);
        assert!(got.iter().all(|m| !m.truncated));
    }

    #[test]
    fn response_waits_for_method_and_skips_interim() {
        let mut r = Reader::new(Side::Response, true, 1 << 20);
        r.push(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
            5,
        );
        assert!(matches!(r.step(None), Step::Interim));
        assert!(matches!(r.step(None), Step::NeedMethod));
        assert!(matches!(r.step(Some("HEAD")), Step::Message(m) if m.first_ns == 5));
    }

    #[test]
    fn close_delimited_needs_a_clean_end() {
        let mut r = Reader::new(Side::Response, true, 1 << 20);
        r.push(b"HTTP/1.0 200 OK\r\n\r\nall of it", 1);
        assert!(messages(&mut r, Some("GET")).is_empty());
        let m = r.finish(true).unwrap();
        assert!(m.bytes.ends_with(b"all of it") && !m.truncated);
    }

    #[test]
    fn gap_in_fixed_body_keeps_framing_and_marks() {
        let mut r = Reader::new(Side::Response, true, 1 << 20);
        r.push(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab", 1);
        assert!(messages(&mut r, Some("GET")).is_empty());
        r.gap(3);
        r.push(b"fHTTP/1.1 204 No Content\r\n\r\n", 2);
        let got = messages(&mut r, Some("GET"));
        assert_eq!(got.len(), 2);
        assert!(got[0].truncated && !got[1].truncated);
    }

    #[test]
    fn resyncs_after_garbage_and_mid_stream() {
        let mut r = Reader::new(Side::Request, false, 1 << 20);
        r.push(b"dy of an earlier POST\r\nGET /x HTTP/1.1\r\n\r\n", 1);
        let got = messages(&mut r, None);
        assert_eq!(got.len(), 1);
        assert!(r.counts.skipped_bytes > 0);
        r.push(b"\x16\x03\x01garbage\nGET /y HTTP/1.1\r\n\r\n", 2);
        assert_eq!(messages(&mut r, None).len(), 1);
        assert_eq!(r.counts.resyncs, 1);
    }

    #[test]
    fn too_large_is_framed_and_dropped() {
        let mut r = Reader::new(Side::Request, true, 100);
        r.push(b"POST / HTTP/1.1\r\nContent-Length: 500\r\n\r\n", 1);
        r.push(&[b'x'; 500], 1);
        r.push(b"GET / HTTP/1.1\r\n\r\n", 1);
        assert_eq!(messages(&mut r, None).len(), 1);
        assert_eq!(r.counts.too_large, 1);
    }

    #[test]
    fn take_partial_then_rest_is_discarded() {
        let mut r = Reader::new(Side::Request, true, 1 << 20);
        r.push(b"PUT / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", 1);
        assert!(messages(&mut r, None).is_empty());
        assert!(r.partial_request().is_some());
        let m = r.take_partial().unwrap();
        assert!(m.truncated && m.bytes.ends_with(b"ab"));
        r.push(b"cdGET / HTTP/1.1\r\n\r\n", 2);
        let got = messages(&mut r, None);
        assert_eq!(got.len(), 1);
        assert!(got[0].bytes.starts_with(b"GET"));
    }

    #[test]
    fn an_h2c_request_waits_for_the_decision_within_bounds() {
        let asked = b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n";
        let next = b"GET /b HTTP/1.1\r\n\r\n";
        let mut r = Reader::new(Side::Request, true, 100);
        r.push(asked, 1);
        r.push(next, 2);
        assert_eq!(messages(&mut r, None).len(), 1);
        // Held, not framed, until the caller decides.
        assert_eq!(r.buffered(), next.len());
        r.resume();
        assert_eq!(messages(&mut r, None)[0].first_ns, 2);
        // Never decided: past `max_message` held bytes framing goes on as HTTP/1.
        r.push(asked, 3);
        for t in 0..6 {
            r.push(next, 4 + t);
        }
        let got = messages(&mut r, None);
        assert_eq!(got.len(), 7);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn the_rest_after_a_101_is_handed_out_with_its_times() {
        let mut r = Reader::new(Side::Response, true, 1 << 20);
        r.push(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\nab",
            5,
        );
        r.push(b"cd", 6);
        r.gap(3);
        r.push(b"ef", 7);
        assert!(matches!(r.step(Some("GET")), Step::Message(m) if m.first_ns == 5));
        assert!(matches!(r.step(Some("GET")), Step::Pending));
        let (chunks, gap) = r.take_rest();
        assert_eq!(chunks, vec![(b"ab".to_vec(), 5), (b"cd".to_vec(), 6)]);
        assert!(gap);
        assert_eq!((r.buffered(), r.counts.tunnel_bytes), (0, 0));
        // A 101 the caller tunnels: its bytes are counted as before.
        let mut r = Reader::new(Side::Response, true, 1 << 20);
        r.push(b"HTTP/1.1 101 Switching Protocols\r\n\r\nxyz", 1);
        assert!(matches!(r.step(Some("GET")), Step::Message(_)));
        r.enter_tunnel();
        r.push(b"more", 2);
        assert_eq!(r.counts.tunnel_bytes, 7);
    }
}

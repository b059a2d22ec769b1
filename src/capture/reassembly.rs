//! TCP reassembly of one direction of one connection: segments in, the byte stream out,
//! in order, each byte once.
//!
//! Sequence numbers are 32-bit and wrap; every segment is placed relative to the next
//! expected byte with wrapping arithmetic and then kept under a 64-bit stream offset, so
//! wrap-around needs no special case. Segments ahead of a hole wait (bounded by
//! `max_pending`); bytes already delivered are trimmed (retransmissions, overlaps). When
//! the hole will not be filled (too much waiting, or the stream ends), the hole is skipped
//! and reported as a [`Event::Gap`] so the HTTP layer can resynchronise.

use std::collections::BTreeMap;

/// Segments more than this far ahead of the next expected byte are refused: they belong
/// to another incarnation of the connection, or are garbage.
const MAX_AHEAD: i64 = 1 << 30;

/// What a direction's stream says to its reader.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The next bytes of the stream, first seen at `ts_ns`.
    Data(&'a [u8], u64),
    /// This many bytes of the stream were never seen (capture loss or snaplen).
    Gap(u64),
}

/// Counts of what reassembly trimmed or dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyCounts {
    /// Bytes seen again after they were delivered or queued (retransmissions, overlaps).
    pub duplicate_bytes: u64,
    /// Bytes of segments outside the receive window, dropped.
    pub out_of_window_bytes: u64,
    /// Bytes never seen, skipped over.
    pub gap_bytes: u64,
    /// Holes skipped because too many bytes waited behind them.
    pub forced_gaps: u64,
}

/// A piece of the stream waiting for the bytes before it.
#[derive(Debug)]
enum Piece {
    /// Captured bytes and when they were first seen.
    Data(Vec<u8>, u64),
    /// This many bytes were sent but cut off by the snaplen: never coming.
    Hole(u64),
}

/// One direction of a TCP connection.
#[derive(Debug)]
pub struct Reassembler {
    /// Sequence number of the next expected byte; `None` until the SYN or first data.
    next_seq: Option<u32>,
    /// Stream offset of the next expected byte (bytes delivered plus gaps skipped).
    offset: u64,
    /// Segments ahead of a hole, by stream offset.
    pending: BTreeMap<u64, Piece>,
    pending_bytes: usize,
    max_pending: usize,
    /// Packet time since which a hole has been waiting, and how long it may wait.
    hole_since: Option<u64>,
    hole_timeout_ns: u64,
    /// Stream offset of the FIN, once seen.
    fin_at: Option<u64>,
    pub counts: ReassemblyCounts,
}

impl Reassembler {
    /// A direction that buffers at most `max_pending` bytes ahead of a hole, and waits at
    /// most `hole_timeout_ns` of packet time for a hole to fill.
    pub fn new(max_pending: usize, hole_timeout_ns: u64) -> Self {
        Self {
            next_seq: None,
            offset: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            max_pending,
            hole_since: None,
            hole_timeout_ns,
            fin_at: None,
            counts: ReassemblyCounts::default(),
        }
    }

    /// Whether the start of the stream is known (a SYN or data was seen).
    pub fn is_started(&self) -> bool {
        self.next_seq.is_some()
    }

    /// Bytes waiting behind a hole.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Whether the FIN was seen and every byte before it delivered.
    pub fn is_finished(&self) -> bool {
        self.fin_at.is_some_and(|f| self.offset >= f)
    }

    /// A SYN with initial sequence number `isn`: the stream starts at `isn + 1`.
    /// A SYN after data was seen (a retransmission) changes nothing.
    pub fn syn(&mut self, isn: u32) {
        if self.next_seq.is_none() {
            self.next_seq = Some(isn.wrapping_add(1));
        }
    }

    /// Where `seq` falls in the stream, or `None` when out of the window.
    fn place(&mut self, seq: u32) -> Option<u64> {
        let next = *self.next_seq.get_or_insert(seq);
        let rel = i64::from(seq.wrapping_sub(next) as i32);
        if rel >= MAX_AHEAD {
            return None;
        }
        if rel >= 0 {
            return Some(self.offset + rel.unsigned_abs());
        }
        // Behind the next byte: a retransmission, unless it reaches before the stream.
        self.offset.checked_sub(rel.unsigned_abs())
    }

    /// One segment: `payload` at `seq`, first seen at `ts_ns`, then `missing` bytes that
    /// the capture cut off (snaplen), and a FIN if `fin`. Events go to `out` in order.
    pub fn segment(
        &mut self,
        seq: u32,
        payload: &[u8],
        missing: u32,
        fin: bool,
        ts_ns: u64,
        out: &mut impl FnMut(Event<'_>),
    ) {
        let Some(at) = self.place(seq) else {
            self.counts.out_of_window_bytes += payload.len() as u64;
            return;
        };
        let len = payload.len() as u64 + u64::from(missing);
        if fin {
            let end = at + len;
            self.fin_at = Some(self.fin_at.map_or(end, |f| f.min(end)));
        }
        if missing > 0 {
            // Keep the cut-off bytes as a hole the next segment will skip: they were sent
            // but never captured, and no retransmission will bring them.
            self.insert(at, payload, ts_ns);
            self.insert_hole(at + payload.len() as u64, u64::from(missing));
        } else if at <= self.offset && self.pending.is_empty() {
            let skip = (self.offset - at).min(payload.len() as u64) as usize;
            self.counts.duplicate_bytes += skip as u64;
            let rest = &payload[skip..];
            if !rest.is_empty() {
                self.advance(rest.len() as u64);
                out(Event::Data(rest, ts_ns));
            }
        } else {
            self.insert(at, payload, ts_ns);
        }
        self.deliver(out);
        let waited = self
            .hole_since
            .is_some_and(|since| ts_ns.saturating_sub(since) > self.hole_timeout_ns);
        if self.pending_bytes > self.max_pending || waited {
            self.counts.forced_gaps += 1;
            self.skip_hole(out);
            self.deliver(out);
        }
        self.hole_since = if self.pending.is_empty() {
            None
        } else {
            Some(self.hole_since.unwrap_or(ts_ns))
        };
    }

    /// The stream ended (FIN reached, RST, idle or end of capture): skip every hole and
    /// deliver all that waits.
    pub fn flush(&mut self, out: &mut impl FnMut(Event<'_>)) {
        while !self.pending.is_empty() {
            self.skip_hole(out);
            self.deliver(out);
        }
    }

    fn advance(&mut self, n: u64) {
        self.offset += n;
        if let Some(next) = self.next_seq.as_mut() {
            *next = next.wrapping_add(n as u32);
        }
    }

    fn insert(&mut self, at: u64, payload: &[u8], ts_ns: u64) {
        if payload.is_empty() {
            return;
        }
        let end = at + payload.len() as u64;
        if end <= self.offset {
            self.counts.duplicate_bytes += payload.len() as u64;
            return;
        }
        match self.pending.get_mut(&at) {
            Some(Piece::Data(have, _)) if have.len() >= payload.len() => {
                self.counts.duplicate_bytes += payload.len() as u64;
            }
            Some(Piece::Data(have, _)) => {
                self.counts.duplicate_bytes += have.len() as u64;
                self.pending_bytes += payload.len() - have.len();
                *have = payload.to_vec();
            }
            Some(piece @ Piece::Hole(_)) => {
                self.pending_bytes += payload.len();
                *piece = Piece::Data(payload.to_vec(), ts_ns);
            }
            None => {
                self.pending_bytes += payload.len();
                self.pending
                    .insert(at, Piece::Data(payload.to_vec(), ts_ns));
            }
        }
    }

    /// Bytes the snaplen cut off: a hole the delivery loop skips once it reaches it.
    fn insert_hole(&mut self, at: u64, len: u64) {
        if at + len > self.offset {
            self.pending.entry(at).or_insert(Piece::Hole(len));
        }
    }

    /// Delivers every pending piece that now starts at or before the next byte.
    fn deliver(&mut self, out: &mut impl FnMut(Event<'_>)) {
        while let Some(entry) = self.pending.first_entry() {
            let at = *entry.key();
            if at > self.offset {
                break;
            }
            match entry.remove() {
                Piece::Hole(len) => {
                    let end = at + len;
                    if end > self.offset {
                        let n = end - self.offset;
                        self.counts.gap_bytes += n;
                        self.advance(n);
                        out(Event::Gap(n));
                    }
                }
                Piece::Data(bytes, ts_ns) => {
                    self.pending_bytes -= bytes.len();
                    let skip = (self.offset - at).min(bytes.len() as u64) as usize;
                    self.counts.duplicate_bytes += skip as u64;
                    let rest = &bytes[skip..];
                    if !rest.is_empty() {
                        self.advance(rest.len() as u64);
                        out(Event::Data(rest, ts_ns));
                    }
                }
            }
        }
    }

    /// Jumps over the hole before the first pending segment.
    fn skip_hole(&mut self, out: &mut impl FnMut(Event<'_>)) {
        if let Some((&at, _)) = self.pending.first_key_value() {
            if at > self.offset {
                let n = at - self.offset;
                self.counts.gap_bytes += n;
                self.advance(n);
                out(Event::Gap(n));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        Data(Vec<u8>),
        Gap(u64),
    }

    fn run(r: &mut Reassembler, segs: &[(u32, &[u8])]) -> Vec<Got> {
        let mut got = Vec::new();
        for &(seq, p) in segs {
            r.segment(seq, p, 0, false, 0, &mut |e| {
                got.push(match e {
                    Event::Data(d, _) => Got::Data(d.to_vec()),
                    Event::Gap(n) => Got::Gap(n),
                })
            });
        }
        got
    }

    fn joined(got: &[Got]) -> Vec<u8> {
        got.iter()
            .flat_map(|g| match g {
                Got::Data(d) => d.clone(),
                Got::Gap(_) => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn wraps_around_sequence_space() {
        let mut r = Reassembler::new(1 << 20, u64::MAX);
        r.syn(u32::MAX - 2);
        let got = run(&mut r, &[(u32::MAX - 1, b"ab"), (0, b"cd"), (2, b"ef")]);
        assert_eq!(joined(&got), b"abcdef");
    }

    #[test]
    fn out_of_order_overlap_and_retransmission() {
        let mut r = Reassembler::new(1 << 20, u64::MAX);
        r.syn(99);
        let got = run(
            &mut r,
            &[
                (106, b"ghij"),
                (100, b"abc"),
                (100, b"abc"),
                (102, b"cdefg"),
                (104, b"ef"),
                (110, b"k"),
            ],
        );
        assert_eq!(joined(&got), b"abcdefghijk");
        assert!(r.counts.duplicate_bytes > 0);
    }

    #[test]
    fn too_much_behind_a_hole_skips_it() {
        let mut r = Reassembler::new(4, u64::MAX);
        r.syn(0);
        let got = run(&mut r, &[(1, b"a"), (5, b"efg"), (8, b"hij")]);
        assert_eq!(
            got,
            [
                Got::Data(b"a".to_vec()),
                Got::Gap(3),
                Got::Data(b"efg".to_vec()),
                Got::Data(b"hij".to_vec())
            ]
        );
        assert_eq!(r.counts.forced_gaps, 1);
    }

    #[test]
    fn snaplen_hole_is_a_gap_and_fin_finishes() {
        let mut r = Reassembler::new(1 << 20, u64::MAX);
        r.syn(0);
        let mut got = Vec::new();
        let mut push = |e: Event<'_>| {
            got.push(match e {
                Event::Data(d, _) => Got::Data(d.to_vec()),
                Event::Gap(n) => Got::Gap(n),
            })
        };
        r.segment(1, b"ab", 3, false, 0, &mut push);
        r.segment(6, b"f", 0, true, 0, &mut push);
        assert_eq!(
            got,
            [
                Got::Data(b"ab".to_vec()),
                Got::Gap(3),
                Got::Data(b"f".to_vec())
            ]
        );
        assert!(r.is_finished());
    }

    #[test]
    fn hole_waits_only_so_long_in_packet_time() {
        let mut r = Reassembler::new(1 << 20, 1_000);
        r.syn(0);
        let mut got = Vec::new();
        r.segment(3, b"c", 0, false, 10, &mut |e| {
            got.push(matches!(e, Event::Gap(_)))
        });
        r.segment(4, b"d", 0, false, 500, &mut |e| {
            got.push(matches!(e, Event::Gap(_)))
        });
        assert!(got.is_empty());
        r.segment(5, b"e", 0, false, 1_011, &mut |e| {
            got.push(matches!(e, Event::Gap(_)))
        });
        assert_eq!(got, [true, false, false, false]);
        assert_eq!(r.counts.forced_gaps, 1);
    }

    #[test]
    fn far_ahead_is_out_of_window() {
        let mut r = Reassembler::new(1 << 20, u64::MAX);
        r.syn(0);
        assert!(run(&mut r, &[(1 << 31, b"x")]).is_empty());
        assert_eq!(r.counts.out_of_window_bytes, 1);
    }
}

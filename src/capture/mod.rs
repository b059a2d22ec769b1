//! Capture: packets from a live interface or a pcap/pcapng file become [`Exchange`]s, with
//! nothing on the wire lost silently.
//!
//! Packets come in from an engine (`live`: AF_PACKET; `pcap`: files). [`Capture`] is the
//! pure core: it decodes each packet ([`decode`]), reassembles each direction of each TCP
//! connection ([`reassembly`]), frames HTTP/1.x messages ([`message`], on top of
//! `crate::http`) and pairs requests with responses by their order on the connection
//! ([`connection`]). Out go [`CapturedExchange`]s, to be written as a `.gor` recording.
//!
//! Time is packet time only: the idle timeout and latencies come from packet timestamps,
//! never the wall clock, so a file gives the same result however fast it is read.
//! Memory is bounded by [`Limits`]; whatever a limit drops is counted in [`CaptureStats`].

pub mod connection;
pub mod decode;
mod error;
pub mod h2;
#[cfg(feature = "libpcap")]
pub mod libpcap;
#[cfg(target_os = "linux")]
pub mod live;
pub mod message;
pub mod pcap;
pub mod reassembly;
pub mod run;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use serde::Serialize;

use crate::recording::Exchange;
pub use connection::Connection;
pub use decode::{decode, LinkType, Segment, Skip};
pub use error::CaptureError;

/// One exchange as captured, with what the `.gor` format cannot carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedExchange {
    pub exchange: Exchange,
    /// Bytes of the request are missing (snaplen, gap, or the server answered first).
    pub request_truncated: bool,
    /// Bytes of the response are missing (snaplen, gap, or the capture ended first).
    pub response_truncated: bool,
    /// First request byte to last response byte, in ns.
    pub latency_last_byte_ns: Option<u64>,
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// Bounds on the memory a capture may use, and on what one hostile peer can make it hold.
/// Each bound, when it trips, drops only the offending message or connection and counts it
/// in [`CaptureStats`].
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections tracked at once. A new connection beyond it first ends idle ones, then
    /// the least recently active (about 1/64 of the table at a time), counted in
    /// `evicted_connections`.
    pub max_connections: usize,
    /// Bytes one direction may hold behind a hole before the hole is skipped.
    pub max_pending_bytes: usize,
    /// Largest message kept; larger ones are framed and dropped, counted.
    pub max_message_bytes: usize,
    /// A connection without packets for this long (packet time) is ended.
    pub idle_timeout_ns: u64,
    /// A hole in a stream not filled within this much packet time is a loss: skipped.
    pub hole_timeout_ns: u64,
    /// Header fields one head may carry; a head with more is dropped (`over_limit_heads`).
    pub max_headers: usize,
    /// Bytes one head may take; a longer head is dropped (`over_limit_heads`).
    pub max_head_bytes: usize,
    /// Requests one connection may have waiting for their responses (pipelining). A
    /// connection beyond it is dropped whole (`pipeline_floods`): pairing by order cannot
    /// survive losing one of its requests.
    pub max_pipelined: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 100_000,
            max_pending_bytes: 4 << 20,
            max_message_bytes: 64 << 20,
            idle_timeout_ns: 120_000_000_000,
            hole_timeout_ns: 1_000_000_000,
            max_headers: crate::http::MAX_HEADERS,
            max_head_bytes: 64 * 1024,
            max_pipelined: 1024,
        }
    }
}

impl Limits {
    /// The bounds on one HTTP head; bodies are bounded by `max_message_bytes` instead, so
    /// that a large body is framed past and the next message is still found.
    pub fn http(&self) -> crate::http::HeadLimits {
        crate::http::HeadLimits {
            max_headers: self.max_headers,
            max_head_bytes: self.max_head_bytes,
            max_body_bytes: u64::MAX,
        }
    }
}

/// Everything a capture counted, dropped or could not use.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CaptureStats {
    pub packets: u64,
    pub bytes: u64,
    pub not_ip: u64,
    pub not_tcp: u64,
    pub ip_fragments: u64,
    pub malformed: u64,
    pub other_port: u64,
    /// Packets cut by the snaplen, and the payload bytes they lost.
    pub snaplen_packets: u64,
    pub snaplen_bytes: u64,
    pub connections: u64,
    pub connections_midstream: u64,
    /// Connections ended early because the table was full (least recently active first).
    pub evicted_connections: u64,
    /// Heads beyond `max_headers` or `max_head_bytes`, dropped.
    pub over_limit_heads: u64,
    /// Connections that pipelined more than `max_pipelined` requests.
    pub pipeline_floods: u64,
    /// Connections dropped whole because a limit tripped on them (pipelining, heads), and
    /// the requests they held.
    pub limit_dropped_connections: u64,
    pub limit_dropped_requests: u64,
    pub idle_closed: u64,
    pub duplicate_bytes: u64,
    pub out_of_window_bytes: u64,
    pub gap_bytes: u64,
    pub forced_gaps: u64,
    pub non_http_bytes: u64,
    pub resyncs: u64,
    pub lost_messages: u64,
    pub too_large: u64,
    pub tunnel_bytes: u64,
    pub exchanges: u64,
    pub unanswered: u64,
    pub truncated_exchanges: u64,
    pub orphan_responses: u64,
    pub interim_responses: u64,
    /// Packets the kernel dropped, where the engine can tell.
    pub kernel_drops: u64,
    /// Connections decoded as HTTP/2 (h2c: the client's preface was seen).
    pub h2_connections: u64,
    /// Of those, connections that reached HTTP/2 through the HTTP/1.1 upgrade (`Upgrade:
    /// h2c` answered by a 101).
    pub h2_upgrades: u64,
    /// HTTP/2 connections joined mid-way (no preface, so no HPACK state): skipped whole.
    pub h2_midstream: u64,
    /// HTTP/2 connections given up part way: bytes missing, a protocol or HPACK error.
    pub h2_undecodable: u64,
    /// HTTP/2 streams reset before their response ended (written without a response).
    pub h2_resets: u64,
    /// HTTP/2 streams whose fields cannot be written as HTTP/1.1, dropped.
    pub h2_bad_streams: u64,
}

impl fmt::Display for CaptureStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "packets {} ({} bytes), connections {} ({} joined mid-stream)",
            self.packets, self.bytes, self.connections, self.connections_midstream
        )?;
        writeln!(
            f,
            "exchanges {}: {} without response, {} truncated; {} interim responses",
            self.exchanges, self.unanswered, self.truncated_exchanges, self.interim_responses
        )?;
        writeln!(
            f,
            "skipped packets: {} not IP, {} not TCP, {} IP fragments, {} malformed, {} other ports",
            self.not_ip, self.not_tcp, self.ip_fragments, self.malformed, self.other_port
        )?;
        writeln!(
            f,
            "drops: {} snaplen-cut packets ({} bytes), {} gap bytes ({} forced), {} out-of-window bytes, \
             {} non-HTTP bytes ({} resyncs), {} lost messages, {} too large, {} heads over limits, \
             {} orphan responses, {} evicted connections, {} pipeline floods, \
             {} connections dropped at a limit ({} requests), \
             {} idle closes, {} kernel drops",
            self.snaplen_packets,
            self.snaplen_bytes,
            self.gap_bytes,
            self.forced_gaps,
            self.out_of_window_bytes,
            self.non_http_bytes,
            self.resyncs,
            self.lost_messages,
            self.too_large,
            self.over_limit_heads,
            self.orphan_responses,
            self.evicted_connections,
            self.pipeline_floods,
            self.limit_dropped_connections,
            self.limit_dropped_requests,
            self.idle_closed,
            self.kernel_drops
        )?;
        writeln!(
            f,
            "HTTP/2: {} connections, {} joined mid-stream (skipped), {} undecodable, \
             {} streams reset, {} malformed streams; {} connections through the h2c upgrade",
            self.h2_connections,
            self.h2_midstream,
            self.h2_undecodable,
            self.h2_resets,
            self.h2_bad_streams,
            self.h2_upgrades
        )?;
        writeln!(f, "retransmitted/duplicate bytes {}", self.duplicate_bytes)
    }
}

/// The capture core: feed packets in time order, take exchanges out.
#[derive(Debug)]
pub struct Capture {
    ports: Vec<u16>,
    limits: Limits,
    conns: HashMap<(SocketAddr, SocketAddr), Connection>,
    stats: CaptureStats,
    out: Vec<CapturedExchange>,
    now_ns: u64,
    next_sweep_ns: u64,
}

impl Capture {
    /// A capture of HTTP servers listening on `ports`.
    pub fn new(ports: Vec<u16>, limits: Limits) -> Self {
        Self {
            ports,
            limits,
            conns: HashMap::new(),
            stats: CaptureStats::default(),
            out: Vec::new(),
            now_ns: 0,
            next_sweep_ns: 0,
        }
    }

    /// One captured packet of link type `link`, seen at `ts_ns`, `orig_len` bytes long on
    /// the wire of which `data` was captured.
    pub fn packet(&mut self, link: LinkType, ts_ns: u64, data: &[u8], orig_len: u32) {
        self.stats.packets += 1;
        self.stats.bytes += data.len() as u64;
        match decode(link, data, orig_len) {
            Ok(seg) => self.segment(ts_ns, &seg),
            Err(Skip::NotIp) => self.stats.not_ip += 1,
            Err(Skip::NotTcp) => self.stats.not_tcp += 1,
            Err(Skip::Fragment) => self.stats.ip_fragments += 1,
            Err(Skip::Malformed) => self.stats.malformed += 1,
        }
    }

    /// One decoded TCP segment seen at `ts_ns`.
    pub fn segment(&mut self, ts_ns: u64, seg: &Segment<'_>) {
        self.tick(ts_ns);
        let to_server = self.ports.contains(&seg.dst.port());
        if !to_server && !self.ports.contains(&seg.src.port()) {
            self.stats.other_port += 1;
            return;
        }
        if seg.missing > 0 {
            self.stats.snaplen_packets += 1;
            self.stats.snaplen_bytes += u64::from(seg.missing);
        }
        let key = if to_server {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        if to_server && seg.syn && self.conns.get(&key).is_some_and(|c| c.is_new_syn(seg.seq)) {
            // The client reused the 4-tuple: the old connection is over.
            if let Some(mut old) = self.conns.remove(&key) {
                old.end(false, &mut self.out, &mut self.stats);
                old.count_into(&mut self.stats);
            }
        }
        if !self.conns.contains_key(&key) {
            // Only a SYN or data opens a connection: a lone ACK or a late FIN is noise.
            if !seg.syn && seg.payload.is_empty() && seg.missing == 0 {
                return;
            }
            if seg.rst {
                return;
            }
            if self.conns.len() >= self.limits.max_connections.max(1) {
                self.sweep();
                if self.conns.len() >= self.limits.max_connections.max(1) {
                    self.evict();
                }
            }
            self.stats.connections += 1;
            if !seg.syn {
                self.stats.connections_midstream += 1;
            }
            self.conns
                .insert(key, Connection::new(key.0, key.1, seg.syn, &self.limits));
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.segment(seg, to_server, ts_ns, &mut self.out, &mut self.stats);
        if conn.is_closed() {
            if let Some(conn) = self.conns.remove(&key) {
                conn.count_into(&mut self.stats);
            }
        }
    }

    /// Exchanges finished so far, in the order they finished.
    pub fn take_exchanges(&mut self) -> Vec<CapturedExchange> {
        std::mem::take(&mut self.out)
    }

    /// The capture ended: every connection still open is ended and what it holds handed out.
    pub fn finish(&mut self) {
        let mut conns: Vec<_> = self.conns.drain().collect();
        // Oldest first, so the output keeps roughly the order of the wire.
        conns.sort_by_key(|(_, c)| c.last_ns);
        for (_, mut conn) in conns {
            conn.end(false, &mut self.out, &mut self.stats);
            conn.count_into(&mut self.stats);
        }
    }

    /// Counters so far (connections still open contribute once they end).
    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }

    /// Mutable counters, for engines that add kernel drops.
    pub fn stats_mut(&mut self) -> &mut CaptureStats {
        &mut self.stats
    }

    /// Connections tracked right now.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Advances packet time; every second of it, idle connections are ended.
    fn tick(&mut self, ts_ns: u64) {
        self.now_ns = self.now_ns.max(ts_ns);
        if self.now_ns >= self.next_sweep_ns {
            self.next_sweep_ns = self.now_ns.saturating_add(1_000_000_000);
            self.sweep();
        }
    }

    /// The table is full: ends the least recently active connections, a batch at a time so
    /// that a flood of new connections costs amortised constant time each.
    fn evict(&mut self) {
        let batch = (self.conns.len() / 64).max(1);
        let mut by_age: Vec<_> = self.conns.iter().map(|(k, c)| (c.last_ns, *k)).collect();
        if batch < by_age.len() {
            by_age.select_nth_unstable(batch - 1);
            by_age.truncate(batch);
        }
        by_age.sort_unstable();
        for (_, key) in by_age {
            if let Some(mut conn) = self.conns.remove(&key) {
                self.stats.evicted_connections += 1;
                conn.end(false, &mut self.out, &mut self.stats);
                conn.count_into(&mut self.stats);
            }
        }
    }

    /// Ends connections idle longer than the timeout.
    fn sweep(&mut self) {
        let deadline = self.now_ns.saturating_sub(self.limits.idle_timeout_ns);
        let idle: Vec<_> = self
            .conns
            .iter()
            .filter(|(_, c)| c.last_ns < deadline)
            .map(|(k, _)| *k)
            .collect();
        for key in idle {
            if let Some(mut conn) = self.conns.remove(&key) {
                self.stats.idle_closed += 1;
                conn.end(false, &mut self.out, &mut self.stats);
                conn.count_into(&mut self.stats);
            }
        }
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

//! Scenario tests of the capture core: packets built like a TCP stack would send them.

use super::decode::tests::tcp_packet;
use super::*;

/// Builds the packets of one TCP connection, tracking both sequence numbers.
pub(crate) struct Wire {
    pub client: SocketAddr,
    pub server: SocketAddr,
    cseq: u32,
    sseq: u32,
}

impl Wire {
    pub(crate) fn new(client: &str, server: &str, cisn: u32, sisn: u32) -> Self {
        Self {
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            cseq: cisn,
            sseq: sisn,
        }
    }

    /// SYN and SYN-ACK.
    pub(crate) fn open(&mut self) -> Vec<Vec<u8>> {
        let syn = tcp_packet(
            self.client,
            self.server,
            self.cseq,
            (true, false, false),
            b"",
        );
        let syn_ack = tcp_packet(
            self.server,
            self.client,
            self.sseq,
            (true, false, false),
            b"",
        );
        self.cseq = self.cseq.wrapping_add(1);
        self.sseq = self.sseq.wrapping_add(1);
        vec![syn, syn_ack]
    }

    /// `bytes` from the client (or the server) cut at `cuts` (offsets, sorted).
    pub(crate) fn send(&mut self, from_client: bool, bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
            if end <= start || end > bytes.len() {
                continue;
            }
            out.push(self.packet(from_client, start, &bytes[start..end], false));
            start = end;
        }
        self.advance(from_client, bytes.len());
        out
    }

    /// A packet carrying `payload` at `offset` from the current position.
    pub(crate) fn packet(
        &self,
        from_client: bool,
        offset: usize,
        payload: &[u8],
        fin: bool,
    ) -> Vec<u8> {
        let (src, dst, seq) = if from_client {
            (self.client, self.server, self.cseq)
        } else {
            (self.server, self.client, self.sseq)
        };
        tcp_packet(
            src,
            dst,
            seq.wrapping_add(offset as u32),
            (false, fin, false),
            payload,
        )
    }

    pub(crate) fn advance(&mut self, from_client: bool, n: usize) {
        let seq = if from_client {
            &mut self.cseq
        } else {
            &mut self.sseq
        };
        *seq = seq.wrapping_add(n as u32);
    }

    pub(crate) fn fin(&mut self, from_client: bool) -> Vec<u8> {
        let p = self.packet(from_client, 0, b"", true);
        self.advance(from_client, 1);
        p
    }

    pub(crate) fn rst(&self, from_client: bool) -> Vec<u8> {
        let (src, dst, seq) = if from_client {
            (self.client, self.server, self.cseq)
        } else {
            (self.server, self.client, self.sseq)
        };
        tcp_packet(src, dst, seq, (false, false, true), b"")
    }
}

pub(crate) fn run(packets: &[Vec<u8>], ports: &[u16]) -> (Vec<CapturedExchange>, CaptureStats) {
    run_with(packets, ports, Limits::default())
}

fn run_with(
    packets: &[Vec<u8>],
    ports: &[u16],
    limits: Limits,
) -> (Vec<CapturedExchange>, CaptureStats) {
    let mut cap = Capture::new(ports.to_vec(), limits);
    for (i, p) in packets.iter().enumerate() {
        cap.packet(
            LinkType::Ethernet,
            1_000 * (i as u64 + 1),
            p,
            p.len() as u32,
        );
    }
    cap.finish();
    (cap.take_exchanges(), cap.stats().clone())
}

fn pairs(ex: &[CapturedExchange]) -> Vec<(String, Option<String>)> {
    ex.iter()
        .map(|e| {
            (
                String::from_utf8_lossy(&e.exchange.request).into_owned(),
                e.exchange
                    .response
                    .as_ref()
                    .map(|r| String::from_utf8_lossy(&r.bytes).into_owned()),
            )
        })
        .collect()
}

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn keep_alive_exchanges_with_latency_and_close() {
    let mut w = Wire::new("127.0.0.1:5000", "127.0.0.1:80", 10, 20);
    let mut p = w.open();
    for _ in 0..3 {
        p.extend(w.send(true, GET, &[5]));
        p.extend(w.send(false, OK, &[10]));
    }
    p.push(w.fin(true));
    p.push(w.fin(false));
    let (ex, stats) = run(&p, &[80]);
    assert_eq!(ex.len(), 3);
    assert!(pairs(&ex)
        .iter()
        .all(|(q, r)| q.as_bytes() == GET && r.as_deref().map(str::as_bytes) == Some(OK)));
    // Request first byte at packet 3 (t=3000), response first byte at packet 5.
    let first = &ex[0].exchange;
    assert_eq!(first.start_ns, 3_000);
    assert_eq!(first.response.as_ref().unwrap().latency_ns, 2_000);
    assert_eq!(ex[0].latency_last_byte_ns, Some(3_000));
    assert_eq!(
        (stats.connections, stats.exchanges, stats.unanswered),
        (1, 3, 0)
    );
}

#[test]
fn pipelined_chunked_head_and_close_delimited() {
    let mut w = Wire::new("[::1]:5000", "[::1]:8080", u32::MAX - 5, u32::MAX - 3);
    let mut p = w.open();
    let reqs = b"GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n";
    p.extend(w.send(true, reqs, &[7, 30]));
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
    let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end";
    let all = [&chunked[..], head, close].concat();
    p.extend(w.send(false, &all, &[3, 50, 70]));
    p.push(w.fin(false));
    p.push(w.fin(true));
    let (ex, stats) = run(&p, &[8080]);
    let got = pairs(&ex);
    assert_eq!(got.len(), 3, "{stats}");
    assert_eq!(got[0].1.as_deref().unwrap().as_bytes(), chunked);
    assert_eq!(got[1].1.as_deref().unwrap().as_bytes(), head);
    assert_eq!(got[2].1.as_deref().unwrap().as_bytes(), close);
    assert!(ex.iter().all(|e| !e.response_truncated));
}

#[test]
fn expect_continue_interim_is_not_an_exchange() {
    let mut w = Wire::new("127.0.0.1:5000", "127.0.0.1:80", 1, 1);
    let mut p = w.open();
    let head = b"PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    p.extend(w.send(true, head, &[]));
    p.extend(w.send(false, b"HTTP/1.1 100 Continue\r\n\r\n", &[]));
    p.extend(w.send(true, b"data", &[]));
    p.extend(w.send(
        false,
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        &[],
    ));
    let (ex, stats) = run(&p, &[80]);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].exchange.response.as_ref().unwrap().head.status, 201);
    assert!(ex[0].exchange.request.ends_with(b"data"));
    assert!(!ex[0].request_truncated);
    assert_eq!(stats.interim_responses, 1);
}

#[test]
fn early_response_keeps_exchange_marked_truncated() {
    let mut w = Wire::new("127.0.0.1:5000", "127.0.0.1:80", 1, 1);
    let mut p = w.open();
    p.extend(w.send(
        true,
        b"POST /up HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
        &[],
    ));
    p.extend(w.send(
        false,
        b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n",
        &[],
    ));
    p.extend(w.send(true, b"defghij", &[]));
    p.extend(w.send(true, GET, &[]));
    p.extend(w.send(false, OK, &[]));
    let (ex, stats) = run(&p, &[80]);
    assert_eq!(ex.len(), 2, "{stats}");
    assert!(ex[0].request_truncated);
    assert!(ex[0].exchange.request.ends_with(b"abc"));
    assert_eq!(ex[0].exchange.response.as_ref().unwrap().head.status, 413);
    assert_eq!(ex[1].exchange.request_head.target(), "/a");
    assert_eq!(stats.truncated_exchanges, 1);
}

#[test]
fn snaplen_cut_body_is_counted_and_marked() {
    let mut w = Wire::new("127.0.0.1:5000", "127.0.0.1:80", 1, 1);
    let mut p = w.open();
    p.extend(w.send(true, GET, &[]));
    let body = vec![b'x'; 1000];
    let res = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".as_slice(),
        &body,
    ]
    .concat();
    let mut sent = w.send(false, &res, &[500]);
    let full = sent[0].len() as u32;
    sent[0].truncate(200);
    let (ex, stats) = {
        let mut cap = Capture::new(vec![80], Limits::default());
        for (i, pk) in p.iter().enumerate() {
            cap.packet(LinkType::Ethernet, i as u64, pk, pk.len() as u32);
        }
        cap.packet(LinkType::Ethernet, 10, &sent[0], full);
        cap.packet(LinkType::Ethernet, 11, &sent[1], sent[1].len() as u32);
        p.clear();
        p.extend(w.send(true, GET, &[]));
        p.extend(w.send(false, OK, &[]));
        for (i, pk) in p.iter().enumerate() {
            cap.packet(LinkType::Ethernet, 20 + i as u64, pk, pk.len() as u32);
        }
        cap.finish();
        (cap.take_exchanges(), cap.stats().clone())
    };
    assert_eq!(ex.len(), 2, "{stats}");
    assert!(ex[0].response_truncated && !ex[1].response_truncated);
    assert_eq!(stats.snaplen_packets, 1);
    assert_eq!(stats.truncated_exchanges, 1);
}

#[test]
fn mid_stream_join_resynchronises_on_next_head() {
    let mut w = Wire::new("127.0.0.1:5000", "127.0.0.1:80", 1000, 2000);
    let mut p = Vec::new();
    // Joined during a request body and before its response.
    p.extend(w.send(true, b"tail of a body", &[]));
    p.extend(w.send(false, b"ent-Length: 2\r\n\r\nok", &[]));
    p.extend(w.send(true, GET, &[]));
    p.extend(w.send(false, OK, &[]));
    let (ex, stats) = run(&p, &[80]);
    assert_eq!(pairs(&ex).len(), 1, "{stats}");
    assert_eq!(stats.connections_midstream, 1);
    assert!(stats.non_http_bytes > 0);
}

#[test]
fn rst_and_end_of_capture_flush_pending() {
    let mut w = Wire::new("127.0.0.1:5000", "127.0.0.1:80", 1, 1);
    let mut p = w.open();
    p.extend(w.send(true, GET, &[]));
    p.extend(w.send(false, OK, &[]));
    p.extend(w.send(true, GET, &[]));
    p.push(w.rst(false));
    let mut w2 = Wire::new("127.0.0.1:5001", "127.0.0.1:80", 1, 1);
    p.extend(w2.open());
    p.extend(w2.send(true, GET, &[]));
    p.extend(w2.send(false, b"HTTP/1.0 200 OK\r\n\r\npartial", &[]));
    let (ex, stats) = run(&p, &[80]);
    assert_eq!(ex.len(), 3, "{stats}");
    assert_eq!(stats.unanswered, 1);
    let last = ex.iter().find(|e| e.client.port() == 5001).unwrap();
    assert!(
        last.response_truncated,
        "close-delimited cut by the end of the file"
    );
}

#[test]
fn idle_timeout_uses_packet_time() {
    let mut w = Wire::new("127.0.0.1:5000", "127.0.0.1:80", 1, 1);
    let mut cap = Capture::new(
        vec![80],
        Limits {
            idle_timeout_ns: 5_000_000_000,
            ..Limits::default()
        },
    );
    let feed = |cap: &mut Capture, ts: u64, ps: Vec<Vec<u8>>| {
        for p in ps {
            cap.packet(LinkType::Ethernet, ts, &p, p.len() as u32);
        }
    };
    feed(&mut cap, 1_000_000_000, w.open());
    feed(&mut cap, 1_000_000_000, w.send(true, GET, &[]));
    assert_eq!(cap.open_connections(), 1);
    let mut other = Wire::new("127.0.0.1:6000", "127.0.0.1:80", 1, 1);
    feed(&mut cap, 9_000_000_000, other.open());
    assert_eq!(cap.open_connections(), 1);
    assert_eq!(cap.stats().idle_closed, 1);
    assert_eq!(cap.take_exchanges().len(), 1);
}

#[test]
fn limits_and_junk_are_counted() {
    let mut a = Wire::new("127.0.0.1:5000", "127.0.0.1:80", 1, 1);
    let mut b = Wire::new("127.0.0.1:5001", "127.0.0.1:80", 1, 1);
    let mut c = Wire::new("127.0.0.1:5002", "127.0.0.1:9", 1, 1);
    let mut p = a.open();
    p.extend(b.open());
    p.extend(c.open());
    p.extend(a.send(true, b"\x16\x03\x01 TLS hello, not HTTP", &[]));
    p.push(vec![0u8; 20]);
    let limits = Limits {
        max_connections: 1,
        ..Limits::default()
    };
    let (ex, stats) = run_with(&p, &[80], limits);
    assert!(ex.is_empty());
    assert_eq!(stats.evicted_connections, 2);
    assert_eq!(stats.other_port, 2);
    assert!(stats.non_http_bytes > 0);
    assert_eq!(stats.not_ip + stats.malformed, 1);
}

#[test]
fn reused_four_tuple_starts_a_new_connection() {
    let mut p = Vec::new();
    for isn in [1_000u32, 900_000] {
        let mut w = Wire::new("127.0.0.1:5000", "127.0.0.1:80", isn, isn);
        p.extend(w.open());
        // The old connection's FINs were never captured.
        p.extend(w.send(true, GET, &[]));
        p.extend(w.send(false, OK, &[]));
    }
    let (ex, stats) = run(&p, &[80]);
    assert_eq!(ex.len(), 2, "{stats}");
    assert_eq!(stats.connections, 2);
    assert!(ex.iter().all(|e| e.exchange.response.is_some()));
}

/// A connection on `port` sending `request` then getting one OK per request in `answers`.
fn conversation(port: u16, requests: &[&[u8]], answers: usize) -> Vec<Vec<u8>> {
    let mut w = Wire::new(&format!("127.0.0.1:{port}"), "127.0.0.1:80", 1, 1);
    let mut p = w.open();
    for r in requests {
        p.extend(w.send(true, r, &[]));
    }
    for _ in 0..answers {
        p.extend(w.send(false, OK, &[]));
    }
    p
}

#[test]
fn pipelining_flood_drops_only_that_connection() {
    let limits = Limits {
        max_pipelined: 3,
        ..Limits::default()
    };
    let mut p = conversation(5000, &[GET; 3], 3);
    p.extend(conversation(5001, &[GET; 6], 6));
    p.extend(conversation(5002, &[GET], 1));
    let (ex, stats) = run_with(&p, &[80], limits);
    assert_eq!(ex.len(), 4, "{stats}");
    assert!(ex.iter().all(|e| e.exchange.response.is_some()));
    assert!(ex.iter().all(|e| e.client.port() != 5001));
    assert_eq!(stats.pipeline_floods, 1);
    assert_eq!(stats.limit_dropped_connections, 1);
    assert_eq!(stats.limit_dropped_requests, 4);
    assert_eq!(
        stats.orphan_responses, 0,
        "the flood's responses are ignored, not orphans"
    );
}

#[test]
fn heads_over_limits_drop_their_connection_only() {
    let limits = Limits {
        max_headers: 4,
        max_head_bytes: 200,
        ..Limits::default()
    };
    let many = b"GET /m HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "l".repeat(300));
    let mut p = conversation(5000, &[many, GET], 2);
    p.extend(conversation(5001, &[long.as_bytes(), GET], 2));
    p.extend(conversation(5002, &[GET], 1));
    // A response head with too many fields.
    let mut w = Wire::new("127.0.0.1:5003", "127.0.0.1:80", 1, 1);
    p.extend(w.open());
    p.extend(w.send(true, GET, &[]));
    p.extend(w.send(
        false,
        b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nContent-Length: 0\r\n\r\n",
        &[],
    ));
    let (ex, stats) = run_with(&p, &[80], limits);
    assert_eq!(
        pairs(&ex),
        [(
            String::from_utf8_lossy(GET).into_owned(),
            Some(String::from_utf8_lossy(OK).into_owned())
        )],
        "{stats}"
    );
    assert_eq!(ex[0].client.port(), 5002);
    assert_eq!(stats.over_limit_heads, 3);
    assert_eq!(stats.limit_dropped_connections, 3);
    assert_eq!(stats.orphan_responses, 0);
}

#[test]
fn huge_chunk_size_is_framed_past_and_counted() {
    // A chunk of 2^64-1 bytes: the connection's bytes become that body, dropped as too
    // large once past the message limit; other connections are untouched.
    let limits = Limits {
        max_message_bytes: 1000,
        ..Limits::default()
    };
    let huge = b"POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n";
    let mut w = Wire::new("127.0.0.1:5000", "127.0.0.1:80", 1, 1);
    let mut p = w.open();
    p.extend(w.send(true, huge, &[]));
    for _ in 0..3 {
        p.extend(w.send(true, &[b'x'; 600], &[]));
    }
    p.extend(conversation(5001, &[GET], 1));
    let (ex, stats) = run_with(&p, &[80], limits);
    assert_eq!(stats.too_large, 1, "{stats}");
    assert_eq!(ex.iter().filter(|e| e.client.port() == 5001).count(), 1);
    assert!(ex.iter().all(|e| e.exchange.request.len() <= 1000));
}

#[test]
fn full_table_evicts_the_least_recently_active() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let mut a = Wire::new("127.0.0.1:5000", "127.0.0.1:80", 1, 1);
    let mut b = Wire::new("127.0.0.1:5001", "127.0.0.1:80", 1, 1);
    let mut c = Wire::new("127.0.0.1:5002", "127.0.0.1:80", 1, 1);
    let mut p = a.open();
    p.extend(b.open());
    p.extend(a.send(true, GET, &[]));
    // b is now the least recently active: c's SYN evicts it, a keeps going.
    p.extend(c.open());
    p.extend(a.send(false, OK, &[]));
    p.extend(c.send(true, GET, &[]));
    p.extend(c.send(false, OK, &[]));
    let mut cap = Capture::new(vec![80], limits);
    for (i, pk) in p.iter().enumerate() {
        cap.packet(
            LinkType::Ethernet,
            1_000 * (i as u64 + 1),
            pk,
            pk.len() as u32,
        );
        assert!(cap.open_connections() <= 2);
    }
    cap.finish();
    let ex = cap.take_exchanges();
    let stats = cap.stats();
    assert_eq!(stats.evicted_connections, 1, "{stats}");
    let mut ports: Vec<_> = ex.iter().map(|e| e.client.port()).collect();
    ports.sort_unstable();
    assert_eq!(ports, [5000, 5002]);
    assert!(ex.iter().all(|e| e.exchange.response.is_some()));
}

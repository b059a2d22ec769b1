//! The capture's promise as a property: exchanges over several connections, cut into
//! random segments, reordered, duplicated and retransmitted, come back exactly.

use proptest::prelude::*;

use super::tests::Wire;
use super::*;

/// One exchange: request and response bytes as on the wire.
fn exchange() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (0u8..6, 0usize..3000, any::<u8>()).prop_map(|(kind, n, fill)| {
        let body = vec![b'a' + fill % 26; n];
        let text = String::from_utf8(body.clone()).unwrap_or_default();
        match kind {
            0 => (
                b"GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
                format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n{text}").into_bytes(),
            ),
            1 => (
                format!("POST /orders HTTP/1.1\r\nContent-Length: {n}\r\n\r\n{text}").into_bytes(),
                b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n".to_vec(),
            ),
            2 => (
                format!(
                    "PUT /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{text}\r\n0\r\n\r\n",
                    n.max(1)
                )
                .replace("\r\n\r\n0\r\n", if n == 0 { "\r\n \r\n0\r\n" } else { "\r\n\r\n0\r\n" })
                .into_bytes(),
                b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            ),
            3 => (
                b"GET /stream HTTP/1.1\r\n\r\n".to_vec(),
                // An empty body is the last chunk alone: a chunk of size 0 would end it.
                if n == 0 {
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_owned()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{n:x}\r\n{text}\r\n0\r\n\r\n"
                    )
                }
                .into_bytes(),
            ),
            4 => (
                b"HEAD /h HTTP/1.1\r\n\r\n".to_vec(),
                format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes(),
            ),
            _ => (
                b"GET /cached HTTP/1.1\r\nIf-None-Match: \"x\"\r\n\r\n".to_vec(),
                b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n".to_vec(),
            ),
        }
    })
}

/// How one flight of bytes is perturbed: cut points, a shuffle seed, duplicates.
#[derive(Debug, Clone)]
struct Mess {
    cuts: Vec<usize>,
    seed: u64,
    duplicate: bool,
    overlap: bool,
}

fn mess() -> impl Strategy<Value = Mess> {
    (
        prop::collection::vec(0usize..4000, 0..6),
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(mut cuts, seed, duplicate, overlap)| {
            cuts.sort_unstable();
            Mess {
                cuts,
                seed,
                duplicate,
                overlap,
            }
        })
}

/// The packets of one flight (bytes in one direction), perturbed.
fn flight(w: &mut Wire, from_client: bool, bytes: &[u8], m: &Mess) -> Vec<Vec<u8>> {
    let mut bounds = vec![0];
    bounds.extend(m.cuts.iter().copied().filter(|&c| c > 0 && c < bytes.len()));
    bounds.push(bytes.len());
    bounds.dedup();
    let mut packets: Vec<Vec<u8>> = bounds
        .windows(2)
        .map(|r| w.packet(from_client, r[0], &bytes[r[0]..r[1]], false))
        .collect();
    if m.overlap && bounds.len() > 2 {
        // A retransmission that covers two original segments.
        let (a, c) = (bounds[0], bounds[2]);
        packets.push(w.packet(from_client, a, &bytes[a..c], false));
    }
    if m.duplicate {
        if let Some(p) = packets.first().cloned() {
            packets.push(p);
        }
    }
    let mut rng = fastrand::Rng::with_seed(m.seed);
    rng.shuffle(&mut packets);
    w.advance(from_client, bytes.len());
    packets
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn perturbed_wire_gives_back_every_exchange(
        conns in prop::collection::vec(
            (prop::collection::vec((exchange(), mess(), mess()), 1..5), any::<u32>(), any::<u32>()),
            1..4,
        ),
        order_seed in any::<u64>(),
        pipelined in any::<bool>(),
    ) {
        // Flights per connection in wire order; connections interleave at random.
        let mut per_conn: Vec<std::collections::VecDeque<Vec<Vec<u8>>>> = Vec::new();
        let mut expected = Vec::new();
        for (i, (exchanges, cisn, sisn)) in conns.iter().enumerate() {
            let mut w = Wire::new(&format!("127.0.0.1:{}", 40000 + i), "127.0.0.1:80", *cisn, *sisn);
            let mut flights = std::collections::VecDeque::new();
            flights.push_back(w.open());
            if pipelined {
                for ((req, _), m, _) in exchanges {
                    flights.push_back(flight(&mut w, true, req, m));
                }
                for ((_, res), _, m) in exchanges {
                    flights.push_back(flight(&mut w, false, res, m));
                }
            } else {
                for ((req, res), mq, mr) in exchanges {
                    flights.push_back(flight(&mut w, true, req, mq));
                    flights.push_back(flight(&mut w, false, res, mr));
                }
            }
            flights.push_back(vec![w.fin(true)]);
            flights.push_back(vec![w.fin(false)]);
            per_conn.push(flights);
            expected.push(exchanges.iter().map(|((q, r), _, _)| (q.clone(), r.clone())).collect::<Vec<_>>());
        }
        let mut rng = fastrand::Rng::with_seed(order_seed);
        let mut cap = Capture::new(vec![80], Limits::default());
        let mut ts = 1_000_000_000u64;
        let mut wire = Vec::new();
        while per_conn.iter().any(|c| !c.is_empty()) {
            let live: Vec<usize> = (0..per_conn.len()).filter(|&i| !per_conn[i].is_empty()).collect();
            let pick = live[rng.usize(..live.len())];
            if let Some(packets) = per_conn[pick].pop_front() {
                for p in packets {
                    ts += 1_000;
                    cap.packet(LinkType::Ethernet, ts, &p, p.len() as u32);
                    wire.push((ts, p));
                }
            }
        }
        // The same packets as a pcap file through `nprt capture --pcap`'s path.
        let dir = tempfile::tempdir().unwrap();
        let (pcap, gor) = (dir.path().join("w.pcap"), dir.path().join("w.gor"));
        std::fs::write(&pcap, super::pcap::tests::pcap_bytes(&wire)).unwrap();
        let opts = super::run::Options {
            ports: vec![80],
            limits: Limits::default(),
            output: gor.clone(),
            max_exchanges: None,
            redact: None,
            counters: None,
        };
        let report = super::run::from_file(&pcap, &opts).unwrap();
        let mut from_file: Vec<(Vec<u8>, Vec<u8>)> =
            crate::recording::GorReader::open(&gor, crate::recording::ReadOptions::default())
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (e.request.to_vec(), e.response.map(|r| r.bytes.to_vec()).unwrap_or_default())
                })
                .collect();
        let mut all_expected: Vec<(Vec<u8>, Vec<u8>)> = expected.iter().flatten().cloned().collect();
        from_file.sort();
        all_expected.sort();
        prop_assert_eq!(report.written as usize, all_expected.len());
        prop_assert_eq!(from_file, all_expected);
        prop_assert_eq!(cap.open_connections(), 0);
        cap.finish();
        let got = cap.take_exchanges();
        let stats = cap.stats().clone();
        for (i, want) in expected.iter().enumerate() {
            let port = 40000 + i as u16;
            let mine: Vec<(Vec<u8>, Vec<u8>)> = got
                .iter()
                .filter(|e| e.client.port() == port)
                .map(|e| {
                    (
                        e.exchange.request.to_vec(),
                        e.exchange.response.as_ref().map(|r| r.bytes.to_vec()).unwrap_or_default(),
                    )
                })
                .collect();
            prop_assert_eq!(&mine, want, "connection {} stats {}", i, stats);
        }
        prop_assert!(got.iter().all(|e| !e.request_truncated && !e.response_truncated));
        prop_assert_eq!(stats.exchanges as usize, expected.iter().map(Vec::len).sum::<usize>());
        prop_assert_eq!(stats.gap_bytes + stats.non_http_bytes + stats.orphan_responses, 0);
    }
}

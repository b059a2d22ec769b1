//! Capture throughput: a generated pcap of 10,000 keep-alive exchanges over 200
//! connections (1 KiB to 6 KiB responses, a quarter chunked, MSS-sized segments, pure
//! ACKs) turned into exchanges, measured in bytes of the file and in exchanges.
//!
//! `core` feeds packets already in memory to the pure capture core; `file` runs what
//! `nprt capture --pcap` runs, reading the file and writing the `.gor` recording. The file
//! is left at `$CARGO_TARGET_TMPDIR/capture-bench.pcap` for side-by-side runs with other
//! tools (`tshark -r FILE -Y http.request`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::PacketBuilder;
use nprt::capture::{run, Capture, Limits, LinkType};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

const CONNECTIONS: u32 = 200;
const PER_CONNECTION: u32 = 50;
const MSS: usize = 1448;
const PORT: u16 = 8080;

/// One TCP packet on Ethernet.
fn packet(client: u16, to_server: bool, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let (sport, dport) = if to_server {
        (client, PORT)
    } else {
        (PORT, client)
    };
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
        .tcp(sport, dport, seq, 65535)
        .ack(ack);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("packet fits");
    out
}

fn syn(client: u16, to_server: bool, isn: u32) -> Vec<u8> {
    let (sport, dport) = if to_server {
        (client, PORT)
    } else {
        (PORT, client)
    };
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
        .tcp(sport, dport, isn, 65535)
        .syn();
    let mut out = Vec::new();
    b.write(&mut out, &[]).expect("packet fits");
    out
}

fn response(i: u32) -> Vec<u8> {
    let body = "x".repeat(1024 + (i as usize * 37) % 5000);
    if i % 4 == 0 {
        let mut r =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for part in body.as_bytes().chunks(1000) {
            r.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            r.extend_from_slice(part);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\n\r\n");
        r
    } else {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// (timestamp, packet) in wire order.
fn packets() -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut ts = 1_700_000_000_000_000_000u64;
    let mut seqs: Vec<(u32, u32)> = (0..CONNECTIONS).map(|c| (c * 7919, c * 104_729)).collect();
    for c in 0..CONNECTIONS {
        let port = 20_000 + c as u16;
        out.push((ts, syn(port, true, seqs[c as usize].0)));
        out.push((ts, syn(port, false, seqs[c as usize].1)));
        seqs[c as usize].0 += 1;
        seqs[c as usize].1 += 1;
    }
    for i in 0..PER_CONNECTION {
        for c in 0..CONNECTIONS {
            let port = 20_000 + c as u16;
            let (cs, ss) = &mut seqs[c as usize];
            let req = format!(
                "GET /api/items/{i}/{c} HTTP/1.1\r\nHost: shop.local\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
            );
            ts += 10_000;
            out.push((ts, packet(port, true, *cs, *ss, req.as_bytes())));
            *cs += req.len() as u32;
            let res = response(i * CONNECTIONS + c);
            for seg in res.chunks(MSS) {
                ts += 2_000;
                out.push((ts, packet(port, false, *ss, *cs, seg)));
                *ss += seg.len() as u32;
            }
            ts += 1_000;
            out.push((ts, packet(port, true, *cs, *ss, &[])));
        }
    }
    out
}

fn pcap_file(packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
    out.extend_from_slice(&[2, 0, 4, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (ts, p) in packets {
        out.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn bench(c: &mut Criterion) {
    let packets = packets();
    let file = pcap_file(&packets);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("capture-bench.pcap");
    std::fs::write(&path, &file).expect("write the bench pcap");
    let exchanges = u64::from(CONNECTIONS * PER_CONNECTION);
    eprintln!(
        "capture bench: {} packets, {} bytes, {exchanges} exchanges in {}",
        packets.len(),
        file.len(),
        path.display()
    );

    let core = |packets: &[(u64, Vec<u8>)]| {
        let mut cap = Capture::new(vec![PORT], Limits::default());
        let mut n = 0;
        for (ts, p) in packets {
            cap.packet(LinkType::Ethernet, *ts, p, p.len() as u32);
            n += cap.take_exchanges().len();
        }
        cap.finish();
        n + cap.take_exchanges().len()
    };
    assert_eq!(
        core(&packets) as u64,
        exchanges,
        "every exchange comes back"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let opts = run::Options {
        ports: vec![PORT],
        limits: Limits::default(),
        output: dir.path().join("out.gor"),
        max_exchanges: None,
        redact: None,
        counters: None,
    };
    let file_run = || run::from_file(&path, &opts).expect("capture runs").written;
    assert_eq!(file_run(), exchanges);

    for (unit, throughput) in [
        ("bytes", Throughput::Bytes(file.len() as u64)),
        ("exchanges", Throughput::Elements(exchanges)),
    ] {
        let mut g = c.benchmark_group(format!("capture_{unit}"));
        g.throughput(throughput);
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(5));
        g.bench_function("core", |b| b.iter(|| black_box(core(&packets))));
        g.bench_function("file_to_gor", |b| b.iter(|| black_box(file_run())));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

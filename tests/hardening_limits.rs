//! Hostile input at `nprt capture`: each limit trips on its own connection, is counted, and
//! the well-behaved connection captured beside them is written whole.

mod common;

use common::{capture_pcap, pcap, run, stderr, stdout, TcpConn};

const GET: &[u8] = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// The number printed before `label` in the capture's counters.
fn counter(text: &str, label: &str) -> u64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no `{label}` in {text}"));
    text[..at]
        .trim_end()
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before `{label}` in {text}"))
}

#[test]
fn every_capture_limit_trips_alone_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Vec::new();
    // A pipelining flood: 6 requests, no answer yet (limit 3).
    let mut flood = TcpConn::open(5001, &mut p);
    for _ in 0..6 {
        flood.send(true, GET, &mut p);
    }
    // Too many header fields (limit 8).
    let mut many = TcpConn::open(5002, &mut p);
    let mut head = b"GET /many HTTP/1.1\r\n".to_vec();
    for i in 0..20 {
        head.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    many.send(true, &head, &mut p);
    many.send(false, OK, &mut p);
    // A head of 3000 bytes (limit 2048), never finished.
    let mut long = TcpConn::open(5003, &mut p);
    long.send(
        true,
        format!("GET /{} HTTP/1.1\r\nX: ", "a".repeat(3000)).as_bytes(),
        &mut p,
    );
    // A chunk size of 2^64-1 (message limit 4096): framed past as too large.
    let mut chunk = TcpConn::open(5004, &mut p);
    chunk.send(
        true,
        b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        &mut p,
    );
    chunk.send(true, &[b'z'; 6000], &mut p);
    // A body larger than the message limit.
    let mut body = TcpConn::open(5005, &mut p);
    body.send(
        true,
        b"POST /big HTTP/1.1\r\nContent-Length: 9000\r\n\r\n",
        &mut p,
    );
    body.send(true, &[b'b'; 9000], &mut p);
    body.send(false, OK, &mut p);
    // Connections that only say SYN, filling the table (limit 8).
    for port in 6000..6020 {
        TcpConn::open(port, &mut p);
    }
    // The well-behaved client, after all of it.
    let mut good = TcpConn::open(5000, &mut p);
    for _ in 0..3 {
        good.send(true, GET, &mut p);
        good.send(false, OK, &mut p);
    }
    // The flood's answers arrive late: they must not be paired with anything.
    for _ in 0..6 {
        flood.send(false, OK, &mut p);
    }
    let input = dir.path().join("hostile.pcap");
    std::fs::write(&input, pcap(&p)).unwrap();

    let out = dir.path().join("out.gor");
    let o = capture_pcap(
        &input,
        &out,
        &[
            "--max-pipelined",
            "3",
            "--max-headers",
            "8",
            "--max-head-bytes",
            "2KiB",
            "--max-message-bytes",
            "4KiB",
            "--max-connections",
            "8",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(counter(&err, "pipeline floods"), 1, "{err}");
    assert_eq!(counter(&err, "heads over limits"), 2, "{err}");
    assert_eq!(counter(&err, "connections dropped at a limit"), 3, "{err}");
    assert_eq!(counter(&err, "too large"), 2, "{err}");
    assert!(counter(&err, "evicted connections") >= 12, "{err}");
    assert!(err.contains("(4 requests)"), "{err}");

    // The good client's three exchanges are all there, answered.
    let o = run(&["inspect", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("GET /ok"), "{}", stdout(&o));
    let raw = std::fs::read(&out).unwrap();
    let records = raw
        .windows(b"HTTP/1.1 200 OK".len())
        .filter(|w| w == b"HTTP/1.1 200 OK")
        .count();
    // The good client's 3; the too-large body's answer has no request to pair with, and
    // the flood's late answers none either.
    assert_eq!(records, 3, "{}", String::from_utf8_lossy(&raw));

    // The same file with the defaults: nothing trips except what really is too much.
    let out = dir.path().join("defaults.gor");
    let o = capture_pcap(&input, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(counter(&err, "pipeline floods"), 0, "{err}");
    assert_eq!(counter(&err, "heads over limits"), 0, "{err}");
    assert_eq!(counter(&err, "evicted connections"), 0, "{err}");
}

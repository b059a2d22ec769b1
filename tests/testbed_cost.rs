//! The testbed stages resource regressions: CPU and memory per request, visible at /metrics
//! as a Prometheus scrape would read them.

mod common;

use common::Testbed;
use std::io::{Read, Write};

/// One GET over a fresh connection; the answer's body.
fn get(url: &str, path: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of one series in a Prometheus text exposition.
fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn requests_cost_the_cpu_and_memory_asked_and_metrics_show_it() {
    let tb = Testbed::start(&[
        "--metrics",
        "--cpu-per-request",
        "2ms",
        "--leak-per-request",
        "64KiB",
    ]);
    let before = get(&tb.url, "/metrics");
    assert_eq!(series(&before, "nprt_testbed_requests_total"), 0.0);
    for i in 0..100 {
        get(&tb.url, &format!("/api/items/{i}"));
    }
    let after = get(&tb.url, "/metrics");
    assert_eq!(series(&after, "nprt_testbed_requests_total"), 100.0);
    let cpu =
        series(&after, "process_cpu_seconds_total") - series(&before, "process_cpu_seconds_total");
    assert!(cpu >= 0.2, "100 requests × 2ms burnt {cpu} s of CPU");
    let grew = series(&after, "process_resident_memory_bytes")
        - series(&before, "process_resident_memory_bytes");
    assert!(
        grew >= 6.0 * 1024.0 * 1024.0,
        "100 × 64KiB kept, RSS grew {grew} bytes"
    );
}

#[test]
fn without_metrics_the_path_is_an_ordinary_request() {
    let tb = Testbed::start(&[]);
    let body = get(&tb.url, "/metrics");
    assert!(body.contains("\"target\":\"/metrics\""), "{body}");
    let out = common::run(&[
        "testbed",
        "--listen",
        "127.0.0.1:0",
        "--cpu-per-request",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("no unit"),
        "{}",
        common::stderr(&out)
    );
}

//! The Prometheus harness against a real `nprt testbed --metrics`: what the testbed counts
//! comes back through Prometheus's HTTP API under the job's label, as the judge will read it,
//! and a testbed that goes away goes stale rather than keeping its last value.

mod common;

use common::prometheus::Prometheus;
use common::Testbed;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// One GET to the testbed over a fresh connection; asserts a 200.
fn get(url: &str, path: &str) {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Polls `promql` until it equals `want`: how long that took, or a panic after `timeout`.
fn until(prom: &Prometheus, promql: &str, want: Option<f64>, timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = prom.value(promql);
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "{promql} is {got:?} after {timeout:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_testbeds_counters_come_back_through_prometheus_under_its_job() {
    const SENT: usize = 40;
    let stable = Testbed::start(&["--metrics", "--cpu-per-request", "5ms"]);
    let addr = stable.url.trim_start_matches("http://").to_owned();
    let closed = common::closed_port_url();
    let jobs = [
        ("stable", addr.as_str()),
        ("down", closed.trim_start_matches("http://")),
    ];
    let Some(prom) = Prometheus::start(&jobs) else {
        return;
    };
    let ready = Instant::now();
    prom.wait_up("stable", Duration::from_secs(15));
    eprintln!(
        "first good scrape {} ms after ready",
        ready.elapsed().as_millis()
    );
    // Scraped before any request, so what follows counts this test's requests only.
    let requests = r#"nprt_testbed_requests_total{job="stable"}"#;
    assert_eq!(prom.value(requests), Some(0.0));
    let cpu = r#"process_cpu_seconds_total{job="stable"}"#;
    let cpu_before = prom.value(cpu).expect("the testbed's CPU is scraped");

    for i in 0..SENT {
        get(&stable.url, &format!("/api/items/{i}"));
    }
    let lag = until(&prom, requests, Some(SENT as f64), Duration::from_secs(5));
    eprintln!(
        "the last request showed in a query {} ms after it was answered",
        lag.as_millis()
    );

    let series = prom.query(requests);
    assert_eq!(series.as_array().map(Vec::len), Some(1), "{series}");
    assert_eq!(series[0]["metric"]["job"], "stable", "{series}");
    assert_eq!(series[0]["metric"]["instance"], addr.as_str(), "{series}");
    // The same scrape carried the CPU those requests burnt: 40 × 5 ms at least.
    let burnt = prom.value(cpu).unwrap() - cpu_before;
    assert!(burnt >= 0.19, "{SENT} requests × 5 ms burnt {burnt} s");
    let rate = prom
        .value(r#"rate(process_cpu_seconds_total{job="stable"}[5s])"#)
        .expect("two samples in 5 s");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    assert!(
        rate > 0.0 && rate <= cores,
        "CPU rate {rate} on {cores} cores"
    );
    // A target that does not answer is down, under its own job, and waiting for it says why.
    assert_eq!(prom.value(r#"up{job="down"}"#), Some(0.0));
    let message = prom
        .up_within("down", Duration::from_millis(300))
        .unwrap_err();
    assert!(message.contains("job `down` not up"), "{message}");
    assert!(message.contains("connection refused"), "{message}");

    // Stopping the testbed: the next scrape fails, and its series go stale at once (a judge
    // querying after the end must use a range, not the instant).
    drop(stable);
    until(
        &prom,
        r#"up{job="stable"}"#,
        Some(0.0),
        Duration::from_secs(5),
    );
    assert_eq!(prom.value(requests), None);
}

//! `nprt mirror`: live capture on `lo` of traffic to a real testbed, each captured request
//! sent to a second testbed (the shadow) and judged against the captured response.
//! Needs root (or CAP_NET_RAW): skipped with a reason locally, required under CI=true.

mod common;

use common::live::Live;
use common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn can_capture(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    available(&format!("root for live capture ({what})"), root)
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// Sends `requests` on one keep-alive connection, reading each answer and pausing `gap`
/// between them (production traffic arrives spread out, not in one burst).
fn drive(url: &str, requests: &[String], gap: Duration) {
    let mut s = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    for r in requests {
        std::thread::sleep(gap);
        s.write_all(r.as_bytes()).unwrap();
        let mut got = Vec::new();
        // Testbed answers are small, with Content-Length, in one read or a few.
        loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the testbed closed the connection");
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if got.len() >= end + 4 + len {
                    break;
                }
            }
        }
    }
}

fn gets(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "GET /api/items/{i}?page={} HTTP/1.1\r\nHost: shop\r\n\r\n",
                i % 3
            )
        })
        .collect()
}

/// Observations per target: id → (route, status).
fn observations(
    path: &std::path::Path,
) -> BTreeMap<String, BTreeMap<String, (String, Option<u64>)>> {
    let mut by_target: BTreeMap<String, BTreeMap<_, _>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let o: serde_json::Value = serde_json::from_str(line).unwrap();
        by_target
            .entry(o["target"].as_str().unwrap().to_owned())
            .or_default()
            .insert(
                o["id"].as_str().unwrap().to_owned(),
                (
                    o["route"].as_str().unwrap().to_owned(),
                    o["status"].as_u64(),
                ),
            );
    }
    by_target
}

#[test]
fn captured_requests_reach_the_shadow_and_are_paired_with_the_captured_answers() {
    if !can_capture("passive mirror") {
        return;
    }
    let _serial = serial();
    // Both answer in about 3 ms, like a real service: the mirror's own client overhead
    // (a few hundred µs the capture does not see on the primary's side) stays inside the
    // judge's absolute allowances.
    let primary = Testbed::start(&["--latency", "3ms"]);
    let canary = Testbed::start(&["--latency", "3ms"]);
    let dir = tempfile::tempdir().unwrap();
    let obs = dir.path().join("obs.ndjson");
    let mirror = Live::mirror(
        nprt(),
        port_of(&primary.url),
        &canary.url,
        &["--observations", obs.to_str().unwrap()],
    );
    let mut requests = gets(150);
    requests.push("POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Length: 3\r\n\r\nabc".into());
    drive(&primary.url, &requests, Duration::from_millis(5));
    let (code, out, err) = mirror.stop();
    let by_target = observations(&obs);
    let primary_obs = &by_target["primary"];
    let shadow_obs = &by_target["shadow"];
    assert_eq!(primary_obs.len(), 150, "{err}");
    assert_eq!(
        primary_obs.keys().collect::<Vec<_>>(),
        shadow_obs.keys().collect::<Vec<_>>(),
        "every mirrored request has both halves"
    );
    for (id, (route, status)) in shadow_obs {
        assert_eq!(route, "GET /api/items/:id");
        assert_eq!(*status, Some(200), "{id}");
        assert_eq!(primary_obs[id].1, Some(200));
    }
    assert!(
        err.contains("requests 151, mirrored 150, not mirrored 1"),
        "{err}"
    );
    assert!(
        matches!(code, Some(0 | 3)),
        "a healthy shadow is not failed: {code:?}\n{out}\n{err}"
    );
}

#[test]
fn a_failing_shadow_is_judged_a_regression() {
    if !can_capture("passive mirror") {
        return;
    }
    let _serial = serial();
    let primary = Testbed::start(&[]);
    let canary = Testbed::start(&["--error-rate", "0.5"]);
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let mirror = Live::mirror(
        nprt(),
        port_of(&primary.url),
        &canary.url,
        &["--report", reports.to_str().unwrap()],
    );
    drive(&primary.url, &gets(200), Duration::ZERO);
    let (code, out, err) = mirror.stop();
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("the shadow regressed"), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["verdict"], "fail");
    assert_eq!(json["candidate"], "shadow");
}

#[test]
fn with_a_baseline_copy_each_captured_request_goes_to_both_and_the_canary_is_judged_against_it() {
    if !can_capture("passive mirror") {
        return;
    }
    let _serial = serial();
    let primary = Testbed::start(&["--latency", "3ms"]);
    let canary = Testbed::start(&["--latency", "13ms"]);
    let baseline = Testbed::start(&["--latency", "3ms"]);
    let dir = tempfile::tempdir().unwrap();
    let obs = dir.path().join("obs.ndjson");
    let reports = dir.path().join("reports");
    let mirror = Live::mirror(
        nprt(),
        port_of(&primary.url),
        &canary.url,
        &[
            "--shadow-baseline",
            &baseline.url,
            "--observations",
            obs.to_str().unwrap(),
            "--report",
            reports.to_str().unwrap(),
        ],
    );
    drive(&primary.url, &gets(300), Duration::from_millis(2));
    let (code, out, err) = mirror.stop();
    assert_eq!(
        code,
        Some(1),
        "a 10 ms slower canary regressed:\n{out}\n{err}"
    );
    let by_target = observations(&obs);
    let (shadow_ids, baseline_ids): (Vec<_>, Vec<_>) = (
        by_target["shadow"].keys().collect(),
        by_target["shadow-baseline"].keys().collect(),
    );
    assert!(!shadow_ids.is_empty());
    assert_eq!(shadow_ids, baseline_ids, "every copy went to both");
    for id in &shadow_ids {
        assert!(by_target["primary"].contains_key(*id), "{id}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["verdict"], "fail");
    assert_eq!(json["baseline"], "shadow-baseline");
    assert_eq!(json["candidate"], "shadow");
}

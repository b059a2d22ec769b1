//! The live verdict under CPU contention, with real processes: two `nprt testbed`s behind
//! `nprt shadow`, load from `nprt replay`, and busy loops started by the test on both cores.
//! nprt's own measurement must not fail identical services; a truly slower shadow must fail;
//! a baseline copy is what the canary is judged against when it is given.

mod common;

use common::*;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Threads that spin until dropped (or, at the latest, after a minute).
struct Busy {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Busy {
    fn start(n: usize) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + Duration::from_secs(60);
        let threads = (0..n)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        for i in 0..10_000u64 {
                            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                        }
                    }
                })
            })
            .collect();
        Busy { stop, threads }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Replays the demo recording through the proxy at 100 requests a second (an open model:
/// many users, each arriving on their own), for `seconds`.
fn load(proxy: &str, seconds: u32) {
    let out = nprt()
        .arg("replay")
        .arg(demo_recording())
        .args(["--target", &format!("proxy={proxy}")])
        .args(["--rate", "100", "--loop", "-q"])
        .args(["--duration", &format!("{seconds}s")])
        .stdout(Stdio::null())
        .output()
        .expect("nprt replay runs");
    // The replay judges nothing here (one target); it must only have run.
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "the load did not run: {}",
        stderr(&out)
    );
}

/// One live run under contention: exit code, stdout, report.json.
fn live_run(
    shadow_args: &[&str],
    baseline_args: Option<&[&str]>,
) -> (i32, String, serde_json::Value) {
    let _serial = serial();
    let primary = Testbed::start(&["--latency", "2ms", "--jitter", "2ms"]);
    let shadow = Testbed::start(shadow_args);
    let baseline = baseline_args.map(Testbed::start);
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let mut extra = vec!["--report", reports.to_str().unwrap()];
    if let Some(b) = &baseline {
        extra.extend(["--shadow-baseline", &b.url]);
    }
    let proxy = Shadow::start(&primary.url, &shadow.url, &extra);
    let busy = Busy::start(2);
    load(&proxy.url, 12);
    drop(busy);
    let (code, out, err) = proxy.stop();
    // Shown with --nocapture, and when an assertion fails.
    eprintln!("exit {code}\n{out}\n{err}");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(reports.join("report.json"))
            .unwrap_or_else(|e| panic!("no report.json ({e}): {err}")),
    )
    .unwrap();
    (code, out, json)
}

fn failing(json: &serde_json::Value) -> Vec<String> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "fail")
        .map(|f| f["message"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn identical_services_under_cpu_contention_never_fail() {
    let (code, out, json) = live_run(&["--latency", "2ms", "--jitter", "2ms"], None);
    assert_ne!(
        code,
        1,
        "identical services failed: {:?}\n{out}",
        failing(&json)
    );
    assert_ne!(json["verdict"], "fail");
    // nprt's own queueing is reported, not hidden.
    assert!(out.contains("nprt's queue: copies waited p50"), "{out}");
}

#[test]
fn a_shadow_10ms_slower_under_cpu_contention_fails() {
    let (code, out, json) = live_run(&["--latency", "12ms", "--jitter", "2ms"], None);
    assert_eq!(code, 1, "a 10 ms slower shadow was not failed:\n{out}");
    assert_eq!(json["verdict"], "fail");
    assert!(
        failing(&json).iter().any(|m| m.contains("latency")),
        "{:?}",
        failing(&json)
    );
}

#[test]
fn with_a_baseline_copy_the_canary_is_judged_against_it() {
    let (code, out, json) = live_run(
        &["--latency", "12ms", "--jitter", "2ms"],
        Some(&["--latency", "2ms", "--jitter", "2ms"]),
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(json["baseline"], "shadow-baseline");
    assert_eq!(json["candidate"], "shadow");
    assert!(
        out.contains("candidate shadow vs baseline shadow-baseline"),
        "the verdict names the baseline copy:\n{out}"
    );
    // The primary is the live A/A noise beside it.
    assert!(out.contains("noise target primary"), "{out}");
}

#[test]
fn a_saturated_nprt_is_inconclusive_with_its_reason_never_fail() {
    let _serial = serial();
    // The shadow is 30 ms slower, but nprt may send only one copy at a time into a queue of
    // eight: copies wait and are dropped, so the difference cannot be trusted to be the
    // canary's.
    let primary = Testbed::start(&["--latency", "1ms"]);
    let shadow = Testbed::start(&["--latency", "30ms"]);
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let proxy = Shadow::start(
        &primary.url,
        &shadow.url,
        &[
            "--concurrency",
            "1",
            "--queue",
            "8",
            "--report",
            reports.to_str().unwrap(),
        ],
    );
    load(&proxy.url, 6);
    let (code, out, err) = proxy.stop();
    eprintln!("exit {code}\n{out}\n{err}");
    assert_eq!(code, 3, "inconclusive, not a regression:\n{out}");
    assert!(out.contains("nprt itself was saturated"), "{out}");
    assert!(
        out.contains("dropped because nprt's queue was full"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["verdict"], "inconclusive");
    assert!(failing(&json).is_empty(), "{:?}", failing(&json));
}

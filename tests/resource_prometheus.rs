//! Resource metrics judged from a real Prometheus scraping real `nprt testbed --metrics`
//! every second: a canary burning twice the CPU per request at the same latency FAILs on
//! "cpu per request", an identical one PASSes, one whose metrics are not scraped is
//! INCONCLUSIVE naming the query, a leaking one FAILs on growth; and the judge file's
//! mistakes (unreachable Prometheus, a syntax error, a query matching several series) stop
//! the command before any traffic, naming the metric.
//!
//! One replay of 24 s feeds every case: its observations file carries each answer's time,
//! so `nprt compare` judges the other pairs from it afterwards.

mod common;

use common::prometheus::Prometheus;
use common::{nprt, stderr, stdout, Testbed};
use std::path::Path;
use std::time::Duration;

fn judge_file(dir: &Path, name: &str, url: &str, metrics: &str) -> String {
    let path = dir.join(name);
    let text = format!("[prometheus]\nurl = \"{url}\"\nstep = \"2s\"\nsettle = \"4s\"\n{metrics}");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const CPU: &str = r#"
[[prometheus.metrics]]
name = "cpu per request"
query = 'rate(process_cpu_seconds_total{job="{target}"}[{step}])'
per_request = true
limit = "+20%"
"#;

const GROWTH: &str = r#"
[[prometheus.metrics]]
name = "memory growth"
kind = "growth"
query = 'process_resident_memory_bytes{job="{target}"}'
limit = "+1048576"
"#;

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

fn compare(observations: &Path, judge: &str, candidate: &str) -> std::process::Output {
    nprt()
        .args(["compare", "--baseline", "stable", "--candidate", candidate])
        .args(["--judge", judge])
        .arg(observations)
        .output()
        .unwrap()
}

#[test]
fn cpu_and_memory_regressions_are_found_through_a_real_prometheus() {
    let _serial = common::serial();
    // Same latency everywhere; only the CPU and memory each request costs differ.
    let stable = Testbed::start(&["--metrics", "--cpu-per-request", "1ms"]);
    let double = Testbed::start(&["--metrics", "--cpu-per-request", "2ms"]);
    let same = Testbed::start(&["--metrics", "--cpu-per-request", "1ms"]);
    let leaky = Testbed::start(&["--metrics", "--leak-per-request", "16KiB"]);
    // Serves requests, but /metrics is an ordinary answer: its scrape fails.
    let unscraped = Testbed::start(&[]);
    let jobs = [
        ("stable", addr(&stable.url)),
        ("double", addr(&double.url)),
        ("same", addr(&same.url)),
        ("leaky", addr(&leaky.url)),
        ("unscraped", addr(&unscraped.url)),
    ];
    let job_refs: Vec<(&str, &str)> = jobs.iter().map(|(j, a)| (*j, a.as_str())).collect();
    let Some(prom) = Prometheus::start(&job_refs) else {
        return;
    };
    for job in ["stable", "double", "same", "leaky"] {
        prom.wait_up(job, Duration::from_secs(20));
    }
    let dir = tempfile::tempdir().unwrap();
    let cpu = judge_file(dir.path(), "cpu.toml", &prom.url, CPU);
    let observations = dir.path().join("observations.ndjson");
    let reports = dir.path().join("reports");

    let out = nprt()
        .args(["replay", "--loop", "--rate", "100", "--duration", "24s"])
        .args(["--target", &format!("stable={}", stable.url)])
        .args(["--target", &format!("double={}", double.url)])
        .args(["--target", &format!("same={}", same.url)])
        .args(["--target", &format!("leaky={}", leaky.url)])
        .args(["--target", &format!("unscraped={}", unscraped.url)])
        .args([
            "--baseline",
            "stable",
            "--candidate",
            "double",
            "--judge",
            &cpu,
        ])
        .arg("--observations")
        .arg(&observations)
        .arg("--report")
        .arg(&reports)
        .arg(common::demo_recording())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(text.contains("cpu per request"), "{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("report.json")).unwrap()).unwrap();
    let r = &json["resources"][0];
    assert_eq!(r["name"], "cpu per request");
    assert_eq!(r["outcome"], "fail", "{r}");
    let relative = r["relative"].as_f64().unwrap();
    assert!(
        (0.6..1.5).contains(&relative),
        "2 ms against 1 ms per request: +{relative}"
    );
    let baseline = r["check"]["baseline"].as_f64().unwrap();
    assert!(
        (0.0008..0.003).contains(&baseline),
        "the stable's CPU per request is about 1 ms: {baseline}"
    );

    // The identical canary passes, judged afterwards from the observations' times.
    let out = compare(&observations, &cpu, "same");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));

    // Nothing scraped: INCONCLUSIVE, the query named.
    let out = compare(&observations, &cpu, "unscraped");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}\n{}", stderr(&out));
    assert!(
        text.contains(r#"process_cpu_seconds_total{job="unscraped"}"#)
            && text.contains("no series"),
        "{text}"
    );

    // A leak: levels start equal, the slope does not.
    let growth = judge_file(dir.path(), "growth.toml", &prom.url, GROWTH);
    let out = compare(&observations, &growth, "leaky");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(text.contains("memory growth"), "{text}");
    let out = compare(&observations, &growth, "same");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    judge_file_mistakes(dir.path(), &prom, &observations);
}

/// Each mistake stops `compare` before it judges anything, naming the metric.
fn judge_file_mistakes(dir: &Path, prom: &Prometheus, observations: &Path) {
    let closed = common::closed_port_url();
    let unreachable = judge_file(dir, "unreachable.toml", &closed, CPU);
    let out = compare(observations, &unreachable, "same");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("\"cpu per request\"") && err.contains("cannot reach"),
        "{err}"
    );

    let syntax = CPU.replace("[{step}])", "[{step}]");
    let syntax = judge_file(dir, "syntax.toml", &prom.url, &syntax);
    let out = compare(observations, &syntax, "same");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("\"cpu per request\"") && err.contains("bad_data"),
        "{err}"
    );

    let several = CPU.replace(r#"{job="{target}"}"#, "");
    let several = judge_file(dir, "several.toml", &prom.url, &several);
    let out = compare(observations, &several, "same");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("\"cpu per request\"") && err.contains("series answer it"),
        "{err}"
    );
}

/// GETs through the proxy at about `rate` a second for `duration`, over one kept-alive
/// connection; every answer must be the primary's 200.
fn load(url: &str, rate: u32, duration: Duration) -> u64 {
    use std::io::{BufRead, BufReader, Read, Write};
    let stream = std::net::TcpStream::connect(addr(url)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let start = std::time::Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < duration {
        // One write: a request split over several would meet Nagle and delayed ACKs.
        let request = format!("GET /api/items/{sent} HTTP/1.1\r\nHost: shop\r\n\r\n");
        writer.write_all(request.as_bytes()).unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        sent += 1;
        let due = Duration::from_secs_f64(sent as f64 / f64::from(rate));
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    sent
}

#[test]
fn a_shadow_stops_mirroring_when_a_live_look_finds_the_cpu_regression() {
    let _serial = common::serial();
    // Twice the CPU per request at the same latency (the testbed burns it within its 10 ms),
    // so the sequential judge has no latency regression to find first.
    let primary = Testbed::start(&["--metrics", "--cpu-per-request", "1ms", "--latency", "10ms"]);
    let canary = Testbed::start(&["--metrics", "--cpu-per-request", "2ms", "--latency", "10ms"]);
    // The shadow's targets are named primary and shadow: so are the jobs.
    let jobs = [
        ("primary", addr(&primary.url)),
        ("shadow", addr(&canary.url)),
    ];
    let job_refs: Vec<(&str, &str)> = jobs.iter().map(|(j, a)| (*j, a.as_str())).collect();
    let Some(prom) = Prometheus::start(&job_refs) else {
        return;
    };
    prom.wait_up("primary", Duration::from_secs(20));
    prom.wait_up("shadow", Duration::from_secs(20));
    let dir = tempfile::tempdir().unwrap();
    let judge = judge_file(dir.path(), "live.toml", &prom.url, CPU);
    let text = std::fs::read_to_string(&judge)
        .unwrap()
        .replace("settle = \"4s\"", "settle = \"3s\"\nlive_interval = \"6s\"");
    std::fs::write(&judge, text).unwrap();
    let shadow = common::Shadow::start(&primary.url, &canary.url, &["--judge", &judge]);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let url = shadow.url.clone();
            std::thread::spawn(move || load(&url, 25, Duration::from_secs(30)))
        })
        .collect();
    let sent: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let (code, out, err) = shadow.stop();
    assert!(sent > 1000, "{sent}");
    assert!(
        err.contains("judge: fail — resource metric \"cpu per request\" regressed (live look"),
        "{err}"
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("cpu per request"), "{out}");
}

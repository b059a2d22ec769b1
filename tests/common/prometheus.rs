//! A real Prometheus for a test: it scrapes the given targets every second into a fresh
//! storage directory and answers on a free loopback port, so a test reads what a judge would
//! read through the HTTP API, scrape and ingestion lag included, rather than a stand-in.
//!
//! Prometheus's service discovery hands targets to the scrape manager at most every 5 s, so
//! the first scrape comes about 5 s after start (2.42; no flag shortens it): [`Prometheus::wait_up`]
//! is where a test waits for it.

use serde_json::Value;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary Debian's `prometheus` package installs (/usr/bin/prometheus).
const BINARY: &str = "prometheus";
/// Ready (`/-/ready`) takes about 0.1 s on an idle machine; the bound is for a loaded one.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on one HTTP exchange with Prometheus, so a wedged server fails the test, not hangs it.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A Prometheus process; killed, and its directory removed, when dropped.
pub struct Prometheus {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    addr: String,
    child: Child,
    // Dropped after `Drop::drop` killed the process that writes into it.
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping each `(job name, "127.0.0.1:PORT")` at `/metrics` every
    /// second, and returns once it is ready. `None` when the binary is missing (skipped
    /// locally; `common::available` fails the test in CI).
    pub fn start(jobs: &[(&str, &str)]) -> Option<Prometheus> {
        let present = Command::new(BINARY)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !super::available("prometheus", present) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("nprt-prometheus-")
            .tempdir()
            .expect("a temporary directory for Prometheus");
        std::fs::write(dir.path().join("prometheus.yml"), config(jobs)).unwrap();
        let started = Instant::now();
        // The free port can be taken between the probe and Prometheus's own bind: another one.
        for attempt in 1..=3 {
            let addr = format!("127.0.0.1:{}", free_port());
            let mut child = spawn(dir.path(), &addr);
            match wait_ready(&mut child, &addr) {
                Ok(()) => {
                    eprintln!(
                        "prometheus ready on {addr} in {} ms",
                        started.elapsed().as_millis()
                    );
                    return Some(Prometheus {
                        url: format!("http://{addr}"),
                        addr,
                        child,
                        dir,
                    });
                }
                Err(reason) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = log_tail(dir.path());
                    if attempt < 3 && log.contains("address already in use") {
                        continue;
                    }
                    panic!("prometheus on {addr}: {reason}\n--- its log, last lines ---\n{log}");
                }
            }
        }
        unreachable!("the last attempt panics")
    }

    /// Waits until the latest scrape of `job` succeeded (`up{job="JOB"} == 1`), or panics
    /// with what Prometheus says about the job's targets.
    pub fn wait_up(&self, job: &str, timeout: Duration) {
        if let Err(why) = self.up_within(job, timeout) {
            panic!("{why}");
        }
    }

    /// [`Prometheus::wait_up`] that returns the reason instead of panicking with it.
    pub fn up_within(&self, job: &str, timeout: Duration) -> Result<(), String> {
        let query = format!("up{{job={}}}", quoted(job));
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.value(&query) == Some(1.0) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "prometheus: job `{job}` not up after {timeout:?}; its targets: {}\n--- log ---\n{}",
            self.targets(job),
            log_tail(self.dir.path())
        ))
    }

    /// An instant query at the present: `data.result` (for a vector, an array of
    /// `{"metric": {..}, "value": [time, "number"]}`). Panics when Prometheus refuses it.
    pub fn query(&self, promql: &str) -> Value {
        let path = format!("/api/v1/query?query={}", encode(promql));
        let answer = self.api(&path);
        assert_eq!(answer["status"], "success", "query {promql}: {answer}");
        answer["data"]["result"].clone()
    }

    /// The value of an instant query that selects at most one series; `None` when it
    /// selects none (not scraped yet, or stale since its target went away).
    pub fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql);
        let series = result.as_array().expect("an instant vector");
        assert!(
            series.len() <= 1,
            "{promql} selects several series: {result}"
        );
        let number = series.first()?["value"][1].as_str()?;
        Some(number.parse().expect("a sample value is a number"))
    }

    /// The job's active targets as Prometheus reports them: address, health, last error.
    fn targets(&self, job: &str) -> String {
        let answer = self.api("/api/v1/targets?state=active");
        let targets: Vec<String> = answer["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["labels"]["job"] == job)
            .map(|t| format!("{} {} {}", t["scrapeUrl"], t["health"], t["lastError"]))
            .collect();
        format!("[{}]", targets.join("; "))
    }

    /// A GET of the HTTP API, parsed; Prometheus answers errors (400, 422) as JSON too.
    fn api(&self, path: &str) -> Value {
        let (status, body) =
            get(&self.addr, path).unwrap_or_else(|e| panic!("prometheus {}{path}: {e}", self.url));
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("prometheus {}{path}: HTTP {status}, {e}: {body}", self.url))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- prometheus log, last lines ---\n{}",
                log_tail(self.dir.path())
            );
        }
    }
}

/// The configuration: one job per target, everything at 1 s so a test waits seconds, not
/// minutes; no remote write, no alerting, no rule files.
fn config(jobs: &[(&str, &str)]) -> String {
    let mut yml = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n",
    );
    if jobs.is_empty() {
        yml.push_str("scrape_configs: []\n");
    }
    for (i, (job, target)) in jobs.iter().enumerate() {
        if i == 0 {
            yml.push_str("scrape_configs:\n");
        }
        yml.push_str(&format!(
            "  - job_name: {}\n    metrics_path: /metrics\n    static_configs:\n      - targets: [{}]\n",
            quoted(job),
            quoted(target)
        ));
    }
    yml
}

/// A double-quoted string, valid in YAML and in PromQL alike (JSON's escapes are a subset).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn spawn(dir: &Path, addr: &str) -> Child {
    let data = dir.join("data");
    // A failed attempt may have left a TSDB behind; each start is fresh.
    let _ = std::fs::remove_dir_all(&data);
    let log = File::create(dir.join("prometheus.log")).unwrap();
    Command::new(BINARY)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--storage.tsdb.retention.time=1h")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prometheus starts")
}

/// Polls `/-/ready` until 200, the process exits, or [`READY_TIMEOUT`] passes.
fn wait_ready(child: &mut Child, addr: &str) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("exited before it was ready ({status})"));
        }
        if matches!(get(addr, "/-/ready"), Ok((200, _))) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("not ready after {READY_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// One HTTP/1.1 GET on a fresh connection: the status code and the body, a chunked body
/// decoded (Go's server chunks answers it does not know the length of in advance).
fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    let body = &answer[split + 4..];
    let body = if head.contains("\r\ntransfer-encoding: chunked") {
        dechunk(body).ok_or_else(|| bad("a malformed chunked body"))?
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        let rest = &body[line_end + 2..];
        out.extend_from_slice(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

/// Percent-encodes a query parameter: everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

//! `nprt shadow` against real processes on loopback: testbeds as primary and canary, and a
//! recording server in this process where the test must see what the shadow got (or make
//! the shadow hang or reset).

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request as a test server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Answer 200 with a short body.
    Answer,
    /// Read the request and never answer.
    Hang,
    /// Read the request and reset the connection.
    Reset,
}

/// A blocking HTTP/1.1 server in a thread that records every request.
struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = Arc::clone(&log);
                std::thread::spawn(move || serve_connection(stream, behaviour, &log));
            }
        });
        Server { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_connection(stream: TcpStream, behaviour: Behaviour, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or_default().to_owned(),
            parts.next().unwrap_or_default().to_owned(),
        );
        if method == "PRI" {
            // The proxy's probe for HTTP/2 (its preface): this server speaks HTTP/1.1 only,
            // and closes, as such servers do.
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        log.lock().unwrap().push(Seen {
            method,
            target,
            headers,
            body,
        });
        match behaviour {
            Behaviour::Answer => {
                let _ = out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n");
            }
            Behaviour::Hang => {
                std::thread::sleep(Duration::from_secs(120));
                return;
            }
            Behaviour::Reset => {
                // SO_LINGER 0 makes the close a reset.
                let _ = socket_linger_zero(&out);
                return;
            }
        }
    }
}

fn socket_linger_zero(stream: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a properly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// One request on its own connection; the whole raw response.
fn raw(url: &str, request: &str) -> Vec<u8> {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// Status line and body of a raw response, without the headers that differ between two
/// answers of the same server (Date) or between hops.
fn status_and_body(response: &[u8]) -> (String, Vec<u8>) {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole response head");
    let head = String::from_utf8_lossy(&response[..split]);
    (
        head.lines().next().unwrap_or_default().to_owned(),
        response[split + 4..].to_vec(),
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: shop.example\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Waits until `check` holds, for at most 10 s.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn clients_get_the_primarys_answers_and_the_shadow_the_same_requests() {
    let primary = Testbed::start(&[]);
    let canary = Server::start(Behaviour::Answer);
    let proxy = Shadow::start(&primary.url, &canary.url, &[]);
    for path in ["/api/items/1", "/api/items/2?x=1", "/", "/a/b/c"] {
        let through = raw(&proxy.url, &get(path));
        let direct = raw(&primary.url, &get(path));
        assert_eq!(
            status_and_body(&through),
            status_and_body(&direct),
            "{path}"
        );
    }
    eventually("four mirrored requests", || canary.seen().len() == 4);
    let seen = canary.seen();
    let mut targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    targets.sort_unstable();
    assert_eq!(targets, ["/", "/a/b/c", "/api/items/1", "/api/items/2?x=1"]);
    for s in &seen {
        assert_eq!(s.method, "GET");
        assert_eq!(
            s.header("x-nprt-shadow"),
            Some("1"),
            "marked as shadow traffic"
        );
        assert_eq!(s.header("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(s.header("x-forwarded-host"), Some("shop.example"));
        assert!(s.header("connection").is_none_or(|v| !v.contains("close")));
    }
    let (code, _, err) = proxy.stop();
    assert!(
        err.contains("requests 4, mirrored 4, not mirrored 0, dropped 0"),
        "{err}"
    );
    // Too few requests for a verdict: inconclusive.
    assert_eq!(code, 3, "{err}");
}

#[test]
fn unsafe_methods_and_large_bodies_are_not_mirrored_unless_allowed() {
    let primary = Testbed::start(&[]);
    let canary = Server::start(Behaviour::Answer);
    let safe = Shadow::start(&primary.url, &canary.url, &["--max-body", "16B"]);
    let answer = raw(&safe.url, &post("/orders", "item=1"));
    let (status, body) = status_and_body(&answer);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        String::from_utf8_lossy(&body).contains("\"received_bytes\":6"),
        "the primary got the body"
    );
    raw(&safe.url, &get("/after"));
    eventually("the GET mirrored", || canary.seen().len() == 1);
    assert_eq!(
        canary.seen()[0].target,
        "/after",
        "the POST was not mirrored"
    );
    let (_, _, err) = safe.stop();
    assert!(err.contains("not mirrored 1"), "{err}");

    let all = Shadow::start(
        &primary.url,
        &canary.url,
        &[
            "--max-body",
            "16B",
            "--methods",
            "all",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    raw(&all.url, &post("/orders", "item=2"));
    let big = "x".repeat(100);
    let answer = raw(&all.url, &post("/uploads", &big));
    assert!(
        String::from_utf8_lossy(&answer).contains("\"received_bytes\":100"),
        "the primary got the whole large body"
    );
    eventually("the small POST mirrored", || canary.seen().len() == 2);
    std::thread::sleep(Duration::from_millis(300));
    let seen = canary.seen();
    assert_eq!(seen.len(), 2, "the large body was not mirrored: {seen:?}");
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].body, b"item=2");
    let metrics = raw(all.metrics.as_ref().unwrap(), &get("/metrics"));
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("nprt_shadow_skipped_total{reason=\"too_large\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nprt_shadow_mirrored_total 1"),
        "{metrics}"
    );
    all.stop();
}

#[test]
fn a_broken_canary_changes_nothing_for_clients() {
    let _serial = serial();
    let primary = Testbed::start(&[]);
    let hanging = Server::start(Behaviour::Hang);
    let resetting = Server::start(Behaviour::Reset);
    let failing = Testbed::start(&["--error-rate", "1"]);
    let refused = closed_port_url();
    for canary in [&hanging.url, &resetting.url, &failing.url, &refused] {
        let proxy = Shadow::start(
            &primary.url,
            canary,
            &["--timeout", "60s", "--queue", "8", "--concurrency", "2"],
        );
        for i in 0..40 {
            let path = format!("/api/items/{i}");
            let started = Instant::now();
            let through = raw(&proxy.url, &get(&path));
            let took = started.elapsed();
            let direct = raw(&primary.url, &get(&path));
            assert_eq!(
                status_and_body(&through),
                status_and_body(&direct),
                "{canary}: {path}"
            );
            // A hanging shadow holds its 2 slots for 60 s: were the client waiting for it,
            // this would take a minute.
            assert!(
                took < Duration::from_secs(10),
                "{canary}: {path} took {took:?}"
            );
        }
        let (_, _, err) = proxy.stop();
        assert!(err.contains("requests 40"), "{canary}: {err}");
    }
}

#[test]
fn the_judge_fails_a_broken_canary_and_calls_the_on_fail_url_once() {
    let primary = Testbed::start(&[]);
    let canary = Testbed::start(&["--error-rate", "0.5"]);
    let deploy_api = Server::start(Behaviour::Answer);
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let observations = dir.path().join("obs.ndjson");
    let on_fail = format!("{}/shop/canary", deploy_api.url);
    let proxy = Shadow::start(
        &primary.url,
        &canary.url,
        &[
            "--on-fail-url",
            &on_fail,
            "--report",
            reports.to_str().unwrap(),
            "--observations",
            observations.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    for i in 0..200 {
        raw(&proxy.url, &get(&format!("/api/items/{i}")));
    }
    eventually("the on-fail call", || !deploy_api.seen().is_empty());
    let metrics = raw(proxy.metrics.as_ref().unwrap(), &get("/metrics"));
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("nprt_shadow_verdict{state=\"fail\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("nprt_shadow_skipped_total{reason=\"stopped\"}"));
    // More traffic after the failure: not mirrored, and no second call.
    for i in 0..20 {
        raw(&proxy.url, &get(&format!("/more/{i}")));
    }
    let (code, out, err) = proxy.stop();
    assert_eq!(code, 1, "a regression: {err}");
    let calls = deploy_api.seen();
    assert_eq!(calls.len(), 1, "called exactly once: {calls:?}");
    assert_eq!(calls[0].method, "DELETE");
    assert_eq!(calls[0].target, "/shop/canary");
    assert!(String::from_utf8_lossy(&calls[0].body).contains("\"status\":\"firing\""));
    assert!(out.contains("sequential"), "{out}");
    for file in [
        "report.json",
        "report.txt",
        "report.html",
        "report.md",
        "junit.xml",
    ] {
        assert!(reports.join(file).is_file(), "{file}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["verdict"], "fail");
    let lines = std::fs::read_to_string(&observations).unwrap();
    let shadow_lines = lines
        .lines()
        .filter(|l| l.contains("\"target\":\"shadow\""))
        .count();
    let primary_lines = lines
        .lines()
        .filter(|l| l.contains("\"target\":\"primary\""))
        .count();
    assert!(
        shadow_lines > 0 && shadow_lines < 200,
        "mirroring stopped early: {shadow_lines}"
    );
    assert!(
        primary_lines.abs_diff(shadow_lines) <= 2,
        "{primary_lines} vs {shadow_lines}"
    );
}

#[test]
fn a_refusing_canary_is_left_alone_by_the_circuit_breaker_and_probed_again() {
    let primary = Testbed::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let proxy = Shadow::start(
        &primary.url,
        &closed_port_url(),
        &[
            "--keep-mirroring",
            "--metrics",
            "127.0.0.1:0",
            "--report",
            reports.to_str().unwrap(),
        ],
    );
    // 300 requests over about 1.5 s: the breaker opens after 20 refusals, and its first
    // probe comes after a second.
    let started = Instant::now();
    for i in 0..300 {
        let answer = raw(&proxy.url, &get(&format!("/api/items/{i}")));
        assert!(answer.starts_with(b"HTTP/1.1 200"), "users are served");
        std::thread::sleep(Duration::from_millis(5));
    }
    if started.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(1500) - started.elapsed());
    }
    raw(&proxy.url, &get("/after-the-cooldown"));
    let metrics = raw(proxy.metrics.as_ref().unwrap(), &get("/metrics"));
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    let (code, out, err) = proxy.stop();
    let count = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    let opened = count("nprt_shadow_breaker_opened_total{target=\"shadow\"}");
    let down = count("nprt_shadow_skipped_total{reason=\"shadow_down\"}");
    let tried = count("nprt_shadow_errors_total");
    assert!(opened >= 1, "the circuit opened: {metrics}");
    assert!(
        down >= 200,
        "copies were not even made while it was open: {down}"
    );
    // Twenty refusals open it; the probe after the cool-down is refused again.
    assert!((20..=30).contains(&tried), "copies tried: {tried}");
    assert!(
        opened >= 2 || tried > 20,
        "probed again after the cool-down"
    );
    assert_eq!(code, 1, "a canary that refuses everything regressed: {err}");
    assert!(out.contains("its circuit opened"), "{out}");
}

#[test]
fn idle_half_open_connections_do_not_starve_clients() {
    let primary = Testbed::start(&[]);
    let canary = Testbed::start(&[]);
    let proxy = Shadow::start(&primary.url, &canary.url, &["--header-timeout", "2s"]);
    let addr = proxy.url.trim_start_matches("http://").to_owned();
    // Slowloris: connections that send half a request head and then nothing.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    for i in 0..20 {
        let answer = raw(&proxy.url, &get(&format!("/api/items/{i}")));
        assert!(answer.starts_with(b"HTTP/1.1 200 OK"), "client {i}");
    }
    // After the header timeout the server closes every idle connection.
    let closed = idle
        .into_iter()
        .filter(|s| {
            let mut s = s;
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 512];
            // An answer (408) or the end of the stream, but not a read timeout.
            s.read(&mut buf).is_ok()
        })
        .count();
    assert_eq!(closed, 300, "every idle connection was closed");
    let (_, _, err) = proxy.stop();
    assert!(err.contains("requests 20,"), "{err}");
}

#[test]
fn bad_arguments_exit_2_naming_the_option() {
    for (args, expect) in [
        (
            vec!["--primary", "localhost:1", "--shadow", "http://127.0.0.1:1"],
            "--primary",
        ),
        (
            vec!["--primary", "http://127.0.0.1:1", "--shadow", "ftp://x"],
            "--shadow",
        ),
        (
            vec![
                "--primary",
                "http://127.0.0.1:1",
                "--shadow",
                "http://127.0.0.1:1",
                "--mirror-percent",
                "150",
            ],
            "--mirror-percent",
        ),
    ] {
        let out = nprt()
            .args(["shadow", "--listen", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
    }
}

#[tokio::test]
async fn h2c_clients_are_proxied_and_mirrored() {
    use http_body_util::{BodyExt, Empty};
    let primary = Testbed::start(&[]);
    let canary = Server::start(Behaviour::Answer);
    let proxy = Shadow::start(&primary.url, &canary.url, &[]);
    let stream = tokio::net::TcpStream::connect(proxy.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut send, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("the proxy speaks h2c with prior knowledge");
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .uri(format!("{}/api/items/7?h2=1", proxy.url))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = send.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("/api/items/7?h2=1"),
        "the primary's answer"
    );
    eventually("the h2 request mirrored", || canary.seen().len() == 1);
    assert_eq!(canary.seen()[0].target, "/api/items/7?h2=1");
    proxy.stop();
}

//! Live capture on the loopback interface while real servers answer real clients, and
//! files written by real tcpdump read back with `nprt capture --pcap`.
//!
//! Capturing needs root (or CAP_NET_RAW): elsewhere these tests say why and pass, except
//! under CI=true, where they must run.

mod common;

use common::live::Live;
use common::tcpdump::Tcpdump;
use common::{capture_pcap_port, run, stderr, stdout, Testbed};
use nprt::http::{frame_response, Framed};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Whether live capture can run here; panics under CI=true when it cannot.
fn can_capture(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what}: live capture needs root or CAP_NET_RAW, and CI=true requires it"
    );
    eprintln!("skipping {what}: live capture needs root or CAP_NET_RAW");
    false
}

/// Exchanges in a recording, by `nprt inspect --json`.
fn inspect(path: &Path) -> serde_json::Value {
    let o = run(&["inspect", "--json", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn exchanges(summary: &serde_json::Value) -> u64 {
    summary["exchanges"].as_u64().unwrap()
}

/// A small HTTP/1.1 server written for these tests: chunked, big, 204, 304, HEAD and
/// 100-continue answers on keep-alive connections. Counts the final responses it sent.
fn special_server() -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answered = Arc::new(AtomicU64::new(0));
    let count = answered.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let count = count.clone();
            std::thread::spawn(move || {
                let _ = serve_connection(stream, &count);
            });
        }
    });
    (port, answered)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn serve_connection(mut s: TcpStream, answered: &AtomicU64) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut tmp)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let mut words = head.split_whitespace();
        let method = words.next().unwrap_or_default().to_uppercase();
        let path = words.next().unwrap_or_default().to_owned();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if head.contains("expect: 100-continue") {
            s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        while buf.len() < head_end + length {
            let n = s.read(&mut tmp)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        buf.drain(..head_end + length);
        match path.as_str() {
            "/chunked" => {
                s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
                for i in 0..5 {
                    let part = format!("part {i} of a chunked body;");
                    s.write_all(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes())?;
                    std::thread::sleep(Duration::from_millis(2));
                }
                s.write_all(b"0\r\n\r\n")?;
            }
            "/big" => {
                let body = vec![b'b'; 3 << 20];
                s.write_all(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
                )?;
                s.write_all(&body)?;
            }
            "/204" => s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")?,
            "/304" => s.write_all(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n")?,
            _ => {
                let body = format!("{method} {path} got {length} bytes\n");
                s.write_all(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
                )?;
                if method != "HEAD" {
                    s.write_all(body.as_bytes())?;
                }
            }
        }
        answered.fetch_add(1, Ordering::SeqCst);
    }
}

/// A keep-alive client that frames responses with nprt's own framing.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one final response to `method`; returns its status.
    fn response(&mut self, method: &str) -> u16 {
        let mut tmp = vec![0u8; 256 * 1024];
        loop {
            match frame_response(&self.buf, method, false).unwrap() {
                Framed::Interim(f) => {
                    self.buf.drain(..f.len);
                }
                Framed::Complete(f) => {
                    self.buf.drain(..f.len);
                    return f.head.status;
                }
                Framed::Incomplete => {
                    let n = self.stream.read(&mut tmp).unwrap();
                    assert!(n > 0, "server closed early");
                    self.buf.extend_from_slice(&tmp[..n]);
                }
            }
        }
    }

    fn get(&mut self, method: &str, path: &str) -> u16 {
        self.send(format!("{method} {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        self.response(method)
    }
}

#[test]
fn live_capture_sees_every_exchange_of_a_real_conversation() {
    if !can_capture("live_capture_sees_every_exchange_of_a_real_conversation") {
        return;
    }
    let (port, answered) = special_server();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live.gor");
    let cap = Live::capture(port, &out, &[]);

    let mut c = Client::connect(port);
    assert_eq!(c.get("GET", "/a"), 200);
    assert_eq!(c.get("HEAD", "/a"), 200);
    assert_eq!(c.get("GET", "/chunked"), 200);
    assert_eq!(c.get("GET", "/204"), 204);
    assert_eq!(c.get("GET", "/304"), 304);
    assert_eq!(c.get("GET", "/big"), 200);
    // Pipelined: three requests in one write, then three responses.
    c.send(b"GET /p/1 HTTP/1.1\r\n\r\nGET /p/2 HTTP/1.1\r\n\r\nHEAD /p/3 HTTP/1.1\r\n\r\n");
    for method in ["GET", "GET", "HEAD"] {
        assert_eq!(c.response(method), 200);
    }
    // 100-continue: the body goes only after the interim response.
    let body = vec![b'u'; 2 << 20];
    c.send(
        format!(
            "PUT /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let mut tmp = [0u8; 64];
    let n = c.stream.read(&mut tmp).unwrap();
    assert!(tmp[..n].starts_with(b"HTTP/1.1 100"));
    c.send(&body);
    assert_eq!(c.response("PUT"), 200);
    // A second connection, closed by the client.
    let mut c2 = Client::connect(port);
    assert_eq!(c2.get("POST", "/orders"), 200);
    drop(c2);
    drop(c);

    let (code, _, text) = cap.stop();
    assert_eq!(code, Some(0), "{text}");
    let want = answered.load(Ordering::SeqCst);
    assert_eq!(want, 11);
    assert!(text.contains(&format!("wrote {want} exchanges")), "{text}");
    assert!(text.contains("1 interim responses"), "{text}");
    assert!(text.contains(" 0 truncated"), "{text}");
    let summary = inspect(&out);
    assert_eq!(exchanges(&summary), want, "{summary}");
    let statuses = summary.to_string();
    for s in ["204", "304"] {
        assert!(statuses.contains(s), "{statuses}");
    }
}

#[test]
fn live_capture_of_a_burst_counts_every_exchange() {
    if !can_capture("live_capture_of_a_burst_counts_every_exchange") {
        return;
    }
    let testbed = Testbed::start(&[]);
    let port: u16 = testbed.url.rsplit(':').next().unwrap().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("burst.gor");
    let cap = Live::capture(port, &out, &[]);
    let (threads, per) = (8, 1000);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                for i in 0..per {
                    assert_eq!(c.get("GET", &format!("/api/items/{t}-{i}")), 200);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let (code, _, text) = cap.stop();
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("wrote {} exchanges", threads * per)),
        "{text}"
    );
    assert_eq!(exchanges(&inspect(&out)), threads * per);
}

#[test]
fn duration_and_max_exchanges_stop_the_capture() {
    if !can_capture("duration_and_max_exchanges_stop_the_capture") {
        return;
    }
    let (port, _) = special_server();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("max.gor");
    let mut cap = Live::capture(port, &out, &["--max-exchanges", "3", "--duration", "20s"]);
    let mut c = Client::connect(port);
    for i in 0..5 {
        c.get("GET", &format!("/x/{i}"));
    }
    let status = cap.wait();
    assert!(status.success());
    assert_eq!(exchanges(&inspect(&out)), 3);
}

#[test]
fn tcpdump_files_are_read_by_capture_pcap() {
    if !can_capture("tcpdump_files_are_read_by_capture_pcap") {
        return;
    }
    if Command::new("tcpdump").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tcpdump is required under CI=true (see .ci/run)"
        );
        eprintln!("skipping: tcpdump is not installed");
        return;
    }
    let (port, answered) = special_server();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("t.pcap");
    let dump = Tcpdump::start(&pcap, port);
    let mut c = Client::connect(port);
    for path in ["/a", "/chunked", "/204", "/big"] {
        c.get("GET", path);
    }
    drop(c);
    dump.stop(Duration::from_millis(300));

    let out = dir.path().join("t.gor");
    let o = capture_pcap_port(&pcap, port, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(exchanges(&inspect(&out)), answered.load(Ordering::SeqCst));
}

#[cfg(not(feature = "libpcap"))]
#[test]
fn libpcap_engine_without_the_feature_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.gor");
    let o = run(&[
        "capture",
        "--engine",
        "libpcap",
        "--interface",
        "lo",
        "--port",
        "1",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--features libpcap"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[cfg(feature = "libpcap")]
#[test]
fn libpcap_engine_captures_a_conversation() {
    if !can_capture("libpcap_engine_captures_a_conversation") {
        return;
    }
    let (port, answered) = special_server();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lp.gor");
    let cap = Live::capture(port, &out, &["--engine", "libpcap"]);
    let mut c = Client::connect(port);
    for path in ["/a", "/chunked", "/204", "/big"] {
        c.get("GET", path);
    }
    drop(c);
    let (code, _, text) = cap.stop();
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(exchanges(&inspect(&out)), answered.load(Ordering::SeqCst));
}

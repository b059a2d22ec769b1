//! HTTP/2 reached through the HTTP/1.1 upgrade (RFC 7540 §3.2): curl asks a real ASGI server
//! (Python's hypercorn, which accepts `Upgrade: h2c`) to switch, then sends more requests as
//! HTTP/2 streams on the same connection. Captured by real tcpdump into a pcap file and live
//! on `lo`, every exchange is recovered in HTTP/1.1 form and marked HTTP/2 — the upgrade
//! request too, without its connection fields (see README, capture).
//!
//! Capturing needs root (or CAP_NET_RAW) and tcpdump; hypercorn comes from PyPI (.ci/run).
//! Elsewhere these tests say why they skip, except under CI=true, where they must run.

mod common;

use common::live::Live;
use common::tcpdump::Tcpdump;
use common::{capture_pcap_port, run, stderr, stdout, PyServer};
use nprt::recording::{recorded_over_http2, Exchange, GorReader, ReadOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// An ASGI app served by hypercorn on a free loopback port (a socket bound here, handed to
/// hypercorn by its descriptor, so the port is known without parsing logs): it answers
/// every request with its path and the HTTP version it came over.
const APP: &str = r#"
import asyncio, socket
from hypercorn.config import Config
from hypercorn.asyncio import serve

async def app(scope, receive, send):
    if scope["type"] != "http":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = ("hello %s over HTTP/%s" % (scope["path"], scope["http_version"])).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"x-app", b"asgi")]})
    await send({"type": "http.response.body", "body": body})

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(64)
config = Config()
config.bind = ["fd://%d" % sock.fileno()]
config.accesslog = None
print(sock.getsockname()[1], flush=True)
asyncio.run(serve(app, config))
"#;

/// The routes curl asks for, in order, on one connection: the first goes through the
/// upgrade (stream 1), the others are streams 3, 5, 7.
const ROUTES: [&str; 4] = ["/first", "/second", "/third", "/fourth"];

/// The hypercorn server on a free loopback port.
fn server(dir: &Path) -> PyServer {
    PyServer::start(dir, "app.py", APP, &[])
}

fn tools() -> bool {
    let hypercorn = Command::new("python3")
        .args(["-c", "import hypercorn"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let curl = Command::new("curl").arg("--version").output().is_ok();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tcpdump = Command::new("tcpdump").arg("--version").output().is_ok();
    common::available("python3 with hypercorn (pip install hypercorn)", hypercorn)
        && common::available("curl", curl)
        && common::available("root and tcpdump (capture)", root && tcpdump)
}

/// curl sends every route on one connection, the first through the h2c upgrade; checks
/// that it did (else the test would prove nothing) and that each answer came over HTTP/2.
fn requests(port: u16) {
    let urls = ROUTES.map(|r| format!("http://127.0.0.1:{port}{r}?q=1"));
    let out = Command::new("curl")
        .args(["--http2", "-sSv", "--max-time", "10"])
        .args(&urls)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("> Upgrade: h2c"), "{err}");
    assert!(err.contains("< HTTP/1.1 101"), "{err}");
    assert_eq!(
        err.matches("Re-using existing connection").count(),
        3,
        "{err}"
    );
    let body = String::from_utf8_lossy(&out.stdout);
    let want: String = ROUTES
        .iter()
        .map(|r| format!("hello {r} over HTTP/2"))
        .collect();
    assert_eq!(body, want);
}

fn read(path: &Path) -> Vec<Exchange> {
    let mut r = GorReader::open(path, ReadOptions::default()).unwrap();
    let mut ex = r.by_ref().collect::<Result<Vec<_>, _>>().unwrap();
    ex.sort_by_key(|e| e.start_ns);
    ex
}

/// Every route recorded once, in HTTP/1.1 form, marked HTTP/2, with its answer; the
/// upgrade request without the fields that only meant something to HTTP/1.1.
fn check_recording(path: &Path, stats: &str) {
    let ex = read(path);
    assert_eq!(ex.len(), ROUTES.len(), "{stats}");
    for (e, route) in ex.iter().zip(ROUTES) {
        let req = String::from_utf8_lossy(&e.request);
        assert!(
            req.starts_with(&format!("GET {route}?q=1 HTTP/1.1\r\n")),
            "{req}"
        );
        assert!(recorded_over_http2(&e.request_head), "{req}");
        assert!(req.contains("\r\nX-Nprt-Protocol: HTTP/2\r\n"), "{req}");
        assert_eq!(e.request_head.target(), format!("{route}?q=1"));
        let lower = req.to_ascii_lowercase();
        for field in ["\r\nupgrade:", "\r\nhttp2-settings:", "\r\nconnection:"] {
            assert!(!lower.contains(field), "{field} in {req}");
        }
        let res = e.response.as_ref().expect("every request was answered");
        assert_eq!(res.head.status, 200, "{req}");
        let text = String::from_utf8_lossy(&res.bytes);
        assert!(text.contains("\r\nx-app: asgi\r\n"), "{text}");
        assert!(
            text.ends_with(&format!("\r\n\r\nhello {route} over HTTP/2")),
            "{text}"
        );
        assert!(res.latency_ns > 0, "{req}");
    }
    // The upgrade request is the one curl wrote itself in HTTP/1.1 (capitalised names).
    assert!(String::from_utf8_lossy(&ex[0].request).contains("\r\nUser-Agent: curl/"));

    let o = run(&["inspect", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("exchanges   4"), "{text}");
    for route in ROUTES {
        assert!(text.contains(&format!("GET {route}")), "{text}");
    }
}

fn check_stats(err: &str) {
    assert!(
        err.contains("exchanges 4: 0 without response, 0 truncated"),
        "{err}"
    );
    assert!(
        err.contains("HTTP/2: 1 connections, 0 joined mid-stream (skipped), 0 undecodable"),
        "{err}"
    );
    assert!(
        err.contains("; 1 connections through the h2c upgrade"),
        "{err}"
    );
    assert!(err.contains("0 non-HTTP bytes"), "{err}");
}

#[test]
fn an_h2c_upgrade_captured_by_tcpdump_is_decoded_as_http2() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let port = server.port;
    let pcap = dir.path().join("upgrade.pcap");
    let dump = Tcpdump::start(&pcap, port);
    requests(port);
    let (all_seen, dumped) = dump.stop(Duration::from_millis(1000));

    let out = dir.path().join("upgrade.gor");
    let o = capture_pcap_port(&pcap, port, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    if !all_seen {
        // On a loaded machine tcpdump may miss packets: a connection with a hole cannot be
        // decoded (HPACK state lost) and must be given up, never decoded wrong.
        eprintln!("tcpdump dropped packets ({dumped}); checking nothing was made up");
        assert!(read(&out).len() <= ROUTES.len(), "{err}");
        return;
    }
    check_stats(&err);
    check_recording(&out, &err);
}

#[test]
fn an_h2c_upgrade_captured_live_on_lo_is_decoded_as_http2() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let port = server.port;
    let out = dir.path().join("live.gor");
    let cap = Live::capture(port, &out, &[]);
    requests(port);
    let (code, _, err) = cap.stop();
    assert_eq!(code, Some(0), "{err}");
    check_stats(&err);
    check_recording(&out, &err);
}

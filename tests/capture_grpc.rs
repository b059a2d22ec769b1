//! HTTP/2 capture: a real gRPC service (Python's grpcio, h2c with prior knowledge) called by
//! a real grpcio client, captured by real tcpdump into a pcap file and live on `lo`, read
//! into a `.gor` recording whose exchanges are in HTTP/1.1 form (see README, capture).
//!
//! Capturing needs root (or CAP_NET_RAW) and tcpdump; grpcio comes from PyPI (.ci/run).
//! Elsewhere these tests say why they skip, except under CI=true, where they must run.

mod common;

use common::live::Live;
use common::tcpdump::Tcpdump;
use common::{capture_pcap_port, run, stderr, stdout};
use nprt::recording::{Exchange, GorReader, ReadOptions};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// N calls on one channel (one connection, so its HPACK table is used), 4 at a time so
/// that streams interleave; prints how many came back OK.
const CLIENT: &str = r#"
import sys, grpc
from concurrent import futures
channel = grpc.insecure_channel(sys.argv[1], options=[("grpc.enable_http_proxy", 0)])
call = channel.unary_unary("/echo.Echo/Call")
def one(i):
    try:
        call(b"hello-%d" % i + bytes(range(256)) * (i % 3), timeout=10,
             metadata=(("x-call", str(i)),))
        return 1
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAVAILABLE, e
        return 0
with futures.ThreadPoolExecutor(4) as pool:
    print(sum(pool.map(one, range(int(sys.argv[2])))))
"#;

fn root_and_tcpdump() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tcpdump = Command::new("tcpdump").arg("--version").output().is_ok();
    common::available("root and tcpdump (capture)", root && tcpdump)
}

/// Makes `n` calls; returns how many were answered OK.
fn calls(dir: &Path, port: u16, n: usize) -> usize {
    let target = format!("127.0.0.1:{port}");
    let text = common::grpc::run_client(dir, CLIENT, &[&target, &n.to_string()]);
    text.trim().parse().unwrap()
}

fn read(path: &Path) -> Vec<Exchange> {
    let mut r = GorReader::open(path, ReadOptions::default()).unwrap();
    r.by_ref().collect::<Result<Vec<_>, _>>().unwrap()
}

/// What every recorded exchange of the echo service must look like.
fn check_recording(path: &Path, n: usize, ok: usize) {
    let ex = read(path);
    assert_eq!(ex.len(), n);
    let mut trailers_only = 0;
    for e in &ex {
        let req = String::from_utf8_lossy(&e.request);
        assert!(
            req.starts_with("POST /echo.Echo/Call HTTP/1.1\r\nHost: 127.0.0.1:"),
            "{req}"
        );
        assert!(req.contains("\r\nx-call: "), "{req}");
        assert!(req.contains("\r\nX-Nprt-Protocol: HTTP/2\r\n"), "{req}");
        assert!(req.contains("\r\ncontent-type: application/grpc"), "{req}");
        // The request body is the gRPC message: a 5-byte prefix, then "hello-".
        let body = e.request_body();
        assert_eq!(&body[5..11], b"hello-", "{req}");
        let res = e.response.as_ref().expect("every call was answered");
        assert_eq!(res.head.status, 200);
        let text = String::from_utf8_lossy(&res.bytes);
        if text.contains("grpc-status: 14") && text.contains("Content-Length: 0\r\n") {
            trailers_only += 1;
            continue;
        }
        assert!(text.contains("Transfer-Encoding: chunked"), "{text}");
        assert!(
            text.contains("\r\n0\r\ngrpc-status: 0\r\n") || text.contains("grpc-status: 0\r\n"),
            "{text}"
        );
        assert!(text.contains("x-echo-trailer: t-"), "{text}");
        assert!(text.contains("echo:"), "{text}");
    }
    assert_eq!(trailers_only, n - ok);

    let o = run(&["inspect", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("  /echo.Echo/Call\n"), "{text}");
}

#[test]
fn grpc_calls_captured_by_tcpdump_become_http1_form_exchanges() {
    if !common::grpc::grpcio() || !root_and_tcpdump() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = common::grpc::echo_server(dir.path(), 7);
    let port = server.port;
    let pcap = dir.path().join("grpc.pcap");
    let dump = Tcpdump::start(&pcap, port);
    let ok = calls(dir.path(), port, 300);
    assert!((250..300).contains(&ok), "{ok} calls OK");
    let (all_seen, dumped) = dump.stop(Duration::from_millis(1500));

    let out = dir.path().join("grpc.gor");
    let o = capture_pcap_port(&pcap, port, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    if !all_seen {
        // On a loaded machine tcpdump may miss packets: the connection then has a hole,
        // its HPACK state is lost, and it must be given up, never decoded wrong.
        eprintln!("tcpdump dropped packets ({dumped}); checking the give-up path");
        assert!(err.contains("1 undecodable"), "{err}");
        return;
    }
    assert!(
        err.contains("exchanges 300: 0 without response, 0 truncated"),
        "{err}"
    );
    assert!(
        err.contains("HTTP/2: 1 connections, 0 joined mid-stream"),
        "{err}"
    );
    assert!(err.contains("0 undecodable"), "{err}");
    check_recording(&out, 300, ok);
}

#[test]
fn grpc_calls_captured_live_on_lo_become_http1_form_exchanges() {
    if !common::grpc::grpcio() || !root_and_tcpdump() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = common::grpc::echo_server(dir.path(), 7);
    let port = server.port;
    let out = dir.path().join("live.gor");
    let cap = Live::capture(port, &out, &[]);
    let ok = calls(dir.path(), port, 100);
    let (code, _, err) = cap.stop();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("exchanges 100: 0 without response"), "{err}");
    check_recording(&out, 100, ok);
}

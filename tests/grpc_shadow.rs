//! A real gRPC service (Python's grpcio, h2c) behind `nprt shadow`: every call through the
//! proxy gets the primary's answer — message, status, details and trailing metadata — exactly
//! as a direct call does. The proxy used to turn the client's HTTP/2 into HTTP/1.1 toward the
//! primary, which a gRPC server refuses: every call came back UNAVAILABLE (HTTP 502).

mod common;

use common::grpc::echo_server;

use std::path::Path;
use std::process::Command;

/// Calls `/echo.Echo/Call` with each message and prints one line per call: the answer (hex),
/// the status, the details and the trailing metadata.
const CLIENT: &str = r#"
import sys, grpc, hashlib
channel = grpc.insecure_channel(sys.argv[1], options=[("grpc.enable_http_proxy", 0)])
call = channel.unary_unary("/echo.Echo/Call")
for i in range(int(sys.argv[2])):
    message = (b"fail-%d" % i) if i % 10 == 9 else (b"hello-%d" % i)
    message += bytes(range(256)) * (i % 3)
    try:
        answer, outcome = call.with_call(message, timeout=10)
        print(hashlib.sha256(answer).hexdigest(), len(answer), outcome.code().name, repr(outcome.details()),
              sorted(m for m in outcome.trailing_metadata() if not m[0].startswith("grpc-")))
    except grpc.RpcError as e:
        print("-", e.code().name, repr(e.details()),
              sorted(m for m in e.trailing_metadata() if not m[0].startswith("grpc-")))
"#;

fn calls(dir: &Path, target: &str, n: usize) -> Vec<String> {
    common::grpc::run_client(dir, CLIENT, &[target, &n.to_string()])
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_grpc_call_through_the_shadow_gets_the_primarys_answer_with_its_trailers() {
    if !common::grpc::grpcio() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let primary = echo_server(dir.path(), 0);
    let port = primary.port;
    let canary = echo_server(dir.path(), 0);
    let canary_port = canary.port;
    let direct = calls(dir.path(), &format!("127.0.0.1:{port}"), 30);
    assert_eq!(direct.len(), 30);
    assert!(
        direct[0].contains(" OK ") && direct[0].contains("x-echo-trailer"),
        "{}",
        direct[0]
    );
    assert!(
        direct[9].starts_with("- UNAVAILABLE 'asked to fail"),
        "{}",
        direct[9]
    );

    let shadow = common::Shadow::start(
        &format!("http://127.0.0.1:{port}"),
        &format!("http://127.0.0.1:{canary_port}"),
        &[],
    );
    let proxied = calls(dir.path(), shadow.url.trim_start_matches("http://"), 30);
    let (code, out, err) = shadow.stop();
    assert_eq!(proxied, direct, "through the proxy, as direct\n{err}");
    assert!(code == 0 || code == 3, "{code}\n{out}\n{err}");
    // gRPC calls are POSTs: not mirrored without an opt-in.
    assert!(err.contains("mirrored 0"), "{err}");
}

#[test]
fn a_shadow_to_a_canary_failing_one_grpc_call_in_ten_fails_while_clients_see_none() {
    if !common::grpc::grpcio() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let primary = echo_server(dir.path(), 0);
    let port = primary.port;
    let canary = echo_server(dir.path(), 10);
    let canary_port = canary.port;
    let shadow = common::Shadow::start(
        &format!("http://127.0.0.1:{port}"),
        &format!("http://127.0.0.1:{canary_port}"),
        &["--grpc-mirror", "echo.Echo/*"],
    );
    // No call asks to fail: every failure would be the canary's.
    let script = dir.path().join("healthy.py");
    std::fs::write(&script, CLIENT.replace("i % 10 == 9", "False")).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .args([shadow.url.trim_start_matches("http://"), "300"])
        .output()
        .unwrap();
    let answers = String::from_utf8(out.stdout).unwrap();
    let (code, report, err) = shadow.stop();
    assert_eq!(
        answers.lines().count(),
        300,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        answers.lines().all(|l| l.contains(" OK ")),
        "the clients get the primary's answers only: {answers}"
    );
    assert_eq!(code, 1, "{report}\n{err}");
    // The live judge sees the canary's UNAVAILABLE (an HTTP 200 with grpc-status 14) as a
    // failure and stops mirroring.
    assert!(
        err.contains("judge: fail — the shadow regressed; mirroring stopped"),
        "{err}"
    );
    assert!(report.starts_with("FAIL:"), "{report}");
    assert!(report.contains("gRPC failure status"), "{report}");
}

//! `nprt testbed --grpc` against a real gRPC client (Python's grpcio, h2c): every method is a
//! unary echo; latency options apply per method; staged errors are UNAVAILABLE.

mod common;

use common::Testbed;

/// Calls `METHOD` N times with distinct messages, printing per call: the outcome (`echo` when
/// the answer is the request, else the answer's length), the status, the details and the
/// call's duration in ms.
const CLIENT: &str = r#"
import sys, grpc, time
channel = grpc.insecure_channel(sys.argv[1], options=[("grpc.enable_http_proxy", 0)])
call = channel.unary_unary(sys.argv[2])
for i in range(int(sys.argv[3])):
    message = b"m-%d-" % i + bytes(range(256)) * (i % 3)
    started = time.monotonic()
    try:
        answer, outcome = call.with_call(message, timeout=10)
        what, code, details = ("echo" if answer == message else str(len(answer))), outcome.code().name, ""
    except grpc.RpcError as e:
        what, code, details = "-", e.code().name, e.details()
    print(what, code, "%.1f" % ((time.monotonic() - started) * 1000), repr(details))
"#;

/// One line per call: (outcome, status, ms, details).
fn calls(testbed: &Testbed, method: &str, n: usize) -> Vec<(String, String, f64, String)> {
    let dir = tempfile::tempdir().unwrap();
    let target = testbed.url.trim_start_matches("http://");
    common::grpc::run_client(dir.path(), CLIENT, &[target, method, &n.to_string()])
        .lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let mut next = || parts.next().unwrap().to_owned();
            (next(), next(), next().parse().unwrap(), next())
        })
        .collect()
}

#[test]
fn every_method_is_an_echo_and_route_latency_applies_per_method() {
    if !common::grpc::grpcio() {
        return;
    }
    let _serial = common::serial();
    let testbed = Testbed::start(&[
        "--grpc",
        "--latency",
        "1ms",
        "--route-latency",
        "/slow.Service/Get=120ms",
    ]);
    let fast = calls(&testbed, "/any.Service/Anything", 40);
    assert_eq!(fast.len(), 40);
    for (what, code, _, details) in &fast {
        assert_eq!((what.as_str(), code.as_str()), ("echo", "OK"), "{details}");
    }
    let slow = calls(&testbed, "/slow.Service/Get", 5);
    assert!(
        slow.iter()
            .all(|(w, c, ms, _)| w == "echo" && c == "OK" && *ms >= 120.0),
        "{slow:?}"
    );
    let mut fast_ms: Vec<f64> = fast.iter().map(|c| c.2).collect();
    fast_ms.sort_by(f64::total_cmp);
    assert!(
        fast_ms[20] < 100.0,
        "the other methods stay fast: {fast_ms:?}"
    );
}

#[test]
fn the_error_rate_answers_unavailable_in_about_that_share_of_calls() {
    if !common::grpc::grpcio() {
        return;
    }
    let _serial = common::serial();
    let testbed = Testbed::start(&["--grpc", "--error-rate", "0.1"]);
    let answers = calls(&testbed, "/echo.Echo/Call", 400);
    let failed: Vec<_> = answers.iter().filter(|c| c.1 != "OK").collect();
    // 40 expected; binomial(400, 0.1) has a standard deviation of 6.
    assert!((15..=70).contains(&failed.len()), "{} failed", failed.len());
    for (what, code, _, details) in &failed {
        assert_eq!((what.as_str(), code.as_str()), ("-", "UNAVAILABLE"));
        assert!(details.contains("staged error"), "{details}");
    }
    assert!(answers
        .iter()
        .filter(|c| c.1 == "OK")
        .all(|c| c.0 == "echo"));
}

//! `nprt mirror` with gRPC: a real grpcio client calls a real grpcio server (h2c with prior
//! knowledge) while the passive mirror captures on `lo`; each captured call is sent to the
//! canary over HTTP/2 with `TE: trailers` and judged, gRPC status included, against the answer
//! the capture saw.
//!
//! Capturing needs root (or CAP_NET_RAW); grpcio comes from PyPI (.ci/run). Elsewhere these
//! tests say why they skip, except under CI=true, where they must run.

mod common;

use common::live::Live;
use common::{available, nprt, serial, PyServer, Testbed};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

/// N unary calls on one channel (one HTTP/2 connection), one at a time with a pause between
/// them, given up after 60 s whatever is left; prints how many came back OK.
const CLIENT: &str = r#"
import sys, time, grpc
channel = grpc.insecure_channel(sys.argv[1], options=[("grpc.enable_http_proxy", 0)])
call = channel.unary_unary("/echo.Echo/Call")
n, gap = int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + 60
ok = 0
for i in range(n):
    if time.monotonic() > deadline:
        break
    time.sleep(gap)
    try:
        call(b"hello-%d" % i + bytes(range(64)) * (i % 3), timeout=10)
        ok += 1
    except grpc.RpcError as e:
        print(i, e.code().name, e.details(), file=sys.stderr)
print(ok)
"#;

/// The echo server taking `delay` per call, like a real service. The copies are timed by
/// nprt's HTTP/2 client, whose own share (~0.7 ms here) the capture does not see on the
/// primary's side; next to the 0.5 ms of the plain echo server that used up most of the live
/// judge's absolute latency allowance (1 ms).
fn slow_echo(dir: &Path, delay: Duration) -> PyServer {
    common::grpc::echo_server_taking(dir, 0, delay)
}

/// Calls made by each test.
const CALLS: usize = 300;

fn can_run() -> bool {
    if !common::grpc::grpcio() {
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    available("root for live capture (passive gRPC mirror)", root)
}

/// Makes [`CALLS`] calls straight to the primary; returns how many were answered OK.
fn drive(dir: &Path, port: u16) -> usize {
    let (target, calls) = (format!("127.0.0.1:{port}"), CALLS.to_string());
    let text = common::grpc::run_client(dir, CLIENT, &[&target, &calls, "0.002"]);
    text.trim().parse().unwrap()
}

/// `nprt mirror --interface lo` for the primary's port, sending copies of `echo.Echo/*` calls
/// to `canary`, its observations and reports into `dir`.
fn start_mirror(port: u16, canary: &str, dir: &Path, extra: &[&str]) -> Live {
    let mut command = nprt();
    // The copies' latencies are taken in nprt's threads, the captured ones by the kernel:
    // on a machine whose cores are all busy, nprt waiting for a core would add to the
    // canary's latencies alone. At a higher priority (root runs this test) it does not.
    // SAFETY: setpriority is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            libc::setpriority(libc::PRIO_PROCESS, 0, -10);
            Ok(())
        });
    }
    let (obs, reports) = (dir.join("obs.ndjson"), dir.join("reports"));
    let mut args = vec!["--grpc-mirror", "echo.Echo/*", "--duration", "120s"];
    args.extend(["--observations", obs.to_str().unwrap()]);
    args.extend(["--report", reports.to_str().unwrap()]);
    args.extend(extra);
    Live::mirror(command, port, canary, &args)
}

/// One observation as the test reads it.
#[derive(Debug, PartialEq)]
struct Seen {
    route: String,
    status: Option<u64>,
    grpc: Option<u64>,
    error: Option<String>,
}

/// Observations per target: id → what was seen.
fn observations(dir: &Path) -> BTreeMap<String, BTreeMap<String, Seen>> {
    let mut by_target: BTreeMap<String, BTreeMap<_, _>> = BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("obs.ndjson"))
        .unwrap()
        .lines()
    {
        let o: serde_json::Value = serde_json::from_str(line).unwrap();
        let seen = Seen {
            route: o["route"].as_str().unwrap().to_owned(),
            status: o["status"].as_u64(),
            grpc: o["grpc_status"].as_u64(),
            error: o["error"].as_str().map(str::to_owned),
        };
        by_target
            .entry(o["target"].as_str().unwrap().to_owned())
            .or_default()
            .insert(o["id"].as_str().unwrap().to_owned(), seen);
    }
    by_target
}

fn report_json(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("reports/report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn calls_copied_to_a_healthy_grpc_canary_are_answered_over_http2_and_pass() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let primary = slow_echo(dir.path(), Duration::from_millis(5));
    // A grpcio server refuses HTTP/1.1: an answer with a gRPC status is one over HTTP/2.
    let canary = slow_echo(dir.path(), Duration::from_millis(5));
    let mirror = start_mirror(
        primary.port,
        &format!("http://127.0.0.1:{}", canary.port),
        dir.path(),
        &[],
    );
    assert_eq!(drive(dir.path(), primary.port), CALLS);
    let (code, out, err) = mirror.stop();

    let by_target = observations(dir.path());
    let (primary_obs, shadow_obs) = (&by_target["primary"], &by_target["shadow"]);
    assert_eq!(primary_obs.len(), CALLS, "every call captured\n{err}");
    assert_eq!(
        primary_obs.keys().collect::<Vec<_>>(),
        shadow_obs.keys().collect::<Vec<_>>(),
        "every captured call was copied"
    );
    let ok = Seen {
        route: "/echo.Echo/Call".into(),
        status: Some(200),
        grpc: Some(0),
        error: None,
    };
    for (id, seen) in primary_obs.iter().chain(shadow_obs) {
        assert_eq!(seen, &ok, "{id}");
    }
    assert!(
        err.contains(&format!(
            "requests {CALLS}, mirrored {CALLS}, not mirrored 0"
        )),
        "{err}"
    );
    assert_eq!(code, Some(0), "a healthy canary passes:\n{out}\n{err}");
    assert!(out.starts_with("PASS"), "{out}");
    assert!(out.contains(&format!(" OK {CALLS}\n")), "{out}");
    let json = report_json(dir.path());
    assert_eq!(json["verdict"], "pass");
}

#[test]
fn a_canary_answering_unavailable_to_one_call_in_ten_fails_the_mirror() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let primary = slow_echo(dir.path(), Duration::from_millis(5));
    let canary = Testbed::start(&["--grpc", "--latency", "5ms", "--error-rate", "0.1"]);
    // Every call copied, also after the live judge's fail: the report's failure rate is then
    // judged on all of them.
    let mirror = start_mirror(primary.port, &canary.url, dir.path(), &["--keep-mirroring"]);
    assert_eq!(
        drive(dir.path(), primary.port),
        CALLS,
        "clients only see the primary"
    );
    let (code, out, err) = mirror.stop();

    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("the shadow regressed"), "{err}");
    assert!(out.starts_with("FAIL"), "{out}");
    assert!(
        out.contains("FAIL  /echo.Echo/Call: 5xx/no-response rate"),
        "{out}"
    );
    let by_target = observations(dir.path());
    let shadow_obs = &by_target["shadow"];
    let codes: BTreeMap<Option<u64>, usize> =
        shadow_obs.values().fold(BTreeMap::new(), |mut m, s| {
            assert_eq!(
                (s.route.as_str(), s.status, &s.error),
                ("/echo.Echo/Call", Some(200), &None)
            );
            *m.entry(s.grpc).or_default() += 1;
            m
        });
    assert_eq!(shadow_obs.len(), CALLS, "every call copied\n{err}");
    assert_eq!(
        codes.keys().copied().collect::<Vec<_>>(),
        [Some(0), Some(14)],
        "every copy answered with a gRPC status, some UNAVAILABLE: {codes:?}"
    );
    // 30 expected; binomial(300, 0.1) has a standard deviation of 5.2.
    assert!((10..=60).contains(&codes[&Some(14)]), "{codes:?}");
    assert!(
        by_target["primary"].values().all(|s| s.grpc == Some(0)),
        "the primary's captured answers are all OK"
    );
    let json = report_json(dir.path());
    assert_eq!(json["verdict"], "fail");
    let counts = &json["overall"]["candidate"]["grpc_status"];
    assert_eq!(
        counts["UNAVAILABLE"].as_u64(),
        Some(codes[&Some(14)] as u64),
        "{json}"
    );
    // The text report names them on the canary's row.
    let row = format!(
        " UNAVAILABLE {}, OK {}\n",
        codes[&Some(14)],
        codes[&Some(0)]
    );
    assert!(out.contains(&row), "{row:?} in\n{out}");
}

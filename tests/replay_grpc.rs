//! Replaying exchanges recorded over HTTP/2 (marked `X-Nprt-Protocol: HTTP/2` by the
//! capture): unary gRPC calls go to each target over HTTP/2 (h2c prior knowledge), their
//! grpc-status is observed, and a canary answering UNAVAILABLE to 1 call in 10 FAILs while
//! two healthy services PASS. A real grpcio server answers every replayed call OK; a target
//! that speaks only HTTP/1.1 is said to be one.

mod common;

use bytes::Bytes;
use common::{run, stderr, stdout, PyServer, Testbed};
use nprt::http::parse_request_head;
use nprt::recording::{Exchange, GorWriter};
use std::path::{Path, PathBuf};

/// The gRPC frame of `message`: flag 0, 4-byte big-endian length, the message.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// `n` unary calls to `/echo.Echo/Call` as the capture writes HTTP/2 exchanges: HTTP/1.1
/// form, the marker, Host as the :authority; every third body chunked, with a trailer. With
/// `plain`, every tenth call (ids 5, 15, …) is without the marker: recorded over HTTP/1.1.
fn grpc_recording(dir: &Path, n: usize, plain: bool) -> PathBuf {
    let path = dir.join("grpc.gor");
    let mut writer = GorWriter::create(&path).unwrap();
    let t0 = 1_700_000_000_000_000_000u64;
    for i in 0..n {
        let body = frame(format!("hello-{i}").repeat(1 + i % 4).as_bytes());
        let head = "POST /echo.Echo/Call HTTP/1.1\r\nHost: recorded.example:50051\r\n\
                    Content-Type: application/grpc\r\nTE: trailers\r\n\
                    User-Agent: grpc-python/1.0\r\n";
        let mut request = head.as_bytes().to_vec();
        if !(plain && i % 10 == 5) {
            request.extend_from_slice(b"X-Nprt-Protocol: HTTP/2\r\n");
        }
        if i % 3 == 0 {
            request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            request.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            request.extend_from_slice(&body);
            request.extend_from_slice(b"\r\n0\r\nx-request-trailer: 1\r\n\r\n");
        } else {
            request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            request.extend_from_slice(&body);
        }
        let request = Bytes::from(request);
        writer
            .write_exchange(&Exchange {
                id: format!("{i:024x}").into(),
                start_ns: t0 + i as u64 * 1_000_000,
                request_head: parse_request_head(&request).unwrap().unwrap(),
                request,
                response: None,
            })
            .unwrap();
    }
    writer.finish().unwrap()
}

/// Replays `rec` to the targets, all methods, 16 in flight; the output and the observations.
fn replay(
    rec: &Path,
    targets: &[(&str, &str)],
    extra: &[&str],
) -> (std::process::Output, Vec<serde_json::Value>) {
    let obs = rec.with_extension("ndjson");
    let mut args = vec![
        "replay".to_owned(),
        rec.display().to_string(),
        "--max".into(),
        "--concurrency".into(),
        "16".into(),
        "--methods".into(),
        "all".into(),
        "--observations".into(),
        obs.display().to_string(),
    ];
    for (name, url) in targets {
        args.push("--target".into());
        args.push(format!("{name}={url}"));
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let lines = std::fs::read_to_string(&obs)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, lines)
}

fn of<'a>(lines: &'a [serde_json::Value], target: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|o| o["target"] == target).collect()
}

#[test]
fn a_canary_answering_unavailable_to_one_call_in_ten_fails() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let rec = grpc_recording(dir.path(), 600, false);
    let stable = Testbed::start(&["--grpc"]);
    let canary = Testbed::start(&["--grpc", "--error-rate", "0.1"]);
    let judge = ["--baseline", "stable", "--candidate", "canary"];
    let targets = [("stable", stable.url.as_str()), ("canary", &canary.url)];
    let (out, lines) = replay(&rec, &targets, &judge);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(text.starts_with("FAIL"), "{text}");
    // The failure rate finding: UNAVAILABLE counts as a failure like a 5xx.
    assert!(
        text.contains("FAIL  /echo.Echo/Call: 5xx/no-response rate"),
        "{text}"
    );

    // Every call answered over HTTP/2 with a gRPC status: the echo (5 bytes of framing and
    // the message) from the stable, 1 in 10 UNAVAILABLE (trailers-only) from the canary.
    let stable_obs = of(&lines, "stable");
    assert_eq!(stable_obs.len(), 600);
    for o in &stable_obs {
        assert_eq!(
            (&o["status"], &o["grpc_status"]),
            (&200.into(), &0.into()),
            "{o}"
        );
        assert!(o["error"].is_null(), "{o}");
    }
    let i = 4usize; // not chunked: Content-Length framed
    let echoed = stable_obs
        .iter()
        .find(|o| o["id"] == format!("{i:024x}"))
        .unwrap()["bytes"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(echoed, 5 + format!("hello-{i}").len() * (1 + i % 4));
    let chunked = stable_obs
        .iter()
        .find(|o| o["id"] == format!("{:024x}", 3))
        .unwrap()["bytes"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(chunked, 5 + "hello-3".len() * 4, "de-chunked");
    let canary_obs = of(&lines, "canary");
    let unavailable = canary_obs
        .iter()
        .filter(|o| o["grpc_status"] == 14 && o["status"] == 200 && o["bytes"] == 0)
        .count();
    let ok = canary_obs.iter().filter(|o| o["grpc_status"] == 0).count();
    assert!(
        (25..=110).contains(&unavailable),
        "{unavailable} UNAVAILABLE"
    );
    assert_eq!(ok + unavailable, 600);
}

/// The calls recorded over HTTP/1.1 go as before, over HTTP/1.1: their answers carry no
/// gRPC status (the replay's HTTP/1.1 reads no trailers).
#[test]
fn two_healthy_grpc_services_pass() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let rec = grpc_recording(dir.path(), 300, true);
    let a = Testbed::start(&["--grpc", "--latency", "1ms"]);
    let b = Testbed::start(&["--grpc", "--latency", "1ms"]);
    let judge = ["--baseline", "a", "--candidate", "b"];
    let (out, lines) = replay(&rec, &[("a", &a.url), ("b", &b.url)], &judge);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).starts_with("PASS"), "{}", stdout(&out));
    assert_eq!(lines.len(), 600);
    for o in &lines {
        let i = usize::from_str_radix(o["id"].as_str().unwrap(), 16).unwrap();
        let grpc = if i % 10 == 5 {
            serde_json::Value::Null
        } else {
            0.into()
        };
        assert_eq!(
            (&o["status"], &o["grpc_status"]),
            (&200.into(), &grpc),
            "{o}"
        );
    }
}

#[test]
fn a_real_grpc_server_answers_every_replayed_call_ok() {
    if !common::grpc::grpcio() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = common::grpc::echo_server(dir.path(), 0);
    let url = format!("http://127.0.0.1:{}", server.port);
    let rec = grpc_recording(dir.path(), 200, false);
    let (out, lines) = replay(&rec, &[("grpcio", &url)], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(lines.len(), 200);
    for o in &lines {
        let i = usize::from_str_radix(o["id"].as_str().unwrap(), 16).unwrap();
        let message = format!("hello-{i}").len() * (1 + i % 4);
        // grpc-status 0 in the trailers, and the answer `echo:` + the message, framed.
        assert_eq!(
            (&o["status"], &o["grpc_status"], &o["bytes"]),
            (&200.into(), &0.into(), &(5 + 5 + message).into()),
            "{o}"
        );
    }
}

#[test]
fn a_target_speaking_only_http1_is_named_as_not_speaking_http2() {
    let dir = tempfile::tempdir().unwrap();
    // Python's http.server: HTTP/1.x only; it answers the HTTP/2 preface with an error.
    let server = PyServer::run(
        &[
            "-u",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            dir.path().to_str().unwrap(),
            "0",
        ],
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        |banner| {
            let mut words = banner.split_whitespace().skip_while(|w| *w != "port");
            words.nth(1)?.parse().ok()
        },
    );
    let port = server.port;
    let rec = grpc_recording(dir.path(), 20, false);
    let stable = Testbed::start(&["--grpc"]);
    let old = format!("http://127.0.0.1:{port}");
    let (out, lines) = replay(&rec, &[("stable", &stable.url), ("old", &old)], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("no request reached old (HTTP/2: the target") && err.contains("speak HTTP/2"),
        "{err}"
    );
    assert!(of(&lines, "stable").iter().all(|o| o["grpc_status"] == 0));
    let errors: Vec<_> = of(&lines, "old")
        .iter()
        .map(|o| o["error"].clone())
        .collect();
    assert_eq!(errors.len(), 20);
    assert!(
        errors
            .iter()
            .all(|e| e.as_str().unwrap().contains("h2c prior knowledge")),
        "{errors:?}"
    );
}

#[test]
fn over_https_the_calls_go_by_alpn_h2() {
    let dir = tempfile::tempdir().unwrap();
    common::make_certificates(dir.path());
    let path = |name: &str| dir.path().join(name).display().to_string();
    let secure = Testbed::start(&[
        "--grpc",
        "--tls-cert",
        &path("cert.pem"),
        "--tls-key",
        &path("key.pem"),
    ]);
    assert!(secure.url.starts_with("https://"), "{}", secure.url);
    let rec = grpc_recording(dir.path(), 50, false);
    let (out, lines) = replay(&rec, &[("secure", &secure.url)], &["--ca", &path("ca.pem")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(lines.len(), 50);
    assert!(
        lines
            .iter()
            .all(|o| o["status"] == 200 && o["grpc_status"] == 0),
        "{lines:?}"
    );
}

#[test]
fn an_http1_recording_replayed_to_an_http2_only_target_names_the_mismatch() {
    if !common::nghttpd::nghttpd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = common::nghttpd::Nghttpd::start(dir.path());
    let demo = common::demo_recording();
    let (stable, canary) = (
        format!("stable={}", server.url),
        format!("canary={}", server.url),
    );
    let out = run(&[
        "replay",
        demo.to_str().unwrap(),
        "--target",
        &stable,
        "--target",
        &canary,
        "--limit",
        "5",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("the target answered in HTTP/2 (it does not speak HTTP/1.x)")
            && err.contains("replay with --h2"),
        "{err}"
    );
}

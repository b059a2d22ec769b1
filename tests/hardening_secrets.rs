//! Secrets never reach what nprt writes or prints: a recording full of credentials goes
//! through inspect, replay (observations, summary, reports, debug logs), compare in every
//! format, capture with `--redact`, and `nprt redact`; every output is searched for them.

mod common;

use common::{capture_pcap, nprt, pcap, run, stderr, stdout, TcpConn, Testbed};
use nprt::recording::{GorWriter, RecordKind};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Every secret value contains this, so one search finds any of them.
const MARK: &str = "sekrit";

fn request(i: usize) -> String {
    format!(
        "GET /api/users/{i}?id={i}&access_token=sekrit-token-{i}&API_KEY=sekrit-key&Password=sekrit-pass&client_secret=sekrit-secret&authCode=sekrit-authq&page=2 HTTP/1.1\r\n\
         Host: shop.example\r\n\
         Authorization: Bearer sekrit-auth-{i}\r\n\
         Cookie: session=sekrit-cookie\r\n\
         Proxy-Authorization: Basic sekrit-proxy\r\n\
         X-Api-Key: sekrit-xapikey\r\n\r\n"
    )
}

const RESPONSE: &str =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: sid=sekrit-setcookie; HttpOnly\r\n\r\nok";

/// A recording of `n` exchanges whose requests and responses carry secrets, plus requests
/// whose targets the replayer cannot send (so its error messages are exercised).
fn secret_recording(path: &Path, n: usize) {
    let mut w = GorWriter::create(path).unwrap();
    let t0 = 1_700_000_000_000_000_000u64;
    for i in 0..n {
        let id = format!("{i:024x}");
        let ts = t0 + i as u64 * 1_000_000;
        w.write_record(RecordKind::Request, &id, ts, 0, request(i).as_bytes())
            .unwrap();
        w.write_record(
            RecordKind::Response,
            &id,
            ts + 500_000,
            500_000,
            RESPONSE.as_bytes(),
        )
        .unwrap();
    }
    // Targets the HTTP client's URI parser refuses (`<`, `"`), with secrets in their query.
    for (k, target) in [
        "/bad<path?token=sekrit-bad-1",
        "/x?q=\"1\"&api_key=sekrit-bad-2",
        "http://user:sekrit-userinfo@shop.example/p?q=1",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("ff{k:022x}");
        let ts = t0 + (n + k) as u64 * 1_000_000;
        let req =
            format!("GET {target} HTTP/1.1\r\nHost: h\r\nAuthorization: sekrit-auth-bad\r\n\r\n");
        w.write_record(RecordKind::Request, &id, ts, 0, req.as_bytes())
            .unwrap();
    }
    w.finish().unwrap();
}

fn assert_clean(what: &str, text: &str) {
    if let Some(at) = text.find(MARK) {
        let from = text[..at]
            .char_indices()
            .rev()
            .nth(80)
            .map_or(0, |(i, _)| i);
        let to = (at + 40).min(text.len());
        panic!(
            "{what} leaks a secret: …{}…",
            text.get(from..to).unwrap_or(&text[at..])
        );
    }
}

fn assert_output_clean(what: &str, o: &Output) {
    assert_clean(&format!("{what} stdout"), &stdout(o));
    assert_clean(&format!("{what} stderr"), &stderr(o));
}

/// Every file under `dir`, recursively, except those in `skip`.
fn files(dir: &Path, skip: &[&Path]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if skip.contains(&path.as_path()) {
            continue;
        }
        if path.is_dir() {
            out.extend(files(&path, skip));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn no_secret_in_inspect_replay_compare_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("secrets.gor");
    secret_recording(&rec, 40);
    let raw = std::fs::read_to_string(&rec).unwrap();
    assert!(
        raw.contains("sekrit-auth-7"),
        "the test recording carries secrets"
    );

    for args in [vec!["inspect"], vec!["inspect", "--json"]] {
        let mut cmd = nprt();
        let o = cmd
            .args(&args)
            .arg(&rec)
            .arg("--skip-bad")
            .env("RUST_LOG", "nprt=trace")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("/api/users/:id"), "{}", stdout(&o));
        assert_output_clean("inspect", &o);
    }

    let stable = Testbed::start(&[]);
    let canary = Testbed::start(&["--latency", "1ms"]);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let obs = out.join("obs.ndjson");
    let summary = out.join("summary.json");
    let reports = out.join("reports");
    let o = nprt()
        .args(["replay"])
        .arg(&rec)
        .args(["--target", &format!("stable={}", stable.url)])
        .args(["--target", &format!("canary={}", canary.url)])
        .args(["--max", "--methods", "all", "--baseline", "stable"])
        .args(["--candidate", "canary", "--min-requests", "5"])
        .arg("--observations")
        .arg(&obs)
        .arg("--summary")
        .arg(&summary)
        .arg("--report")
        .arg(&reports)
        .env("RUST_LOG", "nprt=trace")
        .output()
        .unwrap();
    assert!(
        matches!(o.status.code(), Some(0 | 1 | 3)),
        "replay failed: {}",
        stderr(&o)
    );
    assert_output_clean("replay", &o);
    let observations = std::fs::read_to_string(&obs).unwrap();
    assert!(observations.lines().count() >= 80, "{observations}");
    // The unsendable targets are observations with an error that quotes them, redacted.
    let errors = observations
        .lines()
        .filter(|l| l.contains("request target"))
        .count();
    assert_eq!(errors, 4, "{observations}");
    assert!(observations.contains("token=REDACTED"), "{observations}");

    for format in ["text", "json", "html", "junit", "markdown"] {
        let o = nprt()
            .arg("compare")
            .arg(&obs)
            .args(["--baseline", "stable", "--candidate", "canary"])
            .args(["--format", format, "--min-requests", "5"])
            .env("RUST_LOG", "nprt=trace")
            .output()
            .unwrap();
        assert!(matches!(o.status.code(), Some(0 | 1 | 3)), "{}", stderr(&o));
        assert_output_clean(&format!("compare --format {format}"), &o);
    }

    let written = files(&out, &[]);
    assert!(written.len() >= 7, "{written:?}");
    for file in written {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert_clean(&file.display().to_string(), &text);
    }
}

#[test]
fn redact_command_scrubs_every_record_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("secrets.gor");
    secret_recording(&rec, 10);
    let clean = dir.path().join("clean.gor");
    let o = run(&[
        "redact",
        rec.to_str().unwrap(),
        clean.to_str().unwrap(),
        "--redact",
        "X-Api-Key",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_output_clean("redact", &o);
    let text = std::fs::read_to_string(&clean).unwrap();
    assert_clean("redacted recording", &text);
    assert_eq!(
        std::fs::metadata(&clean).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Everything else is kept: ids, kinds, timestamps, bodies, other headers.
    let before = std::fs::read_to_string(&rec).unwrap();
    let header_lines = |t: &str| -> Vec<String> {
        t.split("\n\u{1f435}\u{1f648}\u{1f649}\n")
            .filter(|r| !r.is_empty())
            .map(|r| r.lines().next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(header_lines(&before), header_lines(&text));
    assert!(text.contains("Host: shop.example\r\n"));
    assert!(text.contains("Authorization: REDACTED\r\n"));
    assert!(text.contains("X-Api-Key: REDACTED\r\n"));
    assert!(text.contains("/api/users/3?id=3&access_token=REDACTED&API_KEY=REDACTED&"));
    assert!(text.contains("access_token=REDACTED"));
    assert!(text.contains("\r\n\r\nok"));
    let o = run(&["inspect", clean.to_str().unwrap(), "--skip-bad"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("/api/users/:id"), "{}", stdout(&o));

    // Without --redact X-Api-Key that header is kept: the flag is what removed it.
    let default = dir.path().join("default.gor");
    let o = run(&["redact", rec.to_str().unwrap(), default.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&default).unwrap();
    assert!(text.contains("X-Api-Key: sekrit-xapikey"));
    assert!(!text.contains("sekrit-auth"));

    // Bad input: exit 2, the file named, nothing written.
    let bad = dir.path().join("bad.gor");
    std::fs::write(&bad, "GET /x?token=sekrit-notgor HTTP/1.1\r\n\r\n").unwrap();
    let out = dir.path().join("never.gor");
    let o = run(&["redact", bad.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("bad.gor"), "{}", stderr(&o));
    assert_output_clean("redact of a bad file", &o);
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".nprt-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn capture_with_redact_writes_no_secret_and_without_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut packets = Vec::new();
    let mut conn = TcpConn::open(40000, &mut packets);
    for i in 0..3 {
        conn.send(true, request(i).as_bytes(), &mut packets);
        conn.send(false, RESPONSE.as_bytes(), &mut packets);
    }
    let input = dir.path().join("secrets.pcap");
    std::fs::write(&input, pcap(&packets)).unwrap();

    let capture = |out: &Path, extra: &[&str]| capture_pcap(&input, out, extra);
    let redacted = dir.path().join("redacted.gor");
    let o = capture(&redacted, &["--redact", "X-Api-Key"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("wrote 3 exchanges"), "{}", stderr(&o));
    assert_output_clean("capture --redact", &o);
    let text = std::fs::read_to_string(&redacted).unwrap();
    assert_clean("captured recording with --redact", &text);
    assert!(text.contains("Set-Cookie: REDACTED"), "{text}");
    assert_eq!(
        std::fs::metadata(&redacted).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // `--redact` alone: the default set, X-Api-Key kept.
    let default = dir.path().join("default.gor");
    let o = capture(&default, &["--redact"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&default).unwrap();
    assert!(text.contains("X-Api-Key: sekrit-xapikey") && !text.contains("sekrit-auth"));

    // Without --redact the recording keeps every byte (to replay exactly), mode 0600.
    let raw = dir.path().join("raw.gor");
    let o = capture(&raw, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_output_clean("capture", &o);
    assert!(std::fs::read_to_string(&raw)
        .unwrap()
        .contains("Authorization: Bearer sekrit-auth-2"));
    assert_eq!(
        std::fs::metadata(&raw).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

//! What every command does the same way: interruption keeps what was observed, local mistakes
//! are exit 2 before any traffic, durations and sizes take units everywhere.

mod common;

use common::{demo_recording, nprt, run, stderr, Testbed};
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Files nprt writes under a temporary name before renaming them into place.
fn temporary_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".nprt-"))
        .collect()
}

/// Runs a long replay from stable to `canary`, interrupts it with SIGINT after two seconds,
/// and returns its exit code, stdout and stderr.
fn interrupted_replay(dir: &Path, canary: &str) -> (Option<i32>, String, String) {
    let stable = Testbed::start(&["--latency", "1ms"]);
    let rec = demo_recording();
    let obs = dir.join("obs.ndjson");
    let report = dir.join("report");
    let mut child = nprt()
        .args([
            "replay",
            rec.to_str().unwrap(),
            "--target",
            &format!("stable={}", stable.url),
            "--target",
            &format!("canary={canary}"),
            "--methods",
            "all",
            "--rate",
            "100",
            "--loop",
            "--duration",
            "60s",
            "--baseline",
            "stable",
            "--candidate",
            "canary",
            "--observations",
            obs.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: kill(2) on a child we own.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the replay kept going after SIGINT"
    );
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), out, err)
}

#[test]
fn an_interrupted_replay_keeps_what_it_observed() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let canary = Testbed::start(&["--latency", "1ms"]);
    let (code, out, err) = interrupted_replay(dir.path(), &canary.url);
    // Healthy, but judged on part of the traffic: inconclusive, never a pass.
    assert_eq!(code, Some(3), "stdout: {out}\nstderr: {err}");
    assert!(err.contains("interrupted"), "{err}");
    let lines = std::fs::read_to_string(dir.path().join("obs.ndjson")).unwrap();
    assert!(
        lines.lines().count() >= 100,
        "{} observations",
        lines.lines().count()
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["verdict"], "inconclusive", "{report}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("interrupted"), "{notes}");
    for file in ["report.txt", "report.html", "report.md", "junit.xml"] {
        assert!(dir.path().join("report").join(file).is_file(), "{file}");
    }
    assert_eq!(temporary_files(dir.path()), Vec::<String>::new());
    assert_eq!(
        temporary_files(&dir.path().join("report")),
        Vec::<String>::new()
    );
}

#[test]
fn an_interrupted_replay_that_already_shows_a_regression_fails() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let canary = Testbed::start(&["--latency", "1ms", "--error-rate", "0.5"]);
    let (code, out, err) = interrupted_replay(dir.path(), &canary.url);
    assert_eq!(code, Some(1), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("FAIL"), "{out}");
}

/// A listener that counts the connections made to it: the "traffic" of a mistaken run.
struct Sentinel {
    listener: TcpListener,
    url: String,
}

impl Sentinel {
    fn new() -> Sentinel {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        Sentinel { listener, url }
    }

    fn contacted(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

#[test]
fn local_mistakes_exit_2_before_any_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let rec = demo_recording();
    let rec = rec.to_str().unwrap();
    let sentinel = Sentinel::new();
    let (a, b) = (format!("a={}", sentinel.url), format!("b={}", sentinel.url));
    let f = |p: &Path| p.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--report".into(), f(&file), "--baseline".into(), "a".into()],
            "is a file",
        ),
        (
            vec!["--observations".into(), f(&d.join("no/such/obs.ndjson"))],
            "does not exist",
        ),
        (vec!["--summary".into(), f(d)], "is a folder"),
        (vec!["--timeout".into(), "500".into()], "no unit"),
        (vec!["--sample".into(), "0".into()], "--sample"),
    ];
    for (extra, hint) in cases {
        let mut args = vec![
            "replay", rec, "--target", &a, "--target", &b, "--limit", "5",
        ];
        let mut extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        if extra.contains(&"--baseline") {
            extra.extend(["--candidate", "b"]);
        }
        args.extend(extra);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(hint), "{args:?}: {}", stderr(&out));
        assert!(
            !sentinel.contacted(),
            "{args:?} sent traffic before failing"
        );
    }
    // Commands with nothing to send: the mistake is still theirs, not a target's.
    let other: Vec<(Vec<&str>, &str)> = vec![
        (vec!["testbed", "--listen", &taken], "cannot listen"),
        (
            vec![
                "shadow",
                "--listen",
                &taken,
                "--primary",
                &sentinel.url,
                "--shadow",
                &sentinel.url,
            ],
            "cannot listen",
        ),
        (
            vec![
                "capture",
                "--pcap",
                rec,
                "--port",
                "80",
                "--output",
                d.to_str().unwrap(),
            ],
            "is a folder",
        ),
        (vec!["redact", rec, d.to_str().unwrap()], "is a folder"),
    ];
    for (args, hint) in other {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(hint), "{args:?}: {}", stderr(&out));
    }
    assert!(!sentinel.contacted());
}

/// Every duration and size flag takes a unit, and refuses a bare number with a hint.
#[test]
fn every_duration_and_size_flag_takes_units() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.gor");
    let missing = missing.to_str().unwrap();
    let replay = vec!["replay", missing, "--target", "a=http://127.0.0.1:9"];
    let shadow = vec![
        "shadow",
        "--listen",
        "127.0.0.1:0",
        "--primary",
        "ftp://x",
        "--shadow",
        "http://127.0.0.1:9",
    ];
    let out = dir.path().join("x.gor");
    let capture = vec![
        "capture",
        "--pcap",
        missing,
        "--port",
        "80",
        "--output",
        out.to_str().unwrap(),
    ];
    let testbed = vec!["testbed", "--listen", "127.0.0.1:0", "--error-rate", "2"];
    let flags: Vec<(&Vec<&str>, &str, &str)> = vec![
        (&replay, "--timeout", "2s"),
        (&replay, "--duration", "500ms"),
        (&shadow, "--timeout", "10s"),
        (&shadow, "--header-timeout", "5s"),
        (&shadow, "--max-queue-wait", "100ms"),
        (&shadow, "--report-every", "1m"),
        (&shadow, "--duration", "1h"),
        (&shadow, "--notify-timeout", "5s"),
        (&shadow, "--max-body", "64KiB"),
        (&capture, "--duration", "30s"),
        (&capture, "--stats", "10s"),
        (&capture, "--idle-timeout", "2m"),
        (&capture, "--max-message-bytes", "1MiB"),
        (&capture, "--max-head-bytes", "64KiB"),
        (&testbed, "--latency", "5ms"),
        (&testbed, "--jitter", "1ms"),
        (&testbed, "--cpu-per-request", "200us"),
        (&testbed, "--leak-per-request", "4KiB"),
    ];
    for (base, flag, good) in flags {
        let mut args = base.clone();
        args.extend([flag, good]);
        let out = run(&args);
        // The command fails for its other, deliberate mistake, never for the flag.
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains(flag), "{args:?}: {}", stderr(&out));
        let mut args = base.clone();
        args.extend([flag, "30"]);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains(flag) && stderr(&out).contains("no unit"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

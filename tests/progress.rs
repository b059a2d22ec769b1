//! What long commands tell people while they run, through the real binary: stderr is a pipe
//! here (as in CI), so progress comes as plain lines, never terminal escape codes.

mod common;

use common::{closed_port_url, demo_recording, nprt, run, stderr, stdout, Shadow, Testbed};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Runs `nprt replay` of the demo recording (looped) and reads its stderr as it streams:
/// each line with when it arrived, and when the process exited.
fn replay_streaming(
    targets: &[(&str, &str)],
    extra: &[&str],
) -> (Vec<(Duration, String)>, Duration) {
    let mut cmd = nprt();
    cmd.arg("replay").arg(demo_recording()).arg("--loop");
    for (name, url) in targets {
        cmd.args(["--target", &format!("{name}={url}")]);
    }
    let started = Instant::now();
    let mut child = cmd
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nprt replay starts");
    let err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .map(|line| (started.elapsed(), line))
            .collect::<Vec<_>>()
    });
    // Bounded: the replays here last seconds.
    let deadline = started + Duration::from_secs(60);
    let exited = loop {
        if child.try_wait().unwrap().is_some() {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nprt replay did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (reader.join().unwrap(), exited)
}

#[test]
fn a_target_refusing_its_first_requests_is_named_while_the_replay_runs() {
    let stable = Testbed::start(&[]);
    let closed = closed_port_url();
    let (lines, exited) = replay_streaming(
        &[("stable", &stable.url), ("canary", &closed)],
        &["--rate", "50", "--duration", "3s"],
    );
    let warnings: Vec<_> = lines
        .iter()
        .filter(|(_, l)| l.starts_with("warning: target "))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, for canary only: {lines:#?}"
    );
    let (at, warning) = warnings[0];
    assert!(
        warning.starts_with("warning: target canary: its first 5 requests got no answer (")
            && warning.contains("refused"),
        "{warning}"
    );
    assert!(
        *at + Duration::from_secs(1) < exited,
        "the warning came at {at:?}, the replay ended at {exited:?}: not while it ran"
    );
    let summary = lines.iter().position(|(_, l)| l.starts_with("replayed "));
    let warned = lines.iter().position(|(_, l)| l == warning);
    assert!(
        warned < summary,
        "the warning comes before the summary: {lines:#?}"
    );
}

#[test]
fn without_a_terminal_progress_is_a_plain_line_every_ten_seconds() {
    let stable = Testbed::start(&[]);
    let canary = Testbed::start(&[]);
    let (lines, _) = replay_streaming(
        &[("stable", &stable.url), ("canary", &canary.url)],
        &["--rate", "20", "--duration", "11s"],
    );
    let progress: Vec<_> = lines
        .iter()
        .filter(|(_, l)| l.starts_with("10 s: "))
        .collect();
    assert_eq!(progress.len(), 1, "{lines:#?}");
    let (at, line) = progress[0];
    assert!(
        line.contains(" exchanges (") && line.ends_with(", 0 without answer"),
        "{line}"
    );
    // About 200 exchanges in 10 s at 20/s: counted once for both targets, not twice.
    let done: u64 = line["10 s: ".len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"));
    assert!((150..=210).contains(&done), "{done} exchanges in {line}");
    assert!(*at >= Duration::from_secs(10), "{at:?}");
    assert!(
        lines
            .iter()
            .all(|(_, l)| !l.contains('\u{1b}') && !l.contains('\r')),
        "terminal codes in a pipe: {lines:#?}"
    );
    assert!(lines.iter().any(|(_, l)| l.starts_with("replayed ")));
}

#[test]
fn quiet_replay_prints_the_verdict_and_nothing_else() {
    let stable = Testbed::start(&[]);
    let canary = Testbed::start(&[]);
    let rec = demo_recording();
    let args = |quiet: bool| {
        let mut a = vec![
            "replay".to_owned(),
            rec.display().to_string(),
            "--target".into(),
            format!("stable={}", stable.url),
            "--target".into(),
            format!("canary={}", canary.url),
            "--max".into(),
            "--limit".into(),
            "100".into(),
            "--baseline".into(),
            "stable".into(),
            "--candidate".into(),
            "canary".into(),
        ];
        if quiet {
            a.push("--quiet".into());
        }
        a
    };
    let run_with = |a: Vec<String>| run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let loud = run_with(args(false));
    assert!(stderr(&loud).contains("replayed "), "{}", stderr(&loud));
    let quiet = run_with(args(true));
    assert_eq!(stderr(&quiet), "", "quiet stderr");
    let out = stdout(&quiet);
    assert_eq!(out.lines().count(), 1, "only the verdict line: {out}");
    let verdict = out.lines().next().unwrap_or_default();
    assert!(
        ["PASS: ", "FAIL: ", "INCONCLUSIVE: "]
            .iter()
            .any(|v| verdict.starts_with(v)),
        "the verdict first: {out}"
    );
}

#[test]
fn quiet_replay_does_not_warn_but_still_fails_on_an_unreachable_target() {
    let stable = Testbed::start(&[]);
    let closed = closed_port_url();
    let out = run(&[
        "replay",
        demo_recording().to_str().unwrap(),
        "--target",
        &format!("stable={}", stable.url),
        "--target",
        &format!("canary={closed}"),
        "--max",
        "--limit",
        "20",
        "--quiet",
    ]);
    let err = stderr(&out);
    assert!(
        !err.contains("warning:") && !err.contains("replayed "),
        "{err}"
    );
    // The error is all there is: it says why.
    assert!(
        err.contains("no request reached canary (") && err.contains("refused"),
        "{err}"
    );
    assert_ne!(out.status.code(), Some(0));
}

/// A pcap with one GET and its answer on port 18080.
fn one_exchange_pcap(dir: &std::path::Path) -> std::path::PathBuf {
    let mut packets = Vec::new();
    let mut c = common::TcpConn::open(40_000, &mut packets);
    c.send(true, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", &mut packets);
    c.send(
        false,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        &mut packets,
    );
    let path = dir.join("in.pcap");
    std::fs::write(&path, common::pcap(&packets)).unwrap();
    path
}

#[test]
fn capture_says_what_it_captures_unless_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let input = one_exchange_pcap(dir.path());
    let out_gor = dir.path().join("out.gor");
    let loud = common::capture_pcap(&input, &out_gor, &[]);
    assert_eq!(loud.status.code(), Some(0), "{}", stderr(&loud));
    let err = stderr(&loud);
    assert_eq!(
        err.lines().next(),
        Some(
            format!(
                "capturing {} for ports [18080] into {}",
                input.display(),
                out_gor.display()
            )
            .as_str()
        ),
        "{err}"
    );
    assert!(err.contains("wrote 1 exchanges"), "{err}");
    let quiet = common::capture_pcap(&input, &out_gor, &["--quiet"]);
    let err = stderr(&quiet);
    assert!(!err.contains("capturing "), "{err}");
    assert!(err.contains("wrote 1 exchanges"), "the report stays: {err}");
}

/// One GET through the proxy at `url`; the whole raw response. It also proves the proxy
/// has started, signal handling included, before the test stops it.
fn get_through(url: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn shadow_says_where_copies_go_unless_quiet() {
    let primary = Testbed::start(&[]);
    let canary = Testbed::start(&[]);
    for quiet in [false, true] {
        let extra: &[&str] = if quiet { &["--quiet"] } else { &[] };
        let shadow = Shadow::start(&primary.url, &canary.url, extra);
        assert!(get_through(&shadow.url).starts_with("HTTP/1.1 200"));
        let (_, _, err) = shadow.stop();
        let line = format!(
            "shadow: copies of 100% of the safe requests to {} go to {}, judged live until \
             Ctrl-C or SIGTERM",
            primary.url, canary.url
        );
        assert_eq!(err.lines().any(|l| l == line), !quiet, "`{line}` in {err}");
        assert!(
            err.contains("requests 1, mirrored 1"),
            "the final counts stay: {err}"
        );
    }
}

#[test]
fn mirror_says_where_copies_go_unless_quiet() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !common::available("root for live capture (nprt mirror)", root) {
        return;
    }
    let primary = Testbed::start(&[]);
    let canary = Testbed::start(&[]);
    let port = primary.url.rsplit(':').next().unwrap();
    for quiet in [false, true] {
        let mut args = vec!["mirror", "--interface", "lo", "--port", port];
        args.extend(["--shadow", &canary.url, "--duration", "1s"]);
        if quiet {
            args.push("--quiet");
        }
        let err = stderr(&run(&args));
        let line = format!(
            "mirror: copies of 100% of the safe requests to ports [{port}] on lo go to {}, \
             judged live for 1s",
            canary.url
        );
        assert_eq!(err.lines().any(|l| l == line), !quiet, "`{line}` in {err}");
        assert!(
            err.contains("requests 0, mirrored 0"),
            "the final counts stay: {err}"
        );
    }
}

//! https targets: a testbed serving TLS with a certificate from a CA made in the test.

mod common;

use common::{make_certificates, run, stderr, Testbed};

#[test]
fn https_targets_are_verified_against_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let p = |name: &str| dir.path().join(name).display().to_string();
    let server = Testbed::start(&["--tls-cert", &p("cert.pem"), "--tls-key", &p("key.pem")]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let rec = common::demo_recording();
    let rec = rec.to_str().unwrap();
    let obs = p("obs.ndjson");
    let target = format!("s={}", server.url);
    let out = run(&[
        "replay",
        rec,
        "--target",
        &target,
        "--max",
        "--limit",
        "30",
        "--ca",
        &p("ca.pem"),
        "--observations",
        &obs,
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = std::fs::read_to_string(&obs).unwrap();
    assert_eq!(lines.lines().count(), 30);
    assert!(
        lines.lines().all(|l| l.contains("\"status\":200")),
        "{lines}"
    );

    // Without the CA the certificate is not trusted: every request fails, exit 4.
    let out = run(&[
        "replay", rec, "--target", &target, "--max", "--limit", "5", "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr(&out)
    );

    let out = run(&[
        "replay",
        rec,
        "--target",
        &target,
        "--ca",
        "/nonexistent.pem",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent.pem"),
        "{}",
        stderr(&out)
    );
}

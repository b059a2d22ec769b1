//! https targets: a testbed serving TLS with a certificate from a CA made in the test.

mod common;

use common::{run, stderr, Testbed};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::path::Path;

/// Writes ca.pem, cert.pem and key.pem for 127.0.0.1 into `dir`.
fn make_certificates(dir: &Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
}

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
        "--ca-cert",
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
        "--ca-cert",
        "/nonexistent.pem",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent.pem"),
        "{}",
        stderr(&out)
    );
}

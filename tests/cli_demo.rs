//! `nprt demo`: the one command a newcomer runs first. It must find the canary's regression on
//! the bundled recording, write its reports, and exit 0 because the run completed.

mod common;

use common::{run, stderr, stdout};

#[test]
fn demo_finds_the_regressed_route_and_writes_reports() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("out");
    let out = run(&["demo", "--report", report.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(text.starts_with("FAIL"), "{text}");
    let failing: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("FAIL "))
        .collect();
    assert!(
        failing.iter().any(|l| l.contains("GET /api/products/:id")),
        "{text}"
    );
    // Both services answer every other route without errors, so no other route may show a
    // failure-rate finding. (Latency noise on a loaded machine can still trip the fixed p99
    // threshold elsewhere; the statistical judge is what removes that.)
    assert!(
        failing
            .iter()
            .filter(|l| l.contains("rate"))
            .all(|l| l.contains("GET /api/products/:id") || l.contains("(overall)")),
        "only the regressed route may fail on errors: {failing:?}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["verdict"], "fail");
    for name in ["report.txt", "report.html", "report.md", "junit.xml"] {
        let text = std::fs::read_to_string(report.join(name)).unwrap();
        assert!(
            text.contains("/api/products/:id"),
            "{name} lacks the regressed route"
        );
    }
    let observations = std::fs::read_to_string(report.join("observations.ndjson")).unwrap();
    assert!(observations.lines().count() >= 4000);
}

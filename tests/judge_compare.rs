//! `nprt compare` on observation files: paired statistics end to end through the binary.

mod common;

use std::io::Write;
use std::path::Path;

/// One NDJSON file per target, same exchange ids, the candidate `slow_ms` slower on
/// `/api/items/:id` and failing every `fail_every`-th request there (0 = never).
fn write_observations(dir: &Path, slow_ms: u64, fail_every: u64) -> [String; 2] {
    let mut paths = [String::new(), String::new()];
    for (k, target) in ["stable", "canary"].iter().enumerate() {
        let path = dir.join(format!("{target}.ndjson"));
        let mut f = std::fs::File::create(&path).unwrap();
        for i in 0..600u64 {
            let route = if i % 2 == 0 {
                "GET /api/items/:id"
            } else {
                "GET /api/cart"
            };
            let mut latency_us = 2_000 + (i * 7919) % 3_000;
            let mut status = 200;
            if k == 1 && i % 2 == 0 {
                latency_us += slow_ms * 1000;
                if fail_every > 0 && i % fail_every == 0 {
                    status = 503;
                }
            }
            writeln!(
                f,
                r#"{{"id":"x{i}","target":"{target}","route":"{route}","method":"GET","status":{status},"latency_us":{latency_us},"bytes":10,"error":null}}"#
            )
            .unwrap();
        }
        paths[k] = path.display().to_string();
    }
    paths
}

#[test]
fn separate_files_pair_by_id_and_find_the_slow_route() {
    let dir = tempfile::tempdir().unwrap();
    let [stable, canary] = write_observations(dir.path(), 30, 0);
    let out = common::run(&[
        "compare",
        &stable,
        &canary,
        "--baseline",
        "stable",
        "--candidate",
        "canary",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(json["schema"], "nprt.report/v2");
    assert_eq!(json["overall"]["paired"]["pairs"], 600);
    assert_eq!(json["overall"]["paired"]["unpaired_baseline"], 0);
    let failing: Vec<(String, String)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "fail" && f["route"] != "(overall)")
        .map(|f| {
            (
                f["route"].as_str().unwrap().to_owned(),
                f["metric"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        failing.iter().all(|(r, _)| r == "GET /api/items/:id"),
        "{failing:?}"
    );
    assert!(
        failing.iter().any(|(_, m)| m == "latency_shift"),
        "{failing:?}"
    );
    let shift = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["metric"] == "latency_shift")
        .unwrap();
    let check = &shift["check"];
    for key in [
        "effect",
        "interval",
        "p_value",
        "p_adjusted",
        "limit",
        "test",
    ] {
        assert!(check.get(key).is_some(), "check lacks {key}: {check}");
    }
    // The Hodges-Lehmann shift is the 30 ms the canary added.
    assert_eq!(check["effect"], 30.0);
}

#[test]
fn identical_targets_pass() {
    let dir = tempfile::tempdir().unwrap();
    let [stable, canary] = write_observations(dir.path(), 0, 0);
    let out = common::run(&[
        "compare",
        &stable,
        &canary,
        "--baseline",
        "stable",
        "--candidate",
        "canary",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));
    assert!(common::stdout(&out).starts_with("PASS"));
}

#[test]
fn paired_errors_fail_through_mcnemar() {
    let dir = tempfile::tempdir().unwrap();
    // Every 10th exchange answers 503 on the canary: 60 of the 300 on that route.
    let [stable, canary] = write_observations(dir.path(), 0, 10);
    let out = common::run(&[
        "compare",
        &stable,
        &canary,
        "--baseline",
        "stable",
        "--candidate",
        "canary",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stdout(&out));
    let json: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    let f = &json["findings"][0];
    assert_eq!(f["metric"], "failure_rate");
    assert_eq!(f["check"]["test"], "mcnemar_exact");
    let items = json["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "GET /api/items/:id")
        .unwrap();
    assert_eq!(items["paired"]["worse"], 60);
}

#[test]
fn a_judge_file_loosens_a_route() {
    let dir = tempfile::tempdir().unwrap();
    let [stable, canary] = write_observations(dir.path(), 30, 0);
    let judge = dir.path().join("judge.toml");
    std::fs::write(
        &judge,
        r#"alpha = 0.01
[[routes]]
pattern = "/api/items/*"
thresholds = { p99 = { absolute_ms = 100 }, shift = { absolute_ms = 100 }, distribution = 1.0 }
[[routes]]
pattern = "*"
min_requests = 10
"#,
    )
    .unwrap();
    let judge = judge.display().to_string();
    let out = common::run(&[
        "compare",
        &stable,
        &canary,
        "--baseline",
        "stable",
        "--candidate",
        "canary",
        "--judge",
        &judge,
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(json["thresholds"]["alpha"], 0.01);
    let items = json["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "GET /api/items/:id")
        .unwrap();
    assert!(items["findings"].as_array().unwrap().is_empty(), "{items}");
    // Overall still sees the +15 ms mean.
    assert_eq!(out.status.code(), Some(1), "{}", common::stdout(&out));
}

#[test]
fn a_bad_judge_file_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let [stable, canary] = write_observations(dir.path(), 0, 0);
    let judge = dir.path().join("strict.toml");
    std::fs::write(&judge, "alpha = 0.05\n\n[thresholds]\nerror_rate = -1\n").unwrap();
    let judge = judge.display().to_string();
    let out = common::run(&[
        "compare",
        &stable,
        &canary,
        "--baseline",
        "stable",
        "--candidate",
        "canary",
        "--judge",
        &judge,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = common::stderr(&out);
    assert!(err.contains("strict.toml:4:"), "{err}");
    assert!(err.contains("thresholds.error_rate"), "{err}");
    assert!(common::stdout(&out).is_empty(), "nothing half-written");

    let missing = common::run(&[
        "compare",
        &stable,
        &canary,
        "--baseline",
        "stable",
        "--candidate",
        "canary",
        "--judge",
        "/nonexistent/judge.toml",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(common::stderr(&missing).contains("/nonexistent/judge.toml"));
}

#[test]
fn calibrate_writes_a_judge_file_that_compare_reads() {
    let dir = tempfile::tempdir().unwrap();
    // An A/A run: both files are the same stable behaviour under two names.
    let [a, b] = write_observations(dir.path(), 0, 0);
    let text = std::fs::read_to_string(&b)
        .unwrap()
        .replace("\"target\":\"canary\"", "\"target\":\"stable-2\"");
    std::fs::write(&b, text).unwrap();
    let judge = dir.path().join("judge.toml").display().to_string();
    let out = common::run(&[
        "calibrate",
        &a,
        &b,
        "--baseline",
        "stable",
        "--noise",
        "stable-2",
        "--output",
        &judge,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let written = std::fs::read_to_string(&judge).unwrap();
    assert!(written.contains("[[routes]]"), "{written}");
    assert!(written.contains("pattern = \"GET /api/cart\""), "{written}");

    // The calibrated file judges a real regression as one.
    let [stable, canary] = write_observations(dir.path(), 30, 0);
    let out = common::run(&[
        "compare",
        &stable,
        &canary,
        "--baseline",
        "stable",
        "--candidate",
        "canary",
        "--judge",
        &judge,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stdout(&out));
}

#[test]
fn calibrate_refuses_bad_margin_and_unknown_targets() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b] = write_observations(dir.path(), 0, 0);
    let judge = dir.path().join("judge.toml").display().to_string();
    let out = common::run(&[
        "calibrate",
        &a,
        &b,
        "--baseline",
        "stable",
        "--noise",
        "nope",
        "--output",
        &judge,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("`nope`"),
        "{}",
        common::stderr(&out)
    );
    assert!(!std::path::Path::new(&judge).exists(), "nothing written");
    let out = common::run(&[
        "calibrate",
        &a,
        &b,
        "--baseline",
        "stable",
        "--noise",
        "canary",
        "--output",
        &judge,
        "--margin",
        "0.5",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_report_format_renders_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let [stable, canary] = write_observations(dir.path(), 30, 0);
    for (format, start) in [
        ("html", "<!DOCTYPE html>"),
        ("junit", "<?xml version=\"1.0\""),
        ("markdown", "## nprt: ❌ FAIL"),
        ("text", "FAIL: candidate canary"),
    ] {
        let out = common::run(&[
            "compare",
            &stable,
            &canary,
            "--baseline",
            "stable",
            "--candidate",
            "canary",
            "--format",
            format,
        ]);
        assert_eq!(out.status.code(), Some(1), "{format}");
        let text = common::stdout(&out);
        assert!(text.starts_with(start), "{format}: {text}");
        // Not a terminal here: no colour codes.
        assert!(!text.contains('\x1b'), "{format}");
    }
}

#[test]
fn sequential_mode_reports_when_it_would_have_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let [stable, canary] = write_observations(dir.path(), 30, 0);
    let out = common::run(&[
        "compare",
        &stable,
        &canary,
        "--baseline",
        "stable",
        "--candidate",
        "canary",
        "--sequential",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    let s = &json["sequential"];
    assert_eq!(s["decision"]["decision"], "fail", "{s}");
    assert!(s["pairs"].as_u64().unwrap() < 600, "{s}");
}

#[test]
fn noise_discounts_what_the_two_stables_share() {
    let dir = tempfile::tempdir().unwrap();
    // The canary is 3 ms slower on the items route, and so is the second stable.
    let [stable, canary] = write_observations(dir.path(), 3, 0);
    let noise = dir.path().join("noise.ndjson");
    let text = std::fs::read_to_string(&canary)
        .unwrap()
        .replace("\"target\":\"canary\"", "\"target\":\"stable-2\"");
    std::fs::write(&noise, text).unwrap();
    let noise = noise.display().to_string();
    let args = [
        "compare",
        &stable,
        &canary,
        &noise,
        "--baseline",
        "stable",
        "--candidate",
        "canary",
    ];
    let alone = common::run(&args);
    assert_eq!(alone.status.code(), Some(1), "{}", common::stdout(&alone));
    let mut with_noise = args.to_vec();
    with_noise.extend(["--noise", "stable-2", "--format", "json"]);
    let out = common::run(&with_noise);
    assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));
    let json: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    let items = json["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "GET /api/items/:id")
        .unwrap();
    let shift = items["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "latency_shift")
        .unwrap();
    // The stables differ by the same 3 ms; the limit rises above it (by 20%).
    assert_eq!(shift["noise"], 3.0, "{shift}");
    assert_eq!(shift["limit"], 3.6, "{shift}");
    assert_eq!(shift["outcome"], "pass");
    let info = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["metric"] == "latency_shift")
        .unwrap();
    assert_eq!(info["severity"], "info");
    assert!(
        info["message"]
            .as_str()
            .unwrap()
            .contains("within the noise between the two stables"),
        "{info}"
    );
}

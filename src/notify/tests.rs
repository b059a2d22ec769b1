//! The pure parts: message bodies, timestamps, `[notify]` and `--notify-url` checks.

use super::message::{self, rfc3339, CHAT_FINDINGS};
use super::spec::{parse_url_source, RawNotify, DEFAULT_TIMEOUT};
use super::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

fn finding(route: &str, message: &str) -> FindingLine {
    FindingLine {
        route: route.to_owned(),
        metric: "p99_latency".to_owned(),
        message: message.to_owned(),
    }
}

/// A failed verdict of the canary of `shop`, v7 against v6.
fn failed() -> Event {
    Event {
        kind: Kind::Verdict,
        outcome: "fail".to_owned(),
        error: None,
        run: "scenario demo".to_owned(),
        service: Some("shop".to_owned()),
        baseline: "stable".to_owned(),
        candidate: "canary".to_owned(),
        stable_version: Some("v6".to_owned()),
        canary_version: Some("v7".to_owned()),
        findings: vec![
            finding("GET /api/products/:id", "p99 latency 52.1 ms vs 20.3 ms"),
            finding("POST /orders", "5xx/no-response rate 3.00% vs 0.00%"),
        ],
        report: Some("/srv/reports".to_owned()),
        at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    }
}

#[test]
fn a_failed_verdict_in_slack_names_the_service_versions_findings_and_report() {
    let body = message::slack(&failed());
    assert_eq!(body.as_object().unwrap().len(), 1, "only `text`: {body}");
    let text = body["text"].as_str().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            ":x: nprt scenario demo: *FAIL* of `shop`: `canary` (`v7`) vs `stable` (`v6`)",
            "• `GET /api/products/:id`: p99 latency 52.1 ms vs 20.3 ms",
            "• `POST /orders`: 5xx/no-response rate 3.00% vs 0.00%",
            "Report: /srv/reports",
        ]
    );
}

#[test]
fn a_pass_without_deploy_is_one_headline() {
    let event = Event {
        outcome: "pass".to_owned(),
        service: None,
        stable_version: None,
        canary_version: None,
        findings: Vec::new(),
        report: None,
        ..failed()
    };
    assert_eq!(
        message::slack_text(&event),
        ":white_check_mark: nprt scenario demo: *PASS*: `canary` vs `stable`"
    );
    let inconclusive = Event {
        outcome: "inconclusive".to_owned(),
        ..event
    };
    assert!(message::slack_text(&inconclusive).starts_with(":grey_question: "));
}

#[test]
fn slack_text_is_escaped_and_code_spans_stay_closed() {
    let mut event = failed();
    event.findings = vec![finding("GET /a`b<c>", "p99 <b>&</b>\nsecond line")];
    let text = message::slack_text(&event);
    assert!(
        text.contains("• `GET /a'b&lt;c&gt;`: p99 &lt;b&gt;&amp;&lt;/b&gt; second line"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3, "one line per finding: {text}");
}

#[test]
fn long_lists_and_long_lines_are_cut() {
    let mut event = failed();
    event.findings = (0..25)
        .map(|i| finding(&format!("GET /r{i}"), &"x".repeat(1000)))
        .collect();
    let text = message::slack_text(&event);
    let bullets: Vec<&str> = text.lines().filter(|l| l.starts_with("• ")).collect();
    assert_eq!(bullets.len(), CHAT_FINDINGS + 1);
    assert_eq!(bullets[CHAT_FINDINGS], "• … and 15 more in the report");
    assert!(bullets[0].chars().count() < 330, "{}", bullets[0]);
    assert!(bullets[0].ends_with('…'));
    let json = message::json(&event);
    assert_eq!(json["findings"].as_array().unwrap().len(), 25);
    assert_eq!(json["findings_total"], 25);
}

#[test]
fn the_json_document_has_every_field_typed() {
    let doc = message::json(&failed());
    assert_eq!(doc["schema"], "nprt.notification/v1");
    assert_eq!(doc["event"], "verdict");
    assert_eq!(doc["outcome"], "fail");
    assert_eq!(doc["ok"], true);
    assert!(doc["error"].is_null());
    assert_eq!(doc["run"], "scenario demo");
    assert_eq!(doc["service"], "shop");
    assert_eq!(doc["baseline"], "stable");
    assert_eq!(doc["candidate"], "canary");
    assert_eq!(
        doc["versions"],
        serde_json::json!({"stable": "v6", "canary": "v7"})
    );
    assert_eq!(doc["findings"][1]["route"], "POST /orders");
    assert_eq!(doc["findings"][1]["metric"], "p99_latency");
    assert_eq!(doc["report"], "/srv/reports");
    assert_eq!(doc["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(
        doc["summary"],
        "nprt scenario demo: FAIL of shop: canary (v7) vs stable (v6)"
    );
    // The serialized body is the same document.
    let text = message::body(&failed(), Format::Json);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        doc
    );
}

#[test]
fn actions_say_what_was_done_and_why() {
    let rollback = Event::action(Kind::Rollback, "fail", None, "scenario demo").with_deploy(
        "shop",
        Versions {
            canary: Some("v7"),
            stable: None,
        },
    );
    assert_eq!(
        message::slack_text(&rollback),
        ":rewind: nprt scenario demo: rollback of the canary of `shop` (`v7`) done, after a *FAIL* verdict"
    );
    let doc = message::json(&rollback);
    assert_eq!(doc["event"], "rollback");
    assert_eq!(doc["outcome"], "fail");
    assert!(doc["baseline"].is_null() && doc["findings"] == serde_json::json!([]));

    let promotion = Event::action(Kind::Promotion, "pass", None, "scenario x");
    assert_eq!(
        message::slack_text(&promotion),
        ":rocket: nprt scenario x: promotion of the canary done, after a *PASS* verdict"
    );

    let failed = Event::action(
        Kind::Rollback,
        "error",
        Some("cannot reach the cluster:\n connection refused".to_owned()),
        "scenario demo",
    )
    .with_deploy("shop", Versions::default());
    let text = message::slack_text(&failed);
    assert!(
        text.starts_with(":warning: nprt scenario demo: rollback of the canary of `shop` *FAILED*, after the run broke off\n"),
        "{text}"
    );
    assert!(
        text.contains("> cannot reach the cluster: connection refused"),
        "{text}"
    );
    assert!(text.contains("`nprt rollback shop`"), "{text}");
    let doc = message::json(&failed);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["error"], "cannot reach the cluster: connection refused");
}

#[test]
fn an_event_from_a_verdict_keeps_only_failing_findings() {
    let verdict = crate::compare::tests::error_regression().verdict();
    let event = Event::verdict(&verdict, "shadow");
    assert_eq!(event.outcome, "fail");
    assert_eq!(
        (event.baseline.as_str(), event.candidate.as_str()),
        ("stable", "canary")
    );
    assert!(!event.findings.is_empty());
    let failing = verdict
        .findings
        .iter()
        .filter(|f| f.severity == crate::compare::rules::Severity::Fail)
        .count();
    assert_eq!(event.findings.len(), failing);
    assert!(event.findings.iter().any(|f| f.route == "GET /users/:id"));
    let passed = crate::compare::tests::same_distributions().verdict();
    assert!(Event::verdict(&passed, "shadow").findings.is_empty());
}

#[test]
fn deploy_outcomes_give_the_versions_and_reports_an_absolute_path() {
    let versions = Versions {
        canary: Some("v7"),
        stable: Some("v6"),
    };
    let event = Event::action(Kind::Promotion, "pass", None, "r").with_deploy("shop", versions);
    assert_eq!(event.canary_version.as_deref(), Some("v7"));
    assert_eq!(event.stable_version.as_deref(), Some("v6"));
    let event = event.with_report(Path::new("reports/x"));
    let report = PathBuf::from(event.report.unwrap());
    assert!(
        report.is_absolute() && report.ends_with("reports/x"),
        "{report:?}"
    );
}

#[test]
fn timestamps_are_utc_rfc3339() {
    let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
    assert_eq!(at(0), "1970-01-01T00:00:00Z");
    assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
}

fn raw(text: &str) -> Result<RawNotify, toml::de::Error> {
    toml::from_str(text)
}

fn check(text: &str) -> Result<Spec, NotifyError> {
    raw(text)
        .unwrap()
        .check(|_, v| Path::new("/scenarios").join(v))
}

#[test]
fn the_notify_table_is_checked_key_by_key() {
    let spec = check("url_env = \"SLACK_URL\"").unwrap();
    assert_eq!(spec.url, UrlSource::Env("SLACK_URL".into()));
    assert_eq!(spec.format, Format::Slack);
    assert_eq!(spec.timeout, DEFAULT_TIMEOUT);
    let spec = check("url_file = \"secret/url\"\nformat = \"json\"\ntimeout = \"2s\"").unwrap();
    assert_eq!(spec.url, UrlSource::File("/scenarios/secret/url".into()));
    assert_eq!(spec.format, Format::Json);
    assert_eq!(spec.timeout, Duration::from_secs(2));

    let field = |text: &str| check(text).unwrap_err().field;
    assert_eq!(field(""), "notify.url_env");
    assert_eq!(
        field("url_env = \"A\"\nurl_file = \"f\""),
        "notify.url_file"
    );
    assert_eq!(
        field("url_env = \"https://hooks.example/x\""),
        "notify.url_env"
    );
    assert_eq!(field("url_file = \" \""), "notify.url_file");
    assert_eq!(field("url_env = \"A\"\ntimeout = \"0s\""), "notify.timeout");
    assert_eq!(
        field("url_env = \"A\"\ntimeout = \"soon\""),
        "notify.timeout"
    );
    let e = check("url_env = \"https://hooks.example/T0/B0/s3cret\"").unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");

    assert!(raw("url = \"https://hooks.example\"")
        .unwrap_err()
        .to_string()
        .contains("unknown field"));
    assert!(raw("url_env = \"A\"\nformat = \"teams\"").is_err());
}

#[test]
fn the_url_is_read_from_the_environment_or_a_file_and_never_quoted() {
    let unset = UrlSource::Env("NPRT_NOTIFY_TEST_SURELY_UNSET_4711".into());
    assert_eq!(
        unset.read().unwrap_err(),
        "environment variable NPRT_NOTIFY_TEST_SURELY_UNSET_4711 is not set"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    std::fs::write(&file, "  https://hooks.example/services/T0/B0/s3cret \n").unwrap();
    let url = UrlSource::File(file.clone()).read().unwrap();
    assert_eq!(url.host(), Some("hooks.example"));
    assert_eq!(url.path(), "/services/T0/B0/s3cret");

    std::fs::write(&file, "hooks.example/services/s3cret").unwrap();
    let e = UrlSource::File(file.clone()).read().unwrap_err();
    assert!(
        e.contains("http:// or https://") && !e.contains("s3cret"),
        "{e}"
    );
    std::fs::write(&file, "\n").unwrap();
    assert!(UrlSource::File(file.clone())
        .read()
        .unwrap_err()
        .ends_with("is empty"));
    let missing = UrlSource::File(dir.path().join("absent"));
    assert!(missing.read().unwrap_err().starts_with("cannot read "));
}

#[test]
fn the_command_line_takes_env_or_file_and_refuses_a_literal_url() {
    assert_eq!(
        parse_url_source("env:SLACK_URL").unwrap(),
        UrlSource::Env("SLACK_URL".into())
    );
    assert_eq!(
        parse_url_source("file:/run/secrets/url").unwrap(),
        UrlSource::File("/run/secrets/url".into())
    );
    for literal in [
        "https://hooks.slack.com/services/T0/B0/s3cret",
        "HTTP://chat.example/hooks/s3cret",
        "hooks.slack.com/services/s3cret",
    ] {
        let e = parse_url_source(literal).unwrap_err();
        assert!(e.contains("env:NAME") && e.contains("file:PATH"), "{e}");
        assert!(!e.contains("s3cret"), "the URL is never echoed: {e}");
    }
    assert!(parse_url_source("env:9lives").is_err());
    assert!(parse_url_source("file:").is_err());
}

#[test]
fn a_notifier_shows_its_host_only() {
    let url: hyper::Uri = "https://hooks.example/services/s3cret".parse().unwrap();
    let n = Notifier::new(url, Format::Slack, DEFAULT_TIMEOUT).unwrap();
    assert_eq!(n.host(), "hooks.example");
    let shown = format!("{n:?}");
    assert!(
        shown.contains("hooks.example") && !shown.contains("s3cret"),
        "{shown}"
    );
    assert_eq!(n.counts(), (0, 0));
}

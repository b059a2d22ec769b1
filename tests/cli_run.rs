//! `nprt run`: scenario files end to end with the real binary — the demo scenario with its
//! in-process testbeds, scenario errors (exit 2 naming the file and field), every bundled
//! scenario checked, and canary scenarios against a fake Kubernetes API on loopback: a
//! regressed canary rolled back, a healthy one promoted, Ctrl-C rolling back.

mod common;
mod deploy_fake;

use common::{run, stderr, stdout};
use deploy_fake::{Controller, Fake};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn report_files() -> [&'static str; 7] {
    nprt::scenario::REPORT_FILES
}

#[test]
fn the_demo_scenario_finds_the_regression_and_writes_every_report() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    let set = format!("report.dir={}", reports.display());
    let demo = repo_path("scenarios/demo.toml");
    let out = run(&["run", demo.to_str().unwrap(), "--set", &set, "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("FAIL: candidate canary vs baseline stable"),
        "{text}"
    );
    assert!(text.contains("GET /api/products/:id"), "{text}");
    assert!(text.contains("scenario demo ("), "{text}");
    assert!(text.contains("time to verdict"), "{text}");
    for name in report_files()
        .iter()
        .chain(&["observations.ndjson", "summary.json"])
    {
        let path = reports.join(name);
        let len = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert!(len > 0, "{} is empty", path.display());
    }
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("scenario.json")).unwrap())
            .unwrap();
    assert_eq!(record["verdict"], "fail");
    assert_eq!(record["exit"], 1);
    assert_eq!(record["action"], json!({"on": "fail", "action": "report"}));
    assert!(record["timing_ms"]["to_verdict_ms"].as_u64().unwrap() > 0);
    assert!(record["timing_ms"]["to_deploy_ms"].is_null());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["verdict"], "fail");
    assert_eq!(report["overall"]["candidate"]["requests"], 3000);
    let observations = std::fs::read_to_string(reports.join("observations.ndjson")).unwrap();
    assert_eq!(observations.lines().count(), 6000);
    // Nothing half-written beside the reports.
    for entry in std::fs::read_dir(&reports).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            !name.to_string_lossy().starts_with(".nprt-"),
            "{name:?} left behind"
        );
    }
}

#[test]
fn every_bundled_scenario_is_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_path("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let out = run(&["run", "--check", path.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            path.display(),
            stderr(&out)
        );
        assert!(stdout(&out).contains(": valid"), "{}", stdout(&out));
        checked += 1;
    }
    assert!(checked >= 4, "{checked} scenarios");
    for config in std::fs::read_dir(repo_path("scenarios/config")).unwrap() {
        let path = config.unwrap().path();
        nprt::deploy::DeployConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A scenario that replays `limit` exchanges of the demo recording to two testbeds.
fn scenario(canary_extra: &str, rest: &str) -> String {
    format!(
        r#"{rest}
[source]
kind = "recording"
recording = "{rec}"

[replay]
max = true
concurrency = 4
limit = 300
methods = "all"
timeout = "20s"

[[testbeds]]
name = "stable"
latency = "1ms"

[[testbeds]]
name = "canary"
latency = "1ms"
{canary_extra}

[report]
dir = "reports"
"#,
        rec = common::demo_recording().display()
    )
}

#[test]
fn scenario_errors_exit_2_naming_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.toml", &scenario("", ""));
    let bad_text = scenario("", "").replace("limit = 300", "limit = 300\nspeeed = 2.0");
    let line = bad_text
        .lines()
        .position(|l| l.starts_with("speeed"))
        .unwrap()
        + 1;
    let bad = write(dir.path(), "bad.toml", &bad_text);
    let out = run(&["run", &bad]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("bad.toml:{line}:1: replay.speeed: unknown field")),
        "{err}"
    );

    let out = run(&["run", &good, "--set", "replay.concurrency=0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("good.toml: replay.concurrency (from --set): must be at least 1"),
        "{err}"
    );

    let out = run(&["run", &good, "--set", "testbeds.1.error_rate=\"lots\""]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("testbeds.1.error_rate"),
        "{}",
        stderr(&out)
    );

    let out = run(&["run", &good, "--set", "source.recording=missing.gor"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("source.recording") && err.contains("missing.gor"),
        "{err}"
    );

    let out = run(&["run", &good, "--set", "judge.file=nope.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("judge.file"), "{}", stderr(&out));

    let out = run(&["run", &good, "--set", "no-equals-sign"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--set"), "{}", stderr(&out));

    let out = run(&["run", &dir.path().join("absent.toml").display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("absent.toml"), "{}", stderr(&out));

    // Nothing ran, so nothing was written.
    assert!(!dir.path().join("reports").exists());
}

/// Users' requests through the proxy on `port`, one connection each, until `child` (the run)
/// ends or `limit` passes; returns how many were answered. Every answer is the primary's.
fn users_until_exit(port: u16, child: &mut std::process::Child, limit: Duration) -> usize {
    use std::io::{Read, Write};
    let deadline = Instant::now() + limit;
    let mut answered = 0;
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = s.write_all(b"GET /api/items/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        // Empty only when the proxy stopped between the connect and the request.
        if !answer.is_empty() {
            assert!(
                answer.starts_with(b"HTTP/1.1 200"),
                "users get the primary's answers"
            );
            answered += 1;
        }
    }
    answered
}

#[test]
fn a_shadow_scenario_judges_live_traffic_through_the_proxy() {
    let primary = common::Testbed::start(&[]);
    let canary = common::Testbed::start(&["--error-rate", "0.5"]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "shadow.toml",
        &format!(
            "[source]\nkind = \"shadow\"\n[shadow]\nlisten = \"127.0.0.1:{port}\"\nprimary = \"{}\"\nshadow = \"{}\"\nduration = \"5s\"\n[report]\ndir = \"r\"\n",
            primary.url, canary.url
        ),
    );
    let mut child = common::nprt()
        .args(["run", &file])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let answered = users_until_exit(port, &mut child, Duration::from_secs(20));
    // Users were served throughout; the run ends the moment the live judge fails the shadow
    // (after a handful of pairs at 50% errors, how many depends on the draws), long before
    // its 5 s.
    assert!(answered >= 5, "the proxy answered {answered}");
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the broken shadow regressed: {err}"
    );
    assert!(err.contains("mirrored"), "{err}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["verdict"], "fail");
}

#[test]
fn the_deploy_api_needs_its_token_and_a_reachable_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = write(
        dir.path(),
        "server.toml",
        &(scenario("", "")
            + "\n[deploy]\nservice = \"shop\"\nserver = \"http://127.0.0.1:9\"\ntoken_env = \"NPRT_TEST_TOKEN\"\n"),
    );
    let out = common::nprt()
        .args(["run", &server])
        .env_remove("NPRT_TEST_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("NPRT_TEST_TOKEN"), "{}", stderr(&out));
    let out = common::nprt()
        .args(["run", &server])
        .env("NPRT_TEST_TOKEN", "s3cr3t-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot reach the deploy API"), "{err}");
    assert!(
        !err.contains("s3cr3t-token"),
        "the token never shows: {err}"
    );
}

// ---- canary scenarios against a fake Kubernetes API server ----

/// A git repository holding the example app's manifests, a deploy.toml for it, and a fake
/// cluster; returns the scenario's `[deploy]` section.
fn canary_setup(dir: &Path) -> (Fake, String) {
    deploy_fake::example_repo(dir);
    let repo = dir.join("repo");
    write(
        dir,
        "deploy.toml",
        &format!("[services.example]\nrepository = \"{}\"\n", repo.display()),
    );
    let deploy = "\n[deploy]\nconfig = \"deploy.toml\"\nservice = \"example\"\ntag = \"v7\"\nskip_image_check = true\ntimeout = \"20s\"\n";
    (Fake::start(Controller::Healthy), deploy.to_owned())
}

/// `nprt run SCENARIO --quiet EXTRA...` against the fake cluster.
fn run_command(fake: &Fake, dir: &Path, scenario: &str, extra: &[&str]) -> std::process::Command {
    let mut command = common::nprt();
    command
        .args(["run", scenario, "--quiet"])
        .args(extra)
        .env("KUBECONFIG", fake.kubeconfig(dir))
        .env("NPRT_CACHE_DIR", dir.join("cache"));
    command
}

fn run_against(fake: &Fake, dir: &Path, scenario: &str, extra: &[&str]) -> std::process::Output {
    run_command(fake, dir, scenario, extra).output().unwrap()
}

/// The same, running in the background with its output piped.
fn spawn_against(fake: &Fake, dir: &Path, scenario: &str, extra: &[&str]) -> std::process::Child {
    run_command(fake, dir, scenario, extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn record(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("reports/scenario.json")).unwrap())
        .unwrap()
}

#[test]
fn a_regressed_canary_is_deployed_judged_and_rolled_back() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let (fake, deploy) = canary_setup(dir.path());
    let file = write(
        dir.path(),
        "s.toml",
        &(scenario(
            "error_rate = 0.5",
            "on_pass = \"promote\"\non_fail = \"rollback\"",
        ) + &deploy),
    );
    let out = run_against(&fake, dir.path(), &file, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = record(dir.path());
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["deploy"]["version"], "v7");
    assert_eq!(r["action"]["action"], "rollback");
    assert_eq!(
        r["action"]["outcome"]["deleted"],
        json!(["Deployment/web-canary", "Service/web-canary"])
    );
    let t = &r["timing_ms"];
    let (deployed, judged, rolled_back) = (
        t["to_deploy_ms"].as_u64().unwrap(),
        t["to_verdict_ms"].as_u64().unwrap(),
        t["to_rollback_ms"].as_u64().unwrap(),
    );
    assert!(deployed <= judged && judged <= rolled_back, "{t}");
    let text = stdout(&out);
    eprintln!("{}", &text[text.find("\nscenario ").unwrap_or(0)..]);
    assert!(fake.get("default/deployments/web-canary").is_none());
    assert!(fake.get("default/services/web-canary").is_none());
    assert!(
        stdout(&out).contains("action            rollback (on fail)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_healthy_canary_is_promoted() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let (fake, deploy) = canary_setup(dir.path());
    // Generous limits: the two testbeds are the same, and a loaded test machine must not turn
    // scheduling noise into a regression.
    write(
        dir.path(),
        "judge.toml",
        "[thresholds]\nerror_rate = 0.2\np99 = { relative = 10.0, absolute_ms = 5000.0 }\nshift = { relative = 10.0, absolute_ms = 5000.0 }\ndistribution = 0.9\n",
    );
    let file = write(
        dir.path(),
        "s.toml",
        &(scenario("", "on_pass = \"promote\"\non_fail = \"rollback\"")
            + &deploy
            + "\n[judge]\nfile = \"judge.toml\"\n"),
    );
    let out = run_against(&fake, dir.path(), &file, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stderr(&out),
        stdout(&out)
    );
    let r = record(dir.path());
    assert_eq!(r["action"]["action"], "promote");
    assert_eq!(r["action"]["outcome"]["promoted"], "v7");
    assert!(r["timing_ms"]["to_promote_ms"].as_u64().is_some());
    let web = fake.get("default/deployments/web").expect("web is stable");
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example:5000/shop/web:v7"
    );
    assert!(fake.get("default/deployments/web-canary").is_none());
}

fn interrupt_after_deploy(rollback_on_interrupt: bool) -> (std::process::Output, Fake) {
    let dir = tempfile::tempdir().unwrap();
    let (fake, deploy) = canary_setup(dir.path());
    // A slow replay: the interrupt comes while the traffic flows.
    let text = (scenario("", "on_fail = \"rollback\"") + &deploy)
        .replace("max = true\n", "rate = 20\n")
        .replace("limit = 300", "limit = 3000");
    let file = write(dir.path(), "s.toml", &text);
    let flag = format!("deploy.rollback_on_interrupt={rollback_on_interrupt}");
    let child = spawn_against(&fake, dir.path(), &file, &["--set", &flag]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.get("default/deployments/web-canary").is_none() {
        assert!(Instant::now() < deadline, "the canary was never deployed");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signalling the child this test spawned.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    (child.wait_with_output().unwrap(), fake)
}

#[test]
fn an_interrupt_rolls_back_the_canary_unless_told_not_to() {
    let _serial = common::serial();
    let started = Instant::now();
    // Interrupted before a verdict: inconclusive (3), not a target's failure (4).
    let (out, fake) = interrupt_after_deploy(true);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("interrupted; the canary of example was rolled back"),
        "{err}"
    );
    assert!(fake.get("default/deployments/web-canary").is_none());
    assert!(fake.get("default/services/web-canary").is_none());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "stopped promptly"
    );

    let (out, fake) = interrupt_after_deploy(false);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("left running (rollback_on_interrupt = false)"),
        "{err}"
    );
    assert!(fake.get("default/deployments/web-canary").is_some());
}

#[test]
fn the_ci_example_runs_the_gate_and_publishes_its_reports() {
    let text = std::fs::read_to_string(repo_path(".github/workflows/nprt-gate.yml")).unwrap();
    let workflow: Value = serde_saphyr::from_str(&text).unwrap();
    let steps = workflow["jobs"]["gate"]["steps"].as_array().unwrap();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no step {name}"))
    };
    let gate = step("Gate")["run"].as_str().unwrap();
    assert!(
        gate.contains("nprt run scenarios/ci-gate.toml --set \"report.dir=$RUNNER_TEMP/nprt\""),
        "{gate}"
    );
    let summary = step("Job summary")["run"].as_str().unwrap();
    assert!(summary.contains("report.md") && summary.contains("$GITHUB_STEP_SUMMARY"));
    assert_eq!(step("Job summary")["if"], "always()");
    assert_eq!(
        step("Test report")["with"]["report_paths"],
        "${{ runner.temp }}/nprt/junit.xml"
    );

    // The gate itself, with a candidate that fails half its requests: exit 1 and the files
    // the workflow publishes.
    let _serial = common::serial();
    let stable = common::Testbed::start(&["--latency", "1ms"]);
    let canary = common::Testbed::start(&["--latency", "1ms", "--error-rate", "0.5"]);
    let dir = tempfile::tempdir().unwrap();
    let ci_gate = repo_path("scenarios/ci-gate.toml");
    let out = run(&[
        "run",
        ci_gate.to_str().unwrap(),
        "--quiet",
        "--set",
        &format!("report.dir={}", dir.path().display()),
        "--set",
        &format!("targets.stable={}", stable.url),
        "--set",
        &format!("targets.canary={}", canary.url),
        "--set",
        "replay.limit=400",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for name in ["scenario.md", "report.md", "junit.xml"] {
        assert!(dir.path().join(name).is_file(), "{name}");
    }
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
    let md = std::fs::read_to_string(dir.path().join("scenario.md")).unwrap();
    assert!(md.contains("## nprt scenario `ci-gate`: FAIL"), "{md}");
}

#[test]
fn an_unreachable_canary_is_rolled_back_and_the_run_exits_4() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let (fake, deploy) = canary_setup(dir.path());
    // The canary's URL answers nothing: no verdict to trust, so on_inconclusive (= on_fail).
    let text = scenario("", "on_fail = \"rollback\"").replace(
        "[[testbeds]]\nname = \"canary\"\nlatency = \"1ms\"\n",
        &format!("[targets]\ncanary = \"{}\"\n", common::closed_port_url()),
    ) + &deploy;
    let file = write(dir.path(), "s.toml", &text);
    let out = run_against(&fake, dir.path(), &file, &["--set", "replay.limit=50"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no request reached canary"),
        "{}",
        stderr(&out)
    );
    let r = record(dir.path());
    assert_eq!(r["action"]["on"], "unreachable");
    assert_eq!(r["action"]["action"], "rollback");
    assert!(fake.get("default/deployments/web-canary").is_none());
}

/// A live scenario (the shadow proxy, 120 s at most) with a canary deployed on the fake
/// cluster, users' requests until it ends: its output, how long it took, and scenario.json.
/// The run must end when the live judge decides, long before its duration, and act within a
/// second of the decision.
fn live_scenario(canary_args: &[&str]) -> (std::process::Output, Value, Fake) {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let (fake, deploy) = canary_setup(dir.path());
    let primary = common::Testbed::start(&["--latency", "1ms"]);
    let canary = common::Testbed::start(canary_args);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let file = write(
        dir.path(),
        "live.toml",
        &(format!(
            "on_pass = \"promote\"\non_fail = \"rollback\"\n[source]\nkind = \"shadow\"\n[shadow]\nlisten = \"127.0.0.1:{port}\"\nprimary = \"{}\"\nshadow = \"{}\"\nduration = \"120s\"\n[report]\ndir = \"reports\"\n",
            primary.url, canary.url
        ) + &deploy),
    );
    let started = Instant::now();
    let mut child = spawn_against(&fake, dir.path(), &file, &[]);
    users_until_exit(port, &mut child, Duration::from_secs(80));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(80),
        "the run ended at the verdict, not after its 120 s: {took:?}\n{}",
        stderr(&out)
    );
    let r = record(dir.path());
    let t = &r["timing_ms"];
    let start = t["action_start_after_verdict_ms"].as_u64().expect("timed");
    assert!(
        start < 1000,
        "the action started {start} ms after the verdict"
    );
    let verdict = t["verdict_after_first_mirror_ms"].as_u64().expect("timed");
    let done = t["action_after_first_mirror_ms"].as_u64().expect("timed");
    assert!(verdict <= done, "{t}");
    (out, r, fake)
}

#[test]
fn a_live_fail_rolls_the_canary_back_at_once_not_at_the_end_of_duration() {
    let (out, r, fake) = live_scenario(&["--latency", "1ms", "--error-rate", "0.5"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["action"]["action"], "rollback");
    assert!(fake.get("default/deployments/web-canary").is_none());
}

#[test]
fn a_live_pass_promotes_the_canary_at_once() {
    let (out, r, _fake) = live_scenario(&["--latency", "1ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("sequential judge: pass after"),
        "{}",
        stdout(&out)
    );
    assert_eq!(r["verdict"], "pass");
    assert_eq!(r["action"]["action"], "promote");
}

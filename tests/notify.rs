//! Notifications with the real binary: a scenario's verdict and rollback posted to a webhook
//! on loopback that records what it gets (Slack-shaped and generic JSON bodies), webhooks
//! that fail or hang leaving the verdict and the exit code alone, the live judge's fail of
//! `nprt shadow` told at once, and the URL accepted only from the environment or a file.

mod common;
mod deploy_fake;

use bytes::Bytes;
use common::{run, stderr, stdout};
use deploy_fake::{Controller, Fake};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The secret part of every webhook URL here: it must never show in a log or an error.
const SECRET: &str = "/services/T000/B000/s3cretT0ken";

/// How the test webhook answers.
#[derive(Clone, Copy)]
enum Answer {
    Ok,
    Status(u16),
    /// Takes the request and never answers.
    Hang,
}

struct Post {
    path: String,
    content_type: String,
    body: String,
}

/// A webhook on loopback recording every request.
struct Webhook {
    url: String,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl Webhook {
    fn start(answer: Answer) -> Webhook {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}{SECRET}", listener.local_addr().unwrap());
        let posts = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&posts);
        deploy_fake::serve_http(listener, move |req: hyper::Request<_>| {
            let seen = Arc::clone(&seen);
            async move {
                let path = req.uri().path().to_owned();
                let content_type = req
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let body = req.into_body().collect().await.unwrap().to_bytes();
                seen.lock().unwrap().push(Post {
                    path,
                    content_type,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let status = match answer {
                    Answer::Ok => 200,
                    Answer::Status(s) => s,
                    Answer::Hang => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        200
                    }
                };
                let mut response = hyper::Response::new(Full::new(Bytes::from("ok")));
                *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                response
            }
        });
        Webhook { url, posts }
    }

    /// The bodies received, as JSON, after checking every request went to the webhook's path
    /// as JSON.
    fn bodies(&self) -> Vec<Value> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .map(|p| {
                assert_eq!(p.path, SECRET);
                assert_eq!(p.content_type, "application/json");
                serde_json::from_str(&p.body).unwrap_or_else(|e| panic!("{e}: {}", p.body))
            })
            .collect()
    }

    fn count(&self) -> usize {
        self.posts.lock().unwrap().len()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A replay of the demo recording to a stable testbed and a canary that fails half of
/// `GET /api/products/:id`, with `notify` as its `[notify]` table.
fn regressed_scenario(rest: &str, notify: &str) -> String {
    format!(
        r#"name = "shop-gate"
{rest}
[source]
kind = "recording"
recording = "{rec}"

[replay]
max = true
concurrency = 4
limit = 400
methods = "all"
timeout = "20s"

[[testbeds]]
name = "stable"

[[testbeds]]
name = "canary"
route_error_rate = ["/api/products/:id=0.5"]

[report]
dir = "reports"

[notify]
{notify}
"#,
        rec = common::demo_recording().display()
    )
}

const ROUTE: &str = "GET /api/products/:id";
const ENV: &str = "NPRT_TEST_WEBHOOK_URL";

/// `nprt run FILE --quiet` with the webhook's URL in [`ENV`].
fn run_scenario(file: &str, url: &str) -> std::process::Output {
    common::nprt()
        .args(["run", file, "--quiet"])
        .env(ENV, url)
        .output()
        .unwrap()
}

fn record(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("reports/scenario.json")).unwrap())
        .unwrap()
}

#[test]
fn a_regressed_canary_posts_one_slack_message_naming_the_failing_route() {
    let _serial = common::serial();
    let hook = Webhook::start(Answer::Ok);
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.toml",
        &regressed_scenario("", &format!("url_env = \"{ENV}\"")),
    );
    let out = run_scenario(&file, &hook.url);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "one verdict, no action: {bodies:?}");
    let body = &bodies[0];
    assert_eq!(body.as_object().unwrap().len(), 1, "Slack's shape: {body}");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with(":x: nprt scenario shop-gate: *FAIL*: `canary` vs `stable`\n"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("• `{ROUTE}`: ")))
        .unwrap_or_else(|| panic!("no line for {ROUTE}: {text}"));
    assert!(line.contains("5xx/no-response rate"), "{line}");
    let reports = dir.path().join("reports");
    assert!(
        text.ends_with(&format!("\nReport: {}", reports.display())),
        "{text}"
    );
    assert_eq!(
        record(dir.path())["notifications"],
        json!({"host": "127.0.0.1", "sent": 1, "failed": 0})
    );
}

#[test]
fn the_json_format_posts_a_document_with_parseable_fields() {
    let _serial = common::serial();
    let hook = Webhook::start(Answer::Ok);
    let dir = tempfile::tempdir().unwrap();
    // The URL in a file, as a mounted secret would be, with its trailing newline.
    write(dir.path(), "webhook-url", &format!("{}\n", hook.url));
    let file = write(
        dir.path(),
        "s.toml",
        &regressed_scenario("", "url_file = \"webhook-url\"\nformat = \"json\""),
    );
    let out = common::nprt()
        .args(["run", &file, "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let doc = &bodies[0];
    assert_eq!(doc["schema"], "nprt.notification/v1");
    assert_eq!(doc["event"], "verdict");
    assert_eq!(doc["outcome"], "fail");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["run"], "scenario shop-gate");
    assert_eq!(
        (&doc["baseline"], &doc["candidate"]),
        (&json!("stable"), &json!("canary"))
    );
    assert!(doc["service"].is_null());
    assert_eq!(doc["versions"], json!({"stable": null, "canary": null}));
    let findings = doc["findings"].as_array().unwrap();
    assert_eq!(doc["findings_total"], findings.len());
    let on_route = findings
        .iter()
        .find(|f| f["route"] == ROUTE)
        .unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(on_route["metric"], "failure_rate");
    assert!(on_route["message"].as_str().unwrap().contains("5xx"));
    let reports = dir.path().join("reports");
    assert_eq!(doc["report"], reports.display().to_string());
    let at = doc["timestamp"].as_str().unwrap();
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    // The report it points to says the same.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["verdict"], doc["outcome"]);
}

#[test]
fn a_failing_webhook_changes_neither_the_verdict_nor_the_exit_code() {
    let _serial = common::serial();
    let refusing = Webhook::start(Answer::Status(500));
    let hanging = Webhook::start(Answer::Hang);
    let closed = format!("{}{SECRET}", common::closed_port_url());
    for (url, why) in [
        (refusing.url.as_str(), "500 Internal Server Error"),
        (hanging.url.as_str(), "no answer within 1s"),
        (closed.as_str(), "onnection refused"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "s.toml",
            &regressed_scenario("", &format!("url_env = \"{ENV}\"\ntimeout = \"1s\"")),
        );
        let started = Instant::now();
        let out = run_scenario(&file, url);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "the verdict stands: {err}");
        assert!(
            stdout(&out).starts_with("FAIL: candidate canary vs baseline stable"),
            "{}",
            stdout(&out)
        );
        let warning = err
            .lines()
            .find(|l| l.contains("WARN") && l.contains("notification not delivered"))
            .unwrap_or_else(|| panic!("no warning: {err}"));
        assert!(warning.contains(why), "{warning}");
        assert!(warning.contains("127.0.0.1"), "names the host: {warning}");
        assert!(!err.contains("s3cret"), "never the URL: {err}");
        let r = record(dir.path());
        assert_eq!(r["verdict"], "fail");
        assert_eq!(r["exit"], 1);
        assert_eq!(r["notifications"]["failed"], 1, "{r}");
        assert_eq!(r["notifications"]["sent"], 0, "{r}");
        assert!(started.elapsed() < Duration::from_secs(60));
    }
    assert_eq!(refusing.count(), 1);
    assert_eq!(hanging.count(), 1);
}

#[test]
fn the_url_is_never_taken_inline() {
    let dir = tempfile::tempdir().unwrap();
    let literal = "https://hooks.slack.com/services/T000/B000/s3cretT0ken";
    for command in ["shadow", "mirror"] {
        let mut args = vec![command, "--shadow", "http://127.0.0.1:9"];
        args.extend_from_slice(match command {
            "shadow" => &["--listen", "127.0.0.1:0", "--primary", "http://127.0.0.1:9"][..],
            _ => &["--interface", "lo", "--port", "9", "--duration", "1s"],
        });
        for (url, expected) in [
            (literal, "carries its token"),
            (
                "env:NPRT_TEST_NOTIFY_SURELY_UNSET",
                "environment variable NPRT_TEST_NOTIFY_SURELY_UNSET is not set",
            ),
            (
                "hooks.slack.com/services/s3cret",
                "expected env:NAME or file:PATH",
            ),
        ] {
            let mut all = args.clone();
            all.extend(["--notify-url", url]);
            let out = run(&all);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{command} {url}: {err}");
            assert!(
                err.contains("--notify-url") && err.contains(expected),
                "{err}"
            );
            assert!(!err.contains("s3cret"), "the URL is not echoed: {err}");
        }
    }
    assert!(stdout(&run(&["shadow", "--help"])).contains("--notify-url <env:NAME|file:PATH>"));

    // A scenario names a variable or a file, and both are read before anything runs.
    let file = write(
        dir.path(),
        "s.toml",
        &regressed_scenario("", "url_env = \"NPRT_TEST_NOTIFY_SURELY_UNSET\""),
    );
    for extra in [&["--check"][..], &[]] {
        let out = common::nprt()
            .args(["run", &file])
            .args(extra)
            .env_remove("NPRT_TEST_NOTIFY_SURELY_UNSET")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(
                ": notify.url_env: environment variable NPRT_TEST_NOTIFY_SURELY_UNSET is not set"
            ),
            "{err}"
        );
    }
    assert!(!dir.path().join("reports").exists(), "nothing ran");
    let inline = regressed_scenario("", &format!("url = \"{literal}\""));
    let out = run(&["run", &write(dir.path(), "inline.toml", &inline)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("notify.url: unknown field"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("s3cret"), "{}", stderr(&out));
    let out = run(&[
        "run",
        &write(
            dir.path(),
            "f.toml",
            &regressed_scenario("", "url_file = \"absent\""),
        ),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("notify.url_file: cannot read "),
        "{}",
        stderr(&out)
    );
    // --check shows where the URL comes from, not the URL.
    let out = common::nprt()
        .args(["run", "--check", &file])
        .env("NPRT_TEST_NOTIFY_SURELY_UNSET", literal)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "notify     slack webhook, URL from $NPRT_TEST_NOTIFY_SURELY_UNSET, timeout 5s"
        ),
        "{}",
        stdout(&out)
    );
}

/// Users' requests through the proxy at `url` until `done` or `limit` passes.
fn users_until(url: &str, limit: Duration, done: impl Fn() -> bool) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && !done() {
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = s.write_all(b"GET /api/items/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let _ = s.read_to_end(&mut Vec::new());
    }
}

#[test]
fn the_shadow_proxy_tells_the_live_judges_fail_at_once_and_only_once() {
    let _serial = common::serial();
    let hook = Webhook::start(Answer::Ok);
    let dir = tempfile::tempdir().unwrap();
    let url_file = write(dir.path(), "url", &hook.url);
    let primary = common::Testbed::start(&[]);
    let canary = common::Testbed::start(&["--error-rate", "0.5"]);
    let notify = format!("file:{url_file}");
    let reports = dir.path().join("reports");
    let proxy = common::Shadow::start(
        &primary.url,
        &canary.url,
        &[
            "--notify-url",
            &notify,
            "--notify-format",
            "json",
            "--report",
            reports.to_str().unwrap(),
        ],
    );
    // The message comes while the proxy still runs (it serves users until stopped).
    users_until(&proxy.url, Duration::from_secs(30), || hook.count() > 0);
    assert_eq!(hook.count(), 1, "the live judge's fail was told");
    users_until(&proxy.url, Duration::from_millis(500), || false);
    let (code, out, err) = proxy.stop();
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("FAIL"), "{out}");
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "one verdict message per run: {bodies:?}");
    let doc = &bodies[0];
    assert_eq!(
        (&doc["event"], &doc["outcome"]),
        (&json!("verdict"), &json!("fail"))
    );
    assert_eq!(doc["run"], "shadow");
    assert_eq!(
        (&doc["baseline"], &doc["candidate"]),
        (&json!("primary"), &json!("shadow"))
    );
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["metric"] == "sequential" || f["metric"] == "failure_rate"),
        "{doc}"
    );
    assert_eq!(doc["report"], reports.display().to_string());
}

#[test]
fn a_rollback_is_told_after_the_verdict() {
    let _serial = common::serial();
    let hook = Webhook::start(Answer::Ok);
    let dir = tempfile::tempdir().unwrap();
    deploy_fake::example_repo(dir.path());
    write(
        dir.path(),
        "deploy.toml",
        &format!(
            "[services.example]\nrepository = \"{}\"\n",
            dir.path().join("repo").display()
        ),
    );
    let deploy = "\n[deploy]\nconfig = \"deploy.toml\"\nservice = \"example\"\ntag = \"v7\"\nskip_image_check = true\ntimeout = \"20s\"\n";
    let file = write(
        dir.path(),
        "s.toml",
        &(regressed_scenario("on_fail = \"rollback\"", &format!("url_env = \"{ENV}\"")) + deploy),
    );
    let fake = Fake::start(Controller::Healthy);
    let out = common::nprt()
        .args(["run", &file, "--quiet"])
        .env(ENV, &hook.url)
        .env("KUBECONFIG", fake.kubeconfig(dir.path()))
        .env("NPRT_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(fake.get("default/deployments/web-canary").is_none());
    let texts: Vec<String> = hook
        .bodies()
        .iter()
        .map(|b| b["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), 2, "the verdict and the rollback: {texts:?}");
    let verdict = texts
        .iter()
        .find(|t| t.starts_with(":x: "))
        .expect("the verdict");
    assert!(
        verdict.starts_with(
            ":x: nprt scenario shop-gate: *FAIL* of `example`: `canary` (`v7`) vs `stable`\n"
        ),
        "{verdict}"
    );
    assert!(verdict.contains(&format!("• `{ROUTE}`: ")), "{verdict}");
    let rollback = texts
        .iter()
        .find(|t| t.starts_with(":rewind: "))
        .expect("the rollback");
    assert!(
        rollback.starts_with(
            ":rewind: nprt scenario shop-gate: rollback of the canary of `example` (`v7`) done, after a *FAIL* verdict\n"
        ),
        "{rollback}"
    );
    assert_eq!(record(dir.path())["notifications"]["sent"], 2);
}

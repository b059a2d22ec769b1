//! Client mode: `nprt serve` runs against the fake Kubernetes API (`deploy_fake`) and the CLI
//! drives it with `--server`, as a CI job would; plus the API under attack (rate-limited
//! authentication failures, bounded bodies, TLS, no token in any output).

mod common;
mod deploy_fake;

use bytes::Bytes;
use deploy_fake::{serve, Controller, Fake};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

const TOKEN: &str = "example-token-3f9a1c77d2";
const OTHER_TOKEN: &str = "other-token-88e02b5c41";

/// A deploy.toml with services `example` and `other` (both the example app), tokens in files.
fn setup(dir: &Path) -> (PathBuf, String) {
    let commit = deploy_fake::example_repo(dir);
    std::fs::write(dir.join("example.token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(dir.join("other.token"), OTHER_TOKEN).unwrap();
    let config = dir.join("deploy.toml");
    std::fs::write(
        &config,
        "[services.example]\nrepository = \"repo\"\napi_token_file = \"example.token\"\n\
         [services.other]\nrepository = \"repo\"\nnamespace = \"other\"\napi_token_file = \"other.token\"\n",
    )
    .unwrap();
    (config, commit)
}

/// The CLI in client mode: no kubeconfig, no deploy.toml, only the server and the token.
fn client(dir: &Path, url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = common::nprt();
    cmd.args(args)
        .args(["--server", url])
        .current_dir(dir)
        .env("HOME", dir)
        .env("KUBECONFIG", dir.join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("NPRT_TOKEN");
    if let Some(t) = token {
        cmd.env("NPRT_TOKEN", t);
    }
    cmd.output().unwrap()
}

/// `nprt serve --timeout 10` on the deploy.toml of [`setup`] against a healthy fake.
struct Session {
    // Dropped in this order: the server stops before its directory and the fake go.
    served: deploy_fake::Served,
    commit: String,
    dir: tempfile::TempDir,
    fake: Fake,
}

impl Session {
    fn start() -> Session {
        let fake = Fake::start(Controller::Healthy);
        let dir = tempfile::tempdir().unwrap();
        let (config, commit) = setup(dir.path());
        let served = serve(&fake, dir.path(), &config, &["--timeout", "10s"]);
        Session {
            served,
            commit,
            dir,
            fake,
        }
    }

    /// The CLI in client mode against the server, with the token of service `example`.
    fn run(&self, args: &[&str]) -> Output {
        client(self.dir.path(), &self.served.url, Some(TOKEN), args)
    }
}

fn assert_no_canary_or_baseline(fake: &Fake) {
    let names = fake.names();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("-canary") || n.contains("-baseline")),
        "{names:?}"
    );
}

fn json_out(out: &Output) -> Value {
    serde_json::from_str(common::stdout(out).trim()).unwrap_or(Value::Null)
}

fn timing_keys(outcome: &Value) {
    for key in [
        "fetch", "validate", "rewrite", "apply", "rollout", "delete", "read", "total",
    ] {
        assert!(
            outcome["timing_ms"][key].is_number(),
            "timing_ms.{key} in {outcome}"
        );
    }
}

#[test]
fn client_mode_drives_serve_like_direct_mode() {
    let session = Session::start();
    let (fake, commit) = (&session.fake, &session.commit);
    let run = |args: &[&str]| session.run(args);

    let started = Instant::now();
    let out = run(&["canary", "example", "--skip-image-check"]);
    let wall = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let canary = json_out(&out);
    assert_eq!(
        canary["applied"],
        json!(["Service/web-canary", "Deployment/web-canary"])
    );
    assert_eq!(canary["commit"], json!(commit));
    assert_eq!(canary["tag_from"], "tag_format");
    timing_keys(&canary);
    let err = common::stderr(&out);
    assert!(err.contains("left alone: Deployment/worker"), "{err}");
    assert!(err.contains("timing: fetch "), "{err}");
    assert!(fake
        .names()
        .contains(&"default/deployments/web-canary".to_owned()));
    eprintln!(
        "client-mode canary against the fake: {} (client wall {wall:?})",
        canary["timing_ms"]
    );

    let out = run(&["status", "example"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(
        text.contains(&format!(
            "Deployment/web-canary\tcanary\t{}\t{commit}\tready 1/1",
            &commit[..7]
        )),
        "{text}"
    );
    let err = common::stderr(&out);
    assert!(err.contains("timing: fetch "), "{err}");
    eprintln!("client-mode status against the fake: {}", err.trim());

    let out = run(&["show", "example"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let shown: Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(shown["service"], "example");
    assert!(shown["api_token"].as_str().unwrap().starts_with("file "));
    assert!(!common::stdout(&out).contains(TOKEN));

    let out = run(&["ls"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("example\t") && lines[0].ends_with("exposure=shadow"),
        "{text}"
    );
    assert_eq!(lines[1], "other\t(not visible with this token)");

    let started = Instant::now();
    let out = run(&["rollback", "example"]);
    let wall = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let rollback = json_out(&out);
    assert_eq!(
        rollback["deleted"],
        json!(["Deployment/web-canary", "Service/web-canary"])
    );
    timing_keys(&rollback);
    assert!(rollback["timing_ms"]["delete"].as_f64().unwrap() > 0.0);
    eprintln!(
        "client-mode rollback against the fake: {} (client wall {wall:?})",
        rollback["timing_ms"]
    );
    assert!(fake.names().is_empty(), "{:?}", fake.names());

    let out = run(&["canary", "example", "--skip-image-check", "--tag", "v7"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert_eq!(json_out(&out)["tag_from"], "request");
    let out = run(&["promote", "example"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let promote = json_out(&out);
    assert_eq!(promote["promoted"], "v7");
    assert_eq!(
        promote["deleted"],
        json!(["Deployment/web-canary", "Service/web-canary"])
    );
    timing_keys(&promote);
    eprintln!(
        "client-mode promote against the fake: {}",
        promote["timing_ms"]
    );
    let web = fake.get("default/deployments/web").unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example:5000/shop/web:v7"
    );

    // Deploy (stable) through the API, with a commit given.
    let out = run(&[
        "deploy",
        "example",
        "--skip-image-check",
        "--commit",
        &commit[..10],
        "--tag",
        "v8",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let deploy = json_out(&out);
    assert_eq!(deploy["track"], "stable");
    eprintln!(
        "client-mode stable deploy against the fake: {}",
        deploy["timing_ms"]
    );

    // The token never shows in anything the server logged.
    let log = session.served.log();
    assert!(!log.contains(TOKEN), "{log}");
}

#[test]
fn client_errors_keep_the_exit_codes() {
    let fake = Fake::start(Controller::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = setup(dir.path());
    let served = serve(&fake, dir.path(), &config, &["--timeout", "10s"]);
    let url = served.url.as_str();

    // No token anywhere: usage error before anything is sent.
    let out = client(dir.path(), url, None, &["rollback", "example"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("set NPRT_TOKEN or give --token-file"),
        "{}",
        common::stderr(&out)
    );
    // The token from a file works like the variable.
    let out = client(
        dir.path(),
        url,
        None,
        &["rollback", "example", "--token-file", "example.token"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));

    // A wrong token: 401, a clear message, and the token is not echoed.
    let wrong = "wrong-token-5e5e5e5e5e";
    let out = client(dir.path(), url, Some(wrong), &["rollback", "example"]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refused the token (401)"), "{err}");
    assert!(err.contains("NPRT_TOKEN"), "{err}");
    assert!(!err.contains(wrong), "{err}");

    // Another service's token: 403.
    let out = client(dir.path(), url, Some(OTHER_TOKEN), &["promote", "example"]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("(403)") && err.contains("not for service `example`"),
        "{err}"
    );
    assert!(!err.contains(OTHER_TOKEN), "{err}");

    // The server's 400: an unknown commit.
    let out = client(
        dir.path(),
        url,
        Some(TOKEN),
        &["canary", "example", "--commit", "no-such-commit"],
    );
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no commit `no-such-commit`"), "{err}");
    // An unknown service: 404, bad input.
    let out = client(dir.path(), url, Some(TOKEN), &["status", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains("no service `nope`"));

    // Options that mean nothing through the API are refused.
    for extra in [&["--dry-run"][..], &["--force"], &["--context", "x"]] {
        let mut args = vec!["canary", "example"];
        args.extend_from_slice(extra);
        let out = client(dir.path(), url, Some(TOKEN), &args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        assert!(
            common::stderr(&out).contains("cannot be used with --server"),
            "{}",
            common::stderr(&out)
        );
    }
    let out = client(dir.path(), "ftp://x", Some(TOKEN), &["ls"]);
    assert_eq!(out.status.code(), Some(2));

    // Nothing listening: runtime failure.
    let out = client(
        dir.path(),
        &common::closed_port_url(),
        Some(TOKEN),
        &["status", "example"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains("cannot reach the deploy API"));
}

#[test]
fn a_second_operation_gets_another_operation_is_running() {
    // The controller never rolls out: the first canary holds the service until the server's
    // timeout.
    let fake = Fake::start(Controller::Asleep);
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = setup(dir.path());
    let served = serve(&fake, dir.path(), &config, &["--timeout", "4s"]);
    let url = served.url.clone();
    let first = std::thread::spawn(move || {
        common::nprt()
            .args(["canary", "example", "--skip-image-check", "--server", &url])
            .env("NPRT_TOKEN", TOKEN)
            .output()
            .unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fake.log().iter().any(|l| l.starts_with("PATCH ")) {
        assert!(Instant::now() < deadline, "the first canary never applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = client(
        dir.path(),
        &served.url,
        Some(TOKEN),
        &["rollback", "example"],
    );
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("another operation is running"), "{err}");
    // Another service is free meanwhile.
    let out = client(
        dir.path(),
        &served.url,
        Some(OTHER_TOKEN),
        &["rollback", "other"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let first = first.join().unwrap();
    let err = common::stderr(&first);
    assert_eq!(first.status.code(), Some(4), "{err}");
    assert!(err.contains("timed out after 4 s"), "{err}");
    // Free again.
    let out = client(
        dir.path(),
        &served.url,
        Some(TOKEN),
        &["rollback", "example"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
}

type Http = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn call(
    http: &Http,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, String) {
    let mut req = hyper::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = http
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn failed_authentication_is_limited_and_logged_and_bodies_are_bounded() {
    let fake = Fake::start(Controller::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = setup(dir.path());
    let served = serve(
        &fake,
        dir.path(),
        &config,
        &[
            "--auth-failures",
            "3",
            "--auth-window",
            "60s",
            "--max-body",
            "1KiB",
        ],
    );
    let http: Http =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let url = |path: &str| format!("{}{path}", served.url);

    // Bodies: over the limit is 413 for a valid token; an unauthenticated client gets 401
    // before its body is looked at.
    let big = vec![b'x'; 2048];
    let (code, _, body) = call(
        &http,
        "DELETE",
        &url("/example/canary"),
        Some(TOKEN),
        big.clone(),
    )
    .await;
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("larger than 1024 bytes"), "{body}");
    let small = br#"{"status":"resolved"}"#.to_vec();
    let (code, _, body) = call(&http, "DELETE", &url("/example/canary"), Some(TOKEN), small).await;
    assert_eq!(code, 200, "{body}");

    // Three failures are answered 401, then the address gets 429 with Retry-After, even
    // with the right token; /healthz stays open.
    let guesses = ["guess-aaaa-1111", "guess-bbbb-2222", "guess-cccc-3333"];
    for guess in guesses {
        let (code, headers, body) = call(&http, "GET", &url("/"), Some(guess), big.clone()).await;
        assert_eq!(code, 401, "{body}");
        assert!(headers.contains_key("www-authenticate"));
        assert!(!body.contains(guess));
    }
    let (code, headers, body) =
        call(&http, "GET", &url("/"), Some("guess-dddd-4444"), vec![]).await;
    assert_eq!(code, 429, "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let (code, _, _) = call(&http, "GET", &url("/"), Some(TOKEN), vec![]).await;
    assert_eq!(code, 429);
    let (code, _, _) = call(&http, "GET", &url("/healthz"), None, vec![]).await;
    assert_eq!(code, 200);

    // The CLI says what happened.
    let out = client(dir.path(), &served.url, Some(TOKEN), &["status", "example"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        common::stderr(&out).contains("(429"),
        "{}",
        common::stderr(&out)
    );

    // Logged with the address, never with the token.
    let log = served.log();
    assert_eq!(log.matches("authentication failed").count(), 3, "{log}");
    assert!(log.contains(r#""client":"127.0.0.1""#), "{log}");
    assert!(log.contains("too many failed authentications"), "{log}");
    for secret in guesses
        .iter()
        .chain([&"guess-dddd-4444", &TOKEN, &OTHER_TOKEN])
    {
        assert!(!log.contains(secret), "{secret} in the log: {log}");
    }
}

#[test]
fn serve_over_tls_with_a_private_ca() {
    let fake = Fake::start(Controller::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = setup(dir.path());
    common::make_certificates(dir.path());
    let served = serve(
        &fake,
        dir.path(),
        &config,
        &["--tls-cert", "cert.pem", "--tls-key", "key.pem"]
            .map(|a| {
                if a.ends_with(".pem") {
                    dir.path().join(a).display().to_string()
                } else {
                    a.to_owned()
                }
            })
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(
        served.url.starts_with("https://127.0.0.1:"),
        "{}",
        served.url
    );
    let out = client(
        dir.path(),
        &served.url,
        Some(TOKEN),
        &["rollback", "example", "--ca", "ca.pem"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert_eq!(json_out(&out)["deleted"], json!([]));
    // Without the CA the server is not trusted: nothing is sent, exit 4.
    let out = client(
        dir.path(),
        &served.url,
        Some(TOKEN),
        &["rollback", "example"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).to_lowercase().contains("certificate"),
        "{}",
        common::stderr(&out)
    );
    // Plain http to the https port fails too.
    let plain = served.url.replace("https://", "http://");
    let out = client(dir.path(), &plain, Some(TOKEN), &["rollback", "example"]);
    assert_ne!(out.status.code(), Some(0));
    // A missing CA file is bad input.
    let out = client(
        dir.path(),
        &served.url,
        Some(TOKEN),
        &["ls", "--ca", "missing.pem"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains("missing.pem"));
}

#[test]
fn client_mode_canary_with_baseline_rollback_and_promote() {
    let session = Session::start();
    let (fake, commit) = (&session.fake, &session.commit);
    let run = |args: &[&str]| session.run(args);

    let out = run(&["deploy", "example", "--skip-image-check", "--tag", "v1"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let out = run(&[
        "canary",
        "example",
        "--with-baseline",
        "--skip-image-check",
        "--tag",
        "v2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let canary = json_out(&out);
    assert_eq!(canary["baseline"]["version"], "v1");
    assert_eq!(canary["baseline"]["commit"], json!(commit));
    assert_eq!(
        canary["baseline"]["services"][0]["url"],
        "http://web-baseline.default.svc:80"
    );
    assert_eq!(
        canary["services"][0]["url"],
        "http://web-canary.default.svc:80"
    );
    timing_keys(&canary);
    assert!(fake
        .names()
        .contains(&"default/deployments/web-baseline".to_owned()));

    let out = run(&["status", "example"]);
    let text = common::stdout(&out);
    assert!(
        text.contains("Deployment/web-baseline\tbaseline\tv1\t"),
        "{text}"
    );

    // DELETE /SERVICE/canary removes both.
    let out = run(&["rollback", "example"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert_eq!(
        json_out(&out)["deleted"],
        json!([
            "Deployment/web-canary",
            "Service/web-canary",
            "Deployment/web-baseline",
            "Service/web-baseline"
        ])
    );
    assert_no_canary_or_baseline(fake);

    // The baseline's release given by hand through the API, then POST /SERVICE/promote
    // removes both after promoting.
    let out = run(&[
        "canary",
        "example",
        "--with-baseline",
        "--baseline-commit",
        commit,
        "--baseline-tag",
        "v0",
        "--skip-image-check",
        "--tag",
        "v3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert_eq!(json_out(&out)["baseline"]["tag_from"], "request");
    let baseline = fake.get("default/deployments/web-baseline").unwrap();
    assert_eq!(
        baseline["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example:5000/shop/web:v0"
    );
    let out = run(&["promote", "example"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let promoted = json_out(&out);
    assert_eq!(promoted["promoted"], "v3");
    assert_eq!(
        promoted["deleted"].as_array().unwrap().len(),
        4,
        "{promoted}"
    );
    assert_no_canary_or_baseline(fake);

    // Refused before any call, exit 2, naming the flag.
    let out = run(&["deploy", "example", "--with-baseline", "--skip-image-check"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("only a canary gets a baseline"),
        "{}",
        common::stderr(&out)
    );
}

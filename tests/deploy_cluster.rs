//! The cluster operations against the in-process fake Kubernetes API server on loopback
//! (`deploy_fake`), with a fake controller that rolls workloads out one poll late, or never.

mod common;
mod deploy_fake;

use deploy_fake::{Controller, Fake};
use nprt::deploy::cluster::{Cluster, ClusterError};
use serde_json::{json, Value};
use std::time::Duration;

fn canary_plan() -> Vec<Value> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kubernetes/example-app/web.yaml"),
    )
    .unwrap();
    let objects: Vec<Value> = nprt::deploy::manifest::parse_documents(&text, "web.yaml")
        .unwrap()
        .into_iter()
        .map(|m| m.object)
        .collect();
    let release = nprt::deploy::rewrite::Release {
        service: "example".into(),
        version: "v2".into(),
        tag: "v2".into(),
        commit: Some("c0ffee".into()),
        track: nprt::deploy::rewrite::Track::Canary,
        exposure: nprt::deploy::Exposure::Shadow,
        namespace: Some("default".into()),
        workloads: Vec::new(),
    };
    nprt::deploy::rewrite::rewrite(&objects, &release)
        .unwrap()
        .objects
}

#[tokio::test]
async fn canary_apply_wait_and_rollback() {
    let fake = Fake::start(Controller::Healthy);
    let cluster = fake.client();
    let plan = canary_plan();
    let applied = cluster.apply(&plan, false).await.unwrap();
    assert_eq!(applied.len(), 2);
    assert_eq!(
        fake.names(),
        [
            "default/deployments/web-canary",
            "default/services/web-canary"
        ]
    );
    let log = fake.log();
    // Discovery (the resource names of v1 and apps/v1) and the applies.
    let (discovery, applies): (Vec<&String>, Vec<&String>) = log
        .iter()
        .partition(|l| *l == "GET /api/v1" || *l == "GET /apis/apps/v1");
    assert_eq!(discovery.len(), 2, "{log:?}");
    assert!(
        applies
            .iter()
            .all(|l| l.starts_with("PATCH ") && l.ends_with("fieldManager=nprt")),
        "{log:?}"
    );
    assert!(
        log.contains(
            &"PATCH /apis/apps/v1/namespaces/default/deployments/web-canary fieldManager=nprt"
                .to_owned()
        ),
        "{log:?}"
    );
    cluster
        .wait_rollout(&plan, Duration::from_secs(5))
        .await
        .unwrap();
    // The first read showed the previous generation: the wait did not stop there.
    let reads = fake
        .log()
        .iter()
        .filter(|l| l.starts_with("GET /apis/apps/v1/namespaces/default/deployments/web-canary"))
        .count();
    assert_eq!(reads, 2, "{:?}", fake.log());

    // Applying the same objects again changes nothing.
    let generation =
        fake.get("default/deployments/web-canary").unwrap()["metadata"]["generation"].clone();
    cluster.apply(&plan, false).await.unwrap();
    cluster
        .wait_rollout(&plan, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        fake.get("default/deployments/web-canary").unwrap()["metadata"]["generation"],
        generation
    );

    let status = cluster.status(&[], "example", None).await.unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].version.as_deref(), Some("v2"));
    assert_eq!(status[0].track, "canary");

    let deleted = cluster
        .delete_canary("example", None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(deleted, ["Deployment/web-canary", "Service/web-canary"]);
    assert!(fake.names().is_empty());
    // Rollback again: nothing left, same success.
    let deleted = cluster
        .delete_canary("example", None, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(deleted.is_empty());
    // Discovery was asked once per group version for all of the above.
    let log = fake.log();
    for discovery in ["GET /api/v1", "GET /apis/apps/v1"] {
        let asked = log.iter().filter(|l| *l == discovery).count();
        assert_eq!(asked, 1, "{discovery}: {log:?}");
    }
}

#[tokio::test]
async fn rollback_leaves_other_objects_alone() {
    let fake = Fake::start(Controller::Healthy);
    let cluster = fake.client();
    let mut plan = canary_plan();
    // A hand-made track=canary object of someone else, and another service's canary.
    let mut foreign = plan[1].clone();
    foreign["metadata"]["name"] = json!("theirs");
    foreign["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("nprt.io/service");
    let mut other = plan[1].clone();
    other["metadata"]["name"] = json!("other-canary");
    other["metadata"]["labels"]["nprt.io/service"] = json!("other");
    plan.push(foreign);
    plan.push(other);
    cluster.apply(&plan, false).await.unwrap();
    let deleted = cluster
        .delete_canary("example", None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(deleted, ["Deployment/web-canary", "Service/web-canary"]);
    assert_eq!(
        fake.names(),
        [
            "default/deployments/other-canary",
            "default/deployments/theirs"
        ]
    );
}

#[tokio::test]
async fn rollout_failures() {
    let fake = Fake::start(Controller::Stuck);
    let cluster = fake.client();
    let plan = canary_plan();
    cluster.apply(&plan, false).await.unwrap();
    let err = cluster
        .wait_rollout(&plan, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::RolloutFailed { .. }), "{err}");
    assert!(
        err.to_string().contains("progress deadline exceeded"),
        "{err}"
    );

    let fake = Fake::start(Controller::Asleep);
    let cluster = fake.client();
    cluster.apply(&plan, false).await.unwrap();
    let err = cluster
        .wait_rollout(&plan, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains("has not seen generation 1"),
        "{err}"
    );
}

#[tokio::test]
async fn conflicts_are_reported_and_force_is_explicit() {
    let fake = Fake::start(Controller::Healthy);
    fake.state
        .lock()
        .unwrap()
        .conflicts
        .push("web-canary".into());
    let cluster = fake.client();
    let plan = canary_plan();
    let err = cluster.apply(&plan, false).await.unwrap_err();
    assert!(err.is_bad_input());
    let text = err.to_string();
    assert!(
        text.starts_with("Service/web-canary: field conflict with another manager"),
        "{text}"
    );
    assert!(text.contains("--force"), "{text}");
    cluster.apply(&plan, true).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_cluster_is_a_runtime_error() {
    let mut config = kube::Config::new(common::closed_port_url().parse().unwrap());
    config.connect_timeout = Some(Duration::from_secs(2));
    let cluster = Cluster::new(kube::Client::try_from(config).unwrap(), "default".into());
    let err = cluster.apply(&canary_plan(), false).await.unwrap_err();
    assert!(matches!(err, ClusterError::Unreachable { .. }), "{err}");
    assert!(!err.is_bad_input());
}

// ---- the CLI against the fake, through a kubeconfig ----

fn nprt(fake: &Fake, dir: &std::path::Path, args: &[&str]) -> (Option<i32>, Value, String) {
    let out = common::nprt()
        .args(args)
        .env("KUBECONFIG", fake.kubeconfig(dir))
        .env("NPRT_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap();
    let stdout = common::stdout(&out);
    let value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.code(), value, common::stderr(&out))
}

/// [`nprt`], which must exit 0; what it printed to stdout (as JSON) and stderr.
fn nprt_ok(fake: &Fake, dir: &std::path::Path, args: &[&str]) -> (Value, String) {
    let (code, out, err) = nprt(fake, dir, args);
    assert_eq!(code, Some(0), "{err}");
    (out, err)
}

/// `nprt status example`, which must exit 0; its table.
fn status_text(fake: &Fake, dir: &std::path::Path, config: &str) -> String {
    let out = common::nprt()
        .args(["status", "example", "--config", config])
        .env("KUBECONFIG", fake.kubeconfig(dir))
        .env("NPRT_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    common::stdout(&out)
}

/// `nprt rollback example`, which must exit 0; what it printed.
fn rollback(fake: &Fake, dir: &std::path::Path, config: &str) -> Value {
    nprt_ok(fake, dir, &["rollback", "example", "--config", config]).0
}

/// A deploy.toml with the service `example` from `repo`; its path.
fn write_config(dir: &std::path::Path, repo: &std::path::Path) -> String {
    let config = dir.join("deploy.toml");
    std::fs::write(
        &config,
        format!("[services.example]\nrepository = \"{}\"\n", repo.display()),
    )
    .unwrap();
    config.display().to_string()
}

#[test]
fn cli_canary_status_promote_and_rollback() {
    let fake = Fake::start(Controller::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let commit = deploy_fake::example_repo(dir.path());
    let config = write_config(dir.path(), &dir.path().join("repo"));

    let (out, _) = nprt_ok(
        &fake,
        dir.path(),
        &[
            "canary",
            "example",
            "--skip-image-check",
            "--config",
            &config,
            "--timeout",
            "10s",
        ],
    );
    assert_eq!(
        out["applied"],
        json!(["Service/web-canary", "Deployment/web-canary"])
    );
    assert_eq!(out["commit"], json!(commit));
    assert_eq!(out["left_alone"], json!(["Deployment/worker"]));
    eprintln!("canary deploy against the fake: {}", out["timing_ms"]);
    assert!(fake
        .names()
        .contains(&"default/deployments/web-canary".to_owned()));

    // Repeating the canary deploy changes nothing.
    let generation =
        fake.get("default/deployments/web-canary").unwrap()["metadata"]["generation"].clone();
    let (again, _) = nprt_ok(
        &fake,
        dir.path(),
        &[
            "canary",
            "example",
            "--skip-image-check",
            "--config",
            &config,
        ],
    );
    assert_eq!(again["applied"], out["applied"]);
    assert_eq!(
        fake.get("default/deployments/web-canary").unwrap()["metadata"]["generation"],
        generation
    );

    let out = rollback(&fake, dir.path(), &config);
    assert_eq!(
        out["deleted"],
        json!(["Deployment/web-canary", "Service/web-canary"])
    );
    eprintln!("rollback against the fake: {}", out["timing_ms"]);
    assert!(fake.names().is_empty(), "{:?}", fake.names());
    let out = rollback(&fake, dir.path(), &config);
    assert_eq!(out["deleted"], json!([]));

    // Promote: the canary's commit becomes stable, then the canary goes.
    nprt_ok(
        &fake,
        dir.path(),
        &[
            "canary",
            "example",
            "--skip-image-check",
            "--config",
            &config,
            "--tag",
            "v7",
        ],
    );
    let (out, _) = nprt_ok(
        &fake,
        dir.path(),
        &["promote", "example", "--config", &config],
    );
    assert_eq!(out["promoted"], "v7");
    eprintln!("promote against the fake: {}", out["timing_ms"]);
    let web = fake.get("default/deployments/web").unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example:5000/shop/web:v7"
    );
    assert!(fake.get("default/deployments/web-canary").is_none());
    assert!(fake.get("default/configmaps/web-config").is_some());

    let text = status_text(&fake, dir.path(), &config);
    assert!(text.contains("Deployment/web\tstable\tv7\t"), "{text}");

    // Nothing to promote without a canary.
    let (code, _, err) = nprt(
        &fake,
        dir.path(),
        &["promote", "example", "--config", &config],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("promote needs a canary"), "{err}");
}

// ---- the baseline beside the canary ----

/// The example repository with a stable commit, then a canary commit on top; returns
/// (stable commit, canary commit, config path).
fn two_commits(dir: &std::path::Path) -> (String, String, String) {
    let stable = deploy_fake::example_repo(dir);
    let repo = dir.join("repo");
    let web = repo.join("kubernetes/web.yaml");
    let text = std::fs::read_to_string(&web).unwrap();
    std::fs::write(
        &web,
        text.replace("containerPort: 8080", "containerPort: 8081"),
    )
    .unwrap();
    deploy_fake::git(&repo, &["commit", "--quiet", "-am", "canary"]);
    let canary = deploy_fake::git(&repo, &["rev-parse", "HEAD"]);
    (stable, canary, write_config(dir, &repo))
}

/// `canary example --with-baseline` with the baseline's commit and tag given by hand, then
/// `rest`.
fn baseline_by_hand<'a>(commit: &'a str, tag: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "canary",
        "example",
        "--with-baseline",
        "--baseline-commit",
        commit,
        "--baseline-tag",
        tag,
    ];
    args.extend_from_slice(rest);
    args
}

/// What a rollback or promote deletes of a canary with its baseline, in order.
fn canary_and_baseline() -> Value {
    json!([
        "Deployment/web-canary",
        "Service/web-canary",
        "Deployment/web-baseline",
        "Service/web-baseline"
    ])
}

/// Checks that no canary or baseline object is left; returns the names of what is.
fn assert_no_canary_or_baseline(fake: &Fake) -> Vec<String> {
    let left = fake.names();
    assert!(
        left.iter()
            .all(|n| !n.contains("-canary") && !n.contains("-baseline")),
        "{left:?}"
    );
    left
}

fn pod_labels(object: &Value) -> serde_json::Map<String, Value> {
    object["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn selects(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    let selector = selector.as_object().unwrap();
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Checks that the Service `service` selects the pods labelled `own` and none labelled
/// `others`.
fn assert_selects_only(
    service: &Value,
    own: &serde_json::Map<String, Value>,
    others: &[&serde_json::Map<String, Value>],
) {
    let selector = &service["spec"]["selector"];
    let name = &service["metadata"]["name"];
    assert!(selects(selector, own), "{name} selects {own:?}");
    for other in others {
        assert!(
            !selects(selector, other),
            "{name} does not select {other:?}"
        );
    }
}

fn env_of(object: &Value) -> Vec<(String, String)> {
    object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["env"].as_array().unwrap().iter())
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

#[test]
fn cli_canary_with_baseline_then_rollback() {
    let fake = Fake::start(Controller::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let (stable, canary, config) = two_commits(dir.path());
    let canary_args = [
        "canary",
        "example",
        "--with-baseline",
        "--skip-image-check",
        "--config",
        &config,
        "--tag",
        "v2",
    ];

    // Nothing deployed yet: the stable release cannot be told, and nothing is applied.
    let (code, _, err) = nprt(&fake, dir.path(), &canary_args);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("Deployment/web is not in the cluster"),
        "{err}"
    );
    assert!(err.contains("--baseline-commit"), "{err}");
    assert!(fake.names().is_empty(), "{:?}", fake.names());

    nprt_ok(
        &fake,
        dir.path(),
        &[
            "deploy",
            "example",
            "--skip-image-check",
            "--config",
            &config,
            "--commit",
            &stable,
            "--tag",
            "v1",
        ],
    );

    let (out, err) = nprt_ok(&fake, dir.path(), &canary_args);
    assert!(err.contains("baseline v1 at"), "{err}");
    assert_eq!(out["commit"], json!(canary));
    assert_eq!(
        out["applied"],
        json!(["Service/web-canary", "Deployment/web-canary"])
    );
    assert_eq!(out["baseline"]["version"], "v1");
    assert_eq!(out["baseline"]["commit"], json!(stable));
    assert_eq!(out["baseline"]["tag_from"], "cluster");
    assert_eq!(
        out["baseline"]["applied"],
        json!(["Service/web-baseline", "Deployment/web-baseline"])
    );
    // What a caller builds the URLs from, the same shape for both.
    assert_eq!(
        out["services"],
        json!([{"name": "web-canary", "namespace": "default", "of": "web",
                "ports": [{"name": "http", "port": 80}],
                "url": "http://web-canary.default.svc:80"}])
    );
    assert_eq!(
        out["baseline"]["services"],
        json!([{"name": "web-baseline", "namespace": "default", "of": "web",
                "ports": [{"name": "http", "port": 80}],
                "url": "http://web-baseline.default.svc:80"}])
    );

    // The baseline runs the stable release, one replica, on its own track.
    let baseline = fake.get("default/deployments/web-baseline").unwrap();
    assert_eq!(baseline["spec"]["replicas"], 1);
    let containers = &baseline["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "registry.example:5000/shop/web:v1");
    assert_eq!(containers[0]["ports"][0]["containerPort"], 8080);
    let env = env_of(&baseline);
    assert!(
        env.contains(&("NPRT_TRACK".into(), "baseline".into())),
        "{env:?}"
    );
    assert!(
        env.contains(&("NPRT_VERSION".into(), "v1".into())),
        "{env:?}"
    );
    assert_eq!(
        env.iter().filter(|(k, _)| k == "NPRT_TRACK").count(),
        2,
        "every container: {env:?}"
    );
    let canary_workload = fake.get("default/deployments/web-canary").unwrap();
    assert_eq!(
        canary_workload["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        8081
    );
    // Production's Service selects neither; each track's Service selects its own pods only.
    let (b, c) = (pod_labels(&baseline), pod_labels(&canary_workload));
    assert_selects_only(
        &fake.get("default/services/web").unwrap(),
        &pod_labels(&fake.get("default/deployments/web").unwrap()),
        &[&b, &c],
    );
    assert_selects_only(
        &fake.get("default/services/web-baseline").unwrap(),
        &b,
        &[&c],
    );
    assert_selects_only(&fake.get("default/services/web-canary").unwrap(), &c, &[&b]);

    let text = status_text(&fake, dir.path(), &config);
    assert!(
        text.contains("Deployment/web-baseline\tbaseline\tv1\t"),
        "{text}"
    );
    assert!(
        text.contains("Deployment/web-canary\tcanary\tv2\t"),
        "{text}"
    );

    let out = rollback(&fake, dir.path(), &config);
    assert_eq!(out["deleted"], canary_and_baseline());
    let left = assert_no_canary_or_baseline(&fake);
    assert!(
        left.contains(&"default/deployments/web".to_owned()),
        "{left:?}"
    );
    assert!(
        left.contains(&"default/services/web".to_owned()),
        "{left:?}"
    );
    // Again, with nothing left: fine.
    let out = rollback(&fake, dir.path(), &config);
    assert_eq!(out["deleted"], json!([]));
}

#[test]
fn cli_canary_with_baseline_then_promote() {
    let fake = Fake::start(Controller::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let (stable, canary, config) = two_commits(dir.path());
    // The stable workloads were not deployed by nprt: no annotations to read.
    let foreign = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "x"}]}}}});
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        fake.client()
            .apply(std::slice::from_ref(&foreign), false)
            .await
    })
    .unwrap();
    let (code, _, err) = nprt(
        &fake,
        dir.path(),
        &[
            "canary",
            "example",
            "--with-baseline",
            "--skip-image-check",
            "--config",
            &config,
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("has no nprt.io/commit annotation"), "{err}");
    assert!(
        !fake.names().iter().any(|n| n.contains("-canary")),
        "nothing applied"
    );

    // Given by hand instead.
    let (out, _) = nprt_ok(
        &fake,
        dir.path(),
        &baseline_by_hand(
            &stable,
            "v1",
            &["--skip-image-check", "--config", &config, "--tag", "v2"],
        ),
    );
    assert_eq!(out["baseline"]["tag_from"], "request");
    assert_eq!(out["baseline"]["commit"], json!(stable));
    assert!(fake.get("default/deployments/web-baseline").is_some());

    let (out, _) = nprt_ok(
        &fake,
        dir.path(),
        &["promote", "example", "--config", &config],
    );
    assert_eq!(out["promoted"], "v2");
    assert_eq!(out["commit"], json!(canary));
    assert_eq!(out["deleted"], canary_and_baseline());
    let web = fake.get("default/deployments/web").unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example:5000/shop/web:v2"
    );
    assert_no_canary_or_baseline(&fake);
}

#[test]
fn cli_baseline_options_are_checked() {
    let fake = Fake::start(Controller::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let (stable, _, config) = two_commits(dir.path());
    for (args, message) in [
        (
            vec!["deploy", "example", "--with-baseline"],
            "--with-baseline: only a canary gets a baseline",
        ),
        (
            vec!["canary", "example", "--with-baseline", "--dry-run"],
            "give --baseline-commit",
        ),
        (
            baseline_by_hand(&stable, "a b", &[]),
            "--baseline-tag: `a b` is not a valid image tag",
        ),
        (
            vec!["canary", "example", "--baseline-commit", &stable],
            "--with-baseline",
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--config", &config]);
        let (code, _, err) = nprt(&fake, dir.path(), &all);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    assert!(fake.log().is_empty(), "no cluster call: {:?}", fake.log());

    // A dry run with the baseline's commit prints both, contacting nothing.
    let (_, err) = nprt_ok(
        &fake,
        dir.path(),
        &baseline_by_hand(&stable, "v1", &["--dry-run", "--config", &config]),
    );
    assert!(err.contains("baseline example at"), "{err}");
    assert!(fake.log().is_empty(), "{:?}", fake.log());
}

//! End-to-end against a real cluster: runs only when `NPRT_E2E_KUBECONFIG` names a kubeconfig
//! (each test prints why it skips otherwise). Every test works in its own new namespace and
//! deletes it at the end. Needs a kube-apiserver with a controller manager and nodes that can
//! pull `registry.k8s.io/pause`. The scenario tests at the end also need `NPRT_E2E_IMAGE` and
//! kubectl (see there). The custom resource case ([`custom_resources`]) installs a CRD of
//! its own (and deletes it), so it needs the right to.

mod common;
#[path = "e2e_kubernetes/custom_resources.rs"]
mod custom_resources;

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use nprt::deploy::cluster::{Cluster, ClusterError};
use nprt::deploy::rewrite::{rewrite, Release, Track};
use nprt::deploy::Exposure;
use serde_json::{json, Value};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(180);

struct Env {
    client: kube::Client,
    cluster: Cluster,
    namespace: String,
}

async fn env(test: &str) -> Option<Env> {
    let Some(path) = std::env::var_os("NPRT_E2E_KUBECONFIG") else {
        eprintln!("skipping {test}: NPRT_E2E_KUBECONFIG is not set (point it to a kubeconfig of a disposable cluster)");
        return None;
    };
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&path).expect("NPRT_E2E_KUBECONFIG is readable");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("a usable kubeconfig");
    let client = kube::Client::try_from(config).expect("a client");
    let namespace = format!("nprt-e2e-{test}-{}", fastrand::u32(..)).replace('_', "-");
    let cluster = Cluster::new(client.clone(), namespace.clone());
    cluster
        .apply(
            &[json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})],
            false,
        )
        .await
        .expect("namespace created");
    Some(Env {
        client,
        cluster,
        namespace,
    })
}

impl Env {
    async fn cleanup(self) {
        let _ = Api::<Namespace>::all(self.client)
            .delete(&self.namespace, &DeleteParams::default())
            .await;
    }

    fn release(&self, track: Track, tag: &str) -> Release {
        Release {
            service: "e2e".into(),
            version: tag.into(),
            tag: tag.into(),
            commit: Some(format!("commit-{tag}")),
            track,
            exposure: Exposure::Shadow,
            namespace: Some(self.namespace.clone()),
            workloads: Vec::new(),
        }
    }
}

fn manifests(image: &str, deadline: u32) -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": 2, "progressDeadlineSeconds": deadline,
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "web", "image": image}]}}}}),
    ]
}

async fn deploy(env: &Env, track: Track, tag: &str) -> Vec<Value> {
    let plan = rewrite(
        &manifests("registry.k8s.io/pause", 120),
        &env.release(track, tag),
    )
    .expect("rewrite");
    env.cluster
        .apply(&plan.objects, false)
        .await
        .expect("apply");
    env.cluster
        .wait_rollout(&plan.objects, TIMEOUT)
        .await
        .expect("rollout");
    plan.objects
}

/// The IPs of pods behind the production Service `web`.
async fn production_endpoints(env: &Env) -> Vec<String> {
    let endpoints = Api::<Endpoints>::namespaced(env.client.clone(), &env.namespace)
        .get("web")
        .await
        .expect("endpoints of web");
    endpoint_ips(endpoints)
}

/// The IPs of the pods behind an Endpoints object, ready or not.
fn endpoint_ips(endpoints: Endpoints) -> Vec<String> {
    endpoints
        .subsets
        .unwrap_or_default()
        .into_iter()
        .flat_map(|s| {
            s.addresses
                .unwrap_or_default()
                .into_iter()
                .chain(s.not_ready_addresses.unwrap_or_default())
        })
        .map(|a| a.ip)
        .collect()
}

/// The IPs of the pods that match the label `selector`.
async fn pod_ips(env: &Env, selector: &str) -> Vec<String> {
    let pods = Api::<Pod>::namespaced(env.client.clone(), &env.namespace)
        .list(&ListParams::default().labels(selector))
        .await
        .expect("pods");
    pods.items
        .into_iter()
        .filter_map(|p| p.status.and_then(|s| s.pod_ip))
        .collect()
}

/// The Deployment `web`, the stable workload.
async fn stable_web(env: &Env) -> k8s_openapi::api::apps::v1::Deployment {
    Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(env.client.clone(), &env.namespace)
        .get("web")
        .await
        .expect("web")
}

#[tokio::test]
async fn canary_is_isolated_then_rolled_back() {
    let Some(env) = env("canary").await else {
        return;
    };
    deploy(&env, Track::Stable, "3.9").await;
    let started = std::time::Instant::now();
    deploy(&env, Track::Canary, "3.10").await;
    eprintln!("canary deploy incl. pod start: {:?}", started.elapsed());
    // Give the endpoints controller a moment, then check no canary pod is behind `web`.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let canaries = pod_ips(&env, "track=canary").await;
    assert_eq!(canaries.len(), 1, "one canary pod");
    let production = production_endpoints(&env).await;
    assert_eq!(production.len(), 2, "{production:?}");
    assert!(
        canaries.iter().all(|ip| !production.contains(ip)),
        "{canaries:?} in {production:?}"
    );
    let started = std::time::Instant::now();
    let deleted = env
        .cluster
        .delete_canary("e2e", Some(&env.namespace), TIMEOUT)
        .await
        .expect("rollback");
    eprintln!("rollback: {:?}", started.elapsed());
    assert_eq!(deleted, ["Deployment/web-canary", "Service/web-canary"]);
    env.cleanup().await;
}

#[tokio::test]
async fn stable_deploy_is_idempotent() {
    let Some(env) = env("stable").await else {
        return;
    };
    let objects = deploy(&env, Track::Stable, "3.9").await;
    let first = env.cluster.apply(&objects, false).await.expect("apply");
    let second = env
        .cluster
        .apply(&objects, false)
        .await
        .expect("apply again");
    assert_eq!(
        first[1]["metadata"]["generation"], second[1]["metadata"]["generation"],
        "repeating a deploy changes nothing"
    );
    env.cluster
        .wait_rollout(&objects, TIMEOUT)
        .await
        .expect("still rolled out");
    env.cleanup().await;
}

#[tokio::test]
async fn promote_makes_the_canary_stable() {
    let Some(env) = env("promote").await else {
        return;
    };
    deploy(&env, Track::Stable, "3.9").await;
    deploy(&env, Track::Canary, "3.10").await;
    let canaries = env
        .cluster
        .canary_workloads("e2e", Some(&env.namespace))
        .await
        .expect("canaries");
    let version = canaries[0]["metadata"]["annotations"]["nprt.io/version"]
        .as_str()
        .unwrap()
        .to_owned();
    deploy(&env, Track::Stable, &version).await;
    env.cluster
        .delete_canary("e2e", Some(&env.namespace), TIMEOUT)
        .await
        .expect("rollback");
    let status = env
        .cluster
        .status(
            &manifests("x", 1)[1..]
                .iter()
                .map(|w| {
                    let mut w = w.clone();
                    w["metadata"]["namespace"] = json!(env.namespace);
                    w
                })
                .collect::<Vec<_>>(),
            "e2e",
            Some(&env.namespace),
        )
        .await
        .expect("status");
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].version.as_deref(), Some("3.10"));
    env.cleanup().await;
}

#[tokio::test]
async fn a_rollout_that_cannot_finish_fails() {
    let Some(env) = env("timeout").await else {
        return;
    };
    let plan = rewrite(
        &manifests("registry.invalid/nprt-no-such-image", 10),
        &env.release(Track::Stable, "x"),
    )
    .expect("rewrite");
    env.cluster
        .apply(&plan.objects, false)
        .await
        .expect("apply");
    let err = env
        .cluster
        .wait_rollout(&plan.objects, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClusterError::RolloutFailed { .. } | ClusterError::Timeout { .. }
        ),
        "{err}"
    );
    env.cleanup().await;
}

// ---- whole scenarios (`nprt run`) against the cluster ----
//
// These also need NPRT_E2E_IMAGE: an nprt image the cluster can pull (build the repository's
// Dockerfile and push it), as REPOSITORY:TAG. The example service is `nprt testbed` in that
// image; the canary's commit changes its arguments. Traffic reaches the Services through
// `kubectl proxy` on loopback, so kubectl must be installed.

/// The image's repository and tag, or why the scenario tests skip.
fn e2e_image(test: &str) -> Option<(String, String)> {
    let image = std::env::var("NPRT_E2E_IMAGE").ok();
    let split = image.as_deref().and_then(|i| {
        let (repo, tag) = i.rsplit_once(':')?;
        (!tag.contains('/')).then(|| (repo.to_owned(), tag.to_owned()))
    });
    if split.is_none() {
        eprintln!("skipping {test}: NPRT_E2E_IMAGE is not set to REPOSITORY:TAG of an nprt image the cluster can pull");
    }
    split
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "e2e")
        .env("GIT_AUTHOR_EMAIL", "e2e@example.invalid")
        .env("GIT_COMMITTER_NAME", "e2e")
        .env("GIT_COMMITTER_EMAIL", "e2e@example.invalid")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository in `dir`/repo whose kubernetes/web.yaml is `stable` at one commit and
/// `canary` at the next; returns the repository and the two commits.
fn two_commit_repo(
    dir: &std::path::Path,
    stable: &str,
    canary: &str,
) -> (std::path::PathBuf, String, String) {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("kubernetes")).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    let manifest = repo.join("kubernetes/web.yaml");
    std::fs::write(&manifest, stable).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "stable"]);
    let stable_commit = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(&manifest, canary).unwrap();
    git(&repo, &["commit", "--quiet", "-am", "canary"]);
    let canary_commit = git(&repo, &["rev-parse", "HEAD"]);
    (repo, stable_commit, canary_commit)
}

/// A deploy.toml with the service `e2e` from `repo`, deployed to `namespace`.
fn deploy_toml(repo: &std::path::Path, namespace: &str) -> String {
    format!(
        "[services.e2e]\nrepository = \"{}\"\nnamespace = \"{namespace}\"\n",
        repo.display()
    )
}

/// The example service's manifests: `nprt testbed` with `testbed_args`.
fn testbed_manifests(image_repo: &str, testbed_args: &[&str]) -> String {
    let args: Vec<String> = ["testbed", "--listen", "0.0.0.0:8080"]
        .iter()
        .chain(testbed_args)
        .map(|a| format!("\"{a}\""))
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: 8080}}]\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n        - name: web\n          image: {image_repo}\n          args: [{}]\n          ports: [{{containerPort: 8080}}]\n          readinessProbe: {{tcpSocket: {{port: 8080}}}}\n",
        args.join(", ")
    )
}

/// `kubectl proxy` on a free loopback port, killed when dropped.
struct KubectlProxy {
    child: std::process::Child,
    url: String,
}

impl KubectlProxy {
    fn start(kubeconfig: &std::ffi::OsStr) -> KubectlProxy {
        use std::io::BufRead;
        let mut child = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["proxy", "--port=0", "--address=127.0.0.1"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl runs (install it for the scenario e2e tests)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Starting to serve on 127.0.0.1:PORT"
        let addr = line.trim().rsplit(' ').next().unwrap().to_owned();
        KubectlProxy {
            child,
            url: format!("http://{addr}"),
        }
    }

    fn service(&self, namespace: &str, name: &str) -> String {
        format!(
            "{}/api/v1/namespaces/{namespace}/services/{name}:80/proxy",
            self.url
        )
    }
}

impl Drop for KubectlProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deploys the stable release (commit A) with the CLI, then runs a scenario that deploys
/// commit B (`canary_args`) as a canary, replays to both, and promotes or rolls back.
/// Returns the run's exit code and scenario.json.
async fn scenario_run(env: &Env, test: &str, canary_args: &[&str]) -> Option<(i32, Value)> {
    let (image_repo, tag) = e2e_image(test)?;
    let kubeconfig = std::env::var_os("NPRT_E2E_KUBECONFIG")?;
    let dir = tempfile::tempdir().unwrap();
    let (repo, stable_commit, canary_commit) = two_commit_repo(
        dir.path(),
        &testbed_manifests(&image_repo, &["--latency", "2ms"]),
        &testbed_manifests(&image_repo, canary_args),
    );
    let config = dir.path().join("deploy.toml");
    std::fs::write(&config, deploy_toml(&repo, &env.namespace)).unwrap();
    let nprt = |args: &[&str]| {
        common::nprt()
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("NPRT_CACHE_DIR", dir.path().join("cache"))
            .output()
            .expect("nprt runs")
    };
    let out = nprt(&[
        "deploy",
        "e2e",
        "--config",
        config.to_str().unwrap(),
        "--commit",
        &stable_commit,
        "--tag",
        &tag,
        "--skip-image-check",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));

    let proxy = KubectlProxy::start(&kubeconfig);
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"on_pass = "promote"
on_fail = "rollback"

[source]
kind = "recording"
recording = "{recording}"

[replay]
max = true
concurrency = 4
limit = 600
timeout = "20s"

[targets]
stable = "{stable}"
canary = "{canary}"

[deploy]
config = "deploy.toml"
service = "e2e"
commit = "{canary_commit}"
tag = "{tag}"
skip_image_check = true
timeout = "3m"

[report]
dir = "reports"
"#,
            recording = common::demo_recording().display(),
            stable = proxy.service(&env.namespace, "web"),
            canary = proxy.service(&env.namespace, "web-canary"),
        ),
    )
    .unwrap();
    let out = nprt(&["run", scenario.to_str().unwrap(), "--quiet"]);
    eprintln!("{}", common::stderr(&out));
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("reports/scenario.json"))
            .unwrap_or_else(|e| panic!("no scenario.json ({e}): {}", common::stderr(&out))),
    )
    .unwrap();
    eprintln!("{test}: {}", record["timing_ms"]);
    Some((out.status.code().unwrap_or(-1), record))
}

#[tokio::test]
async fn scenario_a_regressed_canary_is_rolled_back() {
    let Some(env) = env("scenario-regressed").await else {
        return;
    };
    let Some((code, record)) = scenario_run(
        &env,
        "scenario_a_regressed_canary_is_rolled_back",
        &["--latency", "40ms", "--error-rate", "0.2"],
    )
    .await
    else {
        env.cleanup().await;
        return;
    };
    assert_eq!(code, 1, "{record}");
    assert_eq!(record["action"]["action"], "rollback");
    assert!(record["timing_ms"]["to_rollback_ms"].as_u64().is_some());
    let canaries = env
        .cluster
        .canary_workloads("e2e", Some(&env.namespace))
        .await
        .expect("canaries");
    assert!(canaries.is_empty(), "{canaries:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn scenario_a_healthy_canary_is_promoted() {
    let Some(env) = env("scenario-healthy").await else {
        return;
    };
    let Some((code, record)) = scenario_run(
        &env,
        "scenario_a_healthy_canary_is_promoted",
        &["--latency", "2ms", "--jitter", "0ms"],
    )
    .await
    else {
        env.cleanup().await;
        return;
    };
    assert_eq!(code, 0, "{record}");
    assert_eq!(record["action"]["action"], "promote");
    let web = stable_web(&env).await;
    let args = web.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap_or_default();
    assert!(
        args.contains(&"--jitter".to_owned()),
        "the canary's commit is stable: {args:?}"
    );
    assert!(env
        .cluster
        .canary_workloads("e2e", Some(&env.namespace))
        .await
        .expect("canaries")
        .is_empty());
    env.cleanup().await;
}

// ---- the baseline beside the canary, through the driver's operations ----
//
// A repository of pause-image manifests at two commits: the stable one, deployed with
// `ops::deploy`, and a canary commit. The canary goes out `with_baseline`: the baseline is the
// stable release read back from the cluster.

/// Two production Services selecting on different labels, so isolation is checked against
/// more than one.
fn baseline_manifests(replicas: u32) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: frontends}}\nspec:\n  selector: {{tier: frontend}}\n  ports: [{{port: 81}}]\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web, tier: frontend}}}}\n    spec:\n      containers:\n        - name: web\n          image: registry.k8s.io/pause\n"
    )
}

struct Driver {
    service: nprt::deploy::ServiceConfig,
    settings: nprt::deploy::ops::Settings,
    target: nprt::deploy::ops::ClusterAccess,
    stable_commit: String,
    canary_commit: String,
    _dir: tempfile::TempDir,
}

fn driver(env: &Env) -> Driver {
    let dir = tempfile::tempdir().unwrap();
    let (repo, stable_commit, canary_commit) =
        two_commit_repo(dir.path(), &baseline_manifests(2), &baseline_manifests(3));
    let config = nprt::deploy::DeployConfig::parse(
        &deploy_toml(&repo, &env.namespace),
        "deploy.toml",
        dir.path(),
    )
    .expect("deploy.toml");
    Driver {
        service: config.services["e2e"].clone(),
        settings: nprt::deploy::ops::Settings {
            cache: dir.path().join("cache"),
            config_file: dir.path().join("deploy.toml"),
            timeout: TIMEOUT,
            force: false,
            skip_image_check: true,
        },
        target: nprt::deploy::ops::ClusterAccess::Connected(env.cluster.clone()),
        stable_commit,
        canary_commit,
        _dir: dir,
    }
}

impl Driver {
    fn request(&self, track: Track, commit: &str, tag: &str) -> nprt::deploy::driver::Request {
        nprt::deploy::driver::Request {
            commit: Some(commit.to_owned()),
            tag: Some(tag.to_owned()),
            with_baseline: track == Track::Canary,
            ..nprt::deploy::driver::Request::new(track)
        }
    }

    /// Stable at 3.9, then the canary at 3.10 with its baseline; returns the canary outcome.
    async fn canary_with_baseline(&self) -> nprt::deploy::outcome::Deployed {
        let stable = self.request(Track::Stable, &self.stable_commit, "3.9");
        nprt::deploy::ops::deploy(&self.target, &self.service, &stable, &self.settings)
            .await
            .expect("stable deploy");
        let canary = self.request(Track::Canary, &self.canary_commit, "3.10");
        let started = std::time::Instant::now();
        let outcome =
            nprt::deploy::ops::deploy(&self.target, &self.service, &canary, &self.settings)
                .await
                .expect("canary with baseline");
        eprintln!(
            "canary and baseline deploy incl. pod start: {:?}",
            started.elapsed()
        );
        outcome
    }
}

/// Every Endpoints object of the namespace with the pod IPs behind it.
async fn all_endpoints(env: &Env) -> Vec<(String, Vec<String>)> {
    Api::<Endpoints>::namespaced(env.client.clone(), &env.namespace)
        .list(&ListParams::default())
        .await
        .expect("endpoints")
        .items
        .into_iter()
        .map(|e| (e.metadata.name.clone().unwrap_or_default(), endpoint_ips(e)))
        .collect()
}

/// Checks that no production Service has a canary or baseline pod behind it and that each
/// track's Services have only that track's pod.
async fn assert_apart(env: &Env) {
    // Give the endpoints controller a moment.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let canaries = pod_ips(env, "track=canary").await;
    let baselines = pod_ips(env, "track=baseline").await;
    assert_eq!(canaries.len(), 1, "one canary pod");
    assert_eq!(baselines.len(), 1, "one baseline pod");
    let endpoints = all_endpoints(env).await;
    let mut seen = Vec::new();
    for (name, ips) in &endpoints {
        seen.push(name.as_str());
        let (own, other): (&[String], Vec<&String>) = if name.ends_with("-canary") {
            (&canaries, baselines.iter().collect())
        } else if name.ends_with("-baseline") {
            (&baselines, canaries.iter().collect())
        } else {
            (&[], canaries.iter().chain(&baselines).collect())
        };
        assert!(
            other.iter().all(|ip| !ips.contains(ip)),
            "{name} has {ips:?}, which includes one of {other:?}"
        );
        if !own.is_empty() {
            assert_eq!(ips, own, "{name} has its own track's pod");
        }
    }
    for name in [
        "web",
        "frontends",
        "web-canary",
        "frontends-canary",
        "web-baseline",
        "frontends-baseline",
    ] {
        assert!(seen.contains(&name), "no Endpoints {name} in {seen:?}");
    }
    let production: Vec<&String> = endpoints
        .iter()
        .filter(|(n, _)| n == "web")
        .flat_map(|(_, ips)| ips)
        .collect();
    assert_eq!(production.len(), 2, "{production:?}");
}

/// Checks that the cluster holds no canary or baseline workload of the service.
async fn assert_no_canary_or_baseline(env: &Env) {
    for track in [Track::Canary, Track::Baseline] {
        assert!(env
            .cluster
            .track_workloads("e2e", Some(&env.namespace), track)
            .await
            .expect("workloads")
            .is_empty());
    }
}

#[tokio::test]
async fn canary_and_baseline_are_isolated_then_rolled_back() {
    let Some(env) = env("baseline").await else {
        return;
    };
    let driver = driver(&env);
    let outcome = driver.canary_with_baseline().await;
    let deployed = outcome.baseline.as_ref().expect("a baseline");
    assert_eq!(deployed.version, "3.9");
    assert_eq!(deployed.tag_from, nprt::deploy::outcome::TagFrom::Cluster);
    assert_eq!(deployed.commit, driver.stable_commit);
    assert_eq!(
        outcome.baseline_url(),
        Some(format!("http://web-baseline.{}.svc:80", env.namespace).as_str())
    );
    let baseline = env
        .cluster
        .track_workloads("e2e", Some(&env.namespace), Track::Baseline)
        .await
        .expect("baselines");
    assert_eq!(baseline.len(), 1);
    assert_eq!(
        baseline[0]["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.k8s.io/pause:3.9"
    );
    assert_eq!(baseline[0]["spec"]["replicas"], 1);
    assert_apart(&env).await;

    let started = std::time::Instant::now();
    let outcome = nprt::deploy::ops::rollback(&driver.target, &driver.service, &driver.settings)
        .await
        .expect("rollback");
    eprintln!("rollback of canary and baseline: {:?}", started.elapsed());
    assert_eq!(
        outcome.deleted,
        [
            "Deployment/web-canary",
            "Service/frontends-canary",
            "Service/web-canary",
            "Deployment/web-baseline",
            "Service/frontends-baseline",
            "Service/web-baseline"
        ]
    );
    assert_no_canary_or_baseline(&env).await;
    let names: Vec<String> = all_endpoints(&env)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with("-canary") && !n.ends_with("-baseline")),
        "{names:?}"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn promote_removes_canary_and_baseline() {
    let Some(env) = env("baseline-promote").await else {
        return;
    };
    let driver = driver(&env);
    driver.canary_with_baseline().await;
    assert_apart(&env).await;
    let outcome = nprt::deploy::ops::promote(&driver.target, &driver.service, &driver.settings)
        .await
        .expect("promote");
    assert_eq!(outcome.promoted, "3.10");
    assert_eq!(outcome.deleted.len(), 6, "{outcome:?}");
    assert_no_canary_or_baseline(&env).await;
    let web = stable_web(&env).await;
    assert_eq!(
        web.spec.unwrap().replicas,
        Some(3),
        "the canary's commit is stable"
    );
    env.cleanup().await;
}

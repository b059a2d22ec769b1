//! End-to-end against a real cluster: runs only when `NPRT_E2E_KUBECONFIG` names a kubeconfig
//! (each test prints why it skips otherwise). Every test works in its own new namespace and
//! deletes it at the end. Needs a kube-apiserver with a controller manager and nodes that can
//! pull `registry.k8s.io/pause`.

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

async fn canary_pod_ips(env: &Env) -> Vec<String> {
    let pods = Api::<Pod>::namespaced(env.client.clone(), &env.namespace)
        .list(&ListParams::default().labels("track=canary"))
        .await
        .expect("pods");
    pods.items
        .into_iter()
        .filter_map(|p| p.status.and_then(|s| s.pod_ip))
        .collect()
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
    let canaries = canary_pod_ips(&env).await;
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

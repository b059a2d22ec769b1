//! Custom resources in a service's manifests: the resource name and scope of every kind come
//! from the API server's discovery, against the fake API server (`deploy_fake`), which, like
//! a real one, answers only at the names and scopes it serves.

mod common;
mod deploy_fake;

use deploy_fake::{Controller, Fake};
use nprt::deploy::cluster::ClusterError;
use serde_json::{json, Value};

/// A namespaced custom kind with a plural no English rule would give ("widgets"), and a
/// cluster-wide one (not "gizmos").
fn serve_custom_kinds(fake: &Fake) {
    fake.serve_kind("example.com/v1", "Widget", "widgetries", true);
    fake.serve_kind("example.com/v1", "Gizmo", "gizmoes", false);
}

fn widget(name: &str) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name},
        "spec": {"size": 3}})
}

fn gizmo(name: &str) -> Value {
    // The rewrite puts the service's namespace on every kind it does not know.
    json!({"apiVersion": "example.com/v1", "kind": "Gizmo",
        "metadata": {"name": name, "namespace": "shop"}, "spec": {}})
}

#[tokio::test]
async fn custom_resources_are_applied_where_discovery_says() {
    let fake = Fake::start(Controller::Healthy);
    serve_custom_kinds(&fake);
    let cluster = fake.client();
    cluster
        .apply(&[widget("a"), widget("b"), gizmo("g")], false)
        .await
        .unwrap();
    assert_eq!(
        fake.names(),
        [
            "_cluster/gizmoes/g",
            "default/widgetries/a",
            "default/widgetries/b"
        ]
    );
    // A cluster-wide object is applied without the namespace it was given.
    let stored = fake.get("_cluster/gizmoes/g").unwrap();
    assert!(stored["metadata"].get("namespace").is_none(), "{stored}");
    let live = cluster.live(&widget("a")).await.unwrap().unwrap();
    assert_eq!(live["spec"]["size"], 3);
    // One discovery of the group version for all of it.
    let log = fake.log();
    let asked = log
        .iter()
        .filter(|l| *l == "GET /apis/example.com/v1")
        .count();
    assert_eq!(asked, 1, "{log:?}");
    assert!(
        log.contains(
            &"PATCH /apis/example.com/v1/namespaces/default/widgetries/a fieldManager=nprt"
                .to_owned()
        ),
        "{log:?}"
    );
    assert!(
        log.contains(&"PATCH /apis/example.com/v1/gizmoes/g fieldManager=nprt".to_owned()),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_kind_the_cluster_does_not_serve_is_refused_until_its_crd_is_installed() {
    let fake = Fake::start(Controller::Healthy);
    let cluster = fake.client();
    // No such group version at all.
    let err = cluster.apply(&[widget("a")], false).await.unwrap_err();
    assert!(matches!(err, ClusterError::UnknownKind { .. }), "{err}");
    assert!(err.is_bad_input());
    assert_eq!(
        err.to_string(),
        "Widget/a: the cluster serves no kind Widget in example.com/v1; is its CustomResourceDefinition installed?"
    );
    // The group version is served, the kind is not.
    fake.serve_kind("example.com/v1", "Gizmo", "gizmoes", false);
    let err = cluster.apply(&[widget("a")], false).await.unwrap_err();
    assert!(matches!(err, ClusterError::UnknownKind { .. }), "{err}");
    // Installed since: discovery is asked again, and the same connection applies it.
    fake.serve_kind("example.com/v1", "Widget", "widgetries", true);
    cluster.apply(&[widget("a")], false).await.unwrap();
    assert_eq!(fake.names(), ["default/widgetries/a"]);
    assert!(fake.log().iter().all(|l| !l.contains("/widgets")));
}

/// A repository whose manifests carry a Widget and a Gizmo beside the web Service and
/// Deployment; its deploy.toml (namespace `shop`).
fn repo_with_custom_resources(dir: &std::path::Path) -> String {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("kubernetes")).unwrap();
    deploy_fake::git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(
        repo.join("kubernetes/web.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: registry.example/web}]\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("kubernetes/extras.yaml"),
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: web-widget}\nspec: {size: 3}\n---\napiVersion: example.com/v1\nkind: Gizmo\nmetadata: {name: web-gizmo}\nspec: {}\n",
    )
    .unwrap();
    deploy_fake::git(&repo, &["add", "-A"]);
    deploy_fake::git(&repo, &["commit", "--quiet", "-m", "web"]);
    let config = dir.join("deploy.toml");
    std::fs::write(
        &config,
        format!(
            "[services.web]\nrepository = \"{}\"\nnamespace = \"shop\"\n",
            repo.display()
        ),
    )
    .unwrap();
    config.display().to_string()
}

fn deploy(fake: &Fake, dir: &std::path::Path, config: &str) -> std::process::Output {
    common::nprt()
        .args(["deploy", "web", "--skip-image-check", "--timeout", "10s"])
        .args(["--tag", "v1", "--config", config])
        .env("KUBECONFIG", fake.kubeconfig(dir))
        .env("NPRT_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap()
}

#[test]
fn cli_deploys_a_service_with_custom_resources() {
    let dir = tempfile::tempdir().unwrap();
    let config = repo_with_custom_resources(dir.path());

    // Without the CRDs: refused, naming the kind, exit 2.
    let bare = Fake::start(Controller::Healthy);
    let out = deploy(&bare, dir.path(), &config);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "serves no kind Widget in example.com/v1; is its CustomResourceDefinition installed?"
        ),
        "{err}"
    );

    let fake = Fake::start(Controller::Healthy);
    serve_custom_kinds(&fake);
    let out = deploy(&fake, dir.path(), &config);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let outcome: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    let mut applied: Vec<&str> = outcome["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    applied.sort_unstable();
    assert_eq!(
        applied,
        [
            "Deployment/web",
            "Gizmo/web-gizmo",
            "Service/web",
            "Widget/web-widget"
        ]
    );
    assert_eq!(
        fake.names(),
        [
            "_cluster/gizmoes/web-gizmo",
            "shop/deployments/web",
            "shop/services/web",
            "shop/widgetries/web-widget"
        ]
    );
    assert_eq!(
        fake.get("shop/widgetries/web-widget").unwrap()["spec"]["size"],
        3
    );
}

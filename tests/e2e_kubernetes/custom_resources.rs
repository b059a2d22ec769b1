//! A service whose manifests carry a custom resource: the driver finds the kind's resource
//! name and scope by discovery (the CRD here has a plural no English rule would guess).

use super::{deploy_toml, env, two_commit_repo, Cluster, TIMEOUT};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams};
use serde_json::{json, Value};
use std::time::Duration;

/// The CRD of the namespaced kind `Widget` in `group`, resource `widgetries`.
fn widget_crd(group: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgetries.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgetries", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

/// A Service, a Deployment and a Widget.
fn manifests(group: &str, replicas: u32) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80}}]\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: registry.k8s.io/pause}}]\n---\napiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: web-widget}}\nspec: {{size: {replicas}}}\n"
    )
}

#[tokio::test]
async fn custom_resources_in_a_services_manifests_are_applied() {
    let Some(env) = env("crd").await else {
        return;
    };
    let group = format!("{}.nprt.io", env.namespace);
    let crd = widget_crd(&group);
    env.cluster.apply(&[crd], false).await.expect("the CRD");
    // The kind is served once the CRD is established; a fresh connection discovers anew.
    let widget = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "probe", "namespace": env.namespace}});
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let fresh = Cluster::new(env.client.clone(), env.namespace.clone());
        match fresh.apply(std::slice::from_ref(&widget), false).await {
            Ok(_) => break,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("waiting for the CRD: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => panic!("the CRD was never served: {e}"),
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let (repo, stable, _) =
        two_commit_repo(dir.path(), &manifests(&group, 1), &manifests(&group, 2));
    let config = nprt::deploy::DeployConfig::parse(
        &deploy_toml(&repo, &env.namespace),
        "deploy.toml",
        dir.path(),
    )
    .expect("deploy.toml");
    let settings = nprt::deploy::ops::Settings {
        cache: dir.path().join("cache"),
        config_file: dir.path().join("deploy.toml"),
        timeout: TIMEOUT,
        force: false,
        skip_image_check: true,
    };
    let request = nprt::deploy::driver::Request {
        commit: Some(stable),
        tag: Some("3.9".to_owned()),
        ..nprt::deploy::driver::Request::new(nprt::deploy::rewrite::Track::Stable)
    };
    let target = nprt::deploy::ops::ClusterAccess::Connected(Cluster::new(
        env.client.clone(),
        env.namespace.clone(),
    ));
    let outcome = nprt::deploy::ops::deploy(&target, &config.services["e2e"], &request, &settings)
        .await
        .expect("a deploy with a custom resource");
    assert!(
        outcome.applied.contains(&"Widget/web-widget".to_owned()),
        "{:?}",
        outcome.applied
    );
    let applied = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "web-widget", "namespace": env.namespace}});
    let live = env
        .cluster
        .live(&applied)
        .await
        .expect("read back")
        .expect("the Widget exists");
    assert_eq!(live["spec"]["size"], 1);

    let _ = Api::<CustomResourceDefinition>::all(env.client.clone())
        .delete(&format!("widgetries.{group}"), &DeleteParams::default())
        .await;
    env.cleanup().await;
}

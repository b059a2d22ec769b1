//! A registry with a certificate of a private CA (`registry.ca_file` in deploy.toml): the
//! registry client trusts that CA besides the system's roots, through the one HTTPS client
//! builder every client of nprt uses, and speaks https to it even on loopback.

mod common;
mod deploy_fake;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use nprt::deploy::registry::{split_image, RegistryClient, RegistryError};
use std::path::Path;
use std::sync::Arc;

/// A registry over https on loopback with a certificate signed by `dir/ca.pem`: it has the
/// tags v1 and v2 of every repository. Its `host:port`.
fn tls_registry(dir: &Path) -> String {
    common::make_certificates(dir);
    let tls = nprt::tls::server_config(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    deploy_fake::serve_https(
        listener,
        Arc::new(tls),
        |req: Request<hyper::body::Incoming>| async move {
            let path = req.uri().path().to_owned();
            let mut res = Response::new(Full::new(Bytes::new()));
            if path.ends_with("/tags/list") {
                *res.body_mut() = Full::new(Bytes::from(r#"{"tags":["v2","v1"]}"#));
            } else if !path.ends_with("/manifests/v1") && !path.ends_with("/manifests/v2") {
                *res.status_mut() = StatusCode::NOT_FOUND;
            }
            res
        },
    );
    addr
}

#[tokio::test]
async fn the_registry_client_trusts_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let addr = tls_registry(dir.path());
    let image = split_image(&format!("{addr}/team/web"));

    let client = RegistryClient::new(None, Some(&dir.path().join("ca.pem"))).unwrap();
    assert!(client.tag_exists(&image, "v1").await.unwrap());
    assert!(!client.tag_exists(&image, "v3").await.unwrap());
    let mut tags = client.tags(&image).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);

    // Another CA: the certificate is refused.
    let other = tempfile::tempdir().unwrap();
    common::make_certificates(other.path());
    let client = RegistryClient::new(None, Some(&other.path().join("ca.pem"))).unwrap();
    let err = client.tag_exists(&image, "v1").await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");

    // No CA: a loopback registry is spoken to over plain http, which a TLS port does not
    // answer.
    let client = RegistryClient::new(None, None).unwrap();
    let err = client.tag_exists(&image, "v1").await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");

    // A CA file that is not there.
    let missing = dir.path().join("missing.pem");
    let Err(err) = RegistryClient::new(None, Some(&missing)) else {
        panic!("a missing CA file was accepted");
    };
    assert!(err.to_string().contains("missing.pem"), "{err}");
}

/// A repository with one Deployment whose image is in `registry`, and a deploy.toml with
/// `registry_table` under `[services.web.registry]`; the deploy.toml's path.
fn service(dir: &Path, registry: &str, registry_table: &str) -> std::path::PathBuf {
    let repo = dir.join("repo");
    if !repo.exists() {
        std::fs::create_dir_all(repo.join("kubernetes")).unwrap();
        deploy_fake::git(&repo, &["init", "--quiet", "--initial-branch=main"]);
        std::fs::write(
            repo.join("kubernetes/web.yaml"),
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: \"{registry}/team/web\"}}]\n"),
        )
        .unwrap();
        deploy_fake::git(&repo, &["add", "-A"]);
        deploy_fake::git(&repo, &["commit", "--quiet", "-m", "web"]);
    }
    let config = dir.join("deploy.toml");
    std::fs::write(
        &config,
        format!(
            "[services.web]\nrepository = \"{}\"\n[services.web.registry]\n{registry_table}\n",
            repo.display()
        ),
    )
    .unwrap();
    config
}

fn nprt(dir: &Path, config: &Path, args: &[&str]) -> std::process::Output {
    common::nprt()
        .args(args)
        .arg("--config")
        .arg(config)
        .env("NPRT_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap()
}

#[test]
fn cli_tags_through_a_registry_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let registry = tls_registry(dir.path());
    // Relative to the deploy.toml.
    let config = service(dir.path(), &registry, "ca_file = \"ca.pem\"");
    let out = nprt(dir.path(), &config, &["tags", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert_eq!(
        common::stdout(&out),
        format!("{registry}/team/web\tv1\n{registry}/team/web\tv2\n")
    );
    let out = nprt(dir.path(), &config, &["show", "web"]);
    let shown: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(
        shown["registry_ca_file"],
        dir.path().join("ca.pem").display().to_string()
    );

    // A CA file that cannot be read: the configuration's fault, named.
    let config = service(dir.path(), &registry, "ca_file = \"nope.pem\"");
    let out = nprt(dir.path(), &config, &["tags", "web"]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("services.web.registry.ca_file"), "{err}");
    assert!(err.contains("nope.pem"), "{err}");

    // An empty one is refused when the file is read.
    let config = service(dir.path(), &registry, "ca_file = \"\"");
    let out = nprt(dir.path(), &config, &["tags", "web"]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("services.web.registry.ca_file: is empty"),
        "{err}"
    );
}

//! Image tags against a real registry (Debian's `docker-registry`, the CNCF distribution
//! registry, started on loopback with images pushed through the registry API), and the
//! authentication flows against small in-process registries that demand a bearer token or
//! basic auth.

mod common;
mod deploy_fake;

use deploy_fake::git;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use nprt::deploy::registry::{split_image, Credentials, RegistryClient, RegistryError};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Registry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A `docker-registry` on a free loopback port, or None (with the reason printed) when the
/// package is not installed.
fn start_registry(test: &str) -> Option<Registry> {
    let path = which("docker-registry");
    if !common::available(
        &format!("{test}: docker-registry (apt-get install docker-registry)"),
        path.is_ok(),
    ) {
        return None;
    }
    let Ok(path) = path else { return None };
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(path)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return Some(Registry {
                child,
                addr,
                _dir: dir,
            });
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("docker-registry did not start on {addr}");
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

fn sha256(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), data).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

type Http = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn call(
    http: &Http,
    method: &str,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, hyper::HeaderMap) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let res = http.request(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let _ = res.into_body().collect().await;
    (status, headers)
}

/// Pushes a one-layer OCI image to `repository` under every tag in `tags`.
async fn push(addr: &str, repository: &str, tags: &[String]) {
    let http: Http =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let base = format!("http://{addr}");
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = b"not really a tarball, the registry does not look".to_vec();
    for blob in [&config, &layer] {
        let (status, headers) = call(
            &http,
            "POST",
            &format!("{base}/v2/{repository}/blobs/uploads/"),
            "application/octet-stream",
            Vec::new(),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let location = headers["location"].to_str().unwrap();
        let location = if location.starts_with('/') {
            format!("{base}{location}")
        } else {
            location.to_owned()
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let (status, _) = call(
            &http,
            "PUT",
            &format!("{location}{sep}digest={}", sha256(blob)),
            "application/octet-stream",
            blob.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(&layer), "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    for tag in tags {
        let (status, _) = call(
            &http,
            "PUT",
            &format!("{base}/v2/{repository}/manifests/{tag}"),
            "application/vnd.oci.image.manifest.v1+json",
            manifest.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{tag}");
    }
}

#[tokio::test]
async fn tags_in_a_real_registry() {
    let Some(registry) = start_registry("tags_in_a_real_registry") else {
        return;
    };
    // More tags than one page of the tags list (n=100) holds.
    let mut tags: Vec<String> = (0..120).map(|i| format!("build-{i:03}")).collect();
    tags.push("main-abc1234".into());
    tags.push("main-def5678".into());
    tags.push("release-def5678".into());
    push(&registry.addr, "team/web", &tags).await;

    let client = RegistryClient::new(None, None).unwrap();
    let image = split_image(&format!("{}/team/web", registry.addr));
    assert!(client.tag_exists(&image, "main-abc1234").await.unwrap());
    assert!(!client.tag_exists(&image, "main-0000000").await.unwrap());
    let missing = split_image(&format!("{}/team/nothing", registry.addr));
    assert!(!client.tag_exists(&missing, "v1").await.unwrap());

    let mut listed = client.tags(&image).await.unwrap();
    listed.sort();
    let mut expected = tags.clone();
    expected.sort();
    assert_eq!(listed, expected, "every page was read");

    assert_eq!(
        client
            .tag_for_commit(&image, "abc1234ffffffffffffffffffffffffffffffff", 7)
            .await
            .unwrap(),
        "main-abc1234"
    );
    let err = client
        .tag_for_commit(&image, "def5678ffff", 7)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::AmbiguousCommit { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("main-def5678, release-def5678"),
        "{err}"
    );
    let err = client
        .tag_for_commit(&image, "9999999", 7)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NoTagForCommit { .. }), "{err}");
    drop(registry);
}

// ---- authentication against in-process registries ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Bearer,
    Basic,
}

struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

const BASIC_GOOD: &str = "Basic cm9ib3Q6czNjcmV0"; // robot:s3cret

fn fake_registry(auth: Auth) -> Fake {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    deploy_fake::serve_http(listener, move |req: Request<hyper::body::Incoming>| {
        let log = Arc::clone(&log);
        async move {
            let authz = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let accept = req
                .headers()
                .get("accept")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let path = req.uri().to_string();
            log.lock()
                .unwrap()
                .push(format!("{} {path} [{authz}]", req.method()));
            let mut res = Response::new(Full::new(Bytes::new()));
            if path.starts_with("/token") {
                if authz == BASIC_GOOD && path.contains("scope=repository%3Ateam%2Fweb%3Apull") {
                    *res.body_mut() = Full::new(Bytes::from(r#"{"token":"t0ken"}"#));
                } else {
                    *res.status_mut() = StatusCode::UNAUTHORIZED;
                }
                return res;
            }
            let good = match auth {
                Auth::Bearer => authz == "Bearer t0ken",
                Auth::Basic => authz == BASIC_GOOD,
            };
            if !good {
                *res.status_mut() = StatusCode::UNAUTHORIZED;
                let challenge = match auth {
                    Auth::Bearer => format!(
                        r#"Bearer realm="http://{addr}/token",service="fake",scope="repository:team/web:pull""#
                    ),
                    Auth::Basic => r#"Basic realm="fake""#.to_owned(),
                };
                res.headers_mut()
                    .insert("www-authenticate", challenge.parse().unwrap());
            } else if !accept.contains("application/vnd.oci.image.index.v1+json")
                || !path.ends_with("/manifests/v1")
            {
                *res.status_mut() = StatusCode::NOT_FOUND;
            }
            res
        }
    });
    Fake {
        url: addr.to_string(),
        seen,
    }
}

fn robot(password: &str) -> Option<Credentials> {
    Some(Credentials {
        username: "robot".into(),
        password: password.into(),
    })
}

#[tokio::test]
async fn bearer_challenge_flow() {
    let fake = fake_registry(Auth::Bearer);
    let image = split_image(&format!("{}/team/web", fake.url));
    let client = RegistryClient::new(robot("s3cret"), None).unwrap();
    assert!(client.tag_exists(&image, "v1").await.unwrap());
    assert!(!client.tag_exists(&image, "v2").await.unwrap());
    let seen = fake.seen.lock().unwrap().clone();
    // Challenge, token, retry; then the cached token goes straight through.
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert!(
        seen[0].starts_with("HEAD /v2/team/web/manifests/v1 []"),
        "{seen:#?}"
    );
    assert!(seen[1].starts_with("GET /token?scope="), "{seen:#?}");
    assert!(seen[1].contains("service=fake"), "{seen:#?}");
    assert!(seen[2].ends_with("[Bearer t0ken]"), "{seen:#?}");
    assert!(seen[3].ends_with("[Bearer t0ken]"), "{seen:#?}");

    let client = RegistryClient::new(robot("wrong"), None).unwrap();
    let err = client.tag_exists(&image, "v1").await.unwrap_err();
    assert!(matches!(err, RegistryError::Auth { .. }), "{err}");
    assert!(
        err.to_string().contains("token endpoint answered 401"),
        "{err}"
    );
}

#[tokio::test]
async fn basic_auth_flow() {
    let fake = fake_registry(Auth::Basic);
    let image = split_image(&format!("{}/team/web", fake.url));
    let client = RegistryClient::new(robot("s3cret"), None).unwrap();
    assert!(client.tag_exists(&image, "v1").await.unwrap());
    let client = RegistryClient::new(None, None).unwrap();
    let err = client.tag_exists(&image, "v1").await.unwrap_err();
    assert!(
        err.to_string().contains("no credentials are configured"),
        "{err}"
    );
    let client = RegistryClient::new(robot("n0pe-pass"), None).unwrap();
    let err = client.tag_exists(&image, "v1").await.unwrap_err();
    assert!(
        err.to_string().contains("credentials refused (401)"),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("n0pe-pass"), "{err:?}");
    // The password never shows in debug output.
    assert!(!format!("{:?}", robot("s3cret")).contains("s3cret"));
}

#[tokio::test]
async fn an_unreachable_registry_is_reported() {
    let port = free_port();
    let client = RegistryClient::new(None, None).unwrap();
    let err = client
        .tag_exists(&split_image(&format!("127.0.0.1:{port}/a")), "v1")
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
}

// ---- the CLI: `nprt tags` and the image check before a deploy ----

#[tokio::test]
async fn cli_tags_and_image_check() {
    let Some(registry) = start_registry("cli_tags_and_image_check") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("kubernetes")).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(
        repo.join("kubernetes/web.yaml"),
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{selector: {{app: web}}}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: \"{}/team/web\"}}, {{name: side, image: \"fluent/fluent-bit:3.0\"}}]\n",
            registry.addr
        ),
    )
    .unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "web"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    let config = dir.path().join("deploy.toml");
    std::fs::write(
        &config,
        format!("[services.web]\nrepository = \"{}\"\n", repo.display()),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nprt"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("NPRT_CACHE_DIR", dir.path().join("cache"))
            .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
            .env("HOME", dir.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .unwrap()
    };
    push(&registry.addr, "team/web", &["old".to_owned()]).await;
    // The commit's tag is not pushed: refused before any cluster is contacted.
    let out = run(&["canary", "web"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "image {}/team/web:{} is not in the registry",
            registry.addr,
            &commit[..7]
        )),
        "{err}"
    );
    // Pushed: the check passes and the deploy goes on to the (absent) cluster.
    push(&registry.addr, "team/web", &[commit[..7].to_owned()]).await;
    let out = run(&["canary", "web"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("no usable cluster configuration"), "{err}");

    let out = run(&["tags", "web"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut expected = [commit[..7].to_owned(), "old".to_owned()];
    expected.sort();
    let lines: Vec<String> = expected
        .iter()
        .map(|t| format!("{}/team/web\t{t}", registry.addr))
        .collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), lines);
}

#[tokio::test]
async fn cli_finds_the_single_tag_that_contains_the_commit() {
    let Some(registry) = start_registry("cli_finds_the_single_tag_that_contains_the_commit") else {
        return;
    };
    let fake = deploy_fake::Fake::start(deploy_fake::Controller::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("kubernetes")).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    let manifest = |replicas: u32| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: app}}\nspec: {{selector: {{app: app}}}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: app}}}}\n  template:\n    metadata: {{labels: {{app: app}}}}\n    spec:\n      containers: [{{name: app, image: \"{}/team/app\"}}]\n",
            registry.addr
        )
    };
    std::fs::write(repo.join("kubernetes/app.yaml"), manifest(2)).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "app"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    let short = &commit[..7];
    let config = dir.path().join("deploy.toml");
    std::fs::write(
        &config,
        format!(
            "[services.app]\nrepository = \"{}\"\napi_token_file = \"app.token\"\n",
            repo.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("app.token"), "app-token-0f0f0f0f").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_nprt"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("NPRT_CACHE_DIR", dir.path().join("cache"))
            .env("KUBECONFIG", fake.kubeconfig(dir.path()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json: serde_json::Value =
            serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
        (
            out.status.code(),
            json,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Only a tag that contains the commit (not the `{commit}` tag_format gives): found
    // among more tags than one page lists.
    let mut tags: Vec<String> = (0..110).map(|i| format!("build-{i:03}")).collect();
    tags.push(format!("main-{short}"));
    push(&registry.addr, "team/app", &tags).await;
    let (code, out, err) = run(&["canary", "app"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out["version"], format!("main-{short}"));
    assert_eq!(out["tag_from"], "registry");
    assert!(
        err.contains(&format!(
            "tag main-{short} found in the registry for commit {commit}"
        )),
        "{err}"
    );
    let live = fake.get("default/deployments/app-canary").unwrap();
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("{}/team/app:main-{short}", registry.addr)
    );
    assert!(
        out["timing_ms"]["validate"].as_f64().unwrap() > 0.0,
        "{out}"
    );
    eprintln!(
        "canary with tag lookup against the fake: {}",
        out["timing_ms"]
    );

    // Two tags contain it: refused, naming both.
    push(&registry.addr, "team/app", &[format!("release-{short}")]).await;
    let (code, _, err) = run(&["canary", "app"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "several tags contain commit {short}: main-{short}, release-{short}; give --tag"
        )),
        "{err}"
    );
    // An explicit --tag is checked as given, never looked up.
    let (code, out, err) = run(&["canary", "app", "--tag", &format!("release-{short}")]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out["tag_from"], "request");

    // A new commit nobody built: no tag contains it.
    std::fs::write(repo.join("kubernetes/app.yaml"), manifest(3)).unwrap();
    git(&repo, &["commit", "--quiet", "-am", "three"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    let (code, _, err) = run(&["deploy", "app"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "image {}/team/app:{} is not in the registry, and {}/team/app: no tag contains commit {}",
            registry.addr,
            &second[..7],
            registry.addr,
            &second[..7]
        )),
        "{err}"
    );
    // Once the tag_format tag is pushed, it is used as is.
    push(&registry.addr, "team/app", &[second[..7].to_owned()]).await;
    let (code, out, err) = run(&["deploy", "app"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out["tag_from"], "tag_format");
    assert_eq!(out["version"], &second[..7]);

    // The same through the deploy API: `--server` finds the tag, and lists the same tags.
    let served = deploy_fake::serve(&fake, dir.path(), &config, &[]);
    let through_api = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nprt"))
            .args(args)
            .args(["--server", &served.url])
            .env("NPRT_TOKEN", "app-token-0f0f0f0f")
            .output()
            .unwrap()
    };
    std::fs::write(repo.join("kubernetes/app.yaml"), manifest(4)).unwrap();
    git(&repo, &["commit", "--quiet", "-am", "four"]);
    let third = git(&repo, &["rev-parse", "HEAD"]);
    push(
        &registry.addr,
        "team/app",
        &[format!("pr-9-{}", &third[..7])],
    )
    .await;
    let out = through_api(&["canary", "app"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["tag_from"], "registry");
    assert_eq!(outcome["version"], format!("pr-9-{}", &third[..7]));
    let out = through_api(&["tags", "app"]);
    assert_eq!(out.status.code(), Some(0));
    let listed = String::from_utf8(out.stdout).unwrap();
    let direct = Command::new(env!("CARGO_BIN_EXE_nprt"))
        .args(["tags", "app", "--config"])
        .arg(&config)
        .env("NPRT_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(listed, String::from_utf8(direct.stdout).unwrap());
    assert_eq!(listed.lines().count(), 110 + 4, "{listed}");
}

#[test]
fn the_registry_password_never_shows_through_the_api() {
    let registry = fake_registry(Auth::Basic);
    let fake = deploy_fake::Fake::start(deploy_fake::Controller::Healthy);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("kubernetes")).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(
        repo.join("kubernetes/web.yaml"),
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{selector: {{app: web}}}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: \"{}/team/web\"}}]\n",
            registry.url
        ),
    )
    .unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "web"]);
    const PASSWORD: &str = "Pr1vate-Regpass";
    std::fs::write(dir.path().join("registry.pass"), PASSWORD).unwrap();
    std::fs::write(dir.path().join("web.token"), "web-token-7a7a7a7a").unwrap();
    let config = dir.path().join("deploy.toml");
    std::fs::write(
        &config,
        format!(
            "[services.web]\nrepository = \"{}\"\napi_token_file = \"web.token\"\n[services.web.registry]\nusername = \"robot\"\npassword_file = \"registry.pass\"\n",
            repo.display()
        ),
    )
    .unwrap();
    let served = deploy_fake::serve(&fake, dir.path(), &config, &[]);
    for args in [&["canary", "web"][..], &["tags", "web"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_nprt"))
            .args(args)
            .args(["--server", &served.url])
            .env("NPRT_TOKEN", "web-token-7a7a7a7a")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("credentials refused (401)"), "{err}");
        assert!(!err.contains(PASSWORD), "{err}");
    }
    // The registry did get the password (it refused it), the log never did.
    let seen = registry.seen.lock().unwrap().clone();
    assert!(seen.iter().any(|l| l.contains("[Basic ")), "{seen:?}");
    let log = served.log();
    assert!(!log.contains(PASSWORD), "{log}");
    assert!(!log.contains("web-token-7a7a7a7a"), "{log}");
}

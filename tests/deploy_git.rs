//! Manifests at a commit, from real git repositories made in the test: commits, branches,
//! moved manifests, nested folders, multi-document files, and the cached clone's fetches.

mod common;

use nprt::deploy::git::{GitError, Repo};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A throw-away repository with a work tree.
struct Upstream {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Upstream {
    fn new() -> Upstream {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upstream");
        std::fs::create_dir(&path).unwrap();
        let up = Upstream { _dir: dir, path };
        up.git(&["init", "--quiet", "--initial-branch=main"]);
        up
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.path.parent().unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn write(&self, file: &str, text: &str) {
        let path = self.path.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Commits everything and returns the commit id.
    fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    fn url(&self) -> String {
        self.path.display().to_string()
    }
}

fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n        - name: {name}\n          image: {image}\n"
    )
}

fn service(name: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: 80}}]\n")
}

fn paths(repo: &Repo, commit: &str, folder: &str) -> Vec<String> {
    repo.manifests(commit, folder)
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect()
}

#[test]
fn reads_every_yaml_file_under_the_folder_at_a_commit() {
    let up = Upstream::new();
    up.write(
        "kubernetes/app.yaml",
        &format!("{}---\n{}", deployment("shop", "shop"), service("shop")),
    );
    up.write(
        "kubernetes/extra/worker.yml",
        &deployment("worker", "worker"),
    );
    up.write("kubernetes/README.md", "not a manifest");
    up.write("other/ignored.yaml", &service("x"));
    let first = up.commit("first");
    up.write("kubernetes/app.yaml", &deployment("shop", "shop2"));
    let second = up.commit("second");

    let cache = tempfile::tempdir().unwrap();
    let repo = Repo::sync(&up.url(), cache.path(), None).unwrap();
    assert_eq!(repo.resolve("main", None).unwrap(), second);
    assert_eq!(repo.resolve("main", Some(&first[..8])).unwrap(), first);
    assert_eq!(
        paths(&repo, &first, "kubernetes"),
        ["kubernetes/app.yaml", "kubernetes/extra/worker.yml"]
    );
    let files = repo.manifests(&first, "kubernetes").unwrap();
    assert!(files[0].text.contains("kind: Service"));
    let files = repo.manifests(&second, "kubernetes").unwrap();
    assert!(!files[0].text.contains("kind: Service"));
    assert!(files[0].text.contains("image: shop2"));
}

#[test]
fn branches_and_moved_manifests() {
    let up = Upstream::new();
    up.write("kubernetes/app.yaml", &deployment("shop", "shop"));
    let old = up.commit("manifests in kubernetes/");
    up.git(&["checkout", "--quiet", "-b", "release"]);
    up.write("kubernetes/app.yaml", &deployment("shop", "shop-release"));
    let release = up.commit("release fix");
    up.git(&["checkout", "--quiet", "main"]);
    up.git(&["mv", "kubernetes", "deploy"]);
    let moved = up.commit("moved to deploy/");

    let cache = tempfile::tempdir().unwrap();
    let repo = Repo::sync(&up.url(), cache.path(), None).unwrap();
    assert_eq!(repo.resolve("release", None).unwrap(), release);
    assert_eq!(repo.resolve("main", None).unwrap(), moved);
    // The folder at the old commit still reads; at the new one it says where to look.
    assert_eq!(paths(&repo, &old, "kubernetes"), ["kubernetes/app.yaml"]);
    assert_eq!(paths(&repo, &moved, "deploy"), ["deploy/app.yaml"]);
    let err = repo.manifests(&moved, "kubernetes").unwrap_err();
    assert!(matches!(err, GitError::NoManifests { .. }));
    let text = err.to_string();
    assert!(
        text.contains("no *.yml or *.yaml files under `kubernetes/`"),
        "{text}"
    );
    assert!(text.contains("set `manifests` in deploy.toml"), "{text}");

    let err = repo.resolve("nope", None).unwrap_err().to_string();
    assert!(err.contains("no commit `refs/heads/nope`"), "{err}");
    let err = repo.resolve("main", Some("0000000000")).unwrap_err();
    assert!(matches!(err, GitError::UnknownCommit { .. }), "{err}");
    assert!(repo.resolve("main", Some("--all")).is_err());
}

#[test]
fn the_cache_fetches_new_commits_and_keeps_its_clone() {
    let up = Upstream::new();
    up.write("kubernetes/app.yaml", &deployment("shop", "shop"));
    let first = up.commit("first");
    let cache = tempfile::tempdir().unwrap();
    let repo = Repo::sync(&up.url(), cache.path(), None).unwrap();
    let marker = repo.dir().join("nprt-test-marker");
    std::fs::write(&marker, "").unwrap();

    up.write("kubernetes/app.yaml", &deployment("shop", "shop-v2"));
    let second = up.commit("second");
    // A commit the cache holds needs no fetch: `main` still points at the first commit.
    let repo = Repo::sync(&up.url(), cache.path(), Some(&first)).unwrap();
    assert_eq!(repo.resolve("main", None).unwrap(), first);
    // An unknown commit (or the branch head) is fetched, into the same clone.
    let repo = Repo::sync(&up.url(), cache.path(), Some(&second)).unwrap();
    assert_eq!(repo.resolve("main", Some(&second)).unwrap(), second);
    assert_eq!(repo.resolve("main", None).unwrap(), second);
    assert!(marker.exists(), "the clone was reused, not made again");
    assert_eq!(
        std::fs::read_dir(cache.path().join("repos"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn unreachable_repositories_fail_with_gits_message() {
    let cache = tempfile::tempdir().unwrap();
    let missing = cache.path().join("no-such-repo");
    let err = Repo::sync(&missing.display().to_string(), cache.path(), None).unwrap_err();
    assert!(matches!(err, GitError::Failed { .. }), "{err}");
    assert!(
        err.to_string().starts_with("git clone failed for "),
        "{err}"
    );
    // Nothing half-cloned is left to be mistaken for a cache.
    let left: Vec<_> = std::fs::read_dir(cache.path().join("repos"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

// ---- the CLI's --dry-run on top of a real repository ----

fn example_app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kubernetes/example-app")
}

/// A repository holding the example app's manifests in `kubernetes/`, and a deploy.toml.
fn example_setup(extra_config: &str) -> (Upstream, tempfile::TempDir, String, String) {
    let up = Upstream::new();
    for entry in std::fs::read_dir(example_app()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            up.write(
                &format!("kubernetes/{name}"),
                &std::fs::read_to_string(entry.path()).unwrap(),
            );
        }
    }
    let commit = up.commit("example app");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("deploy.toml");
    std::fs::write(
        &config,
        format!(
            "[services.example]\nrepository = \"{}\"\nnamespace = \"shop\"\ntag_format = \"{{branch}}-{{commit}}\"\n{extra_config}",
            up.url()
        ),
    )
    .unwrap();
    (up, dir, config.display().to_string(), commit)
}

fn dry_run(args: &[&str], cache: &Path) -> std::process::Output {
    common::nprt()
        .args(args)
        .env("NPRT_CACHE_DIR", cache)
        .output()
        .unwrap()
}

fn docs(text: &str) -> Vec<serde_json::Value> {
    nprt::deploy::manifest::parse_documents(text, "stdout")
        .unwrap()
        .into_iter()
        .map(|m| m.object)
        .collect()
}

#[test]
fn canary_dry_run_prints_the_isolated_canary() {
    let (_up, dir, config, commit) = example_setup("");
    let out = dry_run(
        &["canary", "example", "--config", &config, "--dry-run"],
        dir.path(),
    );
    let stderr = common::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let objects = docs(&common::stdout(&out));
    let names: Vec<String> = objects
        .iter()
        .map(nprt::deploy::manifest::describe)
        .collect();
    assert_eq!(
        names,
        ["Service/web-canary", "Deployment/web-canary"],
        "{stderr}"
    );
    let tag = format!("main-{}", &commit[..7]);
    let web = &objects[1];
    assert_eq!(web["metadata"]["namespace"], "shop");
    assert_eq!(web["spec"]["replicas"], 1);
    let containers = &web["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        containers[0]["image"],
        format!("registry.example:5000/shop/web:{tag}")
    );
    assert_eq!(
        web["spec"]["template"]["metadata"]["annotations"]["nprt.io/commit"],
        commit
    );
    assert_eq!(
        web["spec"]["template"]["metadata"]["labels"]["app"],
        "web-canary"
    );
    // The worker is listed as left alone.
    assert!(stderr.contains("Deployment/worker"), "{stderr}");
    assert!(stderr.contains("no Service selects it"), "{stderr}");
}

#[test]
fn deploy_dry_run_prints_every_object_and_names_the_commit() {
    let (up, dir, config, first) = example_setup("");
    up.write("kubernetes/web.yaml", &deployment("web", "web"));
    let second = up.commit("second");
    let out = dry_run(
        &[
            "deploy",
            "example",
            "--config",
            &config,
            "--dry-run",
            "--commit",
            &first[..10],
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let objects = docs(&common::stdout(&out));
    assert!(objects.len() >= 4, "{objects:?}");
    let web = objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "web")
        .unwrap();
    assert_eq!(web["metadata"]["annotations"]["nprt.io/commit"], first);
    let env = web["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    assert!(
        env.contains(&serde_json::json!({"name": "NPRT_TRACK", "value": "stable"})),
        "{env:?}"
    );
    assert!(env.iter().any(|e| e["name"] == "LOG_LEVEL"), "{env:?}");

    let out = dry_run(
        &[
            "deploy",
            "example",
            "--config",
            &config,
            "--dry-run",
            "--tag",
            "v9",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let objects = docs(&common::stdout(&out));
    let web = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "web" && o["kind"] == "Deployment")
        .unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:v9"
    );
    assert_eq!(web["metadata"]["annotations"]["nprt.io/commit"], second);
}

#[test]
fn dry_run_errors_exit_2() {
    let (up, dir, config, _) = example_setup("");
    let run = |args: &[&str]| {
        let out = dry_run(args, dir.path());
        (out.status.code(), common::stderr(&out))
    };
    let (code, err) = run(&["canary", "nope", "--config", &config, "--dry-run"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no service `nope` (services: example)"),
        "{err}"
    );
    let (code, err) = run(&[
        "canary",
        "example",
        "--config",
        &config,
        "--dry-run",
        "--commit",
        "deadbeefdead",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no commit `deadbeefdead`"), "{err}");
    let (code, err) = run(&[
        "canary",
        "example",
        "--config",
        &config,
        "--dry-run",
        "--workload",
        "ghost",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no Deployment or StatefulSet named `ghost`"),
        "{err}"
    );
    // Without --dry-run and without a cluster: a runtime failure that says why.
    let out = common::nprt()
        .args([
            "canary",
            "example",
            "--skip-image-check",
            "--config",
            &config,
        ])
        .env("NPRT_CACHE_DIR", dir.path())
        .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("no usable cluster configuration"), "{err}");
    up.write("kubernetes/broken.yaml", "kind: [\n");
    up.commit("broken");
    let (code, err) = run(&["deploy", "example", "--config", &config, "--dry-run"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("kubernetes/broken.yaml: not valid YAML"),
        "{err}"
    );
}

#[test]
fn shared_exposure_and_explicit_workloads_from_the_cli() {
    let (_up, dir, config, _) = example_setup("");
    let out = dry_run(
        &[
            "canary",
            "example",
            "--config",
            &config,
            "--dry-run",
            "--exposure",
            "shared",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let objects = docs(&common::stdout(&out));
    let names: Vec<String> = objects
        .iter()
        .map(nprt::deploy::manifest::describe)
        .collect();
    assert_eq!(names, ["Deployment/web-canary", "Deployment/worker-canary"]);
    assert_eq!(
        objects[0]["spec"]["template"]["metadata"]["labels"]["app"],
        "web"
    );

    let out = dry_run(
        &[
            "canary",
            "example",
            "--config",
            &config,
            "--dry-run",
            "--workload",
            "worker",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let names: Vec<String> = docs(&common::stdout(&out))
        .iter()
        .map(nprt::deploy::manifest::describe)
        .collect();
    assert_eq!(names, ["Deployment/worker-canary"]);
}

#[test]
fn a_password_in_the_repository_url_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("deploy.toml");
    // Nothing listens there: the clone fails, and the message names the repository.
    let url =
        common::closed_port_url().replace("http://", "http://robot:s3cret-pass@") + "/shop.git";
    std::fs::write(
        &config,
        format!("[services.shop]\nrepository = \"{url}\"\n"),
    )
    .unwrap();
    for args in [&["canary", "shop", "--dry-run"][..], &["show", "shop"]] {
        let out = common::nprt()
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("NPRT_CACHE_DIR", dir.path().join("cache"))
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .unwrap();
        let all = format!("{}{}", common::stdout(&out), common::stderr(&out));
        assert!(!all.contains("s3cret-pass"), "{args:?}: {all}");
        assert!(all.contains("robot:***@127.0.0.1"), "{args:?}: {all}");
    }
}

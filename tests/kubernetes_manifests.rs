//! Every manifest under `kubernetes/` parses, type-checks against the Kubernetes 1.34 API
//! (k8s-openapi: a field the API does not have, or a value of the wrong type, fails), and the
//! deploy API's Role grants exactly the verbs and resources `src/deploy/cluster.rs` uses.

use k8s_openapi::api::{apps, batch, core, rbac};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kubernetes")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn objects(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    nprt::deploy::manifest::parse_documents(&text, &path.display().to_string())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|m| m.object)
        .collect()
}

fn all_objects() -> Vec<(PathBuf, Value)> {
    yaml_files(&root())
        .into_iter()
        .flat_map(|p| objects(&p).into_iter().map(move |o| (p.clone(), o)))
        .collect()
}

/// Deserialises `object` as `T` and serialises it back: anything the type does not know is
/// lost on the way and shows as a difference.
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
    object: &Value,
) -> Result<Value, String> {
    let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// The first place where `a` and `b` differ, as a path.
fn difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => difference(u, v, &p),
                    (Some(_), None) => Some(format!("{p}: not a field of the API type")),
                    (None, Some(_)) => Some(format!("{p}: added by the API type")),
                    (None, None) => None,
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| difference(u, v, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} became {b}")),
    }
}

fn type_check(object: &Value) -> Result<(), String> {
    let kind = (
        object["apiVersion"].as_str().unwrap_or(""),
        object["kind"].as_str().unwrap_or(""),
    );
    let back = match kind {
        ("v1", "ConfigMap") => round_trip::<core::v1::ConfigMap>(object),
        ("v1", "PersistentVolumeClaim") => round_trip::<core::v1::PersistentVolumeClaim>(object),
        ("v1", "Secret") => round_trip::<core::v1::Secret>(object),
        ("v1", "Service") => round_trip::<core::v1::Service>(object),
        ("v1", "ServiceAccount") => round_trip::<core::v1::ServiceAccount>(object),
        ("apps/v1", "Deployment") => round_trip::<apps::v1::Deployment>(object),
        ("apps/v1", "StatefulSet") => round_trip::<apps::v1::StatefulSet>(object),
        ("batch/v1", "Job") => round_trip::<batch::v1::Job>(object),
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<rbac::v1::Role>(object),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            round_trip::<rbac::v1::RoleBinding>(object)
        }
        other => {
            return Err(format!(
                "no API type known for {other:?}; add it to this test"
            ))
        }
    }?;
    match difference(object, &back, "") {
        None => Ok(()),
        Some(d) => Err(d),
    }
}

#[test]
fn every_manifest_is_a_valid_kubernetes_object() {
    let objects = all_objects();
    assert!(objects.len() >= 15, "{} objects", objects.len());
    for (path, object) in &objects {
        let name = format!(
            "{} {}/{}",
            path.display(),
            object["kind"].as_str().unwrap_or(""),
            object["metadata"]["name"].as_str().unwrap_or("")
        );
        type_check(object).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for file in [
        "deploy-api.yaml",
        "shadow-proxy.yaml",
        "mirror-sidecar.yaml",
        "replay-job.yaml",
        "replay-merge-job.yaml",
        "prometheus-scrape.yaml",
        "example-app/web.yaml",
    ] {
        assert!(
            objects.iter().any(|(p, _)| p.ends_with(file)),
            "kubernetes/{file} is missing"
        );
    }
}

#[test]
fn the_type_check_sees_misspelled_fields_and_wrong_types() {
    let good = serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"selector": {"app": "s"}, "ports": [{"port": 80, "targetPort": "http"}]}});
    type_check(&good).unwrap();
    let mut typo = good.clone();
    typo["spec"]["selectr"] = serde_json::json!({"app": "s"});
    let e = type_check(&typo).unwrap_err();
    assert!(e.contains(".spec.selectr"), "{e}");
    let mut wrong = good.clone();
    wrong["spec"]["ports"][0]["port"] = serde_json::json!("eighty");
    assert!(type_check(&wrong).is_err());
    let unknown = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    assert!(type_check(&unknown).is_err());
}

/// The verbs the deploy driver's kube calls need, read from `src/deploy/cluster.rs`.
fn verbs_used_by_the_driver() -> (BTreeSet<String>, BTreeSet<String>) {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/deploy/cluster.rs"),
    )
    .unwrap();
    let calls = regex::Regex::new(
        r"\.(get|get_opt|get_metadata|list|list_metadata|watch|patch|patch_status|create|replace|replace_status|delete|delete_collection|entry)\(",
    )
    .unwrap();
    let (mut apply, mut other) = (BTreeSet::new(), BTreeSet::new());
    for c in calls.captures_iter(&source) {
        match &c[1] {
            // Server-side apply: authorised as patch, and as create when the object is new.
            "patch" => {
                assert!(source.contains("Patch::Apply"), "only server-side apply is expected");
                apply.extend(["patch".to_owned(), "create".to_owned()]);
            }
            "get" | "get_opt" | "get_metadata" | "entry" => {
                other.insert("get".to_owned());
            }
            "list" | "list_metadata" => {
                other.insert("list".to_owned());
            }
            "delete" => {
                other.insert("delete".to_owned());
            }
            call => panic!("cluster.rs now calls Api::{call}: grant its verb in kubernetes/deploy-api.yaml and teach this test"),
        }
    }
    (apply, other)
}

fn plural(kind: &str) -> String {
    format!("{}s", kind.to_ascii_lowercase())
}

fn group(api_version: &str) -> String {
    api_version
        .rsplit_once('/')
        .map_or("", |(g, _)| g)
        .to_owned()
}

#[test]
fn the_deploy_role_grants_exactly_what_the_driver_uses() {
    let (apply_verbs, read_delete_verbs) = verbs_used_by_the_driver();
    assert_eq!(
        read_delete_verbs,
        BTreeSet::from(["delete".to_owned(), "get".to_owned(), "list".to_owned()])
    );
    // The canary kinds the driver reads and deletes (Cluster::CANARY_KINDS).
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/deploy/cluster.rs"),
    )
    .unwrap();
    let canary_kinds: Vec<(String, String)> =
        regex::Regex::new(r#"\("([a-z/0-9.]+)", "([A-Za-z]+)"\)"#)
            .unwrap()
            .captures_iter(&source)
            .map(|c| (group(&c[1]), plural(&c[2])))
            .collect();
    assert_eq!(canary_kinds.len(), 3, "{canary_kinds:?}");
    // What a deploy applies: the example app's kinds, and the canary's.
    let mut applied: BTreeSet<(String, String)> = canary_kinds.iter().cloned().collect();
    for path in yaml_files(&root().join("example-app")) {
        for o in objects(&path) {
            applied.insert((
                group(o["apiVersion"].as_str().unwrap()),
                plural(o["kind"].as_str().unwrap()),
            ));
        }
    }
    let mut wanted = BTreeSet::new();
    for (g, r) in &applied {
        for v in &apply_verbs {
            wanted.insert((g.clone(), r.clone(), v.clone()));
        }
    }
    for (g, r) in &canary_kinds {
        for v in &read_delete_verbs {
            wanted.insert((g.clone(), r.clone(), v.clone()));
        }
    }

    let deploy_api = objects(&root().join("deploy-api.yaml"));
    let roles: Vec<&Value> = deploy_api.iter().filter(|o| o["kind"] == "Role").collect();
    assert_eq!(roles.len(), 1, "one Role");
    let role: rbac::v1::Role = serde_json::from_value(roles[0].clone()).unwrap();
    let mut granted = BTreeSet::new();
    for rule in role.rules.unwrap_or_default() {
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
        for g in rule.api_groups.unwrap_or_default() {
            for r in rule.resources.clone().unwrap_or_default() {
                for v in &rule.verbs {
                    assert_ne!(v, "*", "no wildcard verbs");
                    assert_ne!(r, "*", "no wildcard resources");
                    granted.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    let missing: Vec<_> = wanted.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&wanted).collect();
    assert!(missing.is_empty(), "the Role lacks {missing:?}");
    assert!(
        extra.is_empty(),
        "the Role grants more than the driver uses: {extra:?}"
    );

    // Bound to the API's ServiceAccount, which the Deployment runs as; no cluster-wide grants.
    assert!(all_objects().iter().all(|(_, o)| !matches!(
        o["kind"].as_str(),
        Some("ClusterRole" | "ClusterRoleBinding")
    )));
    let binding = deploy_api
        .iter()
        .find(|o| o["kind"] == "RoleBinding")
        .unwrap();
    assert_eq!(binding["roleRef"]["name"], roles[0]["metadata"]["name"]);
    assert_eq!(
        binding["metadata"]["namespace"],
        roles[0]["metadata"]["namespace"]
    );
    let account = deploy_api
        .iter()
        .find(|o| o["kind"] == "ServiceAccount")
        .unwrap();
    assert_eq!(binding["subjects"][0]["name"], account["metadata"]["name"]);
    assert_eq!(
        binding["subjects"][0]["namespace"],
        account["metadata"]["namespace"]
    );
    let deployment = deploy_api
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        account["metadata"]["name"]
    );
}

fn containers(object: &Value) -> Vec<&Value> {
    object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|c| c.iter().collect())
        .unwrap_or_default()
}

fn capabilities(container: &Value, which: &str) -> Vec<String> {
    container["securityContext"]["capabilities"][which]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn nprt_containers_drop_every_capability_and_the_mirror_adds_net_raw_only() {
    let mut mirrors = 0;
    for (path, object) in all_objects() {
        if path.starts_with(root().join("example-app")) {
            continue;
        }
        for c in containers(&object) {
            let image = c["image"].as_str().unwrap();
            if !image.contains("/nprt") {
                continue;
            }
            let what = format!("{} {}", path.display(), c["name"]);
            assert_eq!(capabilities(c, "drop"), ["ALL"], "{what}");
            assert_eq!(
                c["securityContext"]["allowPrivilegeEscalation"], false,
                "{what}"
            );
            assert_eq!(
                c["securityContext"]["readOnlyRootFilesystem"], true,
                "{what}"
            );
            if c["args"][0] == "mirror" {
                mirrors += 1;
                assert_eq!(capabilities(c, "add"), ["NET_RAW"], "{what}");
            } else {
                assert!(capabilities(c, "add").is_empty(), "{what}");
            }
        }
    }
    assert_eq!(mirrors, 1, "the mirror sidecar example");
}

#[test]
fn the_sharded_replay_job_and_its_merge_agree_on_the_shards() {
    let job = objects(&root().join("replay-job.yaml"))
        .into_iter()
        .find(|o| o["kind"] == "Job")
        .unwrap();
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let n = spec["completions"].as_u64().unwrap();
    assert_eq!(spec["parallelism"].as_u64(), Some(n));
    let args: Vec<&str> = containers(&job)[0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "replay");
    assert!(
        args.contains(&format!("--shard=$(JOB_COMPLETION_INDEX)/{n}").as_str()),
        "{args:?}"
    );
    let summary = args
        .iter()
        .find_map(|a| a.strip_prefix("--summary="))
        .expect("--summary");
    let merge = objects(&root().join("replay-merge-job.yaml"))
        .into_iter()
        .find(|o| o["kind"] == "Job")
        .unwrap();
    let merge_args: Vec<&str> = containers(&merge)[0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(merge_args[0], "compare");
    let files: Vec<String> = (0..n)
        .map(|i| summary.replace("$(JOB_COMPLETION_INDEX)", &i.to_string()))
        .collect();
    assert_eq!(
        merge_args[1..=n as usize].to_vec(),
        files.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(!merge_args.contains(&format!("/data/summary-{n}.json").as_str()));
}

/// Every nprt container's arguments are ones the real binary accepts: each subcommand's own
/// flags, spelled as `--name=value`, parsed by `nprt ARGS --help` (clap rejects an unknown
/// flag before it gets to `--help`).
#[test]
fn nprt_container_arguments_are_accepted_by_the_binary() {
    let mut checked = 0;
    for (path, object) in all_objects() {
        for container in containers(&object) {
            let image = container["image"].as_str().unwrap_or_default();
            let Some(args) = container["args"].as_array() else {
                continue;
            };
            if !image.contains("nprt") {
                continue;
            }
            let args: Vec<&str> = args.iter().filter_map(Value::as_str).collect();
            // Environment references are the cluster's to expand.
            if args.iter().any(|a| a.contains("$(")) {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_nprt"))
                    .args([args[0], "--help"])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}: unknown subcommand {}",
                    path.display(),
                    args[0]
                );
                checked += 1;
                continue;
            }
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_nprt"))
                .args(&args)
                .arg("--help")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: nprt {args:?} is refused: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "nprt containers checked: {checked}");
}

//! The Prometheus example (kubernetes/prometheus-scrape.yaml) labels pods as the judge example
//! (kubernetes/judge-cadvisor.toml) queries them, and each of those queries selects exactly
//! one workload's pods: both run through promtool when it is there. (Beside
//! kubernetes_manifests.rs, which type-checks the ConfigMap with every other manifest.)

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kubernetes")
}

fn objects(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    nprt::deploy::manifest::parse_documents(&text, &path.display().to_string())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|m| m.object)
        .collect()
}

/// The `prometheus.yml` that kubernetes/prometheus-scrape.yaml holds, parsed.
fn scrape_config() -> Value {
    let configmap = objects(&root().join("prometheus-scrape.yaml"));
    assert_eq!(configmap.len(), 1, "one ConfigMap");
    let text = configmap[0]["data"]["prometheus.yml"]
        .as_str()
        .expect("data.prometheus.yml");
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("prometheus.yml: {e}"))
}

fn scrape_job<'a>(config: &'a Value, name: &str) -> &'a Value {
    config["scrape_configs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["job_name"] == name))
        .unwrap_or_else(|| panic!("no scrape job {name}"))
}

/// The judge example, kubernetes/judge-cadvisor.toml, as a JSON value.
fn judge_example() -> Value {
    let text = std::fs::read_to_string(root().join("judge-cadvisor.toml")).unwrap();
    let parsed: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    serde_json::to_value(parsed).unwrap()
}

/// Seconds in a Prometheus duration of one unit, as the two examples write them (`30s`, `1m`).
fn seconds(duration: &Value) -> u64 {
    let text = duration.as_str().unwrap();
    let (number, unit) = text.split_at(text.len() - 1);
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        _ => panic!("unexpected duration {text}"),
    };
    number.parse::<u64>().unwrap() * factor
}

/// The placeholders nprt fills in a judge query, per target.
const PLACEHOLDERS: [&str; 6] = [
    "target",
    "version",
    "track",
    "namespace",
    "workload",
    "step",
];

#[test]
fn the_prometheus_example_discovers_the_services_pods_and_every_nodes_cadvisor() {
    let config = scrape_config();
    let pods = scrape_job(&config, "kubernetes-pods");
    assert_eq!(
        pods["kubernetes_sd_configs"],
        serde_json::json!([{"role": "pod", "namespaces": {"names": ["shop"]}}])
    );
    let cadvisor = scrape_job(&config, "kubernetes-cadvisor");
    assert_eq!(
        cadvisor["kubernetes_sd_configs"],
        serde_json::json!([{"role": "node"}])
    );
    // A rate over one judge step needs two samples; three leave room for a late scrape.
    let interval = seconds(&config["global"]["scrape_interval"]);
    let step = seconds(&judge_example()["prometheus"]["step"]);
    assert!(
        step >= 3 * interval,
        "judge step {step}s, scrapes every {interval}s"
    );
}

#[test]
fn the_judge_example_uses_only_the_placeholders_nprt_fills() {
    let judge = judge_example();
    let metrics = judge["prometheus"]["metrics"].as_array().unwrap();
    assert!(metrics.len() >= 2);
    let placeholder = regex::Regex::new(r"\{([A-Za-z_]+)\}").unwrap();
    for metric in metrics {
        let query = metric["query"].as_str().unwrap();
        for found in placeholder.captures_iter(query) {
            assert!(
                PLACEHOLDERS.contains(&&found[1]),
                "{}: unknown placeholder {{{}}}",
                metric["name"],
                &found[1]
            );
        }
        // Pods by name: never a bare prefix, which would also select the canary's pods.
        assert!(!query.contains(r#"{workload}-.*""#), "{query}");
    }
    assert!(judge["prometheus"].get("token").is_none(), "never inline");
}

fn promtool() -> bool {
    let present = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    common::available("promtool", present)
}

/// Runs promtool with `args`; its stdout, or a panic with what it said.
fn run_promtool(args: &[&str]) -> String {
    let out = std::process::Command::new("promtool")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// One pod as Kubernetes service discovery describes it: a file_sd target group.
fn pod(name: &str, controller: (&str, &str), labels: &[(&str, &str)], scrape: bool) -> Value {
    let mut meta = serde_json::json!({
        "__meta_kubernetes_namespace": "shop",
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_controller_kind": controller.0,
        "__meta_kubernetes_pod_controller_name": controller.1,
    });
    for (k, v) in labels {
        meta[format!("__meta_kubernetes_{k}")] = serde_json::json!(v);
    }
    if scrape {
        meta["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] = "true".into();
        meta["__meta_kubernetes_pod_annotation_prometheus_io_port"] = "9102".into();
    }
    // Loopback: promtool only discovers and relabels, but an address is part of a target.
    serde_json::json!({"targets": ["127.0.0.1:8080"], "labels": meta})
}

/// The pods of namespace `shop` as Kubernetes discovery lists them: stable's and the canary's
/// (scraped at another path), a StatefulSet's, one that does not ask to be scraped, and one
/// still pending.
fn discovered_pods() -> Value {
    let mut pods = serde_json::json!([
        pod(
            "web-7d9f8c6b5d-x2x4z",
            ("ReplicaSet", "web-7d9f8c6b5d"),
            &[
                ("pod_label_nprt_io_version", "v1.4.2"),
                ("pod_label_track", "stable")
            ],
            true
        ),
        pod(
            "web-canary-5f6d7c8b9-q4w2z",
            ("ReplicaSet", "web-canary-5f6d7c8b9"),
            &[
                ("pod_label_nprt_io_version", "v1.5.0"),
                ("pod_label_track", "canary"),
                ("pod_annotation_prometheus_io_path", "/stats")
            ],
            true
        ),
        pod(
            "db-0",
            ("StatefulSet", "db"),
            &[("pod_label_track", "stable")],
            true
        ),
        pod(
            "worker-6b5c4d3f2-k8j7h",
            ("ReplicaSet", "worker-6b5c4d3f2"),
            &[],
            false
        ),
    ]);
    let mut pending = pod(
        "web-7d9f8c6b5d-p9r8s",
        ("ReplicaSet", "web-7d9f8c6b5d"),
        &[("pod_label_track", "stable")],
        true,
    );
    pending["labels"]["__meta_kubernetes_pod_phase"] = "Pending".into();
    pods.as_array_mut().unwrap().push(pending);
    pods
}

/// Debian's Prometheus is built without Kubernetes discovery (its promtool rejects
/// `kubernetes_sd_configs`), so the check swaps each job's discovery for a file with the meta
/// labels Kubernetes discovery sets, and lets promtool relabel those: everything but the
/// discovery itself is the example's.
#[test]
fn promtool_labels_the_pods_as_the_judge_example_queries_them() {
    if !promtool() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = scrape_config();
    for job in config["scrape_configs"].as_array_mut().unwrap() {
        let file = dir
            .path()
            .join(format!("{}.json", job["job_name"].as_str().unwrap()));
        job.as_object_mut().unwrap().remove("kubernetes_sd_configs");
        job["file_sd_configs"] = serde_json::json!([{ "files": [file] }]);
    }
    let pods = discovered_pods();
    std::fs::write(dir.path().join("kubernetes-pods.json"), pods.to_string()).unwrap();
    let nodes = serde_json::json!([{"targets": ["127.0.0.1:10250"],
        "labels": {"__meta_kubernetes_node_name": "node-1"}}]);
    std::fs::write(
        dir.path().join("kubernetes-cadvisor.json"),
        nodes.to_string(),
    )
    .unwrap();
    // JSON is YAML: promtool reads the rewritten configuration as written.
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, config.to_string()).unwrap();
    let file = file.to_str().unwrap();
    run_promtool(&["check", "config", "--syntax-only", file]);

    let targets = |job: &str| -> Vec<Value> {
        let out = run_promtool(&["check", "service-discovery", "--timeout=1s", file, job]);
        let found: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let kept = found
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["labels"].clone());
        kept.filter(|l| l.as_object().is_some_and(|o| !o.is_empty()))
            .collect()
    };
    let kept = targets("kubernetes-pods");
    let by_pod = |p: &str| {
        kept.iter()
            .find(|l| l["pod"] == p)
            .unwrap_or_else(|| panic!("{p} dropped: {kept:?}"))
    };
    let stable = by_pod("web-7d9f8c6b5d-x2x4z");
    for (label, want) in [
        ("namespace", "shop"),
        ("workload", "web"),
        ("track", "stable"),
        ("version", "v1.4.2"),
        ("__address__", "127.0.0.1:9102"),
        ("__metrics_path__", "/metrics"),
    ] {
        assert_eq!(stable[label], want, "{label}: {stable}");
    }
    let canary = by_pod("web-canary-5f6d7c8b9-q4w2z");
    for (label, want) in [
        ("workload", "web-canary"),
        ("track", "canary"),
        ("version", "v1.5.0"),
        ("__metrics_path__", "/stats"),
    ] {
        assert_eq!(canary[label], want, "{label}: {canary}");
    }
    assert_eq!(by_pod("db-0")["workload"], "db");
    assert_eq!(
        kept.len(),
        3,
        "the pod that does not ask to be scraped and the pending one are dropped: {kept:?}"
    );

    let nodes = targets("kubernetes-cadvisor");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    for (label, want) in [
        ("__scheme__", "https"),
        ("__address__", "kubernetes.default.svc:443"),
        (
            "__metrics_path__",
            "/api/v1/nodes/node-1/proxy/metrics/cadvisor",
        ),
        ("node", "node-1"),
    ] {
        assert_eq!(nodes[0][label], want, "{label}: {}", nodes[0]);
    }
}

/// What the cluster holds for the judge example's queries, every 10 s: per pod, CPU seconds
/// gained per sample, working-set bytes, open descriptors. Stable's two pods add up to 3
/// units, the baseline's pod to 4, the canary's to 5; everything else must stay out.
const SERIES: [(&str, &str, f64); 12] = [
    // cAdvisor: namespace, pod, container.
    (
        r#"namespace="shop", pod="web-7d9f8c6b5d-x2x4z", container="web""#,
        "cadvisor",
        1.0,
    ),
    (
        r#"namespace="shop", pod="web-7d9f8c6b5d-b7k9m", container="web""#,
        "cadvisor",
        2.0,
    ),
    (
        r#"namespace="shop", pod="web-baseline-6c7d8f9b4-m2n4p", container="web""#,
        "cadvisor",
        4.0,
    ),
    (
        r#"namespace="shop", pod="web-canary-5f6d7c8b9-q4w2z", container="web""#,
        "cadvisor",
        5.0,
    ),
    // The pod-level cgroup (no container), another Deployment, another namespace.
    (
        r#"namespace="shop", pod="web-7d9f8c6b5d-x2x4z""#,
        "cadvisor",
        30.0,
    ),
    (
        r#"namespace="shop", pod="web-api-8b9c7d6f5-z9y8x", container="api""#,
        "cadvisor",
        70.0,
    ),
    (
        r#"namespace="other", pod="web-7d9f8c6b5d-q2w3e", container="web""#,
        "cadvisor",
        90.0,
    ),
    // The app's own metrics with the pod labels the scrape config adds.
    (
        r#"namespace="shop", workload="web", track="stable", version="v1.4.2", pod="a""#,
        "app",
        1.0,
    ),
    (
        r#"namespace="shop", workload="web", track="stable", version="v1.4.2", pod="b""#,
        "app",
        2.0,
    ),
    (
        r#"namespace="shop", workload="web-baseline", track="baseline", version="v1.4.2""#,
        "app",
        4.0,
    ),
    (
        r#"namespace="shop", workload="web-canary", track="canary", version="v1.5.0""#,
        "app",
        5.0,
    ),
    // A stable pod of the release before, mid-rollout.
    (
        r#"namespace="shop", workload="web", track="stable", version="v1.4.1", pod="c""#,
        "app",
        70.0,
    ),
];

/// (target, version, track, workload) as nprt fills them for a canary with a baseline.
const TARGETS: [(&str, &str, &str, &str, f64); 3] = [
    ("stable", "v1.4.2", "stable", "web", 3.0),
    ("baseline", "v1.4.2", "baseline", "web-baseline", 4.0),
    ("canary", "v1.5.0", "canary", "web-canary", 5.0),
];

/// The unit of each example metric: what one unit of [`SERIES`] amounts to in its query.
fn unit(metric: &str) -> f64 {
    match metric {
        // A counter gaining 1 CPU second per 10 s sample: 0.1 of a core.
        "cpu per request" => 0.1,
        "memory growth" => 1_048_576.0,
        "open file descriptors" => 10.0,
        other => panic!("no expectation for the example metric `{other}`: add it here"),
    }
}

/// promtool evaluates every example query, filled for each target, over synthetic cAdvisor
/// and app series: each selects its own workload's pods and no other's.
#[test]
fn promtool_finds_that_each_judge_query_selects_only_its_workloads_pods() {
    if !promtool() {
        return;
    }
    let judge = judge_example();
    let step = judge["prometheus"]["step"].as_str().unwrap();
    let mut input = Vec::new();
    for (labels, source, units) in SERIES {
        let series = match source {
            "cadvisor" => [
                ("container_cpu_usage_seconds_total", format!("0+{units}x60")),
                (
                    "container_memory_working_set_bytes",
                    format!("{}+0x60", units * 1_048_576.0),
                ),
            ],
            _ => [
                ("process_open_fds", format!("{}+0x60", units * 10.0)),
                ("process_cpu_seconds_total", format!("0+{units}x60")),
            ],
        };
        for (name, values) in series {
            input.push(
                serde_json::json!({"series": format!("{name}{{{labels}}}"), "values": values}),
            );
        }
    }
    let mut tests = Vec::new();
    for metric in judge["prometheus"]["metrics"].as_array().unwrap() {
        let name = metric["name"].as_str().unwrap();
        for (target, version, track, workload, units) in TARGETS {
            let mut query = metric["query"].as_str().unwrap().to_owned();
            for (key, value) in [
                ("target", target),
                ("version", version),
                ("track", track),
                ("namespace", "shop"),
                ("workload", workload),
                ("step", step),
            ] {
                query = query.replace(&format!("{{{key}}}"), value);
            }
            tests.push(serde_json::json!({"expr": query, "eval_time": "5m",
                "exp_samples": [{"labels": "{}", "value": units * unit(name)}]}));
        }
    }
    let file = serde_json::json!({"rule_files": [], "evaluation_interval": "10s",
        "tests": [{"interval": "10s", "input_series": input, "promql_expr_test": tests}]});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("judge-queries.yml");
    std::fs::write(&path, file.to_string()).unwrap();
    run_promtool(&["test", "rules", path.to_str().unwrap()]);
}

#[test]
fn nprt_reads_the_judge_example() {
    let text = std::fs::read_to_string(root().join("judge-cadvisor.toml")).unwrap();
    let options =
        nprt::compare::judge_file::parse(&text, nprt::compare::Options::new("stable", "canary"))
            .unwrap_or_else(|e| panic!("judge-cadvisor.toml: {e}"));
    let p = options.prometheus.expect("a [prometheus] section");
    assert_eq!((p.step_s, p.settle_ms), (30, 60_000));
    let names: Vec<&str> = p.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["cpu per request", "memory growth", "open file descriptors"]
    );
    assert_eq!(p.metrics[1].kind, nprt::resource::config::Kind::Growth);
}

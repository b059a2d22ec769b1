//! The rewrite's rules on a small application (two Services, a served Deployment, a queue
//! worker, a ConfigMap): stable and canary tracks, both exposures, malformed input, label
//! values; the baseline track's rules are in `rewrite_tests/baseline.rs`.

use super::*;
use crate::deploy::manifest::parse_documents;

const APP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-config
data:
  LEVEL: info
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  labels: {app: shop}
spec:
  replicas: 3
  selector:
    matchLabels: {app: shop, tier: web}
  template:
    metadata:
      labels: {app: shop, tier: web, team: blue}
    spec:
      initContainers:
        - name: migrate
          image: registry:5000/shop-migrate
      containers:
        - name: shop
          image: registry:5000/shop
          env:
            - {name: NPRT_VERSION, value: old}
            - {name: LEVEL, value: info}
          x-unknown-field: kept
        - name: proxy
          image: envoyproxy/envoy:v1.30
        - name: pinned
          image: busybox@sha256:abcd
---
apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  type: NodePort
  clusterIP: 10.0.0.10
  selector: {app: shop}
  ports:
    - {port: 80, targetPort: 8080, nodePort: 30080}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {tier: web}
  ports:
    - {port: 81}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: worker
spec:
  selector:
    matchLabels: {app: worker}
  template:
    metadata:
      labels: {app: worker}
    spec:
      containers:
        - name: worker
          image: registry:5000/worker
"#;

fn objects(text: &str) -> Vec<Value> {
    parse_documents(text, "test.yaml")
        .unwrap()
        .into_iter()
        .map(|m| m.object)
        .collect()
}

fn release(track: Track, exposure: Exposure) -> Release {
    Release {
        service: "shop".to_owned(),
        version: "main-1234567".to_owned(),
        tag: "main-1234567".to_owned(),
        commit: Some("1234567890abcdef1234567890abcdef12345678".to_owned()),
        track,
        exposure,
        namespace: Some("prod".to_owned()),
        workloads: Vec::new(),
    }
}

fn find<'a>(plan: &'a Plan, kind_: &str, name_: &str) -> &'a Value {
    plan.objects
        .iter()
        .find(|o| kind(o) == kind_ && name(o) == name_)
        .unwrap_or_else(|| panic!("no {kind_}/{name_} in {:#?}", plan.objects))
}

fn env(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn labels(object: &Value, pointer: &str) -> BTreeMap<String, String> {
    string_map(object.pointer(pointer).unwrap_or(&Value::Null))
}

#[test]
fn stable_rewrites_workloads_only() {
    let input = objects(APP);
    let plan = rewrite(&input, &release(Track::Stable, Exposure::Shadow)).unwrap();
    assert_eq!(plan.objects.len(), input.len());
    assert_eq!(
        plan.tagged_images,
        [
            "registry:5000/shop-migrate:main-1234567",
            "registry:5000/shop:main-1234567",
            "registry:5000/worker:main-1234567",
        ]
    );
    assert!(plan.left_alone.is_empty());
    // Other kinds pass unchanged, apart from the namespace.
    let mut config = input[0].clone();
    config["metadata"]["namespace"] = json!("prod");
    assert_eq!(find(&plan, "ConfigMap", "shop-config"), &config);
    let mut service = input[2].clone();
    service["metadata"]["namespace"] = json!("prod");
    assert_eq!(find(&plan, "Service", "shop"), &service);

    let shop = find(&plan, "Deployment", "shop");
    assert_eq!(shop["spec"]["replicas"], 3);
    let containers = &shop["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "registry:5000/shop:main-1234567");
    assert_eq!(containers[1]["image"], "envoyproxy/envoy:v1.30");
    assert_eq!(containers[2]["image"], "busybox@sha256:abcd");
    assert_eq!(containers[0]["x-unknown-field"], "kept");
    let init = &shop["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["image"], "registry:5000/shop-migrate:main-1234567");
    // NPRT_* replace earlier values, other variables stay.
    assert_eq!(
        env(&containers[0]),
        [
            ("LEVEL".into(), "info".into()),
            ("NPRT_VERSION".into(), "main-1234567".into()),
            ("NPRT_TRACK".into(), "stable".into()),
        ]
    );
    for c in [&containers[1], &containers[2], init] {
        let e = env(c);
        assert!(e.contains(&("NPRT_VERSION".into(), "main-1234567".into())));
        assert!(e.contains(&("NPRT_TRACK".into(), "stable".into())));
    }
    for meta in ["/metadata", "/spec/template/metadata"] {
        let m = shop.pointer(meta).unwrap();
        assert_eq!(m["annotations"][VERSION_KEY], "main-1234567");
        assert_eq!(
            m["annotations"][COMMIT_KEY],
            "1234567890abcdef1234567890abcdef12345678"
        );
        assert_eq!(m["labels"][VERSION_KEY], "main-1234567");
        assert_eq!(m["labels"][TRACK_LABEL], "stable");
    }
    // The selector is immutable in the cluster: never touched for stable.
    assert_eq!(shop["spec"]["selector"], input[1]["spec"]["selector"]);
    assert_eq!(shop["metadata"]["namespace"], "prod");
    let worker = find(&plan, "Deployment", "worker");
    let pod_spec = worker["spec"]["template"]["spec"].as_object().unwrap();
    assert!(!pod_spec.contains_key("initContainers"), "{pod_spec:?}");
    assert_eq!(
        worker["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry:5000/worker:main-1234567"
    );
}

#[test]
fn rewrite_is_idempotent() {
    let input = objects(APP);
    let r = release(Track::Stable, Exposure::Shadow);
    let once = rewrite(&input, &r).unwrap();
    let twice = rewrite(&once.objects, &r).unwrap();
    assert_eq!(once, twice);
}

#[test]
fn statefulsets_are_rewritten_other_kinds_not() {
    let input = objects(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: data}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: postgres}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  template:
    spec:
      containers: [{name: a, image: agent}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      containers: [{name: a, image: job}]
---
apiVersion: v1
kind: Namespace
metadata: {name: prod}
"#,
    );
    let plan = rewrite(&input, &release(Track::Stable, Exposure::Shadow)).unwrap();
    let db = find(&plan, "StatefulSet", "db");
    assert_eq!(
        db["spec"]["template"]["spec"]["containers"][0]["image"],
        "postgres:main-1234567"
    );
    // An object's own namespace wins over the configured one.
    assert_eq!(db["metadata"]["namespace"], "data");
    let agent = find(&plan, "DaemonSet", "agent");
    assert_eq!(
        agent["spec"]["template"]["spec"]["containers"][0]["image"],
        "agent"
    );
    assert_eq!(agent["metadata"]["namespace"], "prod");
    assert_eq!(find(&plan, "Job", "once")["spec"], input[2]["spec"]);
    // Cluster-scoped kinds get no namespace.
    assert!(find(&plan, "Namespace", "prod")["metadata"]["namespace"].is_null());
}

#[test]
fn shadow_canary_is_isolated() {
    let input = objects(APP);
    let plan = rewrite(&input, &release(Track::Canary, Exposure::Shadow)).unwrap();
    let names: Vec<String> = plan.objects.iter().map(describe).collect();
    // Only canary objects: Services first, so the mirror target exists when pods start.
    assert_eq!(
        names,
        [
            "Service/shop-canary",
            "Service/web-canary",
            "Deployment/shop-canary"
        ]
    );
    assert_eq!(plan.left_alone.len(), 1);
    assert_eq!(plan.left_alone[0].0, "Deployment/worker");
    assert!(plan.left_alone[0].1.contains("no Service selects it"));

    let canary = find(&plan, "Deployment", "shop-canary");
    assert_eq!(canary["spec"]["replicas"], 1);
    assert_eq!(canary["metadata"]["labels"][TRACK_LABEL], "canary");
    assert_eq!(canary["metadata"]["labels"][SERVICE_KEY], "shop");
    let pod = labels(canary, "/spec/template/metadata/labels");
    assert_eq!(pod["app"], "shop-canary");
    assert_eq!(pod["tier"], "web-canary");
    assert_eq!(pod["team"], "blue", "labels no Service selects on stay");
    assert_eq!(pod[TRACK_LABEL], "canary");
    let selector = labels(canary, "/spec/selector/matchLabels");
    assert_eq!(
        selector,
        BTreeMap::from([
            ("app".into(), "shop-canary".into()),
            ("tier".into(), "web-canary".into()),
            (TRACK_LABEL.into(), "canary".into()),
        ])
    );
    for (k, v) in &selector {
        assert_eq!(
            pod.get(k),
            Some(v),
            "the canary's selector matches its pods"
        );
    }
    let c = &canary["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry:5000/shop:main-1234567");
    assert!(env(c).contains(&("NPRT_TRACK".into(), "canary".into())));

    // No production Service selects a canary pod.
    assert!(isolation_violations(&input, std::slice::from_ref(canary)).is_empty());
    let service = find(&plan, "Service", "shop-canary");
    assert_eq!(
        labels(service, "/spec/selector"),
        BTreeMap::from([
            ("app".into(), "shop-canary".into()),
            (TRACK_LABEL.into(), "canary".into()),
        ])
    );
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert!(service["spec"]["clusterIP"].is_null());
    assert_eq!(
        service["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080}])
    );
    assert_eq!(service["metadata"]["namespace"], "prod");
    assert_eq!(service["metadata"]["annotations"][CANARY_OF_KEY], "shop");
    assert_eq!(service["metadata"]["labels"][SERVICE_KEY], "shop");
    // The canary Service selects the canary pod, and no stable pod.
    assert!(selects(service, &pod));
    let stable = rewrite(&input, &release(Track::Stable, Exposure::Shadow)).unwrap();
    let stable_pod = labels(
        find(&stable, "Deployment", "shop"),
        "/spec/template/metadata/labels",
    );
    assert!(!selects(service, &stable_pod));
    assert!(!selects(find(&plan, "Service", "web-canary"), &stable_pod));
}

#[test]
fn shadow_guard_refuses_a_service_that_still_selects_the_canary() {
    let mut text = APP.to_owned();
    text.push_str(
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: sneaky}\nspec:\n  selector: {app: shop-canary}\n  ports: [{port: 1}]\n",
    );
    let err = rewrite(&objects(&text), &release(Track::Canary, Exposure::Shadow)).unwrap_err();
    assert_eq!(
        err,
        RewriteError::CanarySelected {
            service: "sneaky".into(),
            workload: "shop-canary".into()
        }
    );
    // A Service selecting on `track` alone also catches canaries.
    let mut text = APP.to_owned();
    text.push_str(
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: all-canaries}\nspec:\n  selector: {track: canary}\n",
    );
    let err = rewrite(&objects(&text), &release(Track::Canary, Exposure::Shadow)).unwrap_err();
    assert!(
        matches!(err, RewriteError::CanarySelected { ref service, .. } if service == "all-canaries"),
        "{err}"
    );
}

#[test]
fn services_in_other_namespaces_do_not_count() {
    let text = APP.replace(
        "kind: Service\nmetadata:\n  name: web\n",
        "kind: Service\nmetadata:\n  name: web\n  namespace: other\n",
    );
    let plan = rewrite(&objects(&text), &release(Track::Canary, Exposure::Shadow)).unwrap();
    let canary = find(&plan, "Deployment", "shop-canary");
    let pod = labels(canary, "/spec/template/metadata/labels");
    assert_eq!(
        pod["tier"], "web",
        "only Services of its namespace select it"
    );
    assert!(!plan.objects.iter().any(|o| name(o) == "web-canary"));
}

#[test]
fn explicitly_named_workloads_get_a_canary_without_a_service() {
    let mut r = release(Track::Canary, Exposure::Shadow);
    r.workloads = vec!["worker".into()];
    let plan = rewrite(&objects(APP), &r).unwrap();
    let names: Vec<String> = plan.objects.iter().map(describe).collect();
    assert_eq!(names, ["Deployment/worker-canary"]);
    assert_eq!(
        plan.left_alone,
        [("Deployment/shop".into(), "not named".into())]
    );
    let worker = &plan.objects[0];
    // `app` is a key Services select on, so it changes even though none selects `worker`.
    assert_eq!(
        worker["spec"]["template"]["metadata"]["labels"]["app"],
        "worker-canary"
    );
    assert_eq!(
        worker["spec"]["template"]["metadata"]["labels"][TRACK_LABEL],
        "canary"
    );

    r.workloads = vec!["nope".into()];
    assert_eq!(
        rewrite(&objects(APP), &r).unwrap_err(),
        RewriteError::UnknownWorkload("nope".into())
    );
}

#[test]
fn no_canary_at_all_is_an_error() {
    let text = APP.split("---").last().unwrap();
    let err = rewrite(&objects(text), &release(Track::Canary, Exposure::Shadow)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no workload gets a canary: Deployment/worker: no Service selects it"),
        "{err}"
    );
    let err = rewrite(
        &objects("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"),
        &release(Track::Canary, Exposure::Shadow),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no Deployment or StatefulSet"),
        "{err}"
    );
}

#[test]
fn shared_canary_keeps_selector_labels() {
    let input = objects(APP);
    let mut r = release(Track::Canary, Exposure::Shared);
    r.namespace = None;
    let plan = rewrite(&input, &r).unwrap();
    let names: Vec<String> = plan.objects.iter().map(describe).collect();
    // Every workload, and no canary Services: users reach the canary through production's.
    assert_eq!(
        names,
        ["Deployment/shop-canary", "Deployment/worker-canary"]
    );
    let canary = find(&plan, "Deployment", "shop-canary");
    let pod = labels(canary, "/spec/template/metadata/labels");
    assert_eq!(pod["app"], "shop");
    assert_eq!(pod["tier"], "web");
    assert_eq!(pod[TRACK_LABEL], "canary");
    assert_eq!(
        canary["spec"]["selector"]["matchLabels"][TRACK_LABEL],
        "canary"
    );
    assert_eq!(canary["spec"]["replicas"], 1);
    assert_eq!(
        isolation_violations(&input, std::slice::from_ref(canary)).len(),
        2
    );
}

#[test]
fn statefulset_canary_uses_its_canary_service() {
    let input = objects(
        r#"
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, resourceVersion: "12", uid: x}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: postgres}]
status: {replicas: 3}
"#,
    );
    let plan = rewrite(&input, &release(Track::Canary, Exposure::Shadow)).unwrap();
    let db = find(&plan, "StatefulSet", "db-canary");
    assert_eq!(db["spec"]["serviceName"], "db-canary");
    assert!(db["status"].is_null());
    assert!(db["metadata"]["resourceVersion"].is_null());
    assert!(db["metadata"]["uid"].is_null());
    assert_eq!(
        find(&plan, "Service", "db-canary")["spec"]["clusterIP"],
        "None"
    );
}

#[test]
fn match_expressions_on_selected_labels_are_refused() {
    let text = APP.replace(
        "matchLabels: {app: shop, tier: web}",
        "matchLabels: {tier: web}\n    matchExpressions: [{key: app, operator: In, values: [shop]}]",
    );
    let err = rewrite(&objects(&text), &release(Track::Canary, Exposure::Shadow)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Deployment/shop: selector matchExpressions use label `app`"),
        "{err}"
    );
}

#[test]
fn stable_keeps_a_track_label_its_selector_pins() {
    let text = APP
        .replace(
            "matchLabels: {app: shop, tier: web}",
            "matchLabels: {app: shop, tier: web, track: production}",
        )
        .replace(
            "labels: {app: shop, tier: web, team: blue}",
            "labels: {app: shop, tier: web, team: blue, track: production}",
        );
    let plan = rewrite(&objects(&text), &release(Track::Stable, Exposure::Shadow)).unwrap();
    let shop = find(&plan, "Deployment", "shop");
    assert_eq!(
        shop["spec"]["template"]["metadata"]["labels"][TRACK_LABEL],
        "production"
    );
}

#[test]
fn malformed_workloads() {
    let cases = [
        ("spec: {}", "has no spec.template.spec"),
        (
            "spec: {template: {spec: {containers: []}}}",
            "has no containers",
        ),
        (
            "spec: {template: {spec: {containers: [{name: a}]}}}",
            "containers `a` has no image",
        ),
        (
            "spec: {template: {spec: {containers: [{image: 'a b'}]}}}",
            "containers[0]: image `a b` is empty or contains whitespace",
        ),
    ];
    for (spec, message) in cases {
        let text =
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\n{spec}\n");
        let err = rewrite(&objects(&text), &release(Track::Stable, Exposure::Shadow)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Deployment/d: {message}"),
            "{spec}"
        );
    }
    let mut r = release(Track::Stable, Exposure::Shadow);
    r.tag = "not a tag".into();
    let err = rewrite(&objects(APP), &r).unwrap_err();
    assert!(err.to_string().contains("is not a valid tag"), "{err}");
}

#[test]
fn long_names_are_refused() {
    let long = "s".repeat(50);
    let text = format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: {long}}}\nspec:\n  selector: {{matchLabels: {{app: a}}}}\n  template:\n    metadata: {{labels: {{app: a}}}}\n    spec: {{containers: [{{name: a, image: a}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: a}}\nspec: {{selector: {{app: a}}}}\n"
    );
    let err = rewrite(&objects(&text), &release(Track::Canary, Exposure::Shadow)).unwrap_err();
    assert!(err.to_string().contains("longer than 52"), "{err}");
    let text = text
        .replace("name: a}}", "")
        .replace(&format!("name: {long}"), "name: a");
    let text = text.replace(
        "metadata: {name: a}\nspec: {selector",
        &format!("metadata: {{name: {}}}\nspec: {{selector", "v".repeat(60)),
    );
    let err = rewrite(&objects(&text), &release(Track::Canary, Exposure::Shadow)).unwrap_err();
    assert!(err.to_string().contains("longer than 63"), "{err}");
}

#[test]
fn label_values_stay_valid() {
    assert_eq!(label_value("main-1234567"), "main-1234567");
    assert_eq!(label_value("feature/x+y"), "feature-x-y");
    assert_eq!(label_value("-._x_.-"), "x");
    assert_eq!(label_value(&"a".repeat(100)).len(), 63);
    assert_eq!(
        label_value(&format!("{}-b", "a".repeat(62))),
        "a".repeat(62)
    );
    assert_eq!(label_value("///"), "");
    for s in ["feature/x", "a".repeat(80).as_str(), "x.-", "ümlaut", ""] {
        assert!(is_label_value(&label_value(s)), "{s}");
        assert!(is_label_value(&canary_label_value(s)), "{s}");
        assert_ne!(canary_label_value(s), label_value(s), "{s}");
    }
    let long = "a".repeat(63);
    assert_eq!(
        canary_label_value(&long),
        format!("{}-canary", "a".repeat(56))
    );
    assert!(!is_label_value(&"a".repeat(64)));
    assert!(!is_label_value("-a"));
    assert!(!is_label_value("a b"));
    // A long version still gives valid labels and the full annotation.
    let mut r = release(Track::Stable, Exposure::Shadow);
    r.version = format!("release/{}", "9".repeat(80));
    let plan = rewrite(&objects(APP), &r).unwrap();
    let shop = find(&plan, "Deployment", "shop");
    let label = shop["metadata"]["labels"][VERSION_KEY].as_str().unwrap();
    assert!(
        is_label_value(label) && label.starts_with("release-9"),
        "{label}"
    );
    assert_eq!(
        shop["metadata"]["annotations"][VERSION_KEY],
        json!(r.version)
    );
}

#[test]
fn without_commit_no_commit_annotation() {
    let mut r = release(Track::Stable, Exposure::Shadow);
    r.commit = None;
    r.namespace = None;
    let plan = rewrite(&objects(APP), &r).unwrap();
    let shop = find(&plan, "Deployment", "shop");
    assert!(shop["metadata"]["annotations"][COMMIT_KEY].is_null());
    assert!(shop["metadata"]["namespace"].is_null());
}

#[test]
fn output_round_trips_through_yaml() {
    let plan = rewrite(&objects(APP), &release(Track::Canary, Exposure::Shadow)).unwrap();
    let yaml = crate::deploy::manifest::to_yaml(&plan.objects).unwrap();
    assert_eq!(yaml.matches("\n---\n").count(), 2, "{yaml}");
    assert_eq!(objects(&yaml), plan.objects);
}

/// The baseline track (a fresh copy of stable beside the canary) has rules of its own.
#[path = "rewrite_tests/baseline.rs"]
mod baseline;

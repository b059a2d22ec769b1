//! The baseline track: the canary's rewrite at the stable release, on a track of its own that
//! neither the canary's nor production's Services select.

use super::*;

fn baseline_release() -> Release {
    Release {
        version: "main-0ld0ld0".to_owned(),
        tag: "main-0ld0ld0".to_owned(),
        commit: Some("0ld0ld0".to_owned()),
        ..release(Track::Baseline, Exposure::Shadow)
    }
}

#[test]
fn baseline_is_the_canary_rewrite_on_its_own_track() {
    let input = objects(APP);
    let plan = rewrite(&input, &baseline_release()).unwrap();
    let names: Vec<String> = plan.objects.iter().map(describe).collect();
    assert_eq!(
        names,
        [
            "Service/shop-baseline",
            "Service/web-baseline",
            "Deployment/shop-baseline"
        ]
    );
    assert_eq!(plan.left_alone[0].0, "Deployment/worker");

    let baseline = find(&plan, "Deployment", "shop-baseline");
    assert_eq!(baseline["spec"]["replicas"], 1);
    assert_eq!(baseline["metadata"]["labels"][TRACK_LABEL], "baseline");
    assert_eq!(baseline["metadata"]["labels"][SERVICE_KEY], "shop");
    assert_eq!(
        baseline["metadata"]["annotations"][VERSION_KEY],
        "main-0ld0ld0"
    );
    assert_eq!(baseline["metadata"]["annotations"][COMMIT_KEY], "0ld0ld0");
    let pod = labels(baseline, "/spec/template/metadata/labels");
    assert_eq!(pod["app"], "shop-baseline");
    assert_eq!(pod["tier"], "web-baseline");
    assert_eq!(pod["team"], "blue");
    assert_eq!(pod[TRACK_LABEL], "baseline");
    let selector = labels(baseline, "/spec/selector/matchLabels");
    assert_eq!(selector[TRACK_LABEL], "baseline");
    for (k, v) in &selector {
        assert_eq!(
            pod.get(k),
            Some(v),
            "the baseline's selector matches its pods"
        );
    }
    // Every container and init container: the stable version and the baseline track.
    let spec = &baseline["spec"]["template"]["spec"];
    for c in spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(spec["initContainers"].as_array().unwrap())
    {
        let e = env(c);
        assert!(e.contains(&("NPRT_TRACK".into(), "baseline".into())), "{c}");
        assert!(
            e.contains(&("NPRT_VERSION".into(), "main-0ld0ld0".into())),
            "{c}"
        );
    }
    assert_eq!(
        spec["containers"][0]["image"],
        "registry:5000/shop:main-0ld0ld0"
    );
    assert_eq!(plan.tagged_images.len(), 2);

    // Isolated from production, and its Services select its pods only.
    assert!(isolation_violations(&input, std::slice::from_ref(baseline)).is_empty());
    let service = find(&plan, "Service", "shop-baseline");
    assert_eq!(
        labels(service, "/spec/selector"),
        BTreeMap::from([
            ("app".into(), "shop-baseline".into()),
            (TRACK_LABEL.into(), "baseline".into()),
        ])
    );
    assert_eq!(service["metadata"]["annotations"][BASELINE_OF_KEY], "shop");
    assert!(service["metadata"]["annotations"][CANARY_OF_KEY].is_null());
    assert_eq!(service["metadata"]["labels"][TRACK_LABEL], "baseline");
    assert_eq!(service["metadata"]["namespace"], "prod");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080}])
    );
    assert!(selects(service, &pod));
}

#[test]
fn canary_and_baseline_are_apart() {
    let input = objects(APP);
    let canary = rewrite(&input, &release(Track::Canary, Exposure::Shadow)).unwrap();
    let baseline = rewrite(&input, &baseline_release()).unwrap();
    let canary_pod = labels(
        find(&canary, "Deployment", "shop-canary"),
        "/spec/template/metadata/labels",
    );
    let baseline_pod = labels(
        find(&baseline, "Deployment", "shop-baseline"),
        "/spec/template/metadata/labels",
    );
    for (plan, other_pod) in [(&canary, &baseline_pod), (&baseline, &canary_pod)] {
        for object in &plan.objects {
            let selector = if kind(object) == "Service" {
                labels(object, "/spec/selector")
            } else {
                labels(object, "/spec/selector/matchLabels")
            };
            assert!(
                !selector.iter().all(|(k, v)| other_pod.get(k) == Some(v)),
                "{} selects the other track's pods",
                describe(object)
            );
        }
    }
    let mut all: Vec<Value> = input.clone();
    all.extend(canary.objects.iter().chain(&baseline.objects).cloned());
    let workloads: Vec<Value> = all
        .iter()
        .filter(|o| is_workload(o) && o["metadata"]["labels"][TRACK_LABEL].is_string())
        .cloned()
        .collect();
    assert_eq!(workloads.len(), 2);
    let services: Vec<Value> = all
        .iter()
        .filter(|o| kind(o) == "Service")
        .cloned()
        .collect();
    assert_eq!(services.len(), 6);
    assert_eq!(cross_track_violations(&services, &workloads), []);
}

#[test]
fn cross_track_violations_are_found() {
    let input = objects(APP);
    let canary = rewrite(&input, &release(Track::Canary, Exposure::Shadow)).unwrap();
    let baseline = rewrite(&input, &baseline_release()).unwrap();
    let canary_workload = find(&canary, "Deployment", "shop-canary").clone();
    let baseline_workload = find(&baseline, "Deployment", "shop-baseline").clone();

    // A canary Service whose selector also fits baseline pods.
    let mut greedy = find(&canary, "Service", "shop-canary").clone();
    greedy["spec"]["selector"] = json!({"team": "blue"});
    let found = cross_track_violations(
        &[greedy],
        &[canary_workload.clone(), baseline_workload.clone()],
    );
    assert_eq!(
        found,
        [(
            "Service/shop-canary".to_owned(),
            "Deployment/shop-baseline".to_owned()
        )]
    );

    // A production Service selecting on a label the copies keep.
    let team = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "team", "namespace": "prod"},
        "spec": {"selector": {"team": "blue"}}});
    let found = cross_track_violations(
        &[team],
        &[canary_workload.clone(), baseline_workload.clone()],
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[1].1, "Deployment/shop-baseline");

    // A baseline whose workload selector would adopt canary pods.
    let mut adopting = baseline_workload.clone();
    adopting["spec"]["selector"]["matchLabels"] = json!({"team": "blue"});
    let found = cross_track_violations(&[], &[canary_workload.clone(), adopting]);
    assert_eq!(
        found,
        [(
            "Deployment/shop-baseline".to_owned(),
            "Deployment/shop-canary".to_owned()
        )]
    );
    // In another namespace nothing is selected.
    let mut elsewhere = baseline_workload;
    elsewhere["metadata"]["namespace"] = json!("other");
    elsewhere["spec"]["selector"]["matchLabels"] = json!({"team": "blue"});
    assert_eq!(
        cross_track_violations(&[], &[canary_workload, elsewhere]),
        []
    );
}

#[test]
fn shadow_guard_refuses_a_service_that_would_select_the_baseline() {
    let mut text = APP.to_owned();
    text.push_str(
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: sneaky}\nspec:\n  selector: {app: shop-baseline}\n  ports: [{port: 1}]\n",
    );
    let err = rewrite(&objects(&text), &baseline_release()).unwrap_err();
    assert_eq!(
        err,
        RewriteError::CanarySelected {
            service: "sneaky".into(),
            workload: "shop-baseline".into()
        }
    );
    assert!(err.to_string().contains("pods of shop-baseline"), "{err}");
    // The canary is not selected by it, so the canary plan passes.
    assert!(rewrite(&objects(&text), &release(Track::Canary, Exposure::Shadow)).is_ok());
    let mut text = APP.to_owned();
    text.push_str(
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: all-baselines}\nspec:\n  selector: {track: baseline}\n",
    );
    assert!(matches!(
        rewrite(&objects(&text), &baseline_release()),
        Err(RewriteError::CanarySelected { ref service, .. }) if service == "all-baselines"
    ));
}

#[test]
fn baseline_follows_the_canary_rules() {
    // A Service selecting on a label the workload's own selector pins by expression: the
    // baseline cannot change it, exactly like the canary.
    let text = APP.replace(
        "    matchLabels: {app: shop, tier: web}",
        "    matchLabels: {app: shop}\n    matchExpressions: [{key: tier, operator: In, values: [web]}]",
    );
    let err = rewrite(&objects(&text), &baseline_release()).unwrap_err();
    assert!(err.to_string().contains("matchExpressions"), "{err}");
    // And a shared baseline keeps the selector labels on its own track.
    let mut r = baseline_release();
    r.exposure = Exposure::Shared;
    let plan = rewrite(&objects(APP), &r).unwrap();
    let baseline = find(&plan, "Deployment", "shop-baseline");
    assert_eq!(
        baseline["spec"]["template"]["metadata"]["labels"]["app"],
        "shop"
    );
    assert_eq!(
        baseline["spec"]["selector"]["matchLabels"][TRACK_LABEL],
        "baseline"
    );
}

#[test]
fn baseline_label_values_differ_from_canary_and_original() {
    for s in ["shop", "a", "x".repeat(63).as_str(), "-", "web-canary"] {
        let b = track_label_value(s, Track::Baseline);
        assert!(is_label_value(&b), "{s}: {b}");
        assert_ne!(b, label_value(s), "{s}");
        assert_ne!(b, canary_label_value(s), "{s}");
    }
    assert_eq!(track_label_value("shop", Track::Baseline), "shop-baseline");
    assert_eq!(track_label_value("", Track::Baseline), "baseline");
    assert_eq!(track_label_value("shop", Track::Stable), "shop");
    // The StatefulSet name limit holds for the longer suffix too.
    let long = format!("db{}", "x".repeat(42));
    let text = format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: {long}}}\nspec:\n  serviceName: db\n  selector: {{matchLabels: {{app: db}}}}\n  template:\n    metadata: {{labels: {{app: db}}}}\n    spec: {{containers: [{{name: db, image: db}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: db}}\nspec: {{clusterIP: None, selector: {{app: db}}}}\n"
    );
    assert!(rewrite(&objects(&text), &release(Track::Canary, Exposure::Shadow)).is_ok());
    let err = rewrite(&objects(&text), &baseline_release()).unwrap_err();
    assert!(err.to_string().contains("baseline name"), "{err}");
}

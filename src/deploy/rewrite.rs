//! The rewrite of a service's manifests for one release: pure, no I/O.
//!
//! Input: the objects read from the service's manifests folder at the commit being deployed.
//! Output: the objects to apply. The rules (DESIGN.md, "Deploy driver rules"):
//!
//! - Deployments and StatefulSets are rewritten; every other kind passes unchanged.
//! - An image without a tag gets the release's tag; an image with a tag or a digest is left
//!   alone (sidecars maintained by others). `registry:5000/app` has no tag: the colon belongs
//!   to the host's port.
//! - Every container and init container gets `NPRT_VERSION` and `NPRT_TRACK`; workloads and pod
//!   templates get version annotations and valid label values.
//! - Canary, exposure `shadow`: `NAME-canary` with one replica whose pod labels no production
//!   Service selects, a `SVC-canary` Service per Service that selected the original pods, and a
//!   guard that refuses the plan if any Service would still select a canary pod. Only
//!   workloads some Service selects get a canary unless named explicitly: a canary of a queue
//!   worker would consume real jobs.
//! - Canary, exposure `shared`: the thesis's canary, keeping the selector labels.
//! - Baseline (Kayenta's practice: judge the canary against a fresh copy of production
//!   deployed at the same time, not against long-running production): the same rewrite as
//!   the canary at the stable release's commit and version, as `NAME-baseline`, `SVC-baseline`,
//!   `track: baseline`, selector label values ending in `-baseline`. Canary and baseline
//!   selectors never select each other's pods ([`cross_track_violations`]).
//!
//! A canary (or baseline) plan holds only the canary (or baseline) objects: ConfigMaps,
//! Secrets and the stable workloads belong to the stable release, and re-applying them at the
//! canary's commit would change production.

use super::config::Exposure;
use super::image;
use super::manifest::{describe, kind, name, namespace};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The label that tells stable and canary pods apart.
pub const TRACK_LABEL: &str = "track";
/// Label and annotation with the release's version.
pub const VERSION_KEY: &str = "nprt.io/version";
/// Annotation with the full commit.
pub const COMMIT_KEY: &str = "nprt.io/commit";
/// Annotation on a canary Service naming the Service it mirrors.
pub const CANARY_OF_KEY: &str = "nprt.io/canary-of";
/// Annotation on a baseline Service naming the Service it mirrors.
pub const BASELINE_OF_KEY: &str = "nprt.io/baseline-of";
/// Label on every canary object naming the deploy.toml service it belongs to, so rollback
/// finds exactly the driver's objects and nothing a user labelled `track: canary` by hand.
pub const SERVICE_KEY: &str = "nprt.io/service";
/// Suffix of canary object names and of changed selector label values.
pub const CANARY_SUFFIX: &str = "-canary";
/// Suffix of baseline object names and of changed selector label values.
pub const BASELINE_SUFFIX: &str = "-baseline";

/// Which release a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    Stable,
    Canary,
    /// A fresh copy of the stable release beside the canary, rewritten like it.
    Baseline,
}

impl Track {
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Stable => "stable",
            Track::Canary => "canary",
            Track::Baseline => "baseline",
        }
    }

    /// The suffix of the track's object names and changed label values (empty for stable).
    pub fn suffix(self) -> &'static str {
        match self {
            Track::Stable => "",
            Track::Canary => CANARY_SUFFIX,
            Track::Baseline => BASELINE_SUFFIX,
        }
    }

    /// The annotation on the track's Services naming the Service each mirrors (none for
    /// stable).
    pub fn mirror_of_key(self) -> Option<&'static str> {
        match self {
            Track::Stable => None,
            Track::Canary => Some(CANARY_OF_KEY),
            Track::Baseline => Some(BASELINE_OF_KEY),
        }
    }
}

/// What is being released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The deploy.toml service.
    pub service: String,
    /// The version shown to people and in `NPRT_VERSION` (usually the image tag).
    pub version: String,
    /// The tag given to untagged images.
    pub tag: String,
    /// The full commit, when the release comes from one.
    pub commit: Option<String>,
    pub track: Track,
    pub exposure: Exposure,
    /// Namespace for objects that name none.
    pub namespace: Option<String>,
    /// Workloads to canary regardless of the shadow rule; when given, only these.
    pub workloads: Vec<String>,
}

/// The outcome of a rewrite.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The objects to apply, in apply order.
    pub objects: Vec<Value>,
    /// Workloads without a canary, each with the reason.
    pub left_alone: Vec<(String, String)>,
    /// The images (with the release's tag) the tag was added to: those the registry must have.
    pub tagged_images: Vec<String>,
}

/// Why a plan was refused. Nothing is applied when any of these occurs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RewriteError {
    #[error("{object}: {message}")]
    Invalid { object: String, message: String },
    #[error("Service/{service} would select pods of {workload}; refusing to apply (rename its selector labels or remove the Service)")]
    CanarySelected { service: String, workload: String },
    #[error("{selector} would select pods of {workload}; refusing to apply (canary and baseline must stay apart from production and from each other)")]
    SelectedAcross { selector: String, workload: String },
    #[error("no Deployment or StatefulSet named `{0}` in the manifests")]
    UnknownWorkload(String),
    #[error("no workload gets a canary: {0}")]
    NoCanary(String),
}

fn invalid(object: &Value, message: impl Into<String>) -> RewriteError {
    RewriteError::Invalid {
        object: describe(object),
        message: message.into(),
    }
}

/// Deployments and StatefulSets: the kinds the driver rewrites.
pub fn is_workload(object: &Value) -> bool {
    matches!(kind(object), "Deployment" | "StatefulSet")
}

// Kinds that live outside namespaces; giving them one makes the API server refuse them.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "APIService",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "CSIDriver",
    "VolumeAttachment",
];

/// Whether objects of this kind live outside namespaces.
pub fn is_cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED.contains(&kind)
}

/// Rewrites `objects` for `release`.
///
/// # Errors
/// [`RewriteError`] when a workload is malformed, a named workload does not exist, a canary
/// plan would have no canary, or (exposure `shadow`) a Service would select a canary pod.
pub fn rewrite(objects: &[Value], release: &Release) -> Result<Plan, RewriteError> {
    let mut objects = objects.to_vec();
    if let Some(ns) = &release.namespace {
        for object in &mut objects {
            if namespace(object).is_none() && !CLUSTER_SCOPED.contains(&kind(object)) {
                object["metadata"]["namespace"] = json!(ns);
            }
        }
    }
    for wanted in &release.workloads {
        if !objects
            .iter()
            .any(|o| is_workload(o) && name(o) == wanted.as_str())
        {
            return Err(RewriteError::UnknownWorkload(wanted.clone()));
        }
    }
    match release.track {
        Track::Stable => {
            let mut out = Vec::with_capacity(objects.len());
            for mut object in objects {
                if is_workload(&object) {
                    stamp_workload(&mut object, release)?;
                }
                out.push(object);
            }
            Ok(Plan {
                tagged_images: tagged_images(&out, &release.tag),
                objects: out,
                left_alone: Vec::new(),
            })
        }
        Track::Canary | Track::Baseline => mirror(&objects, release),
    }
}

/// The canary or baseline plan (`release.track`).
fn mirror(objects: &[Value], release: &Release) -> Result<Plan, RewriteError> {
    let track = release.track;
    let services: Vec<&Value> = objects.iter().filter(|o| kind(o) == "Service").collect();
    let mut workloads = Vec::new();
    let mut canary_services: BTreeMap<String, Value> = BTreeMap::new();
    let mut left_alone = Vec::new();
    for object in objects.iter().filter(|o| is_workload(o)) {
        let explicit = release.workloads.iter().any(|w| w.as_str() == name(object));
        if !release.workloads.is_empty() && !explicit {
            left_alone.push((describe(object), "not named".to_owned()));
            continue;
        }
        let pod_labels = string_map(&object["spec"]["template"]["metadata"]["labels"]);
        let selecting: Vec<&Value> = services
            .iter()
            .copied()
            .filter(|s| same_namespace(s, object) && selects(s, &pod_labels))
            .collect();
        if release.exposure == Exposure::Shadow && selecting.is_empty() && !explicit {
            left_alone.push((
                describe(object),
                "no Service selects it (a canary of a worker would act on real work; name it to canary it anyway)".to_owned(),
            ));
            continue;
        }
        let mut copy = object.clone();
        match release.exposure {
            Exposure::Shadow => {
                // Every label some Service in the namespace selects on changes value, so no
                // production Service can select the canary, whatever it selects on.
                let changed: BTreeSet<String> = services
                    .iter()
                    .filter(|s| same_namespace(s, object))
                    .flat_map(|s| string_map(&s["spec"]["selector"]).into_keys())
                    .filter(|k| pod_labels.contains_key(k))
                    .collect();
                isolate_labels(&mut copy, &changed, track)?;
                for service in &selecting {
                    let canary_service = mirror_service(service, &changed, release)?;
                    if let Some(serving) = copy["spec"]["serviceName"].as_str() {
                        if serving == name(service) {
                            copy["spec"]["serviceName"] =
                                canary_service["metadata"]["name"].clone();
                        }
                    }
                    canary_services.insert(name(&canary_service).to_owned(), canary_service);
                }
            }
            Exposure::Shared => {
                copy["spec"]["selector"]["matchLabels"][TRACK_LABEL] = json!(track.as_str());
                copy["spec"]["template"]["metadata"]["labels"][TRACK_LABEL] = json!(track.as_str());
            }
        }
        make_copy(&mut copy, &release.service, track)?;
        stamp_workload(&mut copy, release)?;
        workloads.push(copy);
    }
    if workloads.is_empty() {
        let reasons: Vec<String> = left_alone
            .iter()
            .map(|(w, why)| format!("{w}: {why}"))
            .collect();
        return Err(RewriteError::NoCanary(if reasons.is_empty() {
            "the manifests hold no Deployment or StatefulSet".to_owned()
        } else {
            reasons.join("; ")
        }));
    }
    if release.exposure == Exposure::Shadow {
        let production: Vec<Value> = services.iter().map(|s| (*s).clone()).collect();
        if let Some((service, workload)) = isolation_violations(&production, &workloads).first() {
            return Err(RewriteError::CanarySelected {
                service: service.clone(),
                workload: workload.clone(),
            });
        }
    }
    let mut objects: Vec<Value> = canary_services.into_values().collect();
    objects.extend(workloads);
    Ok(Plan {
        tagged_images: tagged_images(&objects, &release.tag),
        objects,
        left_alone,
    })
}

/// Images of the workloads among `objects` that carry `tag` and that the release tagged
/// (pinned sidecars with the same tag by chance are included too: checking them is harmless).
fn tagged_images(objects: &[Value], tag: &str) -> Vec<String> {
    let suffix = format!(":{tag}");
    let mut images = BTreeSet::new();
    for object in objects.iter().filter(|o| is_workload(o)) {
        for list in ["containers", "initContainers"] {
            if let Some(containers) = object["spec"]["template"]["spec"][list].as_array() {
                for c in containers {
                    if let Some(image) = c["image"].as_str() {
                        if image.ends_with(&suffix) {
                            images.insert(image.to_owned());
                        }
                    }
                }
            }
        }
    }
    images.into_iter().collect()
}

/// The pairs (Service, canary or baseline workload) where a production Service selects the
/// workload's pods. Empty means they are isolated. Use it again on the Services found in the
/// cluster.
pub fn isolation_violations(services: &[Value], canaries: &[Value]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for canary in canaries {
        let labels = string_map(&canary["spec"]["template"]["metadata"]["labels"]);
        for service in services {
            if mirror_track(service).is_none()
                && same_namespace(service, canary)
                && selects(service, &labels)
            {
                found.push((name(service).to_owned(), name(canary).to_owned()));
            }
        }
    }
    found
}

/// The track of a canary or baseline Service made by the driver (by its `*-of` annotation and
/// `track` label); None for any other Service.
fn mirror_track(service: &Value) -> Option<&str> {
    let annotations = &service["metadata"]["annotations"];
    let ours = [CANARY_OF_KEY, BASELINE_OF_KEY]
        .iter()
        .any(|k| annotations[*k].is_string());
    ours.then(|| {
        service["metadata"]["labels"][TRACK_LABEL]
            .as_str()
            .unwrap_or("")
    })
}

/// The pairs (selecting object, workload) where something selects pods of a canary or
/// baseline workload it must not: a production Service among `services` (pass none for the
/// `shared` exposure, where production takes both on purpose), a canary or baseline Service
/// of the other track, or the workload selector of a copy of the other track (two workloads
/// fighting over pods). `workloads` are the copies of both tracks. Empty means canary,
/// baseline and production are apart.
pub fn cross_track_violations(services: &[Value], workloads: &[Value]) -> Vec<(String, String)> {
    let track_of = |w: &Value| {
        w["spec"]["template"]["metadata"]["labels"][TRACK_LABEL]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let mut found = Vec::new();
    for workload in workloads {
        let labels = string_map(&workload["spec"]["template"]["metadata"]["labels"]);
        let track = track_of(workload);
        for service in services {
            let allowed = mirror_track(service) == Some(track.as_str());
            if !allowed && same_namespace(service, workload) && selects(service, &labels) {
                found.push((describe(service), describe(workload)));
            }
        }
        for other in workloads {
            let selector = string_map(&other["spec"]["selector"]["matchLabels"]);
            if track_of(other) != track
                && same_namespace(other, workload)
                && !selector.is_empty()
                && selector
                    .iter()
                    .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
            {
                found.push((describe(other), describe(workload)));
            }
        }
    }
    found
}

fn same_namespace(a: &Value, b: &Value) -> bool {
    namespace(a) == namespace(b)
}

/// Whether a Service's selector selects pods with `labels`. A Service without a selector
/// selects nothing (its endpoints are managed by hand).
fn selects(service: &Value, labels: &BTreeMap<String, String>) -> bool {
    let selector = string_map(&service["spec"]["selector"]);
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The value a selector label takes on canary pods.
pub fn canary_label_value(value: &str) -> String {
    track_label_value(value, Track::Canary)
}

/// The value a selector label takes on pods of `track` (canary or baseline; stable keeps it).
pub fn track_label_value(value: &str, track: Track) -> String {
    if track == Track::Stable {
        return value.to_owned();
    }
    // Cut the original, not the suffix: a 63-character value plus a cut suffix would be the
    // original again, and production would still select the canary.
    let suffix = track.suffix();
    let mut base = label_value(value);
    base.truncate(63 - suffix.len());
    while base.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        base.pop();
    }
    if base.is_empty() {
        track.as_str().to_owned()
    } else {
        format!("{base}{suffix}")
    }
}

fn isolate_labels(
    workload: &mut Value,
    changed: &BTreeSet<String>,
    track: Track,
) -> Result<(), RewriteError> {
    let snapshot = workload.clone();
    if let Some(expressions) = workload["spec"]["selector"]["matchExpressions"].as_array() {
        for e in expressions {
            if let Some(key) = e["key"].as_str() {
                if changed.contains(key) {
                    return Err(invalid(
                        &snapshot,
                        format!("selector matchExpressions use label `{key}`, which a Service selects on; use matchLabels for it so the canary can change it"),
                    ));
                }
            }
        }
    }
    for path in [
        "/spec/selector/matchLabels",
        "/spec/template/metadata/labels",
    ] {
        if let Some(labels) = workload.pointer_mut(path).and_then(Value::as_object_mut) {
            for (key, value) in labels.iter_mut() {
                if changed.contains(key) {
                    let old = value.as_str().unwrap_or("").to_owned();
                    *value = json!(track_label_value(&old, track));
                }
            }
        }
    }
    workload["spec"]["selector"]["matchLabels"][TRACK_LABEL] = json!(track.as_str());
    workload["spec"]["template"]["metadata"]["labels"][TRACK_LABEL] = json!(track.as_str());
    Ok(())
}

fn make_copy(workload: &mut Value, service: &str, track: Track) -> Result<(), RewriteError> {
    let canary_name = format!("{}{}", name(workload), track.suffix());
    // A StatefulSet's pods carry a controller-revision-hash label of name + hash, and label
    // values stop at 63 characters.
    let limit = if kind(workload) == "StatefulSet" {
        52
    } else {
        253
    };
    if canary_name.len() > limit {
        return Err(invalid(
            workload,
            format!(
                "the {} name `{canary_name}` is longer than {limit} characters",
                track.as_str()
            ),
        ));
    }
    if let Some(meta) = workload["metadata"].as_object_mut() {
        for server_side in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(server_side);
        }
    }
    if let Some(obj) = workload.as_object_mut() {
        obj.remove("status");
    }
    workload["metadata"]["name"] = json!(canary_name);
    workload["metadata"]["labels"] = merged(&workload["metadata"]["labels"]);
    workload["metadata"]["labels"][TRACK_LABEL] = json!(track.as_str());
    workload["metadata"]["labels"][SERVICE_KEY] = json!(label_value(service));
    workload["spec"]["replicas"] = json!(1);
    Ok(())
}

/// The canary's (or baseline's) own Service beside a production Service that selected the
/// original pods.
fn mirror_service(
    service: &Value,
    changed: &BTreeSet<String>,
    release: &Release,
) -> Result<Value, RewriteError> {
    let track = release.track;
    let canary_name = format!("{}{}", name(service), track.suffix());
    if canary_name.len() > 63 {
        return Err(invalid(
            service,
            format!(
                "the {} Service name `{canary_name}` is longer than 63 characters",
                track.as_str()
            ),
        ));
    }
    let mut selector = Map::new();
    for (key, value) in string_map(&service["spec"]["selector"]) {
        let value = if changed.contains(&key) {
            track_label_value(&value, track)
        } else {
            value
        };
        selector.insert(key, json!(value));
    }
    selector.insert(TRACK_LABEL.to_owned(), json!(track.as_str()));
    // Only what a mirror needs: node ports, load balancers and fixed IPs belong to the
    // production Service and would clash.
    let ports: Vec<Value> = service["spec"]["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let mut p = p.clone();
                    if let Some(p) = p.as_object_mut() {
                        p.remove("nodePort");
                    }
                    p
                })
                .collect()
        })
        .unwrap_or_default();
    let mut spec = json!({ "type": "ClusterIP", "selector": selector, "ports": ports });
    if service["spec"]["clusterIP"].as_str() == Some("None") {
        spec["clusterIP"] = json!("None");
    }
    let mut labels = service["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[TRACK_LABEL] = json!(track.as_str());
    labels[SERVICE_KEY] = json!(label_value(&release.service));
    let mut annotations = Map::new();
    annotations.insert(
        track.mirror_of_key().unwrap_or(CANARY_OF_KEY).to_owned(),
        json!(name(service)),
    );
    annotations.insert(VERSION_KEY.to_owned(), json!(release.version));
    let mut metadata = json!({
        "name": canary_name,
        "labels": labels,
        "annotations": annotations,
    });
    if let Some(ns) = namespace(service) {
        metadata["namespace"] = json!(ns);
    }
    Ok(json!({ "apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec }))
}

/// Tags images, sets the environment, annotations and labels of a workload for `release`.
fn stamp_workload(workload: &mut Value, release: &Release) -> Result<(), RewriteError> {
    let snapshot = workload.clone();
    let track = release.track.as_str();
    let pod_spec = workload
        .pointer_mut("/spec/template/spec")
        .filter(|s| s.is_object())
        .ok_or_else(|| invalid(&snapshot, "has no spec.template.spec"))?;
    match pod_spec["containers"].as_array() {
        Some(c) if !c.is_empty() => {}
        _ => return Err(invalid(&snapshot, "has no containers")),
    }
    for list in ["containers", "initContainers"] {
        // `get_mut`, not indexing: indexing a missing key would add `initContainers: null`.
        let Some(containers) = pod_spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for (i, container) in containers.iter_mut().enumerate() {
            let label = container["name"]
                .as_str()
                .map_or_else(|| format!("{list}[{i}]"), |n| format!("{list} `{n}`"));
            let Some(img) = container["image"].as_str() else {
                return Err(invalid(&snapshot, format!("{label} has no image")));
            };
            let img = image::with_default_tag(img, &release.tag)
                .map_err(|e| invalid(&snapshot, format!("{label}: {e}")))?;
            container["image"] = json!(img);
            set_env(container, "NPRT_VERSION", &release.version);
            set_env(container, "NPRT_TRACK", track);
        }
    }
    let version_label = label_value(&release.version);
    let selector_has_track = workload["spec"]["selector"]["matchLabels"][TRACK_LABEL].is_string();
    for meta in ["/metadata", "/spec/template/metadata"] {
        if workload.pointer(meta).is_none_or(|m| !m.is_object()) {
            if let Some(spec) = workload.pointer_mut(meta.trim_end_matches("/metadata")) {
                spec["metadata"] = json!({});
            }
        }
        let Some(m) = workload.pointer_mut(meta) else {
            continue;
        };
        m["annotations"] = merged(&m["annotations"]);
        m["annotations"][VERSION_KEY] = json!(release.version);
        match &release.commit {
            Some(commit) => m["annotations"][COMMIT_KEY] = json!(commit),
            None => {
                if let Some(a) = m["annotations"].as_object_mut() {
                    a.remove(COMMIT_KEY);
                }
            }
        }
        m["labels"] = merged(&m["labels"]);
        if !version_label.is_empty() {
            m["labels"][VERSION_KEY] = json!(version_label);
        }
        // A stable workload whose own selector pins `track` keeps its value, or its
        // template would stop matching its selector.
        if !(release.track == Track::Stable && selector_has_track) {
            m["labels"][TRACK_LABEL] = json!(track);
        }
    }
    Ok(())
}

fn merged(value: &Value) -> Value {
    if value.is_object() {
        value.clone()
    } else {
        json!({})
    }
}

fn set_env(container: &mut Value, key: &str, value: &str) {
    if !container["env"].is_array() {
        container["env"] = json!([]);
    }
    if let Some(env) = container["env"].as_array_mut() {
        env.retain(|e| e["name"].as_str() != Some(key));
        env.push(json!({ "name": key, "value": value }));
    }
}

/// Whether `s` is a valid Kubernetes label value: at most 63 characters, alphanumerics with
/// `-`, `_` and `.` inside, alphanumeric at both ends (or empty).
pub fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric())
}

/// `s` made a valid label value: other characters become `-`, cut to 63, ends trimmed to an
/// alphanumeric. May be empty.
pub fn label_value(s: &str) -> String {
    let replaced: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = replaced.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut cut: String = trimmed.chars().take(63).collect();
    while cut.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        cut.pop();
    }
    cut
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;

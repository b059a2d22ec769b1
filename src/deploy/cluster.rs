//! The cluster side of a deploy (kube-rs): server-side apply with field manager `nprt`, waiting
//! for rollouts with [`rollout_state`], deleting a service's canary (and baseline) objects,
//! reading versions back.
//!
//! Objects stay generic (`DynamicObject`) here as in the rewrite; the resource path of a kind
//! comes from a table of the kinds services ship, with the usual English plural for others.

use super::manifest::{describe, kind, name, namespace};
use super::rewrite::{is_cluster_scoped, Track, SERVICE_KEY, TRACK_LABEL, VERSION_KEY};
use super::rollout::{rollout_state, Rollout};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::Value;
use std::time::Duration;

/// The first pause between polls; it doubles up to [`Cluster::poll`], so quick changes are
/// seen quickly without hammering the API server during long rollouts.
const FIRST_PAUSE: Duration = Duration::from_millis(50);

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "nprt";

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no usable cluster configuration (kubeconfig or in-cluster): {0}")]
    Config(String),
    #[error("{object}: field conflict with another manager: {message} (repeat with --force to take the fields over)")]
    Conflict { object: String, message: String },
    #[error("{object}: the API server refused it: {message}")]
    Refused { object: String, message: String },
    #[error("{object}: cannot reach the cluster: {source}")]
    Unreachable {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("{object}: rollout failed: {reason}")]
    RolloutFailed { object: String, reason: String },
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { seconds: u64, what: String },
}

impl ClusterError {
    /// Whether the request itself was at fault (exit 2) rather than the cluster (exit 4).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ClusterError::Conflict { .. } | ClusterError::Refused { .. }
        )
    }
}

fn classify(object: String, error: kube::Error) -> ClusterError {
    match error {
        kube::Error::Api(response) if response.code == 409 => ClusterError::Conflict {
            object,
            message: response.message,
        },
        kube::Error::Api(response) if (400..500).contains(&response.code) => {
            ClusterError::Refused {
                object,
                message: format!("{} ({})", response.message, response.code),
            }
        }
        source => ClusterError::Unreachable { object, source },
    }
}

/// A connection to one cluster, with the namespace used for objects that name none.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    namespace: String,
    /// The longest pause between polls of rollouts and deletions.
    pub poll: Duration,
}

/// What a workload runs, read back from the cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadStatus {
    pub object: String,
    pub track: String,
    pub version: Option<String>,
    pub commit: Option<String>,
    pub ready: String,
}

impl Cluster {
    /// Connects like kubectl: the kubeconfig (`KUBECONFIG`, `~/.kube/config`, optionally a
    /// named context), else the in-cluster service account.
    ///
    /// # Errors
    /// [`ClusterError::Config`] when neither is usable.
    pub async fn connect(context: Option<&str>) -> Result<Cluster, ClusterError> {
        let config = match context {
            Some(c) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
                context: Some(c.to_owned()),
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::Config(e.to_string()))?,
            None => kube::Config::infer()
                .await
                .map_err(|e| ClusterError::Config(e.to_string()))?,
        };
        let namespace = config.default_namespace.clone();
        let client =
            kube::Client::try_from(config).map_err(|e| ClusterError::Config(e.to_string()))?;
        Ok(Cluster::new(client, namespace))
    }

    pub fn new(client: kube::Client, namespace: String) -> Cluster {
        Cluster {
            client,
            namespace,
            poll: Duration::from_secs(1),
        }
    }

    /// The namespace of objects that name none.
    pub fn default_namespace(&self) -> &str {
        &self.namespace
    }

    /// The object the cluster holds under `object`'s kind, namespace and name, if any.
    ///
    /// # Errors
    /// The API's errors.
    pub async fn live(&self, object: &Value) -> Result<Option<Value>, ClusterError> {
        let found = self
            .api(object)
            .get_opt(name(object))
            .await
            .map_err(|e| classify(describe(object), e))?;
        Ok(found.map(|o| {
            let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
            v["kind"] = object["kind"].clone();
            v
        }))
    }

    fn api_for(&self, api_version: &str, kind_: &str, ns: Option<&str>) -> Api<DynamicObject> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind_);
        let resource = ApiResource::from_gvk_with_plural(&gvk, &plural(kind_));
        if is_cluster_scoped(kind_) {
            Api::all_with(self.client.clone(), &resource)
        } else {
            Api::namespaced_with(
                self.client.clone(),
                ns.unwrap_or(&self.namespace),
                &resource,
            )
        }
    }

    fn api(&self, object: &Value) -> Api<DynamicObject> {
        self.api_for(
            object["apiVersion"].as_str().unwrap_or("v1"),
            kind(object),
            namespace(object),
        )
    }

    /// Server-side applies every object, in order; the same objects applied twice change
    /// nothing. Returns the objects as the server holds them.
    ///
    /// # Errors
    /// The first refusal; objects before it are applied (apply is idempotent, so repeating
    /// the deploy after fixing the cause is safe).
    pub async fn apply(&self, objects: &[Value], force: bool) -> Result<Vec<Value>, ClusterError> {
        let mut params = PatchParams::apply(FIELD_MANAGER);
        if force {
            params = params.force();
        }
        let mut applied = Vec::with_capacity(objects.len());
        for object in objects {
            let live = self
                .api(object)
                .patch(name(object), &params, &Patch::Apply(object))
                .await
                .map_err(|e| classify(describe(object), e))?;
            applied.push(serde_json::to_value(live).unwrap_or(Value::Null));
            tracing::debug!(object = %describe(object), "applied");
        }
        Ok(applied)
    }

    /// Waits until every Deployment and StatefulSet among `objects` has rolled out.
    ///
    /// # Errors
    /// [`ClusterError::RolloutFailed`] (progress deadline exceeded),
    /// [`ClusterError::Timeout`], or the API's errors.
    pub async fn wait_rollout(
        &self,
        objects: &[Value],
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + timeout;
        for object in objects
            .iter()
            .filter(|o| matches!(kind(o), "Deployment" | "StatefulSet"))
        {
            let api = self.api(object);
            let mut pause = FIRST_PAUSE;
            loop {
                let live = api
                    .get(name(object))
                    .await
                    .map_err(|e| classify(describe(object), e))?;
                let live = serde_json::to_value(live).unwrap_or(Value::Null);
                match rollout_state(&live) {
                    Rollout::Complete => break,
                    Rollout::Failed(reason) => {
                        return Err(ClusterError::RolloutFailed {
                            object: describe(object),
                            reason,
                        })
                    }
                    Rollout::Progressing(what) => {
                        if tokio::time::Instant::now() + pause > deadline {
                            return Err(ClusterError::Timeout {
                                seconds: timeout.as_secs(),
                                what: format!("the rollout of {}: {what}", describe(object)),
                            });
                        }
                        tracing::debug!(object = %describe(object), %what, "rolling out");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(self.poll);
                    }
                }
            }
        }
        Ok(())
    }

    /// The kinds a canary consists of, in deletion order (pods' owners first).
    const CANARY_KINDS: [(&'static str, &'static str); 3] = [
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("v1", "Service"),
    ];

    fn track_selector(service: &str, track: Track) -> String {
        format!(
            "{SERVICE_KEY}={},{TRACK_LABEL}={}",
            super::rewrite::label_value(service),
            track.as_str()
        )
    }

    /// The `kind_` objects in `ns` that match the label `selector`, and the API they came from.
    async fn list_labelled(
        &self,
        api_version: &str,
        kind_: &str,
        ns: Option<&str>,
        selector: &str,
    ) -> Result<(Api<DynamicObject>, Vec<DynamicObject>), ClusterError> {
        let api = self.api_for(api_version, kind_, ns);
        let list = api
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| classify(format!("{kind_} list"), e))?;
        Ok((api, list.items))
    }

    /// Deletes the canary objects of `service` in `ns` and waits until they are gone.
    /// Returns what was deleted; nothing to delete is success (rollback is idempotent).
    ///
    /// # Errors
    /// [`ClusterError::Timeout`] when objects linger (finalizers), or the API's errors.
    pub async fn delete_canary(
        &self,
        service: &str,
        ns: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<String>, ClusterError> {
        self.delete_tracks(service, ns, &[Track::Canary], timeout)
            .await
    }

    /// Deletes the objects of `service` in `ns` on each of `tracks` (canary, baseline; the
    /// driver's labels `nprt.io/service` and `track`, never stable objects) and waits until
    /// they are gone. Returns what was deleted, track by track; nothing to delete is success.
    ///
    /// # Errors
    /// [`ClusterError::Timeout`] when objects linger (finalizers), or the API's errors.
    pub async fn delete_tracks(
        &self,
        service: &str,
        ns: Option<&str>,
        tracks: &[Track],
        timeout: Duration,
    ) -> Result<Vec<String>, ClusterError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut deleted = Vec::new();
        let mut pending = Vec::new();
        for track in tracks.iter().filter(|t| **t != Track::Stable) {
            let selector = Cluster::track_selector(service, *track);
            for (api_version, kind_) in Cluster::CANARY_KINDS {
                let (api, list) = self
                    .list_labelled(api_version, kind_, ns, &selector)
                    .await?;
                for item in list {
                    let item_name = item.metadata.name.clone().unwrap_or_default();
                    let what = format!("{kind_}/{item_name}");
                    match api.delete(&item_name, &DeleteParams::background()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(r)) if r.code == 404 => {}
                        Err(e) => return Err(classify(what, e)),
                    }
                    deleted.push(what);
                    pending.push((api.clone(), item_name));
                }
            }
        }
        for (api, item_name) in pending {
            let mut pause = FIRST_PAUSE;
            loop {
                match api.get_opt(&item_name).await {
                    Ok(None) => break,
                    Ok(Some(_)) => {
                        if tokio::time::Instant::now() + pause > deadline {
                            return Err(ClusterError::Timeout {
                                seconds: timeout.as_secs(),
                                what: format!("{item_name} to be deleted"),
                            });
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(self.poll);
                    }
                    Err(e) => return Err(classify(item_name.clone(), e)),
                }
            }
        }
        Ok(deleted)
    }

    /// The canary workloads of `service`, as the cluster holds them.
    ///
    /// # Errors
    /// The API's errors.
    pub async fn canary_workloads(
        &self,
        service: &str,
        ns: Option<&str>,
    ) -> Result<Vec<Value>, ClusterError> {
        self.track_workloads(service, ns, Track::Canary).await
    }

    /// The workloads of `service` on `track` (canary or baseline), as the cluster holds them.
    ///
    /// # Errors
    /// The API's errors.
    pub async fn track_workloads(
        &self,
        service: &str,
        ns: Option<&str>,
        track: Track,
    ) -> Result<Vec<Value>, ClusterError> {
        let selector = Cluster::track_selector(service, track);
        let mut out = Vec::new();
        for (api_version, kind_) in &Cluster::CANARY_KINDS[..2] {
            let (_, list) = self
                .list_labelled(api_version, kind_, ns, &selector)
                .await?;
            for item in list {
                let mut v = serde_json::to_value(item).unwrap_or(Value::Null);
                v["apiVersion"] = Value::from(*api_version);
                v["kind"] = Value::from(*kind_);
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Versions and readiness of the named workloads and of `service`'s canaries and
    /// baselines.
    ///
    /// # Errors
    /// The API's errors.
    pub async fn status(
        &self,
        workloads: &[Value],
        service: &str,
        ns: Option<&str>,
    ) -> Result<Vec<WorkloadStatus>, ClusterError> {
        let mut live = Vec::new();
        for w in workloads {
            live.extend(self.live(w).await?);
        }
        live.extend(self.track_workloads(service, ns, Track::Canary).await?);
        live.extend(self.track_workloads(service, ns, Track::Baseline).await?);
        Ok(live.iter().map(workload_status).collect())
    }
}

fn workload_status(v: &Value) -> WorkloadStatus {
    let annotations = &v["metadata"]["annotations"];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    WorkloadStatus {
        object: describe(v),
        track: text(&v["spec"]["template"]["metadata"]["labels"][TRACK_LABEL])
            .unwrap_or_else(|| "stable".to_owned()),
        version: text(&annotations[VERSION_KEY]),
        commit: text(&annotations[super::rewrite::COMMIT_KEY]),
        ready: format!(
            "{}/{}",
            v["status"]["availableReplicas"].as_i64().unwrap_or(0),
            v["spec"]["replicas"].as_i64().unwrap_or(1)
        ),
    }
}

/// The resource name of a kind.
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.as_str() {
        "endpoints" => lower,
        "ingress" => "ingresses".to_owned(),
        "networkpolicy" => "networkpolicies".to_owned(),
        "priorityclass" | "storageclass" | "ingressclass" | "runtimeclass" => format!("{lower}es"),
        _ if lower.ends_with('s') || lower.ends_with('x') => format!("{lower}es"),
        _ if lower.ends_with('y') && !lower.ends_with("ey") => {
            format!("{}ies", &lower[..lower.len() - 1])
        }
        _ => format!("{lower}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        for (k, p) in [
            ("Deployment", "deployments"),
            ("StatefulSet", "statefulsets"),
            ("Service", "services"),
            ("ConfigMap", "configmaps"),
            ("Ingress", "ingresses"),
            ("NetworkPolicy", "networkpolicies"),
            ("HorizontalPodAutoscaler", "horizontalpodautoscalers"),
            ("PodDisruptionBudget", "poddisruptionbudgets"),
            ("StorageClass", "storageclasses"),
            ("Endpoints", "endpoints"),
            ("ServiceAccount", "serviceaccounts"),
        ] {
            assert_eq!(plural(k), p);
        }
    }

    #[test]
    fn status_lines() {
        let v: Value = serde_saphyr::from_str("kind: Deployment\nmetadata: {name: web-canary, annotations: {nprt.io/version: v2, nprt.io/commit: abc}}\nspec: {replicas: 1, template: {metadata: {labels: {track: canary}}}}\nstatus: {availableReplicas: 1}\n").unwrap();
        assert_eq!(
            workload_status(&v),
            WorkloadStatus {
                object: "Deployment/web-canary".into(),
                track: "canary".into(),
                version: Some("v2".into()),
                commit: Some("abc".into()),
                ready: "1/1".into(),
            }
        );
    }
}

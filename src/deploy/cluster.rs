//! The cluster side of a deploy (kube-rs): server-side apply with field manager `nprt`, waiting
//! for rollouts with [`rollout_state`], deleting a service's canary (and baseline) objects,
//! reading versions back.
//!
//! Objects stay generic (`DynamicObject`) here as in the rewrite; the resource name (plural)
//! and scope of a kind come from the API server's discovery, asked once per group version
//! and kept for the life of the [`Cluster`], so any kind the cluster serves (custom resources
//! of installed CRDs included) can be in a service's manifests.

use super::manifest::{describe, kind, name, namespace};
use super::rewrite::{Track, SERVICE_KEY, TRACK_LABEL, VERSION_KEY};
use super::rollout::{rollout_state, Rollout};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersion;
use kube::discovery::Scope;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    #[error("{object}: the cluster serves no kind {kind} in {api_version}; is its CustomResourceDefinition installed?")]
    UnknownKind {
        object: String,
        kind: String,
        api_version: String,
    },
}

impl ClusterError {
    /// Whether the request itself was at fault (exit 2) rather than the cluster (exit 4).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ClusterError::Conflict { .. }
                | ClusterError::Refused { .. }
                | ClusterError::UnknownKind { .. }
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
    /// What discovery said, by group version (`apps/v1`): each served kind's resource and
    /// whether it is namespaced. Shared by the clones of one connection.
    resources: Arc<Mutex<HashMap<String, Arc<Vec<Served>>>>>,
}

/// One kind a group version serves.
#[derive(Debug, Clone)]
struct Served {
    resource: ApiResource,
    namespaced: bool,
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
            resources: Arc::new(Mutex::new(HashMap::new())),
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
        let (api, _) = self.api(object).await?;
        let found = api
            .get_opt(name(object))
            .await
            .map_err(|e| classify(describe(object), e))?;
        Ok(found.map(|o| {
            let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
            v["kind"] = object["kind"].clone();
            v
        }))
    }

    /// The kinds `api_version` serves: from discovery on first use (or when `refresh`), and
    /// whether the answer is fresh from discovery.
    async fn served(
        &self,
        api_version: &str,
        kind_: &str,
        object: &str,
        refresh: bool,
    ) -> Result<(Arc<Vec<Served>>, bool), ClusterError> {
        let cached = self
            .resources
            .lock()
            .ok()
            .and_then(|r| r.get(api_version).cloned());
        if let (Some(known), false) = (cached, refresh) {
            return Ok((known, false));
        }
        let unknown = || ClusterError::UnknownKind {
            object: object.to_owned(),
            kind: kind_.to_owned(),
            api_version: api_version.to_owned(),
        };
        let gv: GroupVersion = api_version.parse().map_err(|_| unknown())?;
        let group = match kube::discovery::pinned_group(&self.client, &gv).await {
            Ok(group) => group,
            // The group version is not served at all.
            Err(kube::Error::Api(r)) if r.code == 404 => return Err(unknown()),
            Err(e) => return Err(classify(object.to_owned(), e)),
        };
        let served: Arc<Vec<Served>> = Arc::new(
            group
                .versioned_resources(&gv.version)
                .into_iter()
                .map(|(resource, caps)| Served {
                    resource,
                    namespaced: caps.scope == Scope::Namespaced,
                })
                .collect(),
        );
        tracing::debug!(%api_version, kinds = served.len(), "discovered");
        if let Ok(mut r) = self.resources.lock() {
            r.insert(api_version.to_owned(), Arc::clone(&served));
        }
        Ok((served, true))
    }

    /// The API of `kind_` in `api_version` (objects in `ns`, or the default namespace, when
    /// the kind is namespaced), and whether it is namespaced.
    ///
    /// # Errors
    /// [`ClusterError::UnknownKind`] when the cluster does not serve the kind; discovery's
    /// errors.
    async fn api_for(
        &self,
        api_version: &str,
        kind_: &str,
        ns: Option<&str>,
        object: &str,
    ) -> Result<(Api<DynamicObject>, bool), ClusterError> {
        let (mut served, fresh) = self.served(api_version, kind_, object, false).await?;
        if !fresh && !served.iter().any(|s| s.resource.kind == kind_) {
            // Perhaps a CRD installed since the group version was discovered.
            served = self.served(api_version, kind_, object, true).await?.0;
        }
        let Some(found) = served.iter().find(|s| s.resource.kind == kind_) else {
            return Err(ClusterError::UnknownKind {
                object: object.to_owned(),
                kind: kind_.to_owned(),
                api_version: api_version.to_owned(),
            });
        };
        let api = if found.namespaced {
            Api::namespaced_with(
                self.client.clone(),
                ns.unwrap_or(&self.namespace),
                &found.resource,
            )
        } else {
            Api::all_with(self.client.clone(), &found.resource)
        };
        Ok((api, found.namespaced))
    }

    async fn api(&self, object: &Value) -> Result<(Api<DynamicObject>, bool), ClusterError> {
        self.api_for(
            object["apiVersion"].as_str().unwrap_or("v1"),
            kind(object),
            namespace(object),
            &describe(object),
        )
        .await
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
            let (api, namespaced) = self.api(object).await?;
            let mut body = std::borrow::Cow::Borrowed(object);
            if !namespaced && namespace(object).is_some() {
                // A namespace given to a cluster-wide kind (the rewrite puts the service's
                // namespace on every kind it does not know) means nothing.
                if let Some(metadata) = body.to_mut()["metadata"].as_object_mut() {
                    metadata.remove("namespace");
                }
            }
            let live = api
                .patch(name(object), &params, &Patch::Apply(body.as_ref()))
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
            let (api, _) = self.api(object).await?;
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
        let (api, _) = self
            .api_for(api_version, kind_, ns, &format!("{kind_} list"))
            .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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

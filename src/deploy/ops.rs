//! The driver's operations, shared by the command line and the deploy API: deploy, canary,
//! rollback, promote, status, tags. Each returns a JSON outcome with a timing breakdown, or an
//! [`OpError`] that says whether the request or the world was at fault.

use super::cluster::{Cluster, ClusterError};
use super::config::ServiceConfig;
use super::driver::{prepare, PrepareError, Request};
use super::registry::{split_image, Credentials, RegistryClient, RegistryError};
use super::rewrite::{is_workload, Track, COMMIT_KEY, VERSION_KEY};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OpError {
    /// The request was wrong (exit 2, HTTP 400); otherwise the cluster, registry or git
    /// failed (exit 4, HTTP 502).
    pub bad_input: bool,
    pub message: String,
}

impl OpError {
    fn bad(e: impl std::fmt::Display) -> OpError {
        OpError {
            bad_input: true,
            message: e.to_string(),
        }
    }
    fn runtime(e: impl std::fmt::Display) -> OpError {
        OpError {
            bad_input: false,
            message: e.to_string(),
        }
    }
}

impl From<ClusterError> for OpError {
    fn from(e: ClusterError) -> Self {
        OpError {
            bad_input: e.is_bad_input(),
            message: e.to_string(),
        }
    }
}

impl From<PrepareError> for OpError {
    fn from(e: PrepareError) -> Self {
        OpError {
            bad_input: !e.is_runtime(),
            message: e.to_string(),
        }
    }
}

/// Where the cluster is: connected already, or to connect to like kubectl when first needed
/// (so requests refused before the cluster matters never wait for it).
#[derive(Clone)]
pub enum Target {
    Connected(Cluster),
    Kubeconfig { context: Option<String> },
}

impl Target {
    /// The cluster, connecting if needed.
    ///
    /// # Errors
    /// A runtime [`OpError`] when no cluster configuration is usable.
    pub async fn cluster(&self) -> Result<Cluster, OpError> {
        match self {
            Target::Connected(c) => Ok(c.clone()),
            Target::Kubeconfig { context } => Cluster::connect(context.as_deref())
                .await
                .map_err(OpError::runtime),
        }
    }
}

/// Settings every operation shares.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The repository cache.
    pub cache: std::path::PathBuf,
    /// The deploy.toml, for messages.
    pub config_file: std::path::PathBuf,
    pub timeout: Duration,
    pub force: bool,
    pub skip_image_check: bool,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A registry client with the service's credentials.
///
/// # Errors
/// When the password secret cannot be read (bad input) or TLS cannot be set up.
pub fn registry_client(
    service: &ServiceConfig,
    config_file: &Path,
) -> Result<RegistryClient, OpError> {
    let credentials = match (&service.registry.username, &service.registry.password) {
        (Some(username), Some(secret)) => Some(Credentials {
            username: username.clone(),
            password: secret.resolve().map_err(|message| {
                OpError::bad(super::ConfigError::Secret {
                    file: config_file.display().to_string(),
                    field: format!("services.{}.registry.password", service.name),
                    message,
                })
            })?,
        }),
        _ => None,
    };
    RegistryClient::new(credentials).map_err(OpError::runtime)
}

async fn check_images(
    service: &ServiceConfig,
    config_file: &Path,
    images: &[String],
) -> Result<(), OpError> {
    if images.is_empty() {
        return Ok(());
    }
    let client = registry_client(service, config_file)?;
    for image in images {
        let Some((name, tag)) = image.rsplit_once(':') else {
            continue;
        };
        let exists = client
            .tag_exists(&split_image(name), tag)
            .await
            .map_err(|e| match e {
                RegistryError::Auth { .. } => OpError::bad(e),
                _ => OpError::runtime(e),
            })?;
        if !exists {
            return Err(OpError::bad(format!(
                "image {image} is not in the registry; push it first, or deploy with --skip-image-check"
            )));
        }
    }
    Ok(())
}

/// [`prepare`] on a blocking thread: git runs as child processes and must not hold up the
/// async workers serving other requests.
async fn prepare_off_thread(
    service: &ServiceConfig,
    request: &Request,
    settings: &Settings,
) -> Result<super::driver::Prepared, OpError> {
    let (service, request, cache) = (service.clone(), request.clone(), settings.cache.clone());
    tokio::task::spawn_blocking(move || prepare(&service, &request, &cache))
        .await
        .map_err(OpError::runtime)?
        .map_err(OpError::from)
}

/// Deploys (stable or canary) and waits for the rollout.
///
/// # Errors
/// [`OpError`].
pub async fn deploy(
    target: &Target,
    service: &ServiceConfig,
    request: &Request,
    settings: &Settings,
) -> Result<Value, OpError> {
    let started = Instant::now();
    let prepared = prepare_off_thread(service, request, settings).await?;
    let fetch = started.elapsed();
    let t = Instant::now();
    if !settings.skip_image_check {
        check_images(service, &settings.config_file, &prepared.plan.tagged_images).await?;
    }
    let validate = t.elapsed();
    let cluster = target.cluster().await?;
    let t = Instant::now();
    cluster
        .apply(&prepared.plan.objects, settings.force)
        .await?;
    let apply = t.elapsed();
    let t = Instant::now();
    cluster
        .wait_rollout(&prepared.plan.objects, settings.timeout)
        .await?;
    let rollout = t.elapsed();
    Ok(json!({
        "service": service.name,
        "track": request.track.as_str(),
        "version": prepared.release.version,
        "commit": prepared.commit,
        "applied": prepared.plan.objects.iter().map(super::manifest::describe).collect::<Vec<_>>(),
        "left_alone": prepared.plan.left_alone.iter().map(|(w, _)| w).collect::<Vec<_>>(),
        "timing_ms": {
            "fetch_and_rewrite": millis(fetch),
            "validate": millis(validate),
            "apply": millis(apply),
            "rollout": millis(rollout),
            "total": millis(started.elapsed()),
        },
    }))
}

/// Deletes the service's canary and waits until it is gone.
///
/// # Errors
/// [`OpError`].
pub async fn rollback(
    target: &Target,
    service: &ServiceConfig,
    settings: &Settings,
) -> Result<Value, OpError> {
    let started = Instant::now();
    let cluster = target.cluster().await?;
    let deleted = cluster
        .delete_canary(
            &service.name,
            service.namespace.as_deref(),
            settings.timeout,
        )
        .await?;
    Ok(json!({
        "service": service.name,
        "deleted": deleted,
        "timing_ms": { "total": millis(started.elapsed()) },
    }))
}

/// Deploys the canary's commit and version as stable, then removes the canary.
///
/// # Errors
/// [`OpError`]; bad input when there is no canary of exactly one commit.
pub async fn promote(
    target: &Target,
    service: &ServiceConfig,
    settings: &Settings,
) -> Result<Value, OpError> {
    let started = Instant::now();
    let cluster = target.cluster().await?;
    let canaries = cluster
        .canary_workloads(&service.name, service.namespace.as_deref())
        .await?;
    let annotation = |key: &str| -> std::collections::BTreeSet<String> {
        canaries
            .iter()
            .filter_map(|c| {
                c["metadata"]["annotations"][key]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    };
    let (commits, versions) = (annotation(COMMIT_KEY), annotation(VERSION_KEY));
    let (Some(commit), Some(version), 1, 1) = (
        commits.first(),
        versions.first(),
        commits.len(),
        versions.len(),
    ) else {
        return Err(OpError::bad(format!(
            "service {}: promote needs a canary of one commit in the cluster; found {} canary workloads with commits {:?}",
            service.name,
            canaries.len(),
            commits
        )));
    };
    let request = Request {
        track: Track::Stable,
        commit: Some(commit.clone()),
        tag: Some(version.clone()),
        exposure: None,
        workloads: Vec::new(),
    };
    let prepared = prepare_off_thread(service, &request, settings).await?;
    cluster
        .apply(&prepared.plan.objects, settings.force)
        .await?;
    cluster
        .wait_rollout(&prepared.plan.objects, settings.timeout)
        .await?;
    let deleted = cluster
        .delete_canary(
            &service.name,
            service.namespace.as_deref(),
            settings.timeout,
        )
        .await?;
    Ok(json!({
        "service": service.name,
        "promoted": version,
        "commit": commit,
        "deleted": deleted,
        "timing_ms": { "total": millis(started.elapsed()) },
    }))
}

/// What the service runs: its workloads (named by the manifests at the branch head) and
/// canaries, with versions read back from the cluster.
///
/// # Errors
/// [`OpError`].
pub async fn status(
    target: &Target,
    service: &ServiceConfig,
    settings: &Settings,
) -> Result<Value, OpError> {
    let request = Request {
        track: Track::Stable,
        commit: None,
        tag: Some("status".to_owned()),
        exposure: None,
        workloads: Vec::new(),
    };
    let prepared = prepare_off_thread(service, &request, settings).await?;
    let workloads: Vec<Value> = prepared
        .plan
        .objects
        .into_iter()
        .filter(is_workload)
        .collect();
    let cluster = target.cluster().await?;
    let status = cluster
        .status(&workloads, &service.name, service.namespace.as_deref())
        .await?;
    Ok(json!({ "service": service.name, "workloads": status }))
}

/// The registry tags of the service's own (untagged) images, by image.
///
/// # Errors
/// [`OpError`].
pub async fn tags(service: &ServiceConfig, settings: &Settings) -> Result<Value, OpError> {
    const PROBE: &str = "nprt-probe";
    let request = Request {
        track: Track::Stable,
        commit: None,
        tag: Some(PROBE.to_owned()),
        exposure: None,
        workloads: Vec::new(),
    };
    let prepared = prepare_off_thread(service, &request, settings).await?;
    let client = registry_client(service, &settings.config_file)?;
    let mut images = serde_json::Map::new();
    for image in &prepared.plan.tagged_images {
        let name = image.trim_end_matches(PROBE).trim_end_matches(':');
        let mut tags = client
            .tags(&split_image(name))
            .await
            .map_err(OpError::runtime)?;
        tags.sort();
        images.insert(name.to_owned(), json!(tags));
    }
    Ok(json!({ "service": service.name, "images": images }))
}

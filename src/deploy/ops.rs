//! The driver's operations, shared by the command line and the deploy API: deploy, canary,
//! rollback, promote, status, tags. Each returns its typed outcome ([`super::outcome`]) with a
//! timing breakdown, or an [`OpError`] that says whether the request or the world was at fault.

use super::cluster::{Cluster, ClusterError};
use super::config::ServiceConfig;
use super::driver::{
    baseline_request, check_apart, fetch, originals, plan, stable_release, Fetched, PrepareError,
    Prepared, Request,
};
use super::manifest::{describe, kind, name, namespace};
use super::outcome::{
    BaselineDeployed, Deployed, DeployedService, Promoted, RolledBack, ServicePort,
    ServiceSettings, Status, TagFrom, Tags, Timing,
};
use super::registry::{split_image, Credentials, RegistryClient, RegistryError};
use super::rewrite::{is_workload, Track, COMMIT_KEY, VERSION_KEY};
use serde_json::Value;
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
pub enum ClusterAccess {
    Connected(Cluster),
    Kubeconfig { context: Option<String> },
}

impl ClusterAccess {
    /// The cluster, connecting if needed.
    ///
    /// # Errors
    /// A runtime [`OpError`] when no cluster configuration is usable.
    pub async fn cluster(&self) -> Result<Cluster, OpError> {
        match self {
            ClusterAccess::Connected(c) => Ok(c.clone()),
            ClusterAccess::Kubeconfig { context } => Cluster::connect(context.as_deref())
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

/// A phase of an operation, for its timing breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Syncing the repository and reading the manifests at the commit.
    Fetch,
    /// Registry checks (and the tag-for-commit lookup).
    Validate,
    /// Parsing and rewriting the manifests.
    Rewrite,
    /// Connecting to the cluster and server-side apply.
    Apply,
    /// Waiting for the rollout.
    Rollout,
    /// Deleting the canary and waiting until it is gone.
    Delete,
    /// Reading state back (cluster status, canary versions, registry tags).
    Read,
}

fn slot(timing: &mut Timing, phase: Phase) -> &mut f64 {
    match phase {
        Phase::Fetch => &mut timing.fetch,
        Phase::Validate => &mut timing.validate,
        Phase::Rewrite => &mut timing.rewrite,
        Phase::Apply => &mut timing.apply,
        Phase::Rollout => &mut timing.rollout,
        Phase::Delete => &mut timing.delete,
        Phase::Read => &mut timing.read,
    }
}

/// Measures the phases of one operation: each [`Clock::lap`] charges the time since the
/// previous lap to a phase.
struct Clock {
    started: Instant,
    last: Instant,
    timing: Timing,
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

impl Clock {
    fn start() -> Clock {
        let now = Instant::now();
        Clock {
            started: now,
            last: now,
            timing: Timing::default(),
        }
    }

    fn lap(&mut self, phase: Phase) {
        let now = Instant::now();
        *slot(&mut self.timing, phase) += millis(now - self.last);
        self.last = now;
    }

    /// The breakdown, with the total up to now.
    fn timing(&self) -> Timing {
        Timing {
            total: millis(self.started.elapsed()),
            ..self.timing
        }
    }
}

/// A registry client with the service's credentials and extra CA.
///
/// # Errors
/// Bad input when the password secret or the CA file cannot be read.
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
    let ca = service.registry.ca_file.as_deref();
    RegistryClient::new(credentials, ca).map_err(|e| match e {
        // The CA file is the configuration's.
        RegistryError::Tls(message) => OpError::bad(super::ConfigError::Invalid {
            file: config_file.display().to_string(),
            field: format!("services.{}.registry.ca_file", service.name),
            message,
        }),
        e => OpError::runtime(e),
    })
}

/// Refused credentials and a commit without exactly one tag are the request's (or its
/// configuration's) fault; an unreachable or misbehaving registry is not.
fn registry_error(e: RegistryError) -> OpError {
    match e {
        RegistryError::Auth { .. }
        | RegistryError::NoTagForCommit { .. }
        | RegistryError::AmbiguousCommit { .. } => OpError::bad(e),
        _ => OpError::runtime(e),
    }
}

/// Checks that the registry has every tagged image of the plan. When an image lacks the tag
/// `tag_format` gave and `lookup` is set (no tag was requested), finds the single tag that
/// contains the commit instead: returns it when every image has that same one.
async fn check_images(
    service: &ServiceConfig,
    config_file: &Path,
    prepared: &Prepared,
    lookup: bool,
) -> Result<Option<String>, OpError> {
    let images = &prepared.plan.tagged_images;
    if images.is_empty() {
        return Ok(None);
    }
    let client = registry_client(service, config_file)?;
    let mut missing = Vec::new();
    for image in images {
        let Some((name, tag)) = image.rsplit_once(':') else {
            continue;
        };
        if !client
            .tag_exists(&split_image(name), tag)
            .await
            .map_err(registry_error)?
        {
            missing.push(image.as_str());
        }
    }
    let Some(first) = missing.first() else {
        return Ok(None);
    };
    if !lookup {
        return Err(OpError::bad(format!(
            "image {first} is not in the registry; push it first, or deploy with --skip-image-check"
        )));
    }
    // Given only a commit: the one tag of each image that contains it.
    let mut found: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for image in images {
        let Some((name, _)) = image.rsplit_once(':') else {
            continue;
        };
        match client
            .tag_for_commit(&split_image(name), &prepared.commit, service.commit_length)
            .await
        {
            Ok(tag) => found.entry(tag).or_default().push(name),
            Err(e @ RegistryError::NoTagForCommit { .. }) => {
                return Err(OpError::bad(format!(
                    "image {image} is not in the registry, and {e}; push it first, give --tag, or deploy with --skip-image-check"
                )))
            }
            Err(e) => return Err(registry_error(e)),
        }
    }
    let mut tags = found.into_iter();
    match (tags.next(), tags.next()) {
        (Some((tag, _)), None) => {
            tracing::info!(service = %service.name, %tag, "tag found for the commit in the registry");
            Ok(Some(tag))
        }
        (first, second) => {
            let listed: Vec<String> = first
                .into_iter()
                .chain(second)
                .chain(tags)
                .map(|(tag, names)| format!("{tag} ({})", names.join(", ")))
                .collect();
            Err(OpError::bad(format!(
                "service {}: the images have different tags for commit {}: {}; give --tag",
                service.name,
                prepared.commit,
                listed.join(", ")
            )))
        }
    }
}

/// [`fetch`] on a blocking thread: git runs as child processes and must not hold up the
/// async workers serving other requests.
async fn fetch_off_thread(
    service: &ServiceConfig,
    request: &Request,
    settings: &Settings,
) -> Result<Fetched, OpError> {
    let (service, request, cache) = (service.clone(), request.clone(), settings.cache.clone());
    tokio::task::spawn_blocking(move || fetch(&service, &request, &cache))
        .await
        .map_err(OpError::runtime)?
        .map_err(OpError::from)
}

/// Fetches (timed as [`Phase::Fetch`]) and plans (timed as [`Phase::Rewrite`]).
async fn prepare_timed(
    service: &ServiceConfig,
    request: &Request,
    settings: &Settings,
    clock: &mut Clock,
) -> Result<(Fetched, Prepared), OpError> {
    let fetched = fetch_off_thread(service, request, settings).await?;
    clock.lap(Phase::Fetch);
    let prepared = plan(service, request, &fetched)?;
    clock.lap(Phase::Rewrite);
    Ok((fetched, prepared))
}

/// One release decided: its fetched manifests, its plan, and where its tag came from.
struct Decided {
    fetched: Fetched,
    prepared: Prepared,
    tag_from: TagFrom,
}

/// Fetches, plans and (unless skipped) checks the images of one release, planning again
/// with the registry's tag when the one `tag_format` gave is missing.
async fn decide(
    service: &ServiceConfig,
    request: &Request,
    settings: &Settings,
    clock: &mut Clock,
    tag_from: TagFrom,
) -> Result<Decided, OpError> {
    let (fetched, mut prepared) = prepare_timed(service, request, settings, clock).await?;
    let mut tag_from = tag_from;
    if !settings.skip_image_check {
        let found = check_images(
            service,
            &settings.config_file,
            &prepared,
            request.tag.is_none(),
        )
        .await?;
        clock.lap(Phase::Validate);
        if let Some(tag) = found {
            let request = Request {
                tag: Some(tag),
                ..request.clone()
            };
            prepared = plan(service, &request, &fetched)?;
            clock.lap(Phase::Rewrite);
            tag_from = TagFrom::Registry;
        }
    }
    Ok(Decided {
        fetched,
        prepared,
        tag_from,
    })
}

/// The Services of a plan, for callers that build URLs: name, namespace (the cluster's
/// default when the manifests name none), the Service it mirrors, its ports, and
/// `http://NAME.NAMESPACE.svc:PORT` of its first port.
fn plan_services(
    prepared: &Prepared,
    track: Track,
    default_namespace: &str,
) -> Vec<DeployedService> {
    prepared
        .plan
        .objects
        .iter()
        .filter(|o| kind(o) == "Service")
        .map(|s| {
            let ns = namespace(s).unwrap_or(default_namespace);
            let ports: Vec<ServicePort> = s["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| ServicePort {
                    name: p["name"].as_str().map(str::to_owned),
                    port: p["port"].as_u64().and_then(|n| u16::try_from(n).ok()),
                })
                .collect();
            let url = ports
                .first()
                .and_then(|p| p.port)
                .map(|port| format!("http://{}.{ns}.svc:{port}", name(s)));
            let of = track
                .mirror_of_key()
                .and_then(|k| s["metadata"]["annotations"][k].as_str())
                .map(str::to_owned);
            DeployedService {
                name: name(s).to_owned(),
                namespace: ns.to_owned(),
                of,
                ports,
                url,
            }
        })
        .collect()
}

/// The baseline beside a decided canary: the stable release read from the cluster (or given
/// in the request), decided like the canary, and checked to be apart from it and production.
async fn decide_baseline(
    cluster: &Cluster,
    service: &ServiceConfig,
    request: &Request,
    settings: &Settings,
    clock: &mut Clock,
    canary: &Decided,
) -> Result<Decided, OpError> {
    let (commit, tag, tag_from) = match &request.baseline_commit {
        Some(commit) => (
            commit.clone(),
            request.baseline_tag.clone(),
            if request.baseline_tag.is_some() {
                TagFrom::Request
            } else {
                TagFrom::TagFormat
            },
        ),
        None => {
            let mut live = Vec::new();
            for original in originals(&canary.prepared.plan) {
                let object = cluster.live(&original).await?;
                live.push((original, object));
            }
            clock.lap(Phase::Read);
            let stable = stable_release(&service.name, &live).map_err(OpError::bad)?;
            match (&request.baseline_tag, stable.version) {
                (Some(tag), _) => (stable.commit, Some(tag.clone()), TagFrom::Request),
                (None, Some(version)) => (stable.commit, Some(version), TagFrom::Cluster),
                (None, None) => (stable.commit, None, TagFrom::TagFormat),
            }
        }
    };
    let request = baseline_request(&canary.prepared, commit, tag);
    let baseline = decide(service, &request, settings, clock, tag_from).await?;
    check_apart(
        service,
        (&canary.fetched, &canary.prepared),
        (&baseline.fetched, &baseline.prepared),
    )?;
    clock.lap(Phase::Rewrite);
    Ok(baseline)
}

/// Deploys (stable or canary, with `request.with_baseline` a baseline beside the canary)
/// and waits for the rollout.
///
/// # Errors
/// [`OpError`]; bad input when the baseline's release cannot be told (give
/// `baseline_commit`) or canary, baseline and production would not be apart.
pub async fn deploy(
    target: &ClusterAccess,
    service: &ServiceConfig,
    request: &Request,
    settings: &Settings,
) -> Result<Deployed, OpError> {
    request.check_baseline().map_err(OpError::bad)?;
    let mut clock = Clock::start();
    let tag_from = if request.tag.is_some() {
        TagFrom::Request
    } else {
        TagFrom::TagFormat
    };
    let release = decide(service, request, settings, &mut clock, tag_from).await?;
    let cluster = target.cluster().await?;
    let baseline = if request.with_baseline {
        Some(decide_baseline(&cluster, service, request, settings, &mut clock, &release).await?)
    } else {
        None
    };
    let mut objects = release.prepared.plan.objects.clone();
    if let Some(b) = &baseline {
        objects.extend(b.prepared.plan.objects.iter().cloned());
    }
    cluster.apply(&objects, settings.force).await?;
    clock.lap(Phase::Apply);
    cluster.wait_rollout(&objects, settings.timeout).await?;
    clock.lap(Phase::Rollout);
    let prepared = &release.prepared;
    let applied = |p: &Prepared| p.plan.objects.iter().map(describe).collect::<Vec<_>>();
    let baseline = baseline.map(|b| BaselineDeployed {
        version: b.prepared.release.version.clone(),
        commit: b.prepared.commit.clone(),
        tag_from: b.tag_from,
        applied: applied(&b.prepared),
        services: plan_services(&b.prepared, Track::Baseline, cluster.default_namespace()),
    });
    Ok(Deployed {
        service: service.name.clone(),
        track: request.track,
        version: prepared.release.version.clone(),
        tag_from: release.tag_from,
        commit: prepared.commit.clone(),
        applied: applied(prepared),
        left_alone: prepared
            .plan
            .left_alone
            .iter()
            .map(|(w, _)| w.clone())
            .collect(),
        services: plan_services(prepared, request.track, cluster.default_namespace()),
        baseline,
        timing_ms: clock.timing(),
    })
}

/// The tail rollback and promote share: delete the service's canary and baseline and wait
/// until they are gone; returns what was deleted.
async fn remove_canary(
    cluster: &Cluster,
    service: &ServiceConfig,
    settings: &Settings,
    clock: &mut Clock,
) -> Result<Vec<String>, OpError> {
    let deleted = cluster
        .delete_tracks(
            &service.name,
            service.namespace.as_deref(),
            &[Track::Canary, Track::Baseline],
            settings.timeout,
        )
        .await?;
    clock.lap(Phase::Delete);
    Ok(deleted)
}

/// Deletes the service's canary and baseline and waits until they are gone.
///
/// # Errors
/// [`OpError`].
pub async fn rollback(
    target: &ClusterAccess,
    service: &ServiceConfig,
    settings: &Settings,
) -> Result<RolledBack, OpError> {
    let mut clock = Clock::start();
    let cluster = target.cluster().await?;
    let deleted = remove_canary(&cluster, service, settings, &mut clock).await?;
    Ok(RolledBack {
        service: service.name.clone(),
        deleted,
        timing_ms: clock.timing(),
    })
}

/// Deploys the canary's commit and version as stable, then removes the canary and baseline.
///
/// # Errors
/// [`OpError`]; bad input when there is no canary of exactly one commit.
pub async fn promote(
    target: &ClusterAccess,
    service: &ServiceConfig,
    settings: &Settings,
) -> Result<Promoted, OpError> {
    let mut clock = Clock::start();
    let cluster = target.cluster().await?;
    let canaries = cluster
        .canary_workloads(&service.name, service.namespace.as_deref())
        .await?;
    clock.lap(Phase::Read);
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
        commit: Some(commit.clone()),
        tag: Some(version.clone()),
        ..Request::new(Track::Stable)
    };
    let (_, prepared) = prepare_timed(service, &request, settings, &mut clock).await?;
    cluster
        .apply(&prepared.plan.objects, settings.force)
        .await?;
    clock.lap(Phase::Apply);
    cluster
        .wait_rollout(&prepared.plan.objects, settings.timeout)
        .await?;
    clock.lap(Phase::Rollout);
    let deleted = remove_canary(&cluster, service, settings, &mut clock).await?;
    Ok(Promoted {
        service: service.name.clone(),
        promoted: version.clone(),
        commit: commit.clone(),
        deleted,
        timing_ms: clock.timing(),
    })
}

/// What the service runs: its workloads (named by the manifests at the branch head),
/// canaries and baselines, with versions read back from the cluster.
///
/// # Errors
/// [`OpError`].
pub async fn status(
    target: &ClusterAccess,
    service: &ServiceConfig,
    settings: &Settings,
) -> Result<Status, OpError> {
    let request = Request {
        tag: Some("status".to_owned()),
        ..Request::new(Track::Stable)
    };
    let mut clock = Clock::start();
    let (_, prepared) = prepare_timed(service, &request, settings, &mut clock).await?;
    let workloads: Vec<Value> = prepared
        .plan
        .objects
        .into_iter()
        .filter(is_workload)
        .collect();
    let cluster = target.cluster().await?;
    let workloads = cluster
        .status(&workloads, &service.name, service.namespace.as_deref())
        .await?;
    clock.lap(Phase::Read);
    Ok(Status {
        service: service.name.clone(),
        workloads,
        timing_ms: clock.timing(),
    })
}

/// The registry tags of the service's own (untagged) images, by image.
///
/// # Errors
/// [`OpError`].
pub async fn tags(service: &ServiceConfig, settings: &Settings) -> Result<Tags, OpError> {
    const PROBE: &str = "nprt-probe";
    let request = Request {
        tag: Some(PROBE.to_owned()),
        ..Request::new(Track::Stable)
    };
    let mut clock = Clock::start();
    let (_, prepared) = prepare_timed(service, &request, settings, &mut clock).await?;
    let client = registry_client(service, &settings.config_file)?;
    let mut images = std::collections::BTreeMap::new();
    for image in &prepared.plan.tagged_images {
        let name = image.trim_end_matches(PROBE).trim_end_matches(':');
        let mut tags = client
            .tags(&split_image(name))
            .await
            .map_err(registry_error)?;
        tags.sort();
        images.insert(name.to_owned(), tags);
    }
    clock.lap(Phase::Read);
    Ok(Tags {
        service: service.name.clone(),
        images,
        timing_ms: clock.timing(),
    })
}

/// A service's settings as `nprt show` prints them: secrets by reference only (which
/// variable or file), never their values.
pub fn show(service: &ServiceConfig) -> ServiceSettings {
    use super::config::SecretRef;
    let secret = |s: &Option<SecretRef>| match s {
        Some(SecretRef::Env(var)) => format!("env {var}"),
        Some(SecretRef::File(path)) => format!("file {}", path.display()),
        None => "none".to_owned(),
    };
    ServiceSettings {
        service: service.name.clone(),
        repository: super::git::redact_url(&service.repository),
        branch: service.branch.clone(),
        manifests: service.manifests.clone(),
        namespace: service.namespace.clone(),
        exposure: service.exposure.as_str().to_owned(),
        tag_format: service.tag_format.clone(),
        commit_length: service.commit_length,
        registry_username: service.registry.username.clone(),
        registry_password: secret(&service.registry.password),
        registry_ca_file: service
            .registry
            .ca_file
            .as_ref()
            .map(|p| p.display().to_string()),
        api_token: secret(&service.api_token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_has_every_phase() {
        let mut clock = Clock::start();
        clock.lap(Phase::Rewrite);
        clock.lap(Phase::Rewrite);
        let v = serde_json::to_value(clock.timing()).unwrap();
        for key in [
            "fetch", "validate", "rewrite", "apply", "rollout", "delete", "read", "total",
        ] {
            assert!(v[key].is_number(), "{key} in {v}");
        }
        assert_eq!(millis(Duration::from_micros(1_234_567)), 1234.6);
    }
}

//! The driver's operations, shared by the command line and the deploy API: deploy, canary,
//! rollback, promote, status, tags. Each returns a JSON outcome with a timing breakdown, or an
//! [`OpError`] that says whether the request or the world was at fault.

use super::cluster::{Cluster, ClusterError};
use super::config::ServiceConfig;
use super::driver::{
    baseline_request, check_apart, fetch, originals, plan, stable_release, Fetched, PrepareError,
    Prepared, Request,
};
use super::manifest::{describe, kind, name, namespace};
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

/// Where an operation's time went, in milliseconds. Every operation has the same fields
/// (zero for phases it does not go through), so the API and the CLI show one shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Timing {
    pub fetch: f64,
    pub validate: f64,
    pub rewrite: f64,
    pub apply: f64,
    pub rollout: f64,
    pub delete: f64,
    pub read: f64,
    pub total: f64,
}

impl Timing {
    fn slot(&mut self, phase: Phase) -> &mut f64 {
        match phase {
            Phase::Fetch => &mut self.fetch,
            Phase::Validate => &mut self.validate,
            Phase::Rewrite => &mut self.rewrite,
            Phase::Apply => &mut self.apply,
            Phase::Rollout => &mut self.rollout,
            Phase::Delete => &mut self.delete,
            Phase::Read => &mut self.read,
        }
    }

    /// One line for people: `fetch 12.0 ms, rewrite 0.4 ms, …, total 40.1 ms` (phases that
    /// took no time left out).
    pub fn line(timing: &Value) -> String {
        let mut parts = Vec::new();
        for key in [
            "fetch", "validate", "rewrite", "apply", "rollout", "delete", "read", "total",
        ] {
            if let Some(ms) = timing[key]
                .as_f64()
                .filter(|ms| *ms > 0.0 || key == "total")
            {
                parts.push(format!("{key} {ms:.1} ms"));
            }
        }
        parts.join(", ")
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
        *self.timing.slot(phase) += millis(now - self.last);
        self.last = now;
    }

    /// The breakdown as JSON, with the total up to now.
    fn json(&self) -> Value {
        let mut timing = self.timing;
        timing.total = millis(self.started.elapsed());
        serde_json::to_value(timing).unwrap_or(Value::Null)
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

/// One release decided: its fetched manifests, its plan, and where its tag came from
/// (`request`, `tag_format`, `registry`, or `cluster` for a baseline's stable version).
struct Decided {
    fetched: Fetched,
    prepared: Prepared,
    tag_from: &'static str,
}

/// Fetches, plans and (unless skipped) checks the images of one release, planning again
/// with the registry's tag when the one `tag_format` gave is missing.
async fn decide(
    service: &ServiceConfig,
    request: &Request,
    settings: &Settings,
    clock: &mut Clock,
    tag_from: &'static str,
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
            tag_from = "registry";
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
fn plan_services(prepared: &Prepared, track: Track, default_namespace: &str) -> Vec<Value> {
    prepared
        .plan
        .objects
        .iter()
        .filter(|o| kind(o) == "Service")
        .map(|s| {
            let ns = namespace(s).unwrap_or(default_namespace);
            let ports: Vec<Value> = s["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| json!({ "name": p["name"], "port": p["port"] }))
                .collect();
            let url = ports
                .first()
                .and_then(|p| p["port"].as_u64())
                .map(|port| format!("http://{}.{ns}.svc:{port}", name(s)));
            let of = track
                .mirror_of_key()
                .map(|k| s["metadata"]["annotations"][k].clone())
                .unwrap_or(Value::Null);
            json!({ "name": name(s), "namespace": ns, "of": of, "ports": ports, "url": url })
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
                "request"
            } else {
                "tag_format"
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
                (Some(tag), _) => (stable.commit, Some(tag.clone()), "request"),
                (None, Some(version)) => (stable.commit, Some(version), "cluster"),
                (None, None) => (stable.commit, None, "tag_format"),
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
/// The outcome has `service`, `track`, `version`, `tag_from`, `commit`, `applied`,
/// `left_alone`, `services` (the canary's own Services: `name`, `namespace`, `of`, `ports`,
/// `url`) and `timing_ms`; with a baseline also `baseline`: `version`, `commit`, `tag_from`
/// (`cluster` when read from the stable workloads), `applied` and `services` of the same shape.
///
/// # Errors
/// [`OpError`]; bad input when the baseline's release cannot be told (give
/// `baseline_commit`) or canary, baseline and production would not be apart.
pub async fn deploy(
    target: &Target,
    service: &ServiceConfig,
    request: &Request,
    settings: &Settings,
) -> Result<Value, OpError> {
    request.check_baseline().map_err(OpError::bad)?;
    let mut clock = Clock::start();
    let tag_from = if request.tag.is_some() {
        "request"
    } else {
        "tag_format"
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
    let mut outcome = json!({
        "service": service.name,
        "track": request.track.as_str(),
        "version": prepared.release.version,
        "tag_from": release.tag_from,
        "commit": prepared.commit,
        "applied": applied(prepared),
        "left_alone": prepared.plan.left_alone.iter().map(|(w, _)| w).collect::<Vec<_>>(),
        "services": plan_services(prepared, request.track, cluster.default_namespace()),
    });
    if let Some(b) = &baseline {
        let p = &b.prepared;
        outcome["baseline"] = json!({
            "version": p.release.version,
            "commit": p.commit,
            "tag_from": b.tag_from,
            "applied": applied(p),
            "services": plan_services(p, Track::Baseline, cluster.default_namespace()),
        });
    }
    outcome["timing_ms"] = clock.json();
    Ok(outcome)
}

/// The tail rollback and promote share: delete the service's canary and baseline, wait until
/// they are gone, and finish the outcome with what was deleted and the timing.
async fn remove_canary(
    cluster: &Cluster,
    service: &ServiceConfig,
    settings: &Settings,
    mut clock: Clock,
    mut outcome: Value,
) -> Result<Value, OpError> {
    let deleted = cluster
        .delete_tracks(
            &service.name,
            service.namespace.as_deref(),
            &[Track::Canary, Track::Baseline],
            settings.timeout,
        )
        .await?;
    clock.lap(Phase::Delete);
    outcome["deleted"] = json!(deleted);
    outcome["timing_ms"] = clock.json();
    Ok(outcome)
}

/// Deletes the service's canary and baseline and waits until they are gone.
///
/// # Errors
/// [`OpError`].
pub async fn rollback(
    target: &Target,
    service: &ServiceConfig,
    settings: &Settings,
) -> Result<Value, OpError> {
    let clock = Clock::start();
    let cluster = target.cluster().await?;
    let outcome = json!({ "service": service.name });
    remove_canary(&cluster, service, settings, clock, outcome).await
}

/// Deploys the canary's commit and version as stable, then removes the canary and baseline.
///
/// # Errors
/// [`OpError`]; bad input when there is no canary of exactly one commit.
pub async fn promote(
    target: &Target,
    service: &ServiceConfig,
    settings: &Settings,
) -> Result<Value, OpError> {
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
    let outcome = json!({
        "service": service.name,
        "promoted": version,
        "commit": commit,
    });
    remove_canary(&cluster, service, settings, clock, outcome).await
}

/// What the service runs: its workloads (named by the manifests at the branch head),
/// canaries and baselines, with versions read back from the cluster.
///
/// # Errors
/// [`OpError`].
pub async fn status(
    target: &Target,
    service: &ServiceConfig,
    settings: &Settings,
) -> Result<Value, OpError> {
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
    let status = cluster
        .status(&workloads, &service.name, service.namespace.as_deref())
        .await?;
    clock.lap(Phase::Read);
    Ok(json!({ "service": service.name, "workloads": status, "timing_ms": clock.json() }))
}

/// The registry tags of the service's own (untagged) images, by image.
///
/// # Errors
/// [`OpError`].
pub async fn tags(service: &ServiceConfig, settings: &Settings) -> Result<Value, OpError> {
    const PROBE: &str = "nprt-probe";
    let request = Request {
        tag: Some(PROBE.to_owned()),
        ..Request::new(Track::Stable)
    };
    let mut clock = Clock::start();
    let (_, prepared) = prepare_timed(service, &request, settings, &mut clock).await?;
    let client = registry_client(service, &settings.config_file)?;
    let mut images = serde_json::Map::new();
    for image in &prepared.plan.tagged_images {
        let name = image.trim_end_matches(PROBE).trim_end_matches(':');
        let mut tags = client
            .tags(&split_image(name))
            .await
            .map_err(registry_error)?;
        tags.sort();
        images.insert(name.to_owned(), json!(tags));
    }
    clock.lap(Phase::Read);
    Ok(json!({ "service": service.name, "images": images, "timing_ms": clock.json() }))
}

/// A service's settings as `nprt show` prints them: secrets by reference only (which
/// variable or file), never their values.
pub fn show(service: &ServiceConfig) -> Value {
    use super::config::SecretRef;
    let secret = |s: &Option<SecretRef>| match s {
        Some(SecretRef::Env(var)) => format!("env {var}"),
        Some(SecretRef::File(path)) => format!("file {}", path.display()),
        None => "none".to_owned(),
    };
    json!({
        "service": service.name,
        "repository": super::git::redact_url(&service.repository),
        "branch": service.branch,
        "manifests": service.manifests,
        "namespace": service.namespace,
        "exposure": service.exposure.as_str(),
        "tag_format": service.tag_format,
        "commit_length": service.commit_length,
        "registry_username": service.registry.username,
        "registry_password": secret(&service.registry.password),
        "api_token": secret(&service.api_token),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_has_every_phase_and_a_line_for_people() {
        let mut clock = Clock::start();
        clock.lap(Phase::Rewrite);
        clock.lap(Phase::Rewrite);
        let v = clock.json();
        for key in [
            "fetch", "validate", "rewrite", "apply", "rollout", "delete", "read", "total",
        ] {
            assert!(v[key].is_number(), "{key} in {v}");
        }
        let v = json!({"fetch": 12.04, "validate": 0.0, "rewrite": 0.4, "apply": 3.0,
            "rollout": 0.0, "delete": 0.0, "read": 0.0, "total": 15.5});
        assert_eq!(
            Timing::line(&v),
            "fetch 12.0 ms, rewrite 0.4 ms, apply 3.0 ms, total 15.5 ms"
        );
        assert_eq!(millis(Duration::from_micros(1_234_567)), 1234.6);
    }
}

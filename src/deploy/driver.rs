//! One deploy request from configuration to the objects to apply: resolve the commit in the
//! service's repository, read its manifests there, pick the tag, rewrite.
//!
//! This is the "decide" half of a deploy; applying the plan to a cluster is the "do" half.

use super::config::{render_tag, Exposure, ServiceConfig};
use super::git::{GitError, ManifestFile, Repo};
use super::manifest::{describe, kind, name, namespace};
use super::manifest::{parse_documents, ManifestError};
use super::rewrite::{
    cross_track_violations, is_workload, rewrite, Plan, Release, RewriteError, Track, COMMIT_KEY,
    VERSION_KEY,
};
use serde_json::{json, Value};
use std::path::Path;

/// What to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub track: Track,
    /// A commit (or any ref) of the service's repository; default: the branch head.
    pub commit: Option<String>,
    /// An image tag to deploy instead of the one `tag_format` gives for the commit.
    pub tag: Option<String>,
    /// Overrides the service's configured exposure.
    pub exposure: Option<Exposure>,
    /// Workloads to canary explicitly.
    pub workloads: Vec<String>,
    /// With a canary: also deploy a baseline, the stable release (the commit and version the
    /// stable workloads run) rewritten exactly like the canary, as `NAME-baseline`.
    pub with_baseline: bool,
    /// The baseline's commit (or ref) instead of the one the stable workloads carry; needs
    /// `with_baseline`.
    pub baseline_commit: Option<String>,
    /// The baseline's image tag instead of the stable workloads' version (or, with
    /// `baseline_commit`, the one `tag_format` gives); needs `with_baseline`.
    pub baseline_tag: Option<String>,
}

impl Request {
    /// A request for `track` that names nothing else: the branch head, the tag `tag_format`
    /// gives, the configured exposure, the workloads the manifests name, no baseline.
    pub fn new(track: Track) -> Request {
        Request {
            track,
            commit: None,
            tag: None,
            exposure: None,
            workloads: Vec::new(),
            with_baseline: false,
            baseline_commit: None,
            baseline_tag: None,
        }
    }

    /// Refuses baseline options that do not fit the request, naming them as the API does
    /// (the CLI's flags are the same words with dashes).
    ///
    /// # Errors
    /// A message for people.
    pub fn check_baseline(&self) -> Result<(), String> {
        if self.with_baseline && self.track != Track::Canary {
            return Err(
                "with_baseline (--with-baseline): only a canary gets a baseline; use `nprt canary` or PUT /SERVICE/canary"
                    .to_owned(),
            );
        }
        if !self.with_baseline {
            for (given, what) in [
                (
                    self.baseline_commit.is_some(),
                    "baseline_commit (--baseline-commit)",
                ),
                (self.baseline_tag.is_some(), "baseline_tag (--baseline-tag)"),
            ] {
                if given {
                    return Err(format!("{what} needs with_baseline (--with-baseline)"));
                }
            }
        }
        Ok(())
    }
}

/// A deploy decided but not applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub commit: String,
    pub release: Release,
    /// How many manifest files were read.
    pub files: usize,
    pub plan: Plan,
}

/// Why a deploy could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("service {service}: {source}")]
    Rewrite {
        service: String,
        #[source]
        source: RewriteError,
    },
    #[error("service {service}: baseline at {commit}: {source}")]
    Baseline {
        service: String,
        commit: String,
        #[source]
        source: RewriteError,
    },
}

impl PrepareError {
    /// Whether the cause is outside the request (git or the remote failing) rather than bad
    /// input (unknown commit, broken manifests, a plan the rules refuse).
    pub fn is_runtime(&self) -> bool {
        matches!(
            self,
            PrepareError::Git(
                GitError::Spawn(_) | GitError::Failed { .. } | GitError::Cache { .. }
            )
        )
    }
}

/// The manifests of a commit, read but not yet rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub commit: String,
    pub files: Vec<ManifestFile>,
}

/// Resolves, reads and rewrites.
///
/// # Errors
/// [`PrepareError`]; see [`PrepareError::is_runtime`] for which are the caller's fault.
pub fn prepare(
    service: &ServiceConfig,
    request: &Request,
    cache: &Path,
) -> Result<Prepared, PrepareError> {
    plan(service, request, &fetch(service, request, cache)?)
}

/// The I/O half: syncs the cached clone, resolves the commit and reads its manifests.
///
/// # Errors
/// [`PrepareError::Git`].
pub fn fetch(
    service: &ServiceConfig,
    request: &Request,
    cache: &Path,
) -> Result<Fetched, PrepareError> {
    let repo = Repo::sync(&service.repository, cache, request.commit.as_deref())?;
    let commit = repo.resolve(&service.branch, request.commit.as_deref())?;
    let files = repo.manifests(&commit, &service.manifests)?;
    Ok(Fetched { commit, files })
}

/// The pure half: parses the fetched manifests and rewrites them for the request (its tag,
/// else the one `tag_format` gives for the commit).
///
/// # Errors
/// [`PrepareError::Manifest`] or [`PrepareError::Rewrite`].
pub fn plan(
    service: &ServiceConfig,
    request: &Request,
    fetched: &Fetched,
) -> Result<Prepared, PrepareError> {
    let objects = parse_fetched(fetched)?;
    let commit = fetched.commit.clone();
    let tag = match &request.tag {
        Some(t) => t.clone(),
        None => render_tag(
            &service.tag_format,
            &service.branch,
            &commit,
            service.commit_length,
        ),
    };
    let release = Release {
        service: service.name.clone(),
        version: tag.clone(),
        tag,
        commit: Some(commit.clone()),
        track: request.track,
        exposure: request.exposure.unwrap_or(service.exposure),
        namespace: service.namespace.clone(),
        workloads: request.workloads.clone(),
    };
    let plan = rewrite(&objects, &release).map_err(|source| match request.track {
        Track::Baseline => PrepareError::Baseline {
            service: service.name.clone(),
            commit: commit.clone(),
            source,
        },
        _ => PrepareError::Rewrite {
            service: service.name.clone(),
            source,
        },
    })?;
    Ok(Prepared {
        commit,
        release,
        files: fetched.files.len(),
        plan,
    })
}

/// Every object of the fetched manifests, in file order.
///
/// # Errors
/// [`PrepareError::Manifest`].
pub fn parse_fetched(fetched: &Fetched) -> Result<Vec<Value>, PrepareError> {
    let mut objects = Vec::new();
    for file in &fetched.files {
        objects.extend(
            parse_documents(&file.text, &file.path)?
                .into_iter()
                .map(|m| m.object),
        );
    }
    Ok(objects)
}

/// The release production runs, read from the stable workloads in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StableRelease {
    pub commit: String,
    /// Their `nprt.io/version`: the image tag they were deployed with.
    pub version: Option<String>,
}

/// How to give the baseline's release by hand, for messages.
const GIVE_BASELINE: &str = "give --baseline-commit (and --baseline-tag when its image tag is not the one tag_format gives; API: baseline_commit, baseline_tag)";

/// The stable workloads the canary's workloads were copied from: `{apiVersion, kind,
/// metadata: {name, namespace}}` of each, to read from the cluster.
pub fn originals(canary: &Plan) -> Vec<Value> {
    canary
        .objects
        .iter()
        .filter(|o| is_workload(o))
        .map(|o| {
            let original = name(o)
                .strip_suffix(Track::Canary.suffix())
                .unwrap_or(name(o));
            let mut stub = json!({
                "apiVersion": o["apiVersion"],
                "kind": kind(o),
                "metadata": { "name": original },
            });
            if let Some(ns) = namespace(o) {
                stub["metadata"]["namespace"] = json!(ns);
            }
            stub
        })
        .collect()
}

/// The release the stable workloads run, from their `nprt.io/commit` and `nprt.io/version`
/// annotations as `nprt deploy` set them. `live` pairs each original (see [`originals`]) with
/// the object the cluster holds, if any.
///
/// # Errors
/// A message saying why it cannot be told and how to give it: a workload missing or not
/// deployed by nprt, or workloads at different commits.
pub fn stable_release(
    service: &str,
    live: &[(Value, Option<Value>)],
) -> Result<StableRelease, String> {
    let mut found: Vec<(String, String, Option<String>)> = Vec::new();
    for (original, object) in live {
        let what = describe(original);
        let Some(object) = object else {
            return Err(format!(
                "service {service}: cannot tell which release production runs for the baseline: {what} is not in the cluster; {GIVE_BASELINE}"
            ));
        };
        let annotations = &object["metadata"]["annotations"];
        let Some(commit) = annotations[COMMIT_KEY].as_str() else {
            return Err(format!(
                "service {service}: cannot tell which release production runs for the baseline: {what} has no {COMMIT_KEY} annotation (it was not deployed with `nprt deploy`); {GIVE_BASELINE}"
            ));
        };
        let version = annotations[VERSION_KEY].as_str().map(str::to_owned);
        found.push((what, commit.to_owned(), version));
    }
    let Some((_, commit, version)) = found.first().cloned() else {
        return Err(format!(
            "service {service}: the canary has no workload to take a baseline of"
        ));
    };
    if found.iter().any(|(_, c, v)| *c != commit || *v != version) {
        let listed: Vec<String> = found
            .iter()
            .map(|(w, c, v)| format!("{w} at {c} ({})", v.as_deref().unwrap_or("no version")))
            .collect();
        return Err(format!(
            "service {service}: the stable workloads run different releases ({}); {GIVE_BASELINE}",
            listed.join(", ")
        ));
    }
    Ok(StableRelease { commit, version })
}

/// The request of the baseline beside a prepared `canary`: the stable release's commit and
/// tag, the canary's exposure, and exactly the workloads the canary copied.
pub fn baseline_request(canary: &Prepared, commit: String, tag: Option<String>) -> Request {
    Request {
        commit: Some(commit),
        tag,
        exposure: Some(canary.release.exposure),
        workloads: originals(&canary.plan)
            .iter()
            .map(|o| name(o).to_owned())
            .collect(),
        ..Request::new(Track::Baseline)
    }
}

/// Refuses a canary and baseline pair that is not apart: with exposure `shadow`, no
/// production Service of either commit's manifests may select a canary or baseline pod; in
/// every exposure, neither track's Services or workload selectors may select the other's pods.
///
/// # Errors
/// [`PrepareError::Baseline`] with [`RewriteError::SelectedAcross`].
pub fn check_apart(
    service: &ServiceConfig,
    canary: (&Fetched, &Prepared),
    baseline: (&Fetched, &Prepared),
) -> Result<(), PrepareError> {
    let mut services = Vec::new();
    if canary.1.release.exposure == Exposure::Shadow {
        for fetched in [canary.0, baseline.0] {
            for mut object in parse_fetched(fetched)?
                .into_iter()
                .filter(|o| kind(o) == "Service")
            {
                // As the rewrite places them.
                if let (None, Some(ns)) = (namespace(&object), &service.namespace) {
                    object["metadata"]["namespace"] = json!(ns);
                }
                services.push(object);
            }
        }
    }
    let mut workloads = Vec::new();
    for prepared in [canary.1, baseline.1] {
        for object in &prepared.plan.objects {
            if is_workload(object) {
                workloads.push(object.clone());
            } else if kind(object) == "Service" {
                services.push(object.clone());
            }
        }
    }
    match cross_track_violations(&services, &workloads)
        .into_iter()
        .next()
    {
        None => Ok(()),
        Some((selector, workload)) => Err(PrepareError::Baseline {
            service: service.name.clone(),
            commit: baseline.1.commit.clone(),
            source: RewriteError::SelectedAcross { selector, workload },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_options_fit_the_request() {
        let mut r = Request::new(Track::Canary);
        assert!(r.check_baseline().is_ok());
        r.baseline_commit = Some("abc".into());
        let err = r.check_baseline().unwrap_err();
        assert!(
            err.contains("needs with_baseline (--with-baseline)"),
            "{err}"
        );
        r.with_baseline = true;
        r.baseline_tag = Some("v1".into());
        assert!(r.check_baseline().is_ok());
        let mut s = Request::new(Track::Stable);
        s.with_baseline = true;
        let err = s.check_baseline().unwrap_err();
        assert!(err.contains("only a canary gets a baseline"), "{err}");
    }

    fn stub(kind_: &str, name_: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": kind_, "metadata": {"name": name_, "namespace": "shop"}})
    }

    fn live(commit: Option<&str>, version: Option<&str>) -> Option<Value> {
        let mut annotations = serde_json::Map::new();
        if let Some(c) = commit {
            annotations.insert(COMMIT_KEY.into(), json!(c));
        }
        if let Some(v) = version {
            annotations.insert(VERSION_KEY.into(), json!(v));
        }
        Some(json!({"metadata": {"annotations": annotations}}))
    }

    #[test]
    fn the_stable_release_comes_from_the_workloads_annotations() {
        let web = stub("Deployment", "web");
        let db = stub("StatefulSet", "db");
        let found = stable_release(
            "shop",
            &[
                (web.clone(), live(Some("abc"), Some("v1"))),
                (db.clone(), live(Some("abc"), Some("v1"))),
            ],
        )
        .unwrap();
        assert_eq!(
            found,
            StableRelease {
                commit: "abc".into(),
                version: Some("v1".into())
            }
        );

        let err = stable_release("shop", &[(web.clone(), None)]).unwrap_err();
        assert!(
            err.contains("Deployment/web is not in the cluster"),
            "{err}"
        );
        assert!(err.contains("--baseline-commit"), "{err}");
        let err = stable_release("shop", &[(web.clone(), live(None, Some("v1")))]).unwrap_err();
        assert!(
            err.contains("Deployment/web has no nprt.io/commit"),
            "{err}"
        );
        assert!(err.contains("--baseline-commit"), "{err}");
        let err = stable_release(
            "shop",
            &[
                (web.clone(), live(Some("abc"), Some("v1"))),
                (db, live(Some("def"), Some("v2"))),
            ],
        )
        .unwrap_err();
        assert!(err.contains("different releases"), "{err}");
        assert!(err.contains("StatefulSet/db at def (v2)"), "{err}");
        assert!(stable_release("shop", &[]).is_err());
        // A commit without a version: the tag comes from tag_format later.
        assert_eq!(
            stable_release("shop", &[(web, live(Some("abc"), None))])
                .unwrap()
                .version,
            None
        );
    }

    #[test]
    fn the_baseline_request_copies_the_canarys_workloads() {
        let canary = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web-canary", "namespace": "shop"}});
        let service = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web-canary", "namespace": "shop"}});
        let prepared = Prepared {
            commit: "new".into(),
            release: Release {
                service: "shop".into(),
                version: "v2".into(),
                tag: "v2".into(),
                commit: Some("new".into()),
                track: Track::Canary,
                exposure: Exposure::Shared,
                namespace: None,
                workloads: Vec::new(),
            },
            files: 1,
            plan: Plan {
                objects: vec![service, canary],
                left_alone: Vec::new(),
                tagged_images: Vec::new(),
            },
        };
        assert_eq!(
            originals(&prepared.plan),
            [json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop"}})]
        );
        let r = baseline_request(&prepared, "old".into(), Some("v1".into()));
        assert_eq!(r.track, Track::Baseline);
        assert_eq!(r.commit.as_deref(), Some("old"));
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.exposure, Some(Exposure::Shared));
        assert_eq!(r.workloads, ["web"]);
        assert!(!r.with_baseline);
    }
}

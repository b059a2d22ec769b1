//! One deploy request from configuration to the objects to apply: resolve the commit in the
//! service's repository, read its manifests there, pick the tag, rewrite.
//!
//! This is the "decide" half of a deploy; applying the plan to a cluster is the "do" half.

use super::config::{render_tag, Exposure, ServiceConfig};
use super::git::{GitError, ManifestFile, Repo};
use super::manifest::{parse_documents, ManifestError};
use super::rewrite::{rewrite, Plan, Release, RewriteError, Track};
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
    let mut objects = Vec::new();
    for file in &fetched.files {
        objects.extend(
            parse_documents(&file.text, &file.path)?
                .into_iter()
                .map(|m| m.object),
        );
    }
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
    let plan = rewrite(&objects, &release).map_err(|source| PrepareError::Rewrite {
        service: service.name.clone(),
        source,
    })?;
    Ok(Prepared {
        commit,
        release,
        files: fetched.files.len(),
        plan,
    })
}

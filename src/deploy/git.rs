//! Manifests at a commit: one cached bare clone per repository, driven by the `git` command
//! line, so every protocol and credential helper the user's git knows works here too.
//!
//! The first use clones; later uses `git fetch`, which only transfers objects the cache lacks.
//! Files are read straight from the object database (`ls-tree`, `cat-file`): no work tree, no
//! checkout, so two commits can be read one after the other without touching the disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a repository or its manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("git {args} failed for {repository}: {message}")]
    Failed {
        repository: String,
        args: String,
        message: String,
    },
    #[error("{repository}: no commit `{reference}` (fetched; is it pushed?)")]
    UnknownCommit {
        repository: String,
        reference: String,
    },
    #[error("{repository}: no *.yml or *.yaml files under `{folder}/` at commit {commit} (did the manifests move? set `manifests` in deploy.toml)")]
    NoManifests {
        repository: String,
        folder: String,
        commit: String,
    },
    #[error("{repository}: {path} at commit {commit} is not UTF-8 text")]
    NotText {
        repository: String,
        path: String,
        commit: String,
    },
    #[error("cannot create the repository cache {path}: {source}")]
    Cache {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A file read at a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Path inside the repository.
    pub path: String,
    pub text: String,
}

/// A cached bare clone of one repository.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The URL or path git is given.
    repository: String,
    /// The same for messages, with any password masked.
    shown: String,
    dir: PathBuf,
}

/// The default cache folder: `$NPRT_CACHE_DIR`, else `$XDG_CACHE_HOME/nprt`, else
/// `~/.cache/nprt`, else a folder under the system's temporary directory.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NPRT_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("nprt");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".cache/nprt");
    }
    std::env::temp_dir().join("nprt-cache")
}

impl Repo {
    /// The cached clone of `repository` under `cache`: cloned if absent, else fetched, unless
    /// `commit` is a commit id the cache already holds (commits never change, so there is
    /// nothing to ask the remote).
    ///
    /// # Errors
    /// When git cannot be run, or cloning or fetching fails (with git's own message).
    pub fn sync(repository: &str, cache: &Path, commit: Option<&str>) -> Result<Repo, GitError> {
        let repos = cache.join("repos");
        std::fs::create_dir_all(&repos).map_err(|source| GitError::Cache {
            path: repos.display().to_string(),
            source,
        })?;
        let repo = Repo {
            repository: repository.to_owned(),
            shown: redact_url(repository),
            dir: repos.join(cache_name(repository)),
        };
        if repo.dir.join("HEAD").is_file() {
            let known = commit.is_some_and(|c| {
                c.len() >= 7
                    && c.bytes().all(|b| b.is_ascii_hexdigit())
                    && repo.resolve("", Some(c)).is_ok()
            });
            if !known {
                repo.fetch()?;
            }
        } else {
            // Clone next to the final place and rename, so an interrupted clone never
            // looks like a cache.
            let temp = tempfile::Builder::new()
                .prefix(".clone-")
                .tempdir_in(&repos)
                .map_err(|source| GitError::Cache {
                    path: repos.display().to_string(),
                    source,
                })?;
            let target = temp.path().join("repo.git");
            repo.git_in(
                None,
                &[
                    "clone",
                    "--bare",
                    "--quiet",
                    "--",
                    repository,
                    &target.display().to_string(),
                ],
            )?;
            if let Err(source) = std::fs::rename(&target, &repo.dir) {
                // Another process cloned it meanwhile: theirs is as good as ours.
                if !repo.dir.join("HEAD").is_file() {
                    return Err(GitError::Cache {
                        path: repo.dir.display().to_string(),
                        source,
                    });
                }
            }
        }
        Ok(repo)
    }

    /// Where the clone lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn fetch(&self) -> Result<(), GitError> {
        self.git(&[
            "fetch",
            "--quiet",
            "--prune",
            "--force",
            "origin",
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
        ])
        .map(drop)
    }

    /// The full commit id of `commit` if given (any abbreviation or ref git accepts), else
    /// of the head of `branch`.
    ///
    /// # Errors
    /// [`GitError::UnknownCommit`] when neither resolves.
    pub fn resolve(&self, branch: &str, commit: Option<&str>) -> Result<String, GitError> {
        let reference = match commit {
            Some(c) => c.to_owned(),
            None => format!("refs/heads/{branch}"),
        };
        if reference.starts_with('-') {
            return Err(self.unknown(&reference));
        }
        self.git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{reference}^{{commit}}"),
        ])
        .map(|out| out.trim().to_owned())
        .map_err(|_| self.unknown(&reference))
    }

    fn unknown(&self, reference: &str) -> GitError {
        GitError::UnknownCommit {
            repository: self.shown.clone(),
            reference: reference.to_owned(),
        }
    }

    /// Every `*.yml` and `*.yaml` file under `folder` (recursively) at `commit`, by path.
    ///
    /// # Errors
    /// [`GitError::NoManifests`] when there are none, [`GitError::NotText`] for a file that
    /// is not UTF-8.
    pub fn manifests(&self, commit: &str, folder: &str) -> Result<Vec<ManifestFile>, GitError> {
        let listing = self.git(&[
            "ls-tree",
            "-r",
            "-z",
            "--name-only",
            commit,
            "--",
            &format!("{folder}/"),
        ])?;
        let mut paths: Vec<&str> = listing
            .split('\0')
            .filter(|p| p.ends_with(".yaml") || p.ends_with(".yml"))
            .collect();
        paths.sort_unstable();
        if paths.is_empty() {
            return Err(GitError::NoManifests {
                repository: self.shown.clone(),
                folder: folder.to_owned(),
                commit: commit.to_owned(),
            });
        }
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = self.git_bytes(&["cat-file", "blob", &format!("{commit}:{path}")])?;
            let text = String::from_utf8(bytes).map_err(|_| GitError::NotText {
                repository: self.shown.clone(),
                path: path.to_owned(),
                commit: commit.to_owned(),
            })?;
            files.push(ManifestFile {
                path: path.to_owned(),
                text,
            });
        }
        Ok(files)
    }

    fn git(&self, args: &[&str]) -> Result<String, GitError> {
        self.git_in(Some(&self.dir), args)
    }

    fn git_bytes(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        run_git(&self.repository, Some(&self.dir), args)
    }

    fn git_in(&self, dir: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
        let bytes = run_git(&self.repository, dir, args)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// `url` with the password of its user info (`https://user:secret@host/…`) replaced by
/// `***`, for messages: a repository URL may carry a credential, an error must not.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        // `user:password@`: the user stays; a lone `token@` is itself the credential.
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => format!("{scheme}://***@{host}{path}"),
        },
        None => url.to_owned(),
    }
}

/// `text` with every occurrence of the credential in `repository`'s URL masked.
fn redact_in(text: &str, repository: &str) -> String {
    let redacted = redact_url(repository);
    let mut text = text.replace(repository, &redacted);
    if let Some(secret) = repository
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo.split_once(':').map_or(userinfo, |(_, p)| p))
        .filter(|s| !s.is_empty())
    {
        text = text.replace(secret, "***");
    }
    text
}

fn run_git(repository: &str, dir: Option<&Path>, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let mut cmd = Command::new("git");
    if let Some(dir) = dir {
        cmd.arg("--git-dir").arg(dir);
    }
    let out = cmd
        .args(args)
        // Never wait for a password on a terminal nobody watches.
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(GitError::Spawn)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(GitError::Failed {
            repository: redact_url(repository),
            args: args.first().copied().unwrap_or("").to_owned(),
            message: redact_in(stderr.trim().lines().last().unwrap_or(""), repository),
        })
    }
}

/// A folder name for the clone: readable, and distinct for distinct repositories.
fn cache_name(repository: &str) -> String {
    // FNV-1a: stable across Rust versions, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in repository.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let readable: String = repository
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repo")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    format!("{readable}-{hash:016x}.git")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://ci:s3cret@git.example/team/shop.git"),
            "https://ci:***@git.example/team/shop.git"
        );
        assert_eq!(
            redact_url("https://git.example/a@b"),
            "https://git.example/a@b"
        );
        assert_eq!(redact_url("/srv/repo"), "/srv/repo");
        assert_eq!(
            redact_url("https://ghp_abc@github.com/x"),
            "https://***@github.com/x"
        );
        assert_eq!(redact_url("git@host:team/app.git"), "git@host:team/app.git");
        let text = redact_in(
            "fatal: could not read from 'https://ci:s3cret@git.example/x': s3cret",
            "https://ci:s3cret@git.example/x",
        );
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn cache_names() {
        let a = cache_name("https://git.example/team/shop.git");
        assert!(a.starts_with("shop-") && a.ends_with(".git"), "{a}");
        assert_ne!(a, cache_name("https://git.example/other/shop.git"));
        assert_eq!(a, cache_name("https://git.example/team/shop.git"));
        assert!(cache_name("git@host:team/app.git").starts_with("app-"));
        assert!(cache_name("/srv/repos/x/").starts_with("x-"));
    }
}

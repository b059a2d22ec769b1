//! `deploy.toml`: which services the driver deploys, from which repository and branch, into
//! which namespace, and how their versions are tagged.
//!
//! Parsing is pure (text in, [`DeployConfig`] out) so every rule is tested without files;
//! [`DeployConfig::load`] is the one function that reads the file. Secrets (registry
//! passwords, API tokens) are only ever *referenced* here, by environment variable or file:
//! a config file gets committed, copied and pasted into tickets, so an inline secret is an
//! error, never a warning.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a `deploy.toml` was refused. Every variant names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: String,
        field: String,
        message: String,
    },
    #[error("{file}: no service `{service}` (services: {known})")]
    UnknownService {
        file: String,
        service: String,
        known: String,
    },
    #[error("{file}: {field}: cannot read the secret: {message}")]
    Secret {
        file: String,
        field: String,
        message: String,
    },
}

/// How a canary is exposed to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exposure {
    /// No production Service selects the canary; it only sees mirrored traffic.
    #[default]
    Shadow,
    /// The thesis's canary: it keeps the selector labels and takes a share of user traffic.
    Shared,
}

impl Exposure {
    /// The name `deploy.toml` and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            Exposure::Shadow => "shadow",
            Exposure::Shared => "shared",
        }
    }
}

impl std::str::FromStr for Exposure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "shadow" => Ok(Exposure::Shadow),
            "shared" => Ok(Exposure::Shared),
            other => Err(format!(
                "unknown exposure `{other}`, expected `shadow` or `shared`"
            )),
        }
    }
}

/// A secret held outside the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// The value of an environment variable.
    Env(String),
    /// The contents of a file, without a trailing newline.
    File(PathBuf),
}

impl SecretRef {
    /// Reads the secret.
    ///
    /// # Errors
    /// When the variable is unset or empty, or the file cannot be read or is empty.
    pub fn resolve(&self) -> Result<String, String> {
        let value = match self {
            SecretRef::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?,
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        };
        if value.is_empty() {
            return Err(match self {
                SecretRef::Env(name) => format!("environment variable {name} is empty"),
                SecretRef::File(path) => format!("{} is empty", path.display()),
            });
        }
        Ok(value)
    }
}

/// Credentials for the image registry, and the CA its certificate is checked with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryAuth {
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    /// A PEM CA trusted besides the system's roots (a private registry's own CA). With it a
    /// loopback registry is spoken to over https too.
    pub ca_file: Option<PathBuf>,
}

/// One service the driver deploys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub name: String,
    /// A git URL or a local path (relative paths are relative to the config file).
    pub repository: String,
    pub branch: String,
    /// The folder of manifests inside the repository.
    pub manifests: String,
    pub namespace: Option<String>,
    pub exposure: Exposure,
    pub tag_format: String,
    /// How many hex digits of the commit go into `{commit}`.
    pub commit_length: usize,
    pub registry: RegistryAuth,
    /// The token that allows deploy API calls for this service.
    pub api_token: Option<SecretRef>,
}

/// A whole `deploy.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// The file it came from, for messages.
    pub file: String,
    pub services: BTreeMap<String, ServiceConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    services: BTreeMap<String, RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    repository: String,
    #[serde(default = "default_branch")]
    branch: String,
    #[serde(default = "default_manifests")]
    manifests: String,
    namespace: Option<String>,
    #[serde(default)]
    exposure: Exposure,
    #[serde(default = "default_tag_format")]
    tag_format: String,
    #[serde(default = "default_commit_length")]
    commit_length: usize,
    #[serde(default)]
    registry: Option<RawRegistry>,
    // Accepted by the parser only to be refused with a message that says what to do.
    api_token: Option<toml::Value>,
    api_token_env: Option<String>,
    api_token_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    username: Option<String>,
    password: Option<toml::Value>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    token: Option<toml::Value>,
    ca_file: Option<PathBuf>,
}

fn default_branch() -> String {
    "main".to_owned()
}
fn default_manifests() -> String {
    "kubernetes".to_owned()
}
fn default_tag_format() -> String {
    "{commit}".to_owned()
}
fn default_commit_length() -> usize {
    7
}

impl DeployConfig {
    /// Reads and checks a `deploy.toml`.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file cannot be read, [`ConfigError::Invalid`] naming the
    /// field for anything wrong inside it.
    pub fn load(path: &Path) -> Result<DeployConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        DeployConfig::parse(&text, &file, base)
    }

    /// Parses and checks the text of a `deploy.toml`; `base` is the folder relative local
    /// repository paths and secret files are resolved against.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the field.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<DeployConfig, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            file: file.to_owned(),
            field: field_at(text, e.span()),
            message: e.message().trim().to_owned(),
        })?;
        let mut services = BTreeMap::new();
        for (name, raw) in raw.services {
            let service = check_service(&name, raw, base).map_err(|(field, message)| {
                ConfigError::Invalid {
                    file: file.to_owned(),
                    field: format!("services.{name}{}", field_suffix(&field)),
                    message,
                }
            })?;
            services.insert(name, service);
        }
        if services.is_empty() {
            return Err(ConfigError::Invalid {
                file: file.to_owned(),
                field: "services".to_owned(),
                message: "no service defined; add a [services.NAME] table".to_owned(),
            });
        }
        Ok(DeployConfig {
            file: file.to_owned(),
            services,
        })
    }

    /// The configuration of one service.
    ///
    /// # Errors
    /// [`ConfigError::UnknownService`] listing the services there are.
    pub fn service(&self, name: &str) -> Result<&ServiceConfig, ConfigError> {
        self.services
            .get(name)
            .ok_or_else(|| ConfigError::UnknownService {
                file: self.file.clone(),
                service: name.to_owned(),
                known: self.services.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }
}

fn field_suffix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!(".{field}")
    }
}

/// The dotted name of the key at `span` (the innermost `[table]` header above it plus the key
/// on its line), so a type error says which field, not only which line.
fn field_at(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return "(file)".to_owned();
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text
        .get(line_start..)
        .and_then(|rest| rest.find('\n'))
        .map_or(text.len(), |i| line_start + i);
    let line = text.get(line_start..line_end).unwrap_or("").trim();
    let header = before
        .get(..line_start)
        .unwrap_or("")
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(['[', ']']).trim().to_owned());
    if line.starts_with('[') {
        return line.trim_matches(['[', ']']).trim().to_owned();
    }
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned());
    match (header, key) {
        (Some(h), Some(k)) => format!("{h}.{k}"),
        (None, Some(k)) => k,
        (Some(h), None) => h,
        (None, None) => format!("line {}", before.matches('\n').count() + 1),
    }
}

type FieldError = (String, String);

fn invalid(field: &str, message: impl Into<String>) -> FieldError {
    (field.to_owned(), message.into())
}

/// One service's table, checked part by part in the order of the file's keys; the first
/// problem is the one reported.
fn check_service(name: &str, raw: RawService, base: &Path) -> Result<ServiceConfig, FieldError> {
    if !is_dns_label(name) {
        return Err(invalid(
            "",
            format!("`{name}` is not a valid service name (lower-case letters, digits and '-', at most 63)"),
        ));
    }
    let repository = check_repository(raw.repository, base)?;
    check_branch(&raw.branch)?;
    let manifests = check_manifests(&raw.manifests)?;
    if let Some(ns) = &raw.namespace {
        if !is_dns_label(ns) {
            return Err(invalid(
                "namespace",
                format!("`{ns}` is not a valid namespace name"),
            ));
        }
    }
    check_tag_format(&raw.tag_format).map_err(|m| invalid("tag_format", m))?;
    if !(4..=40).contains(&raw.commit_length) {
        return Err(invalid(
            "commit_length",
            format!(
                "{} is out of range; use 4 to 40 hex digits",
                raw.commit_length
            ),
        ));
    }
    if raw.api_token.is_some() {
        return Err(invalid(
            "api_token",
            "inline secrets are not allowed; use api_token_env = \"VAR\" or api_token_file = \"PATH\"",
        ));
    }
    let api_token = secret_ref("api_token", raw.api_token_env, raw.api_token_file, base)?;
    let registry = match raw.registry {
        None => RegistryAuth::default(),
        Some(r) => check_registry(r, base)?,
    };
    Ok(ServiceConfig {
        name: name.to_owned(),
        repository,
        branch: raw.branch,
        manifests,
        namespace: raw.namespace,
        exposure: raw.exposure,
        tag_format: raw.tag_format,
        commit_length: raw.commit_length,
        registry,
        api_token,
    })
}

/// The repository as git will be given it: a URL or absolute path as written, a relative path
/// resolved against the config file's folder (so the config works from any directory).
fn check_repository(repository: String, base: &Path) -> Result<String, FieldError> {
    if repository.trim().is_empty() {
        return Err(invalid(
            "repository",
            "is empty; give a git URL or a local path",
        ));
    }
    if is_url(&repository) || Path::new(&repository).is_absolute() {
        return Ok(repository);
    }
    Ok(base.join(&repository).display().to_string())
}

/// A branch name git cannot take for an option or a range.
fn check_branch(branch: &str) -> Result<(), FieldError> {
    if branch.trim().is_empty() || branch.starts_with('-') || branch.contains("..") {
        return Err(invalid(
            "branch",
            format!("`{branch}` is not a branch name"),
        ));
    }
    Ok(())
}

/// The manifests folder without surrounding slashes; it must stay inside the repository.
fn check_manifests(raw: &str) -> Result<String, FieldError> {
    let manifests = raw.trim_matches('/').to_owned();
    if manifests.is_empty()
        || Path::new(raw).is_absolute()
        || manifests
            .split('/')
            .any(|part| part == ".." || part.is_empty())
    {
        return Err(invalid(
            "manifests",
            format!("`{raw}` must be a folder inside the repository, like `kubernetes`"),
        ));
    }
    Ok(manifests)
}

/// The `[services.NAME.registry]` table: no inline secret, a username exactly when a password
/// is given, the CA file resolved against the config file's folder.
fn check_registry(r: RawRegistry, base: &Path) -> Result<RegistryAuth, FieldError> {
    if r.password.is_some() {
        return Err(invalid(
            "registry.password",
            "inline secrets are not allowed; use password_env = \"VAR\" or password_file = \"PATH\"",
        ));
    }
    if r.token.is_some() {
        return Err(invalid(
            "registry.token",
            "inline secrets are not allowed; use password_env or password_file (a token is a password)",
        ));
    }
    if r.ca_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        return Err(invalid("registry.ca_file", "is empty; give a PEM file"));
    }
    let password = secret_ref("registry.password", r.password_env, r.password_file, base)?;
    if password.is_some() != r.username.is_some() {
        return Err(invalid(
            "registry",
            "username and password_env/password_file go together",
        ));
    }
    Ok(RegistryAuth {
        username: r.username,
        password,
        ca_file: r.ca_file.map(|path| base.join(path)),
    })
}

fn secret_ref(
    field: &str,
    env: Option<String>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<Option<SecretRef>, FieldError> {
    match (env, file) {
        (Some(_), Some(_)) => Err(invalid(
            field,
            format!("give either {field}_env or {field}_file, not both"),
        )),
        (Some(var), None) if var.is_empty() || var.contains('=') || var.contains('\0') => {
            Err(invalid(
                &format!("{field}_env"),
                format!("`{var}` is not an environment variable name"),
            ))
        }
        (Some(var), None) => Ok(Some(SecretRef::Env(var))),
        (None, Some(path)) => Ok(Some(SecretRef::File(if path.is_absolute() {
            path
        } else {
            base.join(path)
        }))),
        (None, None) => Ok(None),
    }
}

fn check_tag_format(format: &str) -> Result<(), String> {
    let mut rest = format;
    let mut has_commit = false;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("`{format}` has an unclosed `{{`"))?;
        match &after[..close] {
            "commit" => has_commit = true,
            "branch" => {}
            other => {
                return Err(format!(
                    "unknown placeholder `{{{other}}}` in `{format}`; use {{commit}} and {{branch}}"
                ))
            }
        }
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("`{format}` has a `}}` without `{{`"));
    }
    if !has_commit {
        return Err(format!(
            "`{format}` must contain {{commit}}, so each commit gets its own tag"
        ));
    }
    Ok(())
}

/// The image tag of a commit: `tag_format` with `{commit}` (shortened to `commit_length`) and
/// `{branch}` filled in, made a valid tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`: a branch
/// `feature/x` becomes `feature-x`).
pub fn render_tag(format: &str, branch: &str, commit: &str, commit_length: usize) -> String {
    let short: String = commit.chars().take(commit_length).collect();
    let raw = format
        .replace("{commit}", &short)
        .replace("{branch}", branch);
    let mut tag: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while tag.starts_with(['.', '-']) {
        tag.remove(0);
    }
    tag.truncate(128);
    tag
}

fn is_url(repository: &str) -> bool {
    repository.contains("://") || (repository.contains('@') && repository.contains(':'))
}

/// An RFC 1123 label: what Kubernetes accepts as a namespace or Service name.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DeployConfig, ConfigError> {
        DeployConfig::parse(text, "deploy.toml", Path::new("/etc/nprt"))
    }

    fn message(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let config =
            parse("[services.shop]\nrepository = \"https://git.example/shop.git\"\n").unwrap();
        let shop = config.service("shop").unwrap();
        assert_eq!(shop.branch, "main");
        assert_eq!(shop.manifests, "kubernetes");
        assert_eq!(shop.exposure, Exposure::Shadow);
        assert_eq!(shop.tag_format, "{commit}");
        assert_eq!(shop.commit_length, 7);
        assert_eq!(shop.namespace, None);
        assert_eq!(shop.api_token, None);
        assert_eq!(shop.repository, "https://git.example/shop.git");
    }

    #[test]
    fn full_service() {
        let config = parse(
            r#"
[services.shop]
repository = "../repos/shop"
branch = "release"
manifests = "deploy/k8s/"
namespace = "prod"
exposure = "shared"
tag_format = "{branch}-{commit}"
commit_length = 12
api_token_env = "SHOP_TOKEN"

[services.shop.registry]
username = "robot"
password_file = "secrets/registry"
"#,
        )
        .unwrap();
        let shop = config.service("shop").unwrap();
        assert_eq!(shop.repository, "/etc/nprt/../repos/shop");
        assert_eq!(shop.manifests, "deploy/k8s");
        assert_eq!(shop.namespace.as_deref(), Some("prod"));
        assert_eq!(shop.exposure, Exposure::Shared);
        assert_eq!(shop.commit_length, 12);
        assert_eq!(shop.api_token, Some(SecretRef::Env("SHOP_TOKEN".into())));
        assert_eq!(
            shop.registry.password,
            Some(SecretRef::File("/etc/nprt/secrets/registry".into()))
        );
    }

    #[test]
    fn inline_secrets_are_refused() {
        let m = message(
            "[services.shop]\nrepository = \"r\"\n[services.shop.registry]\nusername = \"u\"\npassword = \"hunter2\"\n",
        );
        assert!(
            m.starts_with(
                "deploy.toml: services.shop.registry.password: inline secrets are not allowed"
            ),
            "{m}"
        );
        assert!(!m.contains("hunter2"));
        let m = message("[services.shop]\nrepository = \"r\"\napi_token = \"abc\"\n");
        assert!(m.contains("services.shop.api_token: inline secrets"), "{m}");
        assert!(m.contains("api_token_env"), "{m}");
        let m = message(
            "[services.shop]\nrepository = \"r\"\n[services.shop.registry]\ntoken = \"abc\"\n",
        );
        assert!(
            m.contains("services.shop.registry.token: inline secrets"),
            "{m}"
        );
    }

    #[test]
    fn type_and_unknown_field_errors_name_the_field() {
        let m = message("[services.shop]\nrepository = \"r\"\nexposure = \"public\"\n");
        assert!(m.starts_with("deploy.toml: services.shop.exposure:"), "{m}");
        assert!(m.contains("shadow"), "{m}");
        let m = message("[services.shop]\nrepository = \"r\"\nbranchh = \"x\"\n");
        assert!(m.contains("services.shop.branchh"), "{m}");
        assert!(m.contains("unknown field"), "{m}");
        let m = message("[services.shop]\nrepository = \"r\"\ncommit_length = \"7\"\n");
        assert!(m.contains("services.shop.commit_length"), "{m}");
        let m = message("[services.shop]\nbranch = \"main\"\n");
        assert!(m.contains("repository"), "{m}");
        let m = message("[services.shop\nrepository = 1\n");
        assert!(m.starts_with("deploy.toml: "), "{m}");
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let cases = [
            (
                "tag_format = \"{branch}\"",
                "services.shop.tag_format",
                "must contain {commit}",
            ),
            (
                "tag_format = \"{sha}\"",
                "services.shop.tag_format",
                "unknown placeholder",
            ),
            (
                "tag_format = \"{commit\"",
                "services.shop.tag_format",
                "unclosed",
            ),
            (
                "commit_length = 2",
                "services.shop.commit_length",
                "out of range",
            ),
            (
                "namespace = \"Prod\"",
                "services.shop.namespace",
                "not a valid namespace",
            ),
            (
                "manifests = \"../x\"",
                "services.shop.manifests",
                "inside the repository",
            ),
            (
                "manifests = \"/abs\"",
                "services.shop.manifests",
                "inside the repository",
            ),
            ("branch = \"\"", "services.shop.branch", "not a branch"),
            (
                "api_token_env = \"A\"\napi_token_file = \"f\"",
                "services.shop.api_token",
                "not both",
            ),
        ];
        for (line, field, what) in cases {
            let m = message(&format!("[services.shop]\nrepository = \"r\"\n{line}\n"));
            assert!(
                m.starts_with(&format!("deploy.toml: {field}: ")),
                "{line}: {m}"
            );
            assert!(m.contains(what), "{line}: {m}");
        }
        let m = message("[services.Shop]\nrepository = \"r\"\n");
        assert!(m.contains("services.Shop: "), "{m}");
        let m = message("");
        assert!(m.contains("services: no service"), "{m}");
        let m = message(
            "[services.shop]\nrepository = \"r\"\n[services.shop.registry]\nusername = \"u\"\n",
        );
        assert!(
            m.contains("services.shop.registry: username and password"),
            "{m}"
        );
    }

    #[test]
    fn unknown_service_lists_known_ones() {
        let config =
            parse("[services.a]\nrepository = \"r\"\n[services.b]\nrepository = \"r\"\n").unwrap();
        let m = config.service("c").unwrap_err().to_string();
        assert_eq!(m, "deploy.toml: no service `c` (services: a, b)");
    }

    #[test]
    fn tags() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(render_tag("{commit}", "main", c, 7), "0123456");
        assert_eq!(
            render_tag("{branch}-{commit}", "feature/x", c, 8),
            "feature-x-01234567"
        );
        assert_eq!(render_tag("{branch}-{commit}", "-x", c, 4), "x-0123");
        let long = "b".repeat(200);
        assert_eq!(render_tag("{branch}-{commit}", &long, c, 7).len(), 128);
    }

    #[test]
    fn secret_refs_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(SecretRef::File(path.clone()).resolve().unwrap(), "s3cret");
        std::fs::write(&path, "").unwrap();
        assert!(SecretRef::File(path)
            .resolve()
            .unwrap_err()
            .contains("is empty"));
        assert!(SecretRef::Env("NPRT_TEST_SURELY_UNSET_VAR".into())
            .resolve()
            .unwrap_err()
            .contains("not set"));
    }
}

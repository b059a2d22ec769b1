//! Where notifications go: the `[notify]` table of a scenario and `--notify-url` of
//! `nprt shadow`/`nprt mirror`.
//!
//! A webhook URL is the credential (whoever has it can post to the channel), so it is never
//! written inline: a scenario names an environment variable (`url_env`) or a file
//! (`url_file`), the command line takes `env:NAME` or `file:PATH`, and a literal URL is
//! refused. No message here ever quotes the URL.
//!
//! ```toml
//! [notify]
//! url_env = "SLACK_WEBHOOK_URL"   # or url_file = "/run/secrets/slack-url" (exactly one)
//! format = "slack"                # slack (Slack, Mattermost) | json (a generic document)
//! timeout = "5s"                  # per message
//! ```

use super::{Format, Notifier};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How long a message may take when no timeout is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `[notify]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    url_env: Option<String>,
    url_file: Option<String>,
    format: Option<Format>,
    timeout: Option<String>,
}

/// A `[notify]` mistake: the dotted key (`notify.url_env`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct NotifyError {
    pub field: String,
    pub message: String,
}

impl NotifyError {
    fn new(field: &str, message: impl Into<String>) -> NotifyError {
        NotifyError {
            field: format!("notify.{field}"),
            message: message.into(),
        }
    }
}

/// Where the webhook's URL is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    /// An environment variable's name.
    Env(String),
    /// A file holding the URL (surrounding whitespace ignored), e.g. a mounted secret.
    File(PathBuf),
}

/// A checked `[notify]` table: where the URL is kept, not the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub url: UrlSource,
    pub format: Format,
    pub timeout: Duration,
}

impl RawNotify {
    /// Checks the table's shape without reading anything; `path(key, value)` resolves
    /// `url_file` the way the scenario resolves its other paths.
    ///
    /// # Errors
    /// [`NotifyError`] naming the key.
    pub fn check(&self, path: impl Fn(&str, &str) -> PathBuf) -> Result<Spec, NotifyError> {
        let url = match (&self.url_env, &self.url_file) {
            (Some(_), Some(_)) => {
                return Err(NotifyError::new(
                    "url_file",
                    "give notify.url_env or notify.url_file, not both",
                ))
            }
            (None, None) => {
                return Err(NotifyError::new(
                    "url_env",
                    "missing: the environment variable holding the webhook's URL (or notify.url_file); the URL itself never goes in a scenario file",
                ))
            }
            (Some(name), None) => {
                if !is_env_name(name) {
                    return Err(NotifyError::new(
                        "url_env",
                        "not an environment variable name (letters, digits and '_'); the URL itself never goes in a scenario file",
                    ));
                }
                UrlSource::Env(name.clone())
            }
            (None, Some(file)) => {
                if file.trim().is_empty() {
                    return Err(NotifyError::new("url_file", "must not be empty"));
                }
                UrlSource::File(path("notify.url_file", file))
            }
        };
        let timeout = match &self.timeout {
            Some(t) => {
                let d =
                    crate::spec::parse_duration(t).map_err(|m| NotifyError::new("timeout", m))?;
                if d.is_zero() {
                    return Err(NotifyError::new("timeout", "must be longer than zero"));
                }
                d
            }
            None => DEFAULT_TIMEOUT,
        };
        Ok(Spec {
            url,
            format: self.format.unwrap_or_default(),
            timeout,
        })
    }
}

impl Spec {
    fn key(&self) -> &'static str {
        match self.url {
            UrlSource::Env(_) => "url_env",
            UrlSource::File(_) => "url_file",
        }
    }

    /// Reads the URL, to check before anything runs that it is there and is one.
    ///
    /// # Errors
    /// [`NotifyError`] naming `notify.url_env` or `notify.url_file`.
    pub fn read_url(&self) -> Result<hyper::Uri, NotifyError> {
        self.url.read().map_err(|m| NotifyError::new(self.key(), m))
    }

    /// Reads the URL and makes the notifier.
    ///
    /// # Errors
    /// [`NotifyError`] naming `notify.url_env` or `notify.url_file`.
    pub fn notifier(&self) -> Result<Notifier, NotifyError> {
        let url = self.read_url()?;
        Notifier::new(url, self.format, self.timeout).map_err(|m| NotifyError::new(self.key(), m))
    }

    /// The notifier of a run whose scenario was checked by `load`: should the URL have gone
    /// since (a variable unset, a file removed), the run goes on without messages, warned.
    pub fn start(&self) -> Option<Notifier> {
        self.notifier()
            .map_err(|e| tracing::warn!("no notifications: {e}"))
            .ok()
    }

    /// Where the URL is read from, for `nprt run --check`.
    pub fn describe(&self) -> String {
        let from = match &self.url {
            UrlSource::Env(name) => format!("${name}"),
            UrlSource::File(path) => path.display().to_string(),
        };
        format!(
            "{} webhook, URL from {from}, timeout {:?}",
            self.format.as_str(),
            self.timeout
        )
    }
}

impl UrlSource {
    /// The URL, checked to be an absolute http(s) URL.
    ///
    /// # Errors
    /// Why not, without quoting the URL.
    pub fn read(&self) -> Result<hyper::Uri, String> {
        let (text, from) = match self {
            UrlSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => (v, format!("environment variable {name}")),
                Ok(_) => return Err(format!("environment variable {name} is empty")),
                Err(std::env::VarError::NotPresent) => {
                    return Err(format!("environment variable {name} is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(format!("environment variable {name} is not valid UTF-8"))
                }
            },
            UrlSource::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => (v, path.display().to_string()),
                Ok(_) => return Err(format!("{} is empty", path.display())),
                Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            },
        };
        webhook_url(text.trim()).map_err(|why| format!("{from} {why}"))
    }
}

/// Checks a webhook URL; the reason never quotes it.
fn webhook_url(text: &str) -> Result<hyper::Uri, &'static str> {
    let not_a_url = "does not hold an http:// or https:// URL (the webhook's)";
    let uri: hyper::Uri = text.parse().map_err(|_| not_a_url)?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(not_a_url);
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("holds a URL without a host");
    }
    Ok(uri)
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `--notify-url` and its companions, flattened into `nprt shadow` and `nprt mirror`.
#[derive(Debug, Clone, clap::Args)]
pub struct NotifyArgs {
    /// Post the verdict to a chat or JSON webhook whose URL is in an environment variable
    /// (env:NAME) or a file (file:PATH); never the URL itself, which carries its token.
    #[arg(long, value_name = "env:NAME|file:PATH")]
    pub notify_url: Option<String>,
    /// The body posted: slack (a Slack or Mattermost incoming webhook) or json (a generic
    /// document).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Slack)]
    pub notify_format: Format,
    /// How long a notification may take; a slower webhook is given up on (and logged).
    #[arg(long, value_name = "D", value_parser = crate::spec::parse_duration, default_value = "5s")]
    pub notify_timeout: Duration,
}

impl NotifyArgs {
    /// The one verdict message of a live run `run` (`shadow`, `mirror`) whose reports go to
    /// `report`, when `--notify-url` was given.
    ///
    /// # Errors
    /// As [`NotifyArgs::notifier`].
    pub fn live(
        &self,
        run: &str,
        report: Option<PathBuf>,
    ) -> Result<Option<std::sync::Arc<super::LiveVerdict>>, String> {
        Ok(self
            .notifier()?
            .map(|n| super::LiveVerdict::new(n, run, report)))
    }

    /// The notifier, when `--notify-url` was given: its URL read now, so that a missing
    /// variable or file is a usage error before anything runs.
    ///
    /// # Errors
    /// A message naming the flag (never the URL).
    pub fn notifier(&self) -> Result<Option<Notifier>, String> {
        let Some(text) = &self.notify_url else {
            return Ok(None);
        };
        let source = parse_url_source(text).map_err(|m| format!("--notify-url: {m}"))?;
        if self.notify_timeout.is_zero() {
            return Err("--notify-timeout must be longer than zero".to_owned());
        }
        let url = source.read().map_err(|m| format!("--notify-url: {m}"))?;
        Notifier::new(url, self.notify_format, self.notify_timeout)
            .map(Some)
            .map_err(|m| format!("--notify-url: {m}"))
    }
}

/// `env:NAME` or `file:PATH`. A literal URL is refused with a hint: a command line shows in
/// process lists and shell histories, and a webhook URL is a credential.
///
/// # Errors
/// Why, never quoting a URL.
pub fn parse_url_source(text: &str) -> Result<UrlSource, String> {
    if let Some(name) = text.strip_prefix("env:") {
        if !is_env_name(name) {
            return Err(format!(
                "`env:{name}`: `{name}` is not an environment variable name"
            ));
        }
        return Ok(UrlSource::Env(name.to_owned()));
    }
    if let Some(path) = text.strip_prefix("file:") {
        if path.trim().is_empty() {
            return Err("`file:` needs the path of the file holding the URL".to_owned());
        }
        return Ok(UrlSource::File(PathBuf::from(path)));
    }
    let lower = text.to_ascii_lowercase();
    let hint = "put the URL in an environment variable and give env:NAME \
                (e.g. --notify-url env:SLACK_WEBHOOK_URL), or in a file and give file:PATH";
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.contains("://") {
        return Err(format!(
            "a webhook URL carries its token and is not taken on the command line (where process lists and shell histories show it): {hint}"
        ));
    }
    Err(format!("expected env:NAME or file:PATH: {hint}"))
}

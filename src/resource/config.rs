//! The judge file's `[prometheus]` section: where Prometheus is, how finely to query it, and
//! the metrics to judge. Parsing is pure: the section's text (already split out by the judge
//! file's TOML parser) in, a checked [`Config`] out, or the span of the key at fault.

use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::spec::units::parse_duration;

/// The placeholders a query may use, filled per target (see [`super::promql::fill`]).
pub const PLACEHOLDERS: [&str; 6] = [
    "target",
    "version",
    "track",
    "namespace",
    "workload",
    "step",
];

/// Where the bearer token for the Prometheus API comes from; never written in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Token {
    None,
    Env(String),
    File(std::path::PathBuf),
}

/// Level metrics are compared step by step; growth metrics by their slope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Level,
    Growth,
}

/// Which direction of change is a regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Harmful {
    Increase,
    Decrease,
    Both,
}

/// How much harmful change is allowed: a change fails only above every limit given, like the
/// latency allowances (`relative` of the baseline's median, `absolute` in the metric's unit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    pub relative: Option<f64>,
    pub absolute: Option<f64>,
}

impl Limit {
    /// The allowance for a baseline level of `baseline` (absolute value taken).
    pub fn allowance(&self, baseline: f64) -> f64 {
        let relative = self.relative.map_or(0.0, |r| r * baseline.abs());
        relative.max(self.absolute.unwrap_or(0.0))
    }

    /// As written in a judge file: "+20%", "+0.002", "+20%, +0.002".
    pub fn text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = self.relative {
            parts.push(format!("+{}%", (r * 100.0 * 1e6).round() / 1e6));
        }
        if let Some(a) = self.absolute {
            parts.push(format!("+{a}"));
        }
        parts.join(", ")
    }
}

/// One metric to judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    /// PromQL with `{placeholders}`; must return one series per target.
    pub query: String,
    pub kind: Kind,
    /// Divide each step's value by the target's request rate nprt observed in that step.
    pub per_request: bool,
    pub harmful: Harmful,
    pub limit: Limit,
}

/// The whole section, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Base URL of the Prometheus HTTP API (`/api/v1/query_range` is appended).
    pub url: String,
    pub token: Token,
    /// Resolution of the range queries, whole seconds.
    pub step_s: u64,
    /// Wait after the traffic ends before querying, so the last steps are scraped.
    pub settle_ms: u64,
    /// Longest wait for one query.
    pub timeout_ms: u64,
    /// Shadow and mirror: how often the metrics are queried during the run.
    pub live_interval_ms: u64,
    /// Steps each target needs, with traffic in them, before a metric is judged.
    pub min_steps: usize,
    pub metrics: Vec<Metric>,
}

impl Config {
    pub fn step(&self) -> Duration {
        Duration::from_secs(self.step_s)
    }
}

/// The section as written; every value keeps its span for error messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    url: Spanned<String>,
    token_env: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    step: Option<Spanned<String>>,
    settle: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    live_interval: Option<Spanned<String>>,
    min_steps: Option<Spanned<u64>>,
    #[serde(default)]
    metrics: Vec<MetricFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricFile {
    name: Spanned<String>,
    query: Spanned<String>,
    kind: Option<Spanned<String>>,
    per_request: Option<bool>,
    harmful: Option<Spanned<String>>,
    limit: Option<Spanned<String>>,
}

/// A mistake in the section: the byte range of the value at fault and what is wrong.
pub type Error = (Range<usize>, String);

fn at<T>(value: &Spanned<T>, message: String) -> Error {
    (value.span(), message)
}

fn duration(
    value: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
) -> Result<Duration, Error> {
    match value {
        None => Ok(default),
        Some(v) => parse_duration(v.get_ref()).map_err(|e| at(v, format!("prometheus.{key}: {e}"))),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Parses "+20%", "+0.002", "20%", or "+20%, +0.002".
pub fn parse_limit(text: &str) -> Result<Limit, String> {
    let mut limit = Limit {
        relative: None,
        absolute: None,
    };
    for part in text.split(',').map(str::trim) {
        let number = part.strip_prefix('+').unwrap_or(part);
        let (value, relative) = match number.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (number, false),
        };
        let v: f64 = value.parse().map_err(|_| {
            format!("`{part}` is not an allowance: write \"+20%\", \"+0.002\" or \"+20%, +0.002\"")
        })?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("`{part}`: an allowance is a number ≥ 0"));
        }
        let slot = if relative {
            &mut limit.relative
        } else {
            &mut limit.absolute
        };
        if slot.is_some() {
            return Err(format!(
                "`{text}` gives the {} allowance twice",
                if relative { "relative" } else { "absolute" }
            ));
        }
        *slot = Some(if relative { v / 100.0 } else { v });
    }
    Ok(limit)
}

/// Checks a query's placeholders: only the known names, braces balanced around them.
/// PromQL's own braces (label matchers) are told apart by what they hold: `{name}` with a
/// bare identifier is a placeholder, anything else is PromQL.
pub fn check_query(query: &str) -> Result<(), String> {
    for name in super::promql::placeholders(query) {
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}}; known: {}",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            ));
        }
    }
    Ok(())
}

fn metric(m: &MetricFile, i: usize) -> Result<Metric, Error> {
    let key = |k: &str| format!("prometheus.metrics[{i}].{k}");
    let name = m.name.get_ref().trim();
    if name.is_empty() {
        return Err(at(&m.name, format!("{} must not be empty", key("name"))));
    }
    if m.query.get_ref().trim().is_empty() {
        return Err(at(&m.query, format!("{} must not be empty", key("query"))));
    }
    check_query(m.query.get_ref()).map_err(|e| at(&m.query, format!("{}: {e}", key("query"))))?;
    let kind = match m.kind.as_ref().map(|k| k.get_ref().as_str()) {
        None | Some("level") => Kind::Level,
        Some("growth") => Kind::Growth,
        Some(other) => {
            let k = m.kind.as_ref().expect("matched Some");
            return Err(at(
                k,
                format!(
                    "{} must be \"level\" or \"growth\", got {other:?}",
                    key("kind")
                ),
            ));
        }
    };
    let harmful = match m.harmful.as_ref().map(|h| h.get_ref().as_str()) {
        None | Some("increase") => Harmful::Increase,
        Some("decrease") => Harmful::Decrease,
        Some("both") => Harmful::Both,
        Some(other) => {
            let h = m.harmful.as_ref().expect("matched Some");
            return Err(at(
                h,
                format!(
                    "{} must be \"increase\", \"decrease\" or \"both\", got {other:?}",
                    key("harmful")
                ),
            ));
        }
    };
    let limit = match &m.limit {
        None => Limit {
            relative: Some(0.2),
            absolute: None,
        },
        Some(l) => parse_limit(l.get_ref()).map_err(|e| at(l, format!("{}: {e}", key("limit"))))?,
    };
    Ok(Metric {
        name: name.to_owned(),
        query: m.query.get_ref().trim().to_owned(),
        kind,
        per_request: m.per_request.unwrap_or(false),
        harmful,
        limit,
    })
}

/// Checks the section.
///
/// # Errors
/// The span and message of the first bad value.
pub fn build(file: &File) -> Result<Config, Error> {
    let url = file.url.get_ref().trim().trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
        return Err(at(
            &file.url,
            format!(
                "prometheus.url must be an http:// or https:// URL, got {:?}",
                file.url.get_ref()
            ),
        ));
    }
    let token = match (&file.token_env, &file.token_file) {
        (Some(e), Some(_)) => {
            return Err(at(
                e,
                "prometheus: give token_env or token_file, not both".into(),
            ))
        }
        (Some(e), None) if e.get_ref().trim().is_empty() => {
            return Err(at(e, "prometheus.token_env must name a variable".into()))
        }
        (Some(e), None) => Token::Env(e.get_ref().trim().to_owned()),
        (None, Some(f)) => Token::File(f.get_ref().into()),
        (None, None) => Token::None,
    };
    let step = duration(&file.step, "step", Duration::from_secs(10))?;
    if step.subsec_nanos() != 0 || step.is_zero() {
        let s = file.step.as_ref().expect("the default is whole seconds");
        return Err(at(
            s,
            format!(
                "prometheus.step must be whole seconds (≥ 1s), got {}",
                s.get_ref()
            ),
        ));
    }
    let step_s = step.as_secs();
    let settle = duration(&file.settle, "settle", step * 2 + Duration::from_secs(1))?;
    let timeout = duration(&file.timeout, "timeout", Duration::from_secs(10))?;
    let live = duration(
        &file.live_interval,
        "live_interval",
        (step * 3).max(Duration::from_secs(15)),
    )?;
    if timeout.is_zero() {
        let t = file.timeout.as_ref().expect("the default is not zero");
        return Err(at(t, "prometheus.timeout must be more than 0".into()));
    }
    let min_steps = match &file.min_steps {
        None => 6,
        Some(n) if (3..=100_000).contains(n.get_ref()) => *n.get_ref() as usize,
        Some(n) => {
            return Err(at(
                n,
                "prometheus.min_steps must be between 3 and 100000".into(),
            ))
        }
    };
    if file.metrics.is_empty() {
        return Err(at(
            &file.url,
            "prometheus: no [[prometheus.metrics]] to judge".into(),
        ));
    }
    let mut metrics: Vec<Metric> = Vec::new();
    for (i, m) in file.metrics.iter().enumerate() {
        let m2 = metric(m, i)?;
        if metrics.iter().any(|x| x.name == m2.name) {
            return Err(at(
                &m.name,
                format!("prometheus.metrics[{i}].name: {:?} is given twice", m2.name),
            ));
        }
        metrics.push(m2);
    }
    Ok(Config {
        url: url.to_owned(),
        token,
        step_s,
        settle_ms: ms(settle),
        timeout_ms: ms(timeout),
        live_interval_ms: ms(live),
        min_steps,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        build(&file).map_err(|(_, m)| m)
    }

    const GOOD: &str = r#"
url = "http://127.0.0.1:9090/"
step = "2s"
token_env = "PROM_TOKEN"
[[metrics]]
name = "cpu per request"
query = 'rate(process_cpu_seconds_total{job="{target}"}[{step}])'
per_request = true
limit = "+20%, +0.0005"
[[metrics]]
name = "memory growth"
kind = "growth"
query = 'process_resident_memory_bytes{job="{target}"}'
harmful = "increase"
limit = "+1048576"
"#;

    #[test]
    fn reads_the_section() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.url, "http://127.0.0.1:9090");
        assert_eq!((c.step_s, c.settle_ms, c.min_steps), (2, 5000, 6));
        assert_eq!(c.token, Token::Env("PROM_TOKEN".into()));
        assert_eq!(c.metrics.len(), 2);
        let cpu = &c.metrics[0];
        assert!(cpu.per_request && cpu.kind == Kind::Level);
        assert_eq!(cpu.limit.relative, Some(0.2));
        assert_eq!(cpu.limit.absolute, Some(0.0005));
        assert_eq!(c.metrics[1].kind, Kind::Growth);
        assert_eq!(c.metrics[1].limit.absolute, Some(1048576.0));
    }

    #[test]
    fn limits_fail_above_every_allowance() {
        let l = parse_limit("+20%, +0.5").unwrap();
        assert_eq!(l.allowance(1.0), 0.5);
        assert_eq!(l.allowance(10.0), 2.0);
        assert!((parse_limit("10%").unwrap().allowance(-3.0) - 0.3).abs() < 1e-12);
        assert_eq!(parse_limit("+20%, +0.5").unwrap().text(), "+20%, +0.5");
        assert!(parse_limit("+20%, +30%").unwrap_err().contains("twice"));
        assert!(parse_limit("lots")
            .unwrap_err()
            .contains("not an allowance"));
        assert!(parse_limit("-5%").unwrap_err().contains("≥ 0"));
    }

    #[test]
    fn refuses_what_cannot_be_used() {
        for (change, expect) in [
            (
                (
                    "url = \"http://127.0.0.1:9090/\"",
                    "url = \"127.0.0.1:9090\"",
                ),
                "http://",
            ),
            (("step = \"2s\"", "step = \"1500ms\""), "whole seconds"),
            (("step = \"2s\"", "step = \"2\""), "no unit"),
            (("{step}", "{steps}"), "unknown placeholder {steps}"),
            (
                ("kind = \"growth\"", "kind = \"slope\""),
                "\"level\" or \"growth\"",
            ),
            (
                ("harmful = \"increase\"", "harmful = \"up\""),
                "prometheus.metrics[1].harmful",
            ),
            (
                ("token_env = \"PROM_TOKEN\"", "token = \"secret\""),
                "unknown field",
            ),
            (
                ("name = \"memory growth\"", "name = \"cpu per request\""),
                "given twice",
            ),
        ] {
            let text = GOOD.replacen(change.0, change.1, 1);
            let err = parse(&text).unwrap_err();
            assert!(err.contains(expect), "{change:?}: {err}");
        }
        let none = "url = \"http://127.0.0.1:9090\"\n";
        assert!(parse(none)
            .unwrap_err()
            .contains("no [[prometheus.metrics]]"));
    }
}

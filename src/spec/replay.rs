//! The replay's options: `nprt replay`'s flags and a scenario's `[replay]` table.

use super::units::Span;
use super::{at_least_one, percent, Methods, SpecError};
use crate::replay::{Filter, HeaderRule, Pacing, ReplayOptions, Rewrite};
use std::path::PathBuf;
use std::time::Duration;

/// How a recording is replayed: pacing, limits, filters, rewrites, connection settings.
/// Every field is optional; the defaults are applied by [`ReplaySpec::options`].
#[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaySpec {
    /// Replay at the recording's pace times X (2 = twice as fast) [default: 1].
    #[arg(long, value_name = "X", conflicts_with_all = ["max", "rate"])]
    pub speed: Option<f64>,
    /// Send N exchanges per second, whatever the recorded timing (open model).
    #[arg(long, value_name = "N", conflicts_with = "max")]
    pub rate: Option<f64>,
    /// Replay as fast as possible, with --concurrency exchanges in flight (closed model).
    #[arg(long)]
    #[serde(default)]
    pub max: bool,
    /// Exchanges in flight with --max [default: 16].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// With --speed or --rate: most requests in flight to one target; a send beyond it is
    /// recorded as an error, so a stalled target never delays the others [default: 4096].
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// Stop sending after this long: 500ms, 30s, 5m, 1h.
    #[arg(long, value_name = "D")]
    pub duration: Option<Span>,
    /// Stop after sending N exchanges.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Start the recording again when it ends (needs --limit or --duration).
    #[arg(long = "loop")]
    #[serde(default, rename = "loop")]
    pub looping: bool,
    /// Time allowed per request, e.g. 500ms or 30s [default: 30s].
    #[arg(long, value_name = "D")]
    pub timeout: Option<Span>,
    /// Which methods to send: safe (GET, HEAD, OPTIONS) or all [default: safe].
    #[arg(long, value_enum)]
    pub methods: Option<Methods>,
    /// Send only these methods (repeatable); overrides --methods.
    #[arg(long = "allow-method", value_name = "METHOD")]
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Send only requests whose target (path and query) matches REGEX (repeatable).
    #[arg(long = "allow-url", value_name = "REGEX")]
    #[serde(default)]
    pub allow_urls: Vec<String>,
    /// Do not send requests whose target matches REGEX (repeatable).
    #[arg(long = "deny-url", value_name = "REGEX")]
    #[serde(default)]
    pub deny_urls: Vec<String>,
    /// Send only requests with a header matching NAME:REGEX (repeatable).
    #[arg(long = "allow-header", value_name = "NAME:REGEX")]
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Do not send requests with a header matching NAME:REGEX (repeatable).
    #[arg(long = "deny-header", value_name = "NAME:REGEX")]
    #[serde(default)]
    pub deny_headers: Vec<String>,
    /// Send this percentage of the exchanges (above 0, at most 100), the same ones on every
    /// run.
    #[arg(long, value_name = "PERCENT")]
    pub sample: Option<f64>,
    /// Replay shard I of N (0-based): a deterministic 1/N of the exchanges.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Rewrite request targets, REGEX=REPLACEMENT with $1 groups (repeatable).
    #[arg(long = "rewrite-url", value_name = "REGEX=REPLACEMENT")]
    #[serde(default)]
    pub rewrite_urls: Vec<String>,
    /// Set a header on every request, NAME:VALUE (repeatable).
    #[arg(long = "set-header", value_name = "NAME:VALUE")]
    #[serde(default)]
    pub set_headers: Vec<String>,
    /// Remove a header from every request (repeatable).
    #[arg(long = "remove-header", value_name = "NAME")]
    #[serde(default)]
    pub remove_headers: Vec<String>,
    /// Send the recorded Host header instead of the target's.
    #[arg(long)]
    #[serde(default)]
    pub keep_host: bool,
    /// Speak HTTP/2 with prior knowledge (h2c) to the targets.
    #[arg(long)]
    #[serde(default)]
    pub h2: bool,
    /// Trust the CA certificates in this PEM file for https targets, besides the system's.
    #[arg(long, alias = "ca-cert", value_name = "FILE")]
    #[serde(default, alias = "ca_cert")]
    pub ca: Option<PathBuf>,
}

/// Shard `I/N`: index from 0, below the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard(pub u32, pub u32);

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a shard like 0/4 (index from 0, below the count)");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (i, n): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if i >= n {
            return Err(bad());
        }
        Ok(Shard(i, n))
    }
}

impl<'de> serde::Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl ReplaySpec {
    /// The validated options (without targets: they come from elsewhere on each side).
    pub fn options(&self) -> Result<ReplayOptions, SpecError> {
        let concurrency = at_least_one("concurrency", self.concurrency.unwrap_or(16))?;
        let positive = |key: &'static str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(value)
            } else {
                Err(SpecError::new(
                    key,
                    format!("must be a positive number, got {value}"),
                ))
            }
        };
        let chosen: Vec<&'static str> = [
            (self.speed.is_some(), "speed"),
            (self.rate.is_some(), "rate"),
            (self.max, "max"),
        ]
        .into_iter()
        .filter_map(|(set, key)| set.then_some(key))
        .collect();
        if let [first, second, ..] = chosen[..] {
            return Err(SpecError::new(
                second,
                format!("choose one pacing: ‹{first}› and ‹{second}› are both set"),
            ));
        }
        let pacing = match (self.max, self.rate) {
            (true, _) => Pacing::Max { concurrency },
            (false, Some(rate)) => Pacing::Rate {
                per_second: positive("rate", rate)?,
            },
            (false, None) => Pacing::Original {
                speed: positive("speed", self.speed.unwrap_or(1.0))?,
            },
        };
        if self.looping && self.limit.is_none() && self.duration.is_none() {
            return Err(SpecError::new(
                "loop",
                "a looping replay needs ‹limit› or ‹duration› to end",
            ));
        }
        Ok(ReplayOptions {
            targets: Vec::new(),
            pacing,
            filter: self.filter()?,
            rewrite: self.rewrite()?,
            timeout: self.timeout.map_or(Duration::from_secs(30), |t| t.0),
            max_in_flight: at_least_one("max_in_flight", self.max_in_flight.unwrap_or(4096))?,
            limit: self.limit,
            duration: self.duration.map(|d| d.0),
            looping: self.looping,
            h2: self.h2,
            ca_cert: self.ca.clone(),
            stop: Default::default(),
        })
    }

    fn filter(&self) -> Result<Filter, SpecError> {
        let regexes = |key: &'static str, flag: &'static str, patterns: &[String]| {
            patterns
                .iter()
                .map(|p| {
                    regex::Regex::new(p)
                        .map_err(|e| SpecError::new(key, format!("`{p}`: {e}")).with_flag(flag))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let headers = |key: &'static str, flag: &'static str, rules: &[String]| {
            rules
                .iter()
                .map(|r| HeaderRule::parse(r).map_err(|m| SpecError::new(key, m).with_flag(flag)))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Filter {
            methods: self.methods.unwrap_or(Methods::Safe).into(),
            allow_methods: self
                .allow_methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
            allow_urls: regexes("allow_urls", "--allow-url", &self.allow_urls)?,
            deny_urls: regexes("deny_urls", "--deny-url", &self.deny_urls)?,
            allow_headers: headers("allow_headers", "--allow-header", &self.allow_headers)?,
            deny_headers: headers("deny_headers", "--deny-header", &self.deny_headers)?,
            sample_percent: self.sample.map(|s| percent("sample", s)).transpose()?,
            shard: self.shard.map(|Shard(i, n)| (i, n)),
        })
    }

    fn rewrite(&self) -> Result<Rewrite, SpecError> {
        Ok(Rewrite {
            urls: self
                .rewrite_urls
                .iter()
                .map(|r| {
                    Rewrite::parse_url_rule(r)
                        .map_err(|m| SpecError::new("rewrite_urls", m).with_flag("--rewrite-url"))
                })
                .collect::<Result<_, _>>()?,
            set_headers: self
                .set_headers
                .iter()
                .map(|h| {
                    Rewrite::parse_header(h)
                        .map_err(|m| SpecError::new("set_headers", m).with_flag("--set-header"))
                })
                .collect::<Result<_, _>>()?,
            remove_headers: self.remove_headers.clone(),
            keep_host: self.keep_host,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> ReplaySpec {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn defaults_and_pacing() {
        let o = ReplaySpec::default().options().unwrap();
        assert_eq!(o.pacing, Pacing::Original { speed: 1.0 });
        assert_eq!(o.timeout, Duration::from_secs(30));
        let o = spec("max = true\nconcurrency = 8\ntimeout = \"2s\"")
            .options()
            .unwrap();
        assert_eq!(o.pacing, Pacing::Max { concurrency: 8 });
        assert_eq!(o.timeout, Duration::from_secs(2));
        let e = spec("max = true\nrate = 5.0").options().unwrap_err();
        assert_eq!(e.key, "max");
        assert_eq!(
            e.for_flag(),
            "--max: choose one pacing: --rate and --max are both set"
        );
        assert_eq!(
            e.for_key("replay"),
            "choose one pacing: replay.rate and replay.max are both set"
        );
    }

    #[test]
    fn errors_name_the_key_and_the_flag() {
        let e = spec("sample = 0.0").options().unwrap_err();
        assert_eq!((e.key, e.flag().as_str()), ("sample", "--sample"));
        let e = spec("allow_urls = [\"(\"]").options().unwrap_err();
        assert_eq!((e.key, e.flag().as_str()), ("allow_urls", "--allow-url"));
        let e = spec("loop = true").options().unwrap_err();
        assert_eq!(
            e.for_flag(),
            "--loop: a looping replay needs --limit or --duration to end"
        );
        assert_eq!(
            e.for_key("replay"),
            "a looping replay needs replay.limit or replay.duration to end"
        );
        let e = spec("max_in_flight = 0").options().unwrap_err();
        assert_eq!(e.flag(), "--max-in-flight");
    }

    #[test]
    fn shards_and_old_key_names() {
        let s = spec("shard = \"1/4\"\nca_cert = \"ca.pem\"");
        assert_eq!(s.shard, Some(Shard(1, 4)));
        assert_eq!(s.ca, Some(PathBuf::from("ca.pem")));
        assert!(toml::from_str::<ReplaySpec>("shard = \"4/4\"").is_err());
        assert!(toml::from_str::<ReplaySpec>("timeout = 30").is_err());
    }
}

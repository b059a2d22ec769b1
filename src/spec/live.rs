//! What the tee proxy (`nprt shadow`) and the passive mirror (`nprt mirror`) share — where
//! copies go, which requests are copied, the sender's limits — as flags and as a scenario's
//! `[shadow]` or `[mirror]` table.

use super::units::{Size, Span};
use super::{at_least_one, Methods, SpecError};
use crate::replay::Target;
use crate::shadow::{self, BreakerSettings, MirrorPolicy, ShadowTarget};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The shared settings of a live run. Optional fields get their defaults in
/// [`MirrorSpec::settings`].
#[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSpec {
    /// Scenario key only (the shadow command's `--listen`): where users connect.
    #[arg(skip)]
    pub listen: Option<String>,
    /// Scenario key only (the shadow command's `--primary`): where users' requests go.
    #[arg(skip)]
    pub primary: Option<String>,
    /// Scenario key only (the mirror command's `--interface`): where to capture.
    #[arg(skip)]
    pub interface: Option<String>,
    /// Scenario key only (the mirror command's `--port`): the service's port.
    #[arg(skip)]
    pub port: Option<u16>,
    /// The shadow (the isolated canary): copies of requests go here; its answers are only
    /// judged.
    #[arg(long, value_name = "URL", required = true)]
    pub shadow: Option<String>,
    /// A fresh copy of stable beside the canary (e.g. `nprt canary --with-baseline`'s
    /// SVC-baseline): every copy goes to it and to the canary at the same moment, the canary
    /// is judged against it, and primary vs baseline is the live A/A noise.
    #[arg(long, value_name = "URL")]
    pub shadow_baseline: Option<String>,
    /// Share of eligible requests mirrored, above 0 and at most 100 [default: 100].
    #[arg(long, value_name = "P")]
    pub mirror_percent: Option<f64>,
    /// Which methods are mirrored: safe (GET, HEAD, OPTIONS) or all (writes reach the
    /// shadow) [default: safe].
    #[arg(long, value_enum)]
    pub methods: Option<Methods>,
    /// gRPC methods mirrored, comma-separated `package.Service/Method` patterns (`*` matches
    /// any run): every gRPC call is a POST, so without this none is mirrored unless
    /// `--methods all`. E.g. 'shop.Catalog/Get*,shop.Health/*'.
    #[arg(long, value_name = "PATTERNS")]
    pub grpc_mirror: Option<String>,
    /// Largest request body mirrored, e.g. 64KiB or 1MiB; larger requests are not mirrored
    /// (counted) [default: 1MiB].
    #[arg(long, value_name = "SIZE")]
    pub max_body: Option<Size>,
    /// Copies waiting for the shadow at most; beyond, they are dropped (counted)
    /// [default: 1024].
    #[arg(long, value_name = "N")]
    pub queue: Option<usize>,
    /// Copies in flight to the shadow at most [default: 64].
    #[arg(long, alias = "shadow-concurrency", value_name = "N")]
    #[serde(default, alias = "shadow_concurrency")]
    pub concurrency: Option<usize>,
    /// A copy without a complete answer after this long counts as an error [default: 10s].
    #[arg(long, alias = "shadow-timeout", value_name = "D")]
    #[serde(default, alias = "shadow_timeout")]
    pub timeout: Option<Span>,
    /// Copies that waited inside nprt longer than this count as nprt saturated; above 1% of
    /// them the verdict is INCONCLUSIVE, never FAIL, on latency [default: 100ms].
    #[arg(long, value_name = "D")]
    pub max_queue_wait: Option<Span>,
    /// Extra CA certificate (PEM) trusted for https primaries and shadows.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (/metrics).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Stop after this long, e.g. 30m (the command line's default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "D")]
    pub duration: Option<Span>,
}

/// [`MirrorSpec`] checked, with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorSettings {
    /// The shadow's URL, when given (a scenario may take it from its targets).
    pub shadow: Option<String>,
    pub shadow_baseline: Option<String>,
    pub policy: MirrorPolicy,
    pub queue: usize,
    pub concurrency: usize,
    pub timeout: Duration,
    pub max_queue_wait: Duration,
    pub ca: Option<PathBuf>,
    pub metrics: Option<SocketAddr>,
    pub duration: Option<Duration>,
}

/// `pkg.Service/Get*,pkg.Other/*` as patterns, each naming a service and a method.
fn grpc_patterns(text: Option<&str>) -> Result<Vec<String>, SpecError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(str::trim)
        .map(|p| match p.split_once('/') {
            Some((service, method))
                if !service.is_empty() && !method.is_empty() && !method.contains('/') =>
            {
                Ok(p.to_owned())
            }
            _ => Err(SpecError::new(
                "grpc_mirror",
                format!("`{p}` is not service/method, e.g. shop.Catalog/Get* or shop.Health/*"),
            )),
        })
        .collect()
}

impl MirrorSpec {
    pub fn settings(&self) -> Result<MirrorSettings, SpecError> {
        let url = |key: &'static str, url: &Option<String>| {
            url.as_deref()
                .map(|u| {
                    shadow::parse_base(u)
                        .map(|_| u.to_owned())
                        .map_err(|m| SpecError::new(key, m))
                })
                .transpose()
        };
        let percent = self.mirror_percent.unwrap_or(100.0);
        let percent = super::percent("mirror_percent", percent)?;
        Ok(MirrorSettings {
            shadow: url("shadow", &self.shadow)?,
            shadow_baseline: url("shadow_baseline", &self.shadow_baseline)?,
            policy: MirrorPolicy {
                methods: self.methods.unwrap_or(Methods::Safe).into(),
                percent,
                max_body: self.max_body.map_or(1 << 20, |s| s.0),
                grpc: grpc_patterns(self.grpc_mirror.as_deref())?.into(),
            },
            queue: at_least_one("queue", self.queue.unwrap_or(1024))?,
            concurrency: at_least_one("concurrency", self.concurrency.unwrap_or(64))?,
            timeout: self.timeout.map_or(Duration::from_secs(10), |t| t.0),
            max_queue_wait: self
                .max_queue_wait
                .map_or(Duration::from_millis(100), |t| t.0),
            ca: self.ca.clone(),
            metrics: self.metrics,
            duration: self.duration.map(|d| d.0),
        })
    }
}

impl MirrorSettings {
    /// Where the copies go: the canary, and the baseline copy when there is one.
    pub fn target(&self, canary: Target, baseline: Option<Target>) -> ShadowTarget {
        ShadowTarget {
            canary,
            baseline,
            concurrency: self.concurrency,
            queue: self.queue,
            timeout: self.timeout,
            max_queue_wait: self.max_queue_wait,
            breaker: BreakerSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_old_names() {
        let s = MirrorSpec::default().settings().unwrap();
        assert_eq!((s.queue, s.concurrency), (1024, 64));
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(s.policy.max_body, 1 << 20);
        let spec: MirrorSpec =
            toml::from_str("shadow_timeout = \"2s\"\nshadow_concurrency = 8\nmax_body = \"64KiB\"")
                .unwrap();
        let s = spec.settings().unwrap();
        assert_eq!((s.timeout, s.concurrency), (Duration::from_secs(2), 8));
        assert_eq!(s.policy.max_body, 65536);
    }

    #[test]
    fn errors_name_the_key() {
        let spec: MirrorSpec =
            toml::from_str("grpc_mirror = \"shop.Catalog/Get*, shop.Health/*\"").unwrap();
        let grpc = spec.settings().unwrap().policy.grpc;
        assert_eq!(&grpc[..], ["shop.Catalog/Get*", "shop.Health/*"]);
        let spec: MirrorSpec = toml::from_str("grpc_mirror = \"GetItem\"").unwrap();
        let e = spec.settings().unwrap_err();
        assert_eq!(e.key, "grpc_mirror");
        assert!(e.message.contains("not service/method"), "{}", e.message);
        let spec: MirrorSpec = toml::from_str("mirror_percent = 0.0").unwrap();
        assert_eq!(spec.settings().unwrap_err().key, "mirror_percent");
        let spec: MirrorSpec = toml::from_str("queue = 0").unwrap();
        assert_eq!(spec.settings().unwrap_err().flag(), "--queue");
        let spec: MirrorSpec = toml::from_str("shadow = \"ftp://x\"").unwrap();
        assert_eq!(spec.settings().unwrap_err().key, "shadow");
    }

    /// Scenario tables hold the spec beside their own keys: the rest of the table, read as
    /// a spec, still refuses unknown keys (serde's `flatten` would accept them).
    #[test]
    fn read_from_the_rest_of_a_table() {
        #[derive(Debug, serde::Deserialize)]
        struct Table {
            #[allow(dead_code)]
            listen: Option<String>,
            #[serde(flatten)]
            rest: toml::Table,
        }
        let spec = |text: &str| {
            let t: Table = toml::from_str(text).unwrap();
            toml::Value::Table(t.rest).try_into::<MirrorSpec>()
        };
        let s = spec("listen = \"x\"\nqueue = 5\ntimeout = \"1s\"").unwrap();
        assert_eq!(s.queue, Some(5));
        let e = spec("listen = \"x\"\nqeue = 5").unwrap_err().to_string();
        assert!(e.contains("unknown field `qeue`"), "{e}");
    }
}

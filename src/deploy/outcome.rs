//! What the deploy operations answer, as types: built by [`super::ops`], serialised by the
//! deploy API ([`super::api`]), read back by its client ([`super::client`]), printed by the
//! CLI and read field by field by scenarios. One definition, so the four cannot drift apart
//! and nobody reads an outcome back by string key.
//!
//! The JSON of each type is the wire format of the API and what the CLI prints (with its keys
//! sorted: both go through [`serde_json::Value`]).

use super::rewrite::Track;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use super::cluster::WorkloadStatus;

/// Where a release's image tag came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagFrom {
    /// Given with the request (`--tag`, `tag=`).
    Request,
    /// The service's `tag_format` applied to the commit.
    TagFormat,
    /// The one registry tag that contains the commit.
    Registry,
    /// A baseline's: the version the stable workloads run, read from the cluster.
    Cluster,
}

impl TagFrom {
    /// The name in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TagFrom::Request => "request",
            TagFrom::TagFormat => "tag_format",
            TagFrom::Registry => "registry",
            TagFrom::Cluster => "cluster",
        }
    }
}

/// Where an operation's time went, in milliseconds. Every operation has the same fields
/// (zero for phases it does not go through), so the API and the CLI show one shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
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
    /// One line for people: `fetch 12.0 ms, rewrite 0.4 ms, …, total 40.1 ms` (phases that
    /// took no time left out).
    pub fn line(&self) -> String {
        let phases = [
            ("fetch", self.fetch),
            ("validate", self.validate),
            ("rewrite", self.rewrite),
            ("apply", self.apply),
            ("rollout", self.rollout),
            ("delete", self.delete),
            ("read", self.read),
        ];
        phases
            .into_iter()
            .filter(|(_, ms)| *ms > 0.0)
            .chain([("total", self.total)])
            .map(|(phase, ms)| format!("{phase} {ms:.1} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One port of a deployed Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: Option<u16>,
}

/// A Service a deploy applied, for callers that build URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedService {
    pub name: String,
    /// The manifests' namespace, or the cluster's default when they name none.
    pub namespace: String,
    /// The production Service this one mirrors (canary and baseline Services).
    pub of: Option<String>,
    pub ports: Vec<ServicePort>,
    /// `http://NAME.NAMESPACE.svc:PORT` of the first port.
    pub url: Option<String>,
}

/// A deploy (stable or canary) that rolled out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployed {
    pub service: String,
    pub track: Track,
    /// The image tag deployed.
    pub version: String,
    pub tag_from: TagFrom,
    pub commit: String,
    /// `Kind/name` of every object applied.
    pub applied: Vec<String>,
    /// Workloads a canary left alone (no Service selects them and none was named).
    pub left_alone: Vec<String>,
    /// The track's own Services.
    pub services: Vec<DeployedService>,
    /// The baseline deployed beside a canary (`with_baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineDeployed>,
    pub timing_ms: Timing,
}

impl Deployed {
    /// The URL of the baseline's first Service: where a scenario sends its baseline copies.
    pub fn baseline_url(&self) -> Option<&str> {
        self.baseline.as_ref()?.services.first()?.url.as_deref()
    }
}

/// The baseline beside a canary: the stable release, rewritten like the canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineDeployed {
    pub version: String,
    pub commit: String,
    /// `cluster` when read from the stable workloads.
    pub tag_from: TagFrom,
    pub applied: Vec<String>,
    pub services: Vec<DeployedService>,
}

/// A rollback: the canary and baseline objects deleted (none is success too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolledBack {
    pub service: String,
    /// `Kind/name` of every object deleted.
    pub deleted: Vec<String>,
    pub timing_ms: Timing,
}

/// A promotion: the canary's release deployed as stable, then the canary removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promoted {
    pub service: String,
    /// The version now stable.
    pub promoted: String,
    pub commit: String,
    pub deleted: Vec<String>,
    pub timing_ms: Timing,
}

/// What a service runs, read back from the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub service: String,
    pub workloads: Vec<WorkloadStatus>,
    pub timing_ms: Timing,
}

/// The registry tags of a service's own images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tags {
    pub service: String,
    /// Tags by image, sorted.
    pub images: BTreeMap<String, Vec<String>>,
    pub timing_ms: Timing,
}

/// A service's settings as `nprt show` prints them: secrets by reference only (which
/// variable or file), never their values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSettings {
    pub service: String,
    /// Without credentials.
    pub repository: String,
    pub branch: String,
    pub manifests: String,
    pub namespace: Option<String>,
    pub exposure: String,
    pub tag_format: String,
    pub commit_length: usize,
    pub registry_username: Option<String>,
    /// `env VAR`, `file PATH` or `none`.
    pub registry_password: String,
    /// The extra CA the registry's certificate is checked with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_ca_file: Option<String>,
    /// `env VAR`, `file PATH` or `none`.
    pub api_token: String,
}

/// `GET /`: the services the API deploys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceList {
    pub services: Vec<String>,
}

/// `DELETE /SERVICE/canary` with a resolved Alertmanager alert: nothing done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    pub service: String,
    pub ignored: String,
}

/// Every refused or failed API call's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timing_line_leaves_out_idle_phases() {
        let t = Timing {
            fetch: 12.04,
            rewrite: 0.4,
            apply: 3.0,
            total: 15.5,
            ..Timing::default()
        };
        assert_eq!(
            t.line(),
            "fetch 12.0 ms, rewrite 0.4 ms, apply 3.0 ms, total 15.5 ms"
        );
        assert_eq!(Timing::default().line(), "total 0.0 ms");
    }

    #[test]
    fn a_deploy_outcome_keeps_its_wire_shape() {
        let service = DeployedService {
            name: "web-baseline".into(),
            namespace: "shop".into(),
            of: Some("web".into()),
            ports: vec![ServicePort {
                name: None,
                port: Some(80),
            }],
            url: Some("http://web-baseline.shop.svc:80".into()),
        };
        let deployed = Deployed {
            service: "web".into(),
            track: Track::Canary,
            version: "v2".into(),
            tag_from: TagFrom::TagFormat,
            commit: "abc".into(),
            applied: vec!["Deployment/web-canary".into()],
            left_alone: vec![],
            services: vec![],
            baseline: Some(BaselineDeployed {
                version: "v1".into(),
                commit: "def".into(),
                tag_from: TagFrom::Cluster,
                applied: vec![],
                services: vec![service],
            }),
            timing_ms: Timing::default(),
        };
        let v = serde_json::to_value(&deployed).unwrap();
        assert_eq!(v["track"], "canary");
        assert_eq!(v["tag_from"], "tag_format");
        assert_eq!(v["baseline"]["tag_from"], "cluster");
        for from in [
            TagFrom::Request,
            TagFrom::TagFormat,
            TagFrom::Registry,
            TagFrom::Cluster,
        ] {
            assert_eq!(serde_json::to_value(from).unwrap(), from.as_str());
        }
        assert_eq!(
            v["baseline"]["services"][0],
            json!({"name": "web-baseline", "namespace": "shop", "of": "web",
                "ports": [{"name": null, "port": 80}], "url": "http://web-baseline.shop.svc:80"})
        );
        assert_eq!(v["timing_ms"]["total"], 0.0);
        assert_eq!(
            deployed.baseline_url(),
            Some("http://web-baseline.shop.svc:80")
        );
        // Read back as the API's client reads it.
        let back: Deployed = serde_json::from_value(v).unwrap();
        assert_eq!(back, deployed);
        // Without a baseline there is no `baseline` key at all.
        let plain = Deployed {
            baseline: None,
            ..deployed
        };
        let v = serde_json::to_value(&plain).unwrap();
        assert!(v.get("baseline").is_none(), "{v}");
        assert_eq!(plain.baseline_url(), None);
    }
}

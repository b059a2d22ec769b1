//! The deploy driver: a service's own Kubernetes manifests, read at the commit being deployed,
//! rewritten for a stable release or an isolated canary, and applied.
//!
//! Data comes from `deploy.toml` ([`config`]) and the service's repository, and goes to the
//! cluster (or to stdout with `--dry-run`). The rewrite is pure and does no I/O.

pub mod api;
pub mod cluster;
pub mod config;
pub mod driver;
pub mod git;
pub mod image;
pub mod manifest;
pub mod ops;
pub mod registry;
pub mod rewrite;
pub mod rollout;

pub use config::{ConfigError, DeployConfig, Exposure, SecretRef, ServiceConfig};

//! The deploy driver: a service's own Kubernetes manifests, read at the commit being deployed,
//! rewritten for a stable release or an isolated canary, and applied.
//!
//! Data comes from `deploy.toml` ([`config`]) and the service's repository, and goes to the
//! cluster (or to stdout with `--dry-run`). The rewrite is pure and does no I/O.
//!
//! In data order:
//! - [`config`]: `deploy.toml`, secrets by reference only;
//! - [`git`]: the manifests at a commit, from a cached bare clone;
//! - [`manifest`], [`image`], [`rewrite`] (pure): YAML documents to objects, image references,
//!   the stable or canary rewrite with the isolation guard;
//! - [`driver`]: config + git + rewrite = the objects to apply;
//! - [`registry`]: do the tagged images exist (OCI distribution v2);
//! - [`rollout`] (pure) and [`cluster`]: server-side apply, rollout wait, canary deletion;
//! - [`ops`]: the operations with their typed [`outcome`]s and timings, used by the CLI,
//!   scenarios, and
//! - [`api`]: `nprt serve`, with [`limiter`] against password guessing, and
//! - [`client`]: the CLI's `--server` mode, which calls that API instead of the cluster.

pub mod api;
pub mod client;
pub mod cluster;
pub mod config;
pub mod driver;
pub mod git;
pub mod image;
pub mod limiter;
pub mod manifest;
pub mod ops;
pub mod outcome;
pub mod registry;
pub mod rewrite;
pub mod rollout;

pub use config::{ConfigError, DeployConfig, Exposure, SecretRef, ServiceConfig};

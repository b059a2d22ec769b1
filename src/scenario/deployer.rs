//! The canary of a scenario: deployed before the traffic, rolled back or promoted after the
//! verdict (or rolled back on Ctrl-C), by the deploy driver — directly with a kubeconfig
//! ([`crate::deploy::ops`]), or through a deploy API server.

use super::file::DeploySpec;
use crate::deploy::config::{DeployConfig, ServiceConfig};
use crate::deploy::driver::Request;
use crate::deploy::ops::{self, OpError};
use serde_json::Value;

/// One operation on the scenario's service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Canary,
    Rollback,
    Promote,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Canary => "canary",
            Op::Rollback => "rollback",
            Op::Promote => "promote",
        }
    }
}

/// How the scenario reaches the deploy driver.
pub struct Deployer {
    service: String,
    request: Request,
    how: How,
}

enum How {
    Direct {
        target: ops::Target,
        service: Box<ServiceConfig>,
        settings: ops::Settings,
    },
    Server {
        url: String,
        token_env: String,
    },
}

impl Deployer {
    /// A deployer for `spec`; `config` is the loaded deploy.toml of a direct deploy.
    ///
    /// # Errors
    /// Bad input when a direct deploy has no config or the service is not in it.
    pub fn new(spec: &DeploySpec, config: Option<&DeployConfig>) -> Result<Deployer, OpError> {
        let how = match (&spec.server, config) {
            (Some(url), _) => How::Server {
                url: url.clone(),
                token_env: spec.token_env.clone().unwrap_or_default(),
            },
            (None, Some(config)) => {
                let service = config.service(&spec.service).map_err(|e| OpError {
                    bad_input: true,
                    message: e.to_string(),
                })?;
                How::Direct {
                    target: ops::Target::Kubeconfig {
                        context: spec.context.clone(),
                    },
                    service: Box::new(service.clone()),
                    settings: ops::Settings {
                        cache: crate::deploy::git::default_cache_dir(),
                        config_file: spec.config.clone().unwrap_or_default(),
                        timeout: spec.timeout,
                        force: spec.force,
                        skip_image_check: spec.skip_image_check,
                    },
                }
            }
            (None, None) => {
                return Err(OpError {
                    bad_input: true,
                    message: "deploy.config was not loaded".to_owned(),
                })
            }
        };
        Ok(Deployer {
            service: spec.service.clone(),
            request: spec.request.clone(),
            how,
        })
    }

    /// Deploys a direct deployer onto an already connected cluster (tests, and callers that
    /// hold a connection).
    pub fn with_cluster(mut self, cluster: crate::deploy::cluster::Cluster) -> Deployer {
        if let How::Direct { target, .. } = &mut self.how {
            *target = ops::Target::Connected(cluster);
        }
        self
    }

    /// Runs `op` and returns the driver's outcome (with its timing breakdown).
    ///
    /// # Errors
    /// [`OpError`]: bad input (the request or the plan) or runtime (cluster, git, registry).
    pub async fn run(&self, op: Op) -> Result<Value, OpError> {
        match &self.how {
            How::Direct {
                target,
                service,
                settings,
            } => match op {
                Op::Canary => ops::deploy(target, service, &self.request, settings).await,
                Op::Rollback => ops::rollback(target, service, settings).await,
                Op::Promote => ops::promote(target, service, settings).await,
            },
            How::Server { url, token_env } => {
                via_server(url, token_env, &self.service, &self.request, op).await
            }
        }
    }
}

/// Every operation that goes through a deploy API server (`deploy.server`, token from
/// `deploy.token_env`) passes here.
///
/// # Errors
/// Always, for now: the deploy API client (`src/deploy/client.rs`) is not wired in yet.
async fn via_server(
    url: &str,
    token_env: &str,
    service: &str,
    _request: &Request,
    op: Op,
) -> Result<Value, OpError> {
    Err(OpError {
        bad_input: false,
        message: format!(
            "deploy.server: {} of {service} through the deploy API at {url} (token from ${token_env}) is not available yet in this build; deploy directly with deploy.config and a kubeconfig",
            op.as_str()
        ),
    })
}

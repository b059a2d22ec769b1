//! The canary of a scenario: deployed before the traffic, rolled back or promoted after the
//! verdict (or rolled back on Ctrl-C), by the deploy driver — directly with a kubeconfig
//! ([`crate::deploy::ops`]), or through a deploy API server.

use super::file::CanaryDeploy;
use crate::deploy::client::ApiClient;
use crate::deploy::config::{DeployConfig, ServiceConfig};
use crate::deploy::driver::Request;
use crate::deploy::ops::{self, OpError};
use crate::deploy::outcome::{Deployed, Promoted, RolledBack};

/// What is done with the canary after the verdict (or on an interrupt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Rollback,
    Promote,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Rollback => "rollback",
            Op::Promote => "promote",
        }
    }
}

/// The outcome of an [`Op`], recorded as it is in `scenario.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Finished {
    RolledBack(RolledBack),
    Promoted(Promoted),
}

/// How the scenario reaches the deploy driver.
pub struct Deployer {
    service: String,
    request: Request,
    how: How,
}

enum How {
    Direct {
        target: ops::ClusterAccess,
        service: Box<ServiceConfig>,
        settings: ops::Settings,
    },
    Server {
        url: String,
        token_env: String,
        settings: Server,
    },
}

/// What a call through the deploy API needs besides the URL and the token.
struct Server {
    ca: Option<std::path::PathBuf>,
    timeout: std::time::Duration,
    skip_image_check: bool,
}

impl Deployer {
    /// A deployer for `spec`; `config` is the loaded deploy.toml of a direct deploy.
    ///
    /// # Errors
    /// Bad input when a direct deploy has no config or the service is not in it.
    pub fn new(spec: &CanaryDeploy, config: Option<&DeployConfig>) -> Result<Deployer, OpError> {
        let how = match (&spec.server, config) {
            (Some(url), _) => How::Server {
                url: url.clone(),
                token_env: spec
                    .token_env
                    .clone()
                    .unwrap_or_else(|| crate::deploy::client::TOKEN_ENV.to_owned()),
                settings: Server {
                    ca: None,
                    timeout: spec.timeout,
                    skip_image_check: spec.skip_image_check,
                },
            },
            (None, Some(config)) => {
                let service = config.service(&spec.service).map_err(|e| OpError {
                    bad_input: true,
                    message: e.to_string(),
                })?;
                How::Direct {
                    target: ops::ClusterAccess::Kubeconfig {
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
            *target = ops::ClusterAccess::Connected(cluster);
        }
        self
    }

    /// Deploys the canary (and its baseline when the scenario asks for one) and returns the
    /// driver's outcome, with its timing breakdown.
    ///
    /// # Errors
    /// [`OpError`]: bad input (the request or the plan) or runtime (cluster, git, registry).
    pub async fn canary(&self) -> Result<Deployed, OpError> {
        match &self.how {
            How::Direct {
                target,
                service,
                settings,
            } => ops::deploy(target, service, &self.request, settings).await,
            How::Server {
                url,
                token_env,
                settings,
            } => {
                let api = api_client(url, token_env, settings)?;
                api.deploy(&self.service, &self.request, settings.skip_image_check)
                    .await
                    .map_err(client_error)
            }
        }
    }

    /// Runs `op` and returns the driver's outcome (with its timing breakdown).
    ///
    /// # Errors
    /// [`OpError`]: bad input or runtime (cluster, git, registry).
    pub async fn run(&self, op: Op) -> Result<Finished, OpError> {
        match &self.how {
            How::Direct {
                target,
                service,
                settings,
            } => match op {
                Op::Rollback => ops::rollback(target, service, settings)
                    .await
                    .map(Finished::RolledBack),
                Op::Promote => ops::promote(target, service, settings)
                    .await
                    .map(Finished::Promoted),
            },
            How::Server {
                url,
                token_env,
                settings,
            } => {
                let api = api_client(url, token_env, settings)?;
                match op {
                    Op::Rollback => api.rollback(&self.service).await.map(Finished::RolledBack),
                    Op::Promote => api.promote(&self.service).await.map(Finished::Promoted),
                }
                .map_err(client_error)
            }
        }
    }
}

/// The client of the deploy API server every operation goes through (`deploy.server`, token
/// from `deploy.token_env`).
///
/// # Errors
/// Bad input for a missing token or an unusable URL.
fn api_client(url: &str, token_env: &str, spec: &Server) -> Result<ApiClient, OpError> {
    let token = std::env::var(token_env)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OpError {
            bad_input: true,
            message: format!("deploy.token_env: ${token_env} holds no token"),
        })?;
    ApiClient::new(url, token, spec.ca.as_deref(), spec.timeout).map_err(|e| OpError {
        bad_input: e.is_bad_input(),
        message: format!("deploy.server: {e}"),
    })
}

/// A refused token (401/403/4xx) is bad input; anything else is the server's.
fn client_error(e: crate::deploy::client::ClientError) -> OpError {
    OpError {
        bad_input: e.is_bad_input(),
        message: e.to_string(),
    }
}

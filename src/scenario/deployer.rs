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
    pub fn new(spec: &DeploySpec, config: Option<&DeployConfig>) -> Result<Deployer, OpError> {
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
            How::Server {
                url,
                token_env,
                settings,
            } => via_server(url, token_env, settings, &self.service, &self.request, op).await,
        }
    }
}

/// Every operation that goes through a deploy API server (`deploy.server`, token from
/// `deploy.token_env`) passes here.
///
/// # Errors
/// Bad input for a missing token or a refused one (401/403/4xx); runtime otherwise.
async fn via_server(
    url: &str,
    token_env: &str,
    spec: &Server,
    service: &str,
    request: &Request,
    op: Op,
) -> Result<Value, OpError> {
    use crate::deploy::client::{deploy_query, ApiClient};
    use hyper::Method;
    let bad = |message: String| OpError {
        bad_input: true,
        message,
    };
    let token = std::env::var(token_env)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad(format!("deploy.token_env: ${token_env} holds no token")))?;
    let api =
        ApiClient::new(url, token, spec.ca.as_deref(), spec.timeout).map_err(|e| OpError {
            bad_input: e.is_bad_input(),
            message: format!("deploy.server: {e}"),
        })?;
    let (method, route, query) = match op {
        Op::Canary => (
            Method::PUT,
            "canary",
            deploy_query(request, spec.skip_image_check),
        ),
        Op::Rollback => (Method::DELETE, "canary", Vec::new()),
        Op::Promote => (Method::POST, "promote", Vec::new()),
    };
    api.call(method, &format!("/{service}/{route}"), &query)
        .await
        .map_err(|e| OpError {
            bad_input: e.is_bad_input(),
            message: e.to_string(),
        })
}

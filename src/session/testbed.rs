//! Testbeds started inside this process (`nprt testbed`, the demo, scenarios' `[[testbeds]]`).

use super::Failure;
use crate::testbed::TestbedConfig;
use std::net::SocketAddr;
use std::sync::Arc;

/// A testbed serving on its own task for the life of the process.
pub struct Running {
    pub addr: SocketAddr,
    pub url: String,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds `listen` and serves `config` there (https with `tls`). A port that cannot be bound
/// is bad input naming `what`: the address is the user's choice.
pub async fn start(
    what: &str,
    listen: SocketAddr,
    config: TestbedConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<Running, Failure> {
    let listener = bind(what, listen).await?;
    let addr = listener.local_addr().map_err(Failure::bad_input)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let task = tokio::spawn(crate::testbed::serve(listener, config, tls));
    Ok(Running {
        addr,
        url: format!("{scheme}://{addr}"),
        task,
    })
}

/// Binds a listening socket; failing to is the user's mistake (port in use, address not
/// here, privileged port), exit 2, with `what` naming the option or key.
pub async fn bind(what: &str, addr: SocketAddr) -> Result<tokio::net::TcpListener, Failure> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::bad_input_msg(format!("{what}: cannot listen on {addr}: {e}")))
}

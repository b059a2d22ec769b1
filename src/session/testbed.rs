//! Testbeds started inside this process (the demo, scenarios' `[[testbeds]]`), and binding
//! the listening sockets of every server.

use super::Failure;
use crate::testbed::TestbedConfig;
use std::net::SocketAddr;

/// Binds `listen` and serves `config` there, on its own task for the life of the process;
/// returns its `http://` URL. A port that cannot be bound is bad input naming `what`: the
/// address is the user's choice.
pub async fn start(
    what: &str,
    listen: SocketAddr,
    config: TestbedConfig,
) -> Result<String, Failure> {
    let listener = bind(what, listen).await?;
    let addr = listener.local_addr().map_err(Failure::bad_input)?;
    tokio::spawn(crate::testbed::serve(listener, config, None));
    Ok(format!("http://{addr}"))
}

/// Binds a listening socket; failing to is the user's mistake (port in use, address not
/// here, privileged port), exit 2, with `what` naming the option or key.
pub async fn bind(what: &str, addr: SocketAddr) -> Result<tokio::net::TcpListener, Failure> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::bad_input_msg(format!("{what}: cannot listen on {addr}: {e}")))
}

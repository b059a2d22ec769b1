//! Ctrl-C and SIGTERM, the same for every command.

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Resolves on Ctrl-C, SIGTERM or after `duration`, whichever comes first.
pub async fn shutdown_or_after(duration: Option<std::time::Duration>) {
    match duration {
        Some(d) => tokio::select! {
            () = shutdown_signal() => {}
            () = tokio::time::sleep(d) => {}
        },
        None => shutdown_signal().await,
    }
}

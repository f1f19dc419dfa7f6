//! The signals that stop a process gracefully.

/// Resolves with the name of the first SIGTERM or SIGINT. The handlers are installed before this
/// returns, so a signal that arrives before the future is polled is not missed.
pub fn shutdown_signals() -> impl std::future::Future<Output = &'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM and SIGINT");
                std::future::pending().await
            }
        }
    }
}

//! Turns SIGTERM and SIGINT into a shutdown request.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::info;

/// Sets `shutdown` to true on the first SIGTERM or SIGINT.
pub async fn forward_termination(shutdown: watch::Sender<bool>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: draining and stopping"),
        _ = int.recv() => info!("SIGINT: draining and stopping"),
    }
    let _ = shutdown.send(true);
    Ok(())
}

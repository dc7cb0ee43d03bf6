//! Turns SIGTERM and SIGINT, or the engine's end, into a shutdown request.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{error, info};

/// Sets `shutdown` to true on the first SIGTERM or SIGINT, or once the engine has stopped
/// (a daemon without its engine would accept connections it cannot serve).
pub async fn forward_shutdown(
    shutdown: watch::Sender<bool>,
    engine_done: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: draining and stopping"),
        _ = int.recv() => info!("SIGINT: draining and stopping"),
        _ = engine_done => error!("the engine has stopped: stopping"),
    }
    let _ = shutdown.send(true);
    Ok(())
}

//! Stopping: the signals that start it, and the order things stop in — readiness and health
//! first (so load balancers stop sending), then the drain, then the background tasks, then the
//! store.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic_health::server::HealthReporter;

use crate::control::Readiness;
use crate::grpc;

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

/// Returns the future the server drains on: once `shutdown` resolves, readiness and health
/// turn NOT_SERVING, then `stop` ends watch streams and background loops.
pub async fn begin_on(
    shutdown: impl Future<Output = ()> + Send + 'static,
    readiness: Readiness,
    health: HealthReporter,
    stop: CancellationToken,
) {
    shutdown.await;
    tracing::info!("shutdown requested; draining");
    readiness.begin_shutdown();
    grpc::health::mark_not_serving(&health).await;
    stop.cancel();
}

/// Resolves `grace` after `stop` fired: the bound on the drain.
pub async fn grace_elapsed(stop: CancellationToken, grace: Duration) {
    stop.cancelled().await;
    tokio::time::sleep(grace).await;
    tracing::warn!(grace_secs = grace.as_secs(), "drain grace elapsed; closing remaining connections");
}

/// Waits for the background loops (already told to stop) up to `within`, then aborts the
/// rest, so nothing uses the store after it closes. A loop cut short leaves its work in a
/// resumable state: rollouts persist every step, and leases expire.
pub async fn stop_loops(loops: Vec<tokio::task::JoinHandle<()>>, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    for mut task in loops {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            tracing::warn!("a background loop did not stop in time; aborting it");
            task.abort();
            let _ = task.await;
        }
    }
}

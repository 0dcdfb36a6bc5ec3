//! Publishes readiness to `grpc.health.v1`: `""`, `TopologyService` and `DriftService` follow overall
//! readiness; `MetaService` serves until shutdown begins (self-description needs no runtime);
//! `reconcile` reports the periodic reconcile loop.

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::control::Readiness;

const META: &str = "jhf.warp.v1.MetaService";
const TOPOLOGY: &str = "jhf.warp.v1.TopologyService";
const DRIFT: &str = "jhf.warp.v1.DriftService";
const CONTROL: &str = "jhf.warp.v1.ControlService";
const ORCHESTRATION: &str = "jhf.warp.v1.OrchestrationService";
/// The periodic reconcile loop; NOT_SERVING while it is overdue (it does not gate `""`).
pub const RECONCILE: &str = "reconcile";

/// Applies the current readiness to the health reporter, then every change until the
/// readiness publisher goes away.
pub fn spawn_health_publisher(
    readiness: &Readiness,
    reporter: HealthReporter,
) -> tokio::task::JoinHandle<()> {
    let mut changes = readiness.subscribe();
    tokio::spawn(async move {
        loop {
            let snapshot = changes.borrow_and_update().clone();
            let overall = if snapshot.ready() { ServingStatus::Serving } else { ServingStatus::NotServing };
            let meta =
                if snapshot.shutting_down { ServingStatus::NotServing } else { ServingStatus::Serving };
            reporter.set_service_status("", overall).await;
            reporter.set_service_status(TOPOLOGY, overall).await;
            reporter.set_service_status(DRIFT, overall).await;
            reporter.set_service_status(CONTROL, overall).await;
            reporter.set_service_status(META, meta).await;
            // Classification needs only the rules, like self-description.
            reporter.set_service_status(ORCHESTRATION, meta).await;
            let reconcile = if snapshot.reconcile.ready && !snapshot.shutting_down {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            reporter.set_service_status(RECONCILE, reconcile).await;
            if changes.changed().await.is_err() {
                break;
            }
        }
    })
}

/// Sets everything NOT_SERVING right now (used when shutdown starts, before draining).
pub async fn mark_not_serving(reporter: &HealthReporter) {
    for name in ["", TOPOLOGY, DRIFT, CONTROL, META, ORCHESTRATION, RECONCILE] {
        reporter.set_service_status(name, ServingStatus::NotServing).await;
    }
}

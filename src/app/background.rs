//! The background loops of a replica: rollout recovery then the observation loop, the database
//! probe behind readiness, the watchdog, and (when it takes part in leader election) the
//! reconcile leader. Each stops on the shared
//! token and runs in its own span.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::control::{self, Services};

/// How often pending audit events are sealed into the chain (the window in which a committed
/// event is not yet chained; readers of the log seal first, so they never see the window).
const AUDIT_SEAL_PERIOD: Duration = Duration::from_millis(500);

/// How often the loops run.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub observe: Duration,
    pub watchdog: Duration,
    pub store_probe: Duration,
    pub snapshot_recheck: Duration,
}

/// Starts every loop; returns the leader's task, which shutdown waits for (it releases its
/// lease on the way out so another replica takes over at once).
pub fn spawn(
    services: &Services,
    intervals: Intervals,
    run_leader: bool,
    stop: &CancellationToken,
) -> Option<JoinHandle<()>> {
    let (observer, rollouts, loop_stop) =
        (services.observations.clone(), services.rollouts.clone(), stop.child_token());
    let observation_loop = async move {
        // Interrupted rollouts are resolved before anything else touches the runtime.
        if let Err(error) = rollouts.recover_unfinished().await {
            tracing::error!(%error, "resolving interrupted rollouts failed; they stay as recorded");
        }
        observer.run_loop(intervals.observe, loop_stop).await
    };
    tokio::spawn(observation_loop.instrument(tracing::info_span!("observation_loop")));
    let probe = control::watch_store(
        services.ctx.store.clone(),
        services.ctx.readiness.clone(),
        intervals.store_probe,
        stop.child_token(),
    );
    tokio::spawn(probe.instrument(tracing::info_span!("store_probe")));
    let ctx = &services.ctx;
    let follow = ctx.snapshot.clone().follow_owned(
        ctx.store.clone(),
        ctx.events.clone(),
        intervals.snapshot_recheck,
        stop.child_token(),
    );
    tokio::spawn(follow.instrument(tracing::info_span!("snapshot")));
    let (audit, sealer_stop) = (services.audit.clone(), stop.child_token());
    tokio::spawn(
        async move { audit.run_sealer(AUDIT_SEAL_PERIOD, sealer_stop).await }
            .instrument(tracing::info_span!("audit_sealer")),
    );
    let (watchdog, watchdog_stop) = (services.watchdog.clone(), stop.child_token());
    tokio::spawn(
        async move { watchdog.run_loop(intervals.watchdog, watchdog_stop).await }
            .instrument(tracing::info_span!("watchdog")),
    );
    run_leader.then(|| {
        let (leader, leader_stop) = (services.leader.clone(), stop.child_token());
        tokio::spawn(
            async move { leader.run(leader_stop).await }.instrument(tracing::info_span!("reconcile_leader")),
        )
    })
}

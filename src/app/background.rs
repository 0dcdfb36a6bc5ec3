//! The background loops of a replica: rollout recovery then the observation loop, the watchdog,
//! and (when it takes part in leader election) the reconcile leader. Each stops on the shared
//! token and runs in its own span.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::control::Services;

/// How often the loops run.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub observe: Duration,
    pub watchdog: Duration,
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

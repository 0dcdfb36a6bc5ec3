//! The background loops of a replica: rollout recovery then the observation loop, the database
//! probe behind readiness, the watchdog, and (when it takes part in leader election) the
//! reconcile leader. Each stops on the shared
//! token and runs in its own span.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::control::{self, Services};
use crate::grpc::panics::catch_panic;

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
    pub retention_sweep: Duration,
}

/// Runs a loop until `stop`. A panic inside it is logged and the loop starts again after a
/// backoff (1 s, doubling to 60 s): one bad evaluation must not end a replica's observation,
/// sealing or leadership for good.
fn supervise<F, Fut>(name: &'static str, stop: &CancellationToken, make: F) -> JoinHandle<()>
where
    F: Fn(CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stop = stop.child_token();
    let supervised = async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            match catch_panic(make(stop.clone())).await {
                Ok(()) => return,
                Err(panic) => {
                    tracing::error!(%panic, backoff_secs = backoff.as_secs(), "background loop panicked; restarting");
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    };
    tokio::spawn(supervised.instrument(tracing::info_span!("loop", name)))
}

/// Starts every loop; returns their tasks, which shutdown waits for before it closes the store
/// (the leader and the rollout worker release their leases on the way out, so another replica
/// takes over at once).
pub fn spawn(
    services: &Services,
    intervals: Intervals,
    retention: control::retention::Retention,
    run_leader: bool,
    stop: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let (observer, leases, replica) =
        (services.observations.clone(), services.leases.clone(), services.replica_id.clone());
    tasks.push(supervise("observation", stop, move |stop| {
        let (observer, leases, replica) = (observer.clone(), leases.clone(), replica.clone());
        async move { observer.run_loop(intervals.observe, leases, replica, stop).await }
    }));
    let rollouts = services.rollouts.clone();
    tasks.push(supervise("rollout_worker", stop, move |stop| {
        let rollouts = rollouts.clone();
        async move { rollouts.run_worker(stop).await }
    }));
    let (store, readiness) = (services.ctx.store.clone(), services.ctx.readiness.clone());
    tasks.push(supervise("store_probe", stop, move |stop| {
        control::watch_store(store.clone(), readiness.clone(), intervals.store_probe, stop)
    }));
    let (snapshot, store, events) =
        (services.ctx.snapshot.clone(), services.ctx.store.clone(), services.ctx.events.clone());
    tasks.push(supervise("snapshot", stop, move |stop| {
        snapshot.clone().follow_owned(store.clone(), events.clone(), intervals.snapshot_recheck, stop)
    }));
    let audit = services.audit.clone();
    tasks.push(supervise("audit_sealer", stop, move |stop| {
        let audit = audit.clone();
        async move { audit.run_sealer(AUDIT_SEAL_PERIOD, stop).await }
    }));
    let ctx = services.ctx.clone();
    tasks.push(supervise("retention", stop, move |stop| {
        control::retention::run_loop(ctx.clone(), retention, intervals.retention_sweep, stop)
    }));
    let watchdog = services.watchdog.clone();
    tasks.push(supervise("watchdog", stop, move |stop| {
        let watchdog = watchdog.clone();
        async move { watchdog.run_loop(intervals.watchdog, stop).await }
    }));
    let (outbound, leases, replica) =
        (services.outbound.clone(), services.leases.clone(), services.replica_id.clone());
    tasks.push(supervise("outbound", stop, move |stop| {
        let (outbound, leases, replica) = (outbound.clone(), leases.clone(), replica.clone());
        async move { outbound.run_loop(leases, replica, stop).await }
    }));
    if run_leader {
        let leader = services.leader.clone();
        tasks.push(supervise("reconcile_leader", stop, move |stop| {
            let leader = leader.clone();
            async move { leader.run(stop).await }
        }));
    }
    tasks
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_loop_is_restarted_after_a_backoff() {
        let runs = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let counted = runs.clone();
        let task = supervise("test", &stop, move |stop| {
            let runs = counted.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("bad evaluation");
                }
                stop.cancelled().await;
            }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "restarted twice, then running");
        stop.cancel();
        task.await.unwrap();
    }
}

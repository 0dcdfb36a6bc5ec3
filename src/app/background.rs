//! The background loops of a replica: the database probe behind readiness, the fleet follower
//! (change feed and re-check), the balancer (which runs each owned runtime's observation,
//! rollout worker, watchdog and reconcile loop), the runtimes file watch, the fleet rollout
//! driver, the audit sealer, retention and the outbox. Each stops on the shared token and runs
//! in its own span.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::control;
use crate::control::supervise::supervise;
use crate::grpc::Api;

/// How often pending audit events are sealed into the chain (the window in which a committed
/// event is not yet chained; readers of the log seal first, so they never see the window).
const AUDIT_SEAL_PERIOD: Duration = Duration::from_millis(500);

/// How often the loops run.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Duration of the replica leases (membership, ownership, the fleet rollout driver).
    pub lease: Duration,
    /// How often the runtimes file is checked for changes.
    pub runtimes_file: Duration,
    pub observe: Duration,
    pub watchdog: Duration,
    pub store_probe: Duration,
    pub snapshot_recheck: Duration,
    pub retention_sweep: Duration,
}

/// Starts every loop of the replica: the deployment-wide ones here, and (through the balancer)
/// each owned runtime's; returns their tasks, which shutdown waits for before it closes the
/// store (the balancer stops every owned runtime's work and releases its leases on the way
/// out, so other replicas take over at once).
pub fn spawn(
    api: &Api,
    intervals: Intervals,
    retention: control::retention::Retention,
    run_leader: bool,
    stop: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let fleet = api.fleet.clone();
    let globals = fleet.globals().clone();
    let (store, readiness) = (globals.ctx.store.clone(), globals.ctx.readiness.clone());
    tasks.push(supervise("store_probe", stop, move |stop| {
        control::watch_store(store.clone(), readiness.clone(), intervals.store_probe, stop)
    }));
    let (followed, fleet_rollouts) = (fleet.clone(), api.fleet_rollouts.clone());
    tasks.push(supervise("fleet_follower", stop, move |stop| {
        control::fleet::follow(followed.clone(), intervals.snapshot_recheck, fleet_rollouts.clone(), stop)
    }));
    let balanced = fleet.clone();
    let settings = control::fleet::balance::BalanceSettings {
        lease: intervals.lease,
        observe: intervals.observe,
        watchdog: intervals.watchdog,
        run_leader,
    };
    tasks.push(supervise("balancer", stop, move |stop| {
        control::fleet::balance::run(balanced.clone(), settings, stop)
    }));
    let registry = api.registry.clone();
    tasks.push(supervise("runtimes_file", stop, move |stop| {
        let registry = registry.clone();
        async move { registry.watch(intervals.runtimes_file, stop).await }
    }));
    let driver = api.fleet_rollouts.clone();
    tasks.push(supervise("fleet_rollouts", stop, move |stop| {
        let driver = driver.clone();
        async move { driver.run_driver(intervals.lease, stop).await }
    }));
    let audit = globals.audit.clone();
    tasks.push(supervise("audit_sealer", stop, move |stop| {
        let audit = audit.clone();
        async move { audit.run_sealer(AUDIT_SEAL_PERIOD, stop).await }
    }));
    let ctx = globals.ctx.clone();
    tasks.push(supervise("retention", stop, move |stop| {
        control::retention::run_loop(ctx.clone(), retention, intervals.retention_sweep, stop)
    }));
    let (outbound, leases, replica) =
        (globals.outbound.clone(), globals.leases.clone(), globals.replica_id.clone());
    tasks.push(supervise("outbound", stop, move |stop| {
        let (outbound, leases, replica) = (outbound.clone(), leases.clone(), replica.clone());
        async move { outbound.run_loop(leases, replica, stop).await }
    }));
    tasks
}

//! Sharing the fleet's runtimes out across replicas.
//!
//! Every replica keeps a membership lease (`warp/member/<replica>`) and, for each runtime it
//! owns, an owner lease (`warp/owner/<runtime>`); both are fenced leases renewed in the
//! background. Each pass reads the live members and owners, computes the target
//! ([`crate::domain::fleet::balance`]), releases what it owns that is targeted elsewhere (after
//! stopping that runtime's work) and takes what is free and targeted at it. A replica runs a
//! runtime's background work — periodic observation, the rollout worker, the watchdog, the
//! reconcile loop — only while it holds the runtime's owner lease, and stops it before the
//! lease can expire (a lease counts as held only until two thirds of it passed since the
//! last renewal began).
//!
//! # Guarantees
//! - Never two owners at once: the owner lease has one holder at a time by the database clock,
//!   and the work stops before this replica's hold could lapse.
//! - A dead replica's runtimes are free once their leases expire (one lease period) and taken
//!   on the next pass by the replicas they now target: within two lease periods.
//! - Fair: no replica is targeted more than `ceil(runtimes / replicas)`.
//! - A runtime moves between rollouts: its owner keeps it while one of its rollouts is
//!   unfinished, and hands it over once that ended.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Cell, Fleet};
use crate::control::ownership::{KeptLease, replica_caller};
use crate::control::supervise::supervise;
use crate::control::{AppError, AuditContext};
use crate::domain::fleet::balance::plan;

/// Prefix of the membership leases.
pub const MEMBER_LEASE_PREFIX: &str = "warp/member/";
/// Prefix of the owner leases.
pub const OWNER_LEASE_PREFIX: &str = "warp/owner/";
/// Most owner leases one pass takes (a replica starting beside 200 free runtimes spreads its
/// first reads over a few passes).
const TAKE_PER_PASS: usize = 25;
/// How long stopping one runtime's work may take before its tasks are aborted.
const STOP_WITHIN: Duration = Duration::from_secs(5);

/// How the balancer runs.
#[derive(Debug, Clone, Copy)]
pub struct BalanceSettings {
    /// Duration of the membership and owner leases.
    pub lease: Duration,
    /// The deployment's observe interval (a runtime may set its own).
    pub observe: Duration,
    pub watchdog: Duration,
    /// Whether this replica runs reconcile loops (tests switch it off).
    pub run_leader: bool,
}

/// A runtime this replica owns, with its running work.
struct Owned {
    cell: Arc<Cell>,
    lease: KeptLease,
    work: Option<(CancellationToken, Vec<JoinHandle<()>>)>,
}

/// Who owns what, as this replica last read it (for `ListRuntimes`).
pub fn owner_lease(runtime: &str) -> String {
    format!("{OWNER_LEASE_PREFIX}{runtime}")
}

/// Runs until `stop`; on the way out stops every owned runtime's work and releases the leases,
/// so the other replicas take over at once.
pub async fn run(fleet: Fleet, settings: BalanceSettings, stop: CancellationToken) {
    let globals = fleet.globals().clone();
    let me = globals.replica_id.clone();
    let caller = replica_caller(&me, "balancer");
    let tick = (settings.lease / 6).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut member: Option<KeptLease> = None;
    let mut owned: BTreeMap<String, Owned> = BTreeMap::new();
    let mut ticker = crate::control::every::ticker(tick);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if member.as_ref().is_none_or(|m| !m.is_live()) {
            member = match KeptLease::try_take(
                &globals.leases,
                &format!("{MEMBER_LEASE_PREFIX}{me}"),
                &me,
                settings.lease,
                &caller,
            )
            .await
            {
                Ok(taken) => taken,
                Err(error) => {
                    tracing::warn!(%error, "membership lease: will retry");
                    None
                }
            };
        }
        if member.is_none() {
            // Not a member (the database is away): own nothing.
            stop_all(&mut owned).await;
            continue;
        }
        if let Err(error) = pass(&fleet, &settings, &me, &caller, &mut owned).await {
            tracing::debug!(%error, "balancing pass failed; will retry");
        }
    }
    stop_all(&mut owned).await;
    if let Some(member) = member {
        member.release().await;
    }
}

/// One pass: drop what was lost, then release and take by the target.
async fn pass(
    fleet: &Fleet,
    settings: &BalanceSettings,
    me: &str,
    caller: &AuditContext,
    owned: &mut BTreeMap<String, Owned>,
) -> Result<(), AppError> {
    // Work whose lease lapsed stops at once; work of a rebuilt cell restarts on the new one.
    let lost: Vec<String> =
        owned.iter().filter(|(_, o)| !o.lease.is_live()).map(|(n, _)| n.clone()).collect();
    for name in lost {
        tracing::warn!(runtime = %name, "owner lease lost; stopping its work");
        if let Some(mut gone) = owned.remove(&name) {
            stop_work(&mut gone).await;
        }
    }
    for (name, held) in owned.iter_mut() {
        match fleet.cell(name) {
            Some(cell) if !Arc::ptr_eq(&cell, &held.cell) => {
                stop_work(held).await;
                held.cell = cell;
                start_work(fleet, settings, held);
            }
            _ => {}
        }
    }
    let store = &fleet.ctx().store;
    let (members, _) = store.live_leases_with_prefix(MEMBER_LEASE_PREFIX).await?;
    let (owners, _) = store.live_leases_with_prefix(OWNER_LEASE_PREFIX).await?;
    let members: BTreeSet<String> = members
        .into_iter()
        .filter_map(|l| l.name.strip_prefix(MEMBER_LEASE_PREFIX).map(str::to_owned))
        .collect();
    let mut owners: BTreeMap<String, String> = owners
        .into_iter()
        .filter_map(|l| Some((l.name.strip_prefix(OWNER_LEASE_PREFIX)?.to_owned(), l.holder?)))
        .collect();
    // What this replica holds is its own, whatever the read says.
    for name in owned.keys() {
        owners.insert(name.clone(), me.to_owned());
    }
    let runtimes: BTreeSet<String> = fleet.cells().iter().map(|c| c.name().to_owned()).collect();
    let plan = plan(me, &members, &runtimes, &owners);
    for name in plan.release {
        // A runtime is handed over between rollouts, not in the middle of one (unless this
        // replica dies): its new owner would resume it, but only after waiting out the lease.
        let deregistered = fleet.cell(&name).is_none();
        if !deregistered && !store.unfinished_rollouts(&name).await?.is_empty() {
            continue;
        }
        if let Some(mut held) = owned.remove(&name) {
            tracing::info!(runtime = %name, "handing the runtime over");
            stop_work(&mut held).await;
            held.lease.release().await;
        }
    }
    for name in plan.take.into_iter().take(TAKE_PER_PASS) {
        let Some(cell) = fleet.cell(&name) else { continue };
        let globals = fleet.globals();
        match KeptLease::try_take(&globals.leases, &owner_lease(&name), me, settings.lease, caller).await {
            Ok(Some(lease)) => {
                tracing::info!(runtime = %name, fencing_token = lease.fence().token, "took the runtime");
                let mut held = Owned { cell, lease, work: None };
                start_work(fleet, settings, &mut held);
                owned.insert(name, held);
            }
            Ok(None) => {}
            Err(error) => tracing::debug!(runtime = %name, %error, "owner lease: will retry"),
        }
    }
    Ok(())
}

/// Starts a runtime's background work (none for a paused runtime).
fn start_work(fleet: &Fleet, settings: &BalanceSettings, held: &mut Owned) {
    let cell = &held.cell;
    if cell.runtime.spec.paused {
        return;
    }
    let stop = CancellationToken::new();
    let services = cell.services.clone();
    let name = cell.name().to_owned();
    let observe = cell
        .runtime
        .spec
        .observe_interval_secs
        .map_or(settings.observe, |s| Duration::from_secs(u64::from(s)));
    let span = || tracing::info_span!("runtime", runtime = %name);
    let mut tasks = Vec::new();
    let (observer, leases, replica) =
        (services.observations.clone(), services.leases.clone(), services.replica_id.clone());
    let in_span = span();
    tasks.push(supervise("observation", &stop, move |stop| {
        let (observer, leases, replica) = (observer.clone(), leases.clone(), replica.clone());
        async move { observer.run_loop(observe, leases, replica, stop).await }.instrument(in_span.clone())
    }));
    let rollouts = services.rollouts.clone();
    let in_span = span();
    tasks.push(supervise("rollout_worker", &stop, move |stop| {
        let rollouts = rollouts.clone();
        async move { rollouts.run_worker(stop).await }.instrument(in_span.clone())
    }));
    let watchdog = services.watchdog.clone();
    let every = settings.watchdog;
    let in_span = span();
    tasks.push(supervise("watchdog", &stop, move |stop| {
        let watchdog = watchdog.clone();
        async move { watchdog.run_loop(every, stop).await }.instrument(in_span.clone())
    }));
    if settings.run_leader {
        let leader = services.leader.clone();
        let in_span = span();
        tasks.push(supervise("reconcile_leader", &stop, move |stop| {
            let leader = leader.clone();
            async move { leader.run(stop).await }.instrument(in_span.clone())
        }));
    }
    let _ = fleet;
    held.work = Some((stop, tasks));
}

/// Stops a runtime's work and waits for it (a rollout step in flight, a lease release).
async fn stop_work(held: &mut Owned) {
    let Some((stop, tasks)) = held.work.take() else { return };
    stop.cancel();
    for mut task in tasks {
        if tokio::time::timeout(STOP_WITHIN, &mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn stop_all(owned: &mut BTreeMap<String, Owned>) {
    for (_, mut held) in std::mem::take(owned) {
        stop_work(&mut held).await;
        held.lease.release().await;
    }
}

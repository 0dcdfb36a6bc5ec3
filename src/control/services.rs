//! Building the application services in dependency order: the deployment-wide ones once per
//! replica ([`Globals`]), and one [`Services`] per runtime of the fleet, which holds that
//! runtime's services beside handles to the deployment-wide ones. The transports and the
//! background loops take what they need from them.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::TimeDelta;

use super::ownership::RuntimeOwner;
use super::{
    AuditService, Calls, Classifier, Ctx, DelegationService, DesiredTopologyService, DispatchService,
    DriftMonitor, LeaderSettings, LearningService, LeaseService, ObservationService, ObserverSettings,
    OutboundService, OutboundSettings, PersistentService, ReconcileLeader, ReconcileService,
    RevocationService, RolloutService, ScheduleService, SetupService, WatchdogService,
};
use crate::domain::schedule::Schedule;
use crate::domain::watchdog::WatchdogThresholds;

/// What the deployment-wide services are configured with.
pub struct GlobalSettings {
    /// This replica's holder name in the replica leases.
    pub replica_id: String,
    /// Registered business links (`None`: syntax checks only).
    pub identity_registry: Option<BTreeSet<String>>,
    pub classifier: Classifier,
    /// Event sinks and delivery retries.
    pub outbound: OutboundSettings,
}

/// What every runtime's services are configured with (the same for each runtime).
#[derive(Clone)]
pub struct RuntimeSettings {
    pub observer: ObserverSettings,
    /// The schedule in force until the first `UpdateSchedule`.
    pub schedule_defaults: Schedule,
    pub watchdog: WatchdogThresholds,
    /// This replica's holder name and the reconciler lease duration.
    pub leader: LeaderSettings,
    /// Duration of the runtime lease every change to the runtime runs under.
    pub runtime_lease: std::time::Duration,
    /// How long a setup preview stays addressable.
    pub setup_preview_ttl: TimeDelta,
}

/// The deployment-wide services of one replica: they never touch a runtime.
#[derive(Clone)]
pub struct Globals {
    /// The deployment-wide context (its runtime is [`crate::runtime::UnavailableRuntime::none`]).
    pub ctx: Ctx,
    /// The exactly-once gate of mutating calls.
    pub calls: Calls,
    pub classifier: Classifier,
    pub leases: LeaseService,
    pub audit: AuditService,
    pub persistent: PersistentService,
    /// Outbound events: deliveries and the delivery worker.
    pub outbound: OutboundService,
    /// This replica's holder name in the replica leases.
    pub replica_id: String,
}

impl Globals {
    /// Builds the deployment-wide services over `ctx`.
    pub fn new(ctx: &Ctx, settings: GlobalSettings) -> Self {
        let GlobalSettings { replica_id, identity_registry, classifier, outbound } = settings;
        Self {
            ctx: ctx.clone(),
            calls: Calls::new(ctx),
            classifier,
            leases: LeaseService::new(ctx),
            audit: AuditService::new(ctx),
            persistent: PersistentService::new(ctx, identity_registry.map(Arc::new)),
            outbound: OutboundService::new(ctx, outbound),
            replica_id,
        }
    }
}

/// The services of one runtime, with handles to the deployment-wide ones.
#[derive(Clone)]
pub struct Services {
    /// The runtime's context (its adapter, name, snapshot and event bus).
    pub ctx: Ctx,
    pub calls: Calls,
    pub classifier: Classifier,
    pub observations: ObservationService,
    pub desired: DesiredTopologyService,
    pub drift: DriftMonitor,
    pub leases: LeaseService,
    pub audit: AuditService,
    pub delegations: DelegationService,
    /// Revocations with their consequences for the desired topology and the runtime.
    pub revocations: RevocationService,
    pub schedules: ScheduleService,
    pub watchdog: WatchdogService,
    pub rollouts: RolloutService,
    pub setup: SetupService,
    pub persistent: PersistentService,
    pub learning: LearningService,
    pub reconcile: ReconcileService,
    pub dispatch: DispatchService,
    pub leader: ReconcileLeader,
    pub outbound: OutboundService,
    /// This replica's holder name in the replica leases.
    pub replica_id: String,
}

impl Services {
    /// Builds one runtime's services over `ctx` (a [`Ctx::for_runtime`] of the globals').
    pub fn new(ctx: &Ctx, settings: RuntimeSettings, globals: &Globals) -> Self {
        let RuntimeSettings {
            observer,
            schedule_defaults,
            watchdog,
            leader,
            runtime_lease,
            setup_preview_ttl,
        } = settings;
        let observations = ObservationService::new(ctx, observer);
        let desired = DesiredTopologyService::new(ctx, observations.clone());
        let leases = globals.leases.clone();
        let schedules = ScheduleService::new(ctx, schedule_defaults);
        let owner = RuntimeOwner::new(leases.clone(), ctx.runtime_name(), &leader.replica_id, runtime_lease);
        let rollouts = RolloutService::new(ctx, observations.clone(), owner.clone());
        let setup = SetupService::new(
            ctx,
            globals.classifier.clone(),
            desired.clone(),
            rollouts.clone(),
            observations.clone(),
            setup_preview_ttl,
        );
        let reconcile = ReconcileService::new(ctx, observations.clone(), rollouts.clone());
        let delegations = DelegationService::new(ctx, observations.clone());
        let revocations = RevocationService::new(
            ctx,
            delegations.clone(),
            desired.clone(),
            schedules.clone(),
            rollouts.clone(),
        );
        Self {
            outbound: globals.outbound.clone(),
            revocations,
            replica_id: globals.replica_id.clone(),
            drift: DriftMonitor::new(ctx, observations.clone()),
            audit: globals.audit.clone(),
            delegations,
            watchdog: WatchdogService::new(
                ctx,
                observations.clone(),
                schedules.clone(),
                watchdog,
                leader.lease_secs,
            ),
            learning: LearningService::new(ctx, globals.persistent.clone(), setup.clone()),
            dispatch: DispatchService::new(ctx, observations.clone(), globals.classifier.clone()),
            leader: ReconcileLeader::new(ctx, leases.clone(), schedules.clone(), reconcile.clone(), leader),
            ctx: ctx.clone(),
            calls: globals.calls.clone(),
            classifier: globals.classifier.clone(),
            observations,
            desired,
            leases,
            schedules,
            rollouts,
            setup,
            persistent: globals.persistent.clone(),
            reconcile,
        }
    }
}

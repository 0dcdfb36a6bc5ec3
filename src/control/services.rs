//! Building every application service from the shared context, in dependency order. The
//! transports and the background loops take what they need from [`Services`].

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::TimeDelta;

use super::ownership::RuntimeOwner;
use super::{
    AuditService, Calls, Classifier, Ctx, DelegationService, DesiredTopologyService, DispatchService,
    DriftMonitor, LeaderSettings, LearningService, LeaseService, MetricsService, ObservationService,
    ObserverSettings, OutboundService, OutboundSettings, PersistentService, ReconcileLeader,
    ReconcileService, RevocationService, RolloutService, ScheduleService, SetupService, WatchdogService,
};
use crate::domain::schedule::Schedule;
use crate::domain::watchdog::WatchdogThresholds;

/// What the services are configured with beyond the shared context.
pub struct ServiceSettings {
    pub observer: ObserverSettings,
    /// The schedule in force until the first `UpdateSchedule`.
    pub schedule_defaults: Schedule,
    pub watchdog: WatchdogThresholds,
    /// This replica's holder name and the `warp/reconciler` lease duration.
    pub leader: LeaderSettings,
    /// Duration of the runtime lease every change to the runtime runs under.
    pub runtime_lease: std::time::Duration,
    /// How long a setup preview stays addressable.
    pub setup_preview_ttl: TimeDelta,
    /// Registered business links (`None`: syntax checks only).
    pub identity_registry: Option<BTreeSet<String>>,
    pub classifier: Classifier,
    /// Event sinks and delivery retries.
    pub outbound: OutboundSettings,
}

/// Every application service of one replica.
#[derive(Clone)]
pub struct Services {
    pub ctx: Ctx,
    /// The exactly-once gate of mutating calls.
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
    pub metrics: MetricsService,
    pub leader: ReconcileLeader,
    /// Outbound events: deliveries and the delivery worker.
    pub outbound: OutboundService,
    /// This replica's holder name in the replica leases.
    pub replica_id: String,
}

impl Services {
    /// Builds the services over `ctx`.
    pub fn new(ctx: &Ctx, settings: ServiceSettings) -> Self {
        let ServiceSettings {
            observer,
            schedule_defaults,
            watchdog,
            leader,
            runtime_lease,
            setup_preview_ttl,
            identity_registry,
            classifier,
            outbound,
        } = settings;
        let observations = ObservationService::new(ctx, observer);
        let desired = DesiredTopologyService::new(ctx, observations.clone());
        let leases = LeaseService::new(ctx);
        let schedules = ScheduleService::new(ctx, schedule_defaults);
        let owner =
            RuntimeOwner::new(leases.clone(), ctx.runtime.address(), &leader.replica_id, runtime_lease);
        let rollouts = RolloutService::new(ctx, observations.clone(), owner.clone());
        let setup = SetupService::new(
            ctx,
            classifier.clone(),
            desired.clone(),
            rollouts.clone(),
            observations.clone(),
            setup_preview_ttl,
        );
        let persistent = PersistentService::new(ctx, identity_registry.map(Arc::new));
        let reconcile = ReconcileService::new(ctx, observations.clone(), rollouts.clone());
        let replica_id = leader.replica_id.clone();
        let delegations = DelegationService::new(ctx, observations.clone());
        let revocations = RevocationService::new(
            ctx,
            delegations.clone(),
            desired.clone(),
            schedules.clone(),
            rollouts.clone(),
        );
        Self {
            outbound: OutboundService::new(ctx, outbound),
            revocations,
            replica_id,
            drift: DriftMonitor::new(ctx, observations.clone()),
            audit: AuditService::new(ctx),
            delegations,
            watchdog: WatchdogService::new(
                ctx,
                observations.clone(),
                schedules.clone(),
                watchdog,
                leader.lease_secs,
            ),
            learning: LearningService::new(ctx, persistent.clone(), setup.clone()),
            dispatch: DispatchService::new(ctx, observations.clone(), classifier.clone()),
            metrics: MetricsService::new(
                ctx,
                observations.clone(),
                schedules.clone(),
                leader.replica_id.clone(),
            ),
            leader: ReconcileLeader::new(ctx, leases.clone(), schedules.clone(), reconcile.clone(), leader),
            ctx: ctx.clone(),
            calls: Calls::new(ctx),
            classifier,
            observations,
            desired,
            leases,
            schedules,
            rollouts,
            setup,
            persistent,
            reconcile,
        }
    }
}

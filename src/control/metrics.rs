//! What `/metrics` reports, gathered at scrape time from the store and readiness (no counters
//! to lose on restart, and every replica reports the same cluster-wide figures).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Ctx;
use super::{AppError, ObservationService, ScheduleService};
use crate::domain::model::Severity;
use crate::domain::schedule::{RECONCILER_LEASE, Schedule};

/// How many recent rollouts and runs the per-state figures cover.
const RECENT: u64 = 500;

/// A point-in-time view for `/metrics`.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    pub ready: bool,
    /// Component → ready.
    pub components: Vec<(&'static str, bool)>,
    /// (state, severity) → drift items.
    pub drift_items: BTreeMap<(&'static str, &'static str), u64>,
    pub leases_total: u64,
    pub leases_held: u64,
    /// (kind, severity) → open watchdog observations.
    pub watchdog_open: BTreeMap<(&'static str, &'static str), u64>,
    /// State → recent rollouts.
    pub rollouts: BTreeMap<&'static str, u64>,
    /// (trigger, state) → recent scheduler runs.
    pub runs: BTreeMap<(String, &'static str), u64>,
    pub schedule: Schedule,
    pub is_leader: bool,
    pub last_scheduled_start: Option<DateTime<Utc>>,
    pub last_observation: Option<DateTime<Utc>>,
    /// (sink, state, deliveries) of outbound events.
    pub outbound: crate::store::DeliveryCounts,
}

/// Returns the lower-case name of a severity for labels.
pub fn severity_label(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
        Severity::Critical => "critical",
    }
}

/// Gathers metrics.
#[derive(Clone)]
pub struct MetricsService {
    ctx: Ctx,
    observations: ObservationService,
    schedules: ScheduleService,
    replica_id: String,
}

impl MetricsService {
    /// The process metrics rendered after the store's gauges.
    pub fn telemetry(&self) -> &crate::telemetry::Telemetry {
        &self.ctx.telemetry
    }

    /// Creates the service; `replica_id` is this replica's holder name in `warp/reconciler`.
    pub fn new(
        ctx: &Ctx,
        observations: ObservationService,
        schedules: ScheduleService,
        replica_id: String,
    ) -> Self {
        Self { ctx: ctx.clone(), observations, schedules, replica_id }
    }

    /// Reads everything `/metrics` reports.
    pub async fn collect(&self) -> Result<MetricsSnapshot, AppError> {
        let runtime = self.observations.runtime_address();
        let readiness = self.ctx.readiness.snapshot();
        let mut drift_items = BTreeMap::new();
        for item in self.ctx.store.drift_items(runtime).await?.values() {
            *drift_items
                .entry((item.state.as_str(), severity_label(item.difference.severity)))
                .or_default() += 1;
        }
        let (leases, db_now) = self.ctx.store.list_leases(None, 10_000).await?;
        let leases_held = leases.iter().filter(|l| l.live_holder(db_now).is_some()).count() as u64;
        let is_leader = leases
            .iter()
            .find(|l| l.name == RECONCILER_LEASE)
            .and_then(|l| l.live_holder(db_now))
            .is_some_and(|holder| holder == self.replica_id);
        let mut watchdog_open = BTreeMap::new();
        for observation in self.ctx.store.watchdog_observations(runtime).await?.values() {
            if observation.cleared_at.is_none() {
                let key = (observation.finding.kind.slug(), severity_label(observation.finding.severity));
                *watchdog_open.entry(key).or_default() += 1;
            }
        }
        let mut rollouts = BTreeMap::new();
        for rollout in self.ctx.store.list_rollouts(runtime, None, RECENT).await? {
            *rollouts.entry(rollout.state.as_str()).or_default() += 1;
        }
        let mut runs = BTreeMap::new();
        for (_, run) in self.ctx.store.list_runs(runtime, None, RECENT).await? {
            *runs.entry((run.trigger.clone(), run.state.as_str())).or_default() += 1;
        }
        Ok(MetricsSnapshot {
            ready: readiness.ready(),
            components: readiness.components().iter().map(|(name, state)| (*name, state.ready)).collect(),
            drift_items,
            leases_total: leases.len() as u64,
            leases_held,
            watchdog_open,
            rollouts,
            runs,
            schedule: self.schedules.get().await?,
            is_leader,
            last_scheduled_start: self.ctx.store.latest_scheduled_run(runtime).await?.map(|r| r.started_at),
            last_observation: self.observations.latest_stored_opt().map(|o| o.record.last_seen_at),
            outbound: self.ctx.store.delivery_counts().await?,
        })
    }
}

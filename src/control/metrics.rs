//! What `/metrics` reports, gathered at scrape time from the store, the fleet's snapshots and
//! readiness (no counters to lose on restart, and every replica reports the same cluster-wide
//! figures, each runtime's labelled with its name).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::AppError;
use crate::domain::model::Severity;
use crate::domain::schedule::{Schedule, reconciler_lease};

/// How many recent rollouts and runs the per-state figures cover.
const RECENT: u64 = 500;

/// A point-in-time view for `/metrics`: the deployment's figures, then each runtime's.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    pub ready: bool,
    /// Component → ready.
    pub components: Vec<(&'static str, bool)>,
    pub leases_total: u64,
    pub leases_held: u64,
    /// (sink, state, deliveries) of outbound events.
    pub outbound: crate::store::DeliveryCounts,
    /// Runtimes in the fleet, by health.
    pub runtimes_by_health: BTreeMap<&'static str, u64>,
    /// Each runtime's figures (the runtime name is the only per-runtime label: bounded by the
    /// registry).
    pub runtimes: Vec<RuntimeMetrics>,
}

/// One runtime's figures.
#[derive(Debug, Clone)]
pub struct RuntimeMetrics {
    pub runtime: String,
    /// (state, severity) → drift items.
    pub drift_items: BTreeMap<(&'static str, &'static str), u64>,
    /// (kind, severity) → open watchdog observations.
    pub watchdog_open: BTreeMap<(&'static str, &'static str), u64>,
    /// State → recent rollouts.
    pub rollouts: BTreeMap<&'static str, u64>,
    /// (trigger, state) → recent scheduler runs.
    pub runs: BTreeMap<(String, &'static str), u64>,
    pub schedule: Schedule,
    /// Whether this replica holds the runtime's reconciler lease.
    pub is_leader: bool,
    pub last_scheduled_start: Option<DateTime<Utc>>,
    pub last_observation: Option<DateTime<Utc>>,
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

/// Gathers the metrics of the fleet: from the cells' snapshots and a handful of queries for
/// the whole fleet (never one per runtime).
#[derive(Clone)]
pub struct MetricsService {
    fleet: super::fleet::Fleet,
}

impl MetricsService {
    pub fn new(fleet: super::fleet::Fleet) -> Self {
        Self { fleet }
    }

    /// The process metrics rendered after the store's gauges.
    pub fn telemetry(&self) -> &crate::telemetry::Telemetry {
        &self.fleet.ctx().telemetry
    }

    /// Reads everything `/metrics` reports.
    pub async fn collect(&self) -> Result<MetricsSnapshot, AppError> {
        let ctx = self.fleet.ctx();
        let me = &self.fleet.globals().replica_id;
        let readiness = ctx.readiness.snapshot();
        let (leases, db_now) = ctx.store.list_leases(None, 100_000).await?;
        let leases_held = leases.iter().filter(|l| l.live_holder(db_now).is_some()).count() as u64;
        let leading: std::collections::BTreeSet<&str> = leases
            .iter()
            .filter(|l| l.live_holder(db_now) == Some(me.as_str()))
            .map(|l| l.name.as_str())
            .collect();
        let mut watchdog: BTreeMap<String, BTreeMap<(&'static str, &'static str), u64>> = BTreeMap::new();
        for (runtime, observation) in ctx.store.open_watchdog_all().await? {
            let key = (observation.finding.kind.slug(), severity_label(observation.finding.severity));
            *watchdog.entry(runtime).or_default().entry(key).or_default() += 1;
        }
        let mut rollouts: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
        for rollout in ctx.store.recent_rollouts_any(RECENT).await? {
            *rollouts
                .entry(rollout.runtime.clone())
                .or_default()
                .entry(rollout.state.as_str())
                .or_default() += 1;
        }
        let mut runs: BTreeMap<String, BTreeMap<(String, &'static str), u64>> = BTreeMap::new();
        for (runtime, run) in ctx.store.recent_runs_any(RECENT).await? {
            *runs
                .entry(runtime)
                .or_default()
                .entry((run.trigger.clone(), run.state.as_str()))
                .or_default() += 1;
        }
        let mut runtimes_by_health: BTreeMap<&'static str, u64> =
            crate::domain::fleet::RuntimeHealth::ALL.iter().map(|h| (h.as_str(), 0)).collect();
        for view in self.fleet.views(&crate::domain::fleet::Selector::default()).await? {
            *runtimes_by_health.entry(view.health.as_str()).or_default() += 1;
        }
        let mut runtimes = Vec::new();
        for cell in self.fleet.cells() {
            let name = cell.name().to_owned();
            let snapshot = &cell.services.ctx.snapshot;
            let mut drift_items = BTreeMap::new();
            for item in snapshot.drift_items().values() {
                *drift_items
                    .entry((item.state.as_str(), severity_label(item.difference.severity)))
                    .or_default() += 1;
            }
            runtimes.push(RuntimeMetrics {
                drift_items,
                watchdog_open: watchdog.remove(&name).unwrap_or_default(),
                rollouts: rollouts.remove(&name).unwrap_or_default(),
                runs: runs.remove(&name).unwrap_or_default(),
                schedule: cell.services.schedules.get().await?,
                is_leader: leading.contains(reconciler_lease(&name).as_str()),
                last_scheduled_start: snapshot.schedule().1,
                last_observation: snapshot.observation().map(|o| o.record.last_seen_at),
                runtime: name,
            });
        }
        Ok(MetricsSnapshot {
            ready: readiness.ready(),
            components: readiness.components().iter().map(|(name, state)| (*name, state.ready)).collect(),
            leases_total: leases.len() as u64,
            leases_held,
            outbound: ctx.store.delivery_counts().await?,
            runtimes_by_health,
            runtimes,
        })
    }
}

//! What the fleet views show: each runtime's owner, health, last observation, drift and active
//! rollout, and the fleet summary (counts by health and drift state, by label). Computed from
//! this replica's snapshots and lease cache plus two queries for the whole fleet (open
//! "unreachable" watchdog observations and unfinished rollouts), never one query per runtime.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::balance::OWNER_LEASE_PREFIX;
use super::{Cell, Fleet};
use crate::control::AppError;
use crate::domain::fleet::{HealthFacts, RegisteredRuntime, RuntimeHealth, Selector, health};
use crate::domain::rollout::RolloutState;

/// One runtime as the fleet views show it.
#[derive(Debug, Clone)]
pub struct RuntimeView {
    pub runtime: RegisteredRuntime,
    /// The replica holding its owner lease, if any.
    pub owner: Option<String>,
    pub health: RuntimeHealth,
    /// Why it has that health, in a few words.
    pub health_detail: String,
    pub last_observed_at: Option<DateTime<Utc>>,
    pub config_hash: String,
    pub agents: usize,
    /// Drift items not resolved.
    pub drift_open: i32,
    /// Confirmed or flapping items nobody acknowledged.
    pub drift_needs_attention: i32,
    /// A desired topology exists and nothing is open.
    pub in_sync: bool,
    pub desired_generation: i64,
    /// The oldest unfinished rollout, with its state.
    pub active_rollout: Option<(String, RolloutState)>,
}

/// Counts for a group of runtimes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub runtimes: usize,
    /// By health, every health listed (zeros included).
    pub by_health: BTreeMap<RuntimeHealth, usize>,
    pub in_sync: usize,
    /// Runtimes with open drift.
    pub drifting: usize,
    /// Runtimes with drift that needs attention.
    pub needs_attention: usize,
    pub rollouts_in_flight: usize,
}

impl Counts {
    fn add(&mut self, view: &RuntimeView) {
        if self.by_health.is_empty() {
            self.by_health = RuntimeHealth::ALL.into_iter().map(|h| (h, 0)).collect();
        }
        self.runtimes += 1;
        *self.by_health.entry(view.health).or_default() += 1;
        self.in_sync += usize::from(view.in_sync);
        self.drifting += usize::from(view.drift_open > 0);
        self.needs_attention += usize::from(view.drift_needs_attention > 0);
        self.rollouts_in_flight += usize::from(view.active_rollout.is_some());
    }
}

/// The fleet summary.
#[derive(Debug, Clone, Default)]
pub struct FleetSummary {
    pub selector: String,
    pub total: Counts,
    /// By label key and value.
    pub by_label: BTreeMap<(String, String), Counts>,
}

impl Fleet {
    /// The views of the runtimes `selector` matches, by name.
    pub async fn views(&self, selector: &Selector) -> Result<Vec<RuntimeView>, AppError> {
        self.views_where(|cell| selector.matches(&cell.runtime.spec.labels)).await
    }

    /// One page of the views `selector` matches, by name.
    pub async fn list_views(
        &self,
        selector: &Selector,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<RuntimeView>, String), AppError> {
        let codec = &self.ctx().page_tokens;
        let scope = format!("ListRuntimes:{selector}");
        let page = crate::control::paging::page_request(codec, &scope, page_size, page_token)?;
        let after = page.cursor.clone().unwrap_or_default();
        let mut views = self
            .views_where(|cell| selector.matches(&cell.runtime.spec.labels) && cell.name() > after.as_str())
            .await?;
        views.truncate(page.size as usize + 1);
        Ok(crate::control::paging::finish_page(codec, &scope, views, page.size, |v| {
            v.runtime.spec.name.clone()
        }))
    }

    /// One runtime's view.
    pub async fn view(&self, name: &str) -> Result<RuntimeView, AppError> {
        let cell = self.resolve_field("name", name)?;
        let mut views = self.views_where(|other| other.name() == cell.name()).await?;
        views.pop().ok_or_else(|| AppError::NotFound { resource: format!("runtime {name}") })
    }

    async fn views_where(&self, wanted: impl Fn(&Cell) -> bool) -> Result<Vec<RuntimeView>, AppError> {
        let ctx = self.ctx();
        let unreachable = ctx.store.open_watchdog_by_prefix("runtime_unreachable/").await?;
        let mut rollouts: BTreeMap<String, (String, RolloutState)> = BTreeMap::new();
        for rollout in ctx.store.unfinished_rollouts_any().await? {
            rollouts.entry(rollout.runtime.clone()).or_insert((rollout.id, rollout.state));
        }
        let skew = ctx.store.clock_skew();
        let owners: BTreeMap<String, String> = ctx
            .leases
            .live_with_prefix(OWNER_LEASE_PREFIX, skew)
            .map(|(leases, _)| {
                leases
                    .into_iter()
                    .filter_map(|(name, lease)| {
                        Some((name.strip_prefix(OWNER_LEASE_PREFIX)?.to_owned(), lease.holder?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let now = ctx.clock.now();
        let default_interval = self.settings().observer.tracker_min_gap;
        Ok(self
            .cells()
            .iter()
            .filter(|cell| wanted(cell))
            .map(|cell| {
                view_of(
                    cell,
                    owners.get(cell.name()).cloned(),
                    unreachable.get(cell.name()),
                    rollouts.remove(cell.name()),
                    default_interval,
                    now,
                )
            })
            .collect())
    }

    /// The summary of the runtimes `selector` matches.
    pub async fn summary(&self, selector: &Selector) -> Result<FleetSummary, AppError> {
        let mut summary = FleetSummary { selector: selector.to_string(), ..FleetSummary::default() };
        for view in self.views(selector).await? {
            summary.total.add(&view);
            for (key, value) in &view.runtime.spec.labels {
                summary.by_label.entry((key.clone(), value.clone())).or_default().add(&view);
            }
        }
        if summary.total.by_health.is_empty() {
            summary.total.by_health = RuntimeHealth::ALL.into_iter().map(|h| (h, 0)).collect();
        }
        Ok(summary)
    }
}

fn view_of(
    cell: &Cell,
    owner: Option<String>,
    unreachable: Option<&String>,
    active_rollout: Option<(String, RolloutState)>,
    default_interval: TimeDelta,
    now: DateTime<Utc>,
) -> RuntimeView {
    let snapshot = &cell.services.ctx.snapshot;
    let observation = snapshot.observation();
    let summary = snapshot.summary();
    let spec = &cell.runtime.spec;
    let interval = spec.observe_interval_secs.map_or(default_interval, |s| TimeDelta::seconds(i64::from(s)));
    let read_failed = cell.adapter_error.is_some() || unreachable.is_some();
    let health = health(HealthFacts {
        paused: spec.paused,
        read_failed,
        last_seen: observation.as_ref().map(|o| o.record.last_seen_at),
        config_valid: observation.as_ref().is_none_or(|o| o.inventory.config_valid),
        interval,
        now,
    });
    let health_detail = match health {
        RuntimeHealth::Paused => "paused".to_owned(),
        RuntimeHealth::Unreachable => cell
            .adapter_error
            .clone()
            .or_else(|| unreachable.cloned())
            .unwrap_or_else(|| "the last read failed".to_owned()),
        RuntimeHealth::Unknown => "not observed yet".to_owned(),
        RuntimeHealth::Degraded if observation.as_ref().is_some_and(|o| !o.inventory.config_valid) => {
            "the runtime's config is invalid".to_owned()
        }
        RuntimeHealth::Degraded => "the last observation is overdue".to_owned(),
        RuntimeHealth::Healthy => "observed within its interval".to_owned(),
    };
    let open: i32 =
        summary.by_state.iter().filter(|(state, _)| state.is_open()).map(|(_, count)| *count).sum();
    RuntimeView {
        runtime: cell.runtime.clone(),
        owner,
        health,
        health_detail,
        last_observed_at: observation.as_ref().map(|o| o.record.last_seen_at),
        config_hash: observation.as_ref().map(|o| o.record.config_hash.clone()).unwrap_or_default(),
        agents: observation.as_ref().map_or(0, |o| o.inventory.agents.len()),
        drift_open: open,
        drift_needs_attention: summary.needs_attention,
        in_sync: summary.in_sync,
        desired_generation: summary.desired_generation,
        active_rollout,
    }
}

//! The watchdog service: evaluates the control plane's state (never changing the runtime),
//! keeps deduplicated observations, and lets operators acknowledge them.

use std::sync::Arc;
use std::time::Duration;

use super::Ctx;
use super::ScheduleService;
use super::{AppError, AuditContext, ObservationService};
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::watchdog::{
    ReconcileFacts, WatchdogInputs, WatchdogObservation, WatchdogThresholds, evaluate, merge,
    reconcile_lateness,
};

/// Watchdog use cases.
#[derive(Clone)]
pub struct WatchdogService {
    ctx: Ctx,
    observations: ObservationService,
    thresholds: WatchdogThresholds,
    serialize: Arc<tokio::sync::Mutex<()>>,
    schedules: ScheduleService,
    lease_secs: i64,
    watching_since: chrono::DateTime<chrono::Utc>,
}

impl WatchdogService {
    /// Creates the service.
    pub fn new(
        ctx: &Ctx,
        observations: ObservationService,
        schedules: ScheduleService,
        thresholds: WatchdogThresholds,
        lease_secs: i64,
    ) -> Self {
        Self {
            ctx: ctx.clone(),
            observations,
            thresholds,
            serialize: Arc::default(),
            schedules,
            lease_secs,
            watching_since: ctx.clock.now(),
        }
    }

    fn runtime(&self) -> &str {
        self.observations.runtime_name()
    }

    /// Evaluates now and returns every tracked observation (open first, then cleared).
    pub async fn evaluate_now(&self) -> Result<Vec<WatchdogObservation>, AppError> {
        let _one = self.serialize.lock().await;
        let now = self.ctx.clock.now();
        let (leases, db_now) = self.ctx.store.list_leases(None, 10_000).await?;
        let unfinished = self.ctx.store.unfinished_rollouts(self.runtime()).await?;
        let latest = self.observations.latest_stored_opt();
        // This runtime's own last read (the readiness component sums up the whole fleet).
        let detail =
            self.ctx.readiness.runtime_read(self.runtime()).map(|(_, detail)| detail).unwrap_or_default();
        let runtime_error = detail.strip_prefix("last read failed: ");
        let schedule = self.schedules.get().await?;
        let last_scheduled_start =
            self.ctx.store.latest_scheduled_run(self.runtime()).await?.map(|run| run.started_at);
        let inputs = WatchdogInputs {
            now,
            db_now,
            runtime: self.runtime(),
            leases: &leases,
            unfinished_rollouts: &unfinished,
            latest: latest.as_ref().map(|o| (&o.record, &o.inventory)),
            runtime_error,
            thresholds: self.thresholds,
            reconcile: Some(ReconcileFacts {
                schedule: &schedule,
                last_scheduled_start,
                watching_since: self.watching_since,
                lease_secs: self.lease_secs,
            }),
        };
        let findings = evaluate(&inputs);
        match reconcile_lateness(&inputs) {
            Some(late) => self.ctx.readiness.set_reconcile(
                self.runtime(),
                false,
                format!("overdue by {} s: no scheduled cycle started", late.num_seconds()),
            ),
            None if schedule.paused => self.ctx.readiness.set_reconcile(self.runtime(), true, "paused"),
            None => self.ctx.readiness.set_reconcile(
                self.runtime(),
                true,
                match last_scheduled_start {
                    Some(at) => format!("on schedule (last scheduled cycle {})", at.to_rfc3339()),
                    None => "waiting for the first scheduled cycle".to_owned(),
                },
            ),
        }
        let mut tracked = self.ctx.store.watchdog_observations(self.runtime()).await?;
        let changed = merge(&mut tracked, findings, now);
        let to_save: Vec<&WatchdogObservation> = changed.iter().filter_map(|key| tracked.get(key)).collect();
        self.ctx.store.save_watchdog_observations(self.runtime(), &to_save, now, None).await?;
        let mut all: Vec<WatchdogObservation> = tracked.into_values().collect();
        all.sort_by(|a, b| {
            (a.cleared_at.is_some(), &a.finding.key).cmp(&(b.cleared_at.is_some(), &b.finding.key))
        });
        Ok(all)
    }

    /// Acknowledges an open observation.
    pub async fn acknowledge(
        &self,
        key: &str,
        caller: &AuditContext,
        idempotency: &IdempotencyKey,
        validate_only: bool,
    ) -> Result<WatchdogObservation, AppError> {
        // A retry gets the first answer, even after the observation cleared.
        if let Some(answer) = self.ctx.replayed(idempotency).await? {
            return Ok(answer);
        }
        let _one = self.serialize.lock().await;
        let mut tracked = self.ctx.store.watchdog_observations(self.runtime()).await?;
        let observation = tracked
            .get_mut(key)
            .filter(|o| o.cleared_at.is_none())
            .ok_or_else(|| AppError::NotFound { resource: format!("open watchdog observation {key}") })?;
        if validate_only || observation.acknowledged_by.is_some() {
            return Ok(observation.clone());
        }
        observation.acknowledged_by = Some(caller.actor.clone());
        let audit = caller.event_in(
            self.runtime(),
            format!("watchdog/{key}"),
            format!("acknowledged watchdog observation {key}"),
        );
        let answer = observation.clone();
        self.ctx
            .store
            .save_watchdog_observations(
                self.runtime(),
                &[observation],
                self.ctx.clock.now(),
                Some((&audit, idempotency, &answer)),
            )
            .await?;
        Ok(observation.clone())
    }

    /// Evaluates every `interval` until stopped.
    pub async fn run_loop(&self, interval: Duration, stop: tokio_util::sync::CancellationToken) {
        super::every::every(interval, &stop, async || {
            super::every::log_failure("watchdog evaluation", self.evaluate_now().await.map(drop));
        })
        .await;
    }
}

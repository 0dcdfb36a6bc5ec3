//! The periodic reconcile loop and its schedule.
//!
//! Every replica runs [`ReconcileLeader::run`]; only the holder of lease `warp/reconciler`
//! starts cycles. The leader renews every third of the lease duration and stops starting
//! cycles (cancelling a running one) once two thirds have passed since its last successful
//! renewal began — before the lease can expire by the database clock and another replica can
//! take over. Scheduled cycle ids name the database clock's time bucket, and each cycle starts
//! only while the leader's fencing token is live (checked in the insert's transaction), so a
//! bucket's cycle runs at most once across all replicas.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Ctx;
use super::reconcile::{CycleOutcome, CycleRequest, TRIGGER_SCHEDULED};
use super::{AppError, AuditContext, LeaseService, LeaseUse, ReconcileService};
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::reconcile::ReconcileMode;
use crate::domain::schedule::{Schedule, reconciler_lease, scheduled_cycle, validate_schedule};
use crate::store::{Fence, ScheduleChange, UpdateScheduleOutcome};

/// Reading and changing the reconcile schedule.
#[derive(Clone)]
pub struct ScheduleService {
    ctx: Ctx,
    runtime: String,
    defaults: Schedule,
}

/// A schedule update as the transport decoded it.
pub struct UpdateScheduleRequest {
    pub interval_secs: i64,
    pub mode: ReconcileMode,
    pub paused: bool,
    pub etag: String,
    pub idempotency: IdempotencyKey,
    pub validate_only: bool,
}

impl ScheduleService {
    /// Creates the service; `defaults` apply until the first update.
    pub fn new(ctx: &Ctx, defaults: Schedule) -> Self {
        Self { ctx: ctx.clone(), runtime: ctx.runtime_name().to_owned(), defaults }
    }

    /// Returns the current schedule (from the snapshot).
    pub async fn get(&self) -> Result<Schedule, AppError> {
        Ok(self.ctx.snapshot.schedule().0.unwrap_or_else(|| self.defaults.clone()))
    }

    /// Returns the schedule, the live leader (if any) and the newest scheduled cycle's start,
    /// from the snapshot; the leader is read from the store only when the snapshot's copy of
    /// the lease has expired.
    pub async fn status(
        &self,
    ) -> Result<(Schedule, Option<String>, Option<chrono::DateTime<chrono::Utc>>), AppError> {
        let (stored, last) = self.ctx.snapshot.schedule();
        let schedule = stored.unwrap_or_else(|| self.defaults.clone());
        let skew = self.ctx.store.clock_skew();
        let lease_name = reconciler_lease(&self.runtime);
        let leader = match self.ctx.leases.live_lease(&lease_name, skew) {
            Some((lease, _)) => lease.holder,
            None => {
                let (lease, db_now) = self.ctx.store.lease(&lease_name).await?;
                if let Some(lease) = &lease {
                    self.ctx.leases.put(lease.clone(), db_now, skew);
                }
                lease.as_ref().and_then(|l| l.live_holder(db_now)).map(str::to_owned)
            }
        };
        Ok((schedule, leader, last))
    }

    /// Replaces the schedule under its etag.
    pub async fn update(
        &self,
        request: UpdateScheduleRequest,
        caller: &AuditContext,
    ) -> Result<Schedule, AppError> {
        validate_schedule(request.interval_secs)
            .map_err(|violations| AppError::InvalidArgument { violations })?;
        let next = Schedule {
            interval_secs: request.interval_secs,
            mode: request.mode,
            paused: request.paused,
            generation: 0,
            updated_at: None,
            updated_by: caller.actor.clone(),
        };
        if request.validate_only {
            let current = self.get().await?;
            if current.etag() != request.etag {
                return Err(stale_etag(&request.etag, &current.etag()));
            }
            return Ok(Schedule { generation: current.generation, updated_at: current.updated_at, ..next });
        }
        let audit = caller.event(
            format!("schedule/{}", self.runtime),
            format!(
                "schedule of {}: every {} s, mode {}, {}",
                self.runtime,
                next.interval_secs,
                next.mode.as_str(),
                if next.paused { "paused" } else { "running" }
            ),
        );
        let outcome = self
            .ctx
            .store
            .update_schedule(
                &self.runtime,
                &self.defaults,
                ScheduleChange {
                    expected_etag: &request.etag,
                    next,
                    key: &request.idempotency,
                    now: self.ctx.clock.now(),
                    audit: &audit,
                },
            )
            .await?;
        match outcome {
            UpdateScheduleOutcome::Stored(schedule) => {
                self.ctx.snapshot.put_schedule(schedule.clone());
                Ok(schedule)
            }
            UpdateScheduleOutcome::Replayed(schedule) => Ok(schedule),
            UpdateScheduleOutcome::RequestIdReused => Err(AppError::request_id_reused()),
            UpdateScheduleOutcome::EtagMismatch { current } => Err(stale_etag(&request.etag, &current)),
        }
    }
}

fn stale_etag(given: &str, current: &str) -> AppError {
    AppError::FailedPrecondition {
        reason: "ETAG_MISMATCH",
        subject: "schedule".to_owned(),
        description: format!("etag \"{given}\" is not the current schedule etag \"{current}\""),
    }
}

/// How this replica takes part in leader election.
#[derive(Debug, Clone)]
pub struct LeaderSettings {
    /// The holder name of this replica in `warp/reconciler`.
    pub replica_id: String,
    /// Lease duration in seconds.
    pub lease_secs: i64,
}

/// The periodic loop (one per replica; only the lease holder runs cycles).
#[derive(Clone)]
pub struct ReconcileLeader {
    ctx: Ctx,
    leases: LeaseService,
    schedules: ScheduleService,
    reconcile: ReconcileService,
    settings: LeaderSettings,
}

struct Leadership {
    token: i64,
    /// When the last successful acquisition or renewal *began* (a conservative anchor: the
    /// database set the expiry after this instant).
    anchored: Instant,
}

impl ReconcileLeader {
    /// Creates the loop.
    pub fn new(
        ctx: &Ctx,
        leases: LeaseService,
        schedules: ScheduleService,
        reconcile: ReconcileService,
        settings: LeaderSettings,
    ) -> Self {
        Self { ctx: ctx.clone(), leases, schedules, reconcile, settings }
    }

    fn caller(&self) -> AuditContext {
        AuditContext {
            actor: format!("jhf-warp/{}", self.settings.replica_id),
            method: "jhf-warp/reconciler".to_owned(),
            request_id: String::new(),
            role: crate::domain::access::Role::Operator,
        }
    }

    /// Runs until `stop`; on the way out a leader cancels its cycle and releases the lease so
    /// another replica can take over at once.
    pub async fn run(&self, stop: CancellationToken) {
        let lease = Duration::from_secs(self.settings.lease_secs.max(1) as u64);
        let renew_every = lease / 3;
        let valid_for = lease * 2 / 3;
        // Followers retry often enough to take over soon after an expiry; leaders check the
        // schedule as often.
        let tick = (lease / 6).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let holder = self.settings.replica_id.clone();
        let caller = self.caller();
        let mut leadership: Option<Leadership> = None;
        let mut cycle: Option<(JoinHandle<()>, CancellationToken)> = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(tick) => {}
            }
            if cycle.as_ref().is_some_and(|(task, _)| task.is_finished()) {
                cycle = None;
            }
            leadership = match leadership.take() {
                Some(held) => {
                    let kept = self.keep_leadership(held, renew_every, valid_for, &caller).await;
                    if kept.is_none()
                        && let Some((_, cancel)) = &cycle
                    {
                        cancel.cancel();
                    }
                    kept
                }
                None => self.take_leadership(&caller).await,
            };
            if let (Some(held), None) = (&leadership, &cycle) {
                match self.start_due_cycle(held.token, &caller).await {
                    Ok(started) => cycle = started,
                    Err(error) => tracing::warn!(%error, "could not start the scheduled cycle"),
                }
            }
        }
        if let Some((task, cancel)) = cycle {
            cancel.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        if let Some(held) = leadership
            && let Err(error) = self
                .leases
                .release_for(
                    LeaseUse::Replica,
                    &reconciler_lease(self.ctx.runtime_name()),
                    &holder,
                    held.token,
                    &caller,
                )
                .await
        {
            tracing::warn!(%error, "releasing the reconciler lease failed; it expires on its own");
        }
    }

    /// Renews the lease when a third of it has passed; `None` once leadership is lost (the
    /// renewal was refused, or no renewal succeeded within two thirds of the lease).
    async fn keep_leadership(
        &self,
        mut held: Leadership,
        renew_every: Duration,
        valid_for: Duration,
        caller: &AuditContext,
    ) -> Option<Leadership> {
        let holder = &self.settings.replica_id;
        let mut refused = false;
        if held.anchored.elapsed() >= renew_every {
            let began = Instant::now();
            match self
                .leases
                .renew_for(
                    LeaseUse::Replica,
                    &reconciler_lease(self.ctx.runtime_name()),
                    holder,
                    held.token,
                    self.settings.lease_secs,
                    caller,
                )
                .await
            {
                Ok(_) => held.anchored = began,
                Err(AppError::FailedPrecondition { description, .. }) => {
                    tracing::warn!(%description, "reconciler lease renewal refused; stepping down");
                    refused = true;
                }
                Err(error) => tracing::warn!(%error, "reconciler lease renewal failed; will retry"),
            }
        }
        if refused || held.anchored.elapsed() >= valid_for {
            tracing::warn!(holder = %holder, "lost reconcile leadership; cycles stop");
            return None;
        }
        Some(held)
    }

    /// Tries to take the reconciler lease; a new leader first resolves the cycles its
    /// predecessor left running.
    async fn take_leadership(&self, caller: &AuditContext) -> Option<Leadership> {
        let holder = &self.settings.replica_id;
        let began = Instant::now();
        match self
            .leases
            .acquire_for(
                LeaseUse::Replica,
                &reconciler_lease(self.ctx.runtime_name()),
                holder,
                self.settings.lease_secs,
                caller,
            )
            .await
        {
            Ok((lease, _)) => {
                tracing::info!(holder = %holder, fencing_token = lease.token, "took reconcile leadership");
                match self.reconcile.abandon_orphaned_runs(&caller.actor).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(runs = n, "marked cycles of the previous leader as failed"),
                    Err(error) => tracing::warn!(%error, "could not resolve the previous leader's cycles"),
                }
                Some(Leadership { token: lease.token, anchored: began })
            }
            Err(AppError::FailedPrecondition { .. }) => None,
            Err(error) => {
                tracing::warn!(%error, "reconciler lease acquisition failed; will retry");
                None
            }
        }
    }

    /// Starts the cycle of the current bucket unless it ran, the schedule is paused, or the
    /// fence fails.
    async fn start_due_cycle(
        &self,
        token: i64,
        caller: &AuditContext,
    ) -> Result<Option<(JoinHandle<()>, CancellationToken)>, AppError> {
        let schedule = self.schedules.get().await?;
        if schedule.paused {
            return Ok(None);
        }
        let db_now = self.ctx.store.now().await?;
        let (_, cycle_id) = scheduled_cycle(&self.schedules.runtime, schedule.interval_secs, db_now);
        if self.ctx.store.run(&cycle_id).await?.is_some() {
            return Ok(None);
        }
        let cancel = CancellationToken::new();
        let request = CycleRequest {
            mode: schedule.mode,
            cycle_id: Some(cycle_id),
            trigger: TRIGGER_SCHEDULED,
            fence: Some(Fence {
                lease: reconciler_lease(self.ctx.runtime_name()),
                holder: self.settings.replica_id.clone(),
                token,
            }),
            cancel: cancel.clone(),
        };
        let (reconcile, caller) = (self.reconcile.clone(), caller.clone());
        let task = tokio::spawn(async move {
            match reconcile.run_cycle(request, &caller).await {
                Ok(CycleOutcome::Fenced(refusal)) => {
                    tracing::warn!(%refusal, "scheduled cycle not started: the reconciler lease moved");
                }
                Ok(CycleOutcome::Paused) => {
                    tracing::debug!("scheduled cycle not started: the schedule was paused")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "scheduled cycle failed"),
            }
        });
        Ok(Some((task, cancel)))
    }
}

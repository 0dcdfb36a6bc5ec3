//! Patch plans and rollouts: plan against the runtime as it is, then apply one plan through
//! the state machine of DESIGN §3 — base-hash check, dry run, write (pre-image kept),
//! verification, rollback — persisting every transition before the next step.
//!
//! Rollouts are accepted by any replica and run by whichever replica holds the runtime lease
//! (`warp/runtime/<address>`): a worker on every replica takes the lease when rollouts wait,
//! runs them oldest first, and releases it. A rollout left unfinished — its replica died or lost
//! the lease — is resumed by the next holder, which can only take the lease once the previous
//! one expired or was released.
//!
//! # Guarantees
//! - Nothing is written unless the runtime config still has the plan's base hash (checked when
//!   the rollout is created and again by the adapter immediately before the write).
//! - One rollout runs at a time per runtime, cluster-wide; every transition is written in a
//!   transaction that checks the runtime lease's fencing token and the rollout row's version,
//!   so a replica that lost the lease writes nothing more and a rollout reaches one final state.
//! - Writes respect OpenClaw's 30 writes a minute, counted across replicas in the store.
//! - A failed verification restores the pre-image, and only if the config is still exactly
//!   what the rollout wrote; otherwise the rollout FAILS with the reason and nothing is touched.
//!
//! # Caveats
//! - On CLI runtimes agents are removed with `openclaw agents delete`, which also moves their
//!   workspace and state to the trash; a rollback restores the config, not those files.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use super::AuditContext;
use super::Ctx;
use super::desired::request_id_reused;
use super::failpoints::{FAIL_VERIFICATION, STOP_AFTER_APPLY};
use super::ownership::{RuntimeGuard, RuntimeOwner};
use super::paging::{finish_page, page_request};
use super::{AppError, ObservationService};
use crate::domain::audit::NewAuditEvent;
use crate::domain::drift::{diff, heal_target};
use crate::domain::idempotency::{IdempotencyKey, Prior};
use crate::domain::patch::{
    PatchPlan, PlanContext, PlanError, PlanKind, matches_planned, plan_apply, plan_repair,
};
use crate::domain::rollout::{Recovery, RecoveryFacts, Rollout, RolloutState, WriteLimiter, recover};
use crate::runtime::{PatchRequest, RuntimeError};
use crate::store::{CreateRolloutOutcome, SaveRollout};

const LIST_SCOPE: &str = "ListRollouts";

/// Plan and rollout use cases.
#[derive(Clone)]
pub struct RolloutService {
    ctx: Ctx,
    observations: ObservationService,
    owner: RuntimeOwner,
    /// Wakes this replica's worker when a rollout was accepted here.
    wake: Arc<Notify>,
}

/// How often the worker looks for rollouts accepted by other replicas or left unfinished.
const WORKER_POLL: Duration = Duration::from_secs(1);
/// How long a manual rollback waits for the runtime lease.
const MANUAL_WAIT: Duration = Duration::from_secs(10);
/// OpenClaw's write-limit window.
const WRITE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// A rollout request after transport decoding.
pub struct CreateRolloutRequest {
    pub plan_id: String,
    pub dry_run: bool,
    pub idempotency: IdempotencyKey,
    pub validate_only: bool,
}

fn precondition(reason: &'static str, subject: &str, description: impl Into<String>) -> AppError {
    AppError::FailedPrecondition { reason, subject: subject.to_owned(), description: description.into() }
}

impl RolloutService {
    /// Creates the service.
    pub fn new(ctx: &Ctx, observations: ObservationService, owner: RuntimeOwner) -> Self {
        Self { ctx: ctx.clone(), observations, owner, wake: Arc::default() }
    }

    /// Who may change the runtime (shared with the other writers of the runtime).
    pub fn owner(&self) -> &RuntimeOwner {
        &self.owner
    }

    /// Plans against the runtime as it is now and stores the plan.
    pub async fn plan(&self, kind: PlanKind) -> Result<(PatchPlan, DateTime<Utc>), AppError> {
        self.plan_toward(kind, None).await
    }

    /// Plans what HEAL may do: only the changes for the drift items in `acting_on` (the
    /// confirmed, non-flapping ones); everything else stays as the runtime has it.
    pub async fn plan_heal(
        &self,
        acting_on: &BTreeSet<String>,
    ) -> Result<(PatchPlan, DateTime<Utc>), AppError> {
        self.plan_toward(PlanKind::Apply, Some(acting_on)).await
    }

    async fn plan_toward(
        &self,
        kind: PlanKind,
        heal_only: Option<&BTreeSet<String>>,
    ) -> Result<(PatchPlan, DateTime<Utc>), AppError> {
        let observed = self.observations.observe(true).await?;
        let config = self.ctx.runtime.read_config().await?;
        if config.hash != observed.observation.inventory.config_hash {
            return Err(precondition(
                "RUNTIME_CHANGING",
                "runtime",
                "the runtime config changed while it was being read; plan again",
            ));
        }
        let ctx = PlanContext {
            raw_config: &config.raw,
            inventory: &observed.observation.inventory,
            shape: self.ctx.runtime.patch_shape(),
        };
        let planned = match kind {
            PlanKind::Apply => {
                let desired = self.ctx.store.latest_desired().await?.ok_or_else(|| {
                    precondition(
                        "NO_DESIRED_TOPOLOGY",
                        "desired-topology",
                        "store a desired topology before planning",
                    )
                })?;
                match heal_only {
                    Some(keys) => {
                        let target = heal_target(&desired.topology, &observed.observation.topology, keys);
                        plan_apply(&ctx, desired.generation, &target)
                    }
                    None => plan_apply(&ctx, desired.generation, &desired.topology),
                }
            }
            PlanKind::Repair => plan_repair(&ctx),
        };
        let plan = planned.map_err(|err| match err {
            PlanError::ConfigInvalid { .. } => precondition("CONFIG_INVALID", "runtime", err.to_string()),
            PlanError::ConfigUnreadable => precondition("CONFIG_UNREADABLE", "runtime", err.to_string()),
            PlanError::Unsupported(_) => precondition("PLAN_UNSUPPORTED", "runtime", err.to_string()),
        })?;
        let now = self.ctx.clock.now();
        self.ctx.store.save_plan(self.ctx.runtime.address(), &plan, now).await?;
        tracing::info!(plan_id = %plan.id, kind = ?plan.kind, operations = plan.operations.len(), "patch plan stored");
        Ok(self.ctx.store.plan(&plan.id).await?.unwrap_or((plan, now)))
    }

    /// Returns a stored plan.
    pub async fn get_plan(&self, id: &str) -> Result<(PatchPlan, DateTime<Utc>), AppError> {
        if id.is_empty() {
            return Err(AppError::invalid("plan_id", "required"));
        }
        self.ctx
            .store
            .plan(id)
            .await?
            .ok_or_else(|| AppError::NotFound { resource: format!("patch plan {id}") })
    }

    /// Accepts a rollout and starts it in the background.
    pub async fn create(
        &self,
        request: CreateRolloutRequest,
        caller: &AuditContext,
    ) -> Result<Rollout, AppError> {
        // A retry gets the first answer even after the rollout changed the config.
        match self.ctx.store.idempotency_prior(&request.idempotency).await? {
            Prior::Replay(id) => return self.get(&id).await,
            Prior::Conflict => return Err(request_id_reused()),
            Prior::Unseen => {}
        }
        let (plan, _) = self.get_plan(&request.plan_id).await?;
        let current = self.ctx.runtime.read_config().await?;
        if current.hash != plan.base_hash {
            return Err(precondition(
                "BASE_HASH_MISMATCH",
                "runtime-config",
                format!(
                    "the runtime config changed since the plan was made (plan base {}, now {}); nothing was written — plan again",
                    plan.base_hash, current.hash
                ),
            ));
        }
        let now = self.ctx.clock.now();
        let mut rollout = Rollout {
            id: rollout_id(now)?,
            runtime: self.ctx.runtime.address().to_owned(),
            plan_id: plan.id.clone(),
            state: RolloutState::Pending,
            dry_run: request.dry_run,
            actor: caller.actor.clone(),
            base_hash: plan.base_hash.clone(),
            target_hash: None,
            pre_image: None,
            error: None,
            steps: Vec::new(),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        rollout.note(format!("accepted plan {} ({} operations)", plan.id, plan.operations.len()), now);
        if request.validate_only {
            rollout.id = String::new();
            return Ok(rollout);
        }
        let audit = caller.event(
            format!("rollout/{}", rollout.id),
            format!(
                "started {}rollout of plan {} ({} operations)",
                if rollout.dry_run { "a dry-run " } else { "a " },
                plan.id,
                plan.operations.len()
            ),
        );
        match self.ctx.store.create_rollout(&rollout, &request.idempotency, &audit).await? {
            CreateRolloutOutcome::Replayed(existing) => Ok(existing),
            CreateRolloutOutcome::RequestIdReused => Err(request_id_reused()),
            CreateRolloutOutcome::Created(created) => {
                tracing::info!(rollout_id = %created.id, plan_id = %plan.id, dry_run = created.dry_run, "rollout accepted");
                self.ctx.snapshot.put_rollout(&created.id, created.version);
                self.ctx.events.publish_rollout(created.clone());
                self.wake.notify_one();
                Ok(rollout)
            }
        }
    }

    /// Waits for a rollout to end; stops waiting (the rollout goes on, persisted and
    /// recoverable) after `max` or when `cancel` fires, returning the rollout as it is then.
    pub async fn wait_until_final(
        &self,
        rollout_id: &str,
        max: std::time::Duration,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<Rollout, AppError> {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let rollout = self.get(rollout_id).await?;
            if rollout.state.is_final() || tokio::time::Instant::now() >= deadline || cancel.is_cancelled() {
                return Ok(rollout);
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                () = cancel.cancelled() => {}
            }
        }
    }

    /// Returns a rollout.
    pub async fn get(&self, id: &str) -> Result<Rollout, AppError> {
        if id.is_empty() {
            return Err(AppError::invalid("rollout_id", "required"));
        }
        self.ctx
            .store
            .rollout(id)
            .await?
            .ok_or_else(|| AppError::NotFound { resource: format!("rollout {id}") })
    }

    /// Lists rollouts newest first.
    pub async fn list(&self, page_size: i32, page_token: &str) -> Result<(Vec<Rollout>, String), AppError> {
        let scope = format!("{LIST_SCOPE}:{}", self.ctx.runtime.address());
        let page = page_request(&self.ctx.page_tokens, &scope, page_size, page_token)?;
        let rows = self
            .ctx
            .store
            .list_rollouts(self.ctx.runtime.address(), page.cursor.as_deref(), page.size + 1)
            .await?;
        Ok(finish_page(&self.ctx.page_tokens, &scope, rows, page.size, |r| r.id.clone()))
    }

    /// Rolls a succeeded rollout back to its pre-image, under the runtime lease.
    pub async fn rollback(
        &self,
        id: &str,
        caller: &AuditContext,
        idempotency: &IdempotencyKey,
        validate_only: bool,
    ) -> Result<Rollout, AppError> {
        match self.ctx.store.idempotency_prior(idempotency).await? {
            Prior::Replay(_) => return self.get(id).await,
            Prior::Conflict => return Err(request_id_reused()),
            Prior::Unseen => {}
        }
        let rollout = self.get(id).await?;
        let target = rollback_target(&rollout)?;
        if validate_only {
            let current = self.ctx.runtime.read_config().await?;
            check_untouched(&current.hash, &target)?;
            return Ok(rollout);
        }
        let guard = self.owner.acquire(MANUAL_WAIT).await?;
        let result = self.roll_back_on_request(id, caller, idempotency, &guard).await;
        guard.release().await;
        result
    }

    async fn roll_back_on_request(
        &self,
        id: &str,
        caller: &AuditContext,
        idempotency: &IdempotencyKey,
        guard: &RuntimeGuard,
    ) -> Result<Rollout, AppError> {
        // Read again under the lease: the rollout may have moved while this call waited.
        let mut rollout = self.get(id).await?;
        let target = rollback_target(&rollout)?;
        let current = self.ctx.runtime.read_config().await?;
        check_untouched(&current.hash, &target)?;
        self.ctx.store.remember_response(idempotency, rollout.id.clone(), self.ctx.clock.now()).await?;
        let reason = format!("manual rollback by {}", caller.actor);
        let audit =
            caller.event(format!("rollout/{}", rollout.id), format!("rolled back rollout {}", rollout.id));
        self.transition_with(&mut rollout, guard, RolloutState::RollingBack, reason, Some(&audit)).await?;
        self.restore_pre_image(&mut rollout, guard).await?;
        Ok(rollout)
    }

    /// Subscribes to rollout changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Rollout> {
        self.ctx.events.rollouts()
    }

    /// Runs this runtime's rollouts whenever this replica can hold the runtime lease: new ones
    /// oldest first, and ones left unfinished by a replica that stopped or lost the lease (only
    /// once that lease expired). Woken by new rollouts on this replica and every second for the
    /// others'. Returns at `stop`, leaving a rollout that had not reached a write resumable.
    pub async fn run_worker(&self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(WORKER_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                _ = tick.tick() => {}
            }
            if let Err(error) = self.work(&stop).await {
                tracing::warn!(%error, "rollout worker: will try again");
            }
        }
    }

    async fn work(&self, stop: &CancellationToken) -> Result<(), AppError> {
        if self.ctx.store.unfinished_rollouts(self.ctx.runtime.address()).await?.is_empty() {
            return Ok(());
        }
        let Some(guard) = self.owner.try_acquire().await? else { return Ok(()) };
        let result = self.work_under(&guard, stop).await;
        guard.release().await;
        result
    }

    async fn work_under(&self, guard: &RuntimeGuard, stop: &CancellationToken) -> Result<(), AppError> {
        loop {
            if stop.is_cancelled() {
                return Ok(());
            }
            guard.ensure_live()?;
            let unfinished = self.ctx.store.unfinished_rollouts(self.ctx.runtime.address()).await?;
            let Some(rollout) = unfinished.into_iter().next() else { return Ok(()) };
            let id = rollout.id.clone();
            let before = (rollout.state, rollout.version);
            if rollout.state == RolloutState::Pending {
                self.execute(rollout, guard, stop).await?;
            } else {
                self.resume(rollout, guard).await?;
            }
            // A rollout that did not move (the step stopped for shutdown) is left for later.
            let after = self.get(&id).await?;
            if (after.state, after.version) == before || !after.state.is_final() {
                return Ok(());
            }
        }
    }

    /// Resolves a rollout another run left unfinished: finished, rolled back, or FAILED with the
    /// reason — never left hanging.
    async fn resume(&self, mut rollout: Rollout, guard: &RuntimeGuard) -> Result<(), AppError> {
        let current = self.ctx.runtime.read_config().await?;
        let matches_plan = match (&rollout.pre_image, self.ctx.store.plan(&rollout.plan_id).await?) {
            (Some(pre), Some((plan, _))) => matches_planned(pre, &plan.merge_patch, &current.raw),
            _ => false,
        };
        let decision = recover(&rollout, &RecoveryFacts { current_hash: &current.hash, matches_plan });
        tracing::info!(rollout_id = %rollout.id, state = rollout.state.as_str(), ?decision, "resolving an interrupted rollout");
        match decision {
            Recovery::Fail(reason) => {
                self.transition(&mut rollout, guard, RolloutState::Failed, reason).await
            }
            Recovery::RolledBack => {
                self.transition(
                    &mut rollout,
                    guard,
                    RolloutState::RolledBack,
                    "the pre-image was already back after a restart or takeover",
                )
                .await
            }
            Recovery::Restore => self.restore_pre_image(&mut rollout, guard).await,
            Recovery::Verify => {
                let plan = self.get_plan(&rollout.plan_id).await?.0;
                if rollout.state == RolloutState::Applying {
                    rollout.target_hash = Some(current.hash.clone());
                    self.transition(
                        &mut rollout,
                        guard,
                        RolloutState::Verifying,
                        "the write was in place after a restart or takeover; verifying",
                    )
                    .await?;
                }
                self.verify_or_roll_back(&mut rollout, &plan, guard).await
            }
        }
    }

    /// Runs a PENDING rollout; an error on the way fails it with the reason (unless the lease
    /// moved, then the new holder resumes it).
    async fn execute(
        &self,
        mut rollout: Rollout,
        guard: &RuntimeGuard,
        stop: &CancellationToken,
    ) -> Result<(), AppError> {
        let (plan, _) = self.get_plan(&rollout.plan_id).await?;
        match self.run(&mut rollout, &plan, guard, stop).await {
            Err(error @ (AppError::Busy { .. } | AppError::Store(_))) => Err(error),
            Err(error) => {
                tracing::error!(rollout_id = %rollout.id, %error, "rollout stopped by an error");
                if !rollout.state.is_final() && rollout.state.can_move_to(RolloutState::Failed) {
                    self.transition(
                        &mut rollout,
                        guard,
                        RolloutState::Failed,
                        format!("stopped by an error: {error}"),
                    )
                    .await?;
                }
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    async fn run(
        &self,
        rollout: &mut Rollout,
        plan: &PatchPlan,
        guard: &RuntimeGuard,
        stop: &CancellationToken,
    ) -> Result<(), AppError> {
        let patch = PatchRequest {
            merge_patch: &plan.merge_patch,
            replace_paths: &plan.replace_paths,
            base_hash: &plan.base_hash,
            remove_agents: &plan.removed_agents,
            create_workspaces: &plan.create_workspaces,
            repair: plan.kind == PlanKind::Repair,
        };
        let current = self.ctx.runtime.read_config().await?;
        if current.hash != plan.base_hash {
            return self
                .transition(
                    rollout,
                    guard,
                    RolloutState::Failed,
                    "the runtime config changed since planning; nothing was written",
                )
                .await;
        }
        let report = self.ctx.runtime.dry_run(&patch).await?;
        if !report.ok {
            let reason = format!("the runtime's dry run refused the patch: {}", report.errors.join("; "));
            return self.transition(rollout, guard, RolloutState::Failed, reason).await;
        }
        self.note(rollout, guard, "dry run accepted").await?;
        if rollout.dry_run {
            return self
                .transition(rollout, guard, RolloutState::Succeeded, "dry run accepted; nothing was written")
                .await;
        }
        if plan.is_empty() {
            return self.transition(rollout, guard, RolloutState::Succeeded, "nothing to change").await;
        }
        if !self.wait_for_write_slot(stop).await? {
            return Ok(());
        }
        rollout.pre_image = Some(current.raw);
        self.transition(rollout, guard, RolloutState::Applying, "writing the change (pre-image kept)")
            .await?;
        guard.ensure_live()?;
        let written = self.ctx.runtime.apply(&patch).await;
        self.record_write().await;
        let target = match written {
            Ok(hash) => hash,
            Err(RuntimeError::BaseHashMismatch { .. }) => {
                return self
                    .transition(
                        rollout,
                        guard,
                        RolloutState::Failed,
                        "the runtime config changed just before the write; nothing was written",
                    )
                    .await;
            }
            Err(error) => {
                let now = self.ctx.runtime.read_config().await?;
                if now.hash == plan.base_hash {
                    return self
                        .transition(
                            rollout,
                            guard,
                            RolloutState::Failed,
                            format!("the write failed ({error}); nothing was written"),
                        )
                        .await;
                }
                rollout.target_hash = Some(now.hash);
                return self.roll_back(rollout, guard, format!("the write failed part-way ({error})")).await;
            }
        };
        rollout.target_hash = Some(target);
        if self.ctx.failpoints.hit(STOP_AFTER_APPLY) {
            // As if the replica died here: nothing more happens until it stops, and the
            // rollout is left APPLYING for whoever holds the lease next.
            tracing::warn!(rollout_id = %rollout.id, "failpoint: stopping right after the write");
            stop.cancelled().await;
            return Ok(());
        }
        self.transition(rollout, guard, RolloutState::Verifying, "written; verifying").await?;
        self.verify_or_roll_back(rollout, plan, guard).await
    }

    async fn verify_or_roll_back(
        &self,
        rollout: &mut Rollout,
        plan: &PatchPlan,
        guard: &RuntimeGuard,
    ) -> Result<(), AppError> {
        match self.verify(plan).await {
            Ok(()) => {
                self.transition(
                    rollout,
                    guard,
                    RolloutState::Succeeded,
                    "verified: the planned items are gone and the config is valid",
                )
                .await
            }
            Err(reason) => self.roll_back(rollout, guard, format!("verification failed: {reason}")).await,
        }
    }

    async fn verify(&self, plan: &PatchPlan) -> Result<(), String> {
        if self.ctx.failpoints.hit(FAIL_VERIFICATION) {
            return Err("failpoint rollout.fail_verification".to_owned());
        }
        let observed =
            self.observations.observe(true).await.map_err(|e| format!("cannot observe the runtime: {e}"))?;
        let inventory = &observed.observation.inventory;
        if !inventory.config_valid {
            let issues: Vec<String> = inventory.config_issues.iter().map(|i| i.path.clone()).collect();
            return Err(format!("the config is invalid after the write ({})", issues.join(", ")));
        }
        let desired = match plan.kind {
            PlanKind::Apply => {
                self.ctx.store.desired_at(plan.desired_generation).await.map_err(|e| e.to_string())?
            }
            PlanKind::Repair => None,
        };
        let present: Vec<String> =
            diff(desired.as_ref().map(|d| &d.topology), &observed.observation.topology, inventory)
                .into_iter()
                .map(|d| d.key)
                .filter(|key| plan.expected_resolved.contains(key))
                .collect();
        if present.is_empty() { Ok(()) } else { Err(format!("still present: {}", present.join(", "))) }
    }

    async fn roll_back(
        &self,
        rollout: &mut Rollout,
        guard: &RuntimeGuard,
        reason: String,
    ) -> Result<(), AppError> {
        self.transition(rollout, guard, RolloutState::RollingBack, reason).await?;
        self.restore_pre_image(rollout, guard).await
    }

    async fn restore_pre_image(&self, rollout: &mut Rollout, guard: &RuntimeGuard) -> Result<(), AppError> {
        let (Some(pre_image), Some(target)) = (rollout.pre_image.clone(), rollout.target_hash.clone()) else {
            return self
                .transition(
                    rollout,
                    guard,
                    RolloutState::Failed,
                    "cannot roll back: no pre-image or target hash recorded",
                )
                .await;
        };
        // A rollback is a write like any other: it waits for a slot (never abandoned for
        // shutdown: the runtime holds the rolled-out change until it happens).
        self.wait_for_write_slot(&CancellationToken::new()).await?;
        guard.ensure_live()?;
        let restored = self.ctx.runtime.restore(&pre_image, &target).await;
        self.record_write().await;
        match restored {
            Ok(_) => {
                self.transition(rollout, guard, RolloutState::RolledBack, "the pre-image is back in place")
                    .await?;
                if let Err(error) = self.observations.observe(true).await {
                    tracing::warn!(%error, "observation after rollback failed");
                }
                Ok(())
            }
            Err(error) => {
                let reason = format!(
                    "rollback failed ({error}); the runtime still holds the rolled-out change or a newer edit"
                );
                self.transition(rollout, guard, RolloutState::Failed, reason).await
            }
        }
    }

    /// Waits until OpenClaw's write limit has room, by the writes every replica recorded for
    /// this runtime; false when `stop` came first (nothing was written).
    async fn wait_for_write_slot(&self, stop: &CancellationToken) -> Result<bool, AppError> {
        loop {
            let now = self.ctx.clock.now();
            let writes = self.ctx.store.recent_writes(self.ctx.runtime.address(), now - WRITE_WINDOW).await?;
            let next = WriteLimiter::from_writes(writes).next_slot(now);
            let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
            if wait.is_zero() {
                return Ok(true);
            }
            tracing::info!(wait_ms = wait.as_millis() as u64, "waiting for OpenClaw's config write limit");
            tokio::select! {
                () = stop.cancelled() => return Ok(false),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Records a config write in the shared write log (a failure only costs accuracy of the
    /// limit, never the write's own outcome).
    async fn record_write(&self) {
        let now = self.ctx.clock.now();
        if let Err(error) =
            self.ctx.store.record_write(self.ctx.runtime.address(), now, now - WRITE_WINDOW).await
        {
            tracing::warn!(%error, "could not record a config write for the write limit");
        }
    }

    /// Persists a state change under the runtime lease, then publishes it.
    async fn transition(
        &self,
        rollout: &mut Rollout,
        guard: &RuntimeGuard,
        next: RolloutState,
        message: impl Into<String>,
    ) -> Result<(), AppError> {
        self.transition_with(rollout, guard, next, message, None).await
    }

    async fn transition_with(
        &self,
        rollout: &mut Rollout,
        guard: &RuntimeGuard,
        next: RolloutState,
        message: impl Into<String>,
        audit: Option<&NewAuditEvent>,
    ) -> Result<(), AppError> {
        let message = message.into();
        let mut changed = rollout.clone();
        changed.advance(next, message.clone(), self.ctx.clock.now()).map_err(|e| {
            AppError::Store(crate::store::StoreError::Corrupt(format!("rollout {}: {e}", rollout.id)))
        })?;
        self.save(&mut changed, guard, audit).await?;
        *rollout = changed;
        tracing::info!(rollout_id = %rollout.id, state = next.as_str(), %message, "rollout state changed");
        if next.is_final() {
            let took = (rollout.updated_at - rollout.created_at).to_std().unwrap_or_default();
            self.ctx.telemetry.rollout_finished(next.as_str(), took);
        }
        Ok(())
    }

    async fn note(&self, rollout: &mut Rollout, guard: &RuntimeGuard, message: &str) -> Result<(), AppError> {
        let mut changed = rollout.clone();
        changed.note(message, self.ctx.clock.now());
        self.save(&mut changed, guard, None).await?;
        *rollout = changed;
        Ok(())
    }

    /// Writes a rollout from the version it was read as, fenced by the runtime lease.
    async fn save(
        &self,
        rollout: &mut Rollout,
        guard: &RuntimeGuard,
        audit: Option<&NewAuditEvent>,
    ) -> Result<(), AppError> {
        match self.ctx.store.save_rollout_fenced(rollout, guard.fence(), audit).await? {
            SaveRollout::Saved => {
                rollout.version += 1;
                self.ctx.snapshot.put_rollout(&rollout.id, rollout.version);
                self.ctx.events.publish_rollout(rollout.clone());
                Ok(())
            }
            SaveRollout::Fenced(refusal) => Err(AppError::Busy {
                reason: "RUNTIME_LEASE_LOST",
                description: format!("rollout {} not written: {refusal}", rollout.id),
                retry_after: Duration::from_secs(1),
            }),
            SaveRollout::Stale => Err(AppError::Busy {
                reason: "ROLLOUT_CHANGED",
                description: format!("rollout {} changed meanwhile; not written", rollout.id),
                retry_after: Duration::from_secs(1),
            }),
        }
    }
}

/// The target hash of a rollout that may be rolled back, or why it may not.
fn rollback_target(rollout: &Rollout) -> Result<String, AppError> {
    let (Some(_), Some(target)) = (&rollout.pre_image, rollout.target_hash.clone()) else {
        let why = if rollout.target_hash.is_some() {
            "the rollout's pre-image was purged after the retention period (--pre-image-retention-days)"
        } else {
            "the rollout wrote nothing, so there is nothing to roll back"
        };
        return Err(precondition("NOT_ROLLBACKABLE", &rollout.id, why));
    };
    if rollout.state != RolloutState::Succeeded {
        return Err(precondition(
            "NOT_ROLLBACKABLE",
            &rollout.id,
            format!("only a SUCCEEDED rollout can be rolled back; this one is {}", rollout.state.as_str()),
        ));
    }
    Ok(target)
}

/// Refuses a rollback over a config someone changed after the rollout.
fn check_untouched(current_hash: &str, target: &str) -> Result<(), AppError> {
    if current_hash == target {
        return Ok(());
    }
    Err(precondition(
        "BASE_HASH_MISMATCH",
        "runtime-config",
        "the runtime config changed after the rollout; rolling back would overwrite that change",
    ))
}

/// Rollout ids sort by creation time: `ro-<ms since epoch, 13 hex>-<8 random hex>`.
fn rollout_id(now: DateTime<Utc>) -> Result<String, AppError> {
    super::ids::time_sorted_id("ro", now, "")
}

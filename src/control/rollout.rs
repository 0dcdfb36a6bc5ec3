//! Patch plans and rollouts: plan against the runtime as it is, then apply one plan through
//! the state machine of DESIGN §3 — base-hash check, dry run, write (pre-image kept),
//! verification, rollback — persisting every transition before the next step, and resolving
//! rollouts a crash left unfinished when the service starts again.
//!
//! # Guarantees
//! - Nothing is written unless the runtime config still has the plan's base hash (checked when
//!   the rollout is created and again by the adapter immediately before the write).
//! - One rollout runs at a time per runtime; writes respect OpenClaw's 30 writes a minute.
//! - A failed verification restores the pre-image, and only if the config is still exactly
//!   what the rollout wrote; otherwise the rollout FAILS with the reason and nothing is touched.
//!
//! # Caveats
//! - On CLI runtimes agents are removed with `openclaw agents delete`, which also moves their
//!   workspace and state to the trash; a rollback restores the config, not those files.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, broadcast};

use super::AuditContext;
use super::Ctx;
use super::desired::request_id_reused;
use super::failpoints::{FAIL_VERIFICATION, STOP_AFTER_APPLY};
use super::paging::{finish_page, page_request};
use super::{AppError, ObservationService};
use crate::domain::drift::diff;
use crate::domain::idempotency::{IdempotencyKey, Prior};
use crate::domain::patch::{
    PatchPlan, PlanContext, PlanError, PlanKind, matches_planned, plan_apply, plan_repair,
};
use crate::domain::rollout::{Recovery, RecoveryFacts, Rollout, RolloutState, WriteLimiter, recover};
use crate::runtime::{PatchRequest, RuntimeError};
use crate::store::CreateRolloutOutcome;

const LIST_SCOPE: &str = "ListRollouts";

/// Plan and rollout use cases.
#[derive(Clone)]
pub struct RolloutService {
    ctx: Ctx,
    observations: ObservationService,
    limiter: Arc<Mutex<WriteLimiter>>,
    one_at_a_time: Arc<Mutex<()>>,
}

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
    pub fn new(ctx: &Ctx, observations: ObservationService) -> Self {
        Self {
            ctx: ctx.clone(),
            observations,
            limiter: Arc::new(Mutex::new(WriteLimiter::default())),
            one_at_a_time: Arc::new(Mutex::new(())),
        }
    }

    /// Plans against the runtime as it is now and stores the plan.
    pub async fn plan(&self, kind: PlanKind) -> Result<(PatchPlan, DateTime<Utc>), AppError> {
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
                plan_apply(&ctx, desired.generation, &desired.topology)
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
                self.ctx.events.publish_rollout(created.clone());
                let service = self.clone();
                let span = tracing::info_span!("rollout", rollout_id = %created.id);
                let task = async move { service.execute(created, plan).await };
                tokio::spawn(tracing::Instrument::instrument(task, span));
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

    /// Rolls a succeeded rollout back to its pre-image.
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
        let _one = self.one_at_a_time.lock().await;
        let mut rollout = self.get(id).await?;
        let (Some(_), Some(target)) = (&rollout.pre_image, rollout.target_hash.clone()) else {
            let why = if rollout.target_hash.is_some() {
                "the rollout's pre-image was purged after the retention period (--pre-image-retention-days)"
            } else {
                "the rollout wrote nothing, so there is nothing to roll back"
            };
            return Err(precondition("NOT_ROLLBACKABLE", id, why));
        };
        if rollout.state != RolloutState::Succeeded {
            return Err(precondition(
                "NOT_ROLLBACKABLE",
                id,
                format!(
                    "only a SUCCEEDED rollout can be rolled back; this one is {}",
                    rollout.state.as_str()
                ),
            ));
        }
        let current = self.ctx.runtime.read_config().await?;
        if current.hash != target {
            return Err(precondition(
                "BASE_HASH_MISMATCH",
                "runtime-config",
                "the runtime config changed after the rollout; rolling back would overwrite that change",
            ));
        }
        if validate_only {
            return Ok(rollout);
        }
        self.ctx.store.remember_response(idempotency, rollout.id.clone(), self.ctx.clock.now()).await?;
        let reason = format!("manual rollback by {}", caller.actor);
        rollout.advance(RolloutState::RollingBack, reason.clone(), self.ctx.clock.now()).map_err(|e| {
            AppError::Store(crate::store::StoreError::Corrupt(format!("rollout {}: {e}", rollout.id)))
        })?;
        let audit =
            caller.event(format!("rollout/{}", rollout.id), format!("rolled back rollout {}", rollout.id));
        self.ctx.store.save_rollout_audited(&rollout, &audit).await?;
        self.ctx.events.publish_rollout(rollout.clone());
        self.restore_pre_image(&mut rollout).await?;
        Ok(rollout)
    }

    /// Subscribes to rollout changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Rollout> {
        self.ctx.events.rollouts()
    }

    /// Resolves rollouts a crash left unfinished: finished, rolled back, or FAILED with the
    /// reason — never left hanging.
    pub async fn recover_unfinished(&self) -> Result<(), AppError> {
        let _one = self.one_at_a_time.lock().await;
        for mut rollout in self.ctx.store.unfinished_rollouts(self.ctx.runtime.address()).await? {
            let current = self.ctx.runtime.read_config().await?;
            let matches_plan = match (&rollout.pre_image, self.ctx.store.plan(&rollout.plan_id).await?) {
                (Some(pre), Some((plan, _))) => matches_planned(pre, &plan.merge_patch, &current.raw),
                _ => false,
            };
            let decision = recover(&rollout, &RecoveryFacts { current_hash: &current.hash, matches_plan });
            tracing::info!(rollout_id = %rollout.id, state = rollout.state.as_str(), ?decision, "resolving an interrupted rollout");
            match decision {
                Recovery::Fail(reason) => self.transition(&mut rollout, RolloutState::Failed, reason).await?,
                Recovery::RolledBack => {
                    self.transition(
                        &mut rollout,
                        RolloutState::RolledBack,
                        "the pre-image was already back after a restart",
                    )
                    .await?;
                }
                Recovery::Restore => {
                    self.restore_pre_image(&mut rollout).await?;
                }
                Recovery::Verify => {
                    let plan = self.get_plan(&rollout.plan_id).await?.0;
                    if rollout.state == RolloutState::Applying {
                        rollout.target_hash = Some(current.hash.clone());
                        self.transition(
                            &mut rollout,
                            RolloutState::Verifying,
                            "the write was in place after a restart; verifying",
                        )
                        .await?;
                    }
                    self.verify_or_roll_back(&mut rollout, &plan).await?;
                }
            }
        }
        Ok(())
    }

    async fn execute(&self, mut rollout: Rollout, plan: PatchPlan) {
        let _one = self.one_at_a_time.lock().await;
        if let Err(error) = self.run(&mut rollout, &plan).await {
            tracing::error!(rollout_id = %rollout.id, %error, "rollout stopped by an error");
            if !rollout.state.is_final() && rollout.state.can_move_to(RolloutState::Failed) {
                let _ = self
                    .transition(&mut rollout, RolloutState::Failed, format!("stopped by an error: {error}"))
                    .await;
            }
        }
    }

    async fn run(&self, rollout: &mut Rollout, plan: &PatchPlan) -> Result<(), AppError> {
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
                    RolloutState::Failed,
                    "the runtime config changed since planning; nothing was written",
                )
                .await;
        }
        let report = self.ctx.runtime.dry_run(&patch).await?;
        if !report.ok {
            let reason = format!("the runtime's dry run refused the patch: {}", report.errors.join("; "));
            return self.transition(rollout, RolloutState::Failed, reason).await;
        }
        self.note(rollout, "dry run accepted").await?;
        if rollout.dry_run {
            return self
                .transition(rollout, RolloutState::Succeeded, "dry run accepted; nothing was written")
                .await;
        }
        if plan.is_empty() {
            return self.transition(rollout, RolloutState::Succeeded, "nothing to change").await;
        }
        self.wait_for_write_slot().await;
        rollout.pre_image = Some(current.raw);
        self.transition(rollout, RolloutState::Applying, "writing the change (pre-image kept)").await?;
        let written = self.ctx.runtime.apply(&patch).await;
        self.limiter.lock().await.record(self.ctx.clock.now());
        let target = match written {
            Ok(hash) => hash,
            Err(RuntimeError::BaseHashMismatch { .. }) => {
                return self
                    .transition(
                        rollout,
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
                            RolloutState::Failed,
                            format!("the write failed ({error}); nothing was written"),
                        )
                        .await;
                }
                rollout.target_hash = Some(now.hash);
                return self.roll_back(rollout, format!("the write failed part-way ({error})")).await;
            }
        };
        rollout.target_hash = Some(target);
        if self.ctx.failpoints.hit(STOP_AFTER_APPLY) {
            tracing::warn!(rollout_id = %rollout.id, "failpoint: stopping right after the write");
            return Ok(());
        }
        self.transition(rollout, RolloutState::Verifying, "written; verifying").await?;
        self.verify_or_roll_back(rollout, plan).await
    }

    async fn verify_or_roll_back(&self, rollout: &mut Rollout, plan: &PatchPlan) -> Result<(), AppError> {
        match self.verify(plan).await {
            Ok(()) => {
                self.transition(
                    rollout,
                    RolloutState::Succeeded,
                    "verified: the planned items are gone and the config is valid",
                )
                .await
            }
            Err(reason) => self.roll_back(rollout, format!("verification failed: {reason}")).await,
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
            diff(desired.as_ref().map(|d| &d.topology), &observed.observation.topology, &inventory.findings)
                .into_iter()
                .map(|d| d.key)
                .filter(|key| plan.expected_resolved.contains(key))
                .collect();
        if present.is_empty() { Ok(()) } else { Err(format!("still present: {}", present.join(", "))) }
    }

    async fn roll_back(&self, rollout: &mut Rollout, reason: String) -> Result<(), AppError> {
        self.transition(rollout, RolloutState::RollingBack, reason).await?;
        self.restore_pre_image(rollout).await
    }

    async fn restore_pre_image(&self, rollout: &mut Rollout) -> Result<(), AppError> {
        let (Some(pre_image), Some(target)) = (rollout.pre_image.clone(), rollout.target_hash.clone()) else {
            return self
                .transition(
                    rollout,
                    RolloutState::Failed,
                    "cannot roll back: no pre-image or target hash recorded",
                )
                .await;
        };
        self.wait_for_write_slot().await;
        let restored = self.ctx.runtime.restore(&pre_image, &target).await;
        self.limiter.lock().await.record(self.ctx.clock.now());
        match restored {
            Ok(_) => {
                self.transition(rollout, RolloutState::RolledBack, "the pre-image is back in place").await?;
                if let Err(error) = self.observations.observe(true).await {
                    tracing::warn!(%error, "observation after rollback failed");
                }
                Ok(())
            }
            Err(error) => {
                let reason = format!(
                    "rollback failed ({error}); the runtime still holds the rolled-out change or a newer edit"
                );
                self.transition(rollout, RolloutState::Failed, reason).await
            }
        }
    }

    async fn wait_for_write_slot(&self) {
        let wait = {
            let mut limiter = self.limiter.lock().await;
            let now = self.ctx.clock.now();
            (limiter.next_slot(now) - now).to_std().unwrap_or(Duration::ZERO)
        };
        if !wait.is_zero() {
            tracing::info!(wait_ms = wait.as_millis() as u64, "waiting for OpenClaw's config write limit");
            tokio::time::sleep(wait).await;
        }
    }

    /// Persists a state change, then publishes it.
    async fn transition(
        &self,
        rollout: &mut Rollout,
        next: RolloutState,
        message: impl Into<String>,
    ) -> Result<(), AppError> {
        let message = message.into();
        rollout.advance(next, message.clone(), self.ctx.clock.now()).map_err(|e| {
            AppError::Store(crate::store::StoreError::Corrupt(format!("rollout {}: {e}", rollout.id)))
        })?;
        self.ctx.store.save_rollout(rollout).await?;
        tracing::info!(rollout_id = %rollout.id, state = next.as_str(), %message, "rollout state changed");
        self.ctx.events.publish_rollout(rollout.clone());
        Ok(())
    }

    async fn note(&self, rollout: &mut Rollout, message: &str) -> Result<(), AppError> {
        rollout.note(message, self.ctx.clock.now());
        self.ctx.store.save_rollout(rollout).await?;
        self.ctx.events.publish_rollout(rollout.clone());
        Ok(())
    }
}

/// Rollout ids sort by creation time: `ro-<ms since epoch, 13 hex>-<8 random hex>`.
fn rollout_id(now: DateTime<Utc>) -> Result<String, AppError> {
    super::ids::time_sorted_id("ro", now, "")
}

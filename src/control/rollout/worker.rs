//! Running rollouts: the worker that takes the runtime lease, resumes and executes rollouts
//! through the state machine, verifies them and rolls failures back.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{RolloutService, WORKER_POLL, WRITE_WINDOW};
use crate::control::AppError;
use crate::control::failpoints::{FAIL_VERIFICATION, STOP_AFTER_APPLY};
use crate::control::ownership::RuntimeGuard;
use crate::domain::audit::NewAuditEvent;
use crate::domain::drift::diff;
use crate::domain::patch::{PatchPlan, PlanKind, write_progress};
use crate::domain::rollout::{Recovery, RecoveryFacts, Rollout, RolloutState, WriteLimiter, recover};
use crate::runtime::{PatchRequest, RuntimeError};
use crate::store::SaveRollout;

impl RolloutService {
    /// Runs this runtime's rollouts whenever this replica can hold the runtime lease: new ones
    /// oldest first, and ones left unfinished by a replica that stopped or lost the lease (only
    /// once that lease expired). Woken by new rollouts on this replica and every second for the
    /// others'. Returns at `stop`, leaving a rollout that had not reached a write resumable.
    pub async fn run_worker(&self, stop: CancellationToken) {
        let mut tick = crate::control::every::ticker(WORKER_POLL);
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
        if self.ctx.store.unfinished_rollouts(self.ctx.runtime_name()).await?.is_empty() {
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
            let unfinished = self.ctx.store.unfinished_rollouts(self.ctx.runtime_name()).await?;
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
        let mut current = self.ctx.runtime.read_config().await?;
        let plan =
            self.ctx.store.plan(self.ctx.runtime_name(), &rollout.plan_id).await?.map(|(plan, _)| plan);
        let progress = match (&rollout.pre_image, &plan) {
            (Some(pre), Some(plan)) => {
                write_progress(pre, &plan.merge_patch, &plan.removed_agents, &current.raw)
            }
            _ => None,
        };
        let facts = RecoveryFacts { current_hash: &current.hash, matches_plan: progress.is_some() };
        let decision = recover(&rollout, &facts);
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
                let pending = progress.map(|p| p.pending_removals).unwrap_or_default();
                if rollout.state == RolloutState::Applying && !pending.is_empty() {
                    // Killed between the patch and the deletions: finish the write.
                    current.hash =
                        self.finish_removals(&mut rollout, &plan, &pending, &current.hash, guard).await?;
                }
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

    /// Runs the deletions an interrupted write left pending (its patch is in place) and
    /// returns the config's new hash.
    async fn finish_removals(
        &self,
        rollout: &mut Rollout,
        plan: &PatchPlan,
        pending: &[String],
        current_hash: &str,
        guard: &RuntimeGuard,
    ) -> Result<String, AppError> {
        self.note(
            rollout,
            guard,
            &format!("the patch was in place; finishing the removal of {}", pending.join(", ")),
        )
        .await?;
        let finish = PatchRequest {
            merge_patch: &serde_json::Value::Object(serde_json::Map::new()),
            replace_paths: &[],
            base_hash: current_hash,
            remove_agents: pending,
            create_workspaces: &plan.create_workspaces,
            repair: false,
        };
        guard.ensure_live()?;
        let written = self.ctx.runtime.apply(&finish).await;
        self.record_write().await;
        Ok(written?)
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
        let on_this_runtime = format!("{FAIL_VERIFICATION}@{}", self.ctx.runtime_name());
        if self.ctx.failpoints.hit(FAIL_VERIFICATION) || self.ctx.failpoints.hit(&on_this_runtime) {
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
            PlanKind::Apply => self
                .ctx
                .store
                .desired_at(self.ctx.runtime_name(), plan.desired_generation)
                .await
                .map_err(|e| e.to_string())?,
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

    pub(super) async fn restore_pre_image(
        &self,
        rollout: &mut Rollout,
        guard: &RuntimeGuard,
    ) -> Result<(), AppError> {
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
            let writes = self.ctx.store.recent_writes(self.ctx.runtime_name(), now - WRITE_WINDOW).await?;
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
            self.ctx.store.record_write(self.ctx.runtime_name(), now, now - WRITE_WINDOW).await
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

    pub(super) async fn transition_with(
        &self,
        rollout: &mut Rollout,
        guard: &RuntimeGuard,
        next: RolloutState,
        message: impl Into<String>,
        audit: Option<&NewAuditEvent>,
    ) -> Result<(), AppError> {
        let message = message.into();
        let mut changed = rollout.clone();
        changed
            .advance(next, message.clone(), self.ctx.clock.now())
            .map_err(|e| AppError::bug(format!("rollout {}: {e}", rollout.id)))?;
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

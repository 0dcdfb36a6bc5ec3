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

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, broadcast};

mod plans;
mod worker;

pub use plans::HealPlan;

use super::AuditContext;
use super::Ctx;
use super::ownership::{RuntimeGuard, RuntimeOwner};
use super::paging::{finish_page, page_request};
use super::{AppError, ObservationService};
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::rollout::{Rollout, RolloutState};
use crate::store::CreateRolloutOutcome;

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

    /// Accepts a rollout and starts it in the background.
    pub async fn create(
        &self,
        request: CreateRolloutRequest,
        caller: &AuditContext,
    ) -> Result<Rollout, AppError> {
        // A retry gets the first answer even after the rollout changed the config.
        if let Some(id) = self.ctx.replayed_id(&request.idempotency).await? {
            return self.get(&id).await;
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
            runtime: self.ctx.runtime_name().to_owned(),
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
        let audit = caller.event_in(
            self.ctx.runtime_name(),
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
            CreateRolloutOutcome::RequestIdReused => Err(AppError::request_id_reused()),
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
            .filter(|rollout| rollout.runtime == self.ctx.runtime_name())
            .ok_or_else(|| AppError::NotFound { resource: format!("rollout {id}") })
    }

    /// Lists rollouts newest first.
    pub async fn list(&self, page_size: i32, page_token: &str) -> Result<(Vec<Rollout>, String), AppError> {
        let scope = format!("{LIST_SCOPE}:{}", self.ctx.runtime_name());
        let page = page_request(&self.ctx.page_tokens, &scope, page_size, page_token)?;
        let rows = self
            .ctx
            .store
            .list_rollouts(self.ctx.runtime_name(), page.cursor.as_deref(), page.size + 1)
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
        if self.ctx.replayed_id(idempotency).await?.is_some() {
            return self.get(id).await;
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
        let audit = caller.event_in(
            self.ctx.runtime_name(),
            format!("rollout/{}", rollout.id),
            format!("rolled back rollout {}", rollout.id),
        );
        self.transition_with(&mut rollout, guard, RolloutState::RollingBack, reason, Some(&audit)).await?;
        self.restore_pre_image(&mut rollout, guard).await?;
        Ok(rollout)
    }

    /// Subscribes to rollout changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Rollout> {
        self.ctx.events.rollouts()
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

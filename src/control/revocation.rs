//! Revocations that act: revoking a grant takes the desired SEND/SPAWN edges only it (and its
//! derived grants) backed out of the desired topology, and when the schedule heals, rolls that
//! revision out.
//!
//! Order and crash behaviour: the revocation is stored first (its own transaction, audited
//! with the cascade's full list), then the new desired revision (etag-guarded against the
//! revision the consequences were computed from), then the rollout. Each step is idempotent
//! under the caller's request id, so a retry after a crash finishes the remaining steps: a
//! retry whose revocation is already stored computes the consequences on the grants as they
//! stood before it (they are revoked by now, so nothing would fall otherwise).

use super::audit::AuditContext;
use super::context::Ctx;
use super::delegations::{DelegationService, DelegationView};
use super::desired::{DesiredTopologyService, PutRequest};
use super::error::AppError;
use super::rollout::{CreateRolloutRequest, RolloutService};
use super::scheduler::ScheduleService;
use crate::domain::delegation::{DelegationState, RevocationEffects, before_revoking, revocation_effects};
use crate::domain::desired::DesiredInput;
use crate::domain::idempotency::{IdempotencyKey, Prior};
use crate::domain::patch::PlanKind;
use crate::domain::reconcile::ReconcileMode;

/// What `PreviewRevocation` shows.
#[derive(Debug, Clone)]
pub struct RevocationPreview {
    pub falling: Vec<DelegationView>,
    pub effects: RevocationEffects,
    pub desired_generation: i64,
    pub rollout_follows: bool,
}

/// What a revocation did.
#[derive(Debug, Clone)]
pub struct RevocationOutcome {
    pub affected: Vec<DelegationView>,
    pub effects: RevocationEffects,
    /// The desired revision stored without the fallen edges (0 when none fell).
    pub desired_generation: i64,
    pub rollout_id: Option<String>,
    pub rollout_note: Option<String>,
}

/// The revocation use case.
#[derive(Clone)]
pub struct RevocationService {
    ctx: Ctx,
    delegations: DelegationService,
    desired: DesiredTopologyService,
    schedules: ScheduleService,
    rollouts: RolloutService,
}

/// The key of a step the revocation takes on the caller's behalf (same request id, own scope).
fn step_key(key: &IdempotencyKey, step: &str) -> IdempotencyKey {
    IdempotencyKey {
        scope: format!("{}/{step}", key.scope),
        request_id: key.request_id.clone(),
        fingerprint: key.fingerprint.clone(),
    }
}

impl RevocationService {
    pub fn new(
        ctx: &Ctx,
        delegations: DelegationService,
        desired: DesiredTopologyService,
        schedules: ScheduleService,
        rollouts: RolloutService,
    ) -> Self {
        Self { ctx: ctx.clone(), delegations, desired, schedules, rollouts }
    }

    /// A retried revocation: the steps the first call took, as it recorded them.
    async fn replayed(
        &self,
        key: &IdempotencyKey,
        outcome: &mut RevocationOutcome,
    ) -> Result<bool, AppError> {
        let Prior::Replay(generation) = self.ctx.store.idempotency_prior(&step_key(key, "desired")).await?
        else {
            return Ok(false);
        };
        let generation: i64 = generation.parse().unwrap_or(0);
        outcome.desired_generation = generation;
        if generation > 1 {
            let (before, after) =
                (self.desired.get(generation - 1).await?, self.desired.get(generation).await?);
            outcome.effects.removed_edges =
                before.topology.edges.iter().filter(|e| !after.topology.edges.contains(e)).cloned().collect();
        }
        if let Prior::Replay(rollout) = self.ctx.store.idempotency_prior(&step_key(key, "rollout")).await? {
            outcome.rollout_id = Some(rollout);
        }
        Ok(true)
    }

    /// What revoking `id` would change now; nothing is written.
    pub async fn preview(&self, id: &str) -> Result<RevocationPreview, AppError> {
        let grants = self.delegations.all().await?;
        if !grants.iter().any(|g| g.id == id) {
            return Err(AppError::NotFound { resource: format!("delegation {id}") });
        }
        let latest = self.desired.latest();
        let effects = revocation_effects(&grants, id, latest.as_ref().map(|d| &d.topology));
        let mut falling = Vec::new();
        for grant_id in &effects.falling {
            falling.push(self.delegations.get(grant_id).await?);
        }
        Ok(RevocationPreview {
            falling,
            desired_generation: latest.map(|d| d.generation).unwrap_or(0),
            rollout_follows: self.schedules.get().await?.mode == ReconcileMode::Heal,
            effects,
        })
    }

    /// Revokes `id` and carries out the consequences.
    pub async fn revoke(
        &self,
        id: &str,
        reason: &str,
        key: &IdempotencyKey,
        validate_only: bool,
        caller: &AuditContext,
    ) -> Result<RevocationOutcome, AppError> {
        // A retry of a call that already stored its revocation (its answer is recorded).
        let retried =
            !validate_only && matches!(self.ctx.store.idempotency_prior(key).await?, Prior::Replay(_));
        let grants = self.delegations.all().await?;
        let latest = self.desired.latest();
        let effects = revocation_effects(&grants, id, latest.as_ref().map(|d| &d.topology));
        let affected =
            self.delegations.revoke(id, reason, &effects.removed_edges, key, validate_only, caller).await?;
        if self.ctx.failpoints.hit(super::failpoints::STOP_AFTER_REVOCATION) {
            return Err(AppError::Internal { detail: "failpoint: stopped after the revocation".to_owned() });
        }
        let mut outcome = RevocationOutcome {
            affected,
            effects,
            desired_generation: 0,
            rollout_id: None,
            rollout_note: None,
        };
        if !validate_only && outcome.effects.falling.is_empty() && self.replayed(key, &mut outcome).await? {
            return Ok(outcome);
        }
        if retried && outcome.effects.falling.is_empty() {
            // The first call stopped between the revocation and its revision: the consequences
            // are those of the grants as they stood before it revoked them.
            let revoked = outcome
                .affected
                .iter()
                .filter(|view| view.grant.state == DelegationState::Revoked)
                .map(|view| view.grant.id.as_str())
                .collect();
            let before = before_revoking(&grants, &revoked);
            outcome.effects = revocation_effects(&before, id, latest.as_ref().map(|d| &d.topology));
        }
        let (Some(new_desired), Some(latest)) = (outcome.effects.new_desired.clone(), latest) else {
            return Ok(outcome);
        };
        let request = PutRequest {
            input: DesiredInput::from(&new_desired),
            etag: latest.etag.clone(),
            idempotency: step_key(key, "desired"),
            validate_only,
        };
        let stored = self.desired.put(request, caller).await?;
        outcome.desired_generation = stored.desired.generation;
        if validate_only {
            return Ok(outcome);
        }
        if self.schedules.get().await?.mode != ReconcileMode::Heal {
            outcome.rollout_note =
                Some("the schedule does not heal: the runtime keeps the edges until a rollout".to_owned());
            return Ok(outcome);
        }
        match self.rollouts.plan(PlanKind::Apply).await {
            Ok((plan, _)) if plan.operations.is_empty() => {
                outcome.rollout_note = Some("the runtime already matches the new revision".to_owned());
            }
            Ok((plan, _)) => {
                let request = CreateRolloutRequest {
                    plan_id: plan.id,
                    dry_run: false,
                    idempotency: step_key(key, "rollout"),
                    validate_only: false,
                };
                let rollout = self.rollouts.create(request, caller).await?;
                outcome.rollout_id = Some(rollout.id);
            }
            // The revocation and the revision stand; the runtime is healed by a later cycle.
            Err(error) => outcome.rollout_note = Some(format!("no rollout: {error}")),
        }
        Ok(outcome)
    }
}

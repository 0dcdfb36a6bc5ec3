//! Planning: a patch plan against the runtime as it is now, stored under its content id.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{RolloutService, precondition};
use crate::control::AppError;
use crate::domain::drift::heal_target;
use crate::domain::patch::{PatchPlan, PlanContext, PlanError, PlanKind, plan_apply, plan_repair};

/// What planning a HEAL found.
pub enum HealPlan {
    /// A plan of the confirmed items (possibly empty).
    Ready(Box<PatchPlan>),
    /// The confirmed items alone cannot be applied yet; why.
    Unsupported(String),
}

impl RolloutService {
    /// Plans against the runtime as it is now and stores the plan.
    pub async fn plan(&self, kind: PlanKind) -> Result<(PatchPlan, DateTime<Utc>), AppError> {
        self.plan_toward(kind, None).await?.map_err(refusal)
    }

    /// Plans what HEAL may do: only the changes for the drift items in `acting_on` (the
    /// confirmed, non-flapping ones); everything else stays as the runtime has it.
    pub async fn plan_heal(&self, acting_on: &BTreeSet<String>) -> Result<HealPlan, AppError> {
        match self.plan_toward(PlanKind::Apply, Some(acting_on)).await? {
            Ok((plan, _)) => Ok(HealPlan::Ready(Box::new(plan))),
            Err(PlanError::Unsupported(why)) => Ok(HealPlan::Unsupported(why)),
            Err(other) => Err(refusal(other)),
        }
    }

    /// Plans and stores the plan; the inner error is the planner's refusal.
    async fn plan_toward(
        &self,
        kind: PlanKind,
        heal_only: Option<&BTreeSet<String>>,
    ) -> Result<Result<(PatchPlan, DateTime<Utc>), PlanError>, AppError> {
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
                let desired =
                    self.ctx.store.latest_desired(self.ctx.runtime_name()).await?.ok_or_else(|| {
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
        let plan = match planned {
            Ok(plan) => plan,
            Err(refused) => return Ok(Err(refused)),
        };
        let now = self.ctx.clock.now();
        self.ctx.store.save_plan(self.ctx.runtime_name(), &plan, now).await?;
        tracing::info!(plan_id = %plan.id, kind = ?plan.kind, operations = plan.operations.len(), "patch plan stored");
        Ok(Ok(self.ctx.store.plan(self.ctx.runtime_name(), &plan.id).await?.unwrap_or((plan, now))))
    }

    /// Returns a stored plan.
    pub async fn get_plan(&self, id: &str) -> Result<(PatchPlan, DateTime<Utc>), AppError> {
        if id.is_empty() {
            return Err(AppError::invalid("plan_id", "required"));
        }
        self.ctx
            .store
            .plan(self.ctx.runtime_name(), id)
            .await?
            .ok_or_else(|| AppError::NotFound { resource: format!("patch plan {id}") })
    }
}

/// The error a caller gets for a plan the planner refused.
fn refusal(err: PlanError) -> AppError {
    let reason = match err {
        PlanError::ConfigInvalid { .. } => "CONFIG_INVALID",
        PlanError::ConfigUnreadable => "CONFIG_UNREADABLE",
        PlanError::Unsupported(_) => "PLAN_UNSUPPORTED",
    };
    precondition(reason, "runtime", err.to_string())
}

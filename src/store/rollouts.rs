//! Patch plans and rollouts. A rollout row is rewritten at each state change, so the stored
//! state is always the last step that completed.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::{patch_plan, rollout};
use super::{Store, StoreError, idempotency};
use crate::domain::audit::NewAuditEvent;
use crate::domain::idempotency::{IdempotencyKey, Prior};
use crate::domain::patch::{PatchPlan, PlanKind};
use crate::domain::rollout::{Rollout, RolloutState};

/// The result of creating a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRolloutOutcome {
    Created(Rollout),
    Replayed(Rollout),
    RequestIdReused,
}

fn rollout_of(row: &rollout::Model) -> Result<Rollout, StoreError> {
    serde_json::from_str(&row.rollout_json)
        .map_err(|e| StoreError::Corrupt(format!("rollout {}: {e}", row.id)))
}

fn rollout_row(value: &Rollout) -> Result<rollout::ActiveModel, StoreError> {
    Ok(rollout::ActiveModel {
        id: Set(value.id.clone()),
        runtime: Set(value.runtime.clone()),
        plan_id: Set(value.plan_id.clone()),
        state: Set(value.state.as_str().to_owned()),
        created_at: Set(value.created_at),
        updated_at: Set(value.updated_at),
        rollout_json: Set(serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?),
    })
}

impl Store {
    /// Stores a plan (planning the same input again stores nothing new).
    pub async fn save_plan(
        &self,
        runtime: &str,
        plan: &PatchPlan,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let row = patch_plan::ActiveModel {
            id: Set(plan.id.clone()),
            runtime: Set(runtime.to_owned()),
            kind: Set(match plan.kind {
                PlanKind::Apply => "APPLY".to_owned(),
                PlanKind::Repair => "REPAIR".to_owned(),
            }),
            base_hash: Set(plan.base_hash.clone()),
            created_at: Set(now),
            plan_json: Set(serde_json::to_string(plan).map_err(|e| StoreError::Corrupt(e.to_string()))?),
        };
        patch_plan::Entity::insert(row)
            .on_conflict(OnConflict::column(patch_plan::Column::Id).do_nothing().to_owned())
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Returns a plan with the time it was first stored.
    pub async fn plan(&self, id: &str) -> Result<Option<(PatchPlan, DateTime<Utc>)>, StoreError> {
        let row = patch_plan::Entity::find_by_id(id.to_owned()).one(&self.db).await?;
        row.map(|row| {
            let plan = serde_json::from_str(&row.plan_json)
                .map_err(|e| StoreError::Corrupt(format!("plan {}: {e}", row.id)))?;
            Ok((plan, row.created_at))
        })
        .transpose()
    }

    /// Stores a new rollout, idempotently by request id.
    pub async fn create_rollout(
        &self,
        value: &Rollout,
        key: &IdempotencyKey,
        audit: &NewAuditEvent,
    ) -> Result<CreateRolloutOutcome, StoreError> {
        let txn = self.begin_write().await?;
        match idempotency::prior(&txn, key).await? {
            Prior::Conflict => return Ok(CreateRolloutOutcome::RequestIdReused),
            Prior::Replay(id) => {
                let row = rollout::Entity::find_by_id(id.clone()).one(&txn).await?;
                let row = row.ok_or_else(|| StoreError::Corrupt(format!("rollout {id} vanished")))?;
                return Ok(CreateRolloutOutcome::Replayed(rollout_of(&row)?));
            }
            Prior::Unseen => {}
        }
        rollout_row(value)?.insert(&txn).await?;
        idempotency::remember(&txn, key, value.id.clone(), value.created_at).await?;
        super::audit::append(self, &txn, audit).await?;
        txn.commit().await?;
        Ok(CreateRolloutOutcome::Created(value.clone()))
    }

    /// Persists a rollout's new state.
    pub async fn save_rollout(&self, value: &Rollout) -> Result<(), StoreError> {
        rollout_row(value)?.update(&self.db).await?;
        Ok(())
    }

    /// Persists a rollout's new state together with the audit event of the call that caused it.
    pub async fn save_rollout_audited(
        &self,
        value: &Rollout,
        audit: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        rollout_row(value)?.update(&txn).await?;
        super::audit::append(self, &txn, audit).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Returns a rollout.
    pub async fn rollout(&self, id: &str) -> Result<Option<Rollout>, StoreError> {
        let row = rollout::Entity::find_by_id(id.to_owned()).one(&self.db).await?;
        row.as_ref().map(rollout_of).transpose()
    }

    /// Lists a runtime's rollouts newest first (ids sort by creation), below `before`.
    pub async fn list_rollouts(
        &self,
        runtime: &str,
        before: Option<&str>,
        limit: u64,
    ) -> Result<Vec<Rollout>, StoreError> {
        let mut query = rollout::Entity::find().filter(rollout::Column::Runtime.eq(runtime));
        if let Some(before) = before {
            query = query.filter(rollout::Column::Id.lt(before));
        }
        let rows = query.order_by_desc(rollout::Column::Id).limit(limit).all(&self.db).await?;
        rows.iter().map(rollout_of).collect()
    }

    /// Returns a runtime's rollouts that are not in a final state.
    pub async fn unfinished_rollouts(&self, runtime: &str) -> Result<Vec<Rollout>, StoreError> {
        let open = [
            RolloutState::Pending,
            RolloutState::Applying,
            RolloutState::Verifying,
            RolloutState::RollingBack,
        ];
        let rows = rollout::Entity::find()
            .filter(rollout::Column::Runtime.eq(runtime))
            .filter(rollout::Column::State.is_in(open.map(|s| s.as_str())))
            .order_by_asc(rollout::Column::Id)
            .all(&self.db)
            .await?;
        rows.iter().map(rollout_of).collect()
    }

    /// Drops the pre-image (the whole config, channel tokens included) of every rollout that
    /// ended before `cutoff`; returns how many were purged. A purged rollout can no longer be
    /// rolled back.
    pub async fn purge_pre_images(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let finished = [RolloutState::Succeeded, RolloutState::Failed, RolloutState::RolledBack]
            .map(|state| state.as_str().to_owned());
        let rows = rollout::Entity::find()
            .filter(rollout::Column::State.is_in(finished))
            .filter(rollout::Column::UpdatedAt.lt(cutoff))
            .filter(rollout::Column::RolloutJson.contains("\"pre_image\":\""))
            .all(&self.db)
            .await?;
        let mut purged = 0;
        for row in rows {
            let mut value = rollout_of(&row)?;
            if value.pre_image.take().is_some() {
                rollout_row(&value)?.update(&self.db).await?;
                purged += 1;
            }
        }
        Ok(purged)
    }
}

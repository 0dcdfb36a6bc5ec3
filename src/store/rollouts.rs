//! Patch plans and rollouts. A rollout row is rewritten at each state change, so the stored
//! state is always the last step that completed.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::Fence;
use super::entities::{patch_plan, rollout, runtime_state};
use super::{Store, StoreError, idempotency};
use crate::domain::audit::NewAuditEvent;
use crate::domain::idempotency::{IdempotencyKey, Prior};
use crate::domain::lease::LeaseError;
use crate::domain::patch::{PatchPlan, PlanKind};
use crate::domain::rollout::{Rollout, RolloutState};

/// The result of a fenced rollout write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveRollout {
    /// Written; the stored version is the value's version plus one.
    Saved,
    /// The runtime lease moved: nothing was written.
    Fenced(LeaseError),
    /// The stored row is not the version the value was read as (another writer changed it):
    /// nothing was written.
    Stale,
}

/// The result of creating a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRolloutOutcome {
    Created(Rollout),
    Replayed(Rollout),
    RequestIdReused,
}

pub(super) fn rollout_of(row: &rollout::Model) -> Result<Rollout, StoreError> {
    let mut value: Rollout = serde_json::from_str(&row.rollout_json)
        .map_err(|e| StoreError::Corrupt(format!("rollout {}: {e}", row.id)))?;
    value.version = row.version;
    // The column is the rollout's runtime (the migration to fleets renamed it there).
    value.runtime.clone_from(&row.runtime);
    Ok(value)
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
        version: Set(value.version),
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

    /// The runtime a plan belongs to.
    pub async fn plan_runtime(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(patch_plan::Entity::find_by_id(id.to_owned())
            .select_only()
            .column(patch_plan::Column::Runtime)
            .into_tuple()
            .one(&self.db)
            .await?)
    }

    /// Returns a plan of `runtime` with the time it was first stored.
    pub async fn plan(
        &self,
        runtime: &str,
        id: &str,
    ) -> Result<Option<(PatchPlan, DateTime<Utc>)>, StoreError> {
        let row = patch_plan::Entity::find_by_id(id.to_owned())
            .filter(patch_plan::Column::Runtime.eq(runtime))
            .one(&self.db)
            .await?;
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
        super::changes::notify(&txn, super::Topic::Rollout, Some(&value.runtime)).await?;
        txn.commit().await?;
        Ok(CreateRolloutOutcome::Created(value.clone()))
    }

    /// Persists a rollout's new state under the runtime lease `fence`, from the version it was
    /// read as (with the audit event of the call that caused it, if any). The lease row is held
    /// and the version compared in the transaction of the write, so a replica that lost the
    /// lease, or a value another writer has moved on from, writes nothing.
    pub async fn save_rollout_fenced(
        &self,
        value: &Rollout,
        fence: &Fence,
        audit: Option<&NewAuditEvent>,
    ) -> Result<SaveRollout, StoreError> {
        use sea_orm::sea_query::Expr;
        let txn = self.begin_write().await?;
        if let Err(refusal) = self.check_fence_in(&txn, fence).await? {
            txn.rollback().await?;
            return Ok(SaveRollout::Fenced(refusal));
        }
        let json = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let stored_state: Option<String> = rollout::Entity::find_by_id(value.id.clone())
            .select_only()
            .column(rollout::Column::State)
            .into_tuple()
            .one(&txn)
            .await?;
        let written = rollout::Entity::update_many()
            .col_expr(rollout::Column::State, Expr::value(value.state.as_str()))
            .col_expr(rollout::Column::UpdatedAt, Expr::value(value.updated_at))
            .col_expr(rollout::Column::RolloutJson, Expr::value(json))
            .col_expr(rollout::Column::Version, Expr::col(rollout::Column::Version).add(1))
            .filter(rollout::Column::Id.eq(&value.id))
            .filter(rollout::Column::Version.eq(value.version))
            .exec(&txn)
            .await?;
        if written.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(SaveRollout::Stale);
        }
        if let Some(event) = audit {
            super::audit::append(self, &txn, event).await?;
        }
        super::changes::notify(&txn, super::Topic::Rollout, Some(&value.runtime)).await?;
        if value.state.is_final() && stored_state.as_deref() != Some(value.state.as_str()) {
            super::outbound::enqueue(self, &txn, &[crate::domain::outbound::rollout_finished(value)]).await?;
        }
        txn.commit().await?;
        Ok(SaveRollout::Saved)
    }

    /// Returns a runtime's rollouts changed at or after `since` (oldest change first).
    pub async fn rollouts_changed_since(
        &self,
        runtime: &str,
        since: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Rollout>, StoreError> {
        let rows = rollout::Entity::find()
            .filter(rollout::Column::Runtime.eq(runtime))
            .filter(rollout::Column::UpdatedAt.gte(since))
            .order_by_asc(rollout::Column::UpdatedAt)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.iter().map(rollout_of).collect()
    }

    /// Returns the config writes of `runtime` recorded at or after `since`.
    pub async fn recent_writes(
        &self,
        runtime: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let row = runtime_state::Entity::find_by_id(runtime.to_owned()).one(&self.db).await?;
        let writes: Vec<DateTime<Utc>> = match row {
            Some(row) => serde_json::from_str(&row.recent_writes)
                .map_err(|e| StoreError::Corrupt(format!("recent writes of {runtime}: {e}")))?,
            None => Vec::new(),
        };
        Ok(writes.into_iter().filter(|at| *at >= since).collect())
    }

    /// Records a config write of `runtime` at `at`, forgetting writes before `forget_before`.
    /// Called under the runtime lease, so writers never interleave.
    pub async fn record_write(
        &self,
        runtime: &str,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut writes = self.recent_writes(runtime, forget_before).await?;
        writes.push(at);
        let json = serde_json::to_string(&writes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row = runtime_state::ActiveModel {
            runtime: Set(runtime.to_owned()),
            tracker_version: Set(0),
            tracker_fed_at: Set(None),
            recent_writes: Set(json),
        };
        runtime_state::Entity::insert(row)
            .on_conflict(
                OnConflict::column(runtime_state::Column::Runtime)
                    .update_column(runtime_state::Column::RecentWrites)
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
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
    /// The `limit` most recent rollouts of every runtime.
    pub async fn recent_rollouts_any(&self, limit: u64) -> Result<Vec<Rollout>, StoreError> {
        let rows =
            rollout::Entity::find().order_by_desc(rollout::Column::Id).limit(limit).all(&self.db).await?;
        rows.iter().map(rollout_of).collect()
    }

    /// Every runtime's unfinished rollouts, oldest first.
    pub async fn unfinished_rollouts_any(&self) -> Result<Vec<Rollout>, StoreError> {
        let open = [
            RolloutState::Pending,
            RolloutState::Applying,
            RolloutState::Verifying,
            RolloutState::RollingBack,
        ];
        let rows = rollout::Entity::find()
            .filter(rollout::Column::State.is_in(open.map(|s| s.as_str())))
            .order_by_asc(rollout::Column::Id)
            .all(&self.db)
            .await?;
        rows.iter().map(rollout_of).collect()
    }

    /// A runtime's unfinished rollouts, oldest first.
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
                // Versioned like every rollout write: a rollback that read the pre-image first
                // wins, and this purge waits for the next sweep.
                let json = serde_json::to_string(&value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let written = rollout::Entity::update_many()
                    .col_expr(rollout::Column::RolloutJson, sea_orm::sea_query::Expr::value(json))
                    .col_expr(
                        rollout::Column::Version,
                        sea_orm::sea_query::Expr::col(rollout::Column::Version).add(1),
                    )
                    .filter(rollout::Column::Id.eq(&value.id))
                    .filter(rollout::Column::Version.eq(value.version))
                    .exec(&self.db)
                    .await?;
                purged += written.rows_affected;
            }
        }
        Ok(purged)
    }
}

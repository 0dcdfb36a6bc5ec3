//! Fleet rollouts: one row each, the whole record as JSON, written with optimistic
//! concurrency (a row version) so the driver and a pause, resume or cancel never overwrite each
//! other; the driver's writes are also fenced by its lease.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::fleet_rollout;
use super::{CreateOutcome, Fence, Store, StoreError, decode_json, encode_json, idempotency};
use crate::domain::audit::NewAuditEvent;
use crate::domain::fleet::rollout::{FleetRollout, FleetRolloutState};
use crate::domain::idempotency::{IdempotencyKey, Prior};
use crate::domain::lease::LeaseError;

/// What saving a fleet rollout did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveFleetRollout {
    Saved,
    /// Another writer changed it since it was read: read it again.
    Stale,
    /// The driver's lease no longer holds.
    Fenced(LeaseError),
}

fn of(row: &fleet_rollout::Model) -> Result<FleetRollout, StoreError> {
    let mut rollout: FleetRollout = decode_json(&row.body, &format!("fleet rollout {}", row.id))?;
    rollout.version = row.version;
    Ok(rollout)
}

impl Store {
    /// Stores a new fleet rollout, idempotently by `key`.
    pub async fn create_fleet_rollout(
        &self,
        value: &FleetRollout,
        key: &IdempotencyKey,
        audit: &NewAuditEvent,
    ) -> Result<CreateOutcome<FleetRollout>, StoreError> {
        let txn = self.begin_write().await?;
        match idempotency::prior(&txn, key).await? {
            Prior::Conflict => return Ok(CreateOutcome::RequestIdReused),
            Prior::Replay(id) => {
                let row = fleet_rollout::Entity::find_by_id(id.clone()).one(&txn).await?;
                let row = row.ok_or_else(|| StoreError::Corrupt(format!("fleet rollout {id} vanished")))?;
                return Ok(CreateOutcome::Replayed(of(&row)?));
            }
            Prior::Unseen => {}
        }
        let row = fleet_rollout::ActiveModel {
            id: Set(value.id.clone()),
            state: Set(value.state.as_str().to_owned()),
            body: Set(encode_json(value, "fleet rollout")?),
            version: Set(0),
            created_at: Set(value.created_at),
            updated_at: Set(value.updated_at),
        };
        row.insert(&txn).await?;
        idempotency::remember(&txn, key, value.id.clone(), value.created_at).await?;
        super::audit::append(self, &txn, audit).await?;
        super::changes::notify(&txn, super::Topic::FleetRollout, None).await?;
        txn.commit().await?;
        Ok(CreateOutcome::Created(value.clone()))
    }

    pub async fn fleet_rollout(&self, id: &str) -> Result<Option<FleetRollout>, StoreError> {
        fleet_rollout::Entity::find_by_id(id.to_owned()).one(&self.db).await?.as_ref().map(of).transpose()
    }

    /// Fleet rollouts newest first (ids sort by creation), below `before` when given.
    pub async fn list_fleet_rollouts(
        &self,
        before: Option<&str>,
        limit: u64,
    ) -> Result<Vec<FleetRollout>, StoreError> {
        let mut query = fleet_rollout::Entity::find();
        if let Some(before) = before {
            query = query.filter(fleet_rollout::Column::Id.lt(before));
        }
        let rows = query.order_by_desc(fleet_rollout::Column::Id).limit(limit).all(&self.db).await?;
        rows.iter().map(of).collect()
    }

    /// Fleet rollouts not yet in a final state, oldest first.
    pub async fn unfinished_fleet_rollouts(&self) -> Result<Vec<FleetRollout>, StoreError> {
        let finals = [FleetRolloutState::Succeeded, FleetRolloutState::Failed, FleetRolloutState::Cancelled]
            .map(|s| s.as_str());
        let rows = fleet_rollout::Entity::find()
            .filter(fleet_rollout::Column::State.is_not_in(finals))
            .order_by_asc(fleet_rollout::Column::Id)
            .all(&self.db)
            .await?;
        rows.iter().map(of).collect()
    }

    /// Saves `value` if it is still at the version it was read as (and, for the driver, while
    /// `fence` holds), with the audit event of the call that caused it, if any.
    pub async fn save_fleet_rollout(
        &self,
        value: &FleetRollout,
        fence: Option<&Fence>,
        audit: Option<&NewAuditEvent>,
    ) -> Result<SaveFleetRollout, StoreError> {
        let txn = self.begin_write().await?;
        if let Some(fence) = fence
            && let Err(refusal) = self.check_fence_in(&txn, fence).await?
        {
            txn.rollback().await?;
            return Ok(SaveFleetRollout::Fenced(refusal));
        }
        let stored_state: Option<String> = fleet_rollout::Entity::find_by_id(value.id.clone())
            .select_only()
            .column(fleet_rollout::Column::State)
            .into_tuple()
            .one(&txn)
            .await?;
        let written = fleet_rollout::Entity::update_many()
            .col_expr(fleet_rollout::Column::State, Expr::value(value.state.as_str()))
            .col_expr(fleet_rollout::Column::Body, Expr::value(encode_json(value, "fleet rollout")?))
            .col_expr(fleet_rollout::Column::UpdatedAt, Expr::value(value.updated_at))
            .col_expr(fleet_rollout::Column::Version, Expr::col(fleet_rollout::Column::Version).add(1))
            .filter(fleet_rollout::Column::Id.eq(&value.id))
            .filter(fleet_rollout::Column::Version.eq(value.version))
            .exec(&txn)
            .await?;
        if written.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(SaveFleetRollout::Stale);
        }
        if let Some(event) = audit {
            super::audit::append(self, &txn, event).await?;
        }
        super::changes::notify(&txn, super::Topic::FleetRollout, None).await?;
        if value.state.is_final() && stored_state.as_deref() != Some(value.state.as_str()) {
            super::outbound::enqueue(self, &txn, &[crate::domain::outbound::fleet_rollout_finished(value)])
                .await?;
        }
        txn.commit().await?;
        Ok(SaveFleetRollout::Saved)
    }
}

//! Observation history: each read of the runtime is recorded; a read identical to the latest
//! one (same inventory, hence same config hash and revision) only advances that row's
//! `last_seen_at` and `seen_count`, so the history holds changes, not ticks. The history is
//! bounded per runtime: the oldest rows beyond the limit are pruned in the same transaction.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::drift::{DriftChanges, save_changes};
use super::entities::observation;
use super::{Store, StoreError, Topic};
use crate::domain::audit::NewAuditEvent;
use crate::domain::observation::{ObservationRecord, StoredObservation};
use crate::domain::{Inventory, Topology};

/// An observation to record.
pub struct NewObservation<'a> {
    pub runtime: &'a str,
    pub inventory: &'a Inventory,
    pub topology: &'a Topology,
    pub observed_at: DateTime<Utc>,
}

impl Store {
    /// Records an observation, folding it into the latest row when identical, prunes the
    /// runtime's history to `history_limit` rows (at least 1), and writes the drift tracker's
    /// changes — all in one transaction. Returns the record and whether it is a new row.
    pub async fn record_observation(
        &self,
        new: NewObservation<'_>,
        history_limit: u64,
        drift: &DriftChanges<'_>,
        audit: Option<&NewAuditEvent>,
    ) -> Result<(ObservationRecord, bool), StoreError> {
        let inventory_json =
            serde_json::to_string(new.inventory).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let topology_json =
            serde_json::to_string(new.topology).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let txn = self.begin_write().await?;
        let latest = observation::Entity::find()
            .filter(observation::Column::Runtime.eq(new.runtime))
            .order_by_desc(observation::Column::Id)
            .one(&txn)
            .await?;
        let mut inserted = false;
        let row = match latest {
            Some(latest)
                if latest.inventory_json == inventory_json && latest.topology_json == topology_json =>
            {
                let seen_count = latest.seen_count + 1;
                let mut active = latest.into_active_model();
                active.last_seen_at = Set(new.observed_at);
                active.seen_count = Set(seen_count);
                active.update(&txn).await?
            }
            _ => {
                inserted = true;
                observation::ActiveModel {
                    runtime: Set(new.runtime.to_owned()),
                    observed_at: Set(new.observed_at),
                    last_seen_at: Set(new.observed_at),
                    seen_count: Set(1),
                    config_hash: Set(new.inventory.config_hash.clone()),
                    revision: Set(new.topology.revision.clone()),
                    config_valid: Set(new.inventory.config_valid),
                    finding_count: Set(i32::try_from(new.inventory.findings.len()).unwrap_or(i32::MAX)),
                    inventory_json: Set(inventory_json),
                    topology_json: Set(topology_json),
                    ..Default::default()
                }
                .insert(&txn)
                .await?
            }
        };
        let keep_from: Option<i64> = observation::Entity::find()
            .select_only()
            .column(observation::Column::Id)
            .filter(observation::Column::Runtime.eq(new.runtime))
            .order_by_desc(observation::Column::Id)
            .offset(history_limit.max(1) - 1)
            .limit(1)
            .into_tuple()
            .one(&txn)
            .await?;
        if let Some(oldest_kept) = keep_from {
            observation::Entity::delete_many()
                .filter(observation::Column::Runtime.eq(new.runtime))
                .filter(observation::Column::Id.lt(oldest_kept))
                .exec(&txn)
                .await?;
        }
        save_changes(&txn, new.runtime, drift, new.observed_at).await?;
        if let Some(event) = audit {
            super::audit::append(self, &txn, event).await?;
        }
        super::changes::notify(&txn, Topic::Observation).await?;
        txn.commit().await?;
        Ok((record_of(&row), inserted))
    }

    /// Returns the latest observation of a runtime with its inventory and topology.
    pub async fn latest_observation(&self, runtime: &str) -> Result<Option<StoredObservation>, StoreError> {
        let row = observation::Entity::find()
            .filter(observation::Column::Runtime.eq(runtime))
            .order_by_desc(observation::Column::Id)
            .one(&self.db)
            .await?;
        row.map(|row| {
            let inventory = serde_json::from_str(&row.inventory_json)
                .map_err(|e| StoreError::Corrupt(format!("observation {} inventory: {e}", row.id)))?;
            let topology = serde_json::from_str(&row.topology_json)
                .map_err(|e| StoreError::Corrupt(format!("observation {} topology: {e}", row.id)))?;
            Ok(StoredObservation { record: record_of(&row), inventory, topology })
        })
        .transpose()
    }

    /// Returns the version of the latest observation (id and sightings) without its payload.
    pub async fn latest_observation_version(&self, runtime: &str) -> Result<Option<(i64, i64)>, StoreError> {
        Ok(observation::Entity::find()
            .select_only()
            .column(observation::Column::Id)
            .column(observation::Column::SeenCount)
            .filter(observation::Column::Runtime.eq(runtime))
            .order_by_desc(observation::Column::Id)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await?)
    }

    /// Lists a runtime's observations newest first, starting below `before_id` when given.
    pub async fn list_observations(
        &self,
        runtime: &str,
        before_id: Option<i64>,
        limit: u64,
    ) -> Result<Vec<ObservationRecord>, StoreError> {
        let mut query = observation::Entity::find().filter(observation::Column::Runtime.eq(runtime));
        if let Some(before_id) = before_id {
            query = query.filter(observation::Column::Id.lt(before_id));
        }
        let rows = query.order_by_desc(observation::Column::Id).limit(limit).all(&self.db).await?;
        Ok(rows.iter().map(record_of).collect())
    }
}

fn record_of(row: &observation::Model) -> ObservationRecord {
    ObservationRecord {
        id: row.id,
        runtime: row.runtime.clone(),
        observed_at: row.observed_at,
        last_seen_at: row.last_seen_at,
        seen_count: row.seen_count,
        config_hash: row.config_hash.clone(),
        revision: row.revision.clone(),
        config_valid: row.config_valid,
        finding_count: row.finding_count,
    }
}

//! Observation history: each read of the runtime is recorded; a read identical to the latest
//! one (same inventory, hence same config hash and revision) only advances that row's
//! `last_seen_at` and `seen_count`, so the history holds changes, not ticks. The history is
//! bounded per runtime: the oldest rows beyond the limit are pruned in the same transaction.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};

use std::collections::BTreeMap;

use chrono::TimeDelta;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};

use super::drift::{DriftChanges, save_changes};
use super::entities::{observation, runtime_state};
use super::{Store, StoreError, Topic};
use crate::domain::audit::NewAuditEvent;
use crate::domain::drift::tracker::{ObserveOutcome, TrackedItem};
use crate::domain::observation::{ObservationRecord, StoredObservation};
use crate::domain::{Inventory, Topology};

/// An observation to record.
pub struct NewObservation<'a> {
    pub runtime: &'a str,
    pub inventory: &'a Inventory,
    pub topology: &'a Topology,
    pub observed_at: DateTime<Utc>,
}

/// The tracker's items by key.
pub type TrackedItems = BTreeMap<String, TrackedItem>;

/// Applies one observation to the stored items (the pure tracker, run inside the transaction).
pub type ApplyObservation<'a> = Box<dyn FnOnce(&mut TrackedItems) -> ObserveOutcome + Send + 'a>;

/// How an observation feeds the drift tracker: inside its own transaction, against the items
/// as stored (read under the runtime's coordination row lock, so replicas never lose each
/// other's updates).
pub struct TrackerFeed<'a> {
    /// Feed only when the previous feed is at least this old (`None`: always feed).
    pub min_gap: Option<TimeDelta>,
    /// Applies the observation to the stored items.
    pub apply: ApplyObservation<'a>,
}

/// What recording an observation did.
pub struct Recorded {
    pub record: ObservationRecord,
    /// True when the observation is a new history row (not a repeat of the latest).
    pub inserted: bool,
    /// The tracker's items after the feed and the feed's outcome; `None` when the observation
    /// did not feed the tracker (a read within the minimum gap).
    pub fed: Option<(BTreeMap<String, TrackedItem>, ObserveOutcome)>,
}

impl Store {
    /// Records an observation, folding it into the latest row when identical, prunes the
    /// runtime's history to `history_limit` rows (at least 1), and feeds the drift tracker —
    /// all in one transaction.
    pub async fn record_observation(
        &self,
        new: NewObservation<'_>,
        history_limit: u64,
        feed: TrackerFeed<'_>,
        audit: Option<&NewAuditEvent>,
    ) -> Result<Recorded, StoreError> {
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
            .offset(Ord::max(history_limit, 1) - 1)
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
        let fed = self.feed_tracker(&txn, new.runtime, new.observed_at, feed).await?;
        if let Some(event) = audit {
            super::audit::append(self, &txn, event).await?;
        }
        super::changes::notify(&txn, Topic::Observation, Some(new.runtime)).await?;
        txn.commit().await?;
        Ok(Recorded { record: record_of(&row), inserted, fed })
    }

    /// Feeds the tracker inside `txn`: locks the runtime's coordination row, decides by the
    /// stored time of the last feed, and writes the changed items.
    async fn feed_tracker(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        runtime: &str,
        now: DateTime<Utc>,
        feed: TrackerFeed<'_>,
    ) -> Result<Option<(BTreeMap<String, TrackedItem>, ObserveOutcome)>, StoreError> {
        runtime_state::Entity::insert(runtime_state::ActiveModel {
            runtime: Set(runtime.to_owned()),
            tracker_version: Set(0),
            tracker_fed_at: Set(None),
            recent_writes: Set("[]".to_owned()),
        })
        .on_conflict(OnConflict::column(runtime_state::Column::Runtime).do_nothing().to_owned())
        .exec_without_returning(txn)
        .await?;
        let state = runtime_state::Entity::find_by_id(runtime.to_owned())
            .lock_exclusive()
            .one(txn)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("runtime state of {runtime} vanished")))?;
        let due = match (feed.min_gap, state.tracker_fed_at) {
            (Some(gap), Some(last)) => now - last >= gap,
            _ => true,
        };
        if !due {
            return Ok(None);
        }
        let mut items = super::drift::items_in(txn, runtime).await?;
        let outcome = (feed.apply)(&mut items);
        let changes = DriftChanges {
            upserts: outcome.changed.iter().filter_map(|key| items.get(key)).collect(),
            deletions: outcome.forgotten.iter().cloned().collect(),
        };
        save_changes(txn, runtime, &changes, now).await?;
        runtime_state::Entity::update_many()
            .col_expr(runtime_state::Column::TrackerFedAt, Expr::value(Some(now)))
            .col_expr(
                runtime_state::Column::TrackerVersion,
                Expr::col(runtime_state::Column::TrackerVersion).add(1),
            )
            .filter(runtime_state::Column::Runtime.eq(runtime))
            .exec(txn)
            .await?;
        let events: Vec<_> = outcome
            .transitions
            .iter()
            .filter_map(|transition| {
                let item = items.get(&transition.key)?;
                crate::domain::outbound::drift_transition(runtime, item, transition.from)
            })
            .collect();
        super::outbound::enqueue(self, txn, &events).await?;
        Ok(Some((items, outcome)))
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

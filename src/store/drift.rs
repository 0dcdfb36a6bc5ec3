//! Tracked drift items per runtime. Each item is stored whole (JSON) with its state beside
//! it; the set is small (resolved items are forgotten), so listing filters in memory.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::entities::drift_item;
use super::{Store, StoreError, idempotency};
use crate::domain::audit::NewAuditEvent;
use crate::domain::drift::tracker::{TrackedItem, acknowledge};
use crate::domain::idempotency::{IdempotencyKey, Prior};

/// Item changes of one observation.
#[derive(Debug, Default)]
pub struct DriftChanges<'a> {
    pub upserts: Vec<&'a TrackedItem>,
    pub deletions: Vec<String>,
}

/// The result of acknowledging an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcknowledgeOutcome {
    Acknowledged(TrackedItem),
    Replayed(TrackedItem),
    NotFound,
    RequestIdReused,
}

fn item_of(row: &drift_item::Model) -> Result<TrackedItem, StoreError> {
    serde_json::from_str(&row.item_json)
        .map_err(|e| StoreError::Corrupt(format!("drift item {}: {e}", row.item_key)))
}

/// Writes item changes inside the caller's transaction.
pub(super) async fn save_changes<C: ConnectionTrait>(
    conn: &C,
    runtime: &str,
    changes: &DriftChanges<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for item in &changes.upserts {
        upsert(conn, runtime, item, now).await?;
    }
    if !changes.deletions.is_empty() {
        drift_item::Entity::delete_many()
            .filter(drift_item::Column::Runtime.eq(runtime))
            .filter(drift_item::Column::ItemKey.is_in(changes.deletions.clone()))
            .exec(conn)
            .await?;
    }
    Ok(())
}

async fn upsert<C: ConnectionTrait>(
    conn: &C,
    runtime: &str,
    item: &TrackedItem,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let item_json = serde_json::to_string(item).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let row = drift_item::ActiveModel {
        runtime: Set(runtime.to_owned()),
        item_key: Set(item.key().to_owned()),
        state: Set(item.state.as_str().to_owned()),
        item_json: Set(item_json),
        updated_at: Set(now),
    };
    drift_item::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([drift_item::Column::Runtime, drift_item::Column::ItemKey])
                .update_columns([
                    drift_item::Column::State,
                    drift_item::Column::ItemJson,
                    drift_item::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Returns every tracked item of a runtime, by key, through `conn` (a transaction or the pool).
pub(super) async fn items_in<C: ConnectionTrait>(
    conn: &C,
    runtime: &str,
) -> Result<BTreeMap<String, TrackedItem>, StoreError> {
    let rows = drift_item::Entity::find().filter(drift_item::Column::Runtime.eq(runtime)).all(conn).await?;
    rows.iter().map(|row| item_of(row).map(|item| (row.item_key.clone(), item))).collect()
}

impl Store {
    /// Returns every tracked item of a runtime, by key.
    pub async fn drift_items(&self, runtime: &str) -> Result<BTreeMap<String, TrackedItem>, StoreError> {
        items_in(&self.db, runtime).await
    }

    /// Returns a cheap version of a runtime's items: their count and newest change.
    pub async fn drift_version(&self, runtime: &str) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        let version: Option<(i64, Option<DateTime<Utc>>)> = drift_item::Entity::find()
            .select_only()
            .column_as(drift_item::Column::ItemKey.count(), "count")
            .column_as(drift_item::Column::UpdatedAt.max(), "newest")
            .filter(drift_item::Column::Runtime.eq(runtime))
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(version.unwrap_or((0, None)))
    }

    /// Returns one tracked item.
    pub async fn drift_item(&self, runtime: &str, key: &str) -> Result<Option<TrackedItem>, StoreError> {
        let row = drift_item::Entity::find_by_id((runtime.to_owned(), key.to_owned())).one(&self.db).await?;
        row.as_ref().map(item_of).transpose()
    }

    /// Acknowledges an item by `by`, idempotently by request id.
    pub async fn acknowledge_drift_item(
        &self,
        runtime: &str,
        item_key: &str,
        by: &str,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
        audit: &NewAuditEvent,
    ) -> Result<AcknowledgeOutcome, StoreError> {
        let txn = self.begin_write().await?;
        let prior = idempotency::prior(&txn, key).await?;
        if prior == Prior::Conflict {
            return Ok(AcknowledgeOutcome::RequestIdReused);
        }
        let row = drift_item::Entity::find_by_id((runtime.to_owned(), item_key.to_owned())).one(&txn).await?;
        let Some(row) = row else { return Ok(AcknowledgeOutcome::NotFound) };
        let mut item = item_of(&row)?;
        if let Prior::Replay(_) = prior {
            return Ok(AcknowledgeOutcome::Replayed(item));
        }
        if acknowledge(&mut item, by) {
            upsert(&txn, runtime, &item, now).await?;
        }
        idempotency::remember(&txn, key, item.key().to_owned(), now).await?;
        super::audit::append(self, &txn, audit).await?;
        super::changes::notify(&txn, super::Topic::Drift, Some(runtime)).await?;
        txn.commit().await?;
        Ok(AcknowledgeOutcome::Acknowledged(item))
    }
}

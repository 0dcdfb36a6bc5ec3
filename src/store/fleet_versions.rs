//! The versions of every runtime's hot state, read in a handful of queries for the whole
//! fleet: what the replicas' periodic re-check compares their snapshots against (one query
//! per part, not one per part and runtime).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement};

use super::entities::{drift_item, reconcile_schedule, rollout, scheduler_run};
use super::rollouts::rollout_of;
use super::{Store, StoreError};
use crate::domain::rollout::Rollout;
use crate::domain::schedule::SCHEDULED_PREFIX;

/// Every runtime's stored versions, by runtime name (a runtime without a part is absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredVersions {
    /// The newest observation's (id, seen count).
    pub observation: BTreeMap<String, (i64, i64)>,
    pub desired: BTreeMap<String, i64>,
    /// (tracked items, newest change) of the drift tracker.
    pub drift: BTreeMap<String, (i64, Option<DateTime<Utc>>)>,
    pub schedule: BTreeMap<String, i64>,
    /// When the newest scheduled cycle started.
    pub last_scheduled_start: BTreeMap<String, DateTime<Utc>>,
}

impl Store {
    /// Reads [`StoredVersions`].
    pub async fn fleet_versions(&self) -> Result<StoredVersions, StoreError> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT o.runtime AS runtime, o.id AS id, o.seen_count AS seen_count FROM observations o \
                 JOIN (SELECT runtime, MAX(id) AS id FROM observations GROUP BY runtime) m ON o.id = m.id",
            ))
            .await?;
        let mut observation = BTreeMap::new();
        for row in rows {
            let runtime: String = row.try_get("", "runtime")?;
            observation.insert(runtime, (row.try_get("", "id")?, row.try_get("", "seen_count")?));
        }
        let drift: Vec<(String, i64, Option<DateTime<Utc>>)> = drift_item::Entity::find()
            .select_only()
            .column(drift_item::Column::Runtime)
            .column_as(drift_item::Column::ItemKey.count(), "count")
            .column_as(drift_item::Column::UpdatedAt.max(), "newest")
            .group_by(drift_item::Column::Runtime)
            .into_tuple()
            .all(&self.db)
            .await?;
        let schedule: Vec<(String, i64)> = reconcile_schedule::Entity::find()
            .select_only()
            .column(reconcile_schedule::Column::Runtime)
            .column(reconcile_schedule::Column::Generation)
            .into_tuple()
            .all(&self.db)
            .await?;
        let starts: Vec<(String, Option<DateTime<Utc>>)> = scheduler_run::Entity::find()
            .select_only()
            .column(scheduler_run::Column::Runtime)
            .column_as(scheduler_run::Column::StartedAt.max(), "started_at")
            .filter(scheduler_run::Column::CycleId.starts_with(SCHEDULED_PREFIX))
            .group_by(scheduler_run::Column::Runtime)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(StoredVersions {
            observation,
            desired: self.latest_desired_generations().await?,
            drift: drift.into_iter().map(|(runtime, count, newest)| (runtime, (count, newest))).collect(),
            schedule: schedule.into_iter().collect(),
            last_scheduled_start: starts.into_iter().filter_map(|(r, at)| Some((r, at?))).collect(),
        })
    }

    /// Every runtime's rollouts changed at or after `since` (oldest change first).
    pub async fn rollouts_changed_since_any(
        &self,
        since: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Rollout>, StoreError> {
        let rows = rollout::Entity::find()
            .filter(rollout::Column::UpdatedAt.gte(since))
            .order_by_asc(rollout::Column::UpdatedAt)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.iter().map(rollout_of).collect()
    }
}

//! Watchdog observations per runtime.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::entities::watchdog_observation;
use super::{Store, StoreError};
use crate::domain::audit::NewAuditEvent;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::watchdog::WatchdogObservation;

/// A stored observation's JSON, read back.
fn decode(row: &watchdog_observation::Model) -> Result<WatchdogObservation, StoreError> {
    serde_json::from_str(&row.observation_json)
        .map_err(|e| StoreError::Corrupt(format!("watchdog observation {}: {e}", row.observation_key)))
}

impl Store {
    /// Returns a runtime's tracked watchdog observations by key.
    pub async fn watchdog_observations(
        &self,
        runtime: &str,
    ) -> Result<BTreeMap<String, WatchdogObservation>, StoreError> {
        let rows = watchdog_observation::Entity::find()
            .filter(watchdog_observation::Column::Runtime.eq(runtime))
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                let value = decode(&row)?;
                Ok((row.observation_key, value))
            })
            .collect()
    }

    /// Every runtime's open watchdog observations.
    pub async fn open_watchdog_all(&self) -> Result<Vec<(String, WatchdogObservation)>, StoreError> {
        let rows = watchdog_observation::Entity::find()
            .filter(watchdog_observation::Column::Open.eq(true))
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                let value = decode(&row)?;
                Ok((row.runtime, value))
            })
            .collect()
    }

    /// The runtimes with an open watchdog observation whose key starts with `prefix` (e.g.
    /// `runtime_unreachable/`), with that observation's message, for the whole fleet at once.
    pub async fn open_watchdog_by_prefix(
        &self,
        prefix: &str,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let rows = watchdog_observation::Entity::find()
            .filter(watchdog_observation::Column::Open.eq(true))
            .filter(watchdog_observation::Column::ObservationKey.starts_with(prefix))
            .all(&self.db)
            .await?;
        let mut out = BTreeMap::new();
        for row in rows {
            let value = decode(&row)?;
            out.insert(row.runtime, value.finding.message);
        }
        Ok(out)
    }

    /// Writes changed observations; when a caller caused the change, with its audit event and
    /// its answer under its idempotency key.
    pub async fn save_watchdog_observations(
        &self,
        runtime: &str,
        observations: &[&WatchdogObservation],
        now: DateTime<Utc>,
        caused_by: Option<(&NewAuditEvent, &IdempotencyKey, &WatchdogObservation)>,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        let mut raised = Vec::new();
        for observation in observations {
            if observation.cleared_at.is_none() {
                let was_open: Option<bool> = watchdog_observation::Entity::find_by_id((
                    runtime.to_owned(),
                    observation.finding.key.clone(),
                ))
                .select_only()
                .column(watchdog_observation::Column::Open)
                .into_tuple()
                .one(&txn)
                .await?;
                if was_open != Some(true) {
                    raised.push(crate::domain::outbound::watchdog_raised(runtime, observation));
                }
            }
            let row = watchdog_observation::ActiveModel {
                runtime: Set(runtime.to_owned()),
                observation_key: Set(observation.finding.key.clone()),
                open: Set(observation.cleared_at.is_none()),
                updated_at: Set(now),
                observation_json: Set(
                    serde_json::to_string(observation).map_err(|e| StoreError::Corrupt(e.to_string()))?
                ),
            };
            watchdog_observation::Entity::insert(row)
                .on_conflict(
                    OnConflict::columns([
                        watchdog_observation::Column::Runtime,
                        watchdog_observation::Column::ObservationKey,
                    ])
                    .update_columns([
                        watchdog_observation::Column::Open,
                        watchdog_observation::Column::UpdatedAt,
                        watchdog_observation::Column::ObservationJson,
                    ])
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        if let Some((event, key, answer)) = caused_by {
            let answer =
                serde_json::to_string(answer).map_err(|e| StoreError::Corrupt(format!("an answer: {e}")))?;
            super::idempotency::remember(&txn, key, answer, now).await?;
            super::audit::append(self, &txn, event).await?;
        }
        super::outbound::enqueue(self, &txn, &raised).await?;
        txn.commit().await?;
        Ok(())
    }
}

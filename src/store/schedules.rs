//! The reconcile schedule: read with the configured defaults as fallback, updated under an
//! etag (the generation) with its idempotency record and audit event in one transaction.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, QuerySelect};

use super::entities::{lease, reconcile_schedule};
use super::{Store, StoreError, idempotency};
use crate::domain::audit::NewAuditEvent;
use crate::domain::idempotency::{IdempotencyKey, Prior};
use crate::domain::schedule::{Schedule, reconciler_lease};

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateScheduleOutcome {
    Stored(Schedule),
    /// The request id was used before with this payload: the schedule it produced.
    Replayed(Schedule),
    RequestIdReused,
    EtagMismatch {
        current: String,
    },
}

/// One schedule update.
pub struct ScheduleChange<'a> {
    pub expected_etag: &'a str,
    pub next: Schedule,
    pub key: &'a IdempotencyKey,
    pub now: DateTime<Utc>,
    pub audit: &'a NewAuditEvent,
}

pub(super) fn schedule_of(row: &reconcile_schedule::Model) -> Result<Schedule, StoreError> {
    serde_json::from_str(&row.schedule_json)
        .map_err(|e| StoreError::Corrupt(format!("reconcile schedule of {}: {e}", row.runtime)))
}

fn json(schedule: &Schedule) -> Result<String, StoreError> {
    serde_json::to_string(schedule).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    /// Returns the stored schedule of a runtime, `None` while the defaults apply.
    pub async fn schedule(&self, runtime: &str) -> Result<Option<Schedule>, StoreError> {
        let row = reconcile_schedule::Entity::find_by_id(runtime.to_owned()).one(&self.db).await?;
        row.as_ref().map(schedule_of).transpose()
    }

    /// Replaces the schedule if `change.expected_etag` is the current one (`"0"` while
    /// `defaults` apply).
    pub async fn update_schedule(
        &self,
        runtime: &str,
        defaults: &Schedule,
        change: ScheduleChange<'_>,
    ) -> Result<UpdateScheduleOutcome, StoreError> {
        let ScheduleChange { expected_etag, next, key, now, audit } = change;
        let txn = self.begin_write().await?;
        match idempotency::prior(&txn, key).await? {
            Prior::Unseen => {}
            Prior::Conflict => return Ok(UpdateScheduleOutcome::RequestIdReused),
            Prior::Replay(response) => {
                let schedule = serde_json::from_str(&response)
                    .map_err(|e| StoreError::Corrupt(format!("idempotency response: {e}")))?;
                return Ok(UpdateScheduleOutcome::Replayed(schedule));
            }
        }
        // Holding the reconciler lease row orders this update against every scheduled cycle
        // start (which holds it too): a start either committed before, or reads the new schedule.
        lease::Entity::find_by_id(reconciler_lease(runtime)).lock_exclusive().one(&txn).await?;
        let row =
            reconcile_schedule::Entity::find_by_id(runtime.to_owned()).lock_exclusive().one(&txn).await?;
        let current = match &row {
            Some(row) => schedule_of(row)?,
            None => defaults.clone(),
        };
        if current.etag() != expected_etag {
            return Ok(UpdateScheduleOutcome::EtagMismatch { current: current.etag() });
        }
        let stored = Schedule { generation: current.generation + 1, updated_at: Some(now), ..next };
        let model = reconcile_schedule::ActiveModel {
            runtime: Set(runtime.to_owned()),
            generation: Set(stored.generation),
            schedule_json: Set(json(&stored)?),
            updated_at: Set(now),
        };
        let written = if row.is_some() { model.update(&txn).await } else { model.insert(&txn).await };
        if let Err(error) = written {
            // A concurrent update may have won: then this caller's etag is stale. Otherwise the
            // write failed for another reason, which must not pass for a conflict.
            let _ = txn.rollback().await;
            let current = self.schedule(runtime).await?.map(|s| s.etag()).unwrap_or_else(|| "0".into());
            if current != expected_etag {
                return Ok(UpdateScheduleOutcome::EtagMismatch { current });
            }
            return Err(error.into());
        }
        idempotency::remember(&txn, key, json(&stored)?, now).await?;
        super::audit::append(self, &txn, audit).await?;
        super::changes::notify(&txn, super::Topic::Schedule, Some(runtime)).await?;
        txn.commit().await?;
        Ok(UpdateScheduleOutcome::Stored(stored))
    }
}

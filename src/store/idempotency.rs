//! Idempotency records, read and written inside the caller's transaction.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait};

use super::StoreError;
use super::entities::idempotency_record;
use crate::domain::idempotency::{IdempotencyKey, Prior, classify};

/// Returns what the table knows about `key`.
pub(super) async fn prior<C: ConnectionTrait>(conn: &C, key: &IdempotencyKey) -> Result<Prior, StoreError> {
    let stored =
        idempotency_record::Entity::find_by_id((key.scope.clone(), key.request_id.clone())).one(conn).await?;
    Ok(classify(stored.map(|row| (row.fingerprint, row.response_json)), key))
}

/// Stores the first response of `key`.
pub(super) async fn remember<C: ConnectionTrait>(
    conn: &C,
    key: &IdempotencyKey,
    response_json: String,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    idempotency_record::ActiveModel {
        scope: Set(key.scope.clone()),
        request_id: Set(key.request_id.clone()),
        fingerprint: Set(key.fingerprint.clone()),
        response_json: Set(response_json),
        created_at: Set(now),
    }
    .insert(conn)
    .await?;
    Ok(())
}

impl super::Store {
    /// Returns what is known about a request id (outside any transaction).
    pub async fn idempotency_prior(&self, key: &IdempotencyKey) -> Result<Prior, StoreError> {
        prior(&self.db, key).await
    }

    /// Stores the first response of a request id; a concurrent duplicate loses quietly
    /// (the caller's effect is idempotent and the first stored response wins).
    pub async fn remember_response(
        &self,
        key: &IdempotencyKey,
        response_json: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match remember(&self.db, key, response_json, now).await {
            Ok(()) => Ok(()),
            Err(_) if matches!(prior(&self.db, key).await?, Prior::Replay(_) | Prior::Conflict) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

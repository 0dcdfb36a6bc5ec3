//! Idempotency records. A mutating call first *claims* its request id (a row without a
//! response), so duplicates arriving while it runs — on this replica or another — see it in
//! progress and wait for its answer instead of running again; the call's own transaction then
//! completes the row with the response, atomically with the effect.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::StoreError;
use super::entities::idempotency_record;
use crate::domain::idempotency::{IdempotencyKey, Prior, classify};

/// What claiming a request id found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The id is this call's now: run it, then complete (or abandon) the claim.
    Fresh,
    /// A call with this id and payload finished: its stored response.
    Replay(String),
    /// The id was used with another payload.
    Conflict,
    /// A call with this id and payload is still running.
    InProgress,
}

fn id_of(key: &IdempotencyKey) -> (String, String) {
    (key.scope.clone(), key.request_id.clone())
}

/// Returns what the table knows about `key`, inside the caller's transaction. A claim in
/// progress with the same payload is the caller's own (every mutation claims before it runs),
/// so it reads as unseen.
pub(super) async fn prior<C: ConnectionTrait>(conn: &C, key: &IdempotencyKey) -> Result<Prior, StoreError> {
    let stored = idempotency_record::Entity::find_by_id(id_of(key)).one(conn).await?;
    Ok(match stored {
        Some(row) if !row.completed && row.fingerprint == key.fingerprint => Prior::Unseen,
        stored => classify(stored.map(|row| (row.fingerprint, row.response_json)), key),
    })
}

/// Stores the response of `key`, completing its claim (or creating the record when the call
/// was not claimed), inside the caller's transaction.
pub(super) async fn remember<C: ConnectionTrait>(
    conn: &C,
    key: &IdempotencyKey,
    response_json: String,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let row = idempotency_record::ActiveModel {
        scope: Set(key.scope.clone()),
        request_id: Set(key.request_id.clone()),
        fingerprint: Set(key.fingerprint.clone()),
        response_json: Set(response_json),
        created_at: Set(now),
        completed: Set(true),
    };
    idempotency_record::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([idempotency_record::Column::Scope, idempotency_record::Column::RequestId])
                .update_columns([
                    idempotency_record::Column::ResponseJson,
                    idempotency_record::Column::Completed,
                    idempotency_record::Column::CreatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

impl super::Store {
    /// Returns what is known about a request id (outside any transaction).
    pub async fn idempotency_prior(&self, key: &IdempotencyKey) -> Result<Prior, StoreError> {
        prior(&self.db, key).await
    }

    /// Claims a request id for the call about to run. A claim older than `stale_after` that
    /// never completed belongs to a call that died (its replica crashed): it is taken over.
    pub async fn claim(
        &self,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
        stale_after: TimeDelta,
    ) -> Result<Claim, StoreError> {
        // Two rounds: a row deleted (abandoned) between the insert and the read is retried once.
        for _ in 0..2 {
            let row = idempotency_record::ActiveModel {
                scope: Set(key.scope.clone()),
                request_id: Set(key.request_id.clone()),
                fingerprint: Set(key.fingerprint.clone()),
                response_json: Set(String::new()),
                created_at: Set(now),
                completed: Set(false),
            };
            let inserted = idempotency_record::Entity::insert(row)
                .on_conflict(
                    OnConflict::columns([
                        idempotency_record::Column::Scope,
                        idempotency_record::Column::RequestId,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&self.db)
                .await?;
            if inserted == 1 {
                return Ok(Claim::Fresh);
            }
            let Some(existing) = idempotency_record::Entity::find_by_id(id_of(key)).one(&self.db).await?
            else {
                continue;
            };
            if existing.fingerprint != key.fingerprint {
                return Ok(Claim::Conflict);
            }
            if existing.completed {
                return Ok(Claim::Replay(existing.response_json));
            }
            if now - existing.created_at < stale_after {
                return Ok(Claim::InProgress);
            }
            let taken = idempotency_record::Entity::update_many()
                .col_expr(idempotency_record::Column::CreatedAt, sea_orm::sea_query::Expr::value(now))
                .filter(idempotency_record::Column::Scope.eq(&key.scope))
                .filter(idempotency_record::Column::RequestId.eq(&key.request_id))
                .filter(idempotency_record::Column::Completed.eq(false))
                .filter(idempotency_record::Column::CreatedAt.eq(existing.created_at))
                .exec(&self.db)
                .await?;
            return Ok(if taken.rows_affected == 1 { Claim::Fresh } else { Claim::InProgress });
        }
        Ok(Claim::InProgress)
    }

    /// Gives a claim up (the call failed before its effect): a retry may run again.
    pub async fn abandon_claim(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        idempotency_record::Entity::delete_many()
            .filter(idempotency_record::Column::Scope.eq(&key.scope))
            .filter(idempotency_record::Column::RequestId.eq(&key.request_id))
            .filter(idempotency_record::Column::Completed.eq(false))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Returns the first answer to `key`, decoded (a stored answer that does not decode is
    /// corruption, reported here, not by the use case).
    pub async fn prior_answer<T: serde::de::DeserializeOwned>(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Prior<T>, StoreError> {
        Ok(match self.idempotency_prior(key).await? {
            Prior::Replay(json) => Prior::Replay(serde_json::from_str(&json).map_err(|e| {
                StoreError::Corrupt(format!(
                    "the stored answer of request {} ({}): {e}",
                    key.request_id, key.scope
                ))
            })?),
            Prior::Conflict => Prior::Conflict,
            Prior::Unseen => Prior::Unseen,
        })
    }

    /// Stores `answer` (as JSON) for a call whose effect was not transactional with it.
    pub async fn remember_answer<T: serde::Serialize>(
        &self,
        key: &IdempotencyKey,
        answer: &T,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(answer).map_err(|e| StoreError::Corrupt(format!("an answer: {e}")))?;
        self.remember_response(key, json, now).await
    }

    /// Stores the response of a call whose effect was not transactional with it (completing
    /// its claim).
    pub async fn remember_response(
        &self,
        key: &IdempotencyKey,
        response_json: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        remember(&self.db, key, response_json, now).await
    }

    /// Deletes records created before `cutoff` (a retry after that runs as a new call);
    /// returns how many.
    pub async fn prune_idempotency(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let deleted = idempotency_record::Entity::delete_many()
            .filter(idempotency_record::Column::CreatedAt.lt(cutoff))
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }
}

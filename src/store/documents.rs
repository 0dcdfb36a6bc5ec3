//! Versioned JSON documents: several written in one transaction under optimistic concurrency
//! (expected generations), with the request's idempotency record and audit event.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::document;
use super::{Store, StoreError, idempotency};
use crate::domain::audit::NewAuditEvent;
use crate::domain::idempotency::{IdempotencyKey, Prior};

/// One document to write.
#[derive(Debug, Clone)]
pub struct DocWrite {
    pub kind: &'static str,
    pub id: String,
    /// `None`: the document must not exist yet; `Some(g)`: its generation must be `g`.
    pub expected_generation: Option<i64>,
    pub state: String,
    pub body: String,
}

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub seq: i64,
    pub generation: i64,
    pub body: String,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocOutcome {
    /// Written; the new generation of each document, in order.
    Stored(Vec<i64>),
    /// The request id was used before with this payload: the response stored then.
    Replayed(String),
    RequestIdReused,
    /// A document exists although it should not, or has another generation.
    Conflict {
        kind: &'static str,
        id: String,
        current: Option<i64>,
    },
}

fn doc_of(row: document::Model) -> Doc {
    Doc { seq: row.seq, generation: row.generation, body: row.body }
}

impl Store {
    /// Writes documents atomically. `response` builds the idempotency response from the new
    /// generations (stored with the key, returned on a replay).
    pub async fn write_documents(
        &self,
        writes: &[DocWrite],
        key: &IdempotencyKey,
        response: impl FnOnce(&[i64]) -> String,
        now: DateTime<Utc>,
        audit: &NewAuditEvent,
    ) -> Result<DocOutcome, StoreError> {
        let txn = self.begin_write().await?;
        match idempotency::prior(&txn, key).await? {
            Prior::Unseen => {}
            Prior::Conflict => return Ok(DocOutcome::RequestIdReused),
            Prior::Replay(stored) => return Ok(DocOutcome::Replayed(stored)),
        }
        let mut generations = Vec::new();
        for write in writes {
            let current = document::Entity::find()
                .filter(document::Column::Kind.eq(write.kind))
                .filter(document::Column::Id.eq(write.id.clone()))
                .lock_exclusive()
                .one(&txn)
                .await?;
            let conflict = || DocOutcome::Conflict { kind: write.kind, id: write.id.clone(), current: None };
            match (current, write.expected_generation) {
                (None, None) => {
                    let inserted = document::ActiveModel {
                        kind: Set(write.kind.to_owned()),
                        id: Set(write.id.clone()),
                        generation: Set(1),
                        state: Set(write.state.clone()),
                        body: Set(write.body.clone()),
                        updated_at: Set(now),
                        ..Default::default()
                    }
                    .insert(&txn)
                    .await;
                    if let Err(error) = inserted {
                        // A concurrent create may have won the unique (kind, id); any other
                        // failure is reported as what it is.
                        let _ = txn.rollback().await;
                        return match self.document(write.kind, &write.id).await? {
                            Some(_) => Ok(conflict()),
                            None => Err(error.into()),
                        };
                    }
                    generations.push(1);
                }
                (Some(row), Some(expected)) if row.generation == expected => {
                    let next = row.generation + 1;
                    let mut model: document::ActiveModel = row.into();
                    model.generation = Set(next);
                    model.state = Set(write.state.clone());
                    model.body = Set(write.body.clone());
                    model.updated_at = Set(now);
                    model.update(&txn).await?;
                    generations.push(next);
                }
                (row, _) => {
                    let _ = txn.rollback().await;
                    return Ok(DocOutcome::Conflict {
                        kind: write.kind,
                        id: write.id.clone(),
                        current: row.map(|r| r.generation),
                    });
                }
            }
        }
        idempotency::remember(&txn, key, response(&generations), now).await?;
        super::audit::append(self, &txn, audit).await?;
        txn.commit().await?;
        Ok(DocOutcome::Stored(generations))
    }

    /// Returns a document.
    pub async fn document(&self, kind: &str, id: &str) -> Result<Option<Doc>, StoreError> {
        let row = document::Entity::find()
            .filter(document::Column::Kind.eq(kind))
            .filter(document::Column::Id.eq(id))
            .one(&self.db)
            .await?;
        Ok(row.map(doc_of))
    }

    /// Lists documents of a kind in creation order after `after_seq`, optionally by state.
    pub async fn list_documents(
        &self,
        kind: &str,
        state: Option<&str>,
        after_seq: Option<i64>,
        limit: u64,
    ) -> Result<Vec<Doc>, StoreError> {
        let mut query = document::Entity::find().filter(document::Column::Kind.eq(kind));
        if let Some(state) = state {
            query = query.filter(document::Column::State.eq(state));
        }
        if let Some(after) = after_seq {
            query = query.filter(document::Column::Seq.gt(after));
        }
        let rows = query.order_by_asc(document::Column::Seq).limit(limit).all(&self.db).await?;
        Ok(rows.into_iter().map(doc_of).collect())
    }
}

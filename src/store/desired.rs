//! Desired topology revisions: stored with optimistic concurrency (etag of the latest
//! revision) and idempotency, both checked in the same transaction as the insert.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::desired_topology;
use super::{Store, StoreError, idempotency};
use crate::domain::Topology;
use crate::domain::audit::NewAuditEvent;
use crate::domain::desired::{DesiredRevision, etag};
use crate::domain::idempotency::{IdempotencyKey, Prior};

/// The result of storing a desired revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutDesiredOutcome {
    /// A new revision was stored.
    Stored(DesiredRevision),
    /// The request id was seen with the same payload: the first response's revision.
    Replayed(DesiredRevision),
    /// `expected_etag` is not the latest revision's etag (`None`: no revision exists).
    EtagMismatch { current: Option<String> },
    /// The request id was used before with a different payload.
    RequestIdReused,
}

fn revision_of(row: desired_topology::Model) -> Result<DesiredRevision, StoreError> {
    let topology: Topology = serde_json::from_str(&row.topology_json)
        .map_err(|e| StoreError::Corrupt(format!("desired generation {}: {e}", row.generation)))?;
    Ok(DesiredRevision {
        generation: row.generation,
        etag: row.etag,
        author: row.author,
        created_at: row.created_at,
        topology,
    })
}

impl Store {
    /// Stores `topology` as `runtime`'s next generation if `expected_etag` matches its latest
    /// revision (empty = create the first one).
    #[allow(clippy::too_many_arguments)]
    pub async fn put_desired(
        &self,
        runtime: &str,
        expected_etag: &str,
        topology: &Topology,
        author: &str,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
        audit: &NewAuditEvent,
    ) -> Result<PutDesiredOutcome, StoreError> {
        let txn = self.begin_write().await?;
        match idempotency::prior(&txn, key).await? {
            Prior::Unseen => {}
            Prior::Conflict => return Ok(PutDesiredOutcome::RequestIdReused),
            Prior::Replay(response) => {
                let generation: i64 =
                    response.parse().map_err(|_| StoreError::Corrupt("idempotency response".into()))?;
                let row =
                    desired_topology::Entity::find_by_id((runtime.to_owned(), generation)).one(&txn).await?;
                let row = row.ok_or_else(|| {
                    StoreError::Corrupt(format!("desired generation {generation} vanished"))
                })?;
                return Ok(PutDesiredOutcome::Replayed(revision_of(row)?));
            }
        }
        let latest = desired_topology::Entity::find()
            .filter(desired_topology::Column::Runtime.eq(runtime))
            .order_by_desc(desired_topology::Column::Generation)
            .one(&txn)
            .await?;
        let current_etag = latest.as_ref().map(|row| row.etag.clone());
        if current_etag.as_deref().unwrap_or("") != expected_etag {
            return Ok(PutDesiredOutcome::EtagMismatch { current: current_etag });
        }
        let generation = latest.map(|row| row.generation).unwrap_or(0) + 1;
        let topology_json =
            serde_json::to_string(topology).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row = desired_topology::ActiveModel {
            runtime: Set(runtime.to_owned()),
            generation: Set(generation),
            etag: Set(etag(generation, &topology.revision)),
            revision: Set(topology.revision.clone()),
            author: Set(author.to_owned()),
            created_at: Set(now),
            topology_json: Set(topology_json),
        };
        let inserted = match row.insert(&txn).await {
            Ok(inserted) => inserted,
            // A concurrent writer may have taken this generation: then the caller's etag is
            // stale. Any other failure is reported as what it is.
            Err(error) => {
                let _ = txn.rollback().await;
                let current = self.latest_desired(runtime).await?.map(|r| r.etag);
                if current.as_deref().unwrap_or("") != expected_etag {
                    return Ok(PutDesiredOutcome::EtagMismatch { current });
                }
                return Err(error.into());
            }
        };
        idempotency::remember(&txn, key, generation.to_string(), now).await?;
        let event = NewAuditEvent { resource: format!("{}/{generation}", audit.resource), ..audit.clone() };
        super::audit::append(self, &txn, &event).await?;
        super::changes::notify(&txn, super::Topic::Desired, Some(runtime)).await?;
        let revision = revision_of(inserted)?;
        super::outbound::enqueue(self, &txn, &[crate::domain::outbound::desired_stored(runtime, &revision)])
            .await?;
        txn.commit().await?;
        Ok(PutDesiredOutcome::Stored(revision))
    }

    /// Returns `runtime`'s latest desired revision.
    pub async fn latest_desired(&self, runtime: &str) -> Result<Option<DesiredRevision>, StoreError> {
        let row = desired_topology::Entity::find()
            .filter(desired_topology::Column::Runtime.eq(runtime))
            .order_by_desc(desired_topology::Column::Generation)
            .one(&self.db)
            .await?;
        row.map(revision_of).transpose()
    }

    /// Returns `runtime`'s latest desired generation without its payload.
    pub async fn latest_desired_generation(&self, runtime: &str) -> Result<Option<i64>, StoreError> {
        Ok(desired_topology::Entity::find()
            .select_only()
            .column(desired_topology::Column::Generation)
            .filter(desired_topology::Column::Runtime.eq(runtime))
            .order_by_desc(desired_topology::Column::Generation)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await?)
    }

    /// The latest desired generation of every runtime that has one.
    pub async fn latest_desired_generations(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows: Vec<(String, Option<i64>)> = desired_topology::Entity::find()
            .select_only()
            .column(desired_topology::Column::Runtime)
            .column_as(desired_topology::Column::Generation.max(), "generation")
            .group_by(desired_topology::Column::Runtime)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().filter_map(|(runtime, generation)| Some((runtime, generation?))).collect())
    }

    /// Returns `runtime`'s desired revision of `generation`.
    pub async fn desired_at(
        &self,
        runtime: &str,
        generation: i64,
    ) -> Result<Option<DesiredRevision>, StoreError> {
        desired_topology::Entity::find_by_id((runtime.to_owned(), generation))
            .one(&self.db)
            .await?
            .map(revision_of)
            .transpose()
    }

    /// Lists `runtime`'s desired revisions newest first, below `before` when given.
    pub async fn list_desired(
        &self,
        runtime: &str,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<DesiredRevision>, StoreError> {
        let mut query =
            desired_topology::Entity::find().filter(desired_topology::Column::Runtime.eq(runtime));
        if let Some(before) = before {
            query = query.filter(desired_topology::Column::Generation.lt(before));
        }
        let rows =
            query.order_by_desc(desired_topology::Column::Generation).limit(limit).all(&self.db).await?;
        rows.into_iter().map(revision_of).collect()
    }
}

//! Appending to, sealing and reading the audit log.
//!
//! An append runs inside the caller's transaction (the same one as the change it records) and
//! only inserts a pending row: it touches no shared row, so writers of unrelated resources
//! never wait for each other. A sealer moves pending rows, in id order, into the hash chain
//! (`audit_events`): it holds the chain head's lock (Postgres `FOR UPDATE`; SQLite's single
//! write lock) for the few statements of one batch, so sealers on several replicas take turns
//! and the chain never forks. The order of the chain is the order of sealing.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::{audit_chain_head, audit_event, audit_pending};
use super::{Store, StoreError};
use crate::domain::audit::{
    AuditEvent, AuditFilter, BrokenLink, GENESIS_HASH, NewAuditEvent, event_hash, verify,
};

fn event_of(row: audit_event::Model) -> AuditEvent {
    AuditEvent {
        seq: row.seq,
        at: row.at,
        event: NewAuditEvent {
            actor: row.actor,
            method: row.method,
            resource: row.resource,
            request_id: row.request_id,
            outcome: row.outcome,
            summary: row.summary,
        },
        prev_hash: row.prev_hash,
        hash: row.hash,
    }
}

/// Appends one event inside `conn`'s transaction (pending until sealed).
pub(super) async fn append<C: ConnectionTrait>(
    store: &Store,
    conn: &C,
    event: &NewAuditEvent,
) -> Result<(), StoreError> {
    let at = store.db_now(conn).await?;
    audit_pending::ActiveModel {
        at: Set(at),
        actor: Set(event.actor.clone()),
        method: Set(event.method.clone()),
        resource: Set(event.resource.clone()),
        request_id: Set(event.request_id.clone()),
        outcome: Set(event.outcome.clone()),
        summary: Set(event.summary.clone()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Appends one event in its own transaction (for records that have no other write).
    pub async fn append_audit(&self, event: &NewAuditEvent) -> Result<(), StoreError> {
        append(self, &self.db, event).await
    }

    /// Seals up to `limit` pending events into the chain; returns how many were sealed.
    pub async fn seal_audit(&self, limit: u64) -> Result<u64, StoreError> {
        // Most calls find nothing: answer those without a write transaction.
        let any: Option<i64> = audit_pending::Entity::find()
            .select_only()
            .column(audit_pending::Column::Id)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await?;
        if any.is_none() {
            return Ok(0);
        }
        let txn = self.begin_write().await?;
        let head = audit_chain_head::Entity::find_by_id(1)
            .lock_exclusive()
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the audit chain head is missing".to_owned()))?;
        let pending = audit_pending::Entity::find()
            .order_by_asc(audit_pending::Column::Id)
            .limit(limit)
            .all(&txn)
            .await?;
        if pending.is_empty() {
            txn.rollback().await?;
            return Ok(0);
        }
        let (mut seq, mut prev_hash) = (head.last_seq, head.last_hash);
        let mut sealed = Vec::with_capacity(pending.len());
        for row in &pending {
            seq += 1;
            let event = NewAuditEvent {
                actor: row.actor.clone(),
                method: row.method.clone(),
                resource: row.resource.clone(),
                request_id: row.request_id.clone(),
                outcome: row.outcome.clone(),
                summary: row.summary.clone(),
            };
            let hash = event_hash(&prev_hash, seq, row.at, &event);
            sealed.push(audit_event::ActiveModel {
                seq: Set(seq),
                at: Set(row.at),
                actor: Set(event.actor),
                method: Set(event.method),
                resource: Set(event.resource),
                request_id: Set(event.request_id),
                outcome: Set(event.outcome),
                summary: Set(event.summary),
                prev_hash: Set(std::mem::replace(&mut prev_hash, hash.clone())),
                hash: Set(hash),
            });
        }
        let ids: Vec<i64> = pending.iter().map(|row| row.id).collect();
        audit_event::Entity::insert_many(sealed).exec_without_returning(&txn).await?;
        audit_pending::Entity::delete_many().filter(audit_pending::Column::Id.is_in(ids)).exec(&txn).await?;
        audit_chain_head::ActiveModel { id: Set(1), last_seq: Set(seq), last_hash: Set(prev_hash) }
            .update(&txn)
            .await?;
        txn.commit().await?;
        Ok(pending.len() as u64)
    }

    /// Returns how many events wait to be sealed.
    pub async fn unsealed_audit_events(&self) -> Result<u64, StoreError> {
        Ok(audit_pending::Entity::find().count(&self.db).await?)
    }

    /// Lists events after `after_seq`, oldest first, filtered.
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
        after_seq: Option<i64>,
        limit: u64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut query = audit_event::Entity::find();
        if let Some(after) = after_seq {
            query = query.filter(audit_event::Column::Seq.gt(after));
        }
        if let Some(actor) = &filter.actor {
            query = query.filter(audit_event::Column::Actor.eq(actor.clone()));
        }
        if let Some(method) = &filter.method {
            query = query.filter(audit_event::Column::Method.eq(method.clone()));
        }
        if let Some(resource) = &filter.resource {
            query = query.filter(audit_event::Column::Resource.eq(resource.clone()));
        }
        if let Some(since) = filter.since {
            query = query.filter(audit_event::Column::At.gte(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(audit_event::Column::At.lt(until));
        }
        let rows = query.order_by_asc(audit_event::Column::Seq).limit(limit).all(&self.db).await?;
        Ok(rows.into_iter().map(event_of).collect())
    }

    /// Verifies the whole chain in batches; returns the number of events checked or the first
    /// broken link (including a head that does not match the last event).
    pub async fn verify_audit_chain(&self) -> Result<Result<i64, BrokenLink>, StoreError> {
        const BATCH: u64 = 1000;
        // One snapshot for the walk and the head: a batch sealed between reading the last
        // event and reading the head would otherwise look like a head past the log's end.
        let txn = self.begin_snapshot().await?;
        let mut prev = (0i64, GENESIS_HASH.to_owned());
        loop {
            let rows = audit_event::Entity::find()
                .filter(audit_event::Column::Seq.gt(prev.0))
                .order_by_asc(audit_event::Column::Seq)
                .limit(BATCH)
                .all(&txn)
                .await?;
            let events: Vec<AuditEvent> = rows.into_iter().map(event_of).collect();
            if let Err(broken) = verify(&events, (prev.0, &prev.1)) {
                txn.rollback().await?;
                return Ok(Err(broken));
            }
            match events.last() {
                Some(last) => prev = (last.seq, last.hash.clone()),
                None => break,
            }
            if (events.len() as u64) < BATCH {
                break;
            }
        }
        let head = audit_chain_head::Entity::find_by_id(1).one(&txn).await?;
        txn.rollback().await?;
        match head {
            Some(head) if head.last_seq == prev.0 && head.last_hash == prev.1 => Ok(Ok(prev.0)),
            Some(head) => Ok(Err(BrokenLink {
                seq: prev.0 + 1,
                reason: format!(
                    "the chain head says {} events but the log ends at {}",
                    head.last_seq, prev.0
                ),
            })),
            None => Ok(Err(BrokenLink { seq: 0, reason: "the audit chain head is missing".to_owned() })),
        }
    }
}

//! Appending to and reading the audit log. An append runs inside the caller's transaction
//! (the same one as the change it records); it first bumps the chain head, which takes the
//! head row's lock (Postgres) or the database write lock (SQLite), so appends from all
//! replicas are serialised and the chain never forks.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entities::{audit_chain_head, audit_event};
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

/// Appends one event inside `conn`'s transaction.
pub(super) async fn append<C: ConnectionTrait>(
    store: &Store,
    conn: &C,
    event: &NewAuditEvent,
) -> Result<i64, StoreError> {
    audit_chain_head::Entity::update_many()
        .col_expr(audit_chain_head::Column::LastSeq, Expr::col(audit_chain_head::Column::LastSeq).add(1))
        .filter(audit_chain_head::Column::Id.eq(1))
        .exec(conn)
        .await?;
    let head = audit_chain_head::Entity::find_by_id(1)
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the audit chain head is missing".to_owned()))?;
    let at = store.db_now(conn).await?;
    let hash = event_hash(&head.last_hash, head.last_seq, at, event);
    audit_event::ActiveModel {
        seq: Set(head.last_seq),
        at: Set(at),
        actor: Set(event.actor.clone()),
        method: Set(event.method.clone()),
        resource: Set(event.resource.clone()),
        request_id: Set(event.request_id.clone()),
        outcome: Set(event.outcome.clone()),
        summary: Set(event.summary.clone()),
        prev_hash: Set(head.last_hash.clone()),
        hash: Set(hash.clone()),
    }
    .insert(conn)
    .await?;
    audit_chain_head::ActiveModel { id: Set(1), last_seq: Set(head.last_seq), last_hash: Set(hash) }
        .update(conn)
        .await?;
    Ok(head.last_seq)
}

impl Store {
    /// Appends one event in its own transaction (for changes that have no other write).
    pub async fn append_audit(&self, event: &NewAuditEvent) -> Result<i64, StoreError> {
        let txn = self.begin_write().await?;
        let seq = append(self, &txn, event).await?;
        txn.commit().await?;
        Ok(seq)
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
        let mut prev = (0i64, GENESIS_HASH.to_owned());
        loop {
            let rows = audit_event::Entity::find()
                .filter(audit_event::Column::Seq.gt(prev.0))
                .order_by_asc(audit_event::Column::Seq)
                .limit(BATCH)
                .all(&self.db)
                .await?;
            let events: Vec<AuditEvent> = rows.into_iter().map(event_of).collect();
            if let Err(broken) = verify(&events, (prev.0, &prev.1)) {
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
        let head = audit_chain_head::Entity::find_by_id(1).one(&self.db).await?;
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

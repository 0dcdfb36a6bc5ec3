//! Delegations between the agents of one runtime: stored whole (JSON) with their id, runtime and
//! creation time; standings are computed
//! from the full set on every read, so a revoked or missing parent is seen at once.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};

use super::entities::delegation;
use super::{Store, StoreError, audit, idempotency};
use crate::domain::audit::NewAuditEvent;
use crate::domain::delegation::Delegation;
use crate::domain::idempotency::{IdempotencyKey, Prior};

/// The result of a delegation mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DelegationOutcome<T> {
    Done(T),
    /// The request id was seen with the same payload: its stored answer (ids).
    Replayed(Vec<String>),
    RequestIdReused,
    Refused(String),
}

fn delegation_of(row: &delegation::Model) -> Result<Delegation, StoreError> {
    serde_json::from_str(&row.delegation_json)
        .map_err(|e| StoreError::Corrupt(format!("delegation {}: {e}", row.id)))
}

async fn all<C: ConnectionTrait>(conn: &C, runtime: &str) -> Result<Vec<Delegation>, StoreError> {
    let rows = delegation::Entity::find()
        .filter(delegation::Column::Runtime.eq(runtime))
        .order_by_asc(delegation::Column::Id)
        .all(conn)
        .await?;
    rows.iter().map(delegation_of).collect()
}

async fn save<C: ConnectionTrait>(
    conn: &C,
    runtime: &str,
    value: &Delegation,
    insert: bool,
) -> Result<(), StoreError> {
    let row = delegation::ActiveModel {
        id: Set(value.id.clone()),
        runtime: Set(runtime.to_owned()),
        created_at: Set(value.created_at),
        delegation_json: Set(serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?),
    };
    if insert {
        row.insert(conn).await?;
    } else {
        row.update(conn).await?;
    }
    Ok(())
}

impl Store {
    /// Returns every grant of every runtime (what a control agent's standing over another
    /// agent's `agent/<id>` lease is judged by: lease names carry no runtime).
    pub async fn delegations_any(&self) -> Result<Vec<Delegation>, StoreError> {
        let rows = delegation::Entity::find().order_by_asc(delegation::Column::Id).all(&self.db).await?;
        rows.iter().map(delegation_of).collect()
    }

    /// Returns every grant of `runtime`'s agents, oldest first.
    pub async fn delegations(&self, runtime: &str) -> Result<Vec<Delegation>, StoreError> {
        all(&self.db, runtime).await
    }

    /// Runs one delegation mutation in a transaction: `change` sees every grant and returns the
    /// grants to insert and to update (or a refusal), plus the audit event; the stored answer
    /// for retries is the list of affected ids.
    pub async fn change_delegations(
        &self,
        runtime: &str,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
        change: impl FnOnce(&[Delegation]) -> Result<DelegationChange, String>,
    ) -> Result<DelegationOutcome<Vec<Delegation>>, StoreError> {
        let txn = self.begin_write().await?;
        match idempotency::prior(&txn, key).await? {
            Prior::Conflict => return Ok(DelegationOutcome::RequestIdReused),
            Prior::Replay(stored) => {
                let ids: Vec<String> = serde_json::from_str(&stored).unwrap_or_default();
                return Ok(DelegationOutcome::Replayed(ids));
            }
            Prior::Unseen => {}
        }
        let current = all(&txn, runtime).await?;
        let planned = match change(&current) {
            Ok(planned) => planned,
            Err(reason) => {
                txn.rollback().await?;
                return Ok(DelegationOutcome::Refused(reason));
            }
        };
        for grant in &planned.inserts {
            save(&txn, runtime, grant, true).await?;
        }
        for grant in &planned.updates {
            save(&txn, runtime, grant, false).await?;
        }
        let affected: Vec<Delegation> =
            planned.inserts.iter().chain(planned.updates.iter()).cloned().collect();
        let ids: Vec<String> = affected.iter().map(|d| d.id.clone()).collect();
        idempotency::remember(&txn, key, serde_json::to_string(&ids).unwrap_or_default(), now).await?;
        if let Some(event) = &planned.audit {
            audit::append(self, &txn, event).await?;
        }
        super::outbound::enqueue(self, &txn, &planned.events).await?;
        txn.commit().await?;
        Ok(DelegationOutcome::Done(affected))
    }
}

/// What a delegation mutation writes.
#[derive(Debug, Clone, Default)]
pub struct DelegationChange {
    pub inserts: Vec<Delegation>,
    pub updates: Vec<Delegation>,
    /// `None` when nothing changed (nothing to audit).
    pub audit: Option<NewAuditEvent>,
    /// Outbound events of the change (written to the outbox with it).
    pub events: Vec<crate::domain::outbound::NewEvent>,
}

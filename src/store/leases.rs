//! Leases, changed only inside a transaction that holds the row (Postgres `FOR UPDATE`; SQLite
//! takes its single write lock with the first statement) and reads the time from the database
//! clock, so every replica judges expiry by the same clock.

use std::sync::atomic::Ordering;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};

use super::entities::lease;
use super::{Store, StoreError};
use crate::domain::audit::NewAuditEvent;
use crate::domain::lease::{Lease, LeaseError};

fn lease_of(row: lease::Model) -> Lease {
    Lease {
        name: row.name,
        holder: row.holder,
        token: row.token,
        duration_secs: row.duration_secs,
        acquired_at: row.acquired_at,
        renewed_at: row.renewed_at,
        expires_at: row.expires_at,
        transitions: row.transitions,
    }
}

impl Store {
    /// Returns the database's current time (plus the test skew, zero in production).
    pub async fn db_now<C: ConnectionTrait>(&self, conn: &C) -> Result<DateTime<Utc>, StoreError> {
        let backend = conn.get_database_backend();
        let sql = match backend {
            DatabaseBackend::Postgres => {
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS now"
            }
            _ => "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now') AS now",
        };
        let row = conn
            .query_one_raw(Statement::from_string(backend, sql))
            .await?
            .ok_or_else(|| StoreError::Query("the database returned no time".to_owned()))?;
        let text: String = row.try_get("", "now")?;
        let now = DateTime::parse_from_rfc3339(&text)
            .map_err(|e| StoreError::Query(format!("unreadable database time {text:?}: {e}")))?
            .with_timezone(&Utc);
        Ok(now + TimeDelta::milliseconds(self.clock_skew_ms.load(Ordering::Relaxed)))
    }

    /// Changes one lease atomically: `change` sees the current lease (vacant if never held) and
    /// the database time, and returns the new lease or a refusal (then nothing is written).
    pub async fn change_lease(
        &self,
        name: &str,
        change: impl FnOnce(&Lease, DateTime<Utc>) -> Result<Lease, LeaseError>,
        describe: impl FnOnce(&Lease) -> NewAuditEvent,
    ) -> Result<Result<Lease, LeaseError>, StoreError> {
        let txn = self.db.begin().await?;
        let vacant = lease::ActiveModel {
            name: Set(name.to_owned()),
            holder: Set(None),
            token: Set(0),
            duration_secs: Set(0),
            acquired_at: Set(None),
            renewed_at: Set(None),
            expires_at: Set(None),
            transitions: Set(0),
        };
        lease::Entity::insert(vacant)
            .on_conflict(OnConflict::column(lease::Column::Name).do_nothing().to_owned())
            .exec_without_returning(&txn)
            .await?;
        let row = lease::Entity::find_by_id(name.to_owned()).lock_exclusive().one(&txn).await?;
        let current =
            row.map(lease_of).ok_or_else(|| StoreError::Corrupt(format!("lease {name} vanished")))?;
        let now = self.db_now(&txn).await?;
        let next = match change(&current, now) {
            Ok(next) => next,
            Err(refusal) => {
                txn.rollback().await?;
                return Ok(Err(refusal));
            }
        };
        lease::ActiveModel {
            name: Set(next.name.clone()),
            holder: Set(next.holder.clone()),
            token: Set(next.token),
            duration_secs: Set(next.duration_secs),
            acquired_at: Set(next.acquired_at),
            renewed_at: Set(next.renewed_at),
            expires_at: Set(next.expires_at),
            transitions: Set(next.transitions),
        }
        .update(&txn)
        .await?;
        super::audit::append(self, &txn, &describe(&next)).await?;
        txn.commit().await?;
        Ok(Ok(next))
    }

    /// Returns a lease and the database time it was read at.
    pub async fn lease(&self, name: &str) -> Result<(Option<Lease>, DateTime<Utc>), StoreError> {
        let row = lease::Entity::find_by_id(name.to_owned()).one(&self.db).await?;
        Ok((row.map(lease_of), self.db_now(&self.db).await?))
    }

    /// Lists leases by name after `after`, with the database time.
    pub async fn list_leases(
        &self,
        after: Option<&str>,
        limit: u64,
    ) -> Result<(Vec<Lease>, DateTime<Utc>), StoreError> {
        let mut query = lease::Entity::find();
        if let Some(after) = after {
            query = query.filter(lease::Column::Name.gt(after));
        }
        let rows = query.order_by_asc(lease::Column::Name).limit(limit).all(&self.db).await?;
        Ok((rows.into_iter().map(lease_of).collect(), self.db_now(&self.db).await?))
    }
}

//! Leases, changed only inside a transaction that holds the row (Postgres `FOR UPDATE`; SQLite
//! takes its single write lock with the first statement) and reads the time from the database
//! clock, so every replica judges expiry by the same clock.

use std::sync::atomic::Ordering;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};

use super::entities::{cycle_report, lease};
use super::{Store, StoreError};
use crate::domain::audit::NewAuditEvent;
use crate::domain::lease::{CycleReport, Lease, LeaseError, check_fence};

pub(super) fn lease_of(row: lease::Model) -> Lease {
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
    /// Checks, inside `txn`, that `fence` still holds: its lease is live with that holder and
    /// token by the database clock. The lease row stays locked until `txn` ends, so the lease
    /// cannot change hands before the write it guards commits.
    pub(super) async fn check_fence_in(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        fence: &super::Fence,
    ) -> Result<Result<(), LeaseError>, StoreError> {
        let row = lease::Entity::find_by_id(fence.lease.clone()).lock_exclusive().one(txn).await?;
        let current = row.map(lease_of).unwrap_or_else(|| Lease::vacant(&fence.lease));
        let now = self.db_now(txn).await?;
        Ok(check_fence(&current, &fence.holder, fence.token, now))
    }

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

    /// Returns the database's current time.
    pub async fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        self.db_now(&self.db).await
    }

    /// Returns the test skew currently added to database-clock readings (zero in production).
    pub fn clock_skew(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.clock_skew_ms.load(Ordering::Relaxed))
    }

    /// Changes one lease atomically: `change` sees the current lease (vacant if never held) and
    /// the database time, and returns the new lease or a refusal (then nothing is written).
    /// `describe` gets the lease before and after and gives the audit event written with the
    /// change (`None`: nothing worth auditing, e.g. a renewal).
    pub async fn change_lease(
        &self,
        name: &str,
        change: impl FnOnce(&Lease, DateTime<Utc>) -> Result<Lease, LeaseError>,
        describe: impl FnOnce(&Lease, &Lease) -> Option<NewAuditEvent>,
    ) -> Result<Result<Lease, LeaseError>, StoreError> {
        let txn = self.begin_write().await?;
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
        // A plain UPDATE: the row is held and known, so no RETURNING (or re-read) is needed.
        lease::Entity::update_many()
            .set(lease::ActiveModel {
                holder: Set(next.holder.clone()),
                token: Set(next.token),
                duration_secs: Set(next.duration_secs),
                acquired_at: Set(next.acquired_at),
                renewed_at: Set(next.renewed_at),
                expires_at: Set(next.expires_at),
                transitions: Set(next.transitions),
                ..Default::default()
            })
            .filter(lease::Column::Name.eq(name))
            .exec(&txn)
            .await?;
        if let Some(event) = describe(&current, &next) {
            super::audit::append(self, &txn, &event).await?;
        }
        if !crate::domain::lease::only_extends(&current, &next) {
            super::changes::notify(&txn, super::Topic::Lease, Some(name)).await?;
        }
        txn.commit().await?;
        Ok(Ok(next))
    }

    /// Renews a live lease of `holder` with `token` in one statement (Postgres): the row lock,
    /// the database-clock check and the new expiry happen atomically in the UPDATE itself.
    /// Returns `None` when the lease is not live with that holder and token (the caller then
    /// takes the transactional path, which says why), and always `None` on SQLite, whose text
    /// timestamps are compared in Rust on that path.
    pub async fn renew_lease_fast(
        &self,
        name: &str,
        holder: &str,
        token: i64,
        duration_secs: i64,
    ) -> Result<Option<(Lease, DateTime<Utc>)>, StoreError> {
        if self.db.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(None);
        }
        const RENEW: &str = "WITH clock AS (SELECT clock_timestamp() + $5 * interval '1 millisecond' AS now) \
            UPDATE leases SET duration_secs = $4, renewed_at = clock.now, \
                expires_at = clock.now + $4 * interval '1 second' \
            FROM clock \
            WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > clock.now \
            RETURNING name, holder, token, duration_secs, acquired_at, renewed_at, expires_at, transitions, clock.now AS now";
        let skew_ms = self.clock_skew_ms.load(Ordering::Relaxed);
        let statement = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            RENEW,
            [name.into(), holder.into(), token.into(), duration_secs.into(), skew_ms.into()],
        );
        let Some(row) = self.db.query_one_raw(statement).await? else { return Ok(None) };
        let lease = Lease {
            name: row.try_get("", "name")?,
            holder: row.try_get("", "holder")?,
            token: row.try_get("", "token")?,
            duration_secs: row.try_get("", "duration_secs")?,
            acquired_at: row.try_get("", "acquired_at")?,
            renewed_at: row.try_get("", "renewed_at")?,
            expires_at: row.try_get("", "expires_at")?,
            transitions: row.try_get("", "transitions")?,
        };
        let now: DateTime<Utc> = row.try_get("", "now")?;
        Ok(Some((lease, now)))
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

impl Store {
    /// The leases whose names start with `prefix` and that are live by the database clock,
    /// with that time.
    pub async fn live_leases_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<(Vec<Lease>, DateTime<Utc>), StoreError> {
        let now = self.db_now(&self.db).await?;
        let rows = lease::Entity::find()
            .filter(lease::Column::Name.starts_with(prefix))
            .filter(lease::Column::Holder.is_not_null())
            .order_by_asc(lease::Column::Name)
            .all(&self.db)
            .await?;
        let leases =
            rows.into_iter().map(lease_of).filter(|lease| lease.live_holder(now).is_some()).collect();
        Ok((leases, now))
    }
}

/// The result of a fenced report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    Recorded(CycleReport),
    /// The cycle id was reported before: the first report.
    Repeated(CycleReport),
    Refused(LeaseError),
}

fn report_of(row: cycle_report::Model) -> CycleReport {
    CycleReport {
        cycle_id: row.cycle_id,
        lease_name: row.lease_name,
        holder: row.holder,
        fencing_token: row.fencing_token,
        outcome: row.outcome,
        summary: row.summary,
        reported_at: row.reported_at,
    }
}

impl Store {
    /// Records a control agent's report if its fencing token is the live holder's, in the same
    /// transaction that holds the lease row (so the lease cannot change hands meanwhile).
    pub async fn report_cycle(
        &self,
        report: CycleReport,
        audit: &NewAuditEvent,
    ) -> Result<ReportOutcome, StoreError> {
        let txn = self.begin_write().await?;
        if let Some(existing) = cycle_report::Entity::find_by_id(report.cycle_id.clone()).one(&txn).await? {
            return Ok(ReportOutcome::Repeated(report_of(existing)));
        }
        let row = lease::Entity::find_by_id(report.lease_name.clone()).lock_exclusive().one(&txn).await?;
        let current = row.map(lease_of).unwrap_or_else(|| Lease::vacant(&report.lease_name));
        let now = self.db_now(&txn).await?;
        if let Err(refusal) = check_fence(&current, &report.holder, report.fencing_token, now) {
            txn.rollback().await?;
            return Ok(ReportOutcome::Refused(refusal));
        }
        let stored = CycleReport { reported_at: now, ..report };
        cycle_report::ActiveModel {
            cycle_id: Set(stored.cycle_id.clone()),
            lease_name: Set(stored.lease_name.clone()),
            holder: Set(stored.holder.clone()),
            fencing_token: Set(stored.fencing_token),
            outcome: Set(stored.outcome.clone()),
            summary: Set(stored.summary.clone()),
            reported_at: Set(now),
        }
        .insert(&txn)
        .await?;
        super::audit::append(self, &txn, audit).await?;
        txn.commit().await?;
        Ok(ReportOutcome::Recorded(stored))
    }
}

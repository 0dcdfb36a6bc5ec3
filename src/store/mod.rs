//! Persistence: sea-orm over SQLite (embedded default) or Postgres. sea-orm is used only in
//! this module; repositories return domain types and [`StoreError`], never `DbErr`.

mod audit;
mod changes;
mod delegations;
mod desired;
mod documents;
mod drift;
mod entities;
mod fleet_rollouts;
mod fleet_versions;
mod idempotency;
mod leases;
mod observations;
mod outbound;
mod rollouts;
mod runtimes;
mod scheduler_runs;
mod schedules;
mod server_keys;
mod setup_previews;
mod watchdog;

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr};

pub use changes::{Change, ChangeFeed, Topic};
pub use delegations::{DelegationChange, DelegationOutcome};
pub use desired::PutDesiredOutcome;
pub use documents::{Doc, DocOutcome, DocWrite};
pub use drift::{AcknowledgeOutcome, DriftChanges};
pub use fleet_rollouts::SaveFleetRollout;
pub use fleet_versions::StoredVersions;
pub use idempotency::Claim;
pub use leases::ReportOutcome;
pub use observations::{NewObservation, Recorded, TrackerFeed};
pub use outbound::{DeliveryCounts, RedeliverOutcome};
pub use rollouts::{CreateRolloutOutcome, SaveRollout};
pub use runtimes::{RegistryChange, RegistryOutcome};
pub use scheduler_runs::{Fence, StartRun};
pub use schedules::{ScheduleChange, UpdateScheduleOutcome};

/// What storing a new record with an idempotency key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome<T> {
    Created(T),
    /// The request id was seen with the same payload: the first call's record.
    Replayed(T),
    /// The request id was used before with a different payload.
    RequestIdReused,
}

/// Why the store failed. Messages are safe for logs; SQL text never reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Query(String),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        // Drivers embed connection strings in some errors: never let a password through.
        let text = redact_secrets(&err.to_string());
        if unavailable(&err) { Self::Unavailable(text) } else { Self::Query(text) }
    }
}

/// Replaces the password of every `scheme://user:password@host` and every `password=…`
/// parameter in `text` with `***`, so error and log lines can name a database safely.
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | ')' | ',') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(split) => {
                let userinfo = &authority[..split];
                match userinfo.split_once(':') {
                    Some((user, _)) => out.push_str(&format!("{user}:***")),
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[split..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    let mut redacted = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.to_ascii_lowercase().find("password=") {
        let (head, tail) = rest.split_at(at + "password=".len());
        redacted.push_str(head);
        redacted.push_str("***");
        let end =
            tail.find(|c: char| c == '&' || c == '"' || c == '\'' || c.is_whitespace()).unwrap_or(tail.len());
        rest = &tail[end..];
    }
    redacted.push_str(rest);
    redacted
}

/// True when `err` says the database cannot be reached or cannot serve right now (a retry may
/// succeed), as opposed to a query that is wrong: callers then get UNAVAILABLE, never INTERNAL.
fn unavailable(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as Sqlx;
    match err {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(error)) | DbErr::Query(RuntimeErr::SqlxError(error)) => {
            match error.as_ref() {
                Sqlx::Io(_)
                | Sqlx::Tls(_)
                | Sqlx::Protocol(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::WorkerCrashed => true,
                // Postgres: connection exceptions (08…), shutdown / cannot connect now (57P…),
                // too many connections (53300); SQLite: busy or locked beyond the busy timeout.
                Sqlx::Database(db) => db.code().is_some_and(|code| {
                    code.starts_with("08")
                        || code.starts_with("57P")
                        || code == "53300"
                        || code == "5"
                        || code == "6"
                }),
                _ => false,
            }
        }
        _ => false,
    }
}

/// How the request path may wait on the database.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// How long a caller waits for a connection (and a new connection may take) before the
    /// call fails with `Unavailable`: short, so an outage costs callers ~1 s, not 10.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { acquire_timeout: Duration::from_secs(1) }
    }
}

/// The database behind jhf-warp.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// Milliseconds added to the database clock; only tests set it (to move lease time).
    clock_skew_ms: Arc<AtomicI64>,
}

impl Store {
    /// Connects to `url` (`sqlite://…?mode=rwc` or `postgres://…`).
    pub async fn connect(url: &str, store_options: StoreOptions) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(if url.starts_with("sqlite:") { 4 } else { 16 })
            .connect_timeout(store_options.acquire_timeout)
            .acquire_timeout(store_options.acquire_timeout)
            // No ping before every use of a pooled connection (a round trip per statement): a
            // dead connection fails its statement, which is reported UNAVAILABLE with a retry
            // delay, and the pool discards it.
            .test_before_acquire(false)
            .sqlx_logging(false);
        let db = Database::connect(options)
            .await
            .map_err(|err| StoreError::Unavailable(redact_secrets(&err.to_string())))?;
        if db.get_database_backend() == DatabaseBackend::Sqlite {
            // WAL lets readers proceed during a write; a busy timeout turns brief lock
            // contention into a wait instead of an error.
            db.execute_unprepared("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000;").await?;
        }
        Ok(Self { db, clock_skew_ms: Arc::new(AtomicI64::new(0)) })
    }

    /// Begins a write transaction. On SQLite it takes the write lock first (a no-op DELETE),
    /// waiting under the busy timeout: a deferred transaction that reads first and writes later
    /// fails at once with SQLITE_BUSY_SNAPSHOT when another connection wrote in between, and
    /// that failure would surface as a spurious conflict. Postgres needs nothing.
    pub(crate) async fn begin_write(&self) -> Result<sea_orm::DatabaseTransaction, StoreError> {
        use sea_orm::TransactionTrait;
        let txn = self.db.begin().await?;
        if self.db.get_database_backend() == DatabaseBackend::Sqlite {
            txn.execute_unprepared("DELETE FROM server_keys WHERE 1 = 0").await?;
        }
        Ok(txn)
    }

    /// Begins a read-only transaction whose reads all see one snapshot, for a read that spans
    /// several statements and must not see a write land between them. Postgres needs
    /// REPEATABLE READ for that (READ COMMITTED takes a snapshot per statement); a SQLite
    /// transaction in WAL mode reads one snapshot from its first read on.
    pub(crate) async fn begin_snapshot(&self) -> Result<sea_orm::DatabaseTransaction, StoreError> {
        use sea_orm::{AccessMode, IsolationLevel, TransactionTrait};
        Ok(match self.db.get_database_backend() {
            DatabaseBackend::Postgres => {
                self.db
                    .begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly))
                    .await?
            }
            _ => self.db.begin().await?,
        })
    }

    /// Shares a skew (milliseconds) added to every database-clock reading; tests use it to
    /// move lease time without sleeping.
    pub fn with_clock_skew(mut self, skew_ms: Arc<AtomicI64>) -> Self {
        self.clock_skew_ms = skew_ms;
        self
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.db, None).await.map_err(StoreError::from)
    }

    /// Returns `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DatabaseBackend::Sqlite => "sqlite",
            DatabaseBackend::Postgres => "postgres",
            _ => "other",
        }
    }

    /// Checks that the database answers within `within`.
    pub async fn ping(&self, within: Duration) -> Result<(), StoreError> {
        match tokio::time::timeout(within, self.db.ping()).await {
            Ok(answer) => answer.map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable(format!("no answer within {} ms", within.as_millis()))),
        }
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<(), StoreError> {
        self.db.close().await.map_err(StoreError::from)
    }
}

/// Decodes a JSON value the store holds (a document body, a stored answer); one that does not
/// decode is corruption.
pub fn decode_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Encodes a value the store will hold as JSON.
pub fn encode_json<T: serde::Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_in_error_text() {
        let text =
            "error connecting to postgres://warp:s3cret@db.internal:5432/warp?sslmode=require: refused";
        let redacted = redact_secrets(text);
        assert!(!redacted.contains("s3cret"), "{redacted}");
        assert!(redacted.contains("postgres://warp:***@db.internal:5432/warp"), "{redacted}");
        assert_eq!(
            redact_secrets("host=db user=warp password=hunter2 dbname=x"),
            "host=db user=warp password=*** dbname=x"
        );
        assert_eq!(redact_secrets("sqlite:///data/warp.db?mode=rwc"), "sqlite:///data/warp.db?mode=rwc");
    }

    #[tokio::test]
    async fn a_bad_database_url_does_not_print_its_password() {
        let error =
            Store::connect("postgres://warp:very-secret-pw@127.0.0.1:1/warp", StoreOptions::default())
                .await
                .unwrap_err();
        assert!(!error.to_string().contains("very-secret-pw"), "{error}");
    }
}

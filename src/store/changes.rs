//! The change feed between replicas: a write that changes hot state (the state readers keep in
//! memory) notifies its topic in its own transaction, so the notification is delivered when,
//! and only if, it commits. On Postgres this is `pg_notify` on one channel, which every replica
//! LISTENs to; SQLite has no notifications (replicas sharing a file re-check revisions
//! periodically instead).
//!
//! # Caveats
//! - Notifications are transient: while a listener reconnects they are lost. The feed reports
//!   the loss ([`Change::Lost`]) so the reader rebuilds from the store.
//! - Lease renewals do not notify: they only extend an expiry, and Postgres serialises the
//!   commits of notifying transactions on one queue lock.

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use super::{Store, StoreError};

/// The Postgres channel of the feed.
const CHANNEL: &str = "jhf_warp_changes";

/// A part of the hot state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Observations and the drift tracker's state (written together).
    Observation,
    /// Drift items changed outside an observation (acknowledgements).
    Drift,
    Desired,
    Schedule,
    /// A lease changed hands (acquired, taken over, released).
    Lease,
    /// A scheduled reconcile cycle started.
    Run,
    /// A rollout was created or changed state.
    Rollout,
    /// The runtime registry changed (a runtime registered, updated or deregistered).
    Runtimes,
    /// A fleet rollout was created or changed.
    FleetRollout,
}

impl Topic {
    /// The topics of one runtime's state.
    pub const OF_A_RUNTIME: [Topic; 6] =
        [Topic::Observation, Topic::Drift, Topic::Desired, Topic::Schedule, Topic::Run, Topic::Rollout];

    fn as_str(self) -> &'static str {
        match self {
            Self::Observation => "observation",
            Self::Drift => "drift",
            Self::Desired => "desired",
            Self::Schedule => "schedule",
            Self::Lease => "lease",
            Self::Run => "run",
            Self::Rollout => "rollout",
            Self::Runtimes => "runtimes",
            Self::FleetRollout => "fleet_rollout",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::Observation,
            Self::Drift,
            Self::Desired,
            Self::Schedule,
            Self::Lease,
            Self::Run,
            Self::Rollout,
            Self::Runtimes,
            Self::FleetRollout,
        ]
        .into_iter()
        .find(|topic| topic.as_str() == text)
    }
}

/// Notifies `topic` inside `conn`'s transaction (a no-op on SQLite); `runtime` names the
/// runtime whose state changed (`None`: a topic of the whole deployment).
pub(super) async fn notify<C: ConnectionTrait>(
    conn: &C,
    topic: Topic,
    runtime: Option<&str>,
) -> Result<(), StoreError> {
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        let payload = match runtime {
            Some(runtime) => format!("{}:{runtime}", topic.as_str()),
            None => topic.as_str().to_owned(),
        };
        let statement = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), payload.into()],
        );
        conn.execute_raw(statement).await?;
    }
    Ok(())
}

/// What the feed delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Another (or this) replica committed a change of this topic (of this runtime).
    Changed(Topic, Option<String>),
    /// The connection was lost: notifications may have been missed.
    Lost,
}

/// A replica's subscription to the feed.
pub struct ChangeFeed {
    listener: PgListener,
}

impl ChangeFeed {
    /// Waits for the next change (reconnecting after a [`Change::Lost`]).
    pub async fn next(&mut self) -> Result<Change, StoreError> {
        loop {
            match self.listener.try_recv().await {
                Ok(Some(notification)) => {
                    let (topic, runtime) = match notification.payload().split_once(':') {
                        Some((topic, runtime)) => (topic, Some(runtime.to_owned())),
                        None => (notification.payload(), None),
                    };
                    if let Some(topic) = Topic::parse(topic) {
                        return Ok(Change::Changed(topic, runtime));
                    }
                }
                Ok(None) => return Ok(Change::Lost),
                Err(error) => return Err(StoreError::Unavailable(error.to_string())),
            }
        }
    }
}

impl Store {
    /// Subscribes to the change feed; `None` on SQLite (no notifications).
    pub async fn change_feed(&self) -> Result<Option<ChangeFeed>, StoreError> {
        if self.db.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(None);
        }
        let pool = self.db.get_postgres_connection_pool();
        let mut listener =
            PgListener::connect_with(pool).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        listener.listen(CHANNEL).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Some(ChangeFeed { listener }))
    }
}

//! The replica's in-memory copy of the leases, shared by every runtime of the fleet, so "who
//! holds this lease" is answered without the database while the copy is live.
//!
//! # Guarantees
//! - A lease is answered from memory only while the copy is live by the database clock's
//!   estimate. Renewals are not notified, but they only extend a lease: a live copy can
//!   understate the expiry, never invent a holder. A copy that looks expired is re-read.
//! - A change of hands is notified with the lease's name, and only that lease is re-read
//!   (a fleet of hundreds of runtimes holds hundreds of leases).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

use crate::control::AppError;
use crate::domain::lease::Lease;
use crate::store::Store;

/// The database clock as last read: `db` (without the test skew) was current at `at`.
#[derive(Debug, Clone, Copy)]
struct DbClock {
    db: DateTime<Utc>,
    at: Instant,
}

#[derive(Default)]
struct State {
    leases: BTreeMap<String, Lease>,
    clock: Option<DbClock>,
}

/// Shared, cheap to clone.
#[derive(Clone, Default)]
pub struct LeaseCache {
    state: Arc<RwLock<State>>,
}

/// Orders the versions of one lease: a new token is newer; within a token, the later change
/// (a renewal's time, or a release's) is newer.
fn lease_order(lease: &Lease) -> (i64, Option<DateTime<Utc>>) {
    let changed = if lease.holder.is_some() { lease.renewed_at } else { lease.expires_at };
    (lease.token, changed)
}

impl LeaseCache {
    fn write(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner()));
    }

    /// A lease with the estimated database time, when the copy is live by that estimate
    /// (`skew`: the test skew of the database clock).
    pub fn live_lease(&self, name: &str, skew: TimeDelta) -> Option<(Lease, DateTime<Utc>)> {
        let state = self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let clock = state.clock?;
        let now = clock.db + TimeDelta::from_std(clock.at.elapsed()).unwrap_or_default() + skew;
        let lease = state.leases.get(name)?;
        lease.live_holder(now).is_some().then(|| (lease.clone(), now))
    }

    /// Puts a lease read or written at database time `now` (with the test skew `skew`),
    /// unless the copy held is newer.
    pub fn put(&self, lease: Lease, now: DateTime<Utc>, skew: TimeDelta) {
        self.write(|state| {
            state.clock = Some(DbClock { db: now - skew, at: Instant::now() });
            if state.leases.get(&lease.name).is_none_or(|held| lease_order(&lease) >= lease_order(held)) {
                state.leases.insert(lease.name.clone(), lease);
            }
        });
    }

    /// Re-reads one lease (a notified change of hands).
    pub async fn reload_one(&self, store: &Store, name: &str) -> Result<(), AppError> {
        let (lease, now) = store.lease(name).await?;
        match lease {
            Some(lease) => self.put(lease, now, store.clock_skew()),
            None => self.write(|state| {
                state.leases.remove(name);
            }),
        }
        Ok(())
    }

    /// Re-reads every lease (at start, after a lost change feed, and on the periodic check).
    pub async fn reload(&self, store: &Store) -> Result<(), AppError> {
        let (leases, now) = store.list_leases(None, 100_000).await?;
        let skew = store.clock_skew();
        self.write(|state| {
            state.clock = Some(DbClock { db: now - skew, at: Instant::now() });
            state.leases = leases.into_iter().map(|lease| (lease.name.clone(), lease)).collect();
        });
        Ok(())
    }

    /// The holders of the live leases whose names start with `prefix`, by name, with the
    /// estimated database time (`None`: nothing loaded yet).
    pub fn live_with_prefix(
        &self,
        prefix: &str,
        skew: TimeDelta,
    ) -> Option<(BTreeMap<String, Lease>, DateTime<Utc>)> {
        let state = self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let clock = state.clock?;
        let now = clock.db + TimeDelta::from_std(clock.at.elapsed()).unwrap_or_default() + skew;
        let live = state
            .leases
            .range(prefix.to_owned()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .filter(|(_, lease)| lease.live_holder(now).is_some())
            .map(|(name, lease)| (name.clone(), lease.clone()))
            .collect();
        Some((live, now))
    }
}

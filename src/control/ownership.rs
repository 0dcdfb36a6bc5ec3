//! Replica leases held while work runs: the runtime lease (`warp/runtime/<runtime>`) under which
//! every change to a runtime happens, and the observer lease (`warp/observer/<runtime>`) of the
//! one periodic observer per runtime (`<runtime>`: the runtime's name).
//!
//! # Guarantees
//! - A held lease is renewed in the background every third of its duration; it counts as held
//!   only until two thirds have passed since the last renewal *began* (the database set the
//!   expiry after that instant), so this replica stops before the lease can expire by the
//!   database clock even when renewals fail.
//! - A refused renewal (another holder took over) marks the lease lost at once.
//! - One runtime lease per replica at a time: users on one replica (the rollout worker, a
//!   manual rollback, ApplySetup's file writes) take turns before they take the lease.
//!
//! # Caveats
//! - Fencing is checked by the store; the runtime itself knows nothing of tokens. A writer checks
//!   that its lease is live immediately before touching the runtime, and every write is also
//!   guarded by the config's base hash, so a replica paused past its lease can at most repeat a
//!   write that another replica has not changed since.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{AppError, AuditContext, LeaseService, LeaseUse};
use crate::domain::access::Role;
use crate::store::Fence;

/// Prefix of the runtime leases.
pub const RUNTIME_LEASE_PREFIX: &str = "warp/runtime/";
/// Prefix of the observer leases.
pub const OBSERVER_LEASE_PREFIX: &str = "warp/observer/";

/// The lease name of a runtime under `prefix` (runtime names are valid lease names).
pub fn runtime_lease_name(prefix: &str, runtime: &str) -> String {
    format!("{prefix}{runtime}")
}

/// How often a waiting replica tries a lease held elsewhere.
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// The audit identity of a replica acting on its own.
pub fn replica_caller(replica_id: &str, what: &str) -> AuditContext {
    AuditContext {
        actor: format!("jhf-warp/{replica_id}"),
        method: format!("jhf-warp/{what}"),
        request_id: String::new(),
        role: Role::Operator,
    }
}

struct KeptState {
    /// When the last successful acquisition or renewal began.
    anchored: std::sync::Mutex<Instant>,
    lost: AtomicBool,
    valid_for: Duration,
}

impl KeptState {
    fn is_live(&self) -> bool {
        let anchored = *self.anchored.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        !self.lost.load(Ordering::SeqCst) && anchored.elapsed() < self.valid_for
    }
}

/// A replica lease this replica holds, renewed in the background until released or dropped.
pub struct KeptLease {
    fence: Fence,
    state: Arc<KeptState>,
    renewer: JoinHandle<()>,
    leases: LeaseService,
    caller: AuditContext,
}

impl KeptLease {
    /// Takes `name` for `holder` when it is free, expired or already this holder's; `None` when
    /// another holder has it.
    pub async fn try_take(
        leases: &LeaseService,
        name: &str,
        holder: &str,
        duration: Duration,
        caller: &AuditContext,
    ) -> Result<Option<Self>, AppError> {
        let secs = duration.as_secs().max(3) as i64;
        let began = Instant::now();
        let lease = match leases.acquire_for(LeaseUse::Work, name, holder, secs, caller).await {
            Ok((lease, _)) => lease,
            Err(AppError::FailedPrecondition { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let fence = Fence { lease: name.to_owned(), holder: holder.to_owned(), token: lease.token };
        let state = Arc::new(KeptState {
            anchored: std::sync::Mutex::new(began),
            lost: AtomicBool::new(false),
            valid_for: Duration::from_secs(secs as u64) * 2 / 3,
        });
        let renewer = tokio::spawn(renew_until_lost(
            leases.clone(),
            fence.clone(),
            secs,
            caller.clone(),
            state.clone(),
        ));
        Ok(Some(Self { fence, state, renewer, leases: leases.clone(), caller: caller.clone() }))
    }

    /// The fence to check writes against.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// True while the lease is surely held (see the module's guarantees).
    pub fn is_live(&self) -> bool {
        self.state.is_live()
    }

    /// Stops renewing and releases the lease, so another replica can take over at once.
    pub async fn release(self) {
        self.renewer.abort();
        if self.state.lost.load(Ordering::SeqCst) {
            return;
        }
        let Fence { lease, holder, token } = &self.fence;
        if let Err(error) = self.leases.release_for(LeaseUse::Work, lease, holder, *token, &self.caller).await
        {
            tracing::warn!(lease = %lease, %error, "releasing a replica lease failed; it expires on its own");
        }
    }
}

impl Drop for KeptLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

async fn renew_until_lost(
    leases: LeaseService,
    fence: Fence,
    secs: i64,
    caller: AuditContext,
    state: Arc<KeptState>,
) {
    let every = Duration::from_secs(secs as u64) / 3;
    loop {
        tokio::time::sleep(every).await;
        let began = Instant::now();
        match leases.renew_for(LeaseUse::Work, &fence.lease, &fence.holder, fence.token, secs, &caller).await
        {
            Ok(_) => *state.anchored.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = began,
            Err(AppError::FailedPrecondition { description, .. }) => {
                tracing::warn!(lease = %fence.lease, %description, "replica lease lost");
                state.lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(error) => {
                tracing::warn!(lease = %fence.lease, %error, "replica lease renewal failed; will retry")
            }
        }
    }
}

/// Who may change one runtime: the holder of its runtime lease.
#[derive(Clone)]
pub struct RuntimeOwner {
    leases: LeaseService,
    name: String,
    holder: String,
    duration: Duration,
    caller: AuditContext,
    turn: Arc<Mutex<()>>,
}

/// The right to change the runtime, held until released.
pub struct RuntimeGuard {
    kept: KeptLease,
    _turn: OwnedMutexGuard<()>,
}

impl RuntimeOwner {
    /// Creates the owner of runtime `address` for replica `holder`.
    pub fn new(leases: LeaseService, runtime: &str, holder: &str, duration: Duration) -> Self {
        Self {
            leases,
            name: runtime_lease_name(RUNTIME_LEASE_PREFIX, runtime),
            holder: holder.to_owned(),
            duration,
            caller: replica_caller(holder, "runtime-owner"),
            turn: Arc::default(),
        }
    }

    /// The runtime lease's name.
    pub fn lease_name(&self) -> &str {
        &self.name
    }

    /// Takes the runtime lease when it is free now; `None` when this replica or another one is
    /// changing the runtime.
    pub async fn try_acquire(&self) -> Result<Option<RuntimeGuard>, AppError> {
        let Ok(turn) = self.turn.clone().try_lock_owned() else { return Ok(None) };
        let kept =
            KeptLease::try_take(&self.leases, &self.name, &self.holder, self.duration, &self.caller).await?;
        Ok(kept.map(|kept| RuntimeGuard { kept, _turn: turn }))
    }

    /// Takes the runtime lease, waiting up to `wait` while it is held (here or elsewhere).
    pub async fn acquire(&self, wait: Duration) -> Result<RuntimeGuard, AppError> {
        let deadline = Instant::now() + wait;
        let busy = || AppError::Busy {
            reason: "RUNTIME_BUSY",
            description: "another change to this runtime is in progress; retry shortly".to_owned(),
            retry_after: Duration::from_secs(1),
        };
        let turn =
            tokio::time::timeout_at(deadline, self.turn.clone().lock_owned()).await.map_err(|_| busy())?;
        loop {
            if let Some(kept) =
                KeptLease::try_take(&self.leases, &self.name, &self.holder, self.duration, &self.caller)
                    .await?
            {
                return Ok(RuntimeGuard { kept, _turn: turn });
            }
            if Instant::now() + RETRY_EVERY > deadline {
                return Err(busy());
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }
}

impl RuntimeGuard {
    /// The fence every rollout transition is checked against.
    pub fn fence(&self) -> &Fence {
        self.kept.fence()
    }

    /// Refuses when the lease may no longer be held: called immediately before the runtime is
    /// touched.
    pub fn ensure_live(&self) -> Result<(), AppError> {
        if self.kept.is_live() {
            return Ok(());
        }
        Err(AppError::Busy {
            reason: "RUNTIME_LEASE_LOST",
            description: "this replica lost the runtime lease; another replica resumes the change".to_owned(),
            retry_after: Duration::from_secs(1),
        })
    }

    /// Releases the lease.
    pub async fn release(self) {
        self.kept.release().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_lease_names_are_valid_lease_names() {
        for runtime in ["default", "editorial-staging", &"x".repeat(40)] {
            let name = runtime_lease_name(RUNTIME_LEASE_PREFIX, runtime);
            assert!(name.len() <= 128, "{name}");
            assert!(
                name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"/_.-".contains(&c)),
                "{name}"
            );
        }
        assert_eq!(runtime_lease_name(OBSERVER_LEASE_PREFIX, "default"), "warp/observer/default");
    }
}

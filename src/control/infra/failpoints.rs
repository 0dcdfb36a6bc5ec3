//! Test-only failpoints: named places where a test can make the application stop or fail on
//! purpose (e.g. "crash" right after a rollout wrote the config). Not reachable from the
//! command line; production builds simply never enable any.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Stop a rollout right after its write, as if the process died there.
pub const STOP_AFTER_APPLY: &str = "rollout.stop_after_apply";
/// Make a rollout's verification fail, to exercise the rollback (`…@<runtime>`: on that
/// runtime only).
pub const FAIL_VERIFICATION: &str = "rollout.fail_verification";
/// Panic inside the ListLeases handler: a bug reached by one call.
pub const PANIC_IN_LIST_LEASES: &str = "leases.panic_in_list";
/// Fail a revocation right after the revocation is stored, before its desired revision (as if
/// the replica died between the two transactions).
pub const STOP_AFTER_REVOCATION: &str = "revocation.stop_after_revoke";
/// Hold every runtime read until [`Failpoints::release`]: requests stay in flight as long as
/// a test wants (load shedding, single flight).
pub const HOLD_RUNTIME_READS: &str = "runtime.hold_reads";

/// The set of enabled failpoints.
#[derive(Debug, Clone)]
pub struct Failpoints {
    enabled: Arc<Mutex<BTreeSet<&'static str>>>,
    released: Arc<watch::Sender<bool>>,
    held: Arc<AtomicUsize>,
}

impl Default for Failpoints {
    fn default() -> Self {
        Self { enabled: Arc::default(), released: Arc::new(watch::channel(false).0), held: Arc::default() }
    }
}

impl Failpoints {
    /// Enables a failpoint.
    pub fn enable(&self, name: &'static str) {
        self.enabled.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(name);
    }

    /// Disables a failpoint.
    pub fn disable(&self, name: &'static str) {
        self.enabled.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(name);
    }

    /// Returns true when the failpoint is enabled.
    pub fn hit(&self, name: &str) -> bool {
        self.enabled.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(name)
    }

    /// Waits at an enabled holding failpoint until [`Failpoints::release`]; returns at once
    /// when the failpoint is off.
    pub async fn hold(&self, name: &str) {
        if !self.hit(name) {
            return;
        }
        let mut released = self.released.subscribe();
        self.held.fetch_add(1, Ordering::SeqCst);
        let _ = released.wait_for(|released| *released).await;
        self.held.fetch_sub(1, Ordering::SeqCst);
    }

    /// Returns how many calls wait at a holding failpoint now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Lets every held call go on (and later ones pass).
    pub fn release(&self) {
        self.released.send_replace(true);
    }
}

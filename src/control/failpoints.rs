//! Test-only failpoints: named places where a test can make the application stop or fail on
//! purpose (e.g. "crash" right after a rollout wrote the config). Not reachable from the
//! command line; production builds simply never enable any.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Stop a rollout right after its write, as if the process died there.
pub const STOP_AFTER_APPLY: &str = "rollout.stop_after_apply";
/// Make a rollout's verification fail, to exercise the rollback.
pub const FAIL_VERIFICATION: &str = "rollout.fail_verification";

/// The set of enabled failpoints.
#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    enabled: Arc<Mutex<BTreeSet<&'static str>>>,
}

impl Failpoints {
    /// Enables a failpoint.
    pub fn enable(&self, name: &'static str) {
        self.enabled.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(name);
    }

    /// Returns true when the failpoint is enabled.
    pub fn hit(&self, name: &str) -> bool {
        self.enabled.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(name)
    }
}

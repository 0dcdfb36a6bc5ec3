//! The periodic reconcile schedule: what the leader runs, how often, and when a cycle is
//! overdue.
//!
//! # Guarantees
//! - Scheduled cycle ids come from the database clock's time bucket, so every replica names
//!   the cycle of one bucket the same way and the store's unique cycle id lets it run once.
//! - A paused schedule is never overdue.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::desired::FieldViolation;
use super::reconcile::ReconcileMode;

/// Shortest interval between scheduled cycles, in seconds.
pub const MIN_INTERVAL_SECS: i64 = 1;
/// Longest interval between scheduled cycles (one day), in seconds.
pub const MAX_INTERVAL_SECS: i64 = 86_400;
/// The lease whose holder runs the periodic loop of the runtime `default` (the one `--runtime`
/// configures): the name it had before fleets, so existing tooling keeps finding it.
pub const RECONCILER_LEASE: &str = "warp/reconciler";

/// The lease whose holder runs `runtime`'s periodic loop.
pub fn reconciler_lease(runtime: &str) -> String {
    if runtime == super::fleet::DEFAULT_RUNTIME {
        RECONCILER_LEASE.to_owned()
    } else {
        format!("{RECONCILER_LEASE}/{runtime}")
    }
}
/// Prefix of scheduled cycle ids.
pub const SCHEDULED_PREFIX: &str = "sched-";

/// The periodic reconcile schedule of one runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub interval_secs: i64,
    pub mode: ReconcileMode,
    pub paused: bool,
    /// 0 while the configured defaults apply (never updated); +1 per update.
    pub generation: i64,
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: String,
}

impl Schedule {
    /// Returns the etag of this version (`"0"` for the configured defaults).
    pub fn etag(&self) -> String {
        self.generation.to_string()
    }
}

/// Checks the editable fields of a schedule.
pub fn validate_schedule(interval_secs: i64) -> Result<(), Vec<FieldViolation>> {
    if (MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&interval_secs) {
        Ok(())
    } else {
        Err(vec![FieldViolation::new(
            "schedule.interval_seconds",
            format!(
                "must be between {MIN_INTERVAL_SECS} and {MAX_INTERVAL_SECS} seconds, got {interval_secs}"
            ),
        )])
    }
}

/// Returns the start of the bucket `db_now` falls in and the cycle id of that bucket for this
/// runtime (`sched-<bucket start, UTC>-<runtime hash>`).
pub fn scheduled_cycle(runtime: &str, interval_secs: i64, db_now: DateTime<Utc>) -> (DateTime<Utc>, String) {
    let interval = interval_secs.clamp(MIN_INTERVAL_SECS, MAX_INTERVAL_SECS);
    let start_secs = db_now.timestamp().div_euclid(interval) * interval;
    let start = DateTime::<Utc>::from_timestamp(start_secs, 0).unwrap_or(db_now);
    let runtime_hash = &hex::encode(Sha256::digest(runtime.as_bytes()))[..8];
    (start, format!("{SCHEDULED_PREFIX}{}-{runtime_hash}", start.format("%Y%m%dT%H%M%SZ")))
}

/// How late the periodic loop is, if it is overdue: no scheduled cycle started within two
/// intervals plus one lease duration (the longest a take-over may take) of the later of the
/// last scheduled start, the last schedule change and `watching_since`.
pub fn reconcile_overdue(
    schedule: &Schedule,
    last_scheduled_start: Option<DateTime<Utc>>,
    watching_since: DateTime<Utc>,
    lease_secs: i64,
    now: DateTime<Utc>,
) -> Option<TimeDelta> {
    if schedule.paused {
        return None;
    }
    let reference = [last_scheduled_start, schedule.updated_at, Some(watching_since)]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(watching_since);
    let due = reference + TimeDelta::seconds(2 * schedule.interval_secs + lease_secs);
    (now > due).then(|| now - due)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn schedule(interval_secs: i64, paused: bool) -> Schedule {
        Schedule {
            interval_secs,
            mode: ReconcileMode::Observe,
            paused,
            generation: 0,
            updated_at: None,
            updated_by: String::new(),
        }
    }

    #[test]
    fn every_time_in_a_bucket_names_the_same_cycle() {
        let (start, first) = scheduled_cycle("fixture:trio", 60, t(1));
        let (_, same) = scheduled_cycle("fixture:trio", 60, t(59));
        let (_, next) = scheduled_cycle("fixture:trio", 60, t(60));
        let (_, other_runtime) = scheduled_cycle("local:/srv/oc", 60, t(1));
        assert_eq!(first, same);
        assert_ne!(first, next);
        assert_ne!(first, other_runtime);
        assert_eq!(start, t(0));
        assert!(first.starts_with("sched-20270115T080000Z-"), "{first}");
    }

    #[test]
    fn intervals_are_bounded() {
        assert!(validate_schedule(60).is_ok());
        assert_eq!(validate_schedule(0).unwrap_err()[0].field, "schedule.interval_seconds");
        assert!(validate_schedule(MAX_INTERVAL_SECS + 1).is_err());
    }

    #[test]
    fn overdue_after_two_intervals_and_a_lease_without_a_scheduled_start() {
        let s = schedule(60, false);
        assert_eq!(reconcile_overdue(&s, Some(t(0)), t(0), 15, t(135)), None);
        assert_eq!(reconcile_overdue(&s, Some(t(0)), t(0), 15, t(136)), Some(TimeDelta::seconds(1)));
        assert_eq!(reconcile_overdue(&s, Some(t(100)), t(0), 15, t(136)), None);
        assert_eq!(reconcile_overdue(&s, None, t(100), 15, t(200)), None, "counted from start-up");
        assert_eq!(reconcile_overdue(&schedule(60, true), Some(t(0)), t(0), 15, t(10_000)), None);
    }
}

//! Reconcile cycles: what one cycle decided, and whether it may heal.
//!
//! # Guarantees
//! - HEAL acts only on confirmed, non-flapping topology drift (runtime findings need a repair
//!   plan, which stays a human decision).
//! - At most one automatic attempt per (desired generation, runtime config hash).
//! - After failed attempts, the next one waits 30 s, doubling per consecutive failure, capped
//!   at one hour.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::drift::DriftKind;
use super::drift::tracker::{DriftState, TrackedItem};

/// What a cycle does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReconcileMode {
    /// Observe and track drift.
    Observe,
    /// Also compute (and store) a plan.
    Plan,
    /// Also roll the plan out when the guards allow.
    Heal,
}

impl ReconcileMode {
    /// Returns the UPPER_SNAKE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observe => "OBSERVE",
            Self::Plan => "PLAN",
            Self::Heal => "HEAL",
        }
    }
}

/// How a cycle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl RunState {
    /// Returns the UPPER_SNAKE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Skipped => "SKIPPED",
        }
    }
}

/// One reconcile cycle, idempotent by `cycle_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerRun {
    pub cycle_id: String,
    pub mode: ReconcileMode,
    pub trigger: String,
    pub state: RunState,
    pub actor: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub desired_generation: i64,
    pub config_hash: String,
    pub open_items: i64,
    pub actionable_items: i64,
    pub plan_id: Option<String>,
    pub rollout_id: Option<String>,
    /// Set when the cycle attempted a HEAL rollout (for the one-attempt and backoff guards).
    pub heal_attempted: bool,
    pub heal_succeeded: bool,
    pub message: String,
}

/// A previous HEAL attempt, as the guards need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealAttempt {
    pub desired_generation: i64,
    pub config_hash: String,
    pub succeeded: bool,
    pub finished_at: DateTime<Utc>,
}

/// Whether a HEAL cycle may roll out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealDecision {
    Heal,
    Hold(String),
}

/// Returns the drift items HEAL may act on.
pub fn actionable(items: &[TrackedItem]) -> Vec<&TrackedItem> {
    items
        .iter()
        .filter(|item| {
            item.state == DriftState::Confirmed && item.difference.kind != DriftKind::RuntimeFinding
        })
        .collect()
}

/// Returns the wait after `failures` consecutive failed attempts.
pub fn backoff(failures: u32) -> TimeDelta {
    if failures == 0 {
        return TimeDelta::zero();
    }
    let seconds = 30i64.saturating_mul(1i64 << (failures - 1).min(20));
    TimeDelta::seconds(seconds.min(3600))
}

/// Decides whether a HEAL cycle may roll out now. `attempts` are newest first.
pub fn heal_decision(
    items: &[TrackedItem],
    attempts: &[HealAttempt],
    desired_generation: i64,
    config_hash: &str,
    now: DateTime<Utc>,
) -> HealDecision {
    if actionable(items).is_empty() {
        return HealDecision::Hold("no confirmed, non-flapping topology drift".to_owned());
    }
    if attempts.iter().any(|a| a.desired_generation == desired_generation && a.config_hash == config_hash) {
        return HealDecision::Hold(format!(
            "already attempted once for desired generation {desired_generation} and config hash {config_hash}"
        ));
    }
    let failures = attempts.iter().take_while(|a| !a.succeeded).count() as u32;
    if let Some(last) = attempts.first().filter(|a| !a.succeeded) {
        let next = last.finished_at + backoff(failures);
        if now < next {
            return HealDecision::Hold(format!(
                "backing off after {failures} failed attempt(s) until {}",
                next.to_rfc3339()
            ));
        }
    }
    HealDecision::Heal
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::drift::DriftDifference;
    use crate::domain::drift::tracker::{TrackerConfig, observe};
    use crate::domain::model::Severity;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn confirmed(kind: DriftKind) -> Vec<TrackedItem> {
        let difference = DriftDifference {
            key: format!("{}/x", kind.as_str()),
            kind,
            severity: Severity::Error,
            subject: "x".into(),
            explanation: String::new(),
            fields: vec![],
        };
        let mut items = std::collections::BTreeMap::new();
        observe(&mut items, std::slice::from_ref(&difference), t(0), &TrackerConfig::default());
        observe(&mut items, &[difference], t(60), &TrackerConfig::default());
        items.into_values().collect()
    }

    fn attempt(generation: i64, hash: &str, succeeded: bool, at: i64) -> HealAttempt {
        HealAttempt {
            desired_generation: generation,
            config_hash: hash.into(),
            succeeded,
            finished_at: t(at),
        }
    }

    #[test]
    fn heal_needs_confirmed_topology_drift() {
        assert_eq!(
            heal_decision(&confirmed(DriftKind::AgentMissing), &[], 1, "h", t(100)),
            HealDecision::Heal
        );
        assert!(matches!(
            heal_decision(&confirmed(DriftKind::RuntimeFinding), &[], 1, "h", t(100)),
            HealDecision::Hold(_)
        ));
        assert!(matches!(heal_decision(&[], &[], 1, "h", t(100)), HealDecision::Hold(_)));
    }

    #[test]
    fn one_attempt_per_desired_generation_and_config_hash() {
        let items = confirmed(DriftKind::AgentMissing);
        let attempts = [attempt(1, "h", true, 50)];
        assert!(
            matches!(heal_decision(&items, &attempts, 1, "h", t(100)), HealDecision::Hold(m) if m.contains("already attempted"))
        );
        assert_eq!(heal_decision(&items, &attempts, 2, "h", t(100)), HealDecision::Heal);
    }

    #[test]
    fn failed_attempts_back_off_exponentially_up_to_an_hour() {
        assert_eq!(backoff(1), TimeDelta::seconds(30));
        assert_eq!(backoff(2), TimeDelta::seconds(60));
        assert_eq!(backoff(20), TimeDelta::seconds(3600));
        let items = confirmed(DriftKind::AgentMissing);
        let attempts = [attempt(1, "a", false, 100), attempt(1, "b", false, 50)];
        assert!(
            matches!(heal_decision(&items, &attempts, 1, "c", t(150)), HealDecision::Hold(m) if m.contains("backing off"))
        );
        assert_eq!(heal_decision(&items, &attempts, 1, "c", t(160)), HealDecision::Heal);
    }
}

//! Rollouts: the state machine of applying one plan, the recovery decision for a rollout
//! interrupted by a crash, and the runtime's write-rate limit.
//!
//! # Guarantees
//! - Only the transitions of DESIGN §3 are possible; anything else is refused.
//! - Recovery never guesses: a rollout whose runtime is neither at the plan's base, nor at its
//!   recorded target, nor semantically at the planned result is marked FAILED with the reason,
//!   and the runtime is left untouched for an operator.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RolloutState {
    Pending,
    Applying,
    Verifying,
    Succeeded,
    Failed,
    RollingBack,
    RolledBack,
}

impl RolloutState {
    /// Returns the UPPER_SNAKE name (stored and logged).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Applying => "APPLYING",
            Self::Verifying => "VERIFYING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::RollingBack => "ROLLING_BACK",
            Self::RolledBack => "ROLLED_BACK",
        }
    }

    /// Returns true when nothing more will happen on its own.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::RolledBack)
    }

    /// Returns whether `next` may follow this state.
    pub fn can_move_to(self, next: Self) -> bool {
        use RolloutState::*;
        matches!(
            (self, next),
            (Pending, Applying | Succeeded | Failed)
                | (Applying, Verifying | Failed | RollingBack)
                | (Verifying, Succeeded | RollingBack | Failed)
                | (Succeeded, RollingBack)
                | (RollingBack, RolledBack | Failed)
        )
    }
}

/// One recorded step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStep {
    pub at: DateTime<Utc>,
    pub state: RolloutState,
    pub message: String,
}

/// The application of one plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub runtime: String,
    pub plan_id: String,
    pub state: RolloutState,
    pub dry_run: bool,
    pub actor: String,
    pub base_hash: String,
    pub target_hash: Option<String>,
    /// The config text before the write (kept for rollback; never returned to clients).
    pub pre_image: Option<String>,
    pub error: Option<String>,
    pub steps: Vec<RolloutStep>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Version of the stored row this value was read as (0 before it is stored); every write
    /// bumps it, and a write from a stale version is refused.
    #[serde(default)]
    pub version: i64,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rollout cannot move from {from:?} to {to:?}")]
pub struct InvalidTransition {
    pub from: RolloutState,
    pub to: RolloutState,
}

impl Rollout {
    /// Moves to `next`, recording the step.
    pub fn advance(
        &mut self,
        next: RolloutState,
        message: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Result<(), InvalidTransition> {
        if !self.state.can_move_to(next) {
            return Err(InvalidTransition { from: self.state, to: next });
        }
        let message = message.into();
        if next == RolloutState::Failed || (next == RolloutState::RollingBack && self.error.is_none()) {
            self.error = Some(message.clone());
        }
        self.state = next;
        self.updated_at = at;
        self.steps.push(RolloutStep { at, state: next, message });
        Ok(())
    }

    /// Records progress within the current state.
    pub fn note(&mut self, message: impl Into<String>, at: DateTime<Utc>) {
        self.updated_at = at;
        self.steps.push(RolloutStep { at, state: self.state, message: message.into() });
    }
}

/// What to do with a rollout found unfinished at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing was written: mark FAILED with this reason.
    Fail(String),
    /// The change is in place: verify it now.
    Verify,
    /// Restore the pre-image (the config is still what the rollout wrote).
    Restore,
    /// The pre-image is back: mark ROLLED_BACK.
    RolledBack,
}

/// Facts about the runtime at recovery time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryFacts<'a> {
    pub current_hash: &'a str,
    /// True when the current config equals the planned result semantically.
    pub matches_plan: bool,
}

/// Decides how to resolve an interrupted rollout.
pub fn recover(rollout: &Rollout, facts: &RecoveryFacts<'_>) -> Recovery {
    let at_base = facts.current_hash == rollout.base_hash;
    let at_target = rollout.target_hash.as_deref() == Some(facts.current_hash) || facts.matches_plan;
    match rollout.state {
        RolloutState::Pending => Recovery::Fail("interrupted before it started; nothing was written".to_owned()),
        RolloutState::Applying | RolloutState::Verifying if at_base => {
            Recovery::Fail("interrupted before the write took effect; the runtime is unchanged".to_owned())
        }
        RolloutState::Applying | RolloutState::Verifying if at_target => Recovery::Verify,
        RolloutState::RollingBack if at_base => Recovery::RolledBack,
        RolloutState::RollingBack if at_target => Recovery::Restore,
        RolloutState::Applying | RolloutState::Verifying | RolloutState::RollingBack => Recovery::Fail(
            "interrupted, and the runtime config is neither the pre-image nor the planned result; it was left as it is \
             for an operator (the pre-image is kept in the rollout)"
                .to_owned(),
        ),
        RolloutState::Succeeded | RolloutState::Failed | RolloutState::RolledBack => {
            Recovery::Fail("already final".to_owned())
        }
    }
}

/// OpenClaw accepts at most this many config writes per window.
pub const WRITES_PER_WINDOW: usize = 30;

/// Sliding-window limit of config writes per runtime.
#[derive(Debug, Clone, Default)]
pub struct WriteLimiter {
    writes: VecDeque<DateTime<Utc>>,
}

impl WriteLimiter {
    /// A limiter that has seen `writes` (any order).
    pub fn from_writes(mut writes: Vec<DateTime<Utc>>) -> Self {
        writes.sort();
        Self { writes: writes.into() }
    }

    /// Returns when the next write may happen (`now` when a slot is free).
    pub fn next_slot(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        let window = TimeDelta::minutes(1);
        while self.writes.front().is_some_and(|t| now - *t >= window) {
            self.writes.pop_front();
        }
        if self.writes.len() < WRITES_PER_WINDOW {
            now
        } else {
            self.writes.front().map(|oldest| *oldest + window).unwrap_or(now)
        }
    }

    /// Records a write.
    pub fn record(&mut self, at: DateTime<Utc>) {
        self.writes.push_back(at);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn rollout(state: RolloutState) -> Rollout {
        let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        Rollout {
            id: "ro-1".into(),
            runtime: "fixture:trio".into(),
            plan_id: "p".into(),
            state,
            dry_run: false,
            actor: "op".into(),
            base_hash: "base".into(),
            target_hash: None,
            pre_image: Some("{}".into()),
            error: None,
            steps: vec![],
            created_at: at,
            updated_at: at,
            version: 0,
        }
    }

    #[test]
    fn the_happy_path_and_rollback_are_allowed() {
        let at = Utc::now();
        let mut r = rollout(RolloutState::Pending);
        for next in [
            RolloutState::Applying,
            RolloutState::Verifying,
            RolloutState::RollingBack,
            RolloutState::RolledBack,
        ] {
            r.advance(next, "step", at).unwrap();
        }
        assert_eq!(r.steps.len(), 4);
        assert_eq!(r.error.as_deref(), Some("step"), "the reason for rolling back is kept");
    }

    #[test]
    fn final_states_cannot_move_except_a_manual_rollback_of_a_success() {
        let at = Utc::now();
        assert!(rollout(RolloutState::Failed).advance(RolloutState::Applying, "x", at).is_err());
        assert!(rollout(RolloutState::RolledBack).advance(RolloutState::RollingBack, "x", at).is_err());
        assert!(rollout(RolloutState::Succeeded).advance(RolloutState::RollingBack, "x", at).is_ok());
        assert!(rollout(RolloutState::Pending).advance(RolloutState::Verifying, "x", at).is_err());
    }

    #[test]
    fn recovery_follows_the_runtime_hash() {
        let mut r = rollout(RolloutState::Applying);
        let facts = |hash: &'static str, matches_plan| RecoveryFacts { current_hash: hash, matches_plan };
        assert!(matches!(recover(&r, &facts("base", false)), Recovery::Fail(_)));
        assert_eq!(recover(&r, &facts("new", true)), Recovery::Verify);
        assert!(
            matches!(recover(&r, &facts("other", false)), Recovery::Fail(m) if m.contains("left as it is"))
        );
        r.state = RolloutState::Verifying;
        r.target_hash = Some("new".into());
        assert_eq!(recover(&r, &facts("new", false)), Recovery::Verify);
        r.state = RolloutState::RollingBack;
        assert_eq!(recover(&r, &facts("base", false)), Recovery::RolledBack);
        assert_eq!(recover(&r, &facts("new", false)), Recovery::Restore);
        assert!(matches!(recover(&rollout(RolloutState::Pending), &facts("base", false)), Recovery::Fail(_)));
    }

    #[test]
    fn the_write_limiter_allows_thirty_writes_a_minute() {
        let start = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let mut limiter = WriteLimiter::default();
        for i in 0..30 {
            let at = start + TimeDelta::seconds(i);
            assert_eq!(limiter.next_slot(at), at);
            limiter.record(at);
        }
        let now = start + TimeDelta::seconds(30);
        assert_eq!(limiter.next_slot(now), start + TimeDelta::seconds(60));
        assert_eq!(limiter.next_slot(start + TimeDelta::seconds(61)), start + TimeDelta::seconds(61));
    }
}

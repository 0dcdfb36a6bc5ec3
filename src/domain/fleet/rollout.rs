//! Fleet rollouts: one desired team applied to every runtime a selector matches, in waves.
//!
//! A wave starts only when the one before it succeeded on every runtime; each runtime's change
//! is an ordinary rollout (base-hash guard, dry run, verification, rollback). Any failure halts
//! the fleet rollout: the runtimes still in flight finish, the failed ones get their previous
//! desired team back (their config was already rolled back or never written), and later waves
//! never start. A fleet rollout can be paused (no new wave starts; in-flight rollouts finish),
//! resumed, and cancelled (no wave starts again; it ends once nothing is in flight).
//!
//! The state lives in one stored record; [`decide`] says what the driver does next from that
//! record alone, so a driver that restarts (or another replica's) continues where it stood.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::rollout::RolloutState;
use crate::domain::topology::Topology;

/// Most waves one fleet rollout has.
pub const MAX_WAVES: usize = 20;

/// One step of a wave plan: after the wave, this many runtimes have been rolled out to
/// (cumulative), as a count or a percentage of all (rounded up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaveStep {
    Count(usize),
    Percent(u8),
}

/// Parses `1,25%,100%`: cumulative steps, each larger than the one before.
pub fn parse_wave_steps(text: &str) -> Result<Vec<WaveStep>, String> {
    let mut steps = Vec::new();
    for part in text.split(',').map(str::trim) {
        let step = if let Some(percent) = part.strip_suffix('%') {
            match percent.trim().parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => WaveStep::Percent(p),
                _ => return Err(format!("{part:?} is not a percentage between 1% and 100%")),
            }
        } else {
            match part.parse::<usize>() {
                Ok(n) if n >= 1 => WaveStep::Count(n),
                _ => return Err(format!("{part:?} is neither a runtime count (≥ 1) nor a percentage")),
            }
        };
        steps.push(step);
    }
    if steps.len() > MAX_WAVES {
        return Err(format!("at most {MAX_WAVES} waves"));
    }
    Ok(steps)
}

/// Splits `runtimes` (in the order they are rolled out to) into waves by cumulative `steps`;
/// whatever the last step leaves is one more wave. Steps that add nothing are dropped.
pub fn plan_waves(runtimes: &[String], steps: &[WaveStep]) -> Vec<Vec<String>> {
    let total = runtimes.len();
    let mut waves = Vec::new();
    let mut done = 0;
    for step in steps {
        let upto = match *step {
            WaveStep::Count(n) => n,
            WaveStep::Percent(p) => (total * usize::from(p)).div_ceil(100),
        }
        .min(total);
        if upto > done {
            waves.push(runtimes[done..upto].to_vec());
            done = upto;
        }
    }
    if done < total {
        waves.push(runtimes[done..].to_vec());
    }
    waves
}

/// Where a fleet rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FleetRolloutState {
    Running,
    Paused,
    Succeeded,
    /// Halted by a failure (`error` says where and why).
    Failed,
    Cancelled,
}

impl FleetRolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Paused => "PAUSED",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Running, Self::Paused, Self::Succeeded, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// Where one runtime of a fleet rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetState {
    /// Its wave has not started.
    Waiting,
    /// Its desired team is stored and its rollout runs.
    Applying,
    Succeeded,
    /// The runtime already had the team: nothing to roll out.
    Unchanged,
    /// Its rollout failed or was rolled back.
    Failed,
    /// Never started (a failure halted the fleet rollout, it was cancelled, or the runtime is
    /// paused).
    Skipped,
}

impl TargetState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "WAITING",
            Self::Applying => "APPLYING",
            Self::Succeeded => "SUCCEEDED",
            Self::Unchanged => "UNCHANGED",
            Self::Failed => "FAILED",
            Self::Skipped => "SKIPPED",
        }
    }

    fn done_well(self) -> bool {
        matches!(self, Self::Succeeded | Self::Unchanged)
    }
}

/// One runtime of a fleet rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetTarget {
    pub runtime: String,
    pub wave: usize,
    pub state: TargetState,
    /// The runtime's rollout, once created.
    #[serde(default)]
    pub rollout_id: Option<String>,
    /// The desired generation this fleet rollout stored on the runtime.
    #[serde(default)]
    pub desired_generation: Option<i64>,
    /// The runtime's desired generation before it (what a failure puts back; `None`: it had
    /// none, and the observed team is put back).
    #[serde(default)]
    pub previous_generation: Option<i64>,
    /// Whether the runtime's previous desired team was put back after a failure.
    #[serde(default)]
    pub restored: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl FleetTarget {
    pub fn waiting(runtime: impl Into<String>, wave: usize) -> Self {
        Self {
            runtime: runtime.into(),
            wave,
            state: TargetState::Waiting,
            rollout_id: None,
            desired_generation: None,
            previous_generation: None,
            restored: false,
            error: None,
            started_at: None,
            finished_at: None,
        }
    }

    /// Takes the outcome of the runtime's rollout.
    pub fn observe(&mut self, state: RolloutState, error: Option<&str>, now: DateTime<Utc>) {
        if self.state != TargetState::Applying || !state.is_final() {
            return;
        }
        self.state =
            if state == RolloutState::Succeeded { TargetState::Succeeded } else { TargetState::Failed };
        if self.state == TargetState::Failed {
            self.error = Some(format!(
                "rollout {} ended {}{}",
                self.rollout_id.as_deref().unwrap_or("?"),
                state.as_str(),
                error.map(|e| format!(": {e}")).unwrap_or_default()
            ));
        }
        self.finished_at = Some(now);
    }
}

/// A fleet rollout as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetRollout {
    pub id: String,
    /// The selector as given (canonical text).
    pub selector: String,
    /// The desired team every runtime gets.
    pub topology: Topology,
    /// Every runtime, in wave order.
    pub targets: Vec<FleetTarget>,
    pub waves: usize,
    pub current_wave: usize,
    pub state: FleetRolloutState,
    /// Set by `CancelFleetRollout`; the rollout ends CANCELLED once nothing is in flight.
    #[serde(default)]
    pub cancel_requested: bool,
    #[serde(default)]
    pub error: Option<String>,
    pub actor: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Grows with every stored change (optimistic concurrency between drivers).
    #[serde(default)]
    pub version: i64,
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetAction {
    /// Store the desired team on these runtimes of the current wave and start their rollouts.
    Start(Vec<String>),
    /// Put this failed runtime's previous desired team back.
    Restore(String),
    /// The current wave succeeded: start the next.
    Advance,
    /// Nothing is in flight any more: end in this state.
    Finish(FleetRolloutState),
    /// Wait for in-flight rollouts (or for a resume).
    Wait,
}

/// Why a pause, resume or cancel was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fleet rollout {id} is {state}: {reason}")]
pub struct FleetTransitionError {
    pub id: String,
    pub state: &'static str,
    pub reason: &'static str,
}

impl FleetRollout {
    /// A new fleet rollout over `waves` (each a list of runtime names), plus the runtimes it
    /// skips from the start (paused ones) with why.
    pub fn new(
        id: String,
        selector: String,
        topology: Topology,
        waves: Vec<Vec<String>>,
        skipped: Vec<(String, String)>,
        actor: String,
        now: DateTime<Utc>,
    ) -> Self {
        let count = waves.len();
        let mut targets: Vec<FleetTarget> = waves
            .into_iter()
            .enumerate()
            .flat_map(|(wave, runtimes)| runtimes.into_iter().map(move |r| FleetTarget::waiting(r, wave)))
            .collect();
        for (runtime, reason) in skipped {
            let mut target = FleetTarget::waiting(runtime, count);
            target.state = TargetState::Skipped;
            target.error = Some(reason);
            targets.push(target);
        }
        Self {
            id,
            selector,
            topology,
            targets,
            waves: count,
            current_wave: 0,
            state: if count == 0 { FleetRolloutState::Succeeded } else { FleetRolloutState::Running },
            cancel_requested: false,
            error: None,
            actor,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    fn in_flight(&self) -> bool {
        self.targets.iter().any(|t| t.state == TargetState::Applying)
    }

    /// Stops starting waves until resumed.
    pub fn pause(&mut self, now: DateTime<Utc>) -> Result<(), FleetTransitionError> {
        match self.state {
            FleetRolloutState::Running if !self.cancel_requested => {
                self.state = FleetRolloutState::Paused;
                self.updated_at = now;
                Ok(())
            }
            FleetRolloutState::Paused => Ok(()),
            _ => Err(self.refusal("only a running fleet rollout can be paused")),
        }
    }

    pub fn resume(&mut self, now: DateTime<Utc>) -> Result<(), FleetTransitionError> {
        match self.state {
            FleetRolloutState::Paused => {
                self.state = FleetRolloutState::Running;
                self.updated_at = now;
                Ok(())
            }
            FleetRolloutState::Running => Ok(()),
            _ => Err(self.refusal("only a paused fleet rollout can be resumed")),
        }
    }

    /// No wave starts again; the runtimes that never started are skipped.
    pub fn cancel(&mut self, now: DateTime<Utc>) -> Result<(), FleetTransitionError> {
        if self.state.is_final() {
            return Err(self.refusal("it has ended"));
        }
        self.cancel_requested = true;
        for target in &mut self.targets {
            if target.state == TargetState::Waiting {
                target.state = TargetState::Skipped;
                target.error = Some("cancelled before its wave started".to_owned());
            }
        }
        self.updated_at = now;
        Ok(())
    }

    fn refusal(&self, reason: &'static str) -> FleetTransitionError {
        FleetTransitionError { id: self.id.clone(), state: self.state.as_str(), reason }
    }

    /// Applies a decision the driver carried out (other than `Start` and `Restore`, whose
    /// effects the driver records on the targets itself).
    pub fn apply(&mut self, action: &FleetAction, now: DateTime<Utc>) {
        match action {
            FleetAction::Advance => self.current_wave += 1,
            FleetAction::Finish(state) => {
                self.state = *state;
                if *state == FleetRolloutState::Failed {
                    for target in &mut self.targets {
                        if target.state == TargetState::Waiting {
                            target.state = TargetState::Skipped;
                            target.error =
                                Some("a failure halted the fleet rollout before its wave".to_owned());
                        }
                    }
                }
            }
            FleetAction::Start(_) | FleetAction::Restore(_) | FleetAction::Wait => return,
        }
        self.updated_at = now;
    }
}

/// What the driver does next with `rollout`, from its record alone.
pub fn decide(rollout: &FleetRollout) -> FleetAction {
    if rollout.state.is_final() {
        return FleetAction::Wait;
    }
    // A failed runtime gets its previous team back first, even while others finish.
    if let Some(failed) = rollout.targets.iter().find(|t| t.state == TargetState::Failed && !t.restored) {
        return FleetAction::Restore(failed.runtime.clone());
    }
    let failed = rollout.targets.iter().any(|t| t.state == TargetState::Failed);
    if failed || rollout.cancel_requested {
        if rollout.in_flight() {
            return FleetAction::Wait;
        }
        return FleetAction::Finish(if failed {
            FleetRolloutState::Failed
        } else {
            FleetRolloutState::Cancelled
        });
    }
    if rollout.state == FleetRolloutState::Paused {
        return FleetAction::Wait;
    }
    let wave: Vec<&FleetTarget> = rollout.targets.iter().filter(|t| t.wave == rollout.current_wave).collect();
    let waiting: Vec<String> =
        wave.iter().filter(|t| t.state == TargetState::Waiting).map(|t| t.runtime.clone()).collect();
    if !waiting.is_empty() {
        return FleetAction::Start(waiting);
    }
    if wave.iter().any(|t| t.state == TargetState::Applying) {
        return FleetAction::Wait;
    }
    if wave.iter().all(|t| t.state.done_well()) {
        if rollout.current_wave + 1 < rollout.waves {
            return FleetAction::Advance;
        }
        return FleetAction::Finish(FleetRolloutState::Succeeded);
    }
    FleetAction::Wait
}

/// The first failure's description, for the rollout's `error`.
pub fn halt_reason(rollout: &FleetRollout) -> Option<String> {
    rollout.targets.iter().find(|t| t.state == TargetState::Failed).map(|t| {
        format!(
            "halted in wave {} of {}: runtime {} failed ({})",
            t.wave + 1,
            rollout.waves,
            t.runtime,
            t.error.as_deref().unwrap_or("no reason recorded")
        )
    })
}

#[cfg(test)]
mod tests;

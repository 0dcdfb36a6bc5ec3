//! `DriftService`: drift items and summaries, patch plans, rollouts.

use chrono::{DateTime, Utc};

use super::{timestamp, unknown};
use crate::control::{AppError, ObserveNowResult};
use crate::domain::drift::summary::DriftSummary;
use crate::domain::drift::tracker::{DriftState, TrackedItem};
use crate::domain::drift::{DriftDifference, DriftKind};
use crate::domain::patch::{PatchPlan, PlanKind};
use crate::domain::rollout::{Rollout, RolloutState};
use crate::pb::v1 as pb;

impl From<DriftKind> for pb::DriftKind {
    fn from(value: DriftKind) -> Self {
        match value {
            DriftKind::AgentMissing => Self::AgentMissing,
            DriftKind::AgentUnexpected => Self::AgentUnexpected,
            DriftKind::AgentChanged => Self::AgentChanged,
            DriftKind::EdgeMissing => Self::EdgeMissing,
            DriftKind::EdgeUnexpected => Self::EdgeUnexpected,
            DriftKind::RouteMissing => Self::RouteMissing,
            DriftKind::RouteUnexpected => Self::RouteUnexpected,
            DriftKind::TrustWidened => Self::TrustWidened,
            DriftKind::RuntimeFinding => Self::RuntimeFinding,
            DriftKind::PermissionWidened => Self::PermissionWidened,
            DriftKind::PermissionChanged => Self::PermissionChanged,
        }
    }
}

impl From<DriftState> for pb::DriftState {
    fn from(value: DriftState) -> Self {
        match value {
            DriftState::Pending => Self::Pending,
            DriftState::Confirmed => Self::Confirmed,
            DriftState::Resolved => Self::Resolved,
            DriftState::Flapping => Self::Flapping,
        }
    }
}

impl From<&DriftDifference> for pb::TopologyDifference {
    fn from(value: &DriftDifference) -> Self {
        Self {
            key: value.key.clone(),
            kind: pb::DriftKind::from(value.kind).into(),
            severity: pb::Severity::from(value.severity).into(),
            subject: value.subject.clone(),
            explanation: value.explanation.clone(),
            fields: value.fields.clone(),
        }
    }
}

impl From<&TrackedItem> for pb::DriftItem {
    fn from(value: &TrackedItem) -> Self {
        let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        Self {
            runtime: String::new(),
            key: value.key().to_owned(),
            difference: Some((&value.difference).into()),
            state: pb::DriftState::from(value.state).into(),
            first_seen_time: Some(timestamp(value.first_seen_at)),
            last_seen_time: Some(timestamp(value.last_seen_at)),
            state_change_time: Some(timestamp(value.state_changed_at)),
            consecutive_present: clamp(value.consecutive_present),
            consecutive_absent: clamp(value.consecutive_absent),
            recent_reopenings: super::count(value.reopenings.len()),
            acknowledged: value.acknowledged_by.is_some(),
            acknowledged_by: value.acknowledged_by.clone().unwrap_or_default(),
        }
    }
}

impl From<&DriftSummary> for pb::GetDriftSummaryResponse {
    fn from(value: &DriftSummary) -> Self {
        let count = |name: &str, count: i32| pb::DriftCount { name: name.to_owned(), count };
        Self {
            runtime: String::new(),
            in_sync: value.in_sync,
            needs_attention: value.needs_attention,
            by_state: value
                .by_state
                .iter()
                .map(|(s, n)| count(pb::DriftState::from(*s).as_str_name(), *n))
                .collect(),
            by_severity: value
                .by_severity
                .iter()
                .map(|(s, n)| count(pb::Severity::from(*s).as_str_name(), *n))
                .collect(),
            by_kind: value
                .by_kind
                .iter()
                .map(|(k, n)| count(pb::DriftKind::from(*k).as_str_name(), *n))
                .collect(),
            last_observation_time: value.last_observation_at.map(timestamp),
            desired_generation: value.desired_generation,
            desired_revision: value.desired_revision.clone(),
            observed_revision: value.observed_revision.clone(),
            config_hash: value.config_hash.clone(),
        }
    }
}

impl From<&ObserveNowResult> for pb::ObserveNowResponse {
    fn from(value: &ObserveNowResult) -> Self {
        Self {
            summary: Some((&value.summary).into()),
            transitioned: value.transitioned.iter().map(Into::into).collect(),
        }
    }
}

impl From<PlanKind> for pb::PlanKind {
    fn from(value: PlanKind) -> Self {
        match value {
            PlanKind::Apply => Self::Apply,
            PlanKind::Repair => Self::Repair,
        }
    }
}

/// Decodes a plan kind (UNSPECIFIED means APPLY).
pub fn plan_kind_from_pb(value: i32) -> Result<PlanKind, AppError> {
    match pb::PlanKind::try_from(value) {
        Ok(pb::PlanKind::Unspecified | pb::PlanKind::Apply) => Ok(PlanKind::Apply),
        Ok(pb::PlanKind::Repair) => Ok(PlanKind::Repair),
        Err(_) => Err(unknown("kind", "plan kind")),
    }
}

/// A stored plan with its creation time.
pub fn plan_created(value: &PatchPlan, created_at: DateTime<Utc>) -> pb::PatchPlan {
    pb::PatchPlan {
        runtime: String::new(),
        id: value.id.clone(),
        kind: pb::PlanKind::from(value.kind).into(),
        base_hash: value.base_hash.clone(),
        desired_generation: value.desired_generation,
        merge_patch_json: value.merge_patch.to_string(),
        replace_paths: value.replace_paths.clone(),
        operations: value.operations.clone(),
        guards: value.guards.clone(),
        warnings: value.warnings.clone(),
        create_workspaces: value.create_workspaces.clone(),
        expected_resolved: value.expected_resolved.clone(),
        removed_agents: value.removed_agents.clone(),
        create_time: Some(timestamp(created_at)),
    }
}

impl From<RolloutState> for pb::RolloutState {
    fn from(value: RolloutState) -> Self {
        match value {
            RolloutState::Pending => Self::Pending,
            RolloutState::Applying => Self::Applying,
            RolloutState::Verifying => Self::Verifying,
            RolloutState::Succeeded => Self::Succeeded,
            RolloutState::Failed => Self::Failed,
            RolloutState::RollingBack => Self::RollingBack,
            RolloutState::RolledBack => Self::RolledBack,
        }
    }
}

/// The rollout as clients see it (the pre-image stays on the server: it may hold secrets).
impl From<&Rollout> for pb::Rollout {
    fn from(value: &Rollout) -> Self {
        Self {
            runtime: value.runtime.clone(),
            id: value.id.clone(),
            plan_id: value.plan_id.clone(),
            state: pb::RolloutState::from(value.state).into(),
            dry_run: value.dry_run,
            actor: value.actor.clone(),
            base_hash: value.base_hash.clone(),
            target_hash: value.target_hash.clone().unwrap_or_default(),
            error: value.error.clone().unwrap_or_default(),
            steps: value
                .steps
                .iter()
                .map(|step| pb::RolloutStep {
                    time: Some(timestamp(step.at)),
                    state: pb::RolloutState::from(step.state).into(),
                    message: step.message.clone(),
                })
                .collect(),
            create_time: Some(timestamp(value.created_at)),
            update_time: Some(timestamp(value.updated_at)),
        }
    }
}

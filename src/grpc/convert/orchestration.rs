//! `OrchestrationService`: task profiles, setup previews and their results, persistent
//! agents, workspace records, learning proposals.

use chrono::{DateTime, Utc};

use super::{count, timestamp, unknown};
use crate::control::{AppError, FileOutcome, FileResult, StoredPreview, Versioned};
use crate::domain::classify::{RiskLevel, TaskInput, TaskProfile};
use crate::domain::persistent::{
    AgentFields, AgentLifecycle, LearningProposal, PersistentAgent, ProposalState, RetentionPolicy,
    WorkspaceLifecycle, WorkspaceRecord,
};
use crate::domain::setup::SetupPass;
use crate::domain::setup::bootstrap::Budgets;
use crate::pb::v1 as pb;

impl From<pb::TaskInput> for TaskInput {
    fn from(value: pb::TaskInput) -> Self {
        Self {
            title: value.title,
            description: value.description,
            labels: value.labels,
            domain_hint: value.domain_hint,
        }
    }
}

impl From<RiskLevel> for pb::RiskLevel {
    fn from(value: RiskLevel) -> Self {
        match value {
            RiskLevel::Low => Self::Low,
            RiskLevel::Medium => Self::Medium,
            RiskLevel::High => Self::High,
            RiskLevel::Critical => Self::Critical,
        }
    }
}

/// Decodes an optional risk level (UNSPECIFIED → `None`).
pub fn risk_from_pb(value: i32, field: &str) -> Result<Option<RiskLevel>, AppError> {
    match pb::RiskLevel::try_from(value) {
        Ok(pb::RiskLevel::Unspecified) => Ok(None),
        Ok(pb::RiskLevel::Low) => Ok(Some(RiskLevel::Low)),
        Ok(pb::RiskLevel::Medium) => Ok(Some(RiskLevel::Medium)),
        Ok(pb::RiskLevel::High) => Ok(Some(RiskLevel::High)),
        Ok(pb::RiskLevel::Critical) => Ok(Some(RiskLevel::Critical)),
        Err(_) => Err(unknown(field, "risk level")),
    }
}

impl From<&TaskProfile> for pb::TaskProfile {
    fn from(value: &TaskProfile) -> Self {
        Self {
            category: value.category.clone(),
            category_name: value.category_name.clone(),
            domain: value.domain.clone(),
            risk: pb::RiskLevel::from(value.risk).into(),
            hints: value.hints.clone(),
            confidence: value.confidence,
            alternatives: value
                .alternatives
                .iter()
                .map(|a| pb::CategoryAlternative {
                    category: a.category.clone(),
                    score: a.score,
                    confidence: a.confidence,
                })
                .collect(),
            matched_rules: value
                .matched
                .iter()
                .map(|m| pb::RuleMatch {
                    rule_id: m.rule_id.clone(),
                    kind: m.kind.to_string(),
                    target: m.target.to_string(),
                    field: m.field.as_str().to_owned(),
                    evidence: m.evidence.clone(),
                    score: m.score,
                })
                .collect(),
            rules_version: value.rules_version.clone(),
        }
    }
}

/// Decodes a caller-supplied profile (only what setup needs: category, risk, hints).
impl TryFrom<pb::TaskProfile> for TaskProfile {
    type Error = AppError;

    fn try_from(value: pb::TaskProfile) -> Result<Self, AppError> {
        let risk = risk_from_pb(value.risk, "profile.risk")?
            .ok_or_else(|| AppError::invalid("profile.risk", "required when a profile is given"))?;
        Ok(Self {
            category_name: value.category_name,
            domain: value.domain,
            risk,
            hints: value.hints,
            confidence: value.confidence,
            alternatives: Vec::new(),
            matched: Vec::new(),
            rules_version: value.rules_version,
            category: value.category,
        })
    }
}

impl From<&Versioned<PersistentAgent>> for pb::PersistentAgent {
    fn from(value: &Versioned<PersistentAgent>) -> Self {
        let agent = &value.value;
        Self {
            agent_id: agent.agent_id.clone(),
            display_name: agent.display_name.clone(),
            domain: agent.domain.clone(),
            description: agent.description.clone(),
            business_link: agent.business_link.clone(),
            owner: agent.owner.clone(),
            lifecycle: match agent.lifecycle {
                AgentLifecycle::Active => pb::AgentLifecycle::Active,
                AgentLifecycle::Retired => pb::AgentLifecycle::Retired,
            }
            .into(),
            etag: value.etag.clone(),
            create_time: Some(timestamp(agent.created_at)),
            created_by: agent.created_by.clone(),
            update_time: Some(timestamp(agent.updated_at)),
            updated_by: agent.updated_by.clone(),
            retire_time: agent.retired_at.map(timestamp),
            retire_reason: agent.retire_reason.clone(),
        }
    }
}

/// A workspace record with its agent's retirement time (which the due time counts from).
pub fn workspace_record(
    value: &Versioned<WorkspaceRecord>,
    retired_at: Option<DateTime<Utc>>,
) -> pb::WorkspaceRecord {
    let record = &value.value;
    pb::WorkspaceRecord {
        agent_id: record.agent_id.clone(),
        path: record.path.clone(),
        owner: record.owner.clone(),
        lifecycle: match record.lifecycle {
            WorkspaceLifecycle::InUse => pb::WorkspaceLifecycle::InUse,
            WorkspaceLifecycle::Retained => pb::WorkspaceLifecycle::Retained,
        }
        .into(),
        policy: match record.policy {
            RetentionPolicy::Keep => pb::RetentionPolicy::Keep,
            RetentionPolicy::ArchiveAfter => pb::RetentionPolicy::ArchiveAfter,
            RetentionPolicy::DeleteAfter => pb::RetentionPolicy::DeleteAfter,
        }
        .into(),
        retention_days: i32::try_from(record.retention_days).unwrap_or(i32::MAX),
        due_time: record.due_at(retired_at).map(timestamp),
        etag: value.etag.clone(),
        update_time: Some(timestamp(record.updated_at)),
        updated_by: record.updated_by.clone(),
    }
}

impl From<ProposalState> for pb::ProposalState {
    fn from(value: ProposalState) -> Self {
        match value {
            ProposalState::Proposed => Self::Proposed,
            ProposalState::Approved => Self::Approved,
            ProposalState::Rejected => Self::Rejected,
        }
    }
}

impl From<&LearningProposal> for pb::LearningProposal {
    fn from(value: &LearningProposal) -> Self {
        Self {
            id: value.id.clone(),
            agent_id: value.agent_id.clone(),
            change: value.change.clone(),
            rationale: value.rationale.clone(),
            evidence_refs: value.evidence.clone(),
            author: value.author.clone(),
            state: pb::ProposalState::from(value.state).into(),
            create_time: Some(timestamp(value.created_at)),
            reviewer: value.reviewer.clone().unwrap_or_default(),
            review_note: value.review_note.clone(),
            decide_time: value.decided_at.map(timestamp),
            setup_preview_id: value.setup_preview_id.clone().unwrap_or_default(),
        }
    }
}

impl From<Option<pb::PersistentAgentFields>> for AgentFields {
    fn from(value: Option<pb::PersistentAgentFields>) -> Self {
        let value = value.unwrap_or_default();
        Self {
            display_name: value.display_name,
            domain: value.domain,
            description: value.description,
            business_link: value.business_link,
            owner: value.owner,
        }
    }
}

impl From<SetupPass> for pb::SetupPass {
    fn from(value: SetupPass) -> Self {
        match value {
            SetupPass::Initial => Self::Initial,
            SetupPass::Stabilization => Self::Stabilization,
        }
    }
}

/// Decodes a setup pass (UNSPECIFIED means INITIAL).
pub fn setup_pass_from_pb(value: i32) -> Result<SetupPass, AppError> {
    match pb::SetupPass::try_from(value) {
        Ok(pb::SetupPass::Unspecified | pb::SetupPass::Initial) => Ok(SetupPass::Initial),
        Ok(pb::SetupPass::Stabilization) => Ok(SetupPass::Stabilization),
        Err(_) => Err(unknown("pass", "setup pass")),
    }
}

/// Decodes an optional lifecycle filter.
pub fn lifecycle_from_pb(value: i32) -> Result<Option<AgentLifecycle>, AppError> {
    match pb::AgentLifecycle::try_from(value) {
        Ok(pb::AgentLifecycle::Unspecified) => Ok(None),
        Ok(pb::AgentLifecycle::Active) => Ok(Some(AgentLifecycle::Active)),
        Ok(pb::AgentLifecycle::Retired) => Ok(Some(AgentLifecycle::Retired)),
        Err(_) => Err(unknown("lifecycle", "lifecycle")),
    }
}

/// Decodes an optional proposal state filter.
pub fn proposal_state_from_pb(value: i32) -> Result<Option<ProposalState>, AppError> {
    match pb::ProposalState::try_from(value) {
        Ok(pb::ProposalState::Unspecified) => Ok(None),
        Ok(pb::ProposalState::Proposed) => Ok(Some(ProposalState::Proposed)),
        Ok(pb::ProposalState::Approved) => Ok(Some(ProposalState::Approved)),
        Ok(pb::ProposalState::Rejected) => Ok(Some(ProposalState::Rejected)),
        Err(_) => Err(unknown("state", "proposal state")),
    }
}

/// Decodes a retention policy (required).
pub fn retention_from_pb(value: i32) -> Result<RetentionPolicy, AppError> {
    match pb::RetentionPolicy::try_from(value) {
        Ok(pb::RetentionPolicy::Keep) => Ok(RetentionPolicy::Keep),
        Ok(pb::RetentionPolicy::ArchiveAfter) => Ok(RetentionPolicy::ArchiveAfter),
        Ok(pb::RetentionPolicy::DeleteAfter) => Ok(RetentionPolicy::DeleteAfter),
        _ => Err(AppError::invalid("policy", "must be KEEP, ARCHIVE_AFTER or DELETE_AFTER")),
    }
}

/// Budgets of a preview request (0 = the default; negative is refused).
impl TryFrom<Option<pb::SetupBudgets>> for Budgets {
    type Error = AppError;

    fn try_from(value: Option<pb::SetupBudgets>) -> Result<Self, AppError> {
        let defaults = Budgets::default();
        let value = value.unwrap_or_default();
        let size = |n: i32, field: &str, default: usize| match n {
            0 => Ok(default),
            n if n > 0 => Ok(n as usize),
            _ => Err(AppError::invalid(field.to_owned(), "must not be negative")),
        };
        Ok(Budgets {
            file_chars: size(value.file_chars, "budgets.file_chars", defaults.file_chars)?,
            total_chars: size(value.total_chars, "budgets.total_chars", defaults.total_chars)?,
        })
    }
}

impl From<&StoredPreview> for pb::SetupPreview {
    fn from(value: &StoredPreview) -> Self {
        Self {
            runtime: String::new(),
            id: value.id.clone(),
            create_time: Some(timestamp(value.created_at)),
            expire_time: Some(timestamp(value.expires_at)),
            pass: pb::SetupPass::from(value.pass).into(),
            profile: Some((&value.profile).into()),
            topology: Some((&value.plan.topology).into()),
            agents: value
                .plan
                .agents
                .iter()
                .map(|a| pb::ProposedAgent {
                    agent_id: a.agent_id.clone(),
                    role: a.role.clone(),
                    model_tier: a.model_tier.clone(),
                    model: a.model.clone().unwrap_or_default(),
                    tools_profile: a.tools_profile.clone(),
                    trust: pb::TrustLevel::from(a.trust).into(),
                    sandbox_mode: a.sandbox.clone(),
                    may_initiate: a.may_initiate,
                    new_agent: a.new_agent,
                    files: a
                        .files
                        .iter()
                        .map(|f| pb::BootstrapFile {
                            name: f.name.clone(),
                            chars: count(f.chars),
                            budget_chars: count(f.budget),
                            content: f.content.clone(),
                        })
                        .collect(),
                    total_chars: count(a.total_chars()),
                    total_budget_chars: count(value.budgets.total_chars),
                })
                .collect(),
            warnings: value.plan.warnings.clone(),
            diff: Some(pb::SetupDiff {
                added_agents: value.diff.added_agents.clone(),
                removed_agents: value.diff.removed_agents.clone(),
                changed_agents: value.diff.changed_agents.clone(),
                added_edges: value.diff.added_edges.iter().map(Into::into).collect(),
                removed_edges: value.diff.removed_edges.iter().map(Into::into).collect(),
            }),
            base_generation: value.base_generation,
        }
    }
}

impl From<&FileResult> for pb::BootstrapFileResult {
    fn from(f: &FileResult) -> Self {
        let (action, detail) = match &f.outcome {
            FileOutcome::Created => (pb::FileWriteAction::Created, String::new()),
            FileOutcome::Updated => (pb::FileWriteAction::Updated, String::new()),
            FileOutcome::Unchanged => (pb::FileWriteAction::Unchanged, String::new()),
            FileOutcome::Conflict(why) => (pb::FileWriteAction::Conflict, why.clone()),
            FileOutcome::Skipped(why) => (pb::FileWriteAction::Skipped, why.clone()),
        };
        Self { agent_id: f.agent_id.clone(), path: f.path.clone(), action: action.into(), detail }
    }
}

//! `jhf.warp.v1.OrchestrationService`.

use tonic::{Request, Response, Status};

use super::convert::{
    desired_revision, edge, rollout, task_input, task_profile, task_profile_of, timestamp, topology, trust,
};
use super::watch::caller;
use chrono::{DateTime, Utc};

use crate::control::{
    AppError, ApplyRequest, Classifier, FileOutcome, LearningService, Mutation, PersistentService,
    PreviewRequest, Services, SetupService, StoredPreview, Versioned,
};
use crate::domain::persistent::{
    AgentFields, AgentLifecycle, LearningProposal, PersistentAgent, ProposalState, RetentionPolicy,
    WorkspaceLifecycle, WorkspaceRecord,
};
use crate::domain::setup::SetupPass;
use crate::domain::setup::bootstrap::Budgets;
use crate::pb::v1::{self as pb, orchestration_service_server::OrchestrationService};

pub struct OrchestrationServiceImpl {
    classifier: Classifier,
    setup: SetupService,
    persistent: PersistentService,
    learning: LearningService,
}

impl OrchestrationServiceImpl {
    pub fn new(services: &Services) -> Self {
        Self {
            classifier: services.classifier.clone(),
            setup: services.setup.clone(),
            persistent: services.persistent.clone(),
            learning: services.learning.clone(),
        }
    }
}

fn persistent_agent(value: &Versioned<PersistentAgent>) -> pb::PersistentAgent {
    let agent = &value.value;
    pb::PersistentAgent {
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

fn workspace(value: &Versioned<WorkspaceRecord>, retired_at: Option<DateTime<Utc>>) -> pb::WorkspaceRecord {
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

fn proposal(value: &LearningProposal) -> pb::LearningProposal {
    pb::LearningProposal {
        id: value.id.clone(),
        agent_id: value.agent_id.clone(),
        change: value.change.clone(),
        rationale: value.rationale.clone(),
        evidence_refs: value.evidence.clone(),
        author: value.author.clone(),
        state: match value.state {
            ProposalState::Proposed => pb::ProposalState::Proposed,
            ProposalState::Approved => pb::ProposalState::Approved,
            ProposalState::Rejected => pb::ProposalState::Rejected,
        }
        .into(),
        create_time: Some(timestamp(value.created_at)),
        reviewer: value.reviewer.clone().unwrap_or_default(),
        review_note: value.review_note.clone(),
        decide_time: value.decided_at.map(timestamp),
        setup_preview_id: value.setup_preview_id.clone().unwrap_or_default(),
    }
}

fn fields_of(value: Option<pb::PersistentAgentFields>) -> AgentFields {
    let value = value.unwrap_or_default();
    AgentFields {
        display_name: value.display_name,
        domain: value.domain,
        description: value.description,
        business_link: value.business_link,
        owner: value.owner,
    }
}

fn pass_pb(value: SetupPass) -> pb::SetupPass {
    match value {
        SetupPass::Initial => pb::SetupPass::Initial,
        SetupPass::Stabilization => pb::SetupPass::Stabilization,
    }
}

fn count(value: usize) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn preview(value: &StoredPreview) -> pb::SetupPreview {
    pb::SetupPreview {
        id: value.id.clone(),
        create_time: Some(timestamp(value.created_at)),
        expire_time: Some(timestamp(value.expires_at)),
        pass: pass_pb(value.pass).into(),
        profile: Some(task_profile(&value.profile)),
        topology: Some(topology(&value.plan.topology)),
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
                trust: trust(a.trust).into(),
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
            added_edges: value.diff.added_edges.iter().map(edge).collect(),
            removed_edges: value.diff.removed_edges.iter().map(edge).collect(),
        }),
        base_generation: value.base_generation,
    }
}

fn budgets_of(value: Option<pb::SetupBudgets>) -> Result<Budgets, AppError> {
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

#[tonic::async_trait]
impl OrchestrationService for OrchestrationServiceImpl {
    async fn classify_task(
        &self,
        request: Request<pb::ClassifyTaskRequest>,
    ) -> Result<Response<pb::ClassifyTaskResponse>, Status> {
        let task = request.into_inner().task.ok_or_else(|| AppError::invalid("task", "required"))?;
        let profile = self.classifier.classify(&task_input(task))?;
        Ok(Response::new(pb::ClassifyTaskResponse { profile: Some(task_profile(&profile)) }))
    }

    async fn preview_setup(
        &self,
        request: Request<pb::PreviewSetupRequest>,
    ) -> Result<Response<pb::PreviewSetupResponse>, Status> {
        let request = request.into_inner();
        let task = request.task.ok_or_else(|| AppError::invalid("task", "required"))?;
        let pass = match pb::SetupPass::try_from(request.pass) {
            Ok(pb::SetupPass::Unspecified | pb::SetupPass::Initial) => SetupPass::Initial,
            Ok(pb::SetupPass::Stabilization) => SetupPass::Stabilization,
            Err(_) => return Err(AppError::invalid("pass", "unknown setup pass").into()),
        };
        let max_agents = usize::try_from(request.max_agents)
            .map_err(|_| AppError::invalid("max_agents", "must not be negative"))?;
        let stored = self
            .setup
            .preview(PreviewRequest {
                task: task_input(task),
                profile: request.profile.map(task_profile_of).transpose()?,
                pass,
                max_agents,
                extend_current: request.extend_current,
                budgets: budgets_of(request.budgets)?,
            })
            .await?;
        Ok(Response::new(pb::PreviewSetupResponse { preview: Some(preview(&stored)) }))
    }

    async fn get_setup_preview(
        &self,
        request: Request<pb::GetSetupPreviewRequest>,
    ) -> Result<Response<pb::GetSetupPreviewResponse>, Status> {
        let stored = self.setup.get(&request.into_inner().id).await?;
        Ok(Response::new(pb::GetSetupPreviewResponse { preview: Some(preview(&stored)) }))
    }

    async fn apply_setup(
        &self,
        request: Request<pb::ApplySetupRequest>,
    ) -> Result<Response<pb::ApplySetupResponse>, Status> {
        let who = caller(&request, "OrchestrationService/ApplySetup", &request.get_ref().request_id)?;
        let request = request.into_inner();
        crate::domain::idempotency::validate_request_id(&request.request_id).map_err(AppError::from)?;
        let outcome = self
            .setup
            .apply(
                ApplyRequest {
                    preview_id: request.preview_id,
                    etag: request.etag,
                    request_id: request.request_id,
                    validate_only: request.validate_only,
                    rollout: request.rollout,
                },
                &who,
            )
            .await?;
        let files = outcome
            .files
            .iter()
            .map(|f| {
                let (action, detail) = match &f.outcome {
                    FileOutcome::Created => (pb::FileWriteAction::Created, String::new()),
                    FileOutcome::Updated => (pb::FileWriteAction::Updated, String::new()),
                    FileOutcome::Unchanged => (pb::FileWriteAction::Unchanged, String::new()),
                    FileOutcome::Conflict(why) => (pb::FileWriteAction::Conflict, why.clone()),
                    FileOutcome::Skipped(why) => (pb::FileWriteAction::Skipped, why.clone()),
                };
                pb::BootstrapFileResult {
                    agent_id: f.agent_id.clone(),
                    path: f.path.clone(),
                    action: action.into(),
                    detail,
                }
            })
            .collect();
        Ok(Response::new(pb::ApplySetupResponse {
            desired: outcome.desired.as_ref().map(desired_revision),
            rollout: outcome.rollout.as_ref().map(rollout),
            files,
        }))
    }

    async fn create_persistent_agent(
        &self,
        request: Request<pb::CreatePersistentAgentRequest>,
    ) -> Result<Response<pb::CreatePersistentAgentResponse>, Status> {
        let who =
            caller(&request, "OrchestrationService/CreatePersistentAgent", &request.get_ref().request_id)?;
        let request = request.into_inner();
        let (agent, record) = self
            .persistent
            .create_agent(
                &request.agent_id,
                fields_of(request.fields),
                Mutation {
                    request_id: &request.request_id,
                    validate_only: request.validate_only,
                    caller: &who,
                },
            )
            .await?;
        Ok(Response::new(pb::CreatePersistentAgentResponse {
            agent: Some(persistent_agent(&agent)),
            workspace: Some(workspace(&record, None)),
        }))
    }

    async fn get_persistent_agent(
        &self,
        request: Request<pb::GetPersistentAgentRequest>,
    ) -> Result<Response<pb::GetPersistentAgentResponse>, Status> {
        let agent = self.persistent.get_agent(&request.into_inner().agent_id).await?;
        Ok(Response::new(pb::GetPersistentAgentResponse { agent: Some(persistent_agent(&agent)) }))
    }

    async fn list_persistent_agents(
        &self,
        request: Request<pb::ListPersistentAgentsRequest>,
    ) -> Result<Response<pb::ListPersistentAgentsResponse>, Status> {
        let request = request.into_inner();
        let lifecycle = match pb::AgentLifecycle::try_from(request.lifecycle) {
            Ok(pb::AgentLifecycle::Unspecified) => None,
            Ok(pb::AgentLifecycle::Active) => Some(AgentLifecycle::Active),
            Ok(pb::AgentLifecycle::Retired) => Some(AgentLifecycle::Retired),
            Err(_) => return Err(AppError::invalid("lifecycle", "unknown lifecycle").into()),
        };
        let (agents, next_page_token) =
            self.persistent.list_agents(lifecycle, request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListPersistentAgentsResponse {
            agents: agents.iter().map(persistent_agent).collect(),
            next_page_token,
        }))
    }

    async fn update_persistent_agent(
        &self,
        request: Request<pb::UpdatePersistentAgentRequest>,
    ) -> Result<Response<pb::UpdatePersistentAgentResponse>, Status> {
        let who =
            caller(&request, "OrchestrationService/UpdatePersistentAgent", &request.get_ref().request_id)?;
        let request = request.into_inner();
        let agent = self
            .persistent
            .update_agent(
                &request.agent_id,
                fields_of(request.fields),
                &request.etag,
                Mutation {
                    request_id: &request.request_id,
                    validate_only: request.validate_only,
                    caller: &who,
                },
            )
            .await?;
        Ok(Response::new(pb::UpdatePersistentAgentResponse { agent: Some(persistent_agent(&agent)) }))
    }

    async fn retire_persistent_agent(
        &self,
        request: Request<pb::RetirePersistentAgentRequest>,
    ) -> Result<Response<pb::RetirePersistentAgentResponse>, Status> {
        let who =
            caller(&request, "OrchestrationService/RetirePersistentAgent", &request.get_ref().request_id)?;
        let request = request.into_inner();
        let (agent, record) = self
            .persistent
            .retire_agent(
                &request.agent_id,
                &request.etag,
                &request.reason,
                Mutation {
                    request_id: &request.request_id,
                    validate_only: request.validate_only,
                    caller: &who,
                },
            )
            .await?;
        let retired_at = agent.value.retired_at;
        Ok(Response::new(pb::RetirePersistentAgentResponse {
            agent: Some(persistent_agent(&agent)),
            workspace: Some(workspace(&record, retired_at)),
        }))
    }

    async fn list_workspaces(
        &self,
        request: Request<pb::ListWorkspacesRequest>,
    ) -> Result<Response<pb::ListWorkspacesResponse>, Status> {
        let request = request.into_inner();
        let (records, next_page_token) =
            self.persistent.list_workspaces(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListWorkspacesResponse {
            workspaces: records.iter().map(|(record, retired)| workspace(record, *retired)).collect(),
            next_page_token,
        }))
    }

    async fn update_workspace_retention(
        &self,
        request: Request<pb::UpdateWorkspaceRetentionRequest>,
    ) -> Result<Response<pb::UpdateWorkspaceRetentionResponse>, Status> {
        let who =
            caller(&request, "OrchestrationService/UpdateWorkspaceRetention", &request.get_ref().request_id)?;
        let request = request.into_inner();
        let policy = match pb::RetentionPolicy::try_from(request.policy) {
            Ok(pb::RetentionPolicy::Keep) => RetentionPolicy::Keep,
            Ok(pb::RetentionPolicy::ArchiveAfter) => RetentionPolicy::ArchiveAfter,
            Ok(pb::RetentionPolicy::DeleteAfter) => RetentionPolicy::DeleteAfter,
            _ => {
                return Err(AppError::invalid("policy", "must be KEEP, ARCHIVE_AFTER or DELETE_AFTER").into());
            }
        };
        let days = u32::try_from(request.retention_days)
            .map_err(|_| AppError::invalid("retention_days", "must not be negative"))?;
        let (record, retired_at) = self
            .persistent
            .update_retention(
                &request.agent_id,
                policy,
                days,
                &request.etag,
                Mutation {
                    request_id: &request.request_id,
                    validate_only: request.validate_only,
                    caller: &who,
                },
            )
            .await?;
        Ok(Response::new(pb::UpdateWorkspaceRetentionResponse {
            workspace: Some(workspace(&record, retired_at)),
        }))
    }

    async fn create_learning_proposal(
        &self,
        request: Request<pb::CreateLearningProposalRequest>,
    ) -> Result<Response<pb::CreateLearningProposalResponse>, Status> {
        let who =
            caller(&request, "OrchestrationService/CreateLearningProposal", &request.get_ref().request_id)?;
        let request = request.into_inner();
        let created = self
            .learning
            .propose(
                &request.agent_id,
                &request.change,
                &request.rationale,
                request.evidence_refs,
                Mutation {
                    request_id: &request.request_id,
                    validate_only: request.validate_only,
                    caller: &who,
                },
            )
            .await?;
        Ok(Response::new(pb::CreateLearningProposalResponse { proposal: Some(proposal(&created)) }))
    }

    async fn list_learning_proposals(
        &self,
        request: Request<pb::ListLearningProposalsRequest>,
    ) -> Result<Response<pb::ListLearningProposalsResponse>, Status> {
        let request = request.into_inner();
        let state = match pb::ProposalState::try_from(request.state) {
            Ok(pb::ProposalState::Unspecified) => None,
            Ok(pb::ProposalState::Proposed) => Some(ProposalState::Proposed),
            Ok(pb::ProposalState::Approved) => Some(ProposalState::Approved),
            Ok(pb::ProposalState::Rejected) => Some(ProposalState::Rejected),
            Err(_) => return Err(AppError::invalid("state", "unknown proposal state").into()),
        };
        let (proposals, next_page_token) =
            self.learning.list_proposals(state, request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListLearningProposalsResponse {
            proposals: proposals.iter().map(proposal).collect(),
            next_page_token,
        }))
    }

    async fn review_learning_proposal(
        &self,
        request: Request<pb::ReviewLearningProposalRequest>,
    ) -> Result<Response<pb::ReviewLearningProposalResponse>, Status> {
        let who =
            caller(&request, "OrchestrationService/ReviewLearningProposal", &request.get_ref().request_id)?;
        let request = request.into_inner();
        let (decided, stored) = self
            .learning
            .review(&request.id, request.approve, &request.note, &request.request_id, &who)
            .await?;
        Ok(Response::new(pb::ReviewLearningProposalResponse {
            proposal: Some(proposal(&decided)),
            preview: stored.as_ref().map(preview),
        }))
    }
}

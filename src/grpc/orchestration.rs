//! `jhf.warp.v1.OrchestrationService`.

use tonic::{Request, Response, Status};

use super::call::mutation;
use super::convert;
use super::convert::{lifecycle_from_pb, proposal_state_from_pb, retention_from_pb, setup_pass_from_pb};
use std::sync::Arc;

use super::Api;
use super::convert::InRuntime;
use crate::control::fleet::Cell;
use crate::control::{AppError, ApplyRequest, Globals, Mutation, PreviewRequest, list_learning_proposals};
use crate::domain::classify::{TaskInput, TaskProfile};
use crate::domain::setup::bootstrap::Budgets;
use crate::pb::v1::{self as pb, orchestration_service_server::OrchestrationService};

pub struct OrchestrationServiceImpl {
    api: Api,
}

impl OrchestrationServiceImpl {
    pub fn new(api: &Api) -> Self {
        Self { api: api.clone() }
    }

    fn globals(&self) -> &Globals {
        self.api.fleet.globals()
    }

    fn runtime(&self, name: &str) -> Result<Arc<Cell>, Status> {
        Ok(self.api.fleet.resolve(name)?)
    }
}

#[tonic::async_trait]
impl OrchestrationService for OrchestrationServiceImpl {
    async fn classify_task(
        &self,
        request: Request<pb::ClassifyTaskRequest>,
    ) -> Result<Response<pb::ClassifyTaskResponse>, Status> {
        let task = request.into_inner().task.ok_or_else(|| AppError::invalid("task", "required"))?;
        let profile = self.globals().classifier.classify(&TaskInput::from(task))?;
        Ok(Response::new(pb::ClassifyTaskResponse { profile: Some((&profile).into()) }))
    }

    async fn preview_setup(
        &self,
        request: Request<pb::PreviewSetupRequest>,
    ) -> Result<Response<pb::PreviewSetupResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let task = request.task.ok_or_else(|| AppError::invalid("task", "required"))?;
        let pass = setup_pass_from_pb(request.pass)?;
        let max_agents = usize::try_from(request.max_agents)
            .map_err(|_| AppError::invalid("max_agents", "must not be negative"))?;
        let stored = cell
            .services
            .setup
            .preview(PreviewRequest {
                task: task.into(),
                profile: request.profile.map(TaskProfile::try_from).transpose()?,
                pass,
                max_agents,
                extend_current: request.extend_current,
                budgets: Budgets::try_from(request.budgets)?,
            })
            .await?;
        Ok(Response::new(pb::PreviewSetupResponse {
            preview: Some(pb::SetupPreview::from(&stored).in_runtime(cell.name())),
        }))
    }

    async fn get_setup_preview(
        &self,
        request: Request<pb::GetSetupPreviewRequest>,
    ) -> Result<Response<pb::GetSetupPreviewResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let stored = cell.services.setup.get(&request.id).await?;
        Ok(Response::new(pb::GetSetupPreviewResponse {
            preview: Some(pb::SetupPreview::from(&stored).in_runtime(cell.name())),
        }))
    }

    async fn apply_setup(
        &self,
        request: Request<pb::ApplySetupRequest>,
    ) -> Result<Response<pb::ApplySetupResponse>, Status> {
        let (who, idempotency) = mutation(&request)?;
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let validate_only = request.validate_only;
        let apply = ApplyRequest {
            preview_id: request.preview_id,
            etag: request.etag,
            idempotency: idempotency.clone(),
            validate_only,
            rollout: request.rollout,
        };
        let outcome = self
            .globals()
            .calls
            .once(&idempotency, validate_only, cell.services.setup.apply(apply, &who))
            .await?;
        Ok(Response::new(pb::ApplySetupResponse {
            desired: outcome
                .desired
                .as_ref()
                .map(|d| pb::DesiredTopologyRevision::from(d).in_runtime(cell.name())),
            rollout: outcome.rollout.as_ref().map(Into::into),
            files: outcome.files.iter().map(Into::into).collect(),
        }))
    }

    async fn create_persistent_agent(
        &self,
        request: Request<pb::CreatePersistentAgentRequest>,
    ) -> Result<Response<pb::CreatePersistentAgentResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let (agent, record) = self
            .globals()
            .calls
            .once(
                &key,
                request.validate_only,
                self.globals().persistent.create_agent(
                    &request.agent_id,
                    request.fields.into(),
                    Mutation { key: &key, validate_only: request.validate_only, caller: &who },
                ),
            )
            .await?;
        Ok(Response::new(pb::CreatePersistentAgentResponse {
            agent: Some((&agent).into()),
            workspace: Some(convert::workspace_record(&record, None)),
        }))
    }

    async fn get_persistent_agent(
        &self,
        request: Request<pb::GetPersistentAgentRequest>,
    ) -> Result<Response<pb::GetPersistentAgentResponse>, Status> {
        let agent = self.globals().persistent.get_agent(&request.into_inner().agent_id).await?;
        Ok(Response::new(pb::GetPersistentAgentResponse { agent: Some((&agent).into()) }))
    }

    async fn list_persistent_agents(
        &self,
        request: Request<pb::ListPersistentAgentsRequest>,
    ) -> Result<Response<pb::ListPersistentAgentsResponse>, Status> {
        let request = request.into_inner();
        let lifecycle = lifecycle_from_pb(request.lifecycle)?;
        let (agents, next_page_token) =
            self.globals().persistent.list_agents(lifecycle, request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListPersistentAgentsResponse {
            agents: agents.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_persistent_agent(
        &self,
        request: Request<pb::UpdatePersistentAgentRequest>,
    ) -> Result<Response<pb::UpdatePersistentAgentResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let agent = self
            .globals()
            .calls
            .once(
                &key,
                request.validate_only,
                self.globals().persistent.update_agent(
                    &request.agent_id,
                    request.fields.into(),
                    &request.etag,
                    Mutation { key: &key, validate_only: request.validate_only, caller: &who },
                ),
            )
            .await?;
        Ok(Response::new(pb::UpdatePersistentAgentResponse { agent: Some((&agent).into()) }))
    }

    async fn retire_persistent_agent(
        &self,
        request: Request<pb::RetirePersistentAgentRequest>,
    ) -> Result<Response<pb::RetirePersistentAgentResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let (agent, record) = self
            .globals()
            .calls
            .once(
                &key,
                request.validate_only,
                self.globals().persistent.retire_agent(
                    &request.agent_id,
                    &request.etag,
                    &request.reason,
                    Mutation { key: &key, validate_only: request.validate_only, caller: &who },
                ),
            )
            .await?;
        let retired_at = agent.value.retired_at;
        Ok(Response::new(pb::RetirePersistentAgentResponse {
            agent: Some((&agent).into()),
            workspace: Some(convert::workspace_record(&record, retired_at)),
        }))
    }

    async fn list_workspaces(
        &self,
        request: Request<pb::ListWorkspacesRequest>,
    ) -> Result<Response<pb::ListWorkspacesResponse>, Status> {
        let request = request.into_inner();
        let (records, next_page_token) =
            self.globals().persistent.list_workspaces(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListWorkspacesResponse {
            workspaces: records
                .iter()
                .map(|(record, retired)| convert::workspace_record(record, *retired))
                .collect(),
            next_page_token,
        }))
    }

    async fn update_workspace_retention(
        &self,
        request: Request<pb::UpdateWorkspaceRetentionRequest>,
    ) -> Result<Response<pb::UpdateWorkspaceRetentionResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let policy = retention_from_pb(request.policy)?;
        let days = u32::try_from(request.retention_days)
            .map_err(|_| AppError::invalid("retention_days", "must not be negative"))?;
        let (record, retired_at) = self
            .globals()
            .calls
            .once(
                &key,
                request.validate_only,
                self.globals().persistent.update_retention(
                    &request.agent_id,
                    policy,
                    days,
                    &request.etag,
                    Mutation { key: &key, validate_only: request.validate_only, caller: &who },
                ),
            )
            .await?;
        Ok(Response::new(pb::UpdateWorkspaceRetentionResponse {
            workspace: Some(convert::workspace_record(&record, retired_at)),
        }))
    }

    async fn create_learning_proposal(
        &self,
        request: Request<pb::CreateLearningProposalRequest>,
    ) -> Result<Response<pb::CreateLearningProposalResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let created = self
            .globals()
            .calls
            .once(
                &key,
                request.validate_only,
                cell.services.learning.propose(
                    &request.agent_id,
                    &request.change,
                    &request.rationale,
                    request.evidence_refs,
                    Mutation { key: &key, validate_only: request.validate_only, caller: &who },
                ),
            )
            .await?;
        Ok(Response::new(pb::CreateLearningProposalResponse { proposal: Some((&created).into()) }))
    }

    async fn list_learning_proposals(
        &self,
        request: Request<pb::ListLearningProposalsRequest>,
    ) -> Result<Response<pb::ListLearningProposalsResponse>, Status> {
        let request = request.into_inner();
        let state = proposal_state_from_pb(request.state)?;
        let (proposals, next_page_token) =
            list_learning_proposals(&self.globals().ctx, state, request.page_size, &request.page_token)
                .await?;
        Ok(Response::new(pb::ListLearningProposalsResponse {
            proposals: proposals.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn review_learning_proposal(
        &self,
        request: Request<pb::ReviewLearningProposalRequest>,
    ) -> Result<Response<pb::ReviewLearningProposalResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let review = cell.services.learning.review(&request.id, request.approve, &request.note, &key, &who);
        let (decided, stored) = self.globals().calls.once(&key, false, review).await?;
        Ok(Response::new(pb::ReviewLearningProposalResponse {
            proposal: Some((&decided).into()),
            preview: stored.as_ref().map(|p| pb::SetupPreview::from(p).in_runtime(cell.name())),
        }))
    }
}

//! Setup previews and ApplySetup: propose a team (pure, in the domain), keep the preview for
//! a bounded time, turn it into a desired revision and — when asked — roll it out and write
//! the new agents' bootstrap files through the runtime adapter.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::Ctx;
use super::{
    AppError, AuditContext, Classifier, CreateRolloutRequest, DesiredTopologyService, ObservationService,
    PutRequest, RolloutService,
};
use crate::domain::TrustLevel;
use crate::domain::classify::{TaskInput, TaskProfile};
use crate::domain::desired::{DesiredInput, DesiredRevision};
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::patch::PlanKind;
use crate::domain::persistent::PersistentAgent;
use crate::domain::rollout::{Rollout, RolloutState};
use crate::domain::setup::bootstrap::{Budgets, FileAction, decide, render_bundle};
use crate::domain::setup::{
    ProposedAgent, SetupDiff, SetupInput, SetupLimits, SetupPass, SetupPlan, diff_setup, plan_setup,
    role_defaults, sandbox_for,
};
use crate::domain::topology::{EdgeKind, Topology};
use crate::runtime::{RuntimeError, WorkspaceFile};

/// Longest ApplySetup waits for the runtime lease before writing bootstrap files.
const FILES_WAIT: Duration = Duration::from_secs(30);
/// Longest ApplySetup waits for its rollout.
const ROLLOUT_WAIT: Duration = Duration::from_secs(900);

/// A preview request after transport decoding (0 = default for the numbers).
pub struct PreviewRequest {
    pub task: TaskInput,
    pub profile: Option<TaskProfile>,
    pub pass: SetupPass,
    pub max_agents: usize,
    pub extend_current: bool,
    pub budgets: Budgets,
}

/// A stored preview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPreview {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub pass: SetupPass,
    pub profile: TaskProfile,
    pub plan: SetupPlan,
    pub diff: SetupDiff,
    pub base_generation: i64,
    pub budgets: Budgets,
    /// Set for the preview of an approved learning proposal: applying it writes the agent's
    /// files and leaves the desired topology alone.
    #[serde(default)]
    pub learning_proposal: Option<String>,
}

/// An ApplySetup request after transport decoding.
pub struct ApplyRequest {
    pub preview_id: String,
    pub etag: String,
    pub idempotency: IdempotencyKey,
    pub validate_only: bool,
    pub rollout: bool,
}

/// What happened to one bootstrap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    Created,
    Updated,
    Unchanged,
    Conflict(String),
    Skipped(String),
}

/// One bootstrap file's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileResult {
    pub agent_id: String,
    pub path: String,
    pub outcome: FileOutcome,
}

/// What ApplySetup did.
pub struct ApplyOutcome {
    /// The new revision; `None` for a learning preview (no topology change).
    pub desired: Option<DesiredRevision>,
    pub rollout: Option<Rollout>,
    pub files: Vec<FileResult>,
}

/// Setup use cases.
#[derive(Clone)]
pub struct SetupService {
    ctx: Ctx,
    classifier: Classifier,
    desired: DesiredTopologyService,
    rollouts: RolloutService,
    observations: ObservationService,
    ttl: TimeDelta,
}

impl SetupService {
    /// Creates the service; previews live for `ttl`.
    pub fn new(
        ctx: &Ctx,
        classifier: Classifier,
        desired: DesiredTopologyService,
        rollouts: RolloutService,
        observations: ObservationService,
        ttl: TimeDelta,
    ) -> Self {
        Self { ctx: ctx.clone(), classifier, desired, rollouts, observations, ttl }
    }

    /// Proposes a team and stores the preview.
    pub async fn preview(&self, request: PreviewRequest) -> Result<StoredPreview, AppError> {
        let rules = self.classifier.rules();
        let profile = match request.profile {
            Some(profile) => {
                self.classifier.classify(&request.task)?;
                if rules.category(&profile.category).is_none() {
                    return Err(AppError::invalid(
                        "profile.category",
                        format!("unknown category \"{}\"", profile.category),
                    ));
                }
                profile
            }
            None => self.classifier.classify(&request.task)?,
        };
        let category_roles = rules.category(&profile.category).map(|c| c.roles.clone()).unwrap_or_default();
        let current = self.ctx.store.latest_desired(self.ctx.runtime_name()).await?;
        let extend = request.extend_current || request.pass == SetupPass::Stabilization;
        let base = if extend { current.as_ref().map(|d| &d.topology) } else { None };
        let limits = SetupLimits {
            max_agents: if request.max_agents == 0 {
                SetupLimits::default().max_agents
            } else {
                request.max_agents
            },
            budgets: request.budgets,
            ..SetupLimits::default()
        };
        let plan = plan_setup(&SetupInput {
            task: &request.task,
            profile: &profile,
            category_roles: &category_roles,
            pass: request.pass,
            base,
            limits,
            models: &rules.models,
        })
        .map_err(|violations| AppError::InvalidArgument { violations })?;
        let diff = diff_setup(current.as_ref().map(|d| &d.topology), &plan.topology);
        let created_at = self.ctx.clock.now();
        let preview = StoredPreview {
            id: format!("sp-{}", super::ids::random_hex(8)?),
            created_at,
            expires_at: created_at + self.ttl,
            pass: request.pass,
            profile,
            plan,
            diff,
            base_generation: current.map(|d| d.generation).unwrap_or(0),
            budgets: request.budgets,
            learning_proposal: None,
        };
        self.store_preview(&preview).await?;
        Ok(preview)
    }

    async fn store_preview(&self, preview: &StoredPreview) -> Result<(), AppError> {
        self.ctx
            .store
            .put_setup_preview(
                self.ctx.runtime_name(),
                &preview.id,
                preview.created_at,
                preview.expires_at,
                preview,
            )
            .await?;
        Ok(())
    }

    /// Previews an agent's bootstrap files with its approved lessons (`lessons`, oldest
    /// first) in AGENTS.md. `about` describes a persistent agent, when it is one.
    pub async fn preview_learning(
        &self,
        proposal_id: &str,
        agent_id: &str,
        lessons: &[String],
        about: Option<&PersistentAgent>,
    ) -> Result<StoredPreview, AppError> {
        let current = self.ctx.store.latest_desired(self.ctx.runtime_name()).await?;
        let topology = current
            .as_ref()
            .map(|d| d.topology.clone())
            .unwrap_or_else(|| Topology::new(vec![], vec![], vec![]));
        let node = topology.nodes.iter().find(|n| n.agent_id == agent_id);
        let mut warnings =
            vec![format!("AGENTS.md of {agent_id} lists {} approved lesson(s)", lessons.len())];
        if node.is_none() {
            warnings
                .push(format!("{agent_id} is not in the desired topology; only its files would be written"));
        }
        let role =
            node.map(|n| n.role.clone()).filter(|r| !r.is_empty()).unwrap_or_else(|| "assistant".to_owned());
        let trust = node.map(|n| n.trust).unwrap_or(TrustLevel::Restricted);
        let task = TaskInput {
            title: match about {
                Some(agent) => format!("{} — persistent {} agent", agent.display_name, agent.domain),
                None => format!("Agent {agent_id}"),
            },
            description: about.map(|a| a.description.clone()).unwrap_or_default(),
            ..TaskInput::default()
        };
        let profile = self.classifier.classify(&task)?;
        let (tier, tools_profile) = role_defaults(&role);
        let initiators: std::collections::BTreeSet<String> =
            topology.edges_of(EdgeKind::Send).map(|e| e.from.clone()).collect();
        let mut agent = ProposedAgent {
            agent_id: agent_id.to_owned(),
            role,
            model_tier: tier.to_owned(),
            model: node.and_then(|n| n.model.clone()),
            tools_profile: node
                .and_then(|n| n.tools_profile.clone())
                .unwrap_or_else(|| tools_profile.to_owned()),
            trust,
            sandbox: sandbox_for(trust).to_string(),
            may_initiate: initiators.contains(agent_id),
            new_agent: false,
            write_files: true,
            files: Vec::new(),
        };
        let roster: Vec<(String, String, bool)> = topology
            .nodes
            .iter()
            .map(|n| (n.agent_id.clone(), n.role.clone(), initiators.contains(&n.agent_id)))
            .collect();
        let spawns: Vec<String> =
            topology.edges_of(EdgeKind::Spawn).filter(|e| e.from == agent_id).map(|e| e.to.clone()).collect();
        let budgets = Budgets::default();
        agent.files = render_bundle(&task, &profile, &agent, &roster, &spawns, lessons, &budgets);
        let created_at = self.ctx.clock.now();
        let preview = StoredPreview {
            id: format!("sp-{}", super::ids::random_hex(8)?),
            created_at,
            expires_at: created_at + self.ttl,
            pass: SetupPass::Initial,
            profile,
            diff: SetupDiff::default(),
            plan: SetupPlan { topology, agents: vec![agent], warnings },
            base_generation: current.map(|d| d.generation).unwrap_or(0),
            budgets,
            learning_proposal: Some(proposal_id.to_owned()),
        };
        self.store_preview(&preview).await?;
        Ok(preview)
    }

    /// Returns a stored, unexpired preview.
    pub async fn get(&self, id: &str) -> Result<StoredPreview, AppError> {
        if id.is_empty() || id.len() > 64 {
            return Err(AppError::invalid("id", "a preview id from PreviewSetup is required"));
        }
        self.ctx.store.setup_preview(self.ctx.runtime_name(), id, self.ctx.clock.now()).await?.ok_or_else(
            || AppError::NotFound { resource: format!("setup preview {id} (it may have expired)") },
        )
    }

    /// Applies a preview: a new desired revision, then optionally a rollout and the new
    /// agents' bootstrap files. Retries with the same request id converge on the same revision
    /// and rollout; file writes are idempotent (a second pass reports UNCHANGED).
    pub async fn apply(
        &self,
        request: ApplyRequest,
        caller: &AuditContext,
    ) -> Result<ApplyOutcome, AppError> {
        let preview = self.get(&request.preview_id).await?;
        if preview.learning_proposal.is_some() {
            // A learning preview changes files only: no desired revision, no rollout.
            if request.validate_only || !request.rollout {
                return Ok(ApplyOutcome { desired: None, rollout: None, files: Vec::new() });
            }
            let files = self.write_bootstrap_files(&preview, caller).await?;
            return Ok(ApplyOutcome { desired: None, rollout: None, files });
        }
        let put = self
            .desired
            .put(
                PutRequest {
                    input: DesiredInput::from(&preview.plan.topology),
                    etag: request.etag.clone(),
                    idempotency: request.idempotency.clone(),
                    validate_only: request.validate_only,
                },
                caller,
            )
            .await?;
        if request.validate_only || !request.rollout {
            return Ok(ApplyOutcome { desired: Some(put.desired), rollout: None, files: Vec::new() });
        }
        let key = request.idempotency.derived("rollout");
        // A retry finds the first rollout even though the runtime has converged since.
        let first = self.ctx.replayed_id(&key).await.ok().flatten();
        let rollout_id = match first {
            Some(id) => Some(id),
            None => {
                let (plan, _) = self.rollouts.plan(PlanKind::Apply).await?;
                if plan.is_empty() {
                    None
                } else {
                    let create = CreateRolloutRequest {
                        plan_id: plan.id.clone(),
                        dry_run: false,
                        idempotency: key,
                        validate_only: false,
                    };
                    Some(self.rollouts.create(create, caller).await?.id)
                }
            }
        };
        let rollout = match rollout_id {
            Some(id) => {
                Some(self.rollouts.wait_until_final(&id, ROLLOUT_WAIT, &CancellationToken::new()).await?)
            }
            None => None,
        };
        let files = match &rollout {
            Some(r) if r.state != RolloutState::Succeeded => {
                skipped(&preview, &format!("rollout {} ended {}", r.id, r.state.as_str()))
            }
            _ => self.write_bootstrap_files(&preview, caller).await?,
        };
        Ok(ApplyOutcome { desired: Some(put.desired), rollout, files })
    }

    /// Writes the bootstrap files under the runtime lease (they change the runtime as a rollout
    /// does), waiting for it while a rollout runs.
    async fn write_bootstrap_files(
        &self,
        preview: &StoredPreview,
        caller: &AuditContext,
    ) -> Result<Vec<FileResult>, AppError> {
        let guard = self.rollouts.owner().acquire(FILES_WAIT).await?;
        let written = self.write_files_under(preview, caller, &guard).await;
        guard.release().await;
        written
    }

    async fn write_files_under(
        &self,
        preview: &StoredPreview,
        caller: &AuditContext,
        guard: &super::ownership::RuntimeGuard,
    ) -> Result<Vec<FileResult>, AppError> {
        let observed = self.observations.observe(true).await?;
        let inventory = &observed.observation.inventory;
        let runtime = self.observations.runtime();
        let mut results = Vec::new();
        for agent in preview.plan.agents.iter().filter(|a| a.write_files) {
            let Some(found) = inventory.agents.iter().find(|a| a.id == agent.agent_id) else {
                results.extend(agent.files.iter().map(|f| FileResult {
                    agent_id: agent.agent_id.clone(),
                    path: f.name.clone(),
                    outcome: FileOutcome::Skipped("the agent is not in the runtime".to_owned()),
                }));
                continue;
            };
            for file in &agent.files {
                let path = format!("{}/{}", found.workspace.trim_end_matches('/'), file.name);
                let existing = match runtime.read_workspace_file(&path).await? {
                    WorkspaceFile::Absent => None,
                    WorkspaceFile::Text(text) => Some(text),
                    // A symlink, a FIFO, an oversized file: not ours to read, nor to replace.
                    WorkspaceFile::Refused(why) => {
                        tracing::warn!(%path, reason = %why, "bootstrap file left alone");
                        let outcome = FileOutcome::Conflict(format!("left alone: {why}"));
                        results.push(FileResult { agent_id: agent.agent_id.clone(), path, outcome });
                        continue;
                    }
                };
                guard.ensure_live()?;
                let write = async |created| match runtime.write_workspace_file(&path, &file.content).await {
                    Ok(()) => Ok(if created { FileOutcome::Created } else { FileOutcome::Updated }),
                    Err(RuntimeError::Refused { detail }) => {
                        Ok(FileOutcome::Conflict(format!("left alone: {detail}")))
                    }
                    Err(other) => Err(other),
                };
                let outcome = match decide(existing.as_deref(), &file.content) {
                    FileAction::Create => write(true).await?,
                    FileAction::Update => write(false).await?,
                    FileAction::Unchanged => FileOutcome::Unchanged,
                    FileAction::Conflict(reason) => {
                        tracing::warn!(%path, %reason, "bootstrap file left alone");
                        FileOutcome::Conflict(reason)
                    }
                };
                results.push(FileResult { agent_id: agent.agent_id.clone(), path, outcome });
            }
        }
        let written = results
            .iter()
            .filter(|r| matches!(r.outcome, FileOutcome::Created | FileOutcome::Updated))
            .count();
        let conflicts = results.iter().filter(|r| matches!(r.outcome, FileOutcome::Conflict(_))).count();
        if written > 0 || conflicts > 0 {
            let event = caller.event_in(
                self.ctx.runtime_name(),
                format!("setup-preview/{}", preview.id),
                format!("wrote {written} bootstrap file(s); {conflicts} conflict(s) left alone"),
            );
            let applied = crate::domain::outbound::setup_applied(
                self.ctx.runtime_name(),
                &preview.id,
                written,
                conflicts,
                &caller.actor,
            );
            self.ctx.store.append_audit_with_events(&event, &[applied]).await?;
        }
        Ok(results)
    }
}

fn skipped(preview: &StoredPreview, why: &str) -> Vec<FileResult> {
    preview
        .plan
        .agents
        .iter()
        .filter(|a| a.write_files)
        .flat_map(|a| {
            a.files.iter().map(|f| FileResult {
                agent_id: a.agent_id.clone(),
                path: f.name.clone(),
                outcome: FileOutcome::Skipped(why.to_owned()),
            })
        })
        .collect()
}

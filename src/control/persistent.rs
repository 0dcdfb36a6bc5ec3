//! Persistent domain agents and their workspace records.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::AppError;
use super::Ctx;
use super::documents::{Documents, Mutation, Versioned, Write, encode, expected, require_etag, stale};
use crate::domain::persistent::{
    AgentFields, AgentLifecycle, PersistentAgent, RetentionPolicy, WorkspaceLifecycle, WorkspaceRecord,
    validate_agent, validate_retention,
};
use crate::store::DocWrite;

const AGENT: &str = "persistent_agent";
const WORKSPACE: &str = "workspace";

/// Persistent agents and their workspace records.
#[derive(Clone)]
pub struct PersistentService {
    docs: Documents,
    registry: Option<Arc<BTreeSet<String>>>,
}

impl PersistentService {
    /// Creates the service; with `registry`, business links must be registered in it.
    pub fn new(ctx: &Ctx, registry: Option<Arc<BTreeSet<String>>>) -> Self {
        Self { docs: Documents::new(ctx), registry }
    }

    /// Creates a persistent agent and its workspace record.
    pub async fn create_agent(
        &self,
        agent_id: &str,
        fields: AgentFields,
        mutation: Mutation<'_>,
    ) -> Result<(Versioned<PersistentAgent>, Versioned<WorkspaceRecord>), AppError> {
        let Mutation { key, validate_only, caller } = mutation;
        validate_agent(Some(agent_id), &fields, self.registry.as_deref())
            .map_err(|violations| AppError::InvalidArgument { violations })?;
        let now = self.docs.now();
        let agent = PersistentAgent {
            agent_id: agent_id.to_owned(),
            display_name: fields.display_name,
            domain: fields.domain,
            description: fields.description,
            business_link: fields.business_link,
            owner: fields.owner.clone(),
            lifecycle: AgentLifecycle::Active,
            created_at: now,
            created_by: caller.actor.clone(),
            updated_at: now,
            updated_by: caller.actor.clone(),
            retired_at: None,
            retire_reason: String::new(),
        };
        let workspace = WorkspaceRecord {
            agent_id: agent_id.to_owned(),
            path: format!("workspace-{agent_id}"),
            owner: fields.owner,
            lifecycle: WorkspaceLifecycle::InUse,
            policy: RetentionPolicy::Keep,
            retention_days: 0,
            updated_at: now,
            updated_by: caller.actor.clone(),
        };
        if validate_only {
            if self.docs.find(AGENT, agent_id).await?.is_some() {
                return Err(stale(AGENT, agent_id, "", None));
            }
            return Ok((
                Versioned { value: agent, etag: "0".into() },
                Versioned { value: workspace, etag: "0".into() },
            ));
        }
        let stored = self
            .docs
            .write(
                vec![
                    DocWrite {
                        kind: AGENT,
                        id: agent_id.to_owned(),
                        expected_generation: None,
                        state: AgentLifecycle::Active.as_str().into(),
                        body: encode(&agent)?,
                    },
                    DocWrite {
                        kind: WORKSPACE,
                        id: agent_id.to_owned(),
                        expected_generation: None,
                        state: WorkspaceLifecycle::InUse.as_str().into(),
                        body: encode(&workspace)?,
                    },
                ],
                Write {
                    key,
                    caller,
                    resource: format!("persistent-agent/{agent_id}"),
                    summary: format!("created persistent agent {agent_id} linked to {}", agent.business_link),
                },
            )
            .await?;
        Ok((Documents::parse(&stored[0], "persistent agent")?, Documents::parse(&stored[1], "workspace")?))
    }

    /// Returns a persistent agent.
    pub async fn get_agent(&self, agent_id: &str) -> Result<Versioned<PersistentAgent>, AppError> {
        self.docs.get(AGENT, agent_id, &format!("persistent agent {agent_id}")).await
    }

    async fn get_workspace(&self, agent_id: &str) -> Result<Versioned<WorkspaceRecord>, AppError> {
        self.docs.get(WORKSPACE, agent_id, &format!("workspace of {agent_id}")).await
    }

    /// Lists persistent agents in creation order.
    pub async fn list_agents(
        &self,
        lifecycle: Option<AgentLifecycle>,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Versioned<PersistentAgent>>, String), AppError> {
        self.docs.list(AGENT, lifecycle.map(AgentLifecycle::as_str), page_size, page_token).await
    }

    /// Lists workspace records in creation order, with their agents' retirement times.
    pub async fn list_workspaces(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<(Versioned<WorkspaceRecord>, Option<chrono::DateTime<chrono::Utc>>)>, String), AppError>
    {
        let (records, next) =
            self.docs.list::<WorkspaceRecord>(WORKSPACE, None, page_size, page_token).await?;
        let mut out = Vec::new();
        for record in records {
            let retired = self.get_agent(&record.value.agent_id).await.ok().and_then(|a| a.value.retired_at);
            out.push((record, retired));
        }
        Ok((out, next))
    }

    /// Replaces a persistent agent's editable fields.
    pub async fn update_agent(
        &self,
        agent_id: &str,
        fields: AgentFields,
        etag: &str,
        mutation: Mutation<'_>,
    ) -> Result<Versioned<PersistentAgent>, AppError> {
        let Mutation { key, validate_only, caller } = mutation;
        validate_agent(None, &fields, self.registry.as_deref())
            .map_err(|violations| AppError::InvalidArgument { violations })?;
        let generation = expected(etag)?;
        let current = self.get_agent(agent_id).await?;
        if current.value.lifecycle == AgentLifecycle::Retired {
            return Err(AppError::FailedPrecondition {
                reason: "AGENT_RETIRED",
                subject: format!("persistent-agent/{agent_id}"),
                description: format!("persistent agent {agent_id} is retired and cannot be changed"),
            });
        }
        let next = PersistentAgent {
            display_name: fields.display_name,
            domain: fields.domain,
            description: fields.description,
            business_link: fields.business_link,
            owner: fields.owner,
            updated_at: self.docs.now(),
            updated_by: caller.actor.clone(),
            ..current.value.clone()
        };
        if validate_only {
            require_etag(AGENT, agent_id, etag, &current.etag)?;
            return Ok(Versioned { value: next, etag: current.etag });
        }
        let stored = self
            .docs
            .write(
                vec![DocWrite {
                    kind: AGENT,
                    id: agent_id.to_owned(),
                    expected_generation: Some(generation),
                    state: AgentLifecycle::Active.as_str().into(),
                    body: encode(&next)?,
                }],
                Write {
                    key,
                    caller,
                    resource: format!("persistent-agent/{agent_id}"),
                    summary: format!("updated persistent agent {agent_id}"),
                },
            )
            .await?;
        Documents::parse(&stored[0], "persistent agent")
    }

    /// Retires a persistent agent; its workspace becomes RETAINED.
    pub async fn retire_agent(
        &self,
        agent_id: &str,
        etag: &str,
        reason: &str,
        mutation: Mutation<'_>,
    ) -> Result<(Versioned<PersistentAgent>, Versioned<WorkspaceRecord>), AppError> {
        let Mutation { key, validate_only, caller } = mutation;
        if reason.trim().is_empty() || reason.len() > 2_000 {
            return Err(AppError::invalid("reason", "required, at most 2 000 bytes"));
        }
        let generation = expected(etag)?;
        let agent = self.get_agent(agent_id).await?;
        let workspace = self.get_workspace(agent_id).await?;
        let now = self.docs.now();
        let retired = PersistentAgent {
            lifecycle: AgentLifecycle::Retired,
            retired_at: Some(now),
            retire_reason: reason.to_owned(),
            updated_at: now,
            updated_by: caller.actor.clone(),
            ..agent.value.clone()
        };
        let retained = WorkspaceRecord {
            lifecycle: WorkspaceLifecycle::Retained,
            updated_at: now,
            updated_by: caller.actor.clone(),
            ..workspace.value.clone()
        };
        if agent.value.lifecycle == AgentLifecycle::Retired && agent.etag == etag {
            // Already retired at this version: nothing to do (a retry with a new request id).
            return Ok((agent, workspace));
        }
        if validate_only {
            require_etag(AGENT, agent_id, etag, &agent.etag)?;
            return Ok((
                Versioned { value: retired, etag: agent.etag },
                Versioned { value: retained, etag: workspace.etag },
            ));
        }
        let workspace_generation = expected(&workspace.etag)?;
        let stored = self
            .docs
            .write(
                vec![
                    DocWrite {
                        kind: AGENT,
                        id: agent_id.to_owned(),
                        expected_generation: Some(generation),
                        state: AgentLifecycle::Retired.as_str().into(),
                        body: encode(&retired)?,
                    },
                    DocWrite {
                        kind: WORKSPACE,
                        id: agent_id.to_owned(),
                        expected_generation: Some(workspace_generation),
                        state: WorkspaceLifecycle::Retained.as_str().into(),
                        body: encode(&retained)?,
                    },
                ],
                Write {
                    key,
                    caller,
                    resource: format!("persistent-agent/{agent_id}"),
                    summary: format!("retired persistent agent {agent_id}: {reason}"),
                },
            )
            .await?;
        Ok((Documents::parse(&stored[0], "persistent agent")?, Documents::parse(&stored[1], "workspace")?))
    }

    /// Sets a workspace's retention policy.
    pub async fn update_retention(
        &self,
        agent_id: &str,
        policy: RetentionPolicy,
        days: u32,
        etag: &str,
        mutation: Mutation<'_>,
    ) -> Result<(Versioned<WorkspaceRecord>, Option<chrono::DateTime<chrono::Utc>>), AppError> {
        let Mutation { key, validate_only, caller } = mutation;
        validate_retention(policy, days)?;
        let generation = expected(etag)?;
        let current = self.get_workspace(agent_id).await?;
        let retired_at = self.get_agent(agent_id).await.ok().and_then(|a| a.value.retired_at);
        let next = WorkspaceRecord {
            policy,
            retention_days: days,
            updated_at: self.docs.now(),
            updated_by: caller.actor.clone(),
            ..current.value.clone()
        };
        if validate_only {
            require_etag(WORKSPACE, agent_id, etag, &current.etag)?;
            return Ok((Versioned { value: next, etag: current.etag }, retired_at));
        }
        let state = next.lifecycle.as_str();
        let stored = self
            .docs
            .write(
                vec![DocWrite {
                    kind: WORKSPACE,
                    id: agent_id.to_owned(),
                    expected_generation: Some(generation),
                    state: state.into(),
                    body: encode(&next)?,
                }],
                Write {
                    key,
                    caller,
                    resource: format!("workspace/{agent_id}"),
                    summary: format!("retention of workspace {agent_id}: {policy:?} {days} day(s)"),
                },
            )
            .await?;
        Ok((Documents::parse(&stored[0], "workspace")?, retired_at))
    }
}

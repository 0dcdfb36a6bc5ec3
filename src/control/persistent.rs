//! Persistent domain agents, their workspace records, and learning proposals — stored as
//! versioned documents, every change audited in its own transaction.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::clock::Clock;
use super::desired::request_id_reused;
use super::paging::{finish_page, numeric_cursor, page_request};
use super::{AppError, AuditContext, SetupService, StoredPreview};
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::page_token::PageTokenCodec;
use crate::domain::persistent::{
    AgentFields, AgentLifecycle, LearningProposal, PersistentAgent, ProposalState, RetentionPolicy,
    ReviewRefusal, WorkspaceLifecycle, WorkspaceRecord, review, validate_agent, validate_proposal,
    validate_retention,
};
use crate::store::{Doc, DocOutcome, DocWrite, Store, StoreError};

const AGENT: &str = "persistent_agent";
const WORKSPACE: &str = "workspace";
const PROPOSAL: &str = "learning_proposal";

/// A stored document with its etag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub etag: String,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Store(StoreError::Corrupt(format!("{what}: {e}")))
}

fn decode<T: DeserializeOwned>(doc: &Doc, what: &str) -> Result<Versioned<T>, AppError> {
    let value = serde_json::from_str(&doc.body).map_err(|e| corrupt(what, e))?;
    Ok(Versioned { value, etag: doc.generation.to_string() })
}

fn encode<T: Serialize>(value: &T) -> Result<String, AppError> {
    serde_json::to_string(value).map_err(|e| corrupt("encode", e))
}

fn expected(etag: &str) -> Result<i64, AppError> {
    etag.parse::<i64>().map_err(|_| AppError::invalid("etag", "required: the etag from the last read"))
}

fn stale(kind: &str, id: &str, given: &str, current: Option<i64>) -> AppError {
    AppError::FailedPrecondition {
        reason: "ETAG_MISMATCH",
        subject: format!("{kind}/{id}"),
        description: match current {
            Some(current) => format!("etag \"{given}\" is not the current etag \"{current}\" of {kind} {id}"),
            None => format!("{kind} {id} already exists"),
        },
    }
}

/// Refuses a validate-only change whose etag is not the current one.
fn require_etag(kind: &str, id: &str, given: &str, current: &str) -> Result<(), AppError> {
    if given == current { Ok(()) } else { Err(stale(kind, id, given, current.parse().ok())) }
}

fn agent_state(lifecycle: AgentLifecycle) -> &'static str {
    match lifecycle {
        AgentLifecycle::Active => "ACTIVE",
        AgentLifecycle::Retired => "RETIRED",
    }
}

/// Persistent agents, workspaces and learning proposals.
#[derive(Clone)]
pub struct PersistentService {
    store: Store,
    clock: Arc<dyn Clock>,
    page_tokens: PageTokenCodec,
    registry: Option<Arc<BTreeSet<String>>>,
    setup: SetupService,
}

/// Who asks for a change, under which idempotency key, and whether only to validate it.
#[derive(Clone, Copy)]
pub struct Mutation<'a> {
    pub request_id: &'a str,
    pub validate_only: bool,
    pub caller: &'a AuditContext,
}

/// A multi-document write's request context.
struct Write<'a> {
    scope: &'static str,
    request_id: &'a str,
    fingerprint: String,
    caller: &'a AuditContext,
    resource: String,
    summary: String,
}

impl PersistentService {
    /// Creates the service; with `registry`, business links must be registered in it.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        page_tokens: PageTokenCodec,
        registry: Option<Arc<BTreeSet<String>>>,
        setup: SetupService,
    ) -> Self {
        Self { store, clock, page_tokens, registry, setup }
    }

    /// Writes documents; returns their bodies as stored (or, for a retry, as first stored).
    async fn write(
        &self,
        writes: Vec<DocWrite>,
        write: Write<'_>,
    ) -> Result<Vec<Versioned<String>>, AppError> {
        crate::domain::idempotency::validate_request_id(write.request_id)?;
        let key = IdempotencyKey {
            scope: write.scope.to_owned(),
            request_id: write.request_id.to_owned(),
            fingerprint: write.fingerprint,
        };
        let bodies: Vec<String> = writes.iter().map(|w| w.body.clone()).collect();
        let response = |generations: &[i64]| {
            let stored: Vec<(i64, &String)> = generations.iter().copied().zip(bodies.iter()).collect();
            serde_json::to_string(&stored).unwrap_or_default()
        };
        let audit = write.caller.event(write.resource, write.summary);
        let outcome = self.store.write_documents(&writes, &key, response, self.clock.now(), &audit).await?;
        let stored: Vec<(i64, String)> = match outcome {
            DocOutcome::Stored(generations) => {
                generations.into_iter().zip(writes.into_iter().map(|w| w.body)).collect()
            }
            DocOutcome::Replayed(json) => {
                serde_json::from_str(&json).map_err(|e| corrupt("idempotency response", e))?
            }
            DocOutcome::RequestIdReused => return Err(request_id_reused()),
            DocOutcome::Conflict { kind, id, current } => {
                let given = writes.iter().find(|w| w.id == id).and_then(|w| w.expected_generation);
                return Err(stale(kind, &id, &given.map(|g| g.to_string()).unwrap_or_default(), current));
            }
        };
        Ok(stored
            .into_iter()
            .map(|(generation, value)| Versioned { value, etag: generation.to_string() })
            .collect())
    }

    fn parse<T: DeserializeOwned>(stored: &Versioned<String>, what: &str) -> Result<Versioned<T>, AppError> {
        let value = serde_json::from_str(&stored.value).map_err(|e| corrupt(what, e))?;
        Ok(Versioned { value, etag: stored.etag.clone() })
    }

    /// Creates a persistent agent and its workspace record.
    pub async fn create_agent(
        &self,
        agent_id: &str,
        fields: AgentFields,
        mutation: Mutation<'_>,
    ) -> Result<(Versioned<PersistentAgent>, Versioned<WorkspaceRecord>), AppError> {
        let Mutation { request_id, validate_only, caller } = mutation;
        validate_agent(Some(agent_id), &fields, self.registry.as_deref())
            .map_err(|violations| AppError::InvalidArgument { violations })?;
        let now = self.clock.now();
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
            if self.store.document(AGENT, agent_id).await?.is_some() {
                return Err(stale(AGENT, agent_id, "", None));
            }
            return Ok((
                Versioned { value: agent, etag: "0".into() },
                Versioned { value: workspace, etag: "0".into() },
            ));
        }
        let fingerprint = format!(
            "{}|{}|{}|{}|{}",
            agent.display_name, agent.domain, agent.description, agent.business_link, agent.owner
        );
        let stored = self
            .write(
                vec![
                    DocWrite {
                        kind: AGENT,
                        id: agent_id.to_owned(),
                        expected_generation: None,
                        state: "ACTIVE".into(),
                        body: encode(&agent)?,
                    },
                    DocWrite {
                        kind: WORKSPACE,
                        id: agent_id.to_owned(),
                        expected_generation: None,
                        state: "IN_USE".into(),
                        body: encode(&workspace)?,
                    },
                ],
                Write {
                    scope: "CreatePersistentAgent",
                    request_id,
                    fingerprint: format!("{agent_id}|{fingerprint}"),
                    caller,
                    resource: format!("persistent-agent/{agent_id}"),
                    summary: format!("created persistent agent {agent_id} linked to {}", agent.business_link),
                },
            )
            .await?;
        Ok((Self::parse(&stored[0], "persistent agent")?, Self::parse(&stored[1], "workspace")?))
    }

    /// Returns a persistent agent.
    pub async fn get_agent(&self, agent_id: &str) -> Result<Versioned<PersistentAgent>, AppError> {
        let doc = self
            .store
            .document(AGENT, agent_id)
            .await?
            .ok_or_else(|| AppError::NotFound { resource: format!("persistent agent {agent_id}") })?;
        decode(&doc, "persistent agent")
    }

    async fn get_workspace(&self, agent_id: &str) -> Result<Versioned<WorkspaceRecord>, AppError> {
        let doc = self
            .store
            .document(WORKSPACE, agent_id)
            .await?
            .ok_or_else(|| AppError::NotFound { resource: format!("workspace of {agent_id}") })?;
        decode(&doc, "workspace")
    }

    async fn list<T: DeserializeOwned>(
        &self,
        kind: &'static str,
        state: Option<&str>,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Versioned<T>>, String), AppError> {
        let scope = format!("List:{kind}:{}", state.unwrap_or(""));
        let page = page_request(&self.page_tokens, &scope, page_size, page_token)?;
        let after = numeric_cursor(page.cursor)?;
        let docs = self.store.list_documents(kind, state, after, page.size + 1).await?;
        let (docs, next) = finish_page(&self.page_tokens, &scope, docs, page.size, |d| d.seq.to_string());
        let values = docs.iter().map(|d| decode(d, kind)).collect::<Result<Vec<_>, _>>()?;
        Ok((values, next))
    }

    /// Lists persistent agents in creation order.
    pub async fn list_agents(
        &self,
        lifecycle: Option<AgentLifecycle>,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Versioned<PersistentAgent>>, String), AppError> {
        self.list(AGENT, lifecycle.map(agent_state), page_size, page_token).await
    }

    /// Lists workspace records in creation order, with their agents' retirement times.
    pub async fn list_workspaces(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<(Versioned<WorkspaceRecord>, Option<chrono::DateTime<chrono::Utc>>)>, String), AppError>
    {
        let (records, next) = self.list::<WorkspaceRecord>(WORKSPACE, None, page_size, page_token).await?;
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
        let Mutation { request_id, validate_only, caller } = mutation;
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
            updated_at: self.clock.now(),
            updated_by: caller.actor.clone(),
            ..current.value.clone()
        };
        if validate_only {
            require_etag(AGENT, agent_id, etag, &current.etag)?;
            return Ok(Versioned { value: next, etag: current.etag });
        }
        let fingerprint = format!(
            "{agent_id}|{etag}|{}",
            encode(&(&next.display_name, &next.domain, &next.description, &next.business_link, &next.owner))?
        );
        let stored = self
            .write(
                vec![DocWrite {
                    kind: AGENT,
                    id: agent_id.to_owned(),
                    expected_generation: Some(generation),
                    state: "ACTIVE".into(),
                    body: encode(&next)?,
                }],
                Write {
                    scope: "UpdatePersistentAgent",
                    request_id,
                    fingerprint,
                    caller,
                    resource: format!("persistent-agent/{agent_id}"),
                    summary: format!("updated persistent agent {agent_id}"),
                },
            )
            .await?;
        Self::parse(&stored[0], "persistent agent")
    }

    /// Retires a persistent agent; its workspace becomes RETAINED.
    pub async fn retire_agent(
        &self,
        agent_id: &str,
        etag: &str,
        reason: &str,
        mutation: Mutation<'_>,
    ) -> Result<(Versioned<PersistentAgent>, Versioned<WorkspaceRecord>), AppError> {
        let Mutation { request_id, validate_only, caller } = mutation;
        if reason.trim().is_empty() || reason.len() > 2_000 {
            return Err(AppError::invalid("reason", "required, at most 2 000 bytes"));
        }
        let generation = expected(etag)?;
        let agent = self.get_agent(agent_id).await?;
        let workspace = self.get_workspace(agent_id).await?;
        let now = self.clock.now();
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
            .write(
                vec![
                    DocWrite {
                        kind: AGENT,
                        id: agent_id.to_owned(),
                        expected_generation: Some(generation),
                        state: "RETIRED".into(),
                        body: encode(&retired)?,
                    },
                    DocWrite {
                        kind: WORKSPACE,
                        id: agent_id.to_owned(),
                        expected_generation: Some(workspace_generation),
                        state: "RETAINED".into(),
                        body: encode(&retained)?,
                    },
                ],
                Write {
                    scope: "RetirePersistentAgent",
                    request_id,
                    fingerprint: format!("{agent_id}|{etag}|{reason}"),
                    caller,
                    resource: format!("persistent-agent/{agent_id}"),
                    summary: format!("retired persistent agent {agent_id}: {reason}"),
                },
            )
            .await?;
        Ok((Self::parse(&stored[0], "persistent agent")?, Self::parse(&stored[1], "workspace")?))
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
        let Mutation { request_id, validate_only, caller } = mutation;
        validate_retention(policy, days)?;
        let generation = expected(etag)?;
        let current = self.get_workspace(agent_id).await?;
        let retired_at = self.get_agent(agent_id).await.ok().and_then(|a| a.value.retired_at);
        let next = WorkspaceRecord {
            policy,
            retention_days: days,
            updated_at: self.clock.now(),
            updated_by: caller.actor.clone(),
            ..current.value.clone()
        };
        if validate_only {
            require_etag(WORKSPACE, agent_id, etag, &current.etag)?;
            return Ok((Versioned { value: next, etag: current.etag }, retired_at));
        }
        let state = match next.lifecycle {
            WorkspaceLifecycle::InUse => "IN_USE",
            WorkspaceLifecycle::Retained => "RETAINED",
        };
        let stored = self
            .write(
                vec![DocWrite {
                    kind: WORKSPACE,
                    id: agent_id.to_owned(),
                    expected_generation: Some(generation),
                    state: state.into(),
                    body: encode(&next)?,
                }],
                Write {
                    scope: "UpdateWorkspaceRetention",
                    request_id,
                    fingerprint: format!("{agent_id}|{etag}|{policy:?}|{days}"),
                    caller,
                    resource: format!("workspace/{agent_id}"),
                    summary: format!("retention of workspace {agent_id}: {policy:?} {days} day(s)"),
                },
            )
            .await?;
        Ok((Self::parse(&stored[0], "workspace")?, retired_at))
    }

    /// Records a learning proposal.
    pub async fn propose(
        &self,
        agent_id: &str,
        change: &str,
        rationale: &str,
        evidence: Vec<String>,
        mutation: Mutation<'_>,
    ) -> Result<LearningProposal, AppError> {
        let Mutation { request_id, validate_only, caller } = mutation;
        validate_proposal(agent_id, change, rationale, &evidence)
            .map_err(|violations| AppError::InvalidArgument { violations })?;
        let mut id_bytes = [0u8; 8];
        let _ = getrandom::fill(&mut id_bytes);
        let proposal = LearningProposal {
            id: format!("lp-{}", hex::encode(id_bytes)),
            agent_id: agent_id.to_owned(),
            change: change.to_owned(),
            rationale: rationale.to_owned(),
            evidence,
            author: caller.actor.clone(),
            state: ProposalState::Proposed,
            created_at: self.clock.now(),
            reviewer: None,
            review_note: String::new(),
            decided_at: None,
            setup_preview_id: None,
        };
        if validate_only {
            return Ok(LearningProposal { id: String::new(), ..proposal });
        }
        let stored = self
            .write(
                vec![DocWrite {
                    kind: PROPOSAL,
                    id: proposal.id.clone(),
                    expected_generation: None,
                    state: "PROPOSED".into(),
                    body: encode(&proposal)?,
                }],
                Write {
                    scope: "CreateLearningProposal",
                    request_id,
                    fingerprint: encode(&(agent_id, change, rationale, &proposal.evidence))?,
                    caller,
                    resource: format!("learning-proposal/{}", proposal.id),
                    summary: format!("proposed a change to the bootstrap context of {agent_id}"),
                },
            )
            .await?;
        Ok(Self::parse::<LearningProposal>(&stored[0], "learning proposal")?.value)
    }

    /// Lists learning proposals in creation order.
    pub async fn list_proposals(
        &self,
        state: Option<ProposalState>,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<LearningProposal>, String), AppError> {
        let (values, next) = self
            .list::<LearningProposal>(PROPOSAL, state.map(ProposalState::as_str), page_size, page_token)
            .await?;
        Ok((values.into_iter().map(|v| v.value).collect(), next))
    }

    /// Decides a proposal; an approval produces a setup preview of the agent's files with
    /// every approved lesson.
    pub async fn review(
        &self,
        id: &str,
        approve: bool,
        note: &str,
        request_id: &str,
        caller: &AuditContext,
    ) -> Result<(LearningProposal, Option<StoredPreview>), AppError> {
        if note.len() > 2_000 {
            return Err(AppError::invalid("note", "at most 2 000 bytes"));
        }
        crate::domain::idempotency::validate_request_id(request_id)?;
        let doc = self
            .store
            .document(PROPOSAL, id)
            .await?
            .ok_or_else(|| AppError::NotFound { resource: format!("learning proposal {id}") })?;
        let current: Versioned<LearningProposal> = decode(&doc, "learning proposal")?;
        // A retry of the call that decided it gets the decision back.
        let key = IdempotencyKey {
            scope: "ReviewLearningProposal".into(),
            request_id: request_id.into(),
            fingerprint: format!("{id}|{approve}|{note}"),
        };
        if let crate::domain::idempotency::Prior::Replay(_) = self.store.idempotency_prior(&key).await? {
            let preview = match &current.value.setup_preview_id {
                Some(preview_id) => self.setup.get(preview_id).await.ok(),
                None => None,
            };
            return Ok((current.value, preview));
        }
        let mut decided =
            review(&current.value, &caller.actor, approve, note, self.clock.now()).map_err(|refusal| {
                match refusal {
                    ReviewRefusal::SelfReview => AppError::FailedPrecondition {
                        reason: "REVIEWER_IS_AUTHOR",
                        subject: format!("learning-proposal/{id}"),
                        description: format!(
                            "{} wrote this proposal; another principal must review it",
                            caller.actor
                        ),
                    },
                    ReviewRefusal::Decided(state) => AppError::FailedPrecondition {
                        reason: "PROPOSAL_DECIDED",
                        subject: format!("learning-proposal/{id}"),
                        description: format!(
                            "the proposal was already {}; decided proposals are immutable",
                            state.as_str()
                        ),
                    },
                }
            })?;
        let preview = if approve {
            let (approved, _) = self.list_proposals(Some(ProposalState::Approved), 1000, "").await?;
            let mut lessons: Vec<String> = approved
                .iter()
                .filter(|p| p.agent_id == decided.agent_id)
                .map(|p| p.change.clone())
                .collect();
            lessons.push(decided.change.clone());
            let about = self.get_agent(&decided.agent_id).await.ok().map(|a| a.value);
            let preview =
                self.setup.preview_learning(id, &decided.agent_id, &lessons, about.as_ref()).await?;
            decided.setup_preview_id = Some(preview.id.clone());
            Some(preview)
        } else {
            None
        };
        let stored = self
            .write(
                vec![DocWrite {
                    kind: PROPOSAL,
                    id: id.to_owned(),
                    expected_generation: Some(doc.generation),
                    state: decided.state.as_str().into(),
                    body: encode(&decided)?,
                }],
                Write {
                    scope: "ReviewLearningProposal",
                    request_id,
                    fingerprint: key.fingerprint.clone(),
                    caller,
                    resource: format!("learning-proposal/{id}"),
                    summary: format!(
                        "{} learning proposal {id} for {}",
                        decided.state.as_str(),
                        decided.agent_id
                    ),
                },
            )
            .await?;
        Ok((Self::parse::<LearningProposal>(&stored[0], "learning proposal")?.value, preview))
    }
}

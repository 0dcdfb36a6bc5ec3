//! Learning proposals: an agent or operator proposes a change to an agent's bootstrap
//! context; another principal approves or rejects it once; an approval yields a setup preview
//! and never edits a workspace by itself.

use super::Ctx;
use super::documents::{Documents, Mutation, Versioned, Write, decode, encode};
use super::ids::random_hex;
use super::{AppError, AuditContext, PersistentService, SetupService, StoredPreview};
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::persistent::{LearningProposal, ProposalState, ReviewRefusal, review, validate_proposal};
use crate::store::DocWrite;

const PROPOSAL: &str = "learning_proposal";

/// Lists learning proposals in creation order (they belong to the deployment, not a runtime).
pub async fn list_learning_proposals(
    ctx: &Ctx,
    state: Option<ProposalState>,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<LearningProposal>, String), AppError> {
    list_proposals(&Documents::new(ctx), state, page_size, page_token).await
}

async fn list_proposals(
    docs: &Documents,
    state: Option<ProposalState>,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<LearningProposal>, String), AppError> {
    let (values, next) = docs
        .list::<LearningProposal>(PROPOSAL, state.map(ProposalState::as_str), page_size, page_token)
        .await?;
    Ok((values.into_iter().map(|v| v.value).collect(), next))
}

/// Learning proposals.
#[derive(Clone)]
pub struct LearningService {
    docs: Documents,
    agents: PersistentService,
    setup: SetupService,
}

impl LearningService {
    /// Creates the service.
    pub fn new(ctx: &Ctx, agents: PersistentService, setup: SetupService) -> Self {
        Self { docs: Documents::new(ctx), agents, setup }
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
        let Mutation { key, validate_only, caller } = mutation;
        validate_proposal(agent_id, change, rationale, &evidence)
            .map_err(|violations| AppError::InvalidArgument { violations })?;
        let proposal = LearningProposal {
            id: format!("lp-{}", random_hex(8)?),
            agent_id: agent_id.to_owned(),
            change: change.to_owned(),
            rationale: rationale.to_owned(),
            evidence,
            author: caller.actor.clone(),
            state: ProposalState::Proposed,
            created_at: self.docs.now(),
            reviewer: None,
            review_note: String::new(),
            decided_at: None,
            setup_preview_id: None,
        };
        if validate_only {
            return Ok(LearningProposal { id: String::new(), ..proposal });
        }
        let stored = self
            .docs
            .write(
                vec![DocWrite {
                    kind: PROPOSAL,
                    id: proposal.id.clone(),
                    expected_generation: None,
                    state: "PROPOSED".into(),
                    body: encode(&proposal)?,
                }],
                Write {
                    key,
                    caller,
                    resource: format!("learning-proposal/{}", proposal.id),
                    summary: format!("proposed a change to the bootstrap context of {agent_id}"),
                },
            )
            .await?;
        Ok(Documents::parse::<LearningProposal>(&stored[0], "learning proposal")?.value)
    }

    /// Lists learning proposals in creation order.
    pub async fn list_proposals(
        &self,
        state: Option<ProposalState>,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<LearningProposal>, String), AppError> {
        list_proposals(&self.docs, state, page_size, page_token).await
    }

    /// Decides a proposal; an approval produces a setup preview of the agent's files with
    /// every approved lesson.
    pub async fn review(
        &self,
        id: &str,
        approve: bool,
        note: &str,
        key: &IdempotencyKey,
        caller: &AuditContext,
    ) -> Result<(LearningProposal, Option<StoredPreview>), AppError> {
        if note.len() > 2_000 {
            return Err(AppError::invalid("note", "at most 2 000 bytes"));
        }
        let doc = self
            .docs
            .find(PROPOSAL, id)
            .await?
            .ok_or_else(|| AppError::NotFound { resource: format!("learning proposal {id}") })?;
        let current: Versioned<LearningProposal> = decode(&doc, "learning proposal")?;
        // A retry of the call that decided it gets the decision back.
        if self.docs.replayed(key).await? {
            let preview = match &current.value.setup_preview_id {
                Some(preview_id) => self.setup.get(preview_id).await.ok(),
                None => None,
            };
            return Ok((current.value, preview));
        }
        let mut decided =
            review(&current.value, &caller.actor, approve, note, self.docs.now()).map_err(|refusal| {
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
            let about = self.agents.get_agent(&decided.agent_id).await.ok().map(|a| a.value);
            let preview =
                self.setup.preview_learning(id, &decided.agent_id, &lessons, about.as_ref()).await?;
            decided.setup_preview_id = Some(preview.id.clone());
            Some(preview)
        } else {
            None
        };
        let stored = self
            .docs
            .write(
                vec![DocWrite {
                    kind: PROPOSAL,
                    id: id.to_owned(),
                    expected_generation: Some(doc.generation),
                    state: decided.state.as_str().into(),
                    body: encode(&decided)?,
                }],
                Write {
                    key,
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
        Ok((Documents::parse::<LearningProposal>(&stored[0], "learning proposal")?.value, preview))
    }
}

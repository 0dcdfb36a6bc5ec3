//! Persistent domain agents, their workspace records, and learning proposals.
//!
//! # Guarantees
//! - A persistent agent always has a business link (`identity://<kind>/<id>`, kinds person,
//!   team, org, service); with an identity registry configured the link must be in it.
//! - Retired agents are never edited again; their workspace record stays (nothing is deleted by
//!   jhf-warp: retention is recorded and reported, deletion is an operator's decision).
//! - Learning proposals go PROPOSED → APPROVED | REJECTED once, by a reviewer other than the
//!   author; a decided proposal is immutable.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::desired::FieldViolation;
use super::openclaw::is_valid_agent_id;

/// Longest free text (names, owners, descriptions' lines) in bytes.
const MAX_NAME: usize = 128;
/// Longest description or review note, in bytes.
const MAX_TEXT: usize = 2_000;
/// Longest proposed change, in characters.
pub const MAX_CHANGE_CHARS: usize = 2_000;
/// Most evidence references of a proposal.
const MAX_EVIDENCE: usize = 20;

/// Kinds a business link may name.
pub const LINK_KINDS: [&str; 4] = ["person", "team", "org", "service"];

/// Lifecycle of a persistent agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentLifecycle {
    Active,
    Retired,
}

impl AgentLifecycle {
    /// The stored state name (`ACTIVE`, `RETIRED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Retired => "RETIRED",
        }
    }
}

/// A persistent domain agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentAgent {
    pub agent_id: String,
    pub display_name: String,
    pub domain: String,
    pub description: String,
    pub business_link: String,
    pub owner: String,
    pub lifecycle: AgentLifecycle,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    pub retired_at: Option<DateTime<Utc>>,
    pub retire_reason: String,
}

/// What happens to a workspace once its agent is retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionPolicy {
    /// Keep it indefinitely.
    Keep,
    /// Archive it `days` after retirement.
    ArchiveAfter,
    /// It may be deleted `days` after retirement.
    DeleteAfter,
}

/// Lifecycle of a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkspaceLifecycle {
    /// Its agent is active.
    InUse,
    /// Its agent is retired; kept under the retention policy.
    Retained,
}

impl WorkspaceLifecycle {
    /// The stored state name (`IN_USE`, `RETAINED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InUse => "IN_USE",
            Self::Retained => "RETAINED",
        }
    }
}

/// The workspace record of a persistent agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRecord {
    pub agent_id: String,
    /// Workspace path as OpenClaw resolves it by default (`workspace-<id>`), relative to the state dir.
    pub path: String,
    pub owner: String,
    pub lifecycle: WorkspaceLifecycle,
    pub policy: RetentionPolicy,
    pub retention_days: u32,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

impl WorkspaceRecord {
    /// When the policy's action becomes due (after retirement), if it has one.
    pub fn due_at(&self, retired_at: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        match (self.policy, retired_at) {
            (RetentionPolicy::Keep, _) | (_, None) => None,
            (_, Some(at)) => Some(at + TimeDelta::days(i64::from(self.retention_days))),
        }
    }
}

/// Checks a business link's grammar and, when a registry is given, that it is registered.
pub fn check_business_link(link: &str, registry: Option<&BTreeSet<String>>) -> Result<(), FieldViolation> {
    let field = "agent.business_link";
    if link.is_empty() {
        return Err(FieldViolation::new(
            field,
            "required: a reference into the identity registry, e.g. identity://team/payments",
        ));
    }
    let parsed = link.strip_prefix("identity://").and_then(|rest| rest.split_once('/'));
    let valid = parsed.is_some_and(|(kind, id)| {
        LINK_KINDS.contains(&kind)
            && !id.is_empty()
            && id.len() <= 128
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    });
    if !valid {
        return Err(FieldViolation::new(
            field,
            format!("must be identity://<{}>/<id of [a-z0-9-_.]>", LINK_KINDS.join("|")),
        ));
    }
    if let Some(registry) = registry
        && !registry.contains(link)
    {
        return Err(FieldViolation::new(field, format!("{link} is not in the identity registry")));
    }
    Ok(())
}

fn check_text(field: &str, value: &str, max: usize, required: bool, out: &mut Vec<FieldViolation>) {
    if required && value.trim().is_empty() {
        out.push(FieldViolation::new(field, "required"));
    }
    if value.len() > max {
        out.push(FieldViolation::new(field, format!("longer than {max} bytes")));
    }
}

/// The editable fields of a persistent agent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentFields {
    pub display_name: String,
    pub domain: String,
    pub description: String,
    pub business_link: String,
    pub owner: String,
}

/// Validates a persistent agent's id (on create) and fields.
pub fn validate_agent(
    agent_id: Option<&str>,
    fields: &AgentFields,
    registry: Option<&BTreeSet<String>>,
) -> Result<(), Vec<FieldViolation>> {
    let mut out = Vec::new();
    if let Some(id) = agent_id
        && (!is_valid_agent_id(id) || id != id.to_ascii_lowercase())
    {
        out.push(FieldViolation::new(
            "agent.agent_id",
            "must be a lower-case OpenClaw agent id (^[a-z0-9][a-z0-9_-]{0,63}$)",
        ));
    }
    check_text("agent.display_name", &fields.display_name, MAX_NAME, true, &mut out);
    check_text("agent.domain", &fields.domain, MAX_NAME, true, &mut out);
    check_text("agent.description", &fields.description, MAX_TEXT, false, &mut out);
    check_text("agent.owner", &fields.owner, MAX_NAME, true, &mut out);
    if let Err(violation) = check_business_link(&fields.business_link, registry) {
        out.push(violation);
    }
    if out.is_empty() { Ok(()) } else { Err(out) }
}

/// Validates a retention policy.
pub fn validate_retention(policy: RetentionPolicy, days: u32) -> Result<(), FieldViolation> {
    match policy {
        RetentionPolicy::Keep if days != 0 => {
            Err(FieldViolation::new("retention_days", "must be 0 for KEEP"))
        }
        RetentionPolicy::ArchiveAfter | RetentionPolicy::DeleteAfter if !(1..=3650).contains(&days) => {
            Err(FieldViolation::new("retention_days", "must be 1..3650"))
        }
        _ => Ok(()),
    }
}

/// State of a learning proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposalState {
    Proposed,
    Approved,
    Rejected,
}

impl ProposalState {
    /// Returns the upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "PROPOSED",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
        }
    }
}

/// A proposed change to an agent's bootstrap context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearningProposal {
    pub id: String,
    pub agent_id: String,
    /// What to add to the agent's operating rules (AGENTS.md, section "Learned").
    pub change: String,
    pub rationale: String,
    pub evidence: Vec<String>,
    pub author: String,
    pub state: ProposalState,
    pub created_at: DateTime<Utc>,
    pub reviewer: Option<String>,
    pub review_note: String,
    pub decided_at: Option<DateTime<Utc>>,
    /// The setup preview an approval produced.
    pub setup_preview_id: Option<String>,
}

/// Validates a new proposal.
pub fn validate_proposal(
    agent_id: &str,
    change: &str,
    rationale: &str,
    evidence: &[String],
) -> Result<(), Vec<FieldViolation>> {
    let mut out = Vec::new();
    if !is_valid_agent_id(agent_id) {
        out.push(FieldViolation::new("agent_id", "must be an OpenClaw agent id"));
    }
    if change.trim().is_empty() || change.chars().count() > MAX_CHANGE_CHARS {
        out.push(FieldViolation::new("change", format!("required, at most {MAX_CHANGE_CHARS} characters")));
    }
    check_text("rationale", rationale, MAX_TEXT, true, &mut out);
    if evidence.is_empty() || evidence.len() > MAX_EVIDENCE {
        out.push(FieldViolation::new("evidence_refs", format!("1..{MAX_EVIDENCE} references are required")));
    }
    for (i, reference) in evidence.iter().enumerate() {
        if reference.trim().is_empty() || reference.len() > 512 {
            out.push(FieldViolation::new(format!("evidence_refs[{i}]"), "1..512 bytes"));
        }
    }
    if out.is_empty() { Ok(()) } else { Err(out) }
}

/// Why a review was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewRefusal {
    /// The reviewer wrote the proposal.
    SelfReview,
    /// The proposal was decided already.
    Decided(ProposalState),
}

/// Decides a proposal: a different principal than the author, exactly once.
pub fn review(
    proposal: &LearningProposal,
    reviewer: &str,
    approve: bool,
    note: &str,
    now: DateTime<Utc>,
) -> Result<LearningProposal, ReviewRefusal> {
    if proposal.state != ProposalState::Proposed {
        return Err(ReviewRefusal::Decided(proposal.state));
    }
    if proposal.author == reviewer {
        return Err(ReviewRefusal::SelfReview);
    }
    Ok(LearningProposal {
        state: if approve { ProposalState::Approved } else { ProposalState::Rejected },
        reviewer: Some(reviewer.to_owned()),
        review_note: note.to_owned(),
        decided_at: Some(now),
        ..proposal.clone()
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn fields(link: &str) -> AgentFields {
        AgentFields {
            display_name: "Payments expert".into(),
            domain: "payments".into(),
            description: String::new(),
            business_link: link.into(),
            owner: "team-payments".into(),
        }
    }

    #[test]
    fn a_persistent_agent_needs_a_valid_business_link() {
        assert!(validate_agent(Some("payments"), &fields("identity://team/payments"), None).is_ok());
        let missing = validate_agent(Some("payments"), &fields(""), None).unwrap_err();
        assert_eq!(missing[0].field, "agent.business_link");
        assert!(missing[0].description.contains("required"));
        for bad in ["https://x/y", "identity://planet/earth", "identity://team/", "identity://team/Pay ments"]
        {
            assert!(validate_agent(None, &fields(bad), None).is_err(), "{bad}");
        }
        let registry = BTreeSet::from(["identity://team/payments".to_owned()]);
        assert!(validate_agent(None, &fields("identity://team/payments"), Some(&registry)).is_ok());
        let unknown = validate_agent(None, &fields("identity://team/billing"), Some(&registry)).unwrap_err();
        assert!(unknown[0].description.contains("not in the identity registry"));
    }

    fn proposal(author: &str) -> LearningProposal {
        LearningProposal {
            id: "lp-1".into(),
            agent_id: "payments".into(),
            change: "Always check the refund ledger first.".into(),
            rationale: "Two incidents".into(),
            evidence: vec!["incident://42".into()],
            author: author.into(),
            state: ProposalState::Proposed,
            created_at: t(0),
            reviewer: None,
            review_note: String::new(),
            decided_at: None,
            setup_preview_id: None,
        }
    }

    #[test]
    fn proposals_are_decided_once_by_someone_other_than_the_author() {
        let open = proposal("agent-payments");
        assert_eq!(review(&open, "agent-payments", true, "", t(1)), Err(ReviewRefusal::SelfReview));
        let approved = review(&open, "op", true, "ok", t(1)).unwrap();
        assert_eq!((approved.state, approved.reviewer.as_deref()), (ProposalState::Approved, Some("op")));
        assert_eq!(
            review(&approved, "op2", false, "", t(2)),
            Err(ReviewRefusal::Decided(ProposalState::Approved))
        );
        let rejected = review(&open, "op", false, "no", t(1)).unwrap();
        assert_eq!(rejected.state, ProposalState::Rejected);
    }

    #[test]
    fn proposals_need_a_change_a_rationale_and_evidence() {
        let errors = validate_proposal("payments", "", "", &[]).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["change", "rationale", "evidence_refs"]);
    }

    #[test]
    fn retention_is_due_only_after_retirement_and_never_for_keep() {
        let mut record = WorkspaceRecord {
            agent_id: "payments".into(),
            path: "workspace-payments".into(),
            owner: "team".into(),
            lifecycle: WorkspaceLifecycle::InUse,
            policy: RetentionPolicy::DeleteAfter,
            retention_days: 30,
            updated_at: t(0),
            updated_by: "op".into(),
        };
        assert_eq!(record.due_at(None), None);
        assert_eq!(record.due_at(Some(t(0))), Some(t(30 * 86_400)));
        record.policy = RetentionPolicy::Keep;
        assert_eq!(record.due_at(Some(t(0))), None);
        assert!(validate_retention(RetentionPolicy::Keep, 3).is_err());
        assert!(validate_retention(RetentionPolicy::ArchiveAfter, 0).is_err());
        assert!(validate_retention(RetentionPolicy::DeleteAfter, 90).is_ok());
    }
}

//! Delegations: an agent (the grantor) grants another (the delegate) rights at a trust level,
//! possibly derived from a grant it received itself.
//!
//! # Guarantees
//! - Fail closed: a grant counts as active only if it is active itself and every ancestor is
//!   present and active; a missing parent or a cycle makes it invalid.
//! - Revoking a grant revokes every grant derived from it, transitively.
//! - A derived grant can never widen its parent: its rights are a subset of the parent's, its
//!   trust is at most the parent's, and its grantor is the parent's delegate.
//! - Backfill from the runtime's sub-agent relations is idempotent.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::TrustLevel;
use super::topology::{EdgeKind, Topology, TopologyEdge};

/// Where a grant came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DelegationSource {
    /// Granted through the API.
    Manual,
    /// Recorded from a SPAWN relation observed in the runtime.
    Backfill,
}

/// The stored state of a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DelegationState {
    Active,
    Revoked,
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    pub id: String,
    pub parent_id: Option<String>,
    pub grantor: String,
    pub delegate: String,
    /// Sorted, deduplicated.
    pub rights: Vec<String>,
    pub trust: TrustLevel,
    pub source: DelegationSource,
    pub state: DelegationState,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// The effective standing of a grant, with the reason when it does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Active,
    Revoked(String),
    Invalid(String),
}

/// The right a backfilled grant carries (the runtime lets the grantor spawn the delegate).
pub const SPAWN_RIGHT: &str = "spawn";

/// Why a grant request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("parent grant {0} does not exist")]
    UnknownParent(String),
    #[error("parent grant {id} is not active ({why})")]
    InactiveParent { id: String, why: String },
    #[error("a derived grant must be given by the parent's delegate {0}")]
    WrongGrantor(String),
    #[error("rights {0:?} are not held by the parent grant")]
    WiderRights(Vec<String>),
    #[error("trust {0} exceeds the parent grant's trust")]
    WiderTrust(&'static str),
    #[error("an agent cannot delegate to itself")]
    SelfDelegation,
}

/// Returns true when `delegate` acts for `agent` through an active grant from it.
pub fn has_standing(grants: &[Delegation], delegate: &str, agent: &str) -> bool {
    let standing = standings(grants);
    grants.iter().any(|grant| {
        grant.grantor == agent
            && grant.delegate == delegate
            && standing.get(&grant.id).is_some_and(|s| *s == Standing::Active)
    })
}

/// True when `delegate` holds an active grant from `agent` that carries `right`.
pub fn has_right(grants: &[Delegation], delegate: &str, agent: &str, right: &str) -> bool {
    let standing = standings(grants);
    grants.iter().any(|grant| {
        grant.grantor == agent
            && grant.delegate == delegate
            && grant.rights.iter().any(|r| r == right)
            && standing.get(&grant.id).is_some_and(|s| *s == Standing::Active)
    })
}

/// Computes the standing of every grant (fail closed on missing parents and cycles).
pub fn standings(grants: &[Delegation]) -> BTreeMap<String, Standing> {
    let by_id: BTreeMap<&str, &Delegation> = grants.iter().map(|g| (g.id.as_str(), g)).collect();
    let mut result: BTreeMap<String, Standing> = BTreeMap::new();
    for grant in grants {
        let mut seen = BTreeSet::new();
        let mut current: &Delegation = grant;
        let standing = loop {
            if !seen.insert(current.id.as_str()) {
                break Standing::Invalid("the grant chain contains a cycle".to_owned());
            }
            if current.state == DelegationState::Revoked {
                let why = current.reason.clone().unwrap_or_else(|| "revoked".to_owned());
                break if current.id == grant.id {
                    Standing::Revoked(why)
                } else {
                    Standing::Invalid(format!("ancestor grant {} was revoked", current.id))
                };
            }
            match &current.parent_id {
                None => break Standing::Active,
                Some(parent) => match by_id.get(parent.as_str()) {
                    Some(next) => current = *next,
                    None => break Standing::Invalid(format!("parent grant {parent} cannot be confirmed")),
                },
            }
        };
        result.insert(grant.id.clone(), standing);
    }
    result
}

/// Returns the ids to revoke with `id`: the grant and every grant derived from it.
pub fn revocation_cascade(grants: &[Delegation], id: &str) -> Vec<String> {
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for grant in grants {
        if let Some(parent) = &grant.parent_id {
            children.entry(parent.as_str()).or_default().push(grant.id.as_str());
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![id];
    let mut seen = BTreeSet::new();
    while let Some(next) = stack.pop() {
        if seen.insert(next) {
            out.push(next.to_owned());
            stack.extend(children.get(next).into_iter().flatten().copied());
        }
    }
    out
}

/// Returns the ids from the root grant down to `id` (stops at a missing parent or a cycle).
pub fn chain(grants: &[Delegation], id: &str) -> Vec<String> {
    let by_id: BTreeMap<&str, &Delegation> = grants.iter().map(|g| (g.id.as_str(), g)).collect();
    let mut out = Vec::new();
    let mut next = Some(id.to_owned());
    while let Some(current) = next {
        if out.contains(&current) {
            break;
        }
        next = by_id.get(current.as_str()).and_then(|g| g.parent_id.clone());
        out.push(current);
    }
    out.reverse();
    out
}

/// The edge a right lets the grantor hold towards the delegate: `spawn` a SPAWN edge, `send`
/// or `message` a SEND edge; other rights (e.g. `dispatch`) grant no edge.
pub fn edge_kind_of(right: &str) -> Option<EdgeKind> {
    match right {
        "spawn" => Some(EdgeKind::Spawn),
        "send" | "message" => Some(EdgeKind::Send),
        _ => None,
    }
}

/// What revoking a grant would change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevocationEffects {
    /// The grants that stop holding: the grant and its active descendants, root first.
    pub falling: Vec<String>,
    /// Desired edges that only those grants backed (no other active grant gives them).
    pub removed_edges: Vec<TopologyEdge>,
    /// Grantors and delegates of the falling grants, sorted.
    pub affected_agents: Vec<String>,
    /// The desired topology without those edges, when there are any.
    pub new_desired: Option<Topology>,
}

/// Computes the consequences of revoking `id` against the desired topology (pure).
pub fn revocation_effects(grants: &[Delegation], id: &str, desired: Option<&Topology>) -> RevocationEffects {
    let before = standings(grants);
    let falling: Vec<String> = revocation_cascade(grants, id)
        .into_iter()
        .filter(|g| before.get(g).is_some_and(|s| *s == Standing::Active))
        .collect();
    let falls: BTreeSet<&str> = falling.iter().map(String::as_str).collect();
    let edges_of = |grant: &Delegation| -> Vec<TopologyEdge> {
        grant
            .rights
            .iter()
            .filter_map(|right| edge_kind_of(right))
            .map(|kind| TopologyEdge { from: grant.grantor.clone(), to: grant.delegate.clone(), kind })
            .collect()
    };
    let still_granted: BTreeSet<TopologyEdge> = grants
        .iter()
        .filter(|g| {
            !falls.contains(g.id.as_str()) && before.get(&g.id).is_some_and(|s| *s == Standing::Active)
        })
        .flat_map(edges_of)
        .collect();
    let mut candidates: BTreeSet<TopologyEdge> = BTreeSet::new();
    let mut agents: BTreeSet<String> = BTreeSet::new();
    for grant in grants.iter().filter(|g| falls.contains(g.id.as_str())) {
        agents.insert(grant.grantor.clone());
        agents.insert(grant.delegate.clone());
        candidates.extend(edges_of(grant));
    }
    let removed_edges: Vec<TopologyEdge> = match desired {
        Some(topology) => topology
            .edges
            .iter()
            .filter(|e| candidates.contains(*e) && !still_granted.contains(*e))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let new_desired = desired.filter(|_| !removed_edges.is_empty()).map(|topology| {
        let edges = topology.edges.iter().filter(|e| !removed_edges.contains(e)).cloned().collect();
        Topology::new(topology.nodes.clone(), edges, topology.routes.clone())
    });
    RevocationEffects { falling, removed_edges, affected_agents: agents.into_iter().collect(), new_desired }
}

/// The grants as they stood before the grants `revoked` were revoked: a retried revocation
/// whose first call stopped after storing the revocation recomputes its consequences on it.
pub fn before_revoking(grants: &[Delegation], revoked: &BTreeSet<&str>) -> Vec<Delegation> {
    grants
        .iter()
        .map(|grant| {
            let mut grant = grant.clone();
            if grant.state == DelegationState::Revoked && revoked.contains(grant.id.as_str()) {
                grant.state = DelegationState::Active;
                grant.revoked_at = None;
                grant.reason = None;
            }
            grant
        })
        .collect()
}

/// Checks a new grant against its parent (if any).
pub fn check_grant(
    grants: &[Delegation],
    parent_id: Option<&str>,
    grantor: &str,
    delegate: &str,
    rights: &[String],
    trust: TrustLevel,
) -> Result<(), GrantError> {
    if grantor == delegate {
        return Err(GrantError::SelfDelegation);
    }
    let Some(parent_id) = parent_id else { return Ok(()) };
    let parent = grants
        .iter()
        .find(|g| g.id == parent_id)
        .ok_or_else(|| GrantError::UnknownParent(parent_id.to_owned()))?;
    match standings(grants).get(parent_id) {
        Some(Standing::Active) => {}
        Some(Standing::Revoked(why) | Standing::Invalid(why)) => {
            return Err(GrantError::InactiveParent { id: parent_id.to_owned(), why: why.clone() });
        }
        None => return Err(GrantError::UnknownParent(parent_id.to_owned())),
    }
    if parent.delegate != grantor {
        return Err(GrantError::WrongGrantor(parent.delegate.clone()));
    }
    let wider: Vec<String> = rights.iter().filter(|r| !parent.rights.contains(r)).cloned().collect();
    if !wider.is_empty() {
        return Err(GrantError::WiderRights(wider));
    }
    if trust > parent.trust {
        return Err(GrantError::WiderTrust(trust.as_str()));
    }
    Ok(())
}

/// Returns the (grantor, delegate) SPAWN relations that have no active backfilled grant yet.
pub fn backfill_missing(grants: &[Delegation], spawn_edges: &[(String, String)]) -> Vec<(String, String)> {
    let standing = standings(grants);
    let covered: BTreeSet<(&str, &str)> = grants
        .iter()
        .filter(|g| g.source == DelegationSource::Backfill && standing.get(&g.id) == Some(&Standing::Active))
        .map(|g| (g.grantor.as_str(), g.delegate.as_str()))
        .collect();
    let mut missing: Vec<(String, String)> = spawn_edges
        .iter()
        .filter(|(from, to)| !covered.contains(&(from.as_str(), to.as_str())))
        .cloned()
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn grant(id: &str, parent: Option<&str>, grantor: &str, delegate: &str) -> Delegation {
        Delegation {
            id: id.into(),
            parent_id: parent.map(Into::into),
            grantor: grantor.into(),
            delegate: delegate.into(),
            rights: vec!["dispatch".into(), "spawn".into()],
            trust: TrustLevel::Standard,
            source: DelegationSource::Manual,
            state: DelegationState::Active,
            created_at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
            revoked_at: None,
            reason: None,
        }
    }

    #[test]
    fn a_chain_of_active_grants_is_active() {
        let grants = vec![grant("g1", None, "chief", "pm"), grant("g2", Some("g1"), "pm", "qa")];
        assert!(standings(&grants).values().all(|s| *s == Standing::Active));
    }

    #[test]
    fn revoking_a_grant_invalidates_everything_derived_from_it() {
        let mut grants = vec![
            grant("g1", None, "chief", "pm"),
            grant("g2", Some("g1"), "pm", "qa"),
            grant("g3", Some("g2"), "qa", "docs"),
            grant("other", None, "chief", "architect"),
        ];
        let cascade = revocation_cascade(&grants, "g1");
        assert_eq!(
            cascade.iter().collect::<BTreeSet<_>>(),
            ["g1", "g2", "g3"].iter().map(|s| s.to_string()).collect::<Vec<_>>().iter().collect()
        );
        grants[0].state = DelegationState::Revoked;
        let standing = standings(&grants);
        assert!(matches!(standing["g1"], Standing::Revoked(_)));
        assert!(matches!(standing["g3"], Standing::Invalid(_)));
        assert_eq!(standing["other"], Standing::Active);
    }

    #[test]
    fn a_grant_whose_parent_cannot_be_confirmed_is_invalid() {
        let grants = vec![grant("g2", Some("gone"), "pm", "qa")];
        assert!(
            matches!(&standings(&grants)["g2"], Standing::Invalid(why) if why.contains("cannot be confirmed"))
        );
        let cyclic = vec![grant("a", Some("b"), "x", "y"), grant("b", Some("a"), "y", "x")];
        assert!(standings(&cyclic).values().all(|s| matches!(s, Standing::Invalid(_))));
    }

    #[test]
    fn derived_grants_cannot_widen_their_parent() {
        let grants = vec![grant("g1", None, "chief", "pm")];
        let rights = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(
            check_grant(&grants, Some("g1"), "pm", "qa", &rights(&["spawn"]), TrustLevel::Restricted).is_ok()
        );
        assert_eq!(
            check_grant(&grants, Some("g1"), "pm", "qa", &rights(&["admin"]), TrustLevel::Restricted),
            Err(GrantError::WiderRights(rights(&["admin"])))
        );
        assert!(matches!(
            check_grant(&grants, Some("g1"), "pm", "qa", &rights(&["spawn"]), TrustLevel::Elevated),
            Err(GrantError::WiderTrust(_))
        ));
        assert!(matches!(
            check_grant(&grants, Some("g1"), "chief", "qa", &rights(&["spawn"]), TrustLevel::Restricted),
            Err(GrantError::WrongGrantor(_))
        ));
        assert!(matches!(
            check_grant(&grants, Some("nope"), "pm", "qa", &[], TrustLevel::Restricted),
            Err(GrantError::UnknownParent(_))
        ));
        assert_eq!(
            check_grant(&grants, None, "qa", "qa", &[], TrustLevel::Restricted),
            Err(GrantError::SelfDelegation)
        );
    }

    #[test]
    fn backfill_only_adds_what_is_missing() {
        let edges =
            vec![("lead".to_owned(), "research".to_owned()), ("lead".to_owned(), "writer".to_owned())];
        assert_eq!(backfill_missing(&[], &edges).len(), 2);
        let mut existing = grant("b1", None, "lead", "research");
        existing.source = DelegationSource::Backfill;
        assert_eq!(backfill_missing(&[existing], &edges), [("lead".to_owned(), "writer".to_owned())]);
    }
}

#[cfg(test)]
mod revocation_tests {
    use super::*;
    use crate::domain::topology::TopologyNode;

    fn grant(id: &str, parent: Option<&str>, from: &str, to: &str, rights: &[&str]) -> Delegation {
        Delegation {
            id: id.into(),
            parent_id: parent.map(Into::into),
            grantor: from.into(),
            delegate: to.into(),
            rights: rights.iter().map(|r| (*r).to_owned()).collect(),
            trust: TrustLevel::Restricted,
            source: DelegationSource::Manual,
            state: DelegationState::Active,
            created_at: DateTime::<Utc>::default(),
            revoked_at: None,
            reason: None,
        }
    }

    fn node(id: &str) -> TopologyNode {
        TopologyNode {
            agent_id: id.into(),
            role: String::new(),
            trust: TrustLevel::Restricted,
            model: None,
            tools_profile: None,
            workspace: String::new(),
            pins: Default::default(),
        }
    }

    fn edge(from: &str, to: &str, kind: EdgeKind) -> TopologyEdge {
        TopologyEdge { from: from.into(), to: to.into(), kind }
    }

    #[test]
    fn a_revocation_drops_only_the_edges_its_cascade_alone_backed() {
        let grants = vec![
            grant("g1", None, "lead", "research", &["spawn", "send"]),
            grant("g2", Some("g1"), "research", "writer", &["send"]),
            grant("g3", None, "lead", "writer", &["spawn"]),
            // Another grant still backs lead -> research SEND.
            grant("g4", None, "lead", "research", &["message"]),
        ];
        let desired = Topology::new(
            vec![node("lead"), node("research"), node("writer")],
            vec![
                edge("lead", "research", EdgeKind::Spawn),
                edge("lead", "research", EdgeKind::Send),
                edge("research", "writer", EdgeKind::Send),
                edge("lead", "writer", EdgeKind::Spawn),
            ],
            Vec::new(),
        );
        let effects = revocation_effects(&grants, "g1", Some(&desired));
        assert_eq!(effects.falling, ["g1", "g2"]);
        assert_eq!(
            effects.removed_edges,
            [edge("lead", "research", EdgeKind::Spawn), edge("research", "writer", EdgeKind::Send)]
        );
        assert_eq!(effects.affected_agents, ["lead", "research", "writer"]);
        let after = effects.new_desired.unwrap();
        assert_eq!(after.edges.len(), 2);
        assert_ne!(after.revision, desired.revision);

        let mut revoked = grants.clone();
        revoked[0].state = DelegationState::Revoked;
        let again = revocation_effects(&revoked, "g1", Some(&desired));
        assert!(again.falling.is_empty() && again.removed_edges.is_empty() && again.new_desired.is_none());
        assert!(revocation_effects(&grants, "g1", None).new_desired.is_none());
    }
}

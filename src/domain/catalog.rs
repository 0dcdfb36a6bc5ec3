//! The agent-federation catalog: one deterministic list of every agent known to the desired
//! topology or the runtime, with what the runtime lets it do.
//!
//! # Guarantees
//! - Deterministic: the same inputs give the same value and digest (sorted lists, no clocks).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::inventory::Inventory;
use super::model::TrustLevel;
use super::permissions::{AgentAccess, InboundRoute};
use super::topology::{EdgeKind, Topology, TopologyNode};

/// One agent of the federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogAgent {
    pub agent_id: String,
    pub role: String,
    pub trust: TrustLevel,
    pub model: Option<String>,
    pub tools_profile: Option<String>,
    pub desired: bool,
    pub observed: bool,
    pub may_send_to: Vec<String>,
    pub may_spawn: Vec<String>,
    pub routes: Vec<String>,
    /// Trust in the desired topology, when the agent is desired.
    pub desired_trust: Option<TrustLevel>,
    /// Effective trust in the runtime, when the agent is observed.
    pub observed_trust: Option<TrustLevel>,
    /// The runtime grants more than the desired trust.
    pub trust_widened: bool,
    /// What the runtime resolves for the agent (default when it is not observed).
    pub access: CatalogAccess,
}

/// The resolved permissions a catalog entry shows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CatalogAccess {
    pub effective_tools: Vec<String>,
    pub session_visibility: String,
    pub sandbox_mode: String,
    pub workspace_access: String,
    pub elevated: bool,
    pub elevated_allow_from: Vec<String>,
    /// Empty when the agent has no `exec`.
    pub exec_host: String,
    pub woken_by: Vec<String>,
    pub inbound: Vec<InboundRoute>,
}

impl From<&AgentAccess> for CatalogAccess {
    fn from(access: &AgentAccess) -> Self {
        Self {
            effective_tools: access.effective_tools.clone(),
            session_visibility: access.session_visibility.clone(),
            sandbox_mode: access.sandbox.mode.clone(),
            workspace_access: access.sandbox.workspace_access.clone(),
            elevated: access.elevated.usable,
            elevated_allow_from: access.elevated.allow_from.clone(),
            exec_host: if access.exec.available { access.exec.host.clone() } else { String::new() },
            woken_by: access.wakeups.iter().map(|w| w.detail.clone()).collect(),
            inbound: access.inbound.clone(),
        }
    }
}

/// The catalog with the state it was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentCatalog {
    pub desired_generation: i64,
    pub desired_revision: String,
    pub observed_revision: String,
    pub agents: Vec<CatalogAgent>,
    /// sha256 hex of the canonical JSON of the fields above.
    #[serde(skip)]
    pub digest: String,
}

/// Builds the catalog from the latest desired revision (generation, topology) and the latest
/// observation (its topology and inventory). Desired settings win; permissions and routes are
/// what the runtime grants.
pub fn build_catalog(
    desired: Option<(i64, &Topology)>,
    observed: Option<&Topology>,
    inventory: Option<&Inventory>,
) -> AgentCatalog {
    let wanted: BTreeMap<&str, &TopologyNode> =
        desired.iter().flat_map(|(_, t)| t.nodes.iter()).map(|n| (n.agent_id.as_str(), n)).collect();
    let actual: BTreeMap<&str, &TopologyNode> =
        observed.iter().flat_map(|t| t.nodes.iter()).map(|n| (n.agent_id.as_str(), n)).collect();
    let ids: BTreeSet<&str> = wanted.keys().chain(actual.keys()).copied().collect();
    let grants = |id: &str, kind: EdgeKind| -> Vec<String> {
        let targets: BTreeSet<String> = observed
            .iter()
            .flat_map(|t| t.edges.iter())
            .filter(|e| e.kind == kind && e.from == id)
            .map(|e| e.to.clone())
            .collect();
        targets.into_iter().collect()
    };
    let agents = ids
        .into_iter()
        .map(|id| {
            let source = wanted.get(id).or(actual.get(id)).copied();
            let routes: BTreeSet<String> = observed
                .iter()
                .flat_map(|t| t.routes.iter())
                .filter(|r| r.agent_id == id)
                .map(|r| r.route.key())
                .collect();
            CatalogAgent {
                agent_id: id.to_owned(),
                role: source.map(|n| n.role.clone()).unwrap_or_default(),
                trust: source.map(|n| n.trust).unwrap_or(TrustLevel::Restricted),
                model: source.and_then(|n| n.model.clone()),
                tools_profile: source.and_then(|n| n.tools_profile.clone()),
                desired: wanted.contains_key(id),
                observed: actual.contains_key(id),
                may_send_to: grants(id, EdgeKind::Send),
                may_spawn: grants(id, EdgeKind::Spawn),
                routes: routes.into_iter().collect(),
                desired_trust: wanted.get(id).map(|n| n.trust),
                observed_trust: actual.get(id).map(|n| n.trust),
                trust_widened: matches!((wanted.get(id), actual.get(id)), (Some(w), Some(a)) if a.trust > w.trust),
                access: inventory.and_then(|i| i.agent(id)).map(|a| CatalogAccess::from(&a.access)).unwrap_or_default(),
            }
        })
        .collect();
    let mut catalog = AgentCatalog {
        desired_generation: desired.map(|(generation, _)| generation).unwrap_or(0),
        desired_revision: desired.map(|(_, t)| t.revision.clone()).unwrap_or_default(),
        observed_revision: observed.map(|t| t.revision.clone()).unwrap_or_default(),
        agents,
        digest: String::new(),
    };
    let canonical = serde_json::to_vec(&catalog).unwrap_or_default();
    catalog.digest = hex::encode(Sha256::digest(&canonical));
    catalog
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::topology::TopologyEdge;

    fn node(id: &str) -> TopologyNode {
        TopologyNode {
            agent_id: id.into(),
            role: format!("{id}-role"),
            trust: TrustLevel::Standard,
            model: None,
            tools_profile: None,
            workspace: String::new(),
            pins: Default::default(),
        }
    }

    #[test]
    fn catalog_merges_both_sides_and_is_deterministic() {
        let desired = Topology::new(vec![node("b"), node("a")], vec![], vec![]);
        let edges = vec![TopologyEdge { from: "a".into(), to: "c".into(), kind: EdgeKind::Send }];
        let observed = Topology::new(vec![node("c"), node("a")], edges, vec![]);
        let first = build_catalog(Some((2, &desired)), Some(&observed), None);
        let again = build_catalog(Some((2, &desired)), Some(&observed), None);
        assert_eq!(first, again);
        assert_eq!(first.digest.len(), 64);
        let ids: Vec<_> = first.agents.iter().map(|a| (a.agent_id.as_str(), a.desired, a.observed)).collect();
        assert_eq!(ids, [("a", true, true), ("b", true, false), ("c", false, true)]);
        assert_eq!(first.agents[0].may_send_to, ["c"]);
        assert_eq!(first.agents[1].observed_trust, None);
        assert_eq!(first.agents[2].desired_trust, None);
    }

    #[test]
    fn a_runtime_trust_above_the_desired_one_is_flagged_and_changes_the_digest() {
        let desired = Topology::new(vec![node("a")], vec![], vec![]);
        let same = build_catalog(Some((1, &desired)), Some(&desired), None);
        assert!(!same.agents[0].trust_widened);
        let mut wider = node("a");
        wider.trust = TrustLevel::Elevated;
        let observed = Topology::new(vec![wider], vec![], vec![]);
        let widened = build_catalog(Some((1, &desired)), Some(&observed), None);
        let agent = &widened.agents[0];
        assert_eq!(
            (agent.desired_trust, agent.observed_trust),
            (Some(TrustLevel::Standard), Some(TrustLevel::Elevated))
        );
        assert!(agent.trust_widened);
        assert_eq!(agent.trust, TrustLevel::Standard, "`trust` stays the desired one");
        assert_ne!(same.digest, widened.digest);
        let mut narrower = node("a");
        narrower.trust = TrustLevel::Restricted;
        let tighter =
            build_catalog(Some((1, &desired)), Some(&Topology::new(vec![narrower], vec![], vec![])), None);
        assert!(!tighter.agents[0].trust_widened, "tighter than desired is not a widening");
    }

    #[test]
    fn the_digest_changes_with_the_state() {
        let a = build_catalog(None, Some(&Topology::new(vec![node("a")], vec![], vec![])), None);
        let b = build_catalog(None, Some(&Topology::new(vec![node("b")], vec![], vec![])), None);
        assert_ne!(a.digest, b.digest);
    }
}

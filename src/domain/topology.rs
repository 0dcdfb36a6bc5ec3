//! The agent graph and its derivation from an observed inventory.
//!
//! # Guarantees
//! - SEND A→B iff `tools.sessions.visibility == "all"`, `tools.agentToAgent.enabled`, A and B
//!   both match `tools.agentToAgent.allow` (empty or `*` matches everyone, globs
//!   case-insensitive), A ≠ B, and A does not deny `sessions_send`.
//! - SPAWN A→B iff B is in A's effective `subagents.allowAgents` (`*` = every configured agent),
//!   A ≠ B, and not (A sandboxed `all` and B sandbox `off`). Self-spawn is implicit, not an edge.
//! - `revision` is the sha256 of a canonical, sorted encoding: equal graphs, equal revisions.
//!
//! # Caveats
//! Tool allow-lists and profiles that omit `sessions_send` are not modelled; the derived SEND
//! set can therefore be wider than what the runtime allows, never narrower, so a widening is
//! never hidden from drift detection.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::glob;
use super::inventory::{Inventory, RouteMatch};
use super::model::{SandboxMode, TrustLevel};

/// The permission an edge grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EdgeKind {
    /// May start a conversation with.
    Send,
    /// May spawn as a sub-agent.
    Spawn,
}

impl EdgeKind {
    /// Returns the upper-case name used in canonical encodings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "SEND",
            Self::Spawn => "SPAWN",
        }
    }
}

/// One agent in a graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopologyNode {
    pub agent_id: String,
    pub role: String,
    pub trust: TrustLevel,
    pub model: Option<String>,
    pub tools_profile: Option<String>,
    pub workspace: String,
}

/// A directed permission between two different agents.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopologyEdge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
}

/// A channel route to an agent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Route {
    pub route: RouteMatch,
    pub agent_id: String,
}

/// An agent graph with its content revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub nodes: Vec<TopologyNode>,
    pub edges: Vec<TopologyEdge>,
    pub routes: Vec<Route>,
    pub revision: String,
}

impl Topology {
    /// Creates a graph in canonical order (sorted, deduplicated) with its revision.
    pub fn new(mut nodes: Vec<TopologyNode>, mut edges: Vec<TopologyEdge>, mut routes: Vec<Route>) -> Self {
        nodes.sort();
        nodes.dedup();
        edges.sort();
        edges.dedup();
        routes.sort();
        routes.dedup();
        let revision = revision_of(&nodes, &edges, &routes);
        Self { nodes, edges, routes, revision }
    }

    /// Returns the edges of one kind.
    pub fn edges_of(&self, kind: EdgeKind) -> impl Iterator<Item = &TopologyEdge> {
        self.edges.iter().filter(move |edge| edge.kind == kind)
    }
}

/// Returns the sha256 hex of the canonical encoding: one JSON array per line, in sorted order.
fn revision_of(nodes: &[TopologyNode], edges: &[TopologyEdge], routes: &[Route]) -> String {
    let mut hasher = Sha256::new();
    let mut line = |fields: &[&str]| {
        // JSON string encoding escapes separators, so distinct graphs never collide textually.
        let encoded = serde_json::to_string(fields).unwrap_or_default();
        hasher.update(encoded.as_bytes());
        hasher.update(b"\n");
    };
    for node in nodes {
        line(&[
            "node",
            &node.agent_id,
            &node.role,
            node.trust.as_str(),
            node.model.as_deref().unwrap_or(""),
            node.tools_profile.as_deref().unwrap_or(""),
            &node.workspace,
        ]);
    }
    for edge in edges {
        line(&["edge", &edge.from, &edge.to, edge.kind.as_str()]);
    }
    for route in routes {
        line(&["route", &route.route.key(), &route.agent_id]);
    }
    hex::encode(hasher.finalize())
}

/// Returns true when a deny list takes `sessions_send` away (by name, group or glob).
pub fn denies_sessions_send(deny: &[String]) -> bool {
    deny.iter().any(|entry| entry == "group:sessions" || glob::matches(entry, "sessions_send"))
}

/// Derives the observed graph from an inventory with OpenClaw's exact reachability rules.
pub fn derive_topology(inventory: &Inventory) -> Topology {
    let nodes = inventory
        .agents
        .iter()
        .map(|agent| TopologyNode {
            agent_id: agent.id.clone(),
            role: agent.name.clone().unwrap_or_else(|| agent.id.clone()),
            trust: agent.effective_trust,
            model: agent.model.clone(),
            tools_profile: agent.tools.profile.clone(),
            workspace: agent.workspace.clone(),
        })
        .collect();

    let mut edges = Vec::new();
    let a2a = &inventory.agent_to_agent;
    if a2a.enabled && a2a.sessions_visibility == "all" {
        let in_clique =
            |id: &str| a2a.allow.is_empty() || a2a.allow.iter().any(|pattern| glob::matches(pattern, id));
        let clique: Vec<_> = inventory.agents.iter().filter(|a| in_clique(&a.id)).collect();
        for from in clique.iter().filter(|a| !denies_sessions_send(&a.tools.deny)) {
            for to in clique.iter().filter(|b| b.id != from.id) {
                edges.push(TopologyEdge { from: from.id.clone(), to: to.id.clone(), kind: EdgeKind::Send });
            }
        }
    }
    for from in &inventory.agents {
        let any = from.allow_agents.iter().any(|id| id == "*");
        for to in &inventory.agents {
            let listed = any || from.allow_agents.contains(&to.id);
            let sandbox_blocks = from.sandbox_mode == SandboxMode::All && to.sandbox_mode == SandboxMode::Off;
            if listed && to.id != from.id && !sandbox_blocks {
                edges.push(TopologyEdge { from: from.id.clone(), to: to.id.clone(), kind: EdgeKind::Spawn });
            }
        }
    }

    let routes = inventory
        .bindings
        .iter()
        .filter(|binding| binding.kind == "route" && inventory.agent(&binding.agent_id).is_some())
        .map(|binding| Route { route: binding.route.clone(), agent_id: binding.agent_id.clone() })
        .collect();
    Topology::new(nodes, edges, routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: &str, to: &str, kind: EdgeKind) -> TopologyEdge {
        TopologyEdge { from: from.into(), to: to.into(), kind }
    }

    #[test]
    fn revision_ignores_input_order() {
        let a = Topology::new(
            vec![],
            vec![edge("a", "b", EdgeKind::Send), edge("b", "a", EdgeKind::Send)],
            vec![],
        );
        let b = Topology::new(
            vec![],
            vec![edge("b", "a", EdgeKind::Send), edge("a", "b", EdgeKind::Send)],
            vec![],
        );
        assert_eq!(a.revision, b.revision);
        assert_eq!(a.revision.len(), 64);
    }

    #[test]
    fn revision_changes_with_any_edge() {
        let a = Topology::new(vec![], vec![edge("a", "b", EdgeKind::Send)], vec![]);
        let b = Topology::new(vec![], vec![edge("a", "b", EdgeKind::Spawn)], vec![]);
        assert_ne!(a.revision, b.revision);
    }

    #[test]
    fn sessions_send_is_denied_by_name_group_or_glob() {
        assert!(denies_sessions_send(&["sessions_send".into()]));
        assert!(denies_sessions_send(&["group:sessions".into()]));
        assert!(denies_sessions_send(&["sessions_*".into()]));
        assert!(!denies_sessions_send(&["exec".into()]));
    }
}

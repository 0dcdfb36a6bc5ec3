//! The agent graph and its derivation from an observed inventory.
//!
//! # Guarantees
//! - SEND and SPAWN edges are exactly the ones [`crate::domain::permissions`] resolves for
//!   each agent's main session (OpenClaw's own rules, checked against a live Gateway); this
//!   module only lays them out as a graph. Self-edges are implicit, never edges.
//! - `revision` is the sha256 of a canonical, sorted encoding: equal graphs, equal revisions.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::glob;
use super::inventory::{Inventory, RouteMatch};
use super::model::TrustLevel;

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
    /// Permissions a desired topology pins (observed graphs leave them unset).
    #[serde(default)]
    pub pins: PermissionPins,
}

/// Permissions a desired team pins for one agent; `None` means "any value".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct PermissionPins {
    /// The agent's own `tools.allow`, exactly.
    pub tools_allow: Option<Vec<String>>,
    /// Entries the agent's own `tools.deny` must hold.
    pub tools_deny: Option<Vec<String>>,
    /// `sandbox.mode`: `off`, `non-main` or `all`.
    pub sandbox_mode: Option<String>,
    /// `sandbox.workspaceAccess`: `none`, `ro` or `rw`.
    pub workspace_access: Option<String>,
    /// Elevated exec: off, or on for exactly these senders.
    pub elevated: Option<ElevatedPin>,
}

impl PermissionPins {
    /// Whether nothing is pinned.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A pinned elevated-exec setting.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct ElevatedPin {
    pub enabled: bool,
    /// `<channel>:<sender>` entries (`*` = anyone on that channel).
    pub allow_from: Vec<String>,
}

/// Team-wide permissions a desired topology pins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct TeamPins {
    /// `tools.agentToAgent.allow` must name the team's agents (never empty or `*`), so an agent
    /// added to the runtime later does not join the clique on its own.
    pub closed_agent_to_agent: bool,
    /// `tools.sessions.visibility`.
    pub sessions_visibility: Option<String>,
}

impl TeamPins {
    /// Whether nothing is pinned.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
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
    /// Team-wide pins of a desired topology (observed graphs leave them unset).
    #[serde(default)]
    pub team: TeamPins,
    pub revision: String,
}

impl Topology {
    /// Creates a graph in canonical order (sorted, deduplicated) with its revision.
    pub fn new(nodes: Vec<TopologyNode>, edges: Vec<TopologyEdge>, routes: Vec<Route>) -> Self {
        Self::with_team(nodes, edges, routes, TeamPins::default())
    }

    /// Creates a graph with team-wide pins.
    pub fn with_team(
        mut nodes: Vec<TopologyNode>,
        mut edges: Vec<TopologyEdge>,
        mut routes: Vec<Route>,
        team: TeamPins,
    ) -> Self {
        nodes.sort();
        nodes.dedup();
        edges.sort();
        edges.dedup();
        routes.sort();
        routes.dedup();
        let revision = revision_of(&nodes, &edges, &routes, &team);
        Self { nodes, edges, routes, team, revision }
    }

    /// Returns the edges of one kind.
    pub fn edges_of(&self, kind: EdgeKind) -> impl Iterator<Item = &TopologyEdge> {
        self.edges.iter().filter(move |edge| edge.kind == kind)
    }
}

/// Returns the sha256 hex of the canonical encoding: one JSON array per line, in sorted order.
/// Pins add lines only when set, so graphs without pins keep the revisions they always had.
fn revision_of(nodes: &[TopologyNode], edges: &[TopologyEdge], routes: &[Route], team: &TeamPins) -> String {
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
    for node in nodes.iter().filter(|n| !n.pins.is_empty()) {
        let pins = serde_json::to_string(&node.pins).unwrap_or_default();
        line(&["pins", &node.agent_id, &pins]);
    }
    if !team.is_empty() {
        line(&["team", &serde_json::to_string(team).unwrap_or_default()]);
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
            pins: PermissionPins::default(),
        })
        .collect();

    let mut edges = Vec::new();
    for from in &inventory.agents {
        let sends = from.access.may_send_to.iter().map(|to| (to, EdgeKind::Send));
        let spawns = from.access.may_spawn.iter().map(|to| (to, EdgeKind::Spawn));
        for (to, kind) in sends.chain(spawns) {
            edges.push(TopologyEdge { from: from.id.clone(), to: to.clone(), kind });
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

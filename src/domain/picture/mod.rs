//! Pictures of a team: the observed and desired topologies overlaid, drift marked, drawn as
//! Mermaid, DOT or SVG — the SVG laid out by jhf-warp itself (layers by who spawns whom), so no
//! Graphviz is needed anywhere.
//!
//! Drift in an overlay: an agent or edge only in the desired topology is `missing` (dashed
//! red), one only in the runtime is `unexpected` (orange), an agent whose runtime trust is
//! above its desired trust is `widened`. SEND edges are blue and curved, SPAWN edges dark and
//! straight, so the two stay apart in every format.

mod layout;
mod render;

use std::collections::{BTreeMap, BTreeSet};

pub use render::{dot, mermaid, svg};

use crate::domain::model::TrustLevel;
use crate::domain::topology::{EdgeKind, Topology};

/// What a picture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Observed,
    Desired,
    /// Both, with drift marked.
    Overlay,
}

impl std::str::FromStr for Source {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "observed" => Ok(Self::Observed),
            "desired" => Ok(Self::Desired),
            "overlay" | "" => Ok(Self::Overlay),
            other => Err(format!("source {other:?} is not one of observed, desired, overlay")),
        }
    }
}

/// Where an agent or edge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Presence {
    /// In both (or the picture shows one side only).
    Both,
    /// Desired, not in the runtime.
    Missing,
    /// In the runtime, not desired.
    Unexpected,
}

impl Presence {
    pub fn class(self) -> &'static str {
        match self {
            Self::Both => "present",
            Self::Missing => "missing",
            Self::Unexpected => "unexpected",
        }
    }
}

/// An agent as drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PictureNode {
    pub id: String,
    pub role: String,
    pub trust: TrustLevel,
    pub presence: Presence,
    /// The runtime grants more than the desired trust.
    pub widened: bool,
    /// Who reaches or wakes it (observed runtimes only).
    pub reach: Reach,
}

/// What reaches an agent from outside the team: wake-ups without a person, and channel
/// accounts whose messages land at it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reach {
    /// e.g. `heartbeat every 30m`, `cron job "digest" every 1d`.
    pub woken_by: Vec<String>,
    /// e.g. `telegram/lead`.
    pub inbound: Vec<String>,
    /// Some route lets anyone start a direct conversation with it (`dmPolicy: "open"`).
    pub open_dm: bool,
}

impl Reach {
    /// A one-line summary (`⏰ 2 · ✉ telegram/lead (open DM)`), empty when nothing reaches it.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.woken_by.is_empty() {
            parts.push(format!("⏰ {}", self.woken_by.len()));
        }
        if !self.inbound.is_empty() {
            let open = if self.open_dm { " (open DM)" } else { "" };
            parts.push(format!("✉ {}{open}", self.inbound.join(", ")));
        }
        parts.join(" · ")
    }
}

/// A permission as drawn.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PictureEdge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    pub presence: Presence,
}

/// A team ready to draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    pub nodes: Vec<PictureNode>,
    pub edges: Vec<PictureEdge>,
}

pub fn trust_name(trust: TrustLevel) -> &'static str {
    match trust {
        TrustLevel::Restricted => "restricted",
        TrustLevel::Standard => "standard",
        TrustLevel::Elevated => "elevated",
    }
}

/// Builds the picture of `source` from what is known (either side may be absent).
pub fn build(desired: Option<&Topology>, observed: Option<&Topology>, source: Source) -> Picture {
    let (desired, observed) = match source {
        Source::Observed => (None, observed),
        Source::Desired => (desired, None),
        Source::Overlay => (desired, observed),
    };
    let overlay = desired.is_some() && observed.is_some();
    let by_id = |t: Option<&Topology>| -> BTreeMap<String, (String, TrustLevel)> {
        t.map(|t| t.nodes.iter().map(|n| (n.agent_id.clone(), (n.role.clone(), n.trust))).collect())
            .unwrap_or_default()
    };
    let (wanted, seen) = (by_id(desired), by_id(observed));
    let ids: BTreeSet<&String> = wanted.keys().chain(seen.keys()).collect();
    let nodes = ids
        .into_iter()
        .map(|id| {
            let (presence, role, trust, widened) = match (wanted.get(id), seen.get(id)) {
                (Some((role, want)), Some((seen_role, have))) => {
                    let role = if role.is_empty() { seen_role.clone() } else { role.clone() };
                    (Presence::Both, role, *have, overlay && have > want)
                }
                (Some((role, want)), None) => {
                    (if overlay { Presence::Missing } else { Presence::Both }, role.clone(), *want, false)
                }
                (None, Some((role, have))) => {
                    (if overlay { Presence::Unexpected } else { Presence::Both }, role.clone(), *have, false)
                }
                (None, None) => (Presence::Both, String::new(), TrustLevel::Restricted, false),
            };
            PictureNode { id: id.clone(), role, trust, presence, widened, reach: Reach::default() }
        })
        .collect();
    let edge_set = |t: Option<&Topology>| -> BTreeSet<(String, String, EdgeKind)> {
        t.map(|t| t.edges.iter().map(|e| (e.from.clone(), e.to.clone(), e.kind)).collect())
            .unwrap_or_default()
    };
    let (want_edges, have_edges) = (edge_set(desired), edge_set(observed));
    let mut edges: Vec<PictureEdge> = want_edges
        .union(&have_edges)
        .map(|(from, to, kind)| {
            let key = (from.clone(), to.clone(), *kind);
            let presence = match (want_edges.contains(&key), have_edges.contains(&key)) {
                (true, false) if overlay => Presence::Missing,
                (false, true) if overlay => Presence::Unexpected,
                _ => Presence::Both,
            };
            PictureEdge { from: from.clone(), to: to.clone(), kind: *kind, presence }
        })
        .collect();
    edges.sort();
    Picture { nodes, edges }
}

impl Picture {
    /// Adds what reaches each agent (by id) to the picture.
    pub fn with_reach(mut self, reach: &BTreeMap<String, Reach>) -> Self {
        for node in &mut self.nodes {
            if let Some(found) = reach.get(&node.id) {
                node.reach = found.clone();
            }
        }
        self
    }
}

/// What reaches each agent of an inventory.
pub fn reach_of(inventory: &crate::domain::inventory::Inventory) -> BTreeMap<String, Reach> {
    inventory
        .agents
        .iter()
        .map(|agent| {
            let access = &agent.access;
            let reach = Reach {
                woken_by: access.wakeups.iter().map(|w| w.detail.clone()).collect(),
                inbound: access.inbound.iter().map(|r| format!("{}/{}", r.channel, r.account)).collect(),
                open_dm: access.inbound.iter().any(|r| r.open_dm()),
            };
            (agent.id.clone(), reach)
        })
        .collect()
}

#[cfg(test)]
mod tests;

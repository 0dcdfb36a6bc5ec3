//! Drift: the differences between a desired and an observed topology (plus the runtime's own
//! findings), keyed stably so the anti-flap tracker can follow each one over time.
//!
//! # Guarantees
//! - Keys are `<KIND>/<subject>`; the same difference always gets the same key.
//! - Output is sorted by key and independent of input order.
//! - Edges and routes of a *missing* agent are folded into its `AGENT_MISSING` item (they are
//!   implied); unexpected grants are always reported, because each one is a widening.
//! - Comparison is semantic (on the normalised graph), never textual.

pub mod filter;
mod permissions;
pub mod summary;
pub mod tracker;

pub use permissions::permission_items;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::findings::Finding;
use super::inventory::Inventory;
use super::model::Severity;
use super::topology::{Route, Topology, TopologyEdge, TopologyNode};

/// What kind of difference an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DriftKind {
    AgentMissing,
    AgentUnexpected,
    AgentChanged,
    EdgeMissing,
    EdgeUnexpected,
    RouteMissing,
    RouteUnexpected,
    TrustWidened,
    RuntimeFinding,
    PermissionWidened,
    PermissionChanged,
}

impl DriftKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 11] = [
        Self::AgentMissing,
        Self::AgentUnexpected,
        Self::AgentChanged,
        Self::EdgeMissing,
        Self::EdgeUnexpected,
        Self::RouteMissing,
        Self::RouteUnexpected,
        Self::TrustWidened,
        Self::RuntimeFinding,
        Self::PermissionWidened,
        Self::PermissionChanged,
    ];

    /// Returns the UPPER_SNAKE name used in keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentMissing => "AGENT_MISSING",
            Self::AgentUnexpected => "AGENT_UNEXPECTED",
            Self::AgentChanged => "AGENT_CHANGED",
            Self::EdgeMissing => "EDGE_MISSING",
            Self::EdgeUnexpected => "EDGE_UNEXPECTED",
            Self::RouteMissing => "ROUTE_MISSING",
            Self::RouteUnexpected => "ROUTE_UNEXPECTED",
            Self::TrustWidened => "TRUST_WIDENED",
            Self::RuntimeFinding => "RUNTIME_FINDING",
            Self::PermissionWidened => "PERMISSION_WIDENED",
            Self::PermissionChanged => "PERMISSION_CHANGED",
        }
    }
}

/// One difference between desired and observed state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DriftDifference {
    pub key: String,
    pub kind: DriftKind,
    pub severity: Severity,
    pub subject: String,
    pub explanation: String,
    /// For `AgentChanged`: the fields that differ.
    pub fields: Vec<String>,
}

impl DriftDifference {
    fn new(kind: DriftKind, severity: Severity, subject: String, explanation: String) -> Self {
        Self {
            key: format!("{}/{subject}", kind.as_str()),
            kind,
            severity,
            subject,
            explanation,
            fields: Vec::new(),
        }
    }
}

fn edge_subject(edge: &TopologyEdge) -> String {
    format!("{}->{}:{}", edge.from, edge.to, edge.kind.as_str())
}

fn route_subject(route: &Route) -> String {
    format!("{}->{}", route.route.key(), route.agent_id)
}

/// Returns the differences of `observed` against `desired` (the reference), sorted by key.
pub fn diff_topologies(desired: &Topology, observed: &Topology) -> Vec<DriftDifference> {
    let wanted: BTreeMap<&str, &TopologyNode> =
        desired.nodes.iter().map(|n| (n.agent_id.as_str(), n)).collect();
    let actual: BTreeMap<&str, &TopologyNode> =
        observed.nodes.iter().map(|n| (n.agent_id.as_str(), n)).collect();
    let mut out = Vec::new();

    let missing: BTreeSet<&str> = wanted.keys().filter(|id| !actual.contains_key(*id)).copied().collect();
    for id in &missing {
        out.push(DriftDifference::new(
            DriftKind::AgentMissing,
            Severity::Error,
            (*id).to_owned(),
            format!("desired agent \"{id}\" is not configured in the runtime (its edges and routes are missing too)"),
        ));
    }
    for id in actual.keys().filter(|id| !wanted.contains_key(*id)) {
        out.push(DriftDifference::new(
            DriftKind::AgentUnexpected,
            Severity::Warning,
            (*id).to_owned(),
            format!("the runtime configures agent \"{id}\", which the desired topology does not have"),
        ));
    }
    for (id, want) in &wanted {
        let Some(have) = actual.get(id) else { continue };
        compare_agent(want, have, &mut out);
    }

    let wanted_edges: BTreeSet<&TopologyEdge> = desired.edges.iter().collect();
    let actual_edges: BTreeSet<&TopologyEdge> = observed.edges.iter().collect();
    for edge in wanted_edges.difference(&actual_edges) {
        if missing.contains(edge.from.as_str()) || missing.contains(edge.to.as_str()) {
            continue;
        }
        out.push(DriftDifference::new(
            DriftKind::EdgeMissing,
            Severity::Warning,
            edge_subject(edge),
            format!(
                "desired {} {} → {} is not granted by the runtime",
                edge.kind.as_str(),
                edge.from,
                edge.to
            ),
        ));
    }
    for edge in actual_edges.difference(&wanted_edges) {
        out.push(DriftDifference::new(
            DriftKind::EdgeUnexpected,
            Severity::Critical,
            edge_subject(edge),
            format!(
                "the runtime grants {} {} → {}, which the desired topology does not: a widening",
                edge.kind.as_str(),
                edge.from,
                edge.to
            ),
        ));
    }

    let wanted_routes: BTreeSet<String> = desired.routes.iter().map(route_subject).collect();
    let actual_routes: BTreeSet<String> = observed.routes.iter().map(route_subject).collect();
    for route in &desired.routes {
        let subject = route_subject(route);
        if !actual_routes.contains(&subject) && !missing.contains(route.agent_id.as_str()) {
            out.push(DriftDifference::new(
                DriftKind::RouteMissing,
                Severity::Error,
                subject,
                format!("desired route {} → {} is not configured", route.route.key(), route.agent_id),
            ));
        }
    }
    for route in &observed.routes {
        let subject = route_subject(route);
        if !wanted_routes.contains(&subject) {
            out.push(DriftDifference::new(
                DriftKind::RouteUnexpected,
                Severity::Warning,
                subject,
                format!(
                    "the runtime routes {} → {}, which the desired topology does not",
                    route.route.key(),
                    route.agent_id
                ),
            ));
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.key == b.key);
    out
}

/// Compares one agent present on both sides. Empty desired fields mean "any value".
fn compare_agent(want: &TopologyNode, have: &TopologyNode, out: &mut Vec<DriftDifference>) {
    let id = &want.agent_id;
    if have.trust > want.trust {
        out.push(DriftDifference::new(
            DriftKind::TrustWidened,
            Severity::Critical,
            id.clone(),
            format!(
                "agent \"{id}\" is granted {} in the runtime but its desired trust is {}",
                have.trust.as_str(),
                want.trust.as_str()
            ),
        ));
    }
    let mut fields = Vec::new();
    let differs = |want: &Option<String>, have: &Option<String>| want.is_some() && want != have;
    if differs(&want.model, &have.model) {
        fields.push("model");
    }
    if differs(&want.tools_profile, &have.tools_profile) {
        fields.push("tools_profile");
    }
    if !want.workspace.is_empty() && want.workspace != have.workspace {
        fields.push("workspace");
    }
    if have.trust < want.trust {
        fields.push("trust");
    }
    if !fields.is_empty() {
        let mut item = DriftDifference::new(
            DriftKind::AgentChanged,
            Severity::Warning,
            id.clone(),
            format!("agent \"{id}\" differs in: {}", fields.join(", ")),
        );
        item.fields = fields.into_iter().map(str::to_owned).collect();
        out.push(item);
    }
}

/// Returns the topology HEAL moves the runtime to: the observed one with only the differences
/// whose keys are in `acting_on` (the confirmed, non-flapping items) made as desired. Every other
/// difference — pending, flapping, acknowledged — stays as observed.
///
/// An added agent brings its desired edges and routes (they are folded into its
/// `AGENT_MISSING` item) where the other end is in the result; a removed agent takes its own
/// with it.
pub fn heal_target(desired: &Topology, observed: &Topology, acting_on: &BTreeSet<String>) -> Topology {
    let acts = |kind: DriftKind, subject: &str| acting_on.contains(&format!("{}/{subject}", kind.as_str()));
    let wanted: BTreeMap<&str, &TopologyNode> =
        desired.nodes.iter().map(|n| (n.agent_id.as_str(), n)).collect();
    let mut nodes: BTreeMap<String, TopologyNode> =
        observed.nodes.iter().map(|n| (n.agent_id.clone(), n.clone())).collect();

    let added: BTreeSet<String> = wanted
        .keys()
        .filter(|id| !nodes.contains_key(**id) && acts(DriftKind::AgentMissing, id))
        .map(|id| (*id).to_owned())
        .collect();
    let removed: BTreeSet<String> = nodes
        .keys()
        .filter(|id| !wanted.contains_key(id.as_str()) && acts(DriftKind::AgentUnexpected, id))
        .cloned()
        .collect();
    for id in &added {
        nodes.insert(id.clone(), wanted[id.as_str()].clone());
    }
    for id in &removed {
        nodes.remove(id);
    }
    for (id, want) in &wanted {
        if added.contains(*id) {
            continue;
        }
        let Some(have) = nodes.get_mut(*id) else { continue };
        if acts(DriftKind::TrustWidened, id) && have.trust > want.trust {
            have.trust = want.trust;
        }
        let pin_keys = ["tools_allow", "tools_deny", "sandbox_mode", "workspace_access", "elevated"];
        if pin_keys.iter().any(|what| {
            let subject = format!("{id}:{what}");
            acts(DriftKind::PermissionWidened, &subject) || acts(DriftKind::PermissionChanged, &subject)
        }) {
            have.pins = want.pins.clone();
        }
        if acts(DriftKind::AgentChanged, id) {
            if want.model.is_some() {
                have.model.clone_from(&want.model);
            }
            if want.tools_profile.is_some() {
                have.tools_profile.clone_from(&want.tools_profile);
            }
            if !want.workspace.is_empty() {
                have.workspace.clone_from(&want.workspace);
            }
            if have.trust < want.trust {
                have.trust = want.trust;
            }
        }
    }

    let present = |id: &str| nodes.contains_key(id);
    let wanted_edges: BTreeSet<&TopologyEdge> = desired.edges.iter().collect();
    let mut edges: Vec<TopologyEdge> = observed
        .edges
        .iter()
        .filter(|e| present(&e.from) && present(&e.to))
        .filter(|e| wanted_edges.contains(e) || !acts(DriftKind::EdgeUnexpected, &edge_subject(e)))
        .cloned()
        .collect();
    for edge in &desired.edges {
        let brought = added.contains(&edge.from) || added.contains(&edge.to);
        if present(&edge.from)
            && present(&edge.to)
            && (brought || acts(DriftKind::EdgeMissing, &edge_subject(edge)))
        {
            edges.push(edge.clone());
        }
    }

    let wanted_routes: BTreeSet<String> = desired.routes.iter().map(route_subject).collect();
    let mut routes: Vec<Route> = observed
        .routes
        .iter()
        .filter(|r| present(&r.agent_id))
        .filter(|r| {
            let subject = route_subject(r);
            wanted_routes.contains(&subject) || !acts(DriftKind::RouteUnexpected, &subject)
        })
        .cloned()
        .collect();
    for route in &desired.routes {
        let brought = added.contains(&route.agent_id);
        if present(&route.agent_id) && (brought || acts(DriftKind::RouteMissing, &route_subject(route))) {
            routes.push(route.clone());
        }
    }
    let team_acted = ["team:agent_to_agent", "team:sessions_visibility"]
        .iter()
        .any(|s| acts(DriftKind::PermissionWidened, s) || acts(DriftKind::PermissionChanged, s));
    let team = if team_acted { desired.team.clone() } else { observed.team.clone() };
    Topology::with_team(nodes.into_values().collect(), edges, routes, team)
}

/// Returns the runtime findings as drift items (`RUNTIME_FINDING/<finding key>`).
pub fn finding_items(findings: &[Finding]) -> Vec<DriftDifference> {
    findings
        .iter()
        .map(|finding| {
            DriftDifference::new(
                DriftKind::RuntimeFinding,
                finding.severity,
                finding.key.clone(),
                finding.message.clone(),
            )
        })
        .collect()
}

/// Returns every difference: topology and pinned-permission drift when a desired topology
/// exists, plus the runtime's findings.
pub fn diff(desired: Option<&Topology>, observed: &Topology, inventory: &Inventory) -> Vec<DriftDifference> {
    let mut items = desired.map(|desired| diff_topologies(desired, observed)).unwrap_or_default();
    if let Some(desired) = desired {
        items.extend(permission_items(desired, inventory));
    }
    items.extend(finding_items(&inventory.findings));
    items.sort();
    items.dedup_by(|a, b| a.key == b.key);
    items
}

#[cfg(test)]
mod tests;

//! Validation of a desired topology before it is stored.
//!
//! # Guarantees
//! - Every problem is reported at once, as field violations with request field paths.
//! - A SEND set OpenClaw cannot express is refused, naming the nearest expressible *narrower*
//!   set; nothing is ever widened to make a policy fit.
//! - Inputs are bounded (counts and string lengths) before any work proportional to them.

use std::collections::{BTreeMap, BTreeSet};

use super::expressibility::{express, nearest_narrower};
use super::inventory::RouteMatch;
use super::model::TrustLevel;
use super::openclaw::is_valid_agent_id;
use super::topology::{EdgeKind, PermissionPins, Route, TeamPins, Topology, TopologyEdge, TopologyNode};

/// Most agents a desired topology may hold.
pub const MAX_AGENTS: usize = 2_000;
/// Most edges a desired topology may hold.
pub const MAX_EDGES: usize = 200_000;
/// Most routes a desired topology may hold.
pub const MAX_ROUTES: usize = 10_000;
/// Longest free-text field (role, model, profile, workspace, route parts).
pub const MAX_TEXT: usize = 256;

/// One invalid request field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Request field path, e.g. `topology.edges[2].to_agent_id`.
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    /// Creates a violation.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// A desired agent as requested; `trust: None` means unspecified (RESTRICTED).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInput {
    pub agent_id: String,
    pub role: String,
    pub trust: Option<TrustLevel>,
    pub model: String,
    pub tools_profile: String,
    pub workspace: String,
    pub pins: PermissionPins,
}

impl From<&TopologyNode> for NodeInput {
    fn from(node: &TopologyNode) -> Self {
        Self {
            agent_id: node.agent_id.clone(),
            role: node.role.clone(),
            trust: Some(node.trust),
            model: node.model.clone().unwrap_or_default(),
            tools_profile: node.tools_profile.clone().unwrap_or_default(),
            workspace: node.workspace.clone(),
            pins: node.pins.clone(),
        }
    }
}

/// A desired topology as requested (edge kinds and trust already decoded).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredInput {
    pub nodes: Vec<NodeInput>,
    pub edges: Vec<TopologyEdge>,
    pub routes: Vec<Route>,
    pub team: TeamPins,
}

impl From<&Topology> for DesiredInput {
    /// The request that would store `topology` as it is.
    fn from(topology: &Topology) -> Self {
        Self {
            nodes: topology.nodes.iter().map(NodeInput::from).collect(),
            edges: topology.edges.clone(),
            routes: topology.routes.clone(),
            team: topology.team.clone(),
        }
    }
}

fn optional(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// Checks every node's workspace against where workspaces may live on the runtime.
pub fn check_workspaces(
    input: &DesiredInput,
    policy: &super::workspace::WorkspacePolicy,
) -> Vec<FieldViolation> {
    input
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, node)| {
            policy.check(&node.workspace).err().map(|why| {
                FieldViolation::new(
                    format!("topology.nodes[{i}].workspace"),
                    format!("\"{}\" {why}", truncate(&node.workspace)),
                )
            })
        })
        .collect()
}

/// Checks the sizes of a requested topology before anything else is looked at (a transport
/// calls it before decoding the request into domain values).
pub fn check_counts(nodes: usize, edges: usize, routes: usize) -> Result<(), Vec<FieldViolation>> {
    let violations: Vec<FieldViolation> = [
        ("topology.nodes", nodes, MAX_AGENTS),
        ("topology.edges", edges, MAX_EDGES),
        ("topology.routes", routes, MAX_ROUTES),
    ]
    .into_iter()
    .filter(|(_, count, max)| count > max)
    .map(|(field, count, max)| {
        FieldViolation::new(field, format!("at most {max} entries are allowed, got {count}"))
    })
    .collect();
    if violations.is_empty() { Ok(()) } else { Err(violations) }
}

/// Validates a requested desired topology and returns it in canonical form with its revision.
pub fn validate_desired(input: &DesiredInput) -> Result<Topology, Vec<FieldViolation>> {
    check_counts(input.nodes.len(), input.edges.len(), input.routes.len())?;
    let mut violations = Vec::new();
    let ids = node_violations(&input.nodes, &mut violations);
    edge_violations(&input.edges, &ids, &mut violations);
    route_list_violations(&input.routes, &ids, &mut violations);
    for (i, node) in input.nodes.iter().enumerate() {
        violations.extend(pin_violations(&format!("topology.nodes[{i}].pins"), &node.pins));
    }
    violations.extend(team_violations(input));
    if violations.is_empty() {
        violations.extend(send_violations(&input.edges));
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    let nodes = input
        .nodes
        .iter()
        .map(|node| TopologyNode {
            agent_id: node.agent_id.clone(),
            role: node.role.clone(),
            trust: node.trust.unwrap_or(TrustLevel::Restricted),
            model: optional(&node.model),
            tools_profile: optional(&node.tools_profile),
            workspace: node.workspace.clone(),
            pins: node.pins.clone(),
        })
        .collect();
    Ok(Topology::with_team(nodes, input.edges.clone(), input.routes.clone(), input.team.clone()))
}

/// Checks every node's id and text fields; returns the valid ids.
fn node_violations<'a>(nodes: &'a [NodeInput], violations: &mut Vec<FieldViolation>) -> BTreeSet<&'a str> {
    let mut ids = BTreeSet::new();
    for (i, node) in nodes.iter().enumerate() {
        let field = format!("topology.nodes[{i}]");
        if !is_valid_agent_id(&node.agent_id) || node.agent_id != node.agent_id.to_ascii_lowercase() {
            violations.push(FieldViolation::new(
                format!("{field}.agent_id"),
                format!(
                    "\"{}\" is not a lower-case OpenClaw agent id (^[a-z0-9][a-z0-9_-]{{0,63}}$)",
                    truncate(&node.agent_id)
                ),
            ));
        } else if !ids.insert(node.agent_id.as_str()) {
            violations.push(FieldViolation::new(
                format!("{field}.agent_id"),
                format!("duplicate agent id \"{}\"", node.agent_id),
            ));
        }
        for (name, value) in [
            ("role", &node.role),
            ("model", &node.model),
            ("tools_profile", &node.tools_profile),
            ("workspace", &node.workspace),
        ] {
            if value.len() > MAX_TEXT {
                violations.push(FieldViolation::new(
                    format!("{field}.{name}"),
                    format!("longer than {MAX_TEXT} bytes"),
                ));
            }
        }
    }
    ids
}

fn edge_violations(edges: &[TopologyEdge], ids: &BTreeSet<&str>, violations: &mut Vec<FieldViolation>) {
    let mut seen_edges = BTreeSet::new();
    for (i, edge) in edges.iter().enumerate() {
        let field = format!("topology.edges[{i}]");
        for (name, id) in [("from_agent_id", &edge.from), ("to_agent_id", &edge.to)] {
            if !ids.contains(id.as_str()) {
                violations.push(FieldViolation::new(
                    format!("{field}.{name}"),
                    format!("unknown agent \"{}\"", truncate(id)),
                ));
            }
        }
        if edge.from == edge.to {
            violations.push(FieldViolation::new(
                field.clone(),
                "an agent cannot have an edge to itself (self-spawn is implicit)",
            ));
        }
        if !seen_edges.insert(edge) {
            violations.push(FieldViolation::new(field, "duplicate edge"));
        }
    }
}

fn route_list_violations(routes: &[Route], ids: &BTreeSet<&str>, violations: &mut Vec<FieldViolation>) {
    let mut seen_routes: BTreeMap<String, usize> = BTreeMap::new();
    for (i, route) in routes.iter().enumerate() {
        let field = format!("topology.routes[{i}]");
        violations.extend(route_violations(&field, &route.route));
        if !ids.contains(route.agent_id.as_str()) {
            violations.push(FieldViolation::new(
                format!("{field}.agent_id"),
                format!("unknown agent \"{}\"", truncate(&route.agent_id)),
            ));
        }
        if let Some(first) = seen_routes.insert(route.route.key(), i) {
            violations.push(FieldViolation::new(
                format!("{field}.match"),
                format!("duplicate route: topology.routes[{first}] has the same match"),
            ));
        }
    }
}

/// Most entries a pinned tool list may hold.
pub const MAX_PINNED_TOOLS: usize = 200;

fn pin_violations(field: &str, pins: &PermissionPins) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    for (name, list) in [("tools_allow", &pins.tools_allow), ("tools_deny", &pins.tools_deny)] {
        let Some(list) = list else { continue };
        if list.len() > MAX_PINNED_TOOLS {
            out.push(FieldViolation::new(
                format!("{field}.{name}"),
                format!("at most {MAX_PINNED_TOOLS} entries"),
            ));
        }
        for (j, entry) in list.iter().enumerate() {
            if entry.trim().is_empty() || entry.len() > MAX_TEXT {
                out.push(FieldViolation::new(format!("{field}.{name}.tools[{j}]"), "must be 1..256 bytes"));
            }
        }
    }
    let choices = [
        ("sandbox_mode", &pins.sandbox_mode, &["off", "non-main", "all"][..]),
        ("workspace_access", &pins.workspace_access, &["none", "ro", "rw"][..]),
    ];
    for (name, value, allowed) in choices {
        if let Some(value) = value
            && !allowed.contains(&value.as_str())
        {
            out.push(FieldViolation::new(
                format!("{field}.{name}"),
                format!("must be one of {}", allowed.join(", ")),
            ));
        }
    }
    if let Some(elevated) = &pins.elevated {
        if !elevated.enabled && !elevated.allow_from.is_empty() {
            out.push(FieldViolation::new(
                format!("{field}.elevated.allow_from"),
                "must be empty when elevated is off",
            ));
        }
        if elevated.allow_from.len() > MAX_PINNED_TOOLS {
            out.push(FieldViolation::new(
                format!("{field}.elevated.allow_from"),
                format!("at most {MAX_PINNED_TOOLS} entries"),
            ));
        }
        for (j, sender) in elevated.allow_from.iter().enumerate() {
            let well_formed = sender.len() <= MAX_TEXT
                && sender
                    .split_once(':')
                    .is_some_and(|(channel, who)| !channel.is_empty() && !who.is_empty());
            if !well_formed {
                out.push(FieldViolation::new(
                    format!("{field}.elevated.allow_from[{j}]"),
                    "must be <channel>:<sender>",
                ));
            }
        }
    }
    out
}

fn team_violations(input: &DesiredInput) -> Vec<FieldViolation> {
    let Some(visibility) = &input.team.sessions_visibility else { return Vec::new() };
    let mut out = Vec::new();
    if !["self", "tree", "agent", "all"].contains(&visibility.as_str()) {
        out.push(FieldViolation::new(
            "topology.team.sessions_visibility",
            "must be self, tree, agent or all",
        ));
    } else if visibility != "all" && input.edges.iter().any(|e| e.kind == EdgeKind::Send) {
        out.push(FieldViolation::new(
            "topology.team.sessions_visibility",
            "SEND edges need visibility all (OpenClaw refuses cross-agent sends below it)",
        ));
    }
    out
}

fn route_violations(field: &str, route: &RouteMatch) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    if route.channel.is_empty() {
        out.push(FieldViolation::new(format!("{field}.match.channel"), "required"));
    }
    match (&route.peer_kind, &route.peer_id) {
        (Some(kind), _) if !["direct", "group", "channel"].contains(&kind.as_str()) => {
            out.push(FieldViolation::new(
                format!("{field}.match.peer_kind"),
                "must be direct, group or channel",
            ));
        }
        (Some(_), None) | (None, Some(_)) => {
            out.push(FieldViolation::new(format!("{field}.match"), "peer_kind and peer_id go together"));
        }
        _ => {}
    }
    let texts = [&route.account_id, &route.peer_id, &route.guild_id, &route.team_id];
    if route.channel.len() > MAX_TEXT || texts.iter().any(|t| t.as_ref().is_some_and(|t| t.len() > MAX_TEXT))
    {
        out.push(FieldViolation::new(
            format!("{field}.match"),
            format!("fields are limited to {MAX_TEXT} bytes"),
        ));
    }
    out
}

/// Refuses an inexpressible SEND set, naming the nearest expressible narrower set.
fn send_violations(edges: &[TopologyEdge]) -> Vec<FieldViolation> {
    let sends: BTreeSet<(String, String)> =
        edges.iter().filter(|e| e.kind == EdgeKind::Send).map(|e| (e.from.clone(), e.to.clone())).collect();
    if express(&sends).is_some() {
        return Vec::new();
    }
    // The narrower set is the part of the request the nearest policy grants: found by asking
    // the policy, never by listing every pair it grants.
    let policy = nearest_narrower(&sends);
    let narrower: BTreeSet<(String, String)> =
        sends.iter().filter(|(a, b)| policy.grants(a, b)).cloned().collect();
    let show = |set: &BTreeSet<(String, String)>| {
        let items: Vec<String> = set.iter().take(50).map(|(a, b)| format!("{a}->{b}")).collect();
        let more = set.len().saturating_sub(50);
        if more > 0 {
            format!("{{{}, … {more} more}}", items.join(", "))
        } else {
            format!("{{{}}}", items.join(", "))
        }
    };
    let dropped: BTreeSet<(String, String)> = sends.difference(&narrower).cloned().collect();
    let mut out = vec![FieldViolation::new(
        "topology.edges",
        format!(
            "OpenClaw cannot express this SEND set (agent-to-agent allow is one clique; direction only by denying \
             sessions_send). Nearest expressible narrower set: {}; it drops {}",
            show(&narrower),
            show(&dropped)
        ),
    )];
    for (i, edge) in edges.iter().enumerate() {
        if edge.kind == EdgeKind::Send && dropped.contains(&(edge.from.clone(), edge.to.clone())) {
            out.push(FieldViolation::new(
                format!("topology.edges[{i}]"),
                format!("SEND {}->{} is not expressible together with the others; the nearest narrower set drops it", edge.from, edge.to),
            ));
        }
    }
    out
}

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Returns the etag of a desired revision.
pub fn etag(generation: i64, revision: &str) -> String {
    format!("{generation}-{}", &revision[..revision.len().min(16)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> NodeInput {
        NodeInput { agent_id: id.to_owned(), role: id.to_owned(), ..NodeInput::default() }
    }

    fn edge(from: &str, to: &str, kind: EdgeKind) -> TopologyEdge {
        TopologyEdge { from: from.to_owned(), to: to.to_owned(), kind }
    }

    fn input(ids: &[&str], edges: Vec<TopologyEdge>) -> DesiredInput {
        DesiredInput { nodes: ids.iter().map(|id| node(id)).collect(), edges, ..DesiredInput::default() }
    }

    fn fields(violations: &[FieldViolation]) -> Vec<&str> {
        violations.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn a_valid_topology_gets_a_revision_and_default_trust() {
        let topology = validate_desired(&input(&["a", "b"], vec![edge("a", "b", EdgeKind::Spawn)])).unwrap();
        assert_eq!(topology.revision.len(), 64);
        assert!(topology.nodes.iter().all(|n| n.trust == TrustLevel::Restricted));
    }

    #[test]
    fn unknown_invalid_and_duplicate_ids_are_violations() {
        let mut request = input(
            &["a", "a", "Bad Id"],
            vec![edge("a", "ghost", EdgeKind::Spawn), edge("a", "a", EdgeKind::Spawn)],
        );
        request.edges.push(edge("a", "ghost", EdgeKind::Spawn));
        let violations = validate_desired(&request).unwrap_err();
        assert_eq!(
            fields(&violations),
            [
                "topology.nodes[1].agent_id",
                "topology.nodes[2].agent_id",
                "topology.edges[0].to_agent_id",
                "topology.edges[1]",
                "topology.edges[2].to_agent_id",
                "topology.edges[2]",
            ]
        );
    }

    #[test]
    fn duplicate_routes_are_violations() {
        let mut request = input(&["a", "b"], vec![]);
        let route = RouteMatch { channel: "telegram".into(), ..RouteMatch::default() };
        request.routes.push(Route { route: route.clone(), agent_id: "a".into() });
        request.routes.push(Route { route, agent_id: "b".into() });
        let violations = validate_desired(&request).unwrap_err();
        assert_eq!(fields(&violations), ["topology.routes[1].match"]);
    }

    #[test]
    fn an_inexpressible_send_set_is_refused_naming_the_narrower_set() {
        let request =
            input(&["a", "b", "c"], vec![edge("a", "b", EdgeKind::Send), edge("b", "c", EdgeKind::Send)]);
        let violations = validate_desired(&request).unwrap_err();
        assert_eq!(fields(&violations), ["topology.edges", "topology.edges[1]"]);
        assert!(violations[0].description.contains("{a->b}"), "{}", violations[0].description);
        assert!(violations[0].description.contains("drops {b->c}"), "{}", violations[0].description);
    }

    #[test]
    fn spawn_edges_are_always_expressible() {
        let request =
            input(&["a", "b", "c"], vec![edge("a", "b", EdgeKind::Spawn), edge("b", "c", EdgeKind::Spawn)]);
        assert!(validate_desired(&request).is_ok());
    }

    #[test]
    fn oversized_requests_are_refused_before_any_work() {
        let request =
            DesiredInput { nodes: vec![NodeInput::default(); MAX_AGENTS + 1], ..DesiredInput::default() };
        assert_eq!(fields(&validate_desired(&request).unwrap_err()), ["topology.nodes"]);
    }

    #[test]
    fn etags_carry_the_generation() {
        assert_eq!(etag(3, &"f".repeat(64)), "3-ffffffffffffffff");
    }
}

/// A stored desired revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRevision {
    pub generation: i64,
    pub etag: String,
    pub author: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub topology: Topology,
}

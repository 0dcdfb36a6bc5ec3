use super::*;
use crate::domain::findings::FindingKind;
use crate::domain::inventory::RouteMatch;
use crate::domain::model::TrustLevel;
use crate::domain::topology::{EdgeKind, Route};

fn node(id: &str, trust: TrustLevel) -> TopologyNode {
    TopologyNode {
        agent_id: id.into(),
        role: id.into(),
        trust,
        model: None,
        tools_profile: None,
        workspace: String::new(),
        pins: Default::default(),
    }
}

fn edge(from: &str, to: &str, kind: EdgeKind) -> TopologyEdge {
    TopologyEdge { from: from.into(), to: to.into(), kind }
}

fn route(channel: &str, account: &str, agent: &str) -> Route {
    Route {
        route: RouteMatch {
            channel: channel.into(),
            account_id: Some(account.into()),
            ..RouteMatch::default()
        },
        agent_id: agent.into(),
    }
}

fn trio() -> Topology {
    let ids = ["lead", "research", "writer"];
    let mut edges = Vec::new();
    for a in ids {
        for b in ids.iter().filter(|b| **b != a) {
            edges.push(edge(a, b, EdgeKind::Send));
        }
    }
    edges.push(edge("lead", "research", EdgeKind::Spawn));
    edges.push(edge("lead", "writer", EdgeKind::Spawn));
    Topology::new(
        ids.iter().map(|id| node(id, TrustLevel::Elevated)).collect(),
        edges,
        ids.iter().map(|id| route("telegram", id, id)).collect(),
    )
}

fn keys(items: &[DriftDifference]) -> Vec<&str> {
    items.iter().map(|d| d.key.as_str()).collect()
}

#[test]
fn equal_topologies_have_no_drift() {
    assert!(diff_topologies(&trio(), &trio()).is_empty());
}

#[test]
fn a_missing_agent_is_one_item_with_its_edges_and_routes_folded_in() {
    let desired = trio();
    let observed = Topology::new(
        desired.nodes.iter().filter(|n| n.agent_id != "writer").cloned().collect(),
        desired.edges.iter().filter(|e| e.from != "writer" && e.to != "writer").cloned().collect(),
        desired.routes.iter().filter(|r| r.agent_id != "writer").cloned().collect(),
    );
    let items = diff_topologies(&desired, &observed);
    assert_eq!(keys(&items), ["AGENT_MISSING/writer"]);
    assert_eq!(items[0].severity, Severity::Error);
}

#[test]
fn an_unexpected_agent_that_may_message_others_is_an_unexpected_agent_and_critical_edges() {
    let desired = trio();
    let mut nodes = desired.nodes.clone();
    nodes.push(node("scout", TrustLevel::Elevated));
    let mut edges = desired.edges.clone();
    edges.push(edge("scout", "lead", EdgeKind::Send));
    let observed = Topology::new(nodes, edges, desired.routes.clone());
    let items = diff_topologies(&desired, &observed);
    assert_eq!(keys(&items), ["AGENT_UNEXPECTED/scout", "EDGE_UNEXPECTED/scout->lead:SEND"]);
    assert_eq!(items[1].severity, Severity::Critical);
}

#[test]
fn missing_and_unexpected_edges_and_routes_are_reported() {
    let desired = trio();
    let mut edges: Vec<_> =
        desired.edges.iter().filter(|e| e.kind != EdgeKind::Spawn || e.to != "writer").cloned().collect();
    edges.push(edge("research", "writer", EdgeKind::Spawn));
    let mut routes: Vec<_> = desired.routes.iter().filter(|r| r.agent_id != "lead").cloned().collect();
    routes.push(route("slack", "x", "lead"));
    let observed = Topology::new(desired.nodes.clone(), edges, routes);
    let items = diff_topologies(&desired, &observed);
    assert_eq!(
        keys(&items),
        [
            "EDGE_MISSING/lead->writer:SPAWN",
            "EDGE_UNEXPECTED/research->writer:SPAWN",
            "ROUTE_MISSING/telegram account=lead->lead",
            "ROUTE_UNEXPECTED/slack account=x->lead",
        ]
    );
}

#[test]
fn a_runtime_grant_above_desired_trust_is_trust_widened() {
    let mut desired = trio();
    desired.nodes[2].trust = TrustLevel::Restricted;
    let items = diff_topologies(&desired, &trio());
    assert_eq!(keys(&items), ["TRUST_WIDENED/writer"]);
    assert_eq!(items[0].severity, Severity::Critical);
}

#[test]
fn changed_settings_list_the_fields_and_ignore_unspecified_ones() {
    let mut desired = trio();
    desired.nodes[0].model = Some("anthropic/claude-opus-4-1".into());
    desired.nodes[0].tools_profile = Some("coding".into());
    let mut observed = trio();
    observed.nodes[0].model = Some("openai/gpt-5".into());
    observed.nodes[0].tools_profile = Some("coding".into());
    observed.nodes[1].model = Some("whatever".into()); // desired leaves it open
    observed.nodes[2].trust = TrustLevel::Restricted; // narrower than desired
    let items = diff_topologies(&desired, &Topology::new(observed.nodes, observed.edges, observed.routes));
    assert_eq!(keys(&items), ["AGENT_CHANGED/lead", "AGENT_CHANGED/writer"]);
    assert_eq!(items[0].fields, ["model"]);
    assert_eq!(items[1].fields, ["trust"]);
}

#[test]
fn runtime_findings_become_items_with_their_severity() {
    let finding = Finding::new(FindingKind::WorkspaceMissing, "ops", "/x", "gone");
    let inventory = crate::domain::inventory::build_inventory("{}", &Default::default());
    let inventory = crate::domain::inventory::Inventory { findings: vec![finding], ..inventory };
    let items = diff(None, &trio(), &inventory);
    assert_eq!(keys(&items), ["RUNTIME_FINDING/workspace_missing/ops"]);
    assert_eq!(items[0].severity, Severity::Warning);
}

#[test]
fn diff_output_is_independent_of_input_order() {
    let desired = trio();
    let mut reversed = trio();
    reversed.nodes.reverse();
    reversed.edges.reverse();
    let mut observed = trio();
    observed.nodes.pop();
    assert_eq!(diff_topologies(&desired, &observed), diff_topologies(&reversed, &observed));
}

/// trio → desired: writer gone, qa added (spawned by lead), research's trust lowered.
fn heal_case() -> (Topology, Topology) {
    let observed = trio();
    let mut nodes: Vec<TopologyNode> =
        observed.nodes.iter().filter(|n| n.agent_id != "writer").cloned().collect();
    nodes.push(node("qa", TrustLevel::Restricted));
    for n in nodes.iter_mut().filter(|n| n.agent_id == "research") {
        n.trust = TrustLevel::Standard;
    }
    let mut edges: Vec<TopologyEdge> =
        observed.edges.iter().filter(|e| e.from != "writer" && e.to != "writer").cloned().collect();
    edges.push(edge("lead", "qa", EdgeKind::Spawn));
    let routes = observed.routes.iter().filter(|r| r.agent_id != "writer").cloned().collect();
    (Topology::new(nodes, edges, routes), observed)
}

#[test]
fn heal_acts_on_the_named_items_only() {
    let (desired, observed) = heal_case();
    let all: BTreeSet<String> = diff_topologies(&desired, &observed).into_iter().map(|d| d.key).collect();
    assert!(all.contains("AGENT_MISSING/qa") && all.contains("AGENT_UNEXPECTED/writer"), "{all:?}");

    let only_qa = BTreeSet::from(["AGENT_MISSING/qa".to_owned()]);
    let target = heal_target(&desired, &observed, &only_qa);
    let left: BTreeSet<String> = diff_topologies(&desired, &target).into_iter().map(|d| d.key).collect();
    assert_eq!(left, all.iter().filter(|k| *k != "AGENT_MISSING/qa").cloned().collect());
    assert!(target.edges.contains(&edge("lead", "qa", EdgeKind::Spawn)), "qa comes with its edges");
    assert!(target.nodes.iter().any(|n| n.agent_id == "writer"), "writer stays until its item is confirmed");

    assert_eq!(
        heal_target(&desired, &observed, &BTreeSet::new()),
        observed,
        "nothing named, nothing changes"
    );
    assert!(diff_topologies(&desired, &heal_target(&desired, &observed, &all)).is_empty());
}

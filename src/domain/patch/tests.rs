//! Plan tests against the reference fixtures, with golden files in `tests/golden/plans/`
//! (regenerate with `UPDATE_GOLDEN=1 cargo test --lib patch`).

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;
use crate::domain::inventory::{SessionActivity, SessionStore, resolve_agents};
use crate::domain::model::TrustLevel;
use crate::domain::openclaw::parse_config;
use crate::domain::topology::{EdgeKind, Route, Topology, TopologyEdge, TopologyNode, derive_topology};

const TRIO: &str = include_str!("../../../fixtures/openclaw/trio/state/openclaw.json");
const TRIO_LEGACY: &str = include_str!("../../../fixtures/openclaw/trio-legacy/state/openclaw.json");
const STUDIO12: &str = include_str!("../../../fixtures/openclaw/studio12/state/openclaw.json");
const DRIFTED: &str = include_str!("../../../fixtures/openclaw/drifted/state/openclaw.json");

fn inventory_of(raw: &str, missing: &[&str]) -> Inventory {
    let layout = StateLayout { state_dir: "/srv/oc".to_owned(), home_dir: None };
    let parsed = parse_config(raw).unwrap();
    let mut facts = RuntimeFacts {
        config_path: "/srv/oc/openclaw.json".to_owned(),
        layout: layout.clone(),
        existing_workspaces: resolve_agents(&parsed, &layout)
            .into_iter()
            .filter(|a| !missing.contains(&a.id.as_str()))
            .map(|a| a.workspace)
            .collect(),
        ..RuntimeFacts::default()
    };
    if raw == DRIFTED {
        facts.session_stores.insert(
            "qa".into(),
            SessionActivity { store: SessionStore::Legacy, session_count: Some(2), last_active_ms: None },
        );
        facts.rejected_writes.push("openclaw.json.rejected.2026-11-20T10-00-00Z".into());
    }
    build_inventory(raw, &facts)
}

/// The bar's scenario: trio minus writer plus a restricted qa that lead may spawn and that
/// joins the SEND clique as a receiver only.
fn trio_minus_writer_plus_qa(observed: &Topology) -> Topology {
    let mut nodes: Vec<TopologyNode> =
        observed.nodes.iter().filter(|n| n.agent_id != "writer").cloned().collect();
    nodes.push(TopologyNode {
        agent_id: "qa".into(),
        role: "QA".into(),
        trust: TrustLevel::Restricted,
        model: None,
        tools_profile: Some("minimal".into()),
        workspace: String::new(),
        pins: Default::default(),
    });
    let mut edges: Vec<TopologyEdge> =
        observed.edges.iter().filter(|e| e.from != "writer" && e.to != "writer").cloned().collect();
    edges.push(TopologyEdge { from: "lead".into(), to: "qa".into(), kind: EdgeKind::Spawn });
    for from in ["lead", "research"] {
        edges.push(TopologyEdge { from: from.into(), to: "qa".into(), kind: EdgeKind::Send });
    }
    let mut routes: Vec<Route> = observed.routes.iter().filter(|r| r.agent_id != "writer").cloned().collect();
    let mut qa_route = routes[0].clone();
    qa_route.route.account_id = Some("qa".into());
    qa_route.agent_id = "qa".into();
    routes.push(qa_route);
    Topology::new(nodes, edges, routes)
}

fn check_golden(name: &str, plan: &PatchPlan) {
    let path = format!("{}/tests/golden/plans/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let actual = serde_json::to_string_pretty(plan).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing golden {path}; run with UPDATE_GOLDEN=1"));
    assert_eq!(actual, expected, "plan differs from {path}; review and regenerate with UPDATE_GOLDEN=1");
}

/// Applies the plan's patch in memory and re-derives the graph.
fn outcome(raw: &str, plan: &PatchPlan) -> (Inventory, Topology) {
    let mut doc: Value = json5::from_str(raw).unwrap();
    merge::apply(&mut doc, &plan.merge_patch);
    let text = serde_json::to_string_pretty(&doc).unwrap();
    let inventory = inventory_of(&text, &[]);
    let topology = derive_topology(&inventory);
    (inventory, topology)
}

#[test]
fn trio_minus_writer_plus_qa_plans_the_expected_change() {
    let inventory = inventory_of(TRIO, &[]);
    let desired = trio_minus_writer_plus_qa(&derive_topology(&inventory));
    let ctx = PlanContext { raw_config: TRIO, inventory: &inventory, shape: PatchShape::Entries };
    let plan = plan_apply(&ctx, 2, &desired).unwrap();
    check_golden("trio-minus-writer-plus-qa", &plan);
    assert_eq!(
        plan.replace_paths,
        ["agents.entries.lead.subagents.allowAgents", "bindings", "tools.agentToAgent.allow"]
    );
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    assert_eq!(plan.create_workspaces, ["/srv/oc/workspace-qa"]);
    let (after, topology) = outcome(TRIO, &plan);
    assert!(after.config_valid, "{:?}", after.config_issues);
    let mut wanted = desired.clone();
    for node in &mut wanted.nodes {
        node.workspace =
            topology.nodes.iter().find(|n| n.agent_id == node.agent_id).unwrap().workspace.clone();
    }
    assert!(
        crate::domain::drift::diff_topologies(&desired, &topology).is_empty(),
        "the plan reaches the desired graph"
    );
}

#[test]
fn removing_an_agent_removes_its_bindings_and_every_mention() {
    let inventory = inventory_of(TRIO, &[]);
    let desired = trio_minus_writer_plus_qa(&derive_topology(&inventory));
    let ctx = PlanContext { raw_config: TRIO, inventory: &inventory, shape: PatchShape::Entries };
    let plan = plan_apply(&ctx, 2, &desired).unwrap();
    let mut doc: Value = json5::from_str(TRIO).unwrap();
    merge::apply(&mut doc, &plan.merge_patch);
    let text = doc.to_string();
    let config_only: Value =
        serde_json::json!({ "agents": doc["agents"], "tools": doc["tools"], "bindings": doc["bindings"] });
    assert!(!config_only.to_string().contains("\"writer\""), "{text}");
}

#[test]
fn planning_is_deterministic() {
    let inventory = inventory_of(TRIO, &[]);
    let desired = trio_minus_writer_plus_qa(&derive_topology(&inventory));
    let ctx = PlanContext { raw_config: TRIO, inventory: &inventory, shape: PatchShape::Entries };
    assert_eq!(plan_apply(&ctx, 2, &desired).unwrap(), plan_apply(&ctx, 2, &desired).unwrap());
}

#[test]
fn a_desired_topology_equal_to_the_runtime_plans_nothing() {
    let inventory = inventory_of(STUDIO12, &[]);
    let ctx = PlanContext { raw_config: STUDIO12, inventory: &inventory, shape: PatchShape::Entries };
    let plan = plan_apply(&ctx, 1, &derive_topology(&inventory)).unwrap();
    assert!(plan.is_empty(), "{:?}", plan.operations);
    assert!(plan.expected_resolved.is_empty());
}

#[test]
fn studio12_changes_keep_the_graph_expressible_and_reach_it() {
    let inventory = inventory_of(STUDIO12, &[]);
    let observed = derive_topology(&inventory);
    // docs may now start conversations; support is retired.
    let nodes: Vec<TopologyNode> =
        observed.nodes.iter().filter(|n| n.agent_id != "support").cloned().collect();
    let mut edges: Vec<TopologyEdge> =
        observed.edges.iter().filter(|e| e.from != "support" && e.to != "support").cloned().collect();
    for to in ["architect", "chief", "pm", "qa", "research"] {
        edges.push(TopologyEdge { from: "docs".into(), to: to.into(), kind: EdgeKind::Send });
    }
    let routes: Vec<Route> = observed.routes.iter().filter(|r| r.agent_id != "support").cloned().collect();
    let desired = Topology::new(nodes, edges, routes);
    let ctx = PlanContext { raw_config: STUDIO12, inventory: &inventory, shape: PatchShape::Entries };
    let plan = plan_apply(&ctx, 3, &desired).unwrap();
    check_golden("studio12-docs-sends-support-retired", &plan);
    let (after, topology) = outcome(STUDIO12, &plan);
    assert!(after.config_valid, "{:?}", after.config_issues);
    assert!(crate::domain::drift::diff_topologies(&desired, &topology).is_empty());
}

#[test]
fn trust_bounds_tighten_the_sandbox_and_never_loosen_it() {
    let inventory = inventory_of(TRIO, &[]);
    let mut desired = derive_topology(&inventory);
    for node in &mut desired.nodes {
        node.trust = TrustLevel::Restricted;
    }
    let desired = Topology::new(desired.nodes, desired.edges, desired.routes);
    let ctx = PlanContext { raw_config: TRIO, inventory: &inventory, shape: PatchShape::Entries };
    let plan = plan_apply(&ctx, 2, &desired).unwrap();
    let entries = &plan.merge_patch["agents"]["entries"];
    assert_eq!(entries["lead"]["sandbox"]["mode"], "all", "coding unsandboxed runs exec on the host");
    assert!(entries.get("research").is_none(), "research runs and writes nothing: {}", plan.merge_patch);
    assert!(entries.get("writer").is_none(), "writer is already sandboxed: {}", plan.merge_patch);
    assert_eq!(plan.operations.iter().filter(|op| op.contains("trust")).count(), 1, "{:?}", plan.operations);
    let (after, _) = outcome(TRIO, &plan);
    assert!(after.agents.iter().all(|a| a.access.trust == TrustLevel::Restricted));
}

#[test]
fn the_legacy_shape_is_kept_in_file_shape_mode_and_refused_for_the_cli() {
    let inventory = inventory_of(TRIO_LEGACY, &[]);
    let desired = trio_minus_writer_plus_qa(&derive_topology(&inventory));
    let ctx = PlanContext { raw_config: TRIO_LEGACY, inventory: &inventory, shape: PatchShape::FileShape };
    let plan = plan_apply(&ctx, 2, &desired).unwrap();
    check_golden("trio-legacy-minus-writer-plus-qa", &plan);
    assert!(plan.merge_patch["agents"]["list"].is_array());
    assert!(plan.merge_patch["agents"].get("entries").is_none());
    let cli = PlanContext { shape: PatchShape::Entries, ..ctx };
    assert!(matches!(plan_apply(&cli, 2, &desired), Err(PlanError::Unsupported(_))));
}

#[test]
fn drifted_refuses_apply_plans_naming_the_findings() {
    let inventory = inventory_of(DRIFTED, &["ops"]);
    let ctx = PlanContext { raw_config: DRIFTED, inventory: &inventory, shape: PatchShape::Entries };
    let Err(PlanError::ConfigInvalid { findings }) = plan_apply(&ctx, 1, &derive_topology(&inventory)) else {
        panic!("an invalid config must refuse apply plans");
    };
    assert!(findings.contains(&"retired_key/agent".to_owned()), "{findings:?}");
}

#[test]
fn drifted_repair_fixes_every_config_problem_without_restoring_backups() {
    let inventory = inventory_of(DRIFTED, &["ops"]);
    let ctx = PlanContext { raw_config: DRIFTED, inventory: &inventory, shape: PatchShape::Entries };
    let plan = plan_repair(&ctx).unwrap();
    check_golden("drifted-repair", &plan);
    let (after, _) = outcome(DRIFTED, &plan);
    assert!(after.config_valid, "{:?}", after.config_issues);
    let resolved: BTreeSet<&str> = plan.expected_resolved.iter().map(String::as_str).collect();
    for key in [
        "RUNTIME_FINDING/config_invalid/openclaw.json",
        "RUNTIME_FINDING/retired_key/agent",
        "RUNTIME_FINDING/tools_allow_conflict/ops",
        "RUNTIME_FINDING/invalid_sandbox_mode/qa",
        "RUNTIME_FINDING/stale_allow_agents/lead:ghost",
        "RUNTIME_FINDING/invalid_agent_id/QA Team",
        "RUNTIME_FINDING/binding_unknown_agent/marketing telegram account=marketing",
        "RUNTIME_FINDING/stale_agent_to_agent_allow/scout",
        "RUNTIME_FINDING/workspace_missing/ops",
    ] {
        assert!(resolved.contains(key), "{key} not resolved: {resolved:?}");
    }
    assert!(plan.warnings.iter().any(|w| w.contains("never restores")));
    assert!(plan.warnings.iter().any(|w| w.contains("legacy session store")));
    assert_eq!(plan.merge_patch["agents"]["entries"]["qa"]["sandbox"]["mode"], "all");
}

const OPEN_TEAM: &str = r#"{
  agents: { ownership: "explicit", entries: { lead: {}, research: {}, writer: {} } },
  tools: { agentToAgent: { allow: ["research", "writer"] } },
}"#;

#[test]
fn removing_the_last_agents_of_an_allow_list_closes_it_instead_of_opening_it() {
    let inventory = inventory_of(OPEN_TEAM, &[]);
    assert_eq!(derive_topology(&inventory).edges_of(EdgeKind::Send).count(), 2);
    let lead = inventory.agent("lead").unwrap();
    let node = TopologyNode {
        agent_id: "lead".into(),
        role: "lead".into(),
        trust: lead.effective_trust,
        model: None,
        tools_profile: None,
        workspace: String::new(),
        pins: Default::default(),
    };
    let desired = Topology::new(vec![node], vec![], vec![]);
    let ctx = PlanContext { raw_config: OPEN_TEAM, inventory: &inventory, shape: PatchShape::Entries };
    let plan = plan_apply(&ctx, 2, &desired).unwrap();
    assert_eq!(plan.merge_patch["tools"]["agentToAgent"]["enabled"], false, "{}", plan.merge_patch);
    let (after, topology) = outcome(OPEN_TEAM, &plan);
    assert_eq!(topology.edges.len(), 0);
    assert!(!after.agent_to_agent.enabled);
}

#[test]
fn a_config_without_a_tools_block_gets_an_explicit_clique() {
    let raw = r#"{ agents: { ownership: "explicit", entries: { a: {}, b: {}, c: {} } } }"#;
    let inventory = inventory_of(raw, &[]);
    assert_eq!(
        derive_topology(&inventory).edges_of(EdgeKind::Send).count(),
        6,
        "OpenClaw's default is every pair"
    );
    let mut desired = derive_topology(&inventory);
    desired.edges.retain(|e| e.kind != EdgeKind::Send || (e.from != "c" && e.to != "c"));
    let desired = Topology::new(desired.nodes, desired.edges, desired.routes);
    let ctx = PlanContext { raw_config: raw, inventory: &inventory, shape: PatchShape::Entries };
    let plan = plan_apply(&ctx, 2, &desired).unwrap();
    assert_eq!(plan.merge_patch["tools"]["agentToAgent"]["allow"], serde_json::json!(["a", "b"]));
    let (_, topology) = outcome(raw, &plan);
    assert!(crate::domain::drift::diff_topologies(&desired, &topology).is_empty());
}

#[test]
fn pinned_permissions_are_written_and_then_hold() {
    let inventory = inventory_of(TRIO, &[]);
    let mut desired = derive_topology(&inventory);
    for node in &mut desired.nodes {
        if node.agent_id == "lead" {
            node.pins.tools_deny = Some(vec!["browser".into(), "exec".into()]);
            node.pins.workspace_access = Some("ro".into());
            node.pins.elevated =
                Some(crate::domain::topology::ElevatedPin { enabled: false, allow_from: vec![] });
        }
    }
    let desired = Topology::new(desired.nodes, desired.edges, desired.routes);
    let before = crate::domain::drift::permission_items(&desired, &inventory);
    assert!(before.iter().any(|d| d.key == "PERMISSION_WIDENED/lead:tools_deny"), "{before:?}");
    let ctx = PlanContext { raw_config: TRIO, inventory: &inventory, shape: PatchShape::Entries };
    let plan = plan_apply(&ctx, 2, &desired).unwrap();
    let (after, _) = outcome(TRIO, &plan);
    assert!(crate::domain::drift::permission_items(&desired, &after).is_empty());
    assert!(!after.agent("lead").unwrap().access.effective_tools.contains(&"exec".to_owned()));
    assert!(
        plan.expected_resolved.iter().any(|k| k == "PERMISSION_WIDENED/lead:tools_deny"),
        "{:?}",
        plan.expected_resolved
    );
}

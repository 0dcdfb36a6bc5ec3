//! Inventory, findings and topology derivation against the reference fixtures' configs.

use std::collections::BTreeSet;

use super::*;
use crate::domain::findings::FindingKind;
use crate::domain::model::TrustLevel;
use crate::domain::openclaw::parse_config;
use crate::domain::topology::{EdgeKind, derive_topology};

const TRIO: &str = include_str!("../../../fixtures/openclaw/trio/state/openclaw.json");
const TRIO_LEGACY: &str = include_str!("../../../fixtures/openclaw/trio-legacy/state/openclaw.json");
const STUDIO12: &str = include_str!("../../../fixtures/openclaw/studio12/state/openclaw.json");
const DRIFTED: &str = include_str!("../../../fixtures/openclaw/drifted/state/openclaw.json");

fn layout() -> StateLayout {
    StateLayout { state_dir: "/srv/oc".to_owned(), home_dir: Some("/home/oc".to_owned()) }
}

/// Facts where every resolved workspace exists except the listed agents'.
fn facts(raw: &str, missing_workspaces: &[&str]) -> RuntimeFacts {
    let parsed = parse_config(raw).unwrap();
    let existing_workspaces = resolve_agents(&parsed, &layout())
        .into_iter()
        .filter(|agent| !missing_workspaces.contains(&agent.id.as_str()))
        .map(|agent| agent.workspace)
        .collect();
    RuntimeFacts {
        config_path: "/srv/oc/openclaw.json".to_owned(),
        layout: layout(),
        existing_workspaces,
        openclaw_version: Some(crate::domain::permissions::TABLE_VERSION.to_owned()),
        ..RuntimeFacts::default()
    }
}

fn inventory(raw: &str) -> Inventory {
    build_inventory(raw, &facts(raw, &[]))
}

fn edge_pairs(topology: &crate::domain::Topology, kind: EdgeKind) -> BTreeSet<(String, String)> {
    topology.edges_of(kind).map(|e| (e.from.clone(), e.to.clone())).collect()
}

#[test]
fn trio_derives_six_send_two_spawn_and_three_routes_without_findings() {
    let inventory = inventory(TRIO);
    assert!(inventory.config_valid, "{:?}", inventory.config_issues);
    assert!(inventory.findings.is_empty(), "{:?}", inventory.findings);
    assert_eq!(inventory.roster_shape, RosterShape::Entries);
    let topology = derive_topology(&inventory);
    assert_eq!(topology.edges_of(EdgeKind::Send).count(), 6);
    let spawns = edge_pairs(&topology, EdgeKind::Spawn);
    let expected: BTreeSet<_> =
        [("lead", "research"), ("lead", "writer")].map(|(a, b)| (a.to_owned(), b.to_owned())).into();
    assert_eq!(spawns, expected);
    assert_eq!(topology.routes.len(), 3);
}

#[test]
fn trio_agents_carry_their_effective_settings() {
    let inventory = inventory(TRIO);
    let lead = inventory.agent("lead").unwrap();
    assert!(lead.is_default);
    assert_eq!(inventory.default_agent_id.as_deref(), Some("lead"));
    assert_eq!(
        lead.workspace, "/srv/oc/workspace-lead",
        "explicit rosters give every agent its own workspace"
    );
    assert_eq!(lead.agent_dir, "/srv/oc/agents/lead/agent");
    assert_eq!(lead.model.as_deref(), Some("claude-cli/claude-opus-4-6"));
    assert_eq!(lead.model_fallbacks, ["claude-cli/claude-sonnet-4-6"]);
    assert_eq!(lead.effective_trust, TrustLevel::Elevated);
    let research = inventory.agent("research").unwrap();
    assert_eq!(research.workspace, "/srv/oc/workspace-research");
    assert_eq!(research.model.as_deref(), Some("claude-cli/claude-sonnet-4-6"), "inherits defaults");
    assert_eq!(
        research.effective_trust,
        TrustLevel::Restricted,
        "non-main leaves its main session unsandboxed, but minimal + sessions_send neither runs \
         nor writes anything"
    );
    assert_eq!(inventory.agent("writer").unwrap().effective_trust, TrustLevel::Restricted);
}

#[test]
fn legacy_list_shape_yields_the_same_graph_as_the_keyed_shape() {
    let legacy = inventory(TRIO_LEGACY);
    assert_eq!(legacy.roster_shape, RosterShape::List);
    assert!(legacy.findings.is_empty(), "{:?}", legacy.findings);
    let (legacy, current) = (derive_topology(&legacy), derive_topology(&inventory(TRIO)));
    assert_eq!(legacy.edges, current.edges);
    assert_eq!(legacy.routes, current.routes);
    // Only the default agent's workspace differs: the legacy default keeps `<state>/workspace`.
    assert_ne!(legacy.revision, current.revision);
}

#[test]
fn studio12_derives_twenty_send_and_ten_spawn_edges() {
    let inventory = inventory(STUDIO12);
    assert!(inventory.findings.is_empty(), "{:?}", inventory.findings);
    assert_eq!(inventory.agents.len(), 12);
    assert_eq!(inventory.subagent_limits.max_spawn_depth, 2);
    let topology = derive_topology(&inventory);
    let sends = edge_pairs(&topology, EdgeKind::Send);
    assert_eq!(sends.len(), 20);
    for silent in ["docs", "research"] {
        assert!(sends.iter().all(|(from, _)| from != silent), "{silent} denies sessions_send");
        assert!(sends.iter().any(|(_, to)| to == silent), "{silent} can still be reached");
    }
    assert!(sends.iter().all(|(from, to)| from != "backend" && to != "support"), "outside the clique");
    assert_eq!(topology.edges_of(EdgeKind::Spawn).count(), 10);
    assert_eq!(topology.routes.len(), 6);
}

#[test]
fn studio12_keeps_binding_order_with_the_peer_binding_first() {
    let inventory = inventory(STUDIO12);
    assert_eq!(inventory.bindings[0].route.peer_id.as_deref(), Some("1122334455"));
    assert_eq!(inventory.bindings[1].route.guild_id.as_deref(), Some("741852963"));
    assert_eq!(inventory.bindings[1].route.peer_id, None);
}

#[test]
fn studio12_trust_follows_sandbox_and_elevated_grants() {
    let inventory = inventory(STUDIO12);
    let trust = |id: &str| inventory.agent(id).unwrap().effective_trust;
    assert_eq!(trust("support"), TrustLevel::Restricted);
    assert_eq!(trust("security"), TrustLevel::Restricted);
    assert_eq!(trust("qa"), TrustLevel::Elevated, "non-main: the main session runs exec on the host");
    assert_eq!(trust("devops"), TrustLevel::Elevated);
}

#[test]
fn sandboxed_requester_cannot_spawn_an_unsandboxed_target() {
    let raw = r#"{ agents: { ownership: "explicit", entries: {
        boxed: { sandbox: { mode: "all" }, subagents: { allowAgents: ["*"] } },
        free: {},
        also_boxed: { sandbox: { mode: "all" } },
    } } }"#;
    let topology = derive_topology(&inventory(raw));
    let spawns = edge_pairs(&topology, EdgeKind::Spawn);
    assert_eq!(spawns, BTreeSet::from([("boxed".to_owned(), "also_boxed".to_owned())]));
}

#[test]
fn send_needs_visibility_all_and_agent_to_agent_enabled() {
    let base = |visibility: &str, enabled: bool| {
        format!(
            r#"{{ agents: {{ ownership: "explicit", entries: {{ a: {{}}, b: {{}} }} }},
                 tools: {{ sessions: {{ visibility: "{visibility}" }}, agentToAgent: {{ enabled: {enabled} }} }} }}"#
        )
    };
    let count = |raw: String| derive_topology(&inventory(&raw)).edges_of(EdgeKind::Send).count();
    assert_eq!(count(base("all", true)), 2, "empty allow matches everyone");
    assert_eq!(count(base("tree", true)), 0);
    assert_eq!(count(base("all", false)), 0);
}

#[test]
fn allow_globs_match_case_insensitively() {
    let raw = r#"{ agents: { ownership: "explicit", entries: { "res-a": {}, "res-b": {}, other: {} } },
                   tools: { sessions: { visibility: "all" }, agentToAgent: { enabled: true, allow: ["RES-*"] } } }"#;
    let topology = derive_topology(&inventory(raw));
    assert_eq!(topology.edges_of(EdgeKind::Send).count(), 2);
}

#[test]
fn global_deny_of_sessions_send_silences_every_agent() {
    let raw = r#"{ agents: { ownership: "explicit", entries: { a: {}, b: {} } },
                   tools: { deny: ["group:sessions"], sessions: { visibility: "all" }, agentToAgent: { enabled: true } } }"#;
    assert_eq!(derive_topology(&inventory(raw)).edges_of(EdgeKind::Send).count(), 0);
}

#[test]
fn the_legacy_default_agent_works_in_the_shared_workspace() {
    let inventory = inventory(TRIO_LEGACY);
    assert_eq!(inventory.default_agent_id.as_deref(), Some("lead"));
    assert_eq!(inventory.agent("lead").unwrap().workspace, "/srv/oc/workspace");
    assert_eq!(inventory.agent("research").unwrap().workspace, "/srv/oc/workspace-research");
}

#[test]
fn an_explicit_roster_without_marker_has_no_default_agent() {
    let inventory = inventory(r#"{ agents: { ownership: "explicit", entries: { main: {}, b: {} } } }"#);
    assert_eq!(inventory.default_agent_id, None);
    assert_eq!(inventory.agent("main").unwrap().workspace, "/srv/oc/workspace-main");
    let single = self::inventory(r#"{ agents: { entries: { solo: {} } } }"#);
    assert_eq!(single.default_agent_id.as_deref(), Some("solo"));
    assert_eq!(single.agent("solo").unwrap().workspace, "/srv/oc/workspace");
}

#[test]
fn a_config_without_roster_has_one_implicit_default_agent() {
    let inventory = inventory("{}");
    assert_eq!(inventory.agents.len(), 1);
    assert_eq!(inventory.agents[0].id, "main");
    assert_eq!(inventory.agents[0].workspace, "/srv/oc/workspace");
    assert!(inventory.findings.is_empty());
}

#[test]
fn workspace_paths_resolve_home_absolute_and_relative_forms() {
    let layout = layout();
    assert_eq!(layout.resolve("~/ws"), "/home/oc/ws");
    assert_eq!(layout.resolve("/abs/ws"), "/abs/ws");
    assert_eq!(layout.resolve("./ws"), "/srv/oc/ws");
}

#[test]
fn drifted_reports_every_problem_as_a_finding() {
    let mut facts = facts(DRIFTED, &["ops"]);
    facts.session_stores.insert(
        "qa".to_owned(),
        SessionActivity { store: SessionStore::Legacy, session_count: Some(2), last_active_ms: None },
    );
    facts.rejected_writes.push("openclaw.json.rejected.2026-11-20T10-00-00Z".to_owned());
    let inventory = build_inventory(DRIFTED, &facts);
    assert!(!inventory.config_valid);
    let keys: Vec<&str> = inventory.findings.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "binding_unknown_agent/marketing telegram account=marketing",
            "config_invalid/openclaw.json",
            "invalid_agent_id/QA Team",
            "invalid_sandbox_mode/qa",
            "legacy_session_store/qa",
            "rejected_write_present/openclaw.json.rejected.2026-11-20T10-00-00Z",
            "retired_key/agent",
            "stale_agent_to_agent_allow/scout",
            "stale_allow_agents/lead:ghost",
            "tools_allow_conflict/ops",
            "workspace_missing/ops",
        ]
    );
    let issue_paths: Vec<&str> = inventory.config_issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        issue_paths,
        [
            "<root>",
            "agents.entries.QA Team",
            "agents.entries.ops.tools",
            "agents.entries.qa.sandbox.mode",
            "bindings.1.agentId"
        ]
    );
    let agent_ids: Vec<&str> = inventory.agents.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(agent_ids, ["lead", "ops", "qa"], "invalid ids are findings, not agents");
}

#[test]
fn drifted_graph_ignores_stale_ids_and_unknown_binding_targets() {
    let topology = derive_topology(&inventory(DRIFTED));
    let sends = edge_pairs(&topology, EdgeKind::Send);
    assert_eq!(sends.len(), 4, "ops's allow list holds no sessions_send: {sends:?}");
    assert!(sends.iter().all(|(from, _)| from != "ops"));
    let spawns = edge_pairs(&topology, EdgeKind::Spawn);
    assert_eq!(spawns, BTreeSet::from([("lead".to_owned(), "ops".to_owned())]));
    assert_eq!(topology.routes.len(), 1);
}

#[test]
fn cli_issues_replace_the_own_validation_but_not_the_semantic_findings() {
    let mut facts = facts(DRIFTED, &[]);
    facts.cli_issues =
        Some(vec![ConfigIssue { path: "<root>".into(), message: "Unrecognized key: \"agent\"".into() }]);
    let inventory = build_inventory(DRIFTED, &facts);
    assert_eq!(inventory.config_issues.len(), 1);
    assert!(inventory.findings.iter().any(|f| f.kind == FindingKind::BindingUnknownAgent));
}

#[test]
fn unreadable_config_is_one_finding_and_no_agents() {
    let inventory = build_inventory("{ broken", &facts("{}", &[]));
    assert!(!inventory.config_valid);
    assert!(inventory.agents.is_empty());
    assert_eq!(inventory.findings.len(), 1);
    assert_eq!(inventory.findings[0].kind, FindingKind::ConfigUnreadable);
    assert_eq!(inventory.config_hash, config_hash("{ broken"));
}

#[test]
fn findings_and_inventory_never_carry_secret_values() {
    let raw = TRIO.replace("${TG_LEAD}", "123456:SECRET-BOT-TOKEN");
    let inventory = inventory(&raw);
    let text = serde_json::to_string(&inventory).unwrap();
    assert!(!text.contains("SECRET-BOT-TOKEN"));
}

#[test]
fn config_hash_is_sha256_hex_of_the_raw_text() {
    assert_eq!(config_hash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

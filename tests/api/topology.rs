use std::collections::BTreeSet;

use jhf_warp::pb::v1::{self as pb, EdgeKind, GetInventoryRequest, GetTopologyRequest, ReadMode};

use crate::helpers::{READER_TOKEN, spawn_app, spawn_ready_app, with_token};

fn count(topology: &pb::Topology, kind: EdgeKind) -> usize {
    topology.edges.iter().filter(|e| e.kind == kind as i32).count()
}

async fn topology_of(fixture: &'static str) -> (pb::Topology, pb::Inventory) {
    let app = spawn_ready_app(fixture).await;
    let mut client = app.topology().await;
    let topology = client
        .get_topology(with_token(GetTopologyRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    let inventory = client
        .get_inventory(with_token(GetInventoryRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    app.stop().await;
    (topology.topology.unwrap(), inventory.inventory.unwrap())
}

#[tokio::test]
async fn trio_topology_has_six_send_two_spawn_and_three_routes() {
    let (topology, inventory) = topology_of("trio").await;
    assert_eq!(count(&topology, EdgeKind::Send), 6);
    assert_eq!(count(&topology, EdgeKind::Spawn), 2);
    assert_eq!(topology.routes.len(), 3);
    assert_eq!(topology.revision.len(), 64);
    assert!(inventory.config_valid);
    assert!(inventory.findings.is_empty(), "{:?}", inventory.findings);
    assert_eq!(inventory.openclaw_version, "2026.9.6");
    assert_eq!(inventory.roster_shape, pb::RosterShape::Entries as i32);
    let ids: Vec<&str> = inventory.agents.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["lead", "research", "writer"]);
    let lead = &inventory.agents[0];
    assert!(lead.is_default && lead.workspace_exists);
    assert_eq!(lead.session_activity.as_ref().unwrap().store, pb::SessionStore::Current as i32);
}

#[tokio::test]
async fn trio_legacy_has_the_same_graph_in_the_list_shape() {
    let (legacy, legacy_inventory) = topology_of("trio-legacy").await;
    let (current, _) = topology_of("trio").await;
    assert_eq!(legacy_inventory.roster_shape, pb::RosterShape::List as i32);
    assert_eq!(count(&legacy, EdgeKind::Send), 6);
    assert_eq!(count(&legacy, EdgeKind::Spawn), 2);
    // The paths differ (each test has its own data dir), so compare the graph, not the revision.
    let edges = |t: &pb::Topology| {
        t.edges
            .iter()
            .map(|e| (e.from_agent_id.clone(), e.to_agent_id.clone(), e.kind))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(edges(&legacy), edges(&current));
}

#[tokio::test]
async fn studio12_topology_has_twenty_send_and_ten_spawn_edges() {
    let (topology, inventory) = topology_of("studio12").await;
    assert_eq!(topology.nodes.len(), 12);
    assert_eq!(count(&topology, EdgeKind::Send), 20);
    assert_eq!(count(&topology, EdgeKind::Spawn), 10);
    assert_eq!(topology.routes.len(), 6);
    assert!(inventory.findings.is_empty(), "{:?}", inventory.findings);
    assert_eq!(inventory.subagent_limits.unwrap().max_spawn_depth, 2);
}

#[tokio::test]
async fn drifted_reports_every_problem_as_a_finding() {
    let (topology, inventory) = topology_of("drifted").await;
    assert!(!inventory.config_valid);
    let kinds: BTreeSet<i32> = inventory.findings.iter().map(|f| f.kind).collect();
    use pb::FindingKind::*;
    for kind in [
        ConfigInvalid,
        RetiredKey,
        ToolsAllowConflict,
        InvalidSandboxMode,
        WorkspaceMissing,
        StaleAllowAgents,
        InvalidAgentId,
        BindingUnknownAgent,
        StaleAgentToAgentAllow,
        LegacySessionStore,
        RejectedWritePresent,
    ] {
        assert!(kinds.contains(&(kind as i32)), "{kind:?} missing: {:?}", inventory.findings);
    }
    assert_eq!(inventory.findings.len(), 11);
    let legacy = inventory.agents.iter().find(|a| a.id == "qa").unwrap().session_activity.unwrap();
    assert_eq!((legacy.store, legacy.session_count), (pb::SessionStore::Legacy as i32, 2));
    assert_eq!(count(&topology, EdgeKind::Spawn), 1);
    assert_eq!(topology.routes.len(), 1);
}

#[tokio::test]
async fn secrets_in_the_config_never_reach_a_response() {
    let app = spawn_app().await;
    let config_path = app.runtime_state_dir("trio").join("openclaw.json");
    let config = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace("${TG_LEAD}", "123456789:AAE-very-secret-bot-token");
    std::fs::write(&config_path, config).unwrap();
    let mut client = app.topology().await;
    let inventory = client
        .get_inventory(with_token(GetInventoryRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    let text = serde_json::to_string(&inventory).unwrap();
    assert!(!text.contains("very-secret"), "secret leaked into the inventory");
    app.stop().await;
}

#[tokio::test]
async fn an_unreadable_config_is_a_finding_not_an_error() {
    let app = spawn_app().await;
    std::fs::write(app.runtime_state_dir("trio").join("openclaw.json"), "{ agents: ").unwrap();
    let mut client = app.topology().await;
    let inventory = client
        .get_inventory(with_token(GetInventoryRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    let inventory = inventory.inventory.unwrap();
    assert!(!inventory.config_valid);
    assert_eq!(inventory.findings.len(), 1);
    assert_eq!(inventory.findings[0].kind, pb::FindingKind::ConfigUnreadable as i32);
    app.stop().await;
}

#[tokio::test]
async fn a_missing_config_is_unavailable_in_fresh_mode_but_stored_mode_still_answers() {
    let app = spawn_app().await;
    let mut client = app.topology().await;
    let first = client
        .get_topology(with_token(GetTopologyRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    std::fs::remove_file(app.runtime_state_dir("trio").join("openclaw.json")).unwrap();
    let err = client.get_topology(with_token(GetTopologyRequest::default(), READER_TOKEN)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(!err.message().contains("agents"), "no config content in errors");
    let stored = GetTopologyRequest { runtime: String::new(), read_mode: ReadMode::Stored as i32 };
    let answer = client.get_topology(with_token(stored, READER_TOKEN)).await.unwrap().into_inner();
    assert_eq!(answer.topology.unwrap().revision, first.topology.unwrap().revision);
    let bad_mode = GetTopologyRequest { runtime: String::new(), read_mode: 42 };
    let err = client.get_topology(with_token(bad_mode, READER_TOKEN)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn a_config_nested_to_overflow_a_parser_is_a_finding_and_the_service_survives() {
    let app = crate::helpers::spawn_app().await;
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    app.edit_runtime_config("trio", |_| deep.clone());
    let request =
        crate::helpers::with_token(pb::GetInventoryRequest::default(), crate::helpers::READER_TOKEN);
    let inventory =
        app.topology().await.get_inventory(request).await.unwrap().into_inner().inventory.unwrap();
    assert!(!inventory.config_valid);
    let kinds: Vec<i32> = inventory.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [pb::FindingKind::ConfigUnreadable as i32]);
    assert!(inventory.findings[0].message.contains("nests deeper"), "{}", inventory.findings[0].message);
    // Still serving, and a config over the byte cap is a finding too.
    app.edit_runtime_config("trio", |_| format!("{{\"pad\": \"{}\"}}", "x".repeat(5 << 20)));
    let request =
        crate::helpers::with_token(pb::GetInventoryRequest::default(), crate::helpers::READER_TOKEN);
    let inventory =
        app.topology().await.get_inventory(request).await.unwrap().into_inner().inventory.unwrap();
    assert!(inventory.findings[0].message.contains("larger than"), "{}", inventory.findings[0].message);
    app.stop().await;
}

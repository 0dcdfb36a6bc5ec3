//! Desired topology: validation, etags, idempotency, revisions, diff, catalog and watch.

use jhf_warp::pb::v1::{self as pb, EdgeKind};
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{OPERATOR_TOKEN, READER_TOKEN, TestApp, WAIT, spawn_app, with_token};

pub fn node(id: &str) -> pb::TopologyNode {
    pb::TopologyNode { agent_id: id.to_owned(), role: id.to_owned(), ..Default::default() }
}

pub fn send(from: &str, to: &str) -> pb::TopologyEdge {
    pb::TopologyEdge {
        from_agent_id: from.to_owned(),
        to_agent_id: to.to_owned(),
        kind: EdgeKind::Send.into(),
    }
}

/// The observed topology of the app's runtime, read fresh.
pub async fn observed(app: &TestApp) -> pb::Topology {
    let request = with_token(pb::GetTopologyRequest::default(), READER_TOKEN);
    app.topology().await.get_topology(request).await.unwrap().into_inner().topology.unwrap()
}

pub async fn put(
    app: &TestApp,
    topology: pb::Topology,
    etag: &str,
    request_id: &str,
) -> Result<pb::PutDesiredTopologyResponse, tonic::Status> {
    put_in(app, "", topology, etag, request_id).await
}

/// [`put`] on runtime `runtime` of a fleet.
pub async fn put_in(
    app: &TestApp,
    runtime: &str,
    topology: pb::Topology,
    etag: &str,
    request_id: &str,
) -> Result<pb::PutDesiredTopologyResponse, tonic::Status> {
    let request = pb::PutDesiredTopologyRequest {
        runtime: runtime.to_owned(),
        topology: Some(topology),
        etag: etag.to_owned(),
        request_id: request_id.to_owned(),
        validate_only: false,
    };
    app.topology()
        .await
        .put_desired_topology(with_token(request, OPERATOR_TOKEN))
        .await
        .map(|r| r.into_inner())
}

async fn get_desired(app: &TestApp, generation: i64) -> Result<pb::DesiredTopologyRevision, tonic::Status> {
    let request =
        with_token(pb::GetDesiredTopologyRequest { runtime: String::new(), generation }, READER_TOKEN);
    app.topology().await.get_desired_topology(request).await.map(|r| r.into_inner().desired.unwrap())
}

#[tokio::test]
async fn an_inexpressible_send_set_is_rejected_with_field_violations_and_nothing_is_stored() {
    let app = spawn_app().await;
    let topology = pb::Topology {
        nodes: vec![node("a"), node("b"), node("c")],
        edges: vec![send("a", "b"), send("b", "c")],
        ..Default::default()
    };
    let err = put(&app, topology, "", "req-1").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let violations = err.get_error_details().bad_request().cloned().unwrap().field_violations;
    assert_eq!(violations[0].field, "topology.edges");
    assert!(violations[0].description.contains("{a->b}"), "{}", violations[0].description);
    assert!(violations.iter().any(|v| v.field == "topology.edges[1]"));
    assert_eq!(get_desired(&app, 0).await.unwrap_err().code(), Code::NotFound, "nothing stored");
    app.stop().await;
}

#[tokio::test]
async fn unknown_ids_duplicates_and_bad_enums_are_field_violations() {
    let app = spawn_app().await;
    let mut bad_trust = node("b");
    bad_trust.trust = 42;
    let topology = pb::Topology {
        nodes: vec![node("a"), node("a"), bad_trust],
        edges: vec![send("a", "ghost")],
        ..Default::default()
    };
    let err = put(&app, topology, "", "req-1").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> = err
        .get_error_details()
        .bad_request()
        .cloned()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["topology.nodes[2].trust"], "transport-level problems are reported first");

    let topology = pb::Topology {
        nodes: vec![node("a"), node("a")],
        edges: vec![send("a", "ghost")],
        ..Default::default()
    };
    let err = put(&app, topology, "", "req-2").await.unwrap_err();
    let fields: Vec<String> = err
        .get_error_details()
        .bad_request()
        .cloned()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["topology.nodes[1].agent_id", "topology.edges[0].to_agent_id"]);
    app.stop().await;
}

#[tokio::test]
async fn etags_guard_updates_and_request_ids_replay_the_first_response() {
    let app = spawn_app().await;
    let topology = observed(&app).await;
    let first = put(&app, topology.clone(), "", "req-1").await.unwrap().desired.unwrap();
    assert_eq!(first.generation, 1);
    assert_eq!(first.author, "op");

    let replay = put(&app, topology.clone(), "", "req-1").await.unwrap().desired.unwrap();
    assert_eq!((replay.generation, &replay.etag), (1, &first.etag), "a retry returns the first response");

    let mut other = topology.clone();
    other.nodes.pop();
    other.edges.retain(|e| {
        other.nodes.iter().any(|n| n.agent_id == e.to_agent_id)
            && other.nodes.iter().any(|n| n.agent_id == e.from_agent_id)
    });
    other.routes.retain(|r| other.nodes.iter().any(|n| n.agent_id == r.agent_id));
    let reused = put(&app, other.clone(), "", "req-1").await.unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(reused.get_error_details().bad_request().unwrap().field_violations[0].field, "request_id");

    let missing_etag = put(&app, other.clone(), "", "req-2").await.unwrap_err();
    assert_eq!(missing_etag.code(), Code::FailedPrecondition);
    let precondition = missing_etag.get_error_details().precondition_failure().cloned().unwrap();
    assert_eq!(precondition.violations[0].r#type, "ETAG_MISMATCH");

    let second = put(&app, other.clone(), &first.etag, "req-3").await.unwrap().desired.unwrap();
    assert_eq!(second.generation, 2);
    let stale = put(&app, topology.clone(), &first.etag, "req-4").await.unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    assert!(stale.message().contains(&second.etag), "{}", stale.message());

    let missing_id = put(&app, topology, &second.etag, "").await.unwrap_err();
    assert_eq!(missing_id.code(), Code::InvalidArgument);
    assert_eq!(get_desired(&app, 0).await.unwrap().generation, 2, "refused writes changed nothing");
    app.stop().await;
}

#[tokio::test]
async fn validate_only_computes_the_revision_and_stores_nothing() {
    let app = spawn_app().await;
    let request = pb::PutDesiredTopologyRequest {
        runtime: String::new(),
        topology: Some(observed(&app).await),
        etag: String::new(),
        request_id: "req-1".to_owned(),
        validate_only: true,
    };
    let answer = app
        .topology()
        .await
        .put_desired_topology(with_token(request, OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.validate_only);
    assert_eq!(answer.desired.unwrap().generation, 1);
    assert_eq!(get_desired(&app, 0).await.unwrap_err().code(), Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn revisions_are_listed_newest_first_and_can_be_diffed_against_the_runtime() {
    let app = spawn_app().await;
    let topology = observed(&app).await;
    let first = put(&app, topology.clone(), "", "req-1").await.unwrap().desired.unwrap();
    let mut narrower = topology.clone();
    narrower.edges.retain(|e| e.kind != EdgeKind::Spawn as i32);
    put(&app, narrower, &first.etag, "req-2").await.unwrap();

    let list =
        pb::ListTopologyRevisionsRequest { runtime: String::new(), page_size: 1, page_token: String::new() };
    let page = app
        .topology()
        .await
        .list_topology_revisions(with_token(list, READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.revisions[0].generation, 2);
    let list = pb::ListTopologyRevisionsRequest {
        runtime: String::new(),
        page_size: 1,
        page_token: page.next_page_token,
    };
    let page = app
        .topology()
        .await
        .list_topology_revisions(with_token(list, READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.revisions[0].generation, 1);
    assert!(page.next_page_token.is_empty());

    let reference = |source: pb::TopologySource, generation: i64| {
        Some(pb::TopologyRef { source: source.into(), generation })
    };
    let diff = pb::DiffTopologyRequest {
        runtime: String::new(),
        base: reference(pb::TopologySource::LatestDesired, 0),
        target: reference(pb::TopologySource::Observed, 0),
    };
    let answer =
        app.topology().await.diff_topology(with_token(diff, READER_TOKEN)).await.unwrap().into_inner();
    let keys: Vec<&str> = answer.differences.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["EDGE_UNEXPECTED/lead->research:SPAWN", "EDGE_UNEXPECTED/lead->writer:SPAWN"]);
    assert_eq!(answer.differences[0].severity, pb::Severity::Critical as i32);

    let same = pb::DiffTopologyRequest {
        runtime: String::new(),
        base: reference(pb::TopologySource::DesiredGeneration, 1),
        target: reference(pb::TopologySource::Observed, 0),
    };
    let answer =
        app.topology().await.diff_topology(with_token(same, READER_TOKEN)).await.unwrap().into_inner();
    assert!(answer.differences.is_empty());
    assert_eq!(answer.base_revision, answer.target_revision);

    let missing = pb::DiffTopologyRequest {
        runtime: String::new(),
        base: None,
        target: reference(pb::TopologySource::Observed, 0),
    };
    let err = app.topology().await.diff_topology(with_token(missing, READER_TOKEN)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn the_agent_catalog_is_byte_identical_for_the_same_state() {
    let app = spawn_app().await;
    put(&app, observed(&app).await, "", "req-1").await.unwrap();
    let fetch = || async {
        let request = with_token(pb::GetAgentCatalogRequest { runtime: String::new() }, READER_TOKEN);
        app.topology().await.get_agent_catalog(request).await.unwrap().into_inner()
    };
    let first = fetch().await;
    let second = fetch().await;
    assert_eq!(first.encode_to_vec(), second.encode_to_vec());
    assert_eq!(first.digest.len(), 64);
    let ids: Vec<&str> = first.agents.iter().map(|a| a.agent_id.as_str()).collect();
    assert_eq!(ids, ["lead", "research", "writer"]);
    assert_eq!(first.agents[0].may_spawn, ["research", "writer"]);
    // What each agent can do, as OpenClaw resolves it (checked against a live Gateway in
    // real_permissions.rs): research keeps the minimal profile plus sessions_send; the
    // sandboxed writer also loses `gateway` to the sandbox tool layer.
    let (research, writer) = (&first.agents[1], &first.agents[2]);
    assert_eq!(research.effective_tools, ["gateway", "session_status", "sessions_send"]);
    assert_eq!((research.sandbox_mode.as_str(), research.session_visibility.as_str()), ("non-main", "all"));
    assert_eq!(writer.effective_tools, ["session_status", "sessions_send"]);
    assert_eq!((writer.sandbox_mode.as_str(), writer.workspace_access.as_str()), ("all", "none"));
    assert!(first.agents.iter().all(|a| !a.elevated && a.elevated_allow_from.is_empty()));
    assert_eq!(first.agents[0].exec_host, "gateway");
    assert_eq!(first.agents[0].woken_by, ["heartbeat every 30m"], "lead is the system agent");
    assert_eq!(first.agents[0].inbound.len(), 1);
    assert_eq!(first.agents[0].inbound[0].dm_policy, "pairing");
    assert!(first.agents.iter().all(|a| a.desired && a.observed));
    assert!(first.agents.iter().all(|a| a.desired_trust == a.observed_trust && !a.trust_widened));

    // The runtime widens the writer (coding, no sandbox: exec on the host = elevated): the
    // catalog tells the truth.
    app.edit_runtime_config("trio", |text| {
        text.replace(
            r#"name: "Writer",
        tools: { profile: "minimal", alsoAllow: ["sessions_send"] },
        sandbox: { mode: "all" },"#,
            r#"name: "Writer", tools: { profile: "coding" },"#,
        )
    });
    observed(&app).await;
    let widened = fetch().await;
    let writer = widened.agents.iter().find(|a| a.agent_id == "writer").unwrap();
    assert_eq!(writer.desired_trust, pb::TrustLevel::Restricted as i32);
    assert_eq!(writer.observed_trust, pb::TrustLevel::Elevated as i32);
    assert!(writer.trust_widened);
    assert_eq!(writer.exec_host, "gateway");
    assert!(writer.effective_tools.iter().any(|t| t == "exec"));
    assert_ne!(widened.digest, first.digest);
    assert_eq!(widened.encode_to_vec(), fetch().await.encode_to_vec(), "still deterministic");
    app.stop().await;
}

async fn next(stream: &mut tonic::Streaming<pb::WatchTopologyResponse>) -> Option<pb::WatchTopologyResponse> {
    tokio::time::timeout(WAIT, stream.message()).await.expect("event in time").unwrap()
}

#[tokio::test]
async fn watch_topology_sends_current_state_then_changes_and_ends_on_shutdown() {
    let mut app = spawn_app().await;
    let request = with_token(pb::WatchTopologyRequest::default(), READER_TOKEN);
    let mut stream = app.topology().await.watch_topology(request).await.unwrap().into_inner();
    let initial = next(&mut stream).await.unwrap();
    assert!(initial.initial);
    assert_eq!(initial.kind, pb::TopologyEventKind::Observed as i32);

    let desired = put(&app, initial.topology.clone().unwrap(), "", "req-1").await.unwrap().desired.unwrap();
    let event = next(&mut stream).await.unwrap();
    assert_eq!(
        (event.kind, event.desired_generation, event.initial),
        (pb::TopologyEventKind::Desired as i32, desired.generation, false)
    );

    app.edit_runtime_config("trio", |text| text.replace(r#"name: "Writer""#, r#"name: "Author""#));
    observed(&app).await;
    let event = next(&mut stream).await.unwrap();
    assert_eq!(event.kind, pb::TopologyEventKind::Observed as i32);
    assert_ne!(event.topology.unwrap().revision, initial.topology.unwrap().revision);

    app.begin_shutdown();
    assert!(next(&mut stream).await.is_none(), "the stream ends cleanly on shutdown");
    app.stop().await;
}

#[tokio::test]
async fn watch_topology_skips_state_the_caller_already_has() {
    let app = spawn_app().await;
    let current = observed(&app).await;
    let request = pb::WatchTopologyRequest {
        runtime: String::new(),
        known_desired_generation: 0,
        known_observed_revision: current.revision.clone(),
    };
    let mut stream =
        app.topology().await.watch_topology(with_token(request, READER_TOKEN)).await.unwrap().into_inner();
    put(&app, current, "", "req-1").await.unwrap();
    let event = tokio::time::timeout(WAIT, stream.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(event.kind, pb::TopologyEventKind::Desired as i32, "the known observed state was not resent");
    app.stop().await;
}

#[tokio::test]
async fn workspaces_outside_the_state_dir_or_in_a_home_are_refused_naming_the_field() {
    let app = spawn_app().await;
    for bad in ["/", "~/.ssh", "../..", "/root/.ssh", "/etc"] {
        let mut desired = observed(&app).await;
        desired.nodes[1].workspace = bad.into();
        let refused = put(&app, desired, "", &format!("bad-{}", bad.len())).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad}");
        let fields: Vec<String> = refused
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(fields, ["topology.nodes[1].workspace"], "{bad}");
    }
    let get =
        with_token(pb::GetDesiredTopologyRequest { runtime: String::new(), generation: 0 }, READER_TOKEN);
    assert_eq!(app.topology().await.get_desired_topology(get).await.unwrap_err().code(), Code::NotFound);
    // Below the state dir is where workspaces live.
    let mut desired = observed(&app).await;
    desired.nodes[1].workspace = "workspace-research-2".into();
    put(&app, desired, "", "good-1").await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_or_quadratic_desired_topology_is_refused_fast_and_stores_nothing() {
    let app = spawn_app().await;
    let node = |i: usize| pb::TopologyNode { agent_id: format!("a{i:05}"), ..Default::default() };
    let send = |from: usize, to: usize| pb::TopologyEdge {
        from_agent_id: format!("a{from:05}"),
        to_agent_id: format!("a{to:05}"),
        kind: pb::EdgeKind::Send as i32,
    };
    // A 2 000-agent SEND chain: inexpressible, decided without materialising pairs.
    let chain = pb::Topology {
        nodes: (0..2000).map(node).collect(),
        edges: (0..1999).map(|i| send(i, i + 1)).collect(),
        ..Default::default()
    };
    let request = pb::PutDesiredTopologyRequest {
        runtime: String::new(),
        topology: Some(chain),
        etag: String::new(),
        request_id: "chain-1".into(),
        validate_only: true,
    };
    let started = std::time::Instant::now();
    let refused =
        app.topology().await.put_desired_topology(with_token(request, OPERATOR_TOKEN)).await.unwrap_err();
    println!("2 000-agent SEND chain refused in {:?}", started.elapsed());
    assert_eq!(refused.code(), Code::InvalidArgument);
    // Past the agent limit the request is refused before anything else is looked at.
    let huge = pb::Topology { nodes: (0..2001).map(node).collect(), ..Default::default() };
    let request = pb::PutDesiredTopologyRequest {
        runtime: String::new(),
        topology: Some(huge),
        etag: String::new(),
        request_id: "huge-1".into(),
        validate_only: false,
    };
    let refused =
        app.topology().await.put_desired_topology(with_token(request, OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let violations = refused.get_error_details().bad_request().unwrap().field_violations.clone();
    assert_eq!((violations.len(), violations[0].field.as_str()), (1, "topology.nodes"));
    let get =
        with_token(pb::GetDesiredTopologyRequest { runtime: String::new(), generation: 0 }, READER_TOKEN);
    assert_eq!(app.topology().await.get_desired_topology(get).await.unwrap_err().code(), Code::NotFound);
    app.stop().await;
}

//! ClassifyTask and PreviewDispatch end to end.

use jhf_warp::pb::v1 as pb;
use jhf_warp::pb::v1::orchestration_service_client::OrchestrationServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

use crate::desired::{observed, put};
use crate::helpers::{OPERATOR_TOKEN, READER_TOKEN, TestApp, spawn_app, with_token};

const INCIDENT: &str =
    "Production checkout is returning 500s since the last deploy, find the cause and ship a fix";

async fn classify(app: &TestApp, task: pb::TaskInput, token: &str) -> Result<pb::TaskProfile, tonic::Status> {
    let mut client = OrchestrationServiceClient::new(app.channel().await);
    let request = pb::ClassifyTaskRequest { task: Some(task) };
    client.classify_task(with_token(request, token)).await.map(|r| r.into_inner().profile.unwrap())
}

fn titled(title: &str) -> pb::TaskInput {
    pb::TaskInput { title: title.into(), ..pb::TaskInput::default() }
}

async fn preview(
    app: &TestApp,
    request: pb::PreviewDispatchRequest,
) -> Result<pb::PreviewDispatchResponse, tonic::Status> {
    app.control().await.preview_dispatch(with_token(request, READER_TOKEN)).await.map(|r| r.into_inner())
}

fn category(id: &str, risk: pb::RiskLevel) -> pb::PreviewDispatchRequest {
    pb::PreviewDispatchRequest {
        runtime: String::new(),
        work: Some(pb::preview_dispatch_request::Work::Category(id.into())),
        risk: risk.into(),
    }
}

#[tokio::test]
async fn the_production_incident_is_a_high_risk_bug_fix_that_needs_review() {
    let app = spawn_app().await;
    let profile = classify(&app, titled(INCIDENT), READER_TOKEN).await.unwrap();
    assert_eq!(profile.category, "bug_fix");
    assert!(profile.risk >= pb::RiskLevel::High as i32, "risk {:?}", profile.risk());
    assert!(profile.hints.contains(&"needs_independent_review".to_owned()));
    assert!(profile.confidence > 0.0 && profile.confidence <= 1.0);
    assert!(profile.matched_rules.iter().any(|m| m.rule_id == "risk.production" && m.field == "title"));
    assert!(profile.rules_version.starts_with("v1-"));

    let noisy =
        classify(&app, titled(&format!("  {}!!! 🔥", INCIDENT.replace(' ', "  "))), READER_TOKEN).await;
    assert_eq!(noisy.unwrap(), profile, "spacing and punctuation do not change the answer");
    // Capitals are shouting: a signal of urgency, never a lower risk.
    let shouted = classify(&app, titled(&INCIDENT.to_uppercase()), READER_TOKEN).await.unwrap();
    assert_eq!(shouted.category, profile.category);
    assert!(shouted.risk >= profile.risk);

    let empty = classify(&app, titled(" ... "), READER_TOKEN).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert_eq!(empty.get_error_details().bad_request().unwrap().field_violations[0].field, "task.title");
    let hint = pb::TaskInput { domain_hint: "astrology".into(), ..titled("Fix the login") };
    assert_eq!(classify(&app, hint, READER_TOKEN).await.unwrap_err().code(), Code::InvalidArgument);
    let anonymous = OrchestrationServiceClient::new(app.channel().await)
        .classify_task(pb::ClassifyTaskRequest { task: Some(titled(INCIDENT)) })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    app.stop().await;
}

#[tokio::test]
async fn dispatch_preview_names_the_agent_its_lease_and_every_blocking_reason_without_side_effects() {
    let app = spawn_app().await;
    let mut desired = observed(&app).await;
    for node in &mut desired.nodes {
        node.role = match node.agent_id.as_str() {
            "lead" => "lead",
            "research" => "researcher",
            _ => "writer",
        }
        .into();
        node.trust = pb::TrustLevel::Standard.into();
    }
    put(&app, desired, "", "d-1").await.unwrap();
    // Observe once so the preview knows which agents the runtime has.
    let observe =
        pb::ObserveNowRequest { runtime: String::new(), request_id: "o-1".into(), validate_only: false };
    app.drift().await.observe_now(with_token(observe, OPERATOR_TOKEN)).await.unwrap();

    let free = preview(&app, category("research", pb::RiskLevel::Unspecified)).await.unwrap();
    assert_eq!((free.target_agent_id.as_str(), free.target_role.as_str()), ("research", "researcher"));
    assert_eq!((free.lease_name.as_str(), free.lease_holder.as_str()), ("agent/research", ""));
    assert!(free.allowed, "{:?}", free.blocking_reasons);

    let mut control = app.control().await;
    // The agent itself holds its dispatch lease (a control agent holds agent/<id> as <id>).
    let acquire = pb::AcquireLeaseRequest {
        name: "agent/research".into(),
        holder: "research".into(),
        duration_seconds: 300,
    };
    control.acquire_lease(with_token(acquire, &crate::helpers::agent_token("research"))).await.unwrap();
    let audit =
        || with_token(pb::ListAuditEventsRequest { page_size: 1000, ..Default::default() }, READER_TOKEN);
    let events_before = control.list_audit_events(audit()).await.unwrap().into_inner().events.len();

    let busy = preview(&app, category("research", pb::RiskLevel::Unspecified)).await.unwrap();
    assert!(!busy.allowed);
    assert_eq!(busy.lease_holder, "research");
    assert!(busy.lease_expire_time.is_some());
    let codes: Vec<&str> = busy.blocking_reasons.iter().map(|b| b.code.as_str()).collect();
    assert_eq!(codes, ["LEASE_BUSY"]);

    // Critical work on the lead: STANDARD trust is below the ELEVATED that CRITICAL needs.
    let critical = preview(&app, category("bug_fix", pb::RiskLevel::Critical)).await.unwrap();
    assert_eq!(critical.target_agent_id, "lead");
    assert_eq!(critical.required_trust, pb::TrustLevel::Elevated as i32);
    let codes: Vec<&str> = critical.blocking_reasons.iter().map(|b| b.code.as_str()).collect();
    assert_eq!(codes, ["TRUST_TOO_LOW"]);

    let task = pb::PreviewDispatchRequest {
        runtime: String::new(),
        work: Some(pb::preview_dispatch_request::Work::Task(titled(INCIDENT))),
        risk: 0,
    };
    let classified = preview(&app, task).await.unwrap();
    assert_eq!(classified.category, "bug_fix");
    assert_eq!(classified.profile.unwrap().category, "bug_fix");
    // A production bug fix is HIGH (a bug fix tops out there): STANDARD trust may take it.
    assert_eq!(classified.risk, pb::RiskLevel::High as i32);
    assert_eq!(classified.required_trust, pb::TrustLevel::Standard as i32);

    let unknown = preview(&app, category("astrology", pb::RiskLevel::Low)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    let nothing = preview(&app, pb::PreviewDispatchRequest::default()).await.unwrap_err();
    assert_eq!(nothing.code(), Code::InvalidArgument);

    let events_after = control.list_audit_events(audit()).await.unwrap().into_inner().events.len();
    assert_eq!(events_after, events_before, "previews write nothing");
    app.stop().await;
}

async fn preview_setup(
    app: &TestApp,
    request: pb::PreviewSetupRequest,
) -> Result<pb::SetupPreview, tonic::Status> {
    let mut client = OrchestrationServiceClient::new(app.channel().await);
    client.preview_setup(with_token(request, READER_TOKEN)).await.map(|r| r.into_inner().preview.unwrap())
}

pub async fn apply_setup(
    app: &TestApp,
    request: pb::ApplySetupRequest,
) -> Result<pb::ApplySetupResponse, tonic::Status> {
    let mut client = OrchestrationServiceClient::new(app.channel().await);
    client.apply_setup(with_token(request, OPERATOR_TOKEN)).await.map(|r| r.into_inner())
}

pub fn incident_setup(extend_current: bool) -> pb::PreviewSetupRequest {
    pb::PreviewSetupRequest {
        task: Some(titled(INCIDENT)),
        extend_current,
        ..pb::PreviewSetupRequest::default()
    }
}

#[tokio::test]
async fn the_incident_preview_is_a_lead_an_implementer_and_a_reviewer_within_budget() {
    let app = spawn_app().await;
    let preview = preview_setup(&app, incident_setup(false)).await.unwrap();
    let roles: Vec<&str> = preview.agents.iter().map(|a| a.role.as_str()).collect();
    assert_eq!(roles, ["lead", "implementer", "reviewer"]);
    let topology = preview.topology.clone().unwrap();
    let initiators: std::collections::BTreeSet<&str> = topology
        .edges
        .iter()
        .filter(|e| e.kind == pb::EdgeKind::Send as i32)
        .map(|e| e.from_agent_id.as_str())
        .collect();
    assert_eq!(initiators, std::collections::BTreeSet::from(["lead", "reviewer"]));
    for agent in &preview.agents {
        assert_eq!(agent.files.len(), 3);
        assert!(agent.files.iter().all(|f| f.chars <= f.budget_chars && f.budget_chars == 6_000));
        assert!(agent.total_chars <= agent.total_budget_chars);
    }
    // The preview's SEND set passes the service's own expressibility check.
    let validate = pb::PutDesiredTopologyRequest {
        runtime: String::new(),
        topology: Some(topology),
        etag: String::new(),
        request_id: "v-1".into(),
        validate_only: true,
    };
    app.topology().await.put_desired_topology(with_token(validate, OPERATOR_TOKEN)).await.unwrap();
    assert_eq!(preview.diff.unwrap().added_agents, ["implementer", "lead", "reviewer"]);

    let mut client = OrchestrationServiceClient::new(app.channel().await);
    let again = client
        .get_setup_preview(with_token(
            pb::GetSetupPreviewRequest { runtime: String::new(), id: preview.id.clone() },
            READER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner()
        .preview
        .unwrap();
    assert_eq!(again.agents, preview.agents, "the preview is stored and addressable by id");
    let missing = client
        .get_setup_preview(with_token(
            pb::GetSetupPreviewRequest { runtime: String::new(), id: "sp-nope".into() },
            READER_TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let tiny = pb::PreviewSetupRequest {
        budgets: Some(pb::SetupBudgets { file_chars: 100, total_chars: 0 }),
        ..incident_setup(false)
    };
    let error = preview_setup(&app, tiny).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(
        error.get_error_details().bad_request().unwrap().field_violations[0].field,
        "budgets.file_chars"
    );
    let one = pb::PreviewSetupRequest { max_agents: 1, ..incident_setup(false) };
    assert_eq!(preview_setup(&app, one).await.unwrap_err().code(), Code::InvalidArgument);
    let stabilize_nothing =
        pb::PreviewSetupRequest { pass: pb::SetupPass::Stabilization.into(), ..incident_setup(false) };
    assert_eq!(preview_setup(&app, stabilize_nothing).await.unwrap_err().code(), Code::InvalidArgument);

    // Without `rollout`, ApplySetup only stores the desired revision: the runtime is untouched.
    let apply = pb::ApplySetupRequest {
        runtime: String::new(),
        preview_id: preview.id.clone(),
        etag: String::new(),
        request_id: "no-rollout".into(),
        validate_only: false,
        rollout: false,
    };
    let stored = apply_setup(&app, apply).await.unwrap();
    let desired = stored.desired.unwrap();
    assert_eq!(desired.generation, 1);
    assert_eq!(desired.topology.unwrap().nodes.len(), 3);
    assert!(stored.rollout.is_none() && stored.files.is_empty());
    let ids: Vec<String> = observed(&app).await.nodes.into_iter().map(|n| n.agent_id).collect();
    assert_eq!(ids, ["lead", "research", "writer"], "the trio runtime is unchanged");
    assert!(!app.runtime_state_dir("trio").join("workspace-implementer").exists());
    app.stop().await;
}

#[tokio::test]
async fn apply_setup_stores_the_revision_rolls_it_out_and_never_overwrites_a_persons_file() {
    let app = spawn_app().await;
    let current = put(&app, observed(&app).await, "", "d-1").await.unwrap().desired.unwrap();
    let preview = preview_setup(&app, incident_setup(true)).await.unwrap();
    let new: Vec<&str> = preview.agents.iter().filter(|a| a.new_agent).map(|a| a.agent_id.as_str()).collect();
    assert_eq!(new, ["implementer", "reviewer"], "the trio's lead is reused");

    let request = |etag: &str, request_id: &str, rollout: bool, validate_only: bool| pb::ApplySetupRequest {
        runtime: String::new(),
        preview_id: preview.id.clone(),
        etag: etag.into(),
        request_id: request_id.into(),
        validate_only,
        rollout,
    };
    let stale = apply_setup(&app, request("0-stale", "a-0", true, false)).await.unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    let dry = apply_setup(&app, request(&current.etag, "a-dry", true, true)).await.unwrap();
    assert!(dry.rollout.is_none() && dry.files.is_empty());
    let unchanged = observed(&app).await.nodes.len();
    assert_eq!(unchanged, 3, "validate_only changed nothing");

    // A person already wrote SOUL.md in the reviewer's future workspace.
    let workspace = app.runtime_state_dir("trio").join("workspace-reviewer");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(workspace.join("SOUL.md"), "# my own notes\n").unwrap();

    let applied = apply_setup(&app, request(&current.etag, "a-1", true, false)).await.unwrap();
    assert_eq!(applied.desired.as_ref().unwrap().generation, 2);
    assert_eq!(applied.rollout.as_ref().unwrap().state, pb::RolloutState::Succeeded as i32);
    let actions: Vec<(String, i32)> = applied
        .files
        .iter()
        .map(|f| (format!("{}/{}", f.agent_id, f.path.rsplit('/').next().unwrap()), f.action))
        .collect();
    let created = pb::FileWriteAction::Created as i32;
    assert_eq!(
        actions,
        [
            ("implementer/AGENTS.md".to_owned(), created),
            ("implementer/SOUL.md".to_owned(), created),
            ("implementer/IDENTITY.md".to_owned(), created),
            ("reviewer/AGENTS.md".to_owned(), created),
            ("reviewer/SOUL.md".to_owned(), pb::FileWriteAction::Conflict as i32),
            ("reviewer/IDENTITY.md".to_owned(), created),
        ]
    );
    assert_eq!(std::fs::read_to_string(workspace.join("SOUL.md")).unwrap(), "# my own notes\n", "left alone");
    let agents_md = std::fs::read_to_string(workspace.join("AGENTS.md")).unwrap();
    assert!(agents_md.starts_with("<!-- jhf-warp:managed v1 sha256="));
    let ids: Vec<String> = observed(&app).await.nodes.into_iter().map(|n| n.agent_id).collect();
    assert_eq!(ids, ["implementer", "lead", "research", "reviewer", "writer"]);

    // A retry converges: same revision and rollout; the files are already there.
    let retry = apply_setup(&app, request(&current.etag, "a-1", true, false)).await.unwrap();
    assert_eq!(retry.desired, applied.desired);
    assert_eq!(retry.rollout.unwrap().id, applied.rollout.unwrap().id);
    assert!(retry.files.iter().all(|f| f.action != created));
    app.stop().await;
}

#[tokio::test]
async fn a_bad_rules_file_or_identity_registry_stops_start_up_naming_the_problems() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = jhf_warp::config::ServeArgs::from_env().unwrap();
    args.store.data_dir = dir.path().join("data");
    args.listen = "127.0.0.1:0".parse().unwrap();
    args.fixtures_dir = Some(crate::helpers::fixtures_dir());
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "version = 2\nfallback_category = \"nope\"\n").unwrap();
    args.rules = Some(rules);
    let error = jhf_warp::app::App::build(args.clone()).await.err().expect("start-up refused").to_string();
    assert!(error.contains("version 2") && error.contains("fallback_category \"nope\""), "{error}");

    args.rules = None;
    let registry = dir.path().join("registry.json");
    std::fs::write(&registry, r#"{"references": ["identity://team/payments", "team-billing"]}"#).unwrap();
    args.identity_registry = Some(registry);
    let error = jhf_warp::app::App::build(args).await.err().expect("start-up refused").to_string();
    assert!(error.contains("team-billing") && error.contains("identity://"), "{error}");
}

/// A control agent previews dispatch only with standing: to itself, or to an agent that
/// delegated the `dispatch` right to it.
#[tokio::test]
async fn a_control_agent_needs_standing_to_dispatch_to_another_agent() {
    let app = spawn_app().await;
    let mut desired = observed(&app).await;
    for node in &mut desired.nodes {
        node.role = if node.agent_id == "research" { "researcher".into() } else { "writer".into() };
        node.trust = pb::TrustLevel::Standard.into();
    }
    put(&app, desired, "", "d-1").await.unwrap();
    let observe =
        pb::ObserveNowRequest { runtime: String::new(), request_id: "o-1".into(), validate_only: false };
    app.drift().await.observe_now(with_token(observe, crate::helpers::OPERATOR_TOKEN)).await.unwrap();
    let as_agent = |name: &'static str| {
        let app = &app;
        async move {
            let request = category("research", pb::RiskLevel::Low);
            let token = crate::helpers::agent_token(name);
            app.control().await.preview_dispatch(with_token(request, &token)).await.unwrap().into_inner()
        }
    };
    let codes = |answer: &pb::PreviewDispatchResponse| -> Vec<String> {
        answer.blocking_reasons.iter().map(|b| b.code.clone()).collect()
    };
    let stranger = as_agent("x").await;
    assert_eq!(stranger.target_agent_id, "research");
    assert!(!stranger.allowed);
    assert!(codes(&stranger).contains(&"NO_STANDING".to_owned()), "{stranger:?}");
    assert!(
        !codes(&as_agent("research").await).contains(&"NO_STANDING".to_owned()),
        "an agent has standing for itself"
    );
    let reader = preview(&app, category("research", pb::RiskLevel::Low)).await.unwrap();
    assert!(!codes(&reader).contains(&"NO_STANDING".to_owned()), "people are not control agents");

    let grant = pb::GrantDelegationRequest {
        runtime: String::new(),
        grantor_agent_id: "research".into(),
        delegate_agent_id: "x".into(),
        rights: vec!["dispatch".into()],
        trust: pb::TrustLevel::Restricted.into(),
        parent_id: String::new(),
        request_id: "g-1".into(),
        validate_only: false,
    };
    app.control().await.grant_delegation(with_token(grant, crate::helpers::OPERATOR_TOKEN)).await.unwrap();
    let delegated = as_agent("x").await;
    assert!(!codes(&delegated).contains(&"NO_STANDING".to_owned()), "{delegated:?}");
    app.stop().await;
}

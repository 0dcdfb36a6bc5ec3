//! ClassifyTask and PreviewDispatch end to end.

use jhf_warp::pb::v1 as pb;
use jhf_warp::pb::v1::orchestration_service_client::OrchestrationServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

use crate::desired::{observed, put};
use crate::helpers::{AGENT_TOKEN, OPERATOR_TOKEN, READER_TOKEN, TestApp, spawn_app, with_token};

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

    let noisy = classify(&app, titled(&format!("  {}!!! 🔥", INCIDENT.to_uppercase())), READER_TOKEN).await;
    assert_eq!(noisy.unwrap(), profile, "case and punctuation do not change the answer");

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
    let observe = pb::ObserveNowRequest { request_id: "o-1".into(), validate_only: false };
    app.drift().await.observe_now(with_token(observe, OPERATOR_TOKEN)).await.unwrap();

    let free = preview(&app, category("research", pb::RiskLevel::Unspecified)).await.unwrap();
    assert_eq!((free.target_agent_id.as_str(), free.target_role.as_str()), ("research", "researcher"));
    assert_eq!((free.lease_name.as_str(), free.lease_holder.as_str()), ("agent/research", ""));
    assert!(free.allowed, "{:?}", free.blocking_reasons);

    let mut control = app.control().await;
    let acquire = pb::AcquireLeaseRequest {
        name: "agent/research".into(),
        holder: "other-agent".into(),
        duration_seconds: 300,
    };
    control.acquire_lease(with_token(acquire, AGENT_TOKEN)).await.unwrap();
    let audit =
        || with_token(pb::ListAuditEventsRequest { page_size: 1000, ..Default::default() }, READER_TOKEN);
    let events_before = control.list_audit_events(audit()).await.unwrap().into_inner().events.len();

    let busy = preview(&app, category("research", pb::RiskLevel::Unspecified)).await.unwrap();
    assert!(!busy.allowed);
    assert_eq!(busy.lease_holder, "other-agent");
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
        work: Some(pb::preview_dispatch_request::Work::Task(titled(INCIDENT))),
        risk: 0,
    };
    let classified = preview(&app, task).await.unwrap();
    assert_eq!(classified.category, "bug_fix");
    assert_eq!(classified.profile.unwrap().category, "bug_fix");
    assert!(!classified.allowed);

    let unknown = preview(&app, category("astrology", pb::RiskLevel::Low)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    let nothing = preview(&app, pb::PreviewDispatchRequest::default()).await.unwrap_err();
    assert_eq!(nothing.code(), Code::InvalidArgument);

    let events_after = control.list_audit_events(audit()).await.unwrap().into_inner().events.len();
    assert_eq!(events_after, events_before, "previews write nothing");
    app.stop().await;
}

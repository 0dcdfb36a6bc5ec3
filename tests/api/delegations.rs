//! Delegations: grants, fail-closed standing, revocation cascades and backfill.

use jhf_warp::pb::v1::{self as pb, DelegationStanding, TrustLevel};
use tonic::Code;

use crate::helpers::{OPERATOR_TOKEN, READER_TOKEN, TestApp, spawn_app, with_token};

pub(crate) async fn grant(
    app: &TestApp,
    (grantor, delegate): (&str, &str),
    rights: &[&str],
    trust: TrustLevel,
    parent: &str,
    request_id: &str,
) -> Result<pb::Delegation, tonic::Status> {
    let request = pb::GrantDelegationRequest {
        runtime: String::new(),
        grantor_agent_id: grantor.into(),
        delegate_agent_id: delegate.into(),
        rights: rights.iter().map(|r| r.to_string()).collect(),
        trust: trust.into(),
        parent_id: parent.into(),
        request_id: request_id.into(),
        validate_only: false,
    };
    app.control()
        .await
        .grant_delegation(with_token(request, OPERATOR_TOKEN))
        .await
        .map(|r| r.into_inner().delegation.unwrap())
}

async fn state(app: &TestApp, id: &str) -> pb::GetDelegationStateResponse {
    let request =
        with_token(pb::GetDelegationStateRequest { runtime: String::new(), id: id.into() }, READER_TOKEN);
    app.control().await.get_delegation_state(request).await.unwrap().into_inner()
}

#[tokio::test]
async fn revoking_a_grant_invalidates_everything_derived_from_it() {
    let app = spawn_app().await;
    let root =
        grant(&app, ("chief", "pm"), &["dispatch", "spawn"], TrustLevel::Standard, "", "g-1").await.unwrap();
    assert_eq!(root.standing, DelegationStanding::Active as i32);
    let child = grant(&app, ("pm", "qa"), &["spawn"], TrustLevel::Restricted, &root.id, "g-2").await.unwrap();
    let grandchild =
        grant(&app, ("qa", "docs"), &["spawn"], TrustLevel::Unspecified, &child.id, "g-3").await.unwrap();
    assert_eq!(grandchild.trust, TrustLevel::Restricted as i32, "unspecified trust means RESTRICTED");
    assert_eq!(
        state(&app, &grandchild.id).await.chain,
        [root.id.clone(), child.id.clone(), grandchild.id.clone()]
    );
    let again = grant(&app, ("pm", "qa"), &["spawn"], TrustLevel::Restricted, &root.id, "g-2").await.unwrap();
    assert_eq!(again.id, child.id, "a retried request id returns the first grant");

    let revoke = pb::RevokeDelegationRequest {
        runtime: String::new(),
        id: root.id.clone(),
        reason: "chief rotated".into(),
        request_id: "r-1".into(),
        validate_only: false,
    };
    let affected = app
        .control()
        .await
        .revoke_delegation(with_token(revoke, OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .affected;
    assert_eq!(affected.len(), 3);
    let root_now = state(&app, &root.id).await.delegation.unwrap();
    assert_eq!(
        (root_now.standing, root_now.standing_reason.as_str()),
        (DelegationStanding::Revoked as i32, "chief rotated")
    );
    let grandchild_now = state(&app, &grandchild.id).await.delegation.unwrap();
    assert_ne!(
        grandchild_now.standing,
        DelegationStanding::Active as i32,
        "fail closed below a revoked grant"
    );

    let blocked = grant(&app, ("pm", "frontend"), &["spawn"], TrustLevel::Restricted, &root.id, "g-4")
        .await
        .unwrap_err();
    assert_eq!(blocked.code(), Code::FailedPrecondition, "no new grant below a revoked one");
    let audit = app
        .control()
        .await
        .list_audit_events(with_token(pb::ListAuditEventsRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    let methods: Vec<&str> =
        audit.events.iter().map(|e| e.method.trim_start_matches("jhf.warp.v1.ControlService/")).collect();
    assert_eq!(methods, ["GrantDelegation", "GrantDelegation", "GrantDelegation", "RevokeDelegation"]);
    app.stop().await;
}

#[tokio::test]
async fn derived_grants_never_widen_their_parent_and_bad_input_is_typed() {
    let app = spawn_app().await;
    let root = grant(&app, ("chief", "pm"), &["spawn"], TrustLevel::Standard, "", "g-1").await.unwrap();
    let wider_rights =
        grant(&app, ("pm", "qa"), &["admin"], TrustLevel::Restricted, &root.id, "g-2").await.unwrap_err();
    assert_eq!(wider_rights.code(), Code::FailedPrecondition);
    assert!(wider_rights.message().contains("admin"), "{}", wider_rights.message());
    let wider_trust =
        grant(&app, ("pm", "qa"), &["spawn"], TrustLevel::Elevated, &root.id, "g-3").await.unwrap_err();
    assert_eq!(wider_trust.code(), Code::FailedPrecondition);
    let orphan =
        grant(&app, ("pm", "qa"), &["spawn"], TrustLevel::Restricted, "dg-missing", "g-4").await.unwrap_err();
    assert!(orphan.message().contains("does not exist"), "{}", orphan.message());
    let bad_id = grant(&app, ("Chief Of Staff", "pm"), &["spawn"], TrustLevel::Restricted, "", "g-5")
        .await
        .unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
    let no_rights = grant(&app, ("chief", "pm"), &[], TrustLevel::Restricted, "", "g-6").await.unwrap_err();
    assert_eq!(no_rights.code(), Code::InvalidArgument);
    let missing = with_token(
        pb::GetDelegationStateRequest { runtime: String::new(), id: "dg-nope".into() },
        READER_TOKEN,
    );
    assert_eq!(app.control().await.get_delegation_state(missing).await.unwrap_err().code(), Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn backfill_records_observed_spawn_relations_once() {
    let app = spawn_app().await;
    let backfill = |id: &str| pb::BackfillDelegationsRequest {
        runtime: String::new(),
        request_id: id.into(),
        validate_only: false,
    };
    let created = app
        .control()
        .await
        .backfill_delegations(with_token(backfill("b-1"), OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .created;
    let pairs: Vec<(&str, &str)> =
        created.iter().map(|d| (d.grantor_agent_id.as_str(), d.delegate_agent_id.as_str())).collect();
    assert_eq!(pairs, [("lead", "research"), ("lead", "writer")]);
    assert!(created.iter().all(
        |d| d.source == pb::DelegationSource::Backfill as i32 && d.trust == TrustLevel::Restricted as i32
    ));
    let again = app
        .control()
        .await
        .backfill_delegations(with_token(backfill("b-2"), OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .created;
    assert!(again.is_empty(), "running it twice changes nothing");
    let list = with_token(
        pb::ListDelegationsRequest { agent_id: "writer".into(), ..Default::default() },
        READER_TOKEN,
    );
    assert_eq!(app.control().await.list_delegations(list).await.unwrap().into_inner().delegations.len(), 1);
    app.stop().await;
}

/// The bar: revoking the grant behind lead -> writer SPAWN shows its consequences first, then
/// stores a desired revision without the edge (audited with the cascade), and with the schedule
/// in HEAL mode rolls it out; the runtime stops letting the lead spawn the writer.
#[tokio::test]
async fn revoking_a_grant_takes_its_edges_out_of_the_desired_topology_and_heals_the_runtime() {
    let app = spawn_app().await;
    let observed = crate::desired::observed(&app).await;
    let spawn_edge = |t: &pb::Topology| {
        t.edges.iter().any(|e| {
            e.from_agent_id == "lead" && e.to_agent_id == "writer" && e.kind == pb::EdgeKind::Spawn as i32
        })
    };
    assert!(spawn_edge(&observed));
    crate::desired::put(&app, observed.clone(), "", "desired-1").await.unwrap();
    let root = grant(&app, ("lead", "writer"), &["spawn"], TrustLevel::Restricted, "", "g-1").await.unwrap();
    let child = grant(&app, ("writer", "research"), &["spawn"], TrustLevel::Restricted, &root.id, "g-2")
        .await
        .unwrap();

    let preview = app
        .control()
        .await
        .preview_revocation(with_token(
            pb::PreviewRevocationRequest { runtime: String::new(), id: root.id.clone() },
            READER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    let falling: Vec<&str> = preview.falling.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(falling, [root.id.as_str(), child.id.as_str()]);
    let removed: Vec<(&str, &str)> =
        preview.removed_edges.iter().map(|e| (e.from_agent_id.as_str(), e.to_agent_id.as_str())).collect();
    assert_eq!(removed, [("lead", "writer")], "writer -> research was never a desired edge");
    assert_eq!(preview.affected_agents, ["lead", "research", "writer"]);
    assert_eq!(preview.desired_generation, 1);
    assert!(!preview.rollout_follows);
    assert_eq!(
        state(&app, &root.id).await.delegation.unwrap().standing,
        DelegationStanding::Active as i32,
        "a preview changes nothing"
    );

    let heal = pb::Schedule {
        interval_seconds: 3600,
        mode: pb::ReconcileMode::Heal.into(),
        paused: true,
        ..Default::default()
    };
    let update = pb::UpdateScheduleRequest {
        runtime: String::new(),
        schedule: Some(heal),
        etag: "0".into(),
        request_id: "s-1".into(),
        validate_only: false,
    };
    app.control().await.update_schedule(with_token(update, OPERATOR_TOKEN)).await.unwrap();

    let revoke = pb::RevokeDelegationRequest {
        runtime: String::new(),
        id: root.id.clone(),
        reason: "writer leaves the team".into(),
        request_id: "r-1".into(),
        validate_only: false,
    };
    let outcome =
        app.control().await.revoke_delegation(with_token(revoke, OPERATOR_TOKEN)).await.unwrap().into_inner();
    assert_eq!(outcome.affected.len(), 2);
    assert_eq!(outcome.desired_generation, 2);
    assert_eq!(outcome.removed_edges.len(), 1);
    assert!(!outcome.rollout_id.is_empty(), "HEAL mode starts a rollout: {outcome:?}");
    let desired = app
        .topology()
        .await
        .get_desired_topology(with_token(
            pb::GetDesiredTopologyRequest { runtime: String::new(), generation: 0 },
            READER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner()
        .desired
        .unwrap();
    assert_eq!(desired.generation, 2);
    assert!(!spawn_edge(desired.topology.as_ref().unwrap()));
    let rollout = crate::rollout::follow(&app, &outcome.rollout_id).await;
    assert_eq!(rollout.state, pb::RolloutState::Succeeded as i32, "{rollout:#?}");
    assert!(
        !spawn_edge(&crate::desired::observed(&app).await),
        "the runtime no longer lets lead spawn writer"
    );

    let events = app
        .control()
        .await
        .list_audit_events(with_token(
            pb::ListAuditEventsRequest { page_size: 100, ..Default::default() },
            READER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    let revocation = events
        .iter()
        .find(|e| e.resource == format!("delegation/{}", root.id) && e.summary.starts_with("revoked"))
        .unwrap();
    assert!(
        revocation.summary.contains(&child.id) && revocation.summary.contains("lead->writer:SPAWN"),
        "{}",
        revocation.summary
    );
    assert!(
        events.iter().any(|e| e.resource == "desired-topology/2" && e.request_id == "r-1"),
        "the new revision is audited under the caller's request"
    );
    assert!(events.iter().any(|e| e.resource == format!("rollout/{}", outcome.rollout_id)));

    // A retry answers the same, and changes nothing more.
    let again = pb::RevokeDelegationRequest {
        runtime: String::new(),
        id: root.id.clone(),
        reason: "writer leaves the team".into(),
        request_id: "r-1".into(),
        validate_only: false,
    };
    let replay =
        app.control().await.revoke_delegation(with_token(again, OPERATOR_TOKEN)).await.unwrap().into_inner();
    assert_eq!(replay.rollout_id, outcome.rollout_id);
    assert_eq!(replay.desired_generation, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_revocation_retried_after_stopping_before_its_revision_still_takes_the_edges_out() {
    let app = spawn_app().await;
    let observed = crate::desired::observed(&app).await;
    crate::desired::put(&app, observed, "", "desired-1").await.unwrap();
    let root = grant(&app, ("lead", "writer"), &["spawn"], TrustLevel::Restricted, "", "g-1").await.unwrap();
    let revoke = || {
        with_token(
            pb::RevokeDelegationRequest {
                runtime: String::new(),
                id: root.id.clone(),
                reason: "writer leaves".into(),
                request_id: "r-crash".into(),
                validate_only: false,
            },
            OPERATOR_TOKEN,
        )
    };
    app.failpoints.enable(jhf_warp::control::failpoints::STOP_AFTER_REVOCATION);
    let stopped = app.control().await.revoke_delegation(revoke()).await.unwrap_err();
    assert_eq!(stopped.code(), Code::Internal, "{stopped:?}");
    assert_eq!(
        state(&app, &root.id).await.delegation.unwrap().standing,
        DelegationStanding::Revoked as i32,
        "the revocation was stored before the stop"
    );

    app.failpoints.disable(jhf_warp::control::failpoints::STOP_AFTER_REVOCATION);
    let outcome = app.control().await.revoke_delegation(revoke()).await.unwrap().into_inner();
    assert_eq!(
        outcome.desired_generation, 2,
        "the retry stores the revision the first call did not: {outcome:?}"
    );
    let removed: Vec<(&str, &str)> =
        outcome.removed_edges.iter().map(|e| (e.from_agent_id.as_str(), e.to_agent_id.as_str())).collect();
    assert_eq!(removed, [("lead", "writer")]);
    let again = app.control().await.revoke_delegation(revoke()).await.unwrap().into_inner();
    assert_eq!(again.desired_generation, 2, "a further retry answers the same, no third revision");
    app.stop().await;
}

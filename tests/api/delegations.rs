//! Delegations: grants, fail-closed standing, revocation cascades and backfill.

use jhf_warp::pb::v1::{self as pb, DelegationStanding, TrustLevel};
use tonic::Code;

use crate::helpers::{OPERATOR_TOKEN, READER_TOKEN, TestApp, spawn_app, with_token};

async fn grant(
    app: &TestApp,
    (grantor, delegate): (&str, &str),
    rights: &[&str],
    trust: TrustLevel,
    parent: &str,
    request_id: &str,
) -> Result<pb::Delegation, tonic::Status> {
    let request = pb::GrantDelegationRequest {
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
    let request = with_token(pb::GetDelegationStateRequest { id: id.into() }, READER_TOKEN);
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
    let missing = with_token(pb::GetDelegationStateRequest { id: "dg-nope".into() }, READER_TOKEN);
    assert_eq!(app.control().await.get_delegation_state(missing).await.unwrap_err().code(), Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn backfill_records_observed_spawn_relations_once() {
    let app = spawn_app().await;
    let backfill = |id: &str| pb::BackfillDelegationsRequest { request_id: id.into(), validate_only: false };
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

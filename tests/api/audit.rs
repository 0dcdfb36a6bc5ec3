//! The hash-chained audit log: one event per applied mutation, written with its effect.

use jhf_warp::pb::v1 as pb;
use sea_orm::ConnectionTrait;

use crate::desired::{observed, put};
use crate::helpers::{OPERATOR_TOKEN, READER_TOKEN, TestApp, agent_token, spawn_app, with_token};
use crate::rollout::{follow, plan, start, trio_minus_writer_plus_qa};

async fn events(app: &TestApp, request: pb::ListAuditEventsRequest) -> Vec<pb::AuditEvent> {
    app.control()
        .await
        .list_audit_events(with_token(request, READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .events
}

async fn verify(app: &TestApp) -> pb::VerifyAuditChainResponse {
    let request = with_token(pb::VerifyAuditChainRequest {}, READER_TOKEN);
    app.control().await.verify_audit_chain(request).await.unwrap().into_inner()
}

async fn acquire(app: &TestApp, holder: &str) -> pb::Lease {
    acquire_named(app, "job/lead", holder).await
}

async fn acquire_named(app: &TestApp, name: &str, holder: &str) -> pb::Lease {
    let request = pb::AcquireLeaseRequest { name: name.into(), holder: holder.into(), duration_seconds: 30 };
    app.control()
        .await
        .acquire_lease(with_token(request, &agent_token(holder)))
        .await
        .unwrap()
        .into_inner()
        .lease
        .unwrap()
}

#[tokio::test]
async fn every_applied_mutation_writes_exactly_one_chained_event() {
    let app = spawn_app().await;
    let desired = trio_minus_writer_plus_qa(&observed(&app).await);
    put(&app, desired.clone(), "", "desired-1").await.unwrap();
    put(&app, desired.clone(), "", "desired-1").await.unwrap(); // a replay writes nothing
    put(&app, desired, "", "desired-2").await.unwrap_err(); // a refusal writes nothing
    let observe = pb::ObserveNowRequest {
        runtime: String::new(),
        request_id: "observe-1".into(),
        validate_only: false,
    };
    app.drift().await.observe_now(with_token(observe, OPERATOR_TOKEN)).await.unwrap();
    let lease = acquire(&app, "agent-a").await;
    let renew = pb::RenewLeaseRequest {
        name: "job/lead".into(),
        holder: "agent-a".into(),
        fencing_token: lease.fencing_token,
        duration_seconds: 30,
    };
    app.control().await.renew_lease(with_token(renew, &agent_token("agent-a"))).await.unwrap();
    let release = pb::ReleaseLeaseRequest {
        name: "job/lead".into(),
        holder: "agent-a".into(),
        fencing_token: lease.fencing_token,
    };
    app.control().await.release_lease(with_token(release, &agent_token("agent-a"))).await.unwrap();
    let patch = plan(&app, pb::PlanKind::Apply).await.unwrap();
    let rollout = follow(&app, &start(&app, &patch.id, false, "rollout-1").await.unwrap().id).await;
    let undo = pb::RollbackRolloutRequest {
        runtime: String::new(),
        rollout_id: rollout.id.clone(),
        request_id: "undo-1".into(),
        validate_only: false,
    };
    app.drift().await.rollback_rollout(with_token(undo, OPERATOR_TOKEN)).await.unwrap();

    let all = events(&app, pb::ListAuditEventsRequest::default()).await;
    let methods: Vec<&str> = all.iter().map(|e| e.method.trim_start_matches("jhf.warp.v1.")).collect();
    assert_eq!(
        methods,
        [
            "TopologyService/PutDesiredTopology",
            "DriftService/ObserveNow",
            "ControlService/AcquireLease",
            // The renewal only extended the expiry: it is not an audit event.
            "ControlService/ReleaseLease",
            "DriftService/CreateRollout",
            "DriftService/RollbackRollout",
        ]
    );
    assert_eq!(
        (all[0].actor.as_str(), all[0].resource.as_str(), all[0].request_id.as_str()),
        ("op", "desired-topology/1", "desired-1")
    );
    assert_eq!((all[2].actor.as_str(), all[2].resource.as_str()), ("agent-a", "lease/job/lead"));
    assert!(all[2].summary.contains("fencing token 1"), "{}", all[2].summary);
    assert_eq!(all[4].resource, format!("rollout/{}", rollout.id));
    assert!(all.iter().all(|e| e.outcome == "OK"));
    assert!(all.windows(2).all(|w| w[1].prev_hash == w[0].hash && w[1].seq == w[0].seq + 1));
    let check = verify(&app).await;
    assert!(check.intact, "{check:?}");
    assert_eq!((check.events_checked, check.sealed_seq, check.unsealed_events), (6, 6, 0));
    app.stop().await;
}

#[tokio::test]
async fn events_can_be_filtered_and_paged() {
    let app = spawn_app().await;
    for holder in ["a", "b"] {
        let lease = acquire(&app, holder).await;
        let release = pb::ReleaseLeaseRequest {
            name: "job/lead".into(),
            holder: holder.into(),
            fencing_token: lease.fencing_token,
        };
        app.control().await.release_lease(with_token(release, &agent_token(holder))).await.unwrap();
    }
    let releases = events(
        &app,
        pb::ListAuditEventsRequest {
            method: "jhf.warp.v1.ControlService/ReleaseLease".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(releases.len(), 2);
    assert_eq!(releases[1].actor, "b", "a lease is released by its holder");
    let by_agent = events(&app, pb::ListAuditEventsRequest { actor: "a".into(), ..Default::default() }).await;
    assert_eq!(by_agent.len(), 2, "a's acquisition and release");
    let first_page = pb::ListAuditEventsRequest { page_size: 3, ..Default::default() };
    let page = app
        .control()
        .await
        .list_audit_events(with_token(first_page, READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.events.len(), 3);
    let rest =
        pb::ListAuditEventsRequest { page_size: 3, page_token: page.next_page_token, ..Default::default() };
    let page =
        app.control().await.list_audit_events(with_token(rest, READER_TOKEN)).await.unwrap().into_inner();
    assert_eq!(page.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [4]);
    let future = pbjson_types::Timestamp { seconds: 4_000_000_000, nanos: 0 };
    let later =
        events(&app, pb::ListAuditEventsRequest { since_time: Some(future), ..Default::default() }).await;
    assert!(later.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn the_chain_verifies_intact_while_other_callers_write_and_seal() {
    // Each verification seals first, so two verifiers and a writer keep sealing batches while
    // the others walk the chain: a walk must not mistake a batch sealed under it for a break.
    let app = spawn_app().await;
    let writer = async {
        for round in 0..150 {
            let holder = format!("contender-{}", round % 3);
            let lease = acquire_named(&app, &format!("job/{round}"), &holder).await;
            let release = pb::ReleaseLeaseRequest {
                name: format!("job/{round}"),
                holder: holder.clone(),
                fencing_token: lease.fencing_token,
            };
            app.control().await.release_lease(with_token(release, &agent_token(&holder))).await.unwrap();
        }
    };
    let verifier = || async {
        let mut checks = Vec::new();
        for _ in 0..150 {
            checks.push(verify(&app).await);
        }
        checks
    };
    let ((), first, second) = tokio::join!(writer, verifier(), verifier());
    for check in first.iter().chain(&second) {
        assert!(check.intact, "{check:?}");
    }
    let last = verify(&app).await;
    assert!(last.intact, "{last:?}");
    assert_eq!(last.events_checked, 300, "every acquire and release, once");
    app.stop().await;
}

#[tokio::test]
async fn a_row_edited_directly_in_the_database_is_detected() {
    let app = spawn_app().await;
    for holder in ["a", "b", "c"] {
        let lease = acquire(&app, holder).await;
        let release = pb::ReleaseLeaseRequest {
            name: "job/lead".into(),
            holder: holder.into(),
            fencing_token: lease.fencing_token,
        };
        app.control().await.release_lease(with_token(release, &agent_token(holder))).await.unwrap();
    }
    assert!(verify(&app).await.intact);
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    db.execute_unprepared("UPDATE audit_events SET summary = 'nothing happened here' WHERE seq = 3")
        .await
        .unwrap();
    db.close().await.unwrap();
    let check = verify(&app).await;
    assert!(!check.intact);
    assert_eq!(check.first_broken_seq, 3);
    assert!(check.reason.contains("hash"), "{}", check.reason);
    app.stop().await;
}

#[tokio::test]
async fn refused_lease_operations_are_recorded_and_renewals_are_not() {
    let app = spawn_app().await;
    let lease = acquire(&app, "a").await;
    let mut control = app.control().await;
    let busy = pb::AcquireLeaseRequest { name: "job/lead".into(), holder: "b".into(), duration_seconds: 30 };
    control.acquire_lease(with_token(busy, &agent_token("b"))).await.unwrap_err();
    for _ in 0..3 {
        let renew = pb::RenewLeaseRequest {
            name: "job/lead".into(),
            holder: "a".into(),
            fencing_token: lease.fencing_token,
            duration_seconds: 30,
        };
        control.renew_lease(with_token(renew, &agent_token("a"))).await.unwrap();
    }
    let stale = pb::RenewLeaseRequest {
        name: "job/lead".into(),
        holder: "a".into(),
        fencing_token: lease.fencing_token + 7,
        duration_seconds: 30,
    };
    control.renew_lease(with_token(stale, &agent_token("a"))).await.unwrap_err();

    let all = events(&app, pb::ListAuditEventsRequest::default()).await;
    let outcomes: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e.method.trim_start_matches("jhf.warp.v1.ControlService/"), e.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, [("AcquireLease", "OK"), ("AcquireLease", "REFUSED"), ("RenewLease", "REFUSED")]);
    assert!(all[1].summary.contains("held by a"), "{}", all[1].summary);
    let check = verify(&app).await;
    assert!(check.intact && check.sealed_seq == 3 && check.unsealed_events == 0, "{check:?}");
    app.stop().await;
}

//! Idempotency that holds with concurrent duplicates, per caller, for every mutating RPC, and
//! for a bounded time.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use jhf_warp::control::clock::ManualClock;
use jhf_warp::pb::v1 as pb;
use tonic::Code;

use crate::desired::{observed, put};
use crate::helpers::{
    AppOptions, OPERATOR_TOKEN, OPERATOR2_TOKEN, READER_TOKEN, TestApp, agent_token, eventually, spawn_app,
    spawn_app_with, with_token,
};
use crate::rollout::trio_minus_writer_plus_qa;

fn proposal(change: &str, request_id: &str) -> pb::CreateLearningProposalRequest {
    pb::CreateLearningProposalRequest {
        runtime: String::new(),
        agent_id: "lead".into(),
        change: change.into(),
        rationale: "seen twice this week".into(),
        evidence_refs: vec!["session://lead/1".into()],
        request_id: request_id.into(),
        validate_only: false,
    }
}

async fn propose(
    app: &TestApp,
    token: &str,
    change: &str,
    request_id: &str,
) -> Result<pb::LearningProposal, tonic::Status> {
    let request = with_token(proposal(change, request_id), token);
    let client = pb::orchestration_service_client::OrchestrationServiceClient::new(app.channel().await);
    client.clone().create_learning_proposal(request).await.map(|r| r.into_inner().proposal.unwrap())
}

#[tokio::test]
async fn concurrent_duplicates_all_get_the_first_answer() {
    let app = spawn_app().await;
    let topology = observed(&app).await;
    let calls = (0..12).map(|_| {
        let (app, topology) = (&app, topology.clone());
        async move { put(app, topology, "", "same-put").await }
    });
    let answers = futures_join_all(calls).await;
    for answer in &answers {
        let desired =
            answer.as_ref().expect("every duplicate gets the first answer").desired.clone().unwrap();
        assert_eq!(desired.generation, 1);
    }

    put(
        &app,
        trio_minus_writer_plus_qa(&topology),
        &answers[0].as_ref().unwrap().desired.as_ref().unwrap().etag,
        "put-2",
    )
    .await
    .unwrap();
    let plan = crate::rollout::plan(&app, pb::PlanKind::Apply).await.unwrap();
    let starts = (0..8).map(|_| crate::rollout::start(&app, &plan.id, false, "same-rollout"));
    let started = futures_join_all(starts).await;
    let first = started[0].as_ref().expect("no duplicate fails").id.clone();
    for answer in &started {
        assert_eq!(answer.as_ref().expect("no duplicate fails").id, first, "one rollout for one request id");
    }
    let listed = app
        .drift()
        .await
        .list_rollouts(with_token(pb::ListRolloutsRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .rollouts;
    assert_eq!(listed.len(), 1);
    app.stop().await;
}

/// Polls futures concurrently on the test's task (they borrow its state) until all are done.
async fn futures_join_all<T>(
    futures: impl IntoIterator<Item = impl std::future::Future<Output = T>>,
) -> Vec<T> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<T>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, future) in out.iter_mut().zip(pinned.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *slot = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|v| v.expect("every future finished")).collect()
}

#[tokio::test]
async fn a_reused_request_id_with_another_body_is_invalid_argument_everywhere() {
    let app = spawn_app().await;
    let mut orchestration =
        pb::orchestration_service_client::OrchestrationServiceClient::new(app.channel().await);
    let mut control = app.control().await;

    // ReviewLearningProposal.
    let proposed = propose(&app, &agent_token("lead"), "Check the ledger first.", "p-1").await.unwrap();
    let review = |approve: bool| pb::ReviewLearningProposalRequest {
        runtime: String::new(),
        id: proposed.id.clone(),
        approve,
        note: "ok".into(),
        request_id: "review-1".into(),
    };
    orchestration.review_learning_proposal(with_token(review(true), OPERATOR_TOKEN)).await.unwrap();
    let replay =
        orchestration.review_learning_proposal(with_token(review(true), OPERATOR_TOKEN)).await.unwrap();
    assert_eq!(replay.into_inner().proposal.unwrap().state, pb::ProposalState::Approved as i32);
    let other =
        orchestration.review_learning_proposal(with_token(review(false), OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(other.code(), Code::InvalidArgument, "{other:?}");

    // Reconcile: the cycle id is its key.
    let cycle = |mode: pb::ReconcileMode| pb::ReconcileRequest {
        runtime: String::new(),
        mode: mode.into(),
        cycle_id: "cycle-1".into(),
    };
    control.reconcile(with_token(cycle(pb::ReconcileMode::Observe), OPERATOR_TOKEN)).await.unwrap();
    let same =
        control.reconcile(with_token(cycle(pb::ReconcileMode::Observe), OPERATOR_TOKEN)).await.unwrap();
    assert!(same.into_inner().replayed);
    let other =
        control.reconcile(with_token(cycle(pb::ReconcileMode::Plan), OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(other.code(), Code::InvalidArgument);

    // AcknowledgeObservation stores its answer: a retry after the observation cleared gets it.
    let acquire =
        pb::AcquireLeaseRequest { name: "agent/lead".into(), holder: "lead".into(), duration_seconds: 10 };
    let lease = control.acquire_lease(with_token(acquire, &agent_token("lead"))).await.unwrap().into_inner();
    app.advance_db_clock(11);
    let ack = |key: &str| pb::AcknowledgeObservationRequest {
        runtime: String::new(),
        key: key.into(),
        request_id: "ack-1".into(),
        validate_only: false,
    };
    let key = "expired_lease/agent/lead";
    eventually("the expired lease to be observed", async || {
        let request = with_token(
            pb::ListWatchdogObservationsRequest { runtime: String::new(), include_cleared: false },
            READER_TOKEN,
        );
        let open =
            app.control().await.list_watchdog_observations(request).await.ok()?.into_inner().observations;
        open.iter().any(|o| o.key == key).then_some(())
    })
    .await;
    let first =
        control.acknowledge_observation(with_token(ack(key), OPERATOR_TOKEN)).await.unwrap().into_inner();
    let release = pb::ReleaseLeaseRequest {
        name: "agent/lead".into(),
        holder: "lead".into(),
        fencing_token: lease.lease.unwrap().fencing_token,
    };
    control.release_lease(with_token(release, &agent_token("lead"))).await.unwrap();
    let request = with_token(
        pb::ListWatchdogObservationsRequest { runtime: String::new(), include_cleared: false },
        READER_TOKEN,
    );
    control.list_watchdog_observations(request).await.unwrap();
    let retry =
        control.acknowledge_observation(with_token(ack(key), OPERATOR_TOKEN)).await.unwrap().into_inner();
    assert_eq!(retry.observation, first.observation, "the first answer, although the observation cleared");
    let other = control
        .acknowledge_observation(with_token(ack("expired_lease/other"), OPERATOR_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn request_ids_belong_to_their_caller() {
    let app = spawn_app().await;
    let mine = propose(&app, OPERATOR_TOKEN, "Mine.", "same-id").await.unwrap();
    let theirs =
        propose(&app, OPERATOR2_TOKEN, "Theirs.", "same-id").await.expect("another caller's id is its own");
    assert_ne!(mine.id, theirs.id);
    assert_eq!(propose(&app, OPERATOR_TOKEN, "Mine.", "same-id").await.unwrap().id, mine.id);
    app.stop().await;
}

#[tokio::test]
async fn request_ids_are_forgotten_after_the_retention() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_with(AppOptions {
        clock: Some(clock.clone()),
        retention_sweep_secs: 1,
        ..AppOptions::default()
    })
    .await;
    propose(&app, OPERATOR_TOKEN, "First.", "p-1").await.unwrap();
    let reused = propose(&app, OPERATOR_TOKEN, "Second.", "p-1").await.unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    clock.advance(TimeDelta::days(8));
    eventually("the request id to be forgotten", async || {
        propose(&app, OPERATOR_TOKEN, "Second.", "p-1").await.ok()
    })
    .await;
    app.stop().await;
}

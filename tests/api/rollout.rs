//! Patch plans and rollouts on fixture runtimes, end to end.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use jhf_warp::control::clock::ManualClock;
use jhf_warp::control::failpoints::{FAIL_VERIFICATION, STOP_AFTER_APPLY};
use jhf_warp::pb::v1::{self as pb, EdgeKind, RolloutState};
use tonic::Code;

use crate::desired::{observed, put};
use crate::helpers::{
    AppOptions, OPERATOR_TOKEN, READER_TOKEN, TestApp, WAIT, eventually, reason, spawn_app_with, with_token,
};

/// The bar's change: trio minus writer plus a restricted qa that lead may spawn and that
/// lead and research may message.
pub fn trio_minus_writer_plus_qa(observed: &pb::Topology) -> pb::Topology {
    let mut topology = observed.clone();
    topology.nodes.retain(|n| n.agent_id != "writer");
    topology.edges.retain(|e| e.from_agent_id != "writer" && e.to_agent_id != "writer");
    topology.routes.retain(|r| r.agent_id != "writer");
    topology.nodes.push(pb::TopologyNode {
        agent_id: "qa".to_owned(),
        role: "QA".to_owned(),
        trust: pb::TrustLevel::Restricted.into(),
        tools_profile: "minimal".to_owned(),
        ..Default::default()
    });
    let edge = |from: &str, kind: EdgeKind| pb::TopologyEdge {
        from_agent_id: from.to_owned(),
        to_agent_id: "qa".to_owned(),
        kind: kind.into(),
    };
    topology.edges.extend([
        edge("lead", EdgeKind::Spawn),
        edge("lead", EdgeKind::Send),
        edge("research", EdgeKind::Send),
    ]);
    let mut route = topology.routes[0].clone();
    if let Some(matcher) = route.r#match.as_mut() {
        matcher.account_id = "qa".to_owned();
    }
    route.agent_id = "qa".to_owned();
    topology.routes.push(route);
    topology
}

pub async fn plan(app: &TestApp, kind: pb::PlanKind) -> Result<pb::PatchPlan, tonic::Status> {
    let request =
        with_token(pb::PlanPatchRequest { runtime: String::new(), kind: kind.into() }, READER_TOKEN);
    app.drift().await.plan_patch(request).await.map(|r| r.into_inner().plan.unwrap())
}

pub async fn start(
    app: &TestApp,
    plan_id: &str,
    dry_run: bool,
    request_id: &str,
) -> Result<pb::Rollout, tonic::Status> {
    let request = pb::CreateRolloutRequest {
        runtime: String::new(),
        plan_id: plan_id.to_owned(),
        dry_run,
        request_id: request_id.to_owned(),
        validate_only: false,
    };
    app.drift()
        .await
        .create_rollout(with_token(request, OPERATOR_TOKEN))
        .await
        .map(|r| r.into_inner().rollout.unwrap())
}

/// Follows a rollout with WatchRollout until its final state.
pub async fn follow(app: &TestApp, rollout_id: &str) -> pb::Rollout {
    let request = with_token(
        pb::WatchRolloutRequest { runtime: String::new(), rollout_id: rollout_id.to_owned() },
        READER_TOKEN,
    );
    let mut stream = app.drift().await.watch_rollout(request).await.unwrap().into_inner();
    let mut last = None;
    while let Some(event) =
        tokio::time::timeout(WAIT, stream.message()).await.expect("rollout progresses").unwrap()
    {
        last = event.rollout;
    }
    last.expect("at least the current state")
}

pub async fn get(app: &TestApp, rollout_id: &str) -> pb::Rollout {
    let request = with_token(
        pb::GetRolloutRequest { runtime: String::new(), rollout_id: rollout_id.to_owned() },
        READER_TOKEN,
    );
    app.drift().await.get_rollout(request).await.unwrap().into_inner().rollout.unwrap()
}

pub fn config_text(app: &TestApp, fixture: &str) -> String {
    std::fs::read_to_string(app.runtime_state_dir(fixture).join("openclaw.json")).unwrap()
}

pub async fn desired_trio_change(app: &TestApp) {
    put(app, trio_minus_writer_plus_qa(&observed(app).await), "", "desired-1").await.unwrap();
}

#[tokio::test]
async fn a_planned_change_is_applied_verified_and_leaves_drift_in_sync() {
    let app = spawn_app_with(AppOptions::default()).await;
    desired_trio_change(&app).await;
    let plan = plan(&app, pb::PlanKind::Apply).await.unwrap();
    assert!(plan.operations.iter().any(|op| op == "remove agent writer"), "{:?}", plan.operations);
    assert_eq!(plan.removed_agents, ["writer"]);
    assert_eq!(
        plan.id,
        super::rollout::plan(&app, pb::PlanKind::Apply).await.unwrap().id,
        "planning is deterministic"
    );

    let rollout = start(&app, &plan.id, false, "rollout-1").await.unwrap();
    let done = follow(&app, &rollout.id).await;
    assert_eq!(done.state, RolloutState::Succeeded as i32, "{done:?}");
    let states: Vec<i32> = done.steps.iter().map(|s| s.state).collect();
    for state in [RolloutState::Applying, RolloutState::Verifying, RolloutState::Succeeded] {
        assert!(states.contains(&(state as i32)), "{states:?}");
    }
    assert_eq!(done.base_hash, plan.base_hash);
    assert!(!done.target_hash.is_empty());

    let ids: Vec<String> = observed(&app).await.nodes.into_iter().map(|n| n.agent_id).collect();
    assert_eq!(ids, ["lead", "qa", "research"]);
    assert!(app.runtime_state_dir("trio").join("workspace-qa").is_dir());
    assert!(app.runtime_state_dir("trio").join("openclaw.json.bak").is_file(), "the previous config is kept");
    let observe = |id: &str| pb::ObserveNowRequest {
        runtime: String::new(),
        request_id: id.to_owned(),
        validate_only: false,
    };
    app.drift().await.observe_now(with_token(observe("after-1"), OPERATOR_TOKEN)).await.unwrap();
    let summary = app
        .drift()
        .await
        .observe_now(with_token(observe("after-2"), OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert!(summary.summary.unwrap().in_sync);

    let again = start(&app, &plan.id, false, "rollout-1").await.unwrap();
    assert_eq!(again.id, rollout.id, "a retried request id returns the first rollout");
    app.stop().await;
}

#[tokio::test]
async fn a_hand_edit_between_plan_and_rollout_is_refused_and_the_file_is_untouched() {
    let app = spawn_app_with(AppOptions::default()).await;
    desired_trio_change(&app).await;
    let plan = plan(&app, pb::PlanKind::Apply).await.unwrap();
    app.edit_runtime_config("trio", |text| text.replace(r#"name: "Research""#, r#"name: "Research Desk""#));
    let edited = config_text(&app, "trio");
    let err = start(&app, &plan.id, false, "rollout-1").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("changed since the plan"), "{}", err.message());
    assert_eq!(config_text(&app, "trio"), edited, "byte-identical to the hand-edited version");
    app.stop().await;
}

#[tokio::test]
async fn a_failed_verification_rolls_back_to_the_pre_image() {
    let app =
        spawn_app_with(AppOptions { failpoints: vec![FAIL_VERIFICATION], ..AppOptions::default() }).await;
    desired_trio_change(&app).await;
    let before = config_text(&app, "trio");
    let plan = plan(&app, pb::PlanKind::Apply).await.unwrap();
    let rollout = start(&app, &plan.id, false, "rollout-1").await.unwrap();
    let done = follow(&app, &rollout.id).await;
    assert_eq!(done.state, RolloutState::RolledBack as i32, "{done:?}");
    assert!(done.error.contains("verification failed"), "{}", done.error);
    assert_eq!(config_text(&app, "trio"), before, "the pre-image is back, byte for byte");
    app.stop().await;
}

#[tokio::test]
async fn a_dry_run_writes_nothing_and_a_success_can_be_rolled_back() {
    let app = spawn_app_with(AppOptions::default()).await;
    desired_trio_change(&app).await;
    let before = config_text(&app, "trio");
    let plan = plan(&app, pb::PlanKind::Apply).await.unwrap();
    let dry = follow(&app, &start(&app, &plan.id, true, "dry-1").await.unwrap().id).await;
    assert_eq!(dry.state, RolloutState::Succeeded as i32);
    assert_eq!(config_text(&app, "trio"), before, "a dry run writes nothing");

    let done = follow(&app, &start(&app, &plan.id, false, "real-1").await.unwrap().id).await;
    assert_eq!(done.state, RolloutState::Succeeded as i32, "{done:?}");
    let rollback = pb::RollbackRolloutRequest {
        runtime: String::new(),
        rollout_id: done.id.clone(),
        request_id: "undo-1".to_owned(),
        validate_only: false,
    };
    let undone =
        app.drift().await.rollback_rollout(with_token(rollback, OPERATOR_TOKEN)).await.unwrap().into_inner();
    assert_eq!(undone.rollout.unwrap().state, RolloutState::RolledBack as i32);
    assert_eq!(config_text(&app, "trio"), before);
    let again = pb::RollbackRolloutRequest {
        runtime: String::new(),
        rollout_id: dry.id,
        request_id: "undo-2".to_owned(),
        validate_only: false,
    };
    let err = app.drift().await.rollback_rollout(with_token(again, OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "a dry run has nothing to roll back");
    app.stop().await;
}

#[tokio::test]
async fn the_pre_image_is_purged_after_retention_and_the_rollout_can_no_longer_be_rolled_back() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_with(AppOptions {
        clock: Some(clock.clone()),
        retention_sweep_secs: 1,
        ..AppOptions::default()
    })
    .await;
    desired_trio_change(&app).await;
    let plan = plan(&app, pb::PlanKind::Apply).await.unwrap();
    let done = follow(&app, &start(&app, &plan.id, false, "real-1").await.unwrap().id).await;
    assert_eq!(done.state, RolloutState::Succeeded as i32, "{done:?}");
    let check = |request_id: &str| pb::RollbackRolloutRequest {
        runtime: String::new(),
        rollout_id: done.id.clone(),
        request_id: request_id.to_owned(),
        validate_only: true,
    };
    let mut drift = app.drift().await;
    drift
        .rollback_rollout(with_token(check("check-1"), OPERATOR_TOKEN))
        .await
        .expect("rollback possible at first");

    clock.advance(TimeDelta::days(6));
    crate::helpers::consistently(
        "the pre-image is kept within retention",
        Duration::from_millis(2500),
        async || drift.clone().rollback_rollout(with_token(check("check-2"), OPERATOR_TOKEN)).await.is_ok(),
    )
    .await;

    clock.advance(TimeDelta::days(2));
    let refused = eventually("the pre-image to be purged", async || {
        drift.clone().rollback_rollout(with_token(check("check-3"), OPERATOR_TOKEN)).await.err()
    })
    .await;
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "NOT_ROLLBACKABLE");
    assert!(refused.message().contains("retention"), "{}", refused.message());
    let kept = get(&app, &done.id).await;
    assert_eq!(kept.state, RolloutState::Succeeded as i32, "the rollout's record stays");
    app.stop().await;
}

#[tokio::test]
async fn a_rollout_interrupted_after_its_write_is_finished_after_a_restart() {
    let app =
        spawn_app_with(AppOptions { failpoints: vec![STOP_AFTER_APPLY], ..AppOptions::default() }).await;
    desired_trio_change(&app).await;
    let plan = plan(&app, pb::PlanKind::Apply).await.unwrap();
    let rollout = start(&app, &plan.id, false, "rollout-1").await.unwrap();
    eventually("the rollout to write", async || {
        (get(&app, &rollout.id).await.state == RolloutState::Applying as i32
            && config_text(&app, "trio").contains("\"qa\""))
        .then_some(())
    })
    .await;
    let options = app.restart_options("trio");
    let temp = app.stop().await;

    let restarted = spawn_app_with(options).await;
    let done = follow(&restarted, &rollout.id).await;
    assert_eq!(done.state, RolloutState::Succeeded as i32, "{done:?}");
    assert!(done.steps.iter().any(|s| s.message.contains("after a restart")), "{:?}", done.steps);
    restarted.stop().await;
    drop(temp);
}

#[tokio::test]
async fn drifted_refuses_apply_plans_naming_the_findings_but_accepts_a_repair() {
    let app = spawn_app_with(AppOptions { fixture: "drifted", ..AppOptions::default() }).await;
    put(&app, observed(&app).await, "", "desired-1").await.unwrap();
    let err = plan(&app, pb::PlanKind::Apply).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("retired_key/agent"), "{}", err.message());

    let repair = plan(&app, pb::PlanKind::Repair).await.unwrap();
    assert!(repair.warnings.iter().any(|w| w.contains("never restores")), "{:?}", repair.warnings);
    let done = follow(&app, &start(&app, &repair.id, false, "repair-1").await.unwrap().id).await;
    assert_eq!(done.state, RolloutState::Succeeded as i32, "{done:?}");
    let request = with_token(pb::GetInventoryRequest::default(), READER_TOKEN);
    let inventory =
        app.topology().await.get_inventory(request).await.unwrap().into_inner().inventory.unwrap();
    assert!(inventory.config_valid, "{:?}", inventory.config_issues);
    assert!(app.runtime_state_dir("drifted").join("openclaw.json.rejected.2026-11-20T10-00-00Z").exists());
    app.stop().await;
}

#[tokio::test]
async fn unknown_plans_and_rollouts_are_not_found() {
    let app = spawn_app_with(AppOptions::default()).await;
    let err = start(&app, "nope", false, "r-1").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let request = with_token(
        pb::GetRolloutRequest { runtime: String::new(), rollout_id: "ro-missing".to_owned() },
        READER_TOKEN,
    );
    assert_eq!(app.drift().await.get_rollout(request).await.unwrap_err().code(), Code::NotFound);
    let err = plan(&app, pb::PlanKind::Apply).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "no desired topology yet");
    app.stop().await;
}

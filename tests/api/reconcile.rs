//! Reconcile cycles on demand: OBSERVE, PLAN and HEAL with its guards.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use jhf_warp::control::clock::ManualClock;
use jhf_warp::pb::v1 as pb;

use crate::desired::{observed, put};
use crate::helpers::{AppOptions, OPERATOR_TOKEN, READER_TOKEN, TestApp, spawn_app_with, with_token};

async fn reconcile(app: &TestApp, mode: pb::ReconcileMode, cycle_id: &str) -> pb::ReconcileResponse {
    let request =
        pb::ReconcileRequest { runtime: String::new(), mode: mode.into(), cycle_id: cycle_id.into() };
    app.control().await.reconcile(with_token(request, OPERATOR_TOKEN)).await.unwrap().into_inner()
}

async fn observe(app: &TestApp, clock: &ManualClock, seconds: i64, request_id: &str) {
    clock.advance(TimeDelta::seconds(seconds));
    let request =
        pb::ObserveNowRequest { runtime: String::new(), request_id: request_id.into(), validate_only: false };
    app.drift().await.observe_now(with_token(request, OPERATOR_TOKEN)).await.unwrap();
}

/// trio, desired = its observed graph, then `writer` removed from the runtime.
async fn drifted_trio() -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_with(AppOptions { clock: Some(clock.clone()), ..AppOptions::default() }).await;
    put(&app, observed(&app).await, "", "desired-1").await.unwrap();
    app.edit_runtime_config("trio", |text| {
        let start = text.find("      writer: {").unwrap();
        let end = start + text[start..].find("      },\n").unwrap() + "      },\n".len();
        let text = format!("{}{}", &text[..start], &text[end..]);
        text.replace(r#"allow: ["lead", "research", "writer"]"#, r#"allow: ["lead", "research"]"#)
            .replace(r#"allowAgents: ["research", "writer"]"#, r#"allowAgents: ["research"]"#)
            .lines()
            .filter(|line| !line.contains(r#"agentId: "writer""#))
            .map(|line| format!("{line}\n"))
            .collect()
    });
    (app, clock)
}

#[tokio::test]
async fn heal_converges_a_drifted_runtime_with_one_run_one_rollout_and_its_audit_events() {
    let (app, clock) = drifted_trio().await;
    let early = reconcile(&app, pb::ReconcileMode::Heal, "c-0").await.run.unwrap();
    assert_eq!(early.state, "SKIPPED", "pending drift is not acted upon: {}", early.message);
    observe(&app, &clock, 61, "o-1").await;

    let heal = reconcile(&app, pb::ReconcileMode::Heal, "c-1").await;
    let run = heal.run.unwrap();
    assert!(!heal.replayed);
    assert_eq!(run.state, "SUCCEEDED", "{}", run.message);
    assert!(!run.rollout_id.is_empty());
    let ids: Vec<String> = observed(&app).await.nodes.into_iter().map(|n| n.agent_id).collect();
    assert_eq!(ids, ["lead", "research", "writer"], "the runtime converged back to the desired team");

    let again = reconcile(&app, pb::ReconcileMode::Heal, "c-1").await;
    assert!(again.replayed);
    assert_eq!(again.run.unwrap().rollout_id, run.rollout_id, "the same cycle id returns the first run");
    let rollouts = with_token(pb::ListRolloutsRequest::default(), READER_TOKEN);
    assert_eq!(app.drift().await.list_rollouts(rollouts).await.unwrap().into_inner().rollouts.len(), 1);
    let runs = with_token(pb::ListSchedulerRunsRequest::default(), READER_TOKEN);
    let runs = app.control().await.list_scheduler_runs(runs).await.unwrap().into_inner().runs;
    assert_eq!(runs.iter().map(|r| r.cycle_id.as_str()).collect::<Vec<_>>(), ["c-1", "c-0"]);
    let audit = with_token(
        pb::ListAuditEventsRequest {
            method: "jhf.warp.v1.ControlService/Reconcile".into(),
            ..Default::default()
        },
        READER_TOKEN,
    );
    let events = app.control().await.list_audit_events(audit).await.unwrap().into_inner().events;
    let resources: Vec<&str> = events.iter().map(|e| e.resource.as_str()).collect();
    assert_eq!(resources, ["scheduler-run/c-0", &format!("rollout/{}", run.rollout_id), "scheduler-run/c-1"]);

    let settled = reconcile(&app, pb::ReconcileMode::Heal, "c-2").await.run.unwrap();
    assert_eq!(settled.state, "SKIPPED", "nothing left to heal: {}", settled.message);
    app.stop().await;
}

#[tokio::test]
async fn observe_and_plan_modes_never_write_the_runtime() {
    let (app, clock) = drifted_trio().await;
    observe(&app, &clock, 1, "o-1").await;
    observe(&app, &clock, 61, "o-2").await;
    let config = app.runtime_state_dir("trio").join("openclaw.json");
    let before = std::fs::read(&config).unwrap();
    let observe_run = reconcile(&app, pb::ReconcileMode::Observe, "").await.run.unwrap();
    assert_eq!(observe_run.state, "SUCCEEDED");
    assert!(observe_run.cycle_id.starts_with("manual-"));
    assert_eq!(observe_run.actionable_items, 1);
    let plan_run = reconcile(&app, pb::ReconcileMode::Plan, "p-1").await.run.unwrap();
    assert_eq!(plan_run.state, "SUCCEEDED", "{}", plan_run.message);
    assert!(!plan_run.plan_id.is_empty() && plan_run.rollout_id.is_empty());
    assert_eq!(std::fs::read(&config).unwrap(), before);
    app.stop().await;
}

#[tokio::test]
async fn heal_rolls_out_only_what_is_confirmed() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_with(AppOptions { clock: Some(clock.clone()), ..AppOptions::default() }).await;
    let mut without_writer = observed(&app).await;
    without_writer.nodes.retain(|n| n.agent_id != "writer");
    without_writer.edges.retain(|e| e.from_agent_id != "writer" && e.to_agent_id != "writer");
    without_writer.routes.retain(|r| r.agent_id != "writer");
    let first = put(&app, without_writer.clone(), "", "desired-1").await.unwrap().desired.unwrap();
    observe(&app, &clock, 0, "o-1").await;
    observe(&app, &clock, 61, "o-2").await;

    // qa is wanted too, but seen missing only once: pending.
    let with_qa = crate::rollout::trio_minus_writer_plus_qa(&observed(&app).await);
    put(&app, with_qa, &first.etag, "desired-2").await.unwrap();
    observe(&app, &clock, 1, "o-3").await;

    let run = reconcile(&app, pb::ReconcileMode::Heal, "c-1").await.run.unwrap();
    assert_eq!(run.state, "SUCCEEDED", "{}", run.message);
    let plan = app
        .drift()
        .await
        .get_patch_plan(with_token(
            pb::GetPatchPlanRequest { runtime: String::new(), plan_id: run.plan_id.clone() },
            READER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert!(plan.operations.iter().any(|op| op == "remove agent writer"), "{:?}", plan.operations);
    assert!(
        !plan.operations.iter().any(|op| op.contains("qa")),
        "pending qa rides along: {:?}",
        plan.operations
    );
    let ids: Vec<String> = observed(&app).await.nodes.into_iter().map(|n| n.agent_id).collect();
    assert_eq!(ids, ["lead", "research"]);

    observe(&app, &clock, 61, "o-4").await;
    let later = reconcile(&app, pb::ReconcileMode::Heal, "c-2").await.run.unwrap();
    assert_eq!(later.state, "SUCCEEDED", "{}", later.message);
    let ids: Vec<String> = observed(&app).await.nodes.into_iter().map(|n| n.agent_id).collect();
    assert_eq!(ids, ["lead", "qa", "research"], "qa once its item is confirmed");
    app.stop().await;
}

//! Fleet rollouts in waves on fixture runtimes: a failure halts the rollout and rolls that
//! runtime back, pause/resume/cancel, and a runtime with a rollout in flight stays registered.

use std::collections::BTreeMap;
use std::time::Duration;

use jhf_warp::pb::v1::{self as pb, FleetRolloutState, FleetTargetState, RolloutState};
use tonic::Code;

use crate::fleet::{config_of, fleet_team, names, observed_in, register, runtimes, runtimes_file, spec};
use crate::helpers::{
    AppOptions, OPERATOR_TOKEN, READER_TOKEN, TestApp, WAIT, consistently, eventually, reason,
    spawn_app_with, with_token,
};
use crate::rollout::trio_minus_writer_plus_qa;

async fn watch_fleet_rollout(app: &TestApp, id: &str) -> pb::FleetRollout {
    let request = pb::WatchFleetRolloutRequest { fleet_rollout_id: id.to_owned() };
    let mut stream =
        app.drift().await.watch_fleet_rollout(with_token(request, READER_TOKEN)).await.unwrap().into_inner();
    let mut last = None;
    while let Some(message) =
        tokio::time::timeout(WAIT, stream.message()).await.expect("the fleet rollout moves").unwrap()
    {
        last = message.fleet_rollout;
    }
    last.expect("at least its state")
}

#[tokio::test]
async fn a_failure_in_the_second_wave_rolls_that_runtime_back_and_the_third_wave_never_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = runtimes_file(
        dir.path(),
        &[
            ("a1", "env: prod"),
            ("b1", "env: prod"),
            ("b2", "env: prod"),
            ("c1", "env: prod"),
            ("s1", "env: staging"),
        ],
    );
    let app = spawn_app_with(AppOptions {
        runtimes_file: Some(file),
        failpoints: vec!["rollout.fail_verification@b2"],
        ..AppOptions::default()
    })
    .await;
    assert_eq!(
        names(&runtimes(&app, "").await),
        ["a1", "b1", "b2", "c1", "s1"],
        "the file's runtimes, no default"
    );
    let team = fleet_team(&app, "a1").await;
    let wave = |names: &[&str]| pb::Wave { runtimes: names.iter().map(|n| (*n).to_owned()).collect() };
    let request = pb::CreateFleetRolloutRequest {
        topology: Some(team),
        selector: "env=prod".to_owned(),
        wave_steps: Vec::new(),
        waves: vec![wave(&["a1"]), wave(&["b1", "b2"]), wave(&["c1"])],
        request_id: "fr-1".to_owned(),
        validate_only: false,
    };
    let created = app
        .drift()
        .await
        .create_fleet_rollout(with_token(request, OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner();
    let id = created.fleet_rollout.unwrap().id;
    let done = watch_fleet_rollout(&app, &id).await;
    assert_eq!(done.state, FleetRolloutState::Failed as i32, "{done:?}");
    let target: BTreeMap<&str, &pb::FleetTarget> =
        done.targets.iter().map(|t| (t.runtime.as_str(), t)).collect();
    assert_eq!(target["a1"].state, FleetTargetState::Succeeded as i32);
    assert_eq!(target["b1"].state, FleetTargetState::Succeeded as i32);
    assert_eq!(target["b2"].state, FleetTargetState::Failed as i32);
    assert!(target["b2"].restored, "b2's previous desired team is back");
    assert_eq!(target["c1"].state, FleetTargetState::Skipped as i32);
    assert!(target["c1"].rollout_id.is_empty(), "the third wave never started");
    assert!(!target.contains_key("s1"), "staging is not selected");
    assert!(done.error.contains("wave 2 of 3: runtime b2 failed"), "{}", done.error);
    assert!(config_of(&app, "a1").contains("\"qa\"") && config_of(&app, "b1").contains("\"qa\""));
    assert!(!config_of(&app, "b2").contains("\"qa\""), "b2 rolled back");
    assert!(!config_of(&app, "c1").contains("\"qa\""), "c1 untouched");
    let b2 = pb::GetRolloutRequest { runtime: "b2".to_owned(), rollout_id: target["b2"].rollout_id.clone() };
    let b2 = app
        .drift()
        .await
        .get_rollout(with_token(b2, READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .rollout
        .unwrap();
    assert_eq!(b2.state, RolloutState::RolledBack as i32, "{b2:?}");
    // Nothing heals b2 toward the failed team: its desired topology is its observed team again.
    let desired = pb::GetDesiredTopologyRequest { runtime: "b2".to_owned(), generation: 0 };
    let desired = app
        .topology()
        .await
        .get_desired_topology(with_token(desired, READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert!(!desired.desired.unwrap().topology.unwrap().nodes.iter().any(|n| n.agent_id == "qa"));
    let verify = app
        .control()
        .await
        .verify_audit_chain(with_token(pb::VerifyAuditChainRequest {}, READER_TOKEN))
        .await
        .unwrap();
    assert!(verify.into_inner().intact);
    app.stop().await;
}

#[tokio::test]
async fn a_paused_fleet_rollout_starts_no_wave_until_resumed_and_a_cancelled_one_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = runtimes_file(dir.path(), &[("a", "env: prod"), ("b", "env: prod"), ("c", "env: prod")]);
    let app = spawn_app_with(AppOptions { runtimes_file: Some(file), ..AppOptions::default() }).await;
    let team = fleet_team(&app, "a").await;
    let create = |request_id: &str, steps: &[&str]| pb::CreateFleetRolloutRequest {
        topology: Some(team.clone()),
        selector: String::new(),
        wave_steps: steps.iter().map(|s| (*s).to_owned()).collect(),
        waves: Vec::new(),
        request_id: request_id.to_owned(),
        validate_only: false,
    };
    let created = app
        .drift()
        .await
        .create_fleet_rollout(with_token(create("fr-p", &["1", "2"]), OPERATOR_TOKEN))
        .await
        .unwrap();
    let rollout = created.into_inner().fleet_rollout.unwrap();
    assert_eq!((rollout.waves, rollout.targets.len()), (3, 3), "one, then one more, then the rest");
    let pause =
        pb::PauseFleetRolloutRequest { fleet_rollout_id: rollout.id.clone(), request_id: "p-1".to_owned() };
    app.drift().await.pause_fleet_rollout(with_token(pause, OPERATOR_TOKEN)).await.unwrap();
    let get = || pb::GetFleetRolloutRequest { fleet_rollout_id: rollout.id.clone() };
    let current = async || {
        app.drift()
            .await
            .get_fleet_rollout(with_token(get(), READER_TOKEN))
            .await
            .unwrap()
            .into_inner()
            .fleet_rollout
            .unwrap()
    };
    consistently("no second wave while paused", Duration::from_secs(2), async || {
        let now = current().await;
        now.targets.iter().filter(|t| t.wave > 0).all(|t| t.state == FleetTargetState::Waiting as i32)
    })
    .await;
    let resume =
        pb::ResumeFleetRolloutRequest { fleet_rollout_id: rollout.id.clone(), request_id: "r-1".to_owned() };
    app.drift().await.resume_fleet_rollout(with_token(resume, OPERATOR_TOKEN)).await.unwrap();
    let done = watch_fleet_rollout(&app, &rollout.id).await;
    assert_eq!(done.state, FleetRolloutState::Succeeded as i32, "{done:?}");

    // A cancelled one: what has not started is skipped, and it ends CANCELLED.
    let mut back = observed_in(&app, "a").await;
    for node in &mut back.nodes {
        node.workspace.clear();
    }
    let undo = pb::CreateFleetRolloutRequest { topology: Some(back), ..create("fr-c", &["1"]) };
    let second = app
        .drift()
        .await
        .create_fleet_rollout(with_token(undo, OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .fleet_rollout
        .unwrap();
    let cancel =
        pb::CancelFleetRolloutRequest { fleet_rollout_id: second.id.clone(), request_id: "c-1".to_owned() };
    app.drift().await.cancel_fleet_rollout(with_token(cancel, OPERATOR_TOKEN)).await.unwrap();
    let ended = watch_fleet_rollout(&app, &second.id).await;
    assert_eq!(ended.state, FleetRolloutState::Cancelled as i32, "{ended:?}");
    assert!(
        ended.targets.iter().filter(|t| t.wave > 0).all(|t| t.state == FleetTargetState::Skipped as i32),
        "{ended:?}"
    );
    let cancel_again =
        pb::CancelFleetRolloutRequest { fleet_rollout_id: second.id.clone(), request_id: "c-2".to_owned() };
    let refused =
        app.drift().await.cancel_fleet_rollout(with_token(cancel_again, OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    app.stop().await;
}

#[tokio::test]
async fn a_runtime_with_a_rollout_in_flight_cannot_be_deregistered() {
    let app = spawn_app_with(AppOptions {
        failpoints: vec![jhf_warp::control::failpoints::STOP_AFTER_APPLY],
        ..AppOptions::default()
    })
    .await;
    register(&app, spec("blue", "fixture:trio", &[]), "r-blue").await.unwrap();
    let team = trio_minus_writer_plus_qa(&observed_in(&app, "blue").await);
    let put = pb::PutDesiredTopologyRequest {
        runtime: "blue".to_owned(),
        topology: Some(team),
        etag: String::new(),
        request_id: "p-1".to_owned(),
        validate_only: false,
    };
    app.topology().await.put_desired_topology(with_token(put, OPERATOR_TOKEN)).await.unwrap();
    let plan = pb::PlanPatchRequest { runtime: "blue".to_owned(), kind: pb::PlanKind::Apply.into() };
    let plan = app
        .drift()
        .await
        .plan_patch(with_token(plan, READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    let create = pb::CreateRolloutRequest {
        runtime: "blue".to_owned(),
        plan_id: plan.id,
        dry_run: false,
        request_id: "c-1".to_owned(),
        validate_only: false,
    };
    let rollout = app
        .drift()
        .await
        .create_rollout(with_token(create, OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .rollout
        .unwrap();
    eventually("the rollout to stop after its write", async || {
        let request = pb::GetRolloutRequest { runtime: String::new(), rollout_id: rollout.id.clone() };
        let got = app
            .drift()
            .await
            .get_rollout(with_token(request, READER_TOKEN))
            .await
            .unwrap()
            .into_inner()
            .rollout
            .unwrap();
        (got.state == RolloutState::Applying as i32).then_some(())
    })
    .await;
    let gone = pb::DeregisterRuntimeRequest {
        name: "blue".to_owned(),
        request_id: "d-1".to_owned(),
        validate_only: false,
    };
    let refused = app.control().await.deregister_runtime(with_token(gone, OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::FailedPrecondition, "ROLLOUT_IN_FLIGHT"));
    assert_eq!(names(&runtimes(&app, "").await), ["blue", "default"]);
    app.stop().await;
}

//! The watchdog: non-destructive, deduplicated, acknowledgeable observations.

use jhf_warp::pb::v1 as pb;
use tonic::Code;

use crate::helpers::{
    AppOptions, OPERATOR_TOKEN, READER_TOKEN, TestApp, spawn_app, spawn_app_with, with_token,
};

async fn observations(app: &TestApp, include_cleared: bool) -> Vec<pb::WatchdogObservation> {
    let request = with_token(
        pb::ListWatchdogObservationsRequest { runtime: String::new(), include_cleared },
        READER_TOKEN,
    );
    app.control().await.list_watchdog_observations(request).await.unwrap().into_inner().observations
}

#[tokio::test]
async fn an_expired_unreleased_lease_is_observed_once_acknowledged_and_cleared() {
    let app = spawn_app().await;
    let acquire =
        pb::AcquireLeaseRequest { name: "agent/lead".into(), holder: "lead".into(), duration_seconds: 10 };
    let lease = app
        .control()
        .await
        .acquire_lease(with_token(acquire, &crate::helpers::agent_token("lead")))
        .await
        .unwrap()
        .into_inner()
        .lease
        .unwrap();
    assert!(observations(&app, false).await.iter().all(|o| o.kind != "expired_lease"));
    app.advance_db_clock(11);
    for _ in 0..2 {
        let open: Vec<_> =
            observations(&app, false).await.into_iter().filter(|o| o.kind == "expired_lease").collect();
        assert_eq!(open.len(), 1, "deduplicated by key");
        assert_eq!(open[0].key, "expired_lease/agent/lead");
        assert_eq!(open[0].evidence["holder"], "lead");
    }
    let ack = pb::AcknowledgeObservationRequest {
        runtime: String::new(),
        key: "expired_lease/agent/lead".into(),
        request_id: "ack-1".into(),
        validate_only: false,
    };
    let acknowledged = app
        .control()
        .await
        .acknowledge_observation(with_token(ack, OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acknowledged.observation.unwrap().acknowledged_by, "op");

    let release = pb::ReleaseLeaseRequest {
        name: "agent/lead".into(),
        holder: "lead".into(),
        fencing_token: lease.fencing_token,
    };
    app.control()
        .await
        .release_lease(with_token(release, &crate::helpers::agent_token("lead")))
        .await
        .unwrap();
    assert!(observations(&app, false).await.iter().all(|o| o.kind != "expired_lease"));
    let cleared: Vec<_> =
        observations(&app, true).await.into_iter().filter(|o| o.kind == "expired_lease").collect();
    assert!(cleared[0].clear_time.is_some());
    let gone = pb::AcknowledgeObservationRequest {
        runtime: String::new(),
        key: "expired_lease/agent/lead".into(),
        request_id: "ack-2".into(),
        validate_only: false,
    };
    let err =
        app.control().await.acknowledge_observation(with_token(gone, OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "only open observations can be acknowledged");
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_config_and_an_unreachable_runtime_are_observed_without_touching_the_runtime() {
    let app = spawn_app_with(AppOptions { fixture: "drifted", ..AppOptions::default() }).await;
    let config = app.runtime_state_dir("drifted").join("openclaw.json");
    let before = std::fs::read(&config).unwrap();
    let kinds: Vec<String> = observations(&app, false).await.into_iter().map(|o| o.kind).collect();
    assert!(kinds.contains(&"config_invalid".to_owned()), "{kinds:?}");

    std::fs::rename(&config, config.with_extension("moved")).unwrap();
    let read = with_token(pb::GetTopologyRequest::default(), READER_TOKEN);
    assert_eq!(app.topology().await.get_topology(read).await.unwrap_err().code(), Code::Unavailable);
    let unreachable: Vec<_> =
        observations(&app, false).await.into_iter().filter(|o| o.kind == "runtime_unreachable").collect();
    assert_eq!(unreachable.len(), 1);
    assert!(unreachable[0].evidence["error"].contains("cannot read"), "{:?}", unreachable[0].evidence);
    std::fs::rename(config.with_extension("moved"), &config).unwrap();
    assert_eq!(std::fs::read(&config).unwrap(), before, "the watchdog never changes the runtime");
    app.stop().await;
}

/// A schedule that no replica runs (no leader) becomes overdue: the watchdog reports it, the
/// `reconcile` health service turns NOT_SERVING while `""` keeps serving, and pausing clears it.
#[tokio::test]
async fn a_stalled_reconcile_loop_is_observed_and_turns_the_reconcile_health_not_serving() {
    use std::sync::Arc;

    use chrono::{TimeDelta, Utc};
    use jhf_warp::control::clock::ManualClock;
    use tonic_health::pb::health_check_response::ServingStatus;

    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_with(AppOptions {
        clock: Some(clock.clone()),
        stalled_schedule: true,
        ..AppOptions::default()
    })
    .await;
    assert!(observations(&app, false).await.iter().all(|o| o.kind != "reconcile_overdue"));
    app.wait_for_service_health("reconcile", ServingStatus::Serving).await;

    // Defaults: every 60 s, lease 15 s → overdue after 2 × 60 + 15 s without a scheduled start.
    clock.advance(TimeDelta::seconds(136));
    let open: Vec<_> =
        observations(&app, false).await.into_iter().filter(|o| o.kind == "reconcile_overdue").collect();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].evidence["last_scheduled_start"], "never");
    app.wait_for_service_health("reconcile", ServingStatus::NotServing).await;
    // A stalled loop does not take the API down.
    app.wait_for_service_health("", ServingStatus::Serving).await;
    let readiness = app.meta().await.get_readiness(pb::GetReadinessRequest {}).await.unwrap().into_inner();
    let reconcile = readiness.components.iter().find(|c| c.name == "reconcile").unwrap();
    assert!(!reconcile.ready && reconcile.detail.contains("overdue"), "{reconcile:?}");

    let mut control = app.control().await;
    let current = control
        .get_schedule(with_token(pb::GetScheduleRequest { runtime: String::new() }, READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .schedule
        .unwrap();
    let paused = pb::UpdateScheduleRequest {
        runtime: String::new(),
        schedule: Some(pb::Schedule { paused: true, ..current.clone() }),
        etag: current.etag,
        request_id: "pause-1".into(),
        validate_only: false,
    };
    control.update_schedule(with_token(paused, OPERATOR_TOKEN)).await.unwrap();
    assert!(observations(&app, false).await.iter().all(|o| o.kind != "reconcile_overdue"));
    app.wait_for_service_health("reconcile", ServingStatus::Serving).await;
    app.stop().await;
}

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::{AppOptions, WAIT, spawn_app, spawn_app_unready};

#[tokio::test]
async fn health_is_not_serving_until_the_runtime_answered_once() {
    // The fixture copy exists but its config is missing, so the first reads fail.
    let app = spawn_app_unready(AppOptions::default(), |data_dir| {
        let state = data_dir.join("runtime/trio/state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(data_dir.join("runtime/trio/cli")).unwrap();
    })
    .await;
    let mut health = app.health().await;
    let check = |service: &str| HealthCheckRequest { service: service.to_owned() };
    let status = health.check(check("")).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::NotServing as i32);
    let ready = reqwest::get(app.http_url("/ready")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["components"][1]["name"], "runtime");
    assert_eq!(body["components"][1]["ready"], false);

    let config =
        std::fs::read_to_string(crate::helpers::fixtures_dir().join("trio/state/openclaw.json")).unwrap();
    std::fs::write(app.runtime_state_dir("trio").join("openclaw.json"), config).unwrap();
    app.wait_for_health(ServingStatus::Serving).await;
    for service in ["jhf.warp.v1.TopologyService", "jhf.warp.v1.MetaService"] {
        let status = health.check(check(service)).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }
    app.stop().await;
}

#[tokio::test]
async fn health_turns_not_serving_as_soon_as_shutdown_begins() {
    let mut app = spawn_app().await;
    let mut watch =
        app.health().await.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    app.begin_shutdown();
    let next = tokio::time::timeout(WAIT, watch.message()).await.expect("a status change arrives");
    if let Ok(Some(change)) = next {
        assert_eq!(change.status, ServingStatus::NotServing as i32);
    }
    // Either NOT_SERVING arrived or the stream was closed by the drain; the server must stop.
    tokio::time::timeout(Duration::from_secs(5), app.stop()).await.expect("stops within 5 s");
}

#[tokio::test]
async fn unknown_health_service_is_reported_not_found() {
    let app = spawn_app().await;
    let err = app
        .health()
        .await
        .check(HealthCheckRequest { service: "no.such.Service".to_owned() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    app.stop().await;
}

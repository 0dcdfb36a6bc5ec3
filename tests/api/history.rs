use jhf_warp::pb::v1::{GetTopologyRequest, ListObservationsRequest, ObservationInfo};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{AppOptions, READER_TOKEN, TestApp, spawn_app, spawn_app_with, with_token};

async fn observe(app: &TestApp) -> ObservationInfo {
    let mut client = app.topology().await;
    let answer = client
        .get_topology(with_token(GetTopologyRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    answer.observation.unwrap()
}

async fn list(
    app: &TestApp,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<ObservationInfo>, String), tonic::Status> {
    let mut client = app.topology().await;
    let request =
        ListObservationsRequest { runtime: String::new(), page_size, page_token: page_token.to_owned() };
    let page = client.list_observations(with_token(request, READER_TOKEN)).await?.into_inner();
    Ok((page.observations, page.next_page_token))
}

/// Rewrites the fixture copy's config so the next observation differs.
fn edit_config(app: &TestApp, from: &str, to: &str) {
    let path = app.runtime_state_dir("trio").join("openclaw.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "fixture text {from:?} not found");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[tokio::test]
async fn identical_observations_fold_into_one_record() {
    let app = spawn_app().await;
    let first = observe(&app).await;
    let second = observe(&app).await;
    assert_eq!(first.id, second.id);
    assert!(second.seen_count > first.seen_count);
    let (records, next) = list(&app, 0, "").await.unwrap();
    assert_eq!(records.len(), 1);
    assert!(next.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn restart_keeps_the_stored_observation_history() {
    let app = spawn_app().await;
    let before = observe(&app).await;
    edit_config(&app, r#"name: "Writer""#, r#"name: "Author""#);
    let after = observe(&app).await;
    assert_ne!(before.id, after.id);
    assert_ne!(before.revision, after.revision);
    assert_eq!(before.config_hash.len(), 64);
    assert_ne!(before.config_hash, after.config_hash);
    let options = app.restart_options("trio");
    let temp = app.stop().await;

    let restarted = spawn_app_with(options).await;
    let (records, _) = list(&restarted, 0, "").await.unwrap();
    let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
    assert!(ids.starts_with(&[after.id, before.id]), "newest first, history kept: {ids:?}");
    restarted.stop().await;
    drop(temp);
}

#[tokio::test]
async fn history_is_bounded_and_paged_with_tamper_evident_tokens() {
    let app = spawn_app_with(AppOptions { observation_history: 3, ..AppOptions::default() }).await;
    for name in ["W1", "W2", "W3", "W4"] {
        let current = std::fs::read_to_string(app.runtime_state_dir("trio").join("openclaw.json")).unwrap();
        let writer_name =
            current.split("name: \"").nth(3).and_then(|rest| rest.split('"').next()).unwrap().to_owned();
        edit_config(&app, &format!("name: \"{writer_name}\""), &format!("name: \"{name}\""));
        observe(&app).await;
    }
    let (all, _) = list(&app, 0, "").await.unwrap();
    assert_eq!(all.len(), 3, "older observations are pruned");

    let (page1, token) = list(&app, 2, "").await.unwrap();
    assert_eq!(page1.len(), 2);
    assert!(!token.is_empty());
    let (page2, end) = list(&app, 2, &token).await.unwrap();
    assert_eq!(page2.len(), 1);
    assert!(end.is_empty(), "the last page has no next token");
    assert!(page1[1].id > page2[0].id);

    let mut forged = token.clone();
    forged.replace_range(0..1, if forged.starts_with('A') { "B" } else { "A" });
    let err = list(&app, 2, &forged).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let violations = err.get_error_details().bad_request().cloned().unwrap().field_violations;
    assert_eq!(violations[0].field, "page_token");

    let err = list(&app, -1, "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn the_observation_loop_picks_up_runtime_changes_by_itself() {
    let app = spawn_app_with(AppOptions { observe_interval_secs: 1, ..AppOptions::default() }).await;
    edit_config(&app, r#"name: "Writer""#, r#"name: "Author""#);
    crate::helpers::eventually("the loop to observe the change", async || {
        (list(&app, 0, "").await.unwrap().0.len() >= 2).then_some(())
    })
    .await;
    app.stop().await;
}

//! Drift tracking end to end, with a manual clock so confirmation windows need no sleeps.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use jhf_warp::control::clock::ManualClock;
use jhf_warp::pb::v1::{self as pb, DriftState};
use tonic::Code;

use crate::desired::{observed, put};
use crate::helpers::{AppOptions, OPERATOR_TOKEN, READER_TOKEN, TestApp, WAIT, spawn_app_with, with_token};

struct Scenario {
    app: TestApp,
    clock: Arc<ManualClock>,
    requests: u32,
}

impl Scenario {
    /// Starts on `trio` and stores its observed graph as the desired topology.
    async fn in_sync() -> Self {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let app = spawn_app_with(AppOptions { clock: Some(clock.clone()), ..AppOptions::default() }).await;
        put(&app, observed(&app).await, "", "desired-1").await.unwrap();
        Self { app, clock, requests: 0 }
    }

    async fn observe_after(&mut self, seconds: i64) -> pb::ObserveNowResponse {
        self.clock.advance(TimeDelta::seconds(seconds));
        self.requests += 1;
        let request = pb::ObserveNowRequest {
            runtime: String::new(),
            request_id: format!("observe-{}", self.requests),
            validate_only: false,
        };
        self.app.drift().await.observe_now(with_token(request, OPERATOR_TOKEN)).await.unwrap().into_inner()
    }

    async fn item(&self, key: &str) -> pb::DriftItem {
        let request =
            with_token(pb::GetDriftItemRequest { runtime: String::new(), key: key.to_owned() }, READER_TOKEN);
        self.app.drift().await.get_drift_item(request).await.unwrap().into_inner().item.unwrap()
    }

    async fn items(&self, filter: &str) -> Vec<pb::DriftItem> {
        let request = pb::ListDriftItemsRequest {
            runtime: String::new(),
            page_size: 0,
            page_token: String::new(),
            filter: filter.to_owned(),
        };
        self.app
            .drift()
            .await
            .list_drift_items(with_token(request, READER_TOKEN))
            .await
            .unwrap()
            .into_inner()
            .items
    }

    async fn summary(&self) -> pb::GetDriftSummaryResponse {
        let request = with_token(pb::GetDriftSummaryRequest { runtime: String::new() }, READER_TOKEN);
        self.app.drift().await.get_drift_summary(request).await.unwrap().into_inner()
    }

    fn remove_writer(&self) {
        self.app.edit_runtime_config("trio", remove_writer);
    }

    fn restore_config(&self) {
        let original =
            std::fs::read_to_string(crate::helpers::fixtures_dir().join("trio/state/openclaw.json")).unwrap();
        self.app.edit_runtime_config("trio", |_| original);
    }
}

/// The trio config without the writer agent, as `openclaw agents delete writer` leaves it.
pub(crate) fn remove_writer(text: String) -> String {
    let start = text.find("      writer: {").expect("writer entry");
    let end = start + text[start..].find("      },\n").expect("end of writer entry") + "      },\n".len();
    let mut text = format!("{}{}", &text[..start], &text[end..]);
    text = text.replace(r#"allow: ["lead", "research", "writer"]"#, r#"allow: ["lead", "research"]"#);
    text = text.replace(r#"allowAgents: ["research", "writer"]"#, r#"allowAgents: ["research"]"#);
    text.lines()
        .filter(|line| !line.contains(r#"agentId: "writer""#))
        .map(|line| format!("{line}\n"))
        .collect()
}

fn count(counts: &[pb::DriftCount], name: &str) -> i32 {
    counts.iter().find(|c| c.name == name).map(|c| c.count).unwrap_or(0)
}

#[tokio::test]
async fn a_desired_topology_equal_to_the_observed_trio_is_in_sync_with_zero_items() {
    let mut scenario = Scenario::in_sync().await;
    let answer = scenario.observe_after(1).await;
    let summary = answer.summary.unwrap();
    assert!(summary.in_sync, "{summary:?}");
    assert_eq!(summary.desired_generation, 1);
    assert_eq!(summary.desired_revision, summary.observed_revision);
    assert!(scenario.items("").await.is_empty());
    assert_eq!(count(&scenario.summary().await.by_state, "DRIFT_STATE_PENDING"), 0);
    scenario.app.stop().await;
}

#[tokio::test]
async fn a_removed_agent_is_confirmed_after_two_observations_across_the_window_and_survives_a_restart() {
    let mut scenario = Scenario::in_sync().await;
    scenario.remove_writer();
    scenario.observe_after(1).await;
    let keys: Vec<String> = scenario.items("").await.into_iter().map(|i| i.key).collect();
    assert_eq!(keys, ["AGENT_MISSING/writer"], "edges and routes of the missing agent are folded in");
    assert_eq!(scenario.item("AGENT_MISSING/writer").await.state, DriftState::Pending as i32);

    scenario.observe_after(30).await;
    assert_eq!(
        scenario.item("AGENT_MISSING/writer").await.state,
        DriftState::Pending as i32,
        "inside the window"
    );
    let answer = scenario.observe_after(31).await;
    assert_eq!(scenario.item("AGENT_MISSING/writer").await.state, DriftState::Confirmed as i32);
    assert_eq!(answer.transitioned.len(), 1);
    let summary = answer.summary.unwrap();
    assert!(!summary.in_sync);
    assert_eq!(summary.needs_attention, 1);
    assert_eq!(count(&summary.by_severity, "SEVERITY_ERROR"), 1);
    assert_eq!(scenario.items("state = CONFIRMED AND kind = AGENT_MISSING").await.len(), 1);
    assert!(scenario.items("state = PENDING").await.is_empty());

    let options = AppOptions { clock: Some(scenario.clock.clone()), ..scenario.app.restart_options("trio") };
    let temp = scenario.app.stop().await;
    let restarted = spawn_app_with(options).await;
    let request = with_token(
        pb::GetDriftItemRequest { runtime: String::new(), key: "AGENT_MISSING/writer".to_owned() },
        READER_TOKEN,
    );
    let item = restarted.drift().await.get_drift_item(request).await.unwrap().into_inner().item.unwrap();
    assert_eq!(item.state, DriftState::Confirmed as i32, "a restart keeps the confirmation");
    restarted.stop().await;
    drop(temp);
}

#[tokio::test]
async fn an_extra_agent_allowed_to_message_others_is_unexpected_with_critical_edges() {
    let mut scenario = Scenario::in_sync().await;
    scenario.app.edit_runtime_config("trio", |text| {
        text.replace("    entries: {\n", "    entries: {\n      scout: { name: \"Scout\" },\n").replace(
            r#"allow: ["lead", "research", "writer"]"#,
            r#"allow: ["lead", "research", "writer", "scout"]"#,
        )
    });
    scenario.observe_after(1).await;
    let items = scenario.items("").await;
    let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
    assert!(keys.contains(&"AGENT_UNEXPECTED/scout"), "{keys:?}");
    assert!(keys.contains(&"EDGE_UNEXPECTED/scout->lead:SEND"), "{keys:?}");
    assert!(keys.contains(&"EDGE_UNEXPECTED/lead->scout:SEND"), "{keys:?}");
    let critical = scenario.items("kind = EDGE_UNEXPECTED AND severity = CRITICAL").await;
    assert_eq!(critical.len(), 6, "scout ↔ each of three agents");
    scenario.app.stop().await;
}

#[tokio::test]
async fn toggling_a_change_on_and_off_inside_the_window_flaps_instead_of_confirming() {
    let mut scenario = Scenario::in_sync().await;
    for _ in 0..4 {
        scenario.remove_writer();
        scenario.observe_after(20).await;
        scenario.restore_config();
        scenario.observe_after(20).await;
        scenario.observe_after(20).await;
    }
    scenario.remove_writer();
    scenario.observe_after(20).await;
    scenario.observe_after(61).await;
    let item = scenario.item("AGENT_MISSING/writer").await;
    assert_eq!(item.state, DriftState::Flapping as i32, "{item:?}");
    assert!(item.recent_reopenings >= 3);
    scenario.app.stop().await;
}

#[tokio::test]
async fn an_acknowledged_item_stops_needing_attention() {
    let mut scenario = Scenario::in_sync().await;
    scenario.remove_writer();
    scenario.observe_after(1).await;
    scenario.observe_after(61).await;
    assert_eq!(scenario.summary().await.needs_attention, 1);
    let ack = |request_id: &str| pb::AcknowledgeDriftItemRequest {
        runtime: String::new(),
        key: "AGENT_MISSING/writer".to_owned(),
        request_id: request_id.to_owned(),
        validate_only: false,
    };
    let item = scenario
        .app
        .drift()
        .await
        .acknowledge_drift_item(with_token(ack("ack-1"), OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner();
    let item = item.item.unwrap();
    assert!(item.acknowledged);
    assert_eq!(item.acknowledged_by, "op");
    assert_eq!(scenario.summary().await.needs_attention, 0);
    // Retrying is harmless; an unknown item is NOT_FOUND; readers may not acknowledge.
    scenario
        .app
        .drift()
        .await
        .acknowledge_drift_item(with_token(ack("ack-1"), OPERATOR_TOKEN))
        .await
        .unwrap();
    let unknown = pb::AcknowledgeDriftItemRequest { key: "AGENT_MISSING/ghost".to_owned(), ..ack("ack-2") };
    let err = scenario
        .app
        .drift()
        .await
        .acknowledge_drift_item(with_token(unknown, OPERATOR_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = scenario
        .app
        .drift()
        .await
        .acknowledge_drift_item(with_token(ack("ack-3"), READER_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    scenario.app.stop().await;
}

#[tokio::test]
async fn observe_now_replays_for_a_retried_request_id_and_validate_only_stores_nothing() {
    let mut scenario = Scenario::in_sync().await;
    scenario.remove_writer();
    let first = scenario.observe_after(1).await;
    let retry = pb::ObserveNowRequest {
        runtime: String::new(),
        request_id: "observe-1".to_owned(),
        validate_only: false,
    };
    let replayed =
        scenario.app.drift().await.observe_now(with_token(retry, OPERATOR_TOKEN)).await.unwrap().into_inner();
    assert_eq!(replayed, first);
    assert_eq!(
        scenario.item("AGENT_MISSING/writer").await.consecutive_present,
        1,
        "the retry did not observe again"
    );

    scenario.clock.advance(TimeDelta::seconds(61));
    let dry =
        pb::ObserveNowRequest { runtime: String::new(), request_id: "dry-1".to_owned(), validate_only: true };
    let preview =
        scenario.app.drift().await.observe_now(with_token(dry, OPERATOR_TOKEN)).await.unwrap().into_inner();
    assert_eq!(
        preview.transitioned[0].state,
        DriftState::Confirmed as i32,
        "the preview shows the confirmation"
    );
    assert_eq!(
        scenario.item("AGENT_MISSING/writer").await.state,
        DriftState::Pending as i32,
        "but stores nothing"
    );
    scenario.app.stop().await;
}

#[tokio::test]
async fn a_bad_filter_or_page_token_is_invalid_argument() {
    let scenario = Scenario::in_sync().await;
    let request = pb::ListDriftItemsRequest { filter: "colour = RED".to_owned(), ..Default::default() };
    let err =
        scenario.app.drift().await.list_drift_items(with_token(request, READER_TOKEN)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let request = pb::ListDriftItemsRequest { page_token: "forged.00".to_owned(), ..Default::default() };
    let err =
        scenario.app.drift().await.list_drift_items(with_token(request, READER_TOKEN)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    scenario.app.stop().await;
}

#[tokio::test]
async fn a_watcher_receives_the_transitions_in_order() {
    let mut scenario = Scenario::in_sync().await;
    let request = with_token(pb::WatchDriftRequest { runtime: String::new() }, READER_TOKEN);
    let mut stream = scenario.app.drift().await.watch_drift(request).await.unwrap().into_inner();
    scenario.remove_writer();
    scenario.observe_after(1).await;
    scenario.observe_after(61).await;
    scenario.restore_config();
    scenario.observe_after(10).await;
    scenario.observe_after(10).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(WAIT, stream.message()).await.unwrap().unwrap().unwrap();
        assert!(!event.initial);
        let item = event.item.unwrap();
        assert_eq!(item.key, "AGENT_MISSING/writer");
        seen.push((event.previous_state, item.state));
    }
    assert_eq!(
        seen,
        [
            (DriftState::Unspecified as i32, DriftState::Pending as i32),
            (DriftState::Pending as i32, DriftState::Confirmed as i32),
            (DriftState::Confirmed as i32, DriftState::Resolved as i32),
        ]
    );
    scenario.app.stop().await;
}

#[tokio::test]
async fn a_new_watcher_first_receives_the_open_items() {
    let mut scenario = Scenario::in_sync().await;
    scenario.remove_writer();
    scenario.observe_after(1).await;
    let request = with_token(pb::WatchDriftRequest { runtime: String::new() }, READER_TOKEN);
    let mut stream = scenario.app.drift().await.watch_drift(request).await.unwrap().into_inner();
    let event = tokio::time::timeout(WAIT, stream.message()).await.unwrap().unwrap().unwrap();
    assert!(event.initial);
    assert_eq!(event.item.unwrap().key, "AGENT_MISSING/writer");
    scenario.app.stop().await;
}

impl Scenario {
    /// A burst of reads that are not observations: FRESH topology and inventory reads and
    /// patch plans, as dashboards and planners cause.
    async fn burst_of_reads(&self, rounds: usize) {
        for _ in 0..rounds {
            let fresh =
                pb::GetTopologyRequest { runtime: String::new(), read_mode: pb::ReadMode::Fresh.into() };
            self.app.topology().await.get_topology(with_token(fresh, READER_TOKEN)).await.unwrap();
            let inventory =
                pb::GetInventoryRequest { runtime: String::new(), read_mode: pb::ReadMode::Fresh.into() };
            self.app.topology().await.get_inventory(with_token(inventory, READER_TOKEN)).await.unwrap();
            crate::rollout::plan(&self.app, pb::PlanKind::Repair).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_burst_of_reads_neither_confirms_nor_resolves_and_counts_once_per_observe_interval() {
    let mut scenario = Scenario::in_sync().await;
    scenario.remove_writer();
    scenario.observe_after(1).await;
    // 61 s later, two observations would confirm the item; thirty reads are not observations.
    scenario.clock.advance(TimeDelta::seconds(61));
    scenario.burst_of_reads(10).await;
    assert_eq!(scenario.item("AGENT_MISSING/writer").await.state, DriftState::Pending as i32);

    // Confirmed by a second observation; the runtime is fixed, then read thirty more times.
    scenario.observe_after(1).await;
    assert_eq!(scenario.item("AGENT_MISSING/writer").await.state, DriftState::Confirmed as i32);
    scenario.restore_config();
    scenario.burst_of_reads(10).await;
    assert_eq!(
        scenario.item("AGENT_MISSING/writer").await.state,
        DriftState::Confirmed as i32,
        "not resolved"
    );

    // Once an observe interval (an hour in tests) passed without an observation, one read
    // counts — and only one: two absences would resolve the item.
    scenario.clock.advance(TimeDelta::seconds(3601));
    scenario.burst_of_reads(10).await;
    let item = scenario.item("AGENT_MISSING/writer").await;
    assert_eq!(item.state, DriftState::Confirmed as i32, "one absence so far: {item:?}");
    scenario.observe_after(1).await;
    let resolved = scenario.items("").await;
    assert!(
        resolved.iter().all(|i| i.key != "AGENT_MISSING/writer" || i.state == DriftState::Resolved as i32),
        "{resolved:?}"
    );
    scenario.app.stop().await;
}

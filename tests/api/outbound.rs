//! Outbound events end to end: a real HTTP receiver in the test that fails and delays at
//! random, three sinks with filters, a restart of the service in the middle, a dead-lettering
//! sink and a redelivery. Every event arrives, in order per sink, with a valid signature.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use chrono::{TimeDelta, Utc};
use jhf_warp::control::clock::ManualClock;
use jhf_warp::pb::v1::{self as pb, DeliveryState, DriftState};
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::desired::{observed, put};
use crate::helpers::{
    AppOptions, OPERATOR_TOKEN, READER_TOKEN, TestApp, eventually_within, spawn_app_with, with_token,
};

const SECRET: &[u8] = b"outbound-test-secret-0123456789";

/// How the receiver answered one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Accepted,
    Failed,
    /// Answered only after the sender's attempt timeout: the sender saw no answer.
    TooLate,
}

#[derive(Debug, Clone)]
struct Arrival {
    sink: String,
    ce_id: String,
    sequence: i64,
    event_type: String,
    signature_ok: bool,
    structured: bool,
    answer: Answer,
}

struct ReceiverState {
    arrivals: Mutex<Vec<Arrival>>,
    /// xorshift state, seeded the same on every run. The sinks' requests draw from it in the
    /// order they arrive, which varies between runs, so which request fails varies too; the
    /// rates do not (20 % answered 500, 8 % answered after the sender gave up).
    rng: Mutex<u64>,
    /// The `dead` sink answers 500 until this is set.
    dead_sink_healthy: AtomicBool,
    /// While set, sink `all` answers only after the sender gave up (it sees no answer).
    stalled: AtomicBool,
}

impl ReceiverState {
    fn roll(&self) -> u64 {
        let mut state = self.rng.lock().unwrap();
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state % 100
    }
}

fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).chain(body.iter().copied()).collect();
    let inner = Sha256::digest(&inner);
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).chain(inner.iter().copied()).collect();
    hex::encode(Sha256::digest(&outer))
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let sink = uri.path().trim_start_matches('/').to_owned();
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let signature = headers.get("x-jhf-warp-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let header_id = headers.get("ce-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    let roll = state.roll();
    let sink_is_dead = sink == "dead";
    let answer = if sink == "dead" && !state.dead_sink_healthy.load(Ordering::SeqCst) {
        Answer::Failed
    } else if sink == "dead" {
        Answer::Accepted
    } else if sink == "all" && state.stalled.load(Ordering::SeqCst) {
        Answer::TooLate
    } else if roll < 20 {
        Answer::Failed
    } else if roll < 28 {
        Answer::TooLate
    } else {
        Answer::Accepted
    };
    state.arrivals.lock().unwrap().push(Arrival {
        sink,
        ce_id: event["id"].as_str().unwrap_or("").to_owned(),
        sequence: event["sequence"].as_str().and_then(|s| s.parse().ok()).unwrap_or(-1),
        event_type: event["type"].as_str().unwrap_or("").to_owned(),
        signature_ok: signature == format!("sha256={}", hmac_sha256_hex(SECRET, &body)),
        structured: content_type.starts_with("application/cloudevents+json")
            && event["specversion"] == "1.0"
            && event["source"] == "/jhf-warp"
            && event["id"] == header_id,
        answer,
    });
    match answer {
        Answer::Accepted => StatusCode::NO_CONTENT,
        Answer::Failed if roll % 2 == 0 || sink_is_dead => StatusCode::INTERNAL_SERVER_ERROR,
        Answer::Failed => StatusCode::SERVICE_UNAVAILABLE,
        Answer::TooLate => {
            tokio::time::sleep(Duration::from_millis(800)).await;
            StatusCode::OK
        }
    }
}

async fn start_receiver() -> (String, Arc<ReceiverState>) {
    let state = Arc::new(ReceiverState {
        arrivals: Mutex::new(Vec::new()),
        rng: Mutex::new(0x9e37_79b9_7f4a_7c15),
        dead_sink_healthy: AtomicBool::new(false),
        stalled: AtomicBool::new(false),
    });
    let router = axum::Router::new().route("/{sink}", axum::routing::post(receive)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, state)
}

fn write_sinks_file(dir: &Path, base: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let secret = dir.join("sink-secret");
    std::fs::write(&secret, SECRET).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = dir.join("sinks.yaml");
    let secret = secret.display();
    std::fs::write(
        &file,
        format!(
            "sinks:\n\
             - name: all\n  url: {base}/all\n  secret_file: {secret}\n\
             - name: drift\n  url: {base}/drift\n  secret_file: {secret}\n  types: [\"dev.jhf.warp.drift.*\"]\n\
             - name: dead\n  url: {base}/dead\n  secret_file: {secret}\n  types: [\"dev.jhf.warp.drift.*\"]\n"
        ),
    )
    .unwrap();
    file
}

async fn deliveries(app: &TestApp, sink: &str, state: DeliveryState) -> Vec<pb::Delivery> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListDeliveriesRequest {
            sink: sink.to_owned(),
            state: state as i32,
            page_size: 7,
            page_token: page_token.clone(),
        };
        let page = app
            .control()
            .await
            .list_deliveries(with_token(request, READER_TOKEN))
            .await
            .unwrap()
            .into_inner();
        all.extend(page.deliveries);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

async fn observe(app: &TestApp, clock: &ManualClock, seconds: i64, request_id: &str) {
    clock.advance(TimeDelta::seconds(seconds));
    let request = pb::ObserveNowRequest {
        runtime: String::new(),
        request_id: request_id.to_owned(),
        validate_only: false,
    };
    app.drift().await.observe_now(with_token(request, OPERATOR_TOKEN)).await.unwrap();
}

/// Stores `count` more desired revisions (same graph, new generations) after `etag`.
async fn store_revisions(app: &TestApp, mut etag: String, from: usize, count: usize) -> String {
    let topology = observed(app).await;
    for n in from..from + count {
        etag = put(app, topology.clone(), &etag, &format!("outbound-put-{n}"))
            .await
            .unwrap()
            .desired
            .unwrap()
            .etag;
    }
    etag
}

async fn drift_state(app: &TestApp, key: &str) -> i32 {
    let request =
        with_token(pb::GetDriftItemRequest { runtime: String::new(), key: key.to_owned() }, READER_TOKEN);
    app.drift().await.get_drift_item(request).await.map(|r| r.into_inner().item.unwrap().state).unwrap_or(-1)
}

#[tokio::test]
async fn events_reach_flaky_sinks_in_order_signed_and_across_a_restart_and_dead_letters_can_be_redelivered() {
    let (base, receiver) = start_receiver().await;
    let config_dir = tempfile::tempdir().unwrap();
    let sinks = write_sinks_file(config_dir.path(), &base);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let options = AppOptions {
        clock: Some(clock.clone()),
        event_sinks_file: Some(sinks.clone()),
        ..AppOptions::default()
    };
    let app = spawn_app_with(options).await;

    // Before the restart: twenty desired revisions and a confirmed drift item, then five more
    // revisions while sink `all` stalls, so some events are surely undelivered at the stop.
    let etag = store_revisions(&app, String::new(), 1, 20).await;
    app.edit_runtime_config("trio", crate::drift::remove_writer);
    observe(&app, &clock, 1, "outbound-observe-1").await;
    observe(&app, &clock, 61, "outbound-observe-2").await;
    assert_eq!(drift_state(&app, "AGENT_MISSING/writer").await, DriftState::Confirmed as i32);
    eventually_within("some events delivered before the stall", Duration::from_secs(30), async || {
        (deliveries(&app, "all", DeliveryState::Delivered).await.len() >= 10).then_some(())
    })
    .await;
    receiver.stalled.store(true, Ordering::SeqCst);
    let etag = store_revisions(&app, etag, 21, 5).await;
    let restart = AppOptions {
        clock: Some(clock.clone()),
        event_sinks_file: Some(sinks.clone()),
        ..app.restart_options("trio")
    };
    let _temp = app.stop().await;
    let accepted_before_restart: BTreeSet<String> = receiver
        .arrivals
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.sink == "all" && a.answer == Answer::Accepted)
        .map(|a| a.ce_id.clone())
        .collect();
    assert!(accepted_before_restart.len() < 26, "events were still undelivered when the service stopped");
    receiver.stalled.store(false, Ordering::SeqCst);

    let app = spawn_app_with(restart).await;
    let original =
        std::fs::read_to_string(crate::helpers::fixtures_dir().join("trio/state/openclaw.json")).unwrap();
    app.edit_runtime_config("trio", |_| original);
    observe(&app, &clock, 10, "outbound-observe-3").await;
    observe(&app, &clock, 10, "outbound-observe-4").await;
    assert_eq!(drift_state(&app, "AGENT_MISSING/writer").await, DriftState::Resolved as i32);
    store_revisions(&app, etag, 26, 20).await;

    // Every event of the outbox is delivered to `all` and `drift`; `dead` dead-letters both
    // drift events (thirty attempts each), moving on after the first.
    let wait = Duration::from_secs(60);
    let all = eventually_within("every event delivered to sink all", wait, async || {
        let list = deliveries(&app, "all", DeliveryState::Unspecified).await;
        (list.len() >= 47 && list.iter().all(|d| d.state == DeliveryState::Delivered as i32)).then_some(list)
    })
    .await;
    let drift = eventually_within("the drift events delivered to sink drift", wait, async || {
        let list = deliveries(&app, "drift", DeliveryState::Unspecified).await;
        (list.len() == 2 && list.iter().all(|d| d.state == DeliveryState::Delivered as i32)).then_some(list)
    })
    .await;
    let dead = eventually_within("both drift events dead-lettered for sink dead", wait, async || {
        let list = deliveries(&app, "dead", DeliveryState::Dead).await;
        (list.len() == 2).then_some(list)
    })
    .await;

    let types = |list: &[pb::Delivery]| list.iter().map(|d| d.event_type.clone()).collect::<BTreeSet<_>>();
    assert_eq!(
        all.iter().filter(|d| d.event_type == "dev.jhf.warp.desired.stored").count(),
        45,
        "one event per stored revision"
    );
    assert!(
        types(&all).contains("dev.jhf.warp.drift.confirmed")
            && types(&all).contains("dev.jhf.warp.drift.resolved")
    );
    assert_eq!(
        types(&drift),
        BTreeSet::from(["dev.jhf.warp.drift.confirmed".to_owned(), "dev.jhf.warp.drift.resolved".to_owned()]),
        "the filter keeps only drift events"
    );
    for delivery in &dead {
        assert_eq!(delivery.attempts, 30, "{delivery:?}");
        assert!(delivery.last_error.contains("HTTP 500"), "{delivery:?}");
    }

    let arrivals = receiver.arrivals.lock().unwrap().clone();
    assert!(arrivals.iter().all(|a| a.signature_ok), "every signature verifies");
    assert!(arrivals.iter().all(|a| a.structured), "structured-mode CloudEvents 1.0");
    let mut duplicates = 0;
    for (sink, expected) in [("all", &all), ("drift", &drift)] {
        // In order per sink: the first acceptance of each event follows the outbox order, and
        // nothing is accepted twice without the sender having missed the first answer.
        let accepted: Vec<&Arrival> =
            arrivals.iter().filter(|a| a.sink == sink && a.answer == Answer::Accepted).collect();
        let mut first: Vec<i64> = Vec::new();
        let mut seen = BTreeSet::new();
        for arrival in &accepted {
            if seen.insert(arrival.ce_id.clone()) {
                first.push(arrival.sequence);
            } else {
                duplicates += 1;
            }
        }
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(first, sorted, "sink {sink} got its events in outbox order");
        let expected_ids: BTreeSet<String> = expected.iter().map(|d| d.event_id.clone()).collect();
        assert_eq!(seen, expected_ids, "sink {sink}: every event arrived, nothing else did");
        let types_seen: BTreeSet<&str> = accepted.iter().map(|a| a.event_type.as_str()).collect();
        assert!(!types_seen.is_empty());
        // A delivery that only arrived late was sent again (same id): a duplicate the receiver
        // de-duplicates by id.
        duplicates += arrivals
            .iter()
            .filter(|a| a.sink == sink && a.answer == Answer::TooLate && seen.contains(&a.ce_id))
            .count();
    }

    // Redelivery of a dead letter once the sink is healthy.
    receiver.dead_sink_healthy.store(true, Ordering::SeqCst);
    let target = dead[0].clone();
    let redeliver = |sink: &str, event_id: &str, token: &str| {
        with_token(
            pb::RedeliverEventRequest {
                sink: sink.to_owned(),
                event_id: event_id.to_owned(),
                request_id: format!("redeliver-{sink}-{event_id}"),
                validate_only: false,
            },
            token,
        )
    };
    let queued = app
        .control()
        .await
        .redeliver_event(redeliver("dead", &target.event_id, OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!((queued.state, queued.attempts), (DeliveryState::Pending as i32, 0));
    eventually_within("the redelivered event delivered", wait, async || {
        let list = deliveries(&app, "dead", DeliveryState::Delivered).await;
        (list.len() == 1 && list[0].event_id == target.event_id).then_some(())
    })
    .await;
    let mut control = app.control().await;
    let refused =
        control.redeliver_event(redeliver("nowhere", &target.event_id, OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    let refused =
        control.redeliver_event(redeliver("dead", "no-such-event", OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    let refused =
        control.redeliver_event(redeliver("dead", &target.event_id, READER_TOKEN)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // Operators see the same through ctl.
    let listed =
        crate::ctl::ctl(&app, READER_TOKEN, &["events", "list", "--sink", "dead", "--state", "delivered"])
            .await;
    assert!(listed.status.success(), "{}", crate::ctl::text(&listed));
    let listed = crate::ctl::text(&listed);
    assert!(listed.contains(&target.event_id) && listed.contains("DELIVERED"), "{listed}");
    let second = dead[1].event_id.clone();
    let again = crate::ctl::ctl(&app, OPERATOR_TOKEN, &["events", "redeliver", "dead", &second]).await;
    assert!(again.status.success(), "{}", crate::ctl::text(&again));
    assert!(crate::ctl::text(&again).contains("PENDING"), "{}", crate::ctl::text(&again));

    // The per-sink attempt counters are on /metrics.
    let metrics = crate::helpers::scrape_metrics(&app.http_url("/metrics")).await;
    assert!(
        metrics.contains(r#"jhf_warp_outbound_attempts_total{sink="dead",outcome="dead_lettered"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"jhf_warp_outbound_deliveries{sink="all",state="DELIVERED"}"#), "{metrics}");

    let by_answer: BTreeMap<&str, usize> = arrivals.iter().fold(BTreeMap::new(), |mut counts, a| {
        *counts
            .entry(match a.answer {
                Answer::Accepted => "accepted",
                Answer::Failed => "failed",
                Answer::TooLate => "too_late",
            })
            .or_default() += 1;
        counts
    });
    println!(
        "outbound: {} events to sink all ({} delivered before the restart), {} to drift; \
         {} requests received {by_answer:?}; {} of them not accepted (each one retried or \
         dead-lettered), {} by the always-failing sink; dead-lettered {}; duplicates {duplicates}",
        all.len(),
        accepted_before_restart.len(),
        drift.len(),
        arrivals.len(),
        arrivals.iter().filter(|a| a.answer != Answer::Accepted).count(),
        arrivals.iter().filter(|a| a.answer != Answer::Accepted && a.sink == "dead").count(),
        dead.len(),
    );

    // Retention: eight days on, a restarted replica's first sweep drops the finished
    // deliveries and the events no delivery needs any more.
    clock.advance(TimeDelta::days(8));
    let later = AppOptions {
        clock: Some(clock.clone()),
        event_sinks_file: Some(sinks),
        ..app.restart_options("trio")
    };
    app.stop().await;
    let app = spawn_app_with(later).await;
    // (Events written since — the watchdog may raise some eight days on — are young.)
    let old: BTreeSet<String> = all.iter().map(|d| d.event_id.clone()).collect();
    eventually_within("finished deliveries dropped past retention", wait, async || {
        let left = deliveries(&app, "all", DeliveryState::Unspecified).await;
        left.iter().all(|d| !old.contains(&d.event_id)).then_some(())
    })
    .await;
    let gone = app.control().await.redeliver_event(redeliver("all", &all[0].event_id, OPERATOR_TOKEN)).await;
    assert_eq!(gone.unwrap_err().code(), Code::NotFound, "the event itself is gone");
    app.stop().await;
}

#[tokio::test]
async fn events_written_at_once_on_two_replicas_reach_a_sink_gap_free_in_commit_order() {
    let (base, receiver) = start_receiver().await;
    let config_dir = tempfile::tempdir().unwrap();
    let sinks = write_sinks_file(config_dir.path(), &base);
    let first =
        spawn_app_with(AppOptions { event_sinks_file: Some(sinks.clone()), ..AppOptions::default() }).await;
    let second =
        spawn_app_with(AppOptions { event_sinks_file: Some(sinks), ..first.restart_options("trio") }).await;
    let mut ids = Vec::new();
    for n in 0..16 {
        let delegate = ["writer", "research"][n % 2];
        let granted = crate::delegations::grant(
            &first,
            ("lead", delegate),
            &["send"],
            pb::TrustLevel::Restricted,
            "",
            &format!("g-{n}"),
        )
        .await
        .unwrap();
        ids.push(granted.id);
    }
    // Sixteen revocations at once, half through each replica: sixteen event writers contend.
    let revocations = ids.iter().enumerate().map(|(n, id)| {
        let app = if n % 2 == 0 { &first } else { &second };
        let request = pb::RevokeDelegationRequest {
            runtime: String::new(),
            id: id.clone(),
            reason: "concurrent".into(),
            request_id: format!("r-{n}"),
            validate_only: false,
        };
        async move { app.control().await.revoke_delegation(with_token(request, OPERATOR_TOKEN)).await }
    });
    for answer in futures_util::future::join_all(revocations).await {
        answer.unwrap();
    }

    let delivered =
        eventually_within("the sixteen revocations delivered", Duration::from_secs(60), async || {
            let list = deliveries(&second, "all", DeliveryState::Unspecified).await;
            let revoked = list.iter().filter(|d| d.event_type == "dev.jhf.warp.delegation.revoked").count();
            (revoked == 16 && list.iter().all(|d| d.state == DeliveryState::Delivered as i32)).then_some(list)
        })
        .await;
    let mut sequences: Vec<i64> = delivered.iter().map(|d| d.sequence).collect();
    sequences.sort_unstable();
    let first_seq = sequences[0];
    let contiguous: Vec<i64> = (first_seq..first_seq + sequences.len() as i64).collect();
    assert_eq!(sequences, contiguous, "outbox positions have no gaps");
    let arrivals = receiver.arrivals.lock().unwrap().clone();
    let mut seen = BTreeSet::new();
    let order: Vec<i64> = arrivals
        .iter()
        .filter(|a| a.sink == "all" && a.answer == Answer::Accepted && seen.insert(a.ce_id.clone()))
        .map(|a| a.sequence)
        .collect();
    assert_eq!(order, sequences, "the sink got every position once, in order");
    assert!(arrivals.iter().all(|a| a.signature_ok));
    second.stop().await;
    first.stop().await;
}

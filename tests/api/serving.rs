//! The serving path as callers see it: load shedding, coalesced FRESH reads, a database outage,
//! other replicas' commits reaching this replica's in-memory snapshot, and a large team.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use jhf_warp::control::failpoints::HOLD_RUNTIME_READS;
use jhf_warp::pb::v1 as pb;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

use crate::desired::observed;
use crate::helpers::{
    AppOptions, OPERATOR_TOKEN, READER_TOKEN, TestApp, eventually, fresh_database_url, spawn_app_unready,
    spawn_app_with, with_token,
};

async fn topology(app: &TestApp, mode: pb::ReadMode) -> Result<pb::GetTopologyResponse, tonic::Status> {
    let request = pb::GetTopologyRequest { runtime: String::new(), read_mode: mode as i32 };
    app.topology().await.get_topology(with_token(request, READER_TOKEN)).await.map(|r| r.into_inner())
}

async fn latest_seen_count(app: &TestApp) -> i64 {
    let request =
        pb::ListObservationsRequest { runtime: String::new(), page_size: 1, page_token: String::new() };
    let page = app.topology().await.list_observations(with_token(request, READER_TOKEN)).await.unwrap();
    page.into_inner().observations[0].seen_count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_in_flight_bound_calls_are_refused_at_once_while_probes_still_answer() {
    let app = spawn_app_with(AppOptions { max_in_flight: 2, ..AppOptions::default() }).await;
    // A read that finishes after a FRESH read was asked answers it: let any read the replica
    // started on its own finish first (a FRESH read waits for it), so the two below are held.
    topology(&app, pb::ReadMode::Fresh).await.expect("a fresh read before the hold");
    app.failpoints.enable(HOLD_RUNTIME_READS);
    // Two FRESH reads take both slots: one inside the held runtime read, one waiting for it.
    let mut held = Vec::new();
    for _ in 0..2 {
        let client = app.topology().await;
        held.push(tokio::spawn(async move {
            let request =
                pb::GetTopologyRequest { runtime: String::new(), read_mode: pb::ReadMode::Fresh as i32 };
            client.clone().get_topology(with_token(request, READER_TOKEN)).await
        }));
    }
    eventually("a runtime read to be held", async || (app.failpoints.held() == 1).then_some(())).await;
    let mut meta = app.meta().await;
    let refused = eventually("a call past the bound to be refused", async || {
        match meta.get_version(pb::GetVersionRequest {}).await {
            Err(status) if status.code() == Code::ResourceExhausted => Some(status),
            _ => None,
        }
    })
    .await;
    let details = refused.get_error_details();
    assert_eq!(details.error_info().map(|i| i.reason.as_str()), Some("OVERLOADED"));
    assert!(details.retry_info().and_then(|r| r.retry_delay).is_some(), "a retry delay is given");
    // Probes are never shed.
    let health = app.health().await.check(HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(health.into_inner().status, ServingStatus::Serving as i32);
    assert_eq!(reqwest::get(app.http_url("/ready")).await.unwrap().status(), 200);

    app.failpoints.release();
    for call in held {
        call.await.unwrap().expect("the held reads finish once released");
    }
    meta.get_version(pb::GetVersionRequest {}).await.expect("admitted again");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_fresh_reads_cannot_read_the_runtime_more_often_than_the_minimum_interval() {
    let app =
        spawn_app_with(AppOptions { fresh_read_min_interval_ms: 60_000, ..AppOptions::default() }).await;
    let before = latest_seen_count(&app).await;
    let startup = topology(&app, pb::ReadMode::Fresh).await.unwrap();
    app.edit_runtime_config("trio", |text| text.replace(r#"name: "Writer""#, r#"name: "Author""#));
    let mut burst = Vec::new();
    for _ in 0..16 {
        let client = app.topology().await;
        burst.push(tokio::spawn(async move {
            let request =
                pb::GetTopologyRequest { runtime: String::new(), read_mode: pb::ReadMode::Fresh as i32 };
            client.clone().get_topology(with_token(request, READER_TOKEN)).await.map(|r| r.into_inner())
        }));
    }
    for call in burst {
        let answer = call.await.unwrap().unwrap();
        assert_eq!(answer.observation, startup.observation, "answered from the read that just finished");
    }
    assert_eq!(latest_seen_count(&app).await, before, "the burst read the runtime no more");
    // An operator's ObserveNow is not a READ caller: it reads at once and sees the edit.
    let observe = pb::ObserveNowRequest {
        runtime: String::new(),
        request_id: "observe-1".into(),
        validate_only: false,
    };
    app.drift().await.observe_now(with_token(observe, OPERATOR_TOKEN)).await.unwrap();
    let stored = topology(&app, pb::ReadMode::Stored).await.unwrap();
    assert_ne!(stored.observation.unwrap().config_hash, startup.observation.unwrap().config_hash);
    app.stop().await;
}

/// A TCP proxy in front of the database that a test can cut and restore: an outage as the
/// service sees it (pooled connections die, new ones are refused).
struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    open: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy =
            Arc::new(Self { addr: listener.local_addr().unwrap(), target, open: watch::channel(true).0 });
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (target, mut open) = (self.target, self.open.subscribe());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = open.wait_for(|open| !*open) => return,
                };
                let Ok((mut inbound, _)) = accepted else { continue };
                let mut closed = open.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = closed.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }

    async fn restore(&self) {
        self.open.send_replace(true);
        let listener =
            eventually("the proxy port to be free again", async || TcpListener::bind(self.addr).await.ok())
                .await;
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_calls_fast_with_a_retry_delay_and_turns_readiness_off_and_back() {
    let Ok(base) = std::env::var("JHF_WARP_TEST_DATABASE_URL") else {
        // Not applicable, not left out: SQLite is embedded and cannot go away; the Postgres run
        // of this suite (`.ci/run`) is where it runs.
        println!(
            "not applicable on SQLite: the database outage runs on Postgres (JHF_WARP_TEST_DATABASE_URL)"
        );
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let direct = fresh_database_url(temp.path()).await;
    let authority = base.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let target: SocketAddr = tokio::net::lookup_host(host_port).await.unwrap().next().unwrap();
    let proxy = Proxy::start(target).await;
    let through_proxy = direct.replacen(host_port, &proxy.addr.to_string(), 1);
    let app = spawn_app_unready(
        AppOptions { reuse: Some((temp.path().to_path_buf(), through_proxy)), ..AppOptions::default() },
        |_| {},
    )
    .await;
    app.wait_for_health(ServingStatus::Serving).await;

    proxy.cut();
    let started = Instant::now();
    let request = pb::ListAuditEventsRequest::default();
    let refused = app.control().await.list_audit_events(with_token(request, READER_TOKEN)).await.unwrap_err();
    let took = started.elapsed();
    println!("database outage: a call touching the store failed with {:?} after {took:?}", refused.code());
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.get_error_details().retry_info().is_some(), "a retry delay is given");
    eventually("/ready to answer 503", async || {
        (reqwest::get(app.http_url("/ready")).await.ok()?.status() == 503).then_some(())
    })
    .await;
    app.wait_for_health(ServingStatus::NotServing).await;

    proxy.restore().await;
    app.wait_for_health(ServingStatus::Serving).await;
    eventually("calls to succeed again", async || {
        let request = pb::ListAuditEventsRequest::default();
        app.control().await.list_audit_events(with_token(request, READER_TOKEN)).await.ok()
    })
    .await;
    app.stop().await;
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replicas_commits_reach_this_replicas_snapshot_and_watchers() {
    let first = spawn_app_with(AppOptions::default()).await;
    let second = spawn_app_with(AppOptions {
        reuse: Some((first.data_dir.clone(), first.database_url.clone())),
        ..AppOptions::default()
    })
    .await;
    let mut watch = second
        .topology()
        .await
        .watch_topology(with_token(pb::WatchTopologyRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    crate::desired::put(&first, observed(&first).await, "", "desired-1").await.unwrap();
    let desired = eventually("the second replica to serve the new revision", async || {
        let request = pb::GetDesiredTopologyRequest { runtime: String::new(), generation: 0 };
        second.topology().await.get_desired_topology(with_token(request, READER_TOKEN)).await.ok()
    })
    .await;
    assert_eq!(desired.into_inner().desired.unwrap().generation, 1);
    // The watcher on the second replica hears of the first replica's revision.
    let event = eventually("the desired revision on the second replica's watch", async || {
        let message = tokio::time::timeout(crate::helpers::WAIT, watch.message()).await.ok()?.ok()??;
        (message.kind == pb::TopologyEventKind::Desired as i32).then_some(message)
    })
    .await;
    assert_eq!((event.desired_generation, event.initial), (1, false));
    second.stop().await;
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_of_two_thousand_agents_is_observed_stored_diffed_and_served() {
    let app = spawn_app_unready(
        AppOptions {
            fixture: "synthetic",
            runtime: Some("fixture:synthetic".into()),
            ..AppOptions::default()
        },
        |data_dir| {
            let root = data_dir.join("runtime").join("synthetic");
            jhf_warp::testing::write_state_tree(&root, 2000, 100).unwrap();
        },
    )
    .await;
    app.wait_for_health(ServingStatus::Serving).await;
    let fresh = topology(&app, pb::ReadMode::Fresh).await.unwrap().topology.unwrap();
    assert_eq!(fresh.nodes.len(), 2000);
    let sends = fresh.edges.iter().filter(|e| e.kind == pb::EdgeKind::Send as i32).count();
    assert_eq!(sends, 100 * 99, "the 100-agent clique");
    assert!(fresh.edges.len() > sends, "and the spawn chains");
    crate::desired::put(&app, fresh.clone(), "", "desired-1").await.unwrap();
    let observe = pb::ObserveNowRequest {
        runtime: String::new(),
        request_id: "observe-1".into(),
        validate_only: false,
    };
    app.drift().await.observe_now(with_token(observe, OPERATOR_TOKEN)).await.unwrap();
    let summary = app
        .drift()
        .await
        .get_drift_summary(with_token(pb::GetDriftSummaryRequest { runtime: String::new() }, READER_TOKEN))
        .await;
    assert!(summary.unwrap().into_inner().in_sync, "desired == observed");
    let stored = topology(&app, pb::ReadMode::Stored).await.unwrap().topology.unwrap();
    assert_eq!(stored.revision, fresh.revision);
    app.stop().await;
}

#[tokio::test]
async fn a_panicking_handler_answers_internal_and_the_connection_and_process_go_on() {
    let app = crate::helpers::spawn_app().await;
    app.failpoints.enable(jhf_warp::control::failpoints::PANIC_IN_LIST_LEASES);
    let channel = app.channel().await;
    let mut control = pb::control_service_client::ControlServiceClient::new(channel.clone());
    let failed =
        control.list_leases(with_token(pb::ListLeasesRequest::default(), READER_TOKEN)).await.unwrap_err();
    assert_eq!(failed.code(), Code::Internal);
    assert!(!failed.message().contains("failpoint"), "the panic stays in the log: {}", failed.message());
    let mut meta = pb::meta_service_client::MetaServiceClient::new(channel);
    meta.get_version(pb::GetVersionRequest {}).await.expect("the same connection still serves");
    app.stop().await;
}

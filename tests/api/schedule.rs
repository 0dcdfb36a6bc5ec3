//! The periodic reconcile loop: the schedule API, leader election over `warp/reconciler`
//! between replicas (in-process and real processes), take-over after the leader is killed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jhf_warp::pb::v1 as pb;
use jhf_warp::pb::v1::control_service_client::ControlServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::helpers::{
    AppOptions, OPERATOR_TOKEN, READER_TOKEN, consistently, eventually, fresh_database_url, spawn_app,
    spawn_app_with, with_token,
};
use crate::process::start_binary_with;

type Control = ControlServiceClient<Channel>;

async fn control_at(addr: &str) -> Control {
    ControlServiceClient::new(
        Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap(),
    )
}

async fn status(client: &mut Control) -> pb::GetScheduleResponse {
    client
        .get_schedule(with_token(pb::GetScheduleRequest { runtime: String::new() }, READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
}

async fn scheduled_runs(client: &mut Control) -> Vec<pb::SchedulerRun> {
    let request =
        pb::ListSchedulerRunsRequest { runtime: String::new(), page_size: 1000, page_token: String::new() };
    let runs = client.list_scheduler_runs(with_token(request, READER_TOKEN)).await.unwrap().into_inner().runs;
    runs.into_iter().filter(|r| r.trigger == "SCHEDULED").collect()
}

fn update(schedule: pb::Schedule, etag: &str, request_id: &str) -> pb::UpdateScheduleRequest {
    pb::UpdateScheduleRequest {
        runtime: String::new(),
        schedule: Some(schedule),
        etag: etag.into(),
        request_id: request_id.into(),
        validate_only: false,
    }
}

fn observe_every(seconds: i64) -> pb::Schedule {
    pb::Schedule {
        interval_seconds: seconds,
        mode: pb::ReconcileMode::Observe.into(),
        paused: false,
        ..pb::Schedule::default()
    }
}

#[tokio::test]
async fn the_schedule_is_read_and_replaced_under_its_etag_with_typed_errors() {
    let app = spawn_app().await;
    let mut client = app.control().await;
    let current = status(&mut client).await.schedule.unwrap();
    assert_eq!(
        (current.etag.as_str(), current.paused, current.updated_by.as_str()),
        ("0", true, "configuration")
    );

    let bad =
        client.update_schedule(with_token(update(observe_every(0), "0", "s-bad"), OPERATOR_TOKEN)).await;
    let bad = bad.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let violations = bad.get_error_details().bad_request().unwrap().field_violations.clone();
    assert_eq!(violations[0].field, "schedule.interval_seconds");
    let unspecified = pb::Schedule { mode: 0, ..observe_every(30) };
    let bad = client.update_schedule(with_token(update(unspecified, "0", "s-bad2"), OPERATOR_TOKEN)).await;
    assert_eq!(bad.unwrap_err().code(), Code::InvalidArgument);
    let stale =
        client.update_schedule(with_token(update(observe_every(30), "7", "s-stale"), OPERATOR_TOKEN)).await;
    assert_eq!(stale.unwrap_err().code(), Code::FailedPrecondition);
    let reader =
        client.update_schedule(with_token(update(observe_every(30), "0", "s-r"), READER_TOKEN)).await;
    assert_eq!(reader.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(status(&mut client).await.schedule.unwrap().etag, "0", "refused updates changed nothing");

    let dry = pb::UpdateScheduleRequest { validate_only: true, ..update(observe_every(30), "0", "s-dry") };
    client.update_schedule(with_token(dry, OPERATOR_TOKEN)).await.unwrap();
    assert_eq!(status(&mut client).await.schedule.unwrap().etag, "0", "validate_only stores nothing");

    let paused = pb::Schedule { paused: true, mode: pb::ReconcileMode::Heal.into(), ..observe_every(30) };
    let stored = client.update_schedule(with_token(update(paused.clone(), "0", "s-1"), OPERATOR_TOKEN)).await;
    let stored = stored.unwrap().into_inner().schedule.unwrap();
    assert_eq!((stored.etag.as_str(), stored.interval_seconds, stored.updated_by.as_str()), ("1", 30, "op"));
    let replay = client.update_schedule(with_token(update(paused, "0", "s-1"), OPERATOR_TOKEN)).await;
    assert_eq!(replay.unwrap().into_inner().schedule.unwrap(), stored, "a retry returns the first response");
    let reused =
        client.update_schedule(with_token(update(observe_every(5), "1", "s-1"), OPERATOR_TOKEN)).await;
    assert_eq!(reused.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(status(&mut client).await.schedule.unwrap(), stored);

    let audit = pb::ListAuditEventsRequest {
        method: "jhf.warp.v1.ControlService/UpdateSchedule".into(),
        ..pb::ListAuditEventsRequest::default()
    };
    let events = client.list_audit_events(with_token(audit, READER_TOKEN)).await.unwrap().into_inner().events;
    assert_eq!(events.len(), 1, "one audit event for the one applied update");
    app.stop().await;
}

/// Two replicas on one database: only the lease holder runs scheduled cycles, each bucket's
/// cycle once; pausing stops them; a graceful stop hands leadership over at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_runs_scheduled_cycles_and_pausing_stops_them() {
    let first = spawn_app_with(AppOptions { reconcile: Some(("one", 3, 1)), ..AppOptions::default() }).await;
    let second = spawn_app_with(AppOptions {
        reuse: Some((first.data_dir.clone(), first.database_url.clone())),
        reconcile: Some(("two", 3, 1)),
        ..AppOptions::default()
    })
    .await;
    let mut client = first.control().await;
    let runs = eventually("three scheduled cycles", async || {
        let runs = scheduled_runs(&mut client).await;
        (runs.len() >= 3).then_some(runs)
    })
    .await;
    let leader = status(&mut client).await.leader;
    assert!(leader == "one" || leader == "two", "leader {leader:?}");
    let actors: BTreeSet<&str> = runs.iter().map(|r| r.actor.as_str()).collect();
    assert_eq!(actors, BTreeSet::from([format!("jhf-warp/{leader}").as_str()]), "only the leader ran cycles");
    let ids: BTreeSet<&str> = runs.iter().map(|r| r.cycle_id.as_str()).collect();
    assert_eq!(ids.len(), runs.len(), "each bucket's cycle ran once");
    assert!(runs.iter().all(|r| r.cycle_id.starts_with("sched-")));

    let etag = status(&mut client).await.schedule.unwrap().etag;
    let paused = pb::Schedule { paused: true, ..observe_every(1) };
    client.update_schedule(with_token(update(paused, &etag, "pause"), OPERATOR_TOKEN)).await.unwrap();
    // A cycle start checks the schedule in its own transaction, ordered against the update:
    // from the moment the pause is acknowledged no replica starts a cycle, over several
    // buckets of the 1 s interval.
    let settled = scheduled_runs(&mut client).await.len();
    consistently("a paused schedule starting no cycle", Duration::from_secs(3), async || {
        scheduled_runs(&mut client).await.len() == settled
    })
    .await;

    let (leader_app, other) = if leader == "one" { (first, second) } else { (second, first) };
    leader_app.stop().await;
    let mut other_client = other.control().await;
    let expected = if leader == "one" { "two" } else { "one" };
    eventually("the other replica to lead after a graceful stop", async || {
        (status(&mut other_client).await.leader == expected).then_some(())
    })
    .await;
    other.stop().await;
}

/// Kills a replica's process.
struct Replica {
    child: std::process::Child,
    addr: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tokens() -> String {
    crate::helpers::test_tokens()
}

async fn start_replica(dir: &std::path::Path, database_url: &str, id: &str, lease_secs: u64) -> Replica {
    let data_dir = dir.join(id);
    std::fs::create_dir_all(&data_dir).unwrap();
    let env = [
        ("JHF_WARP_DATABASE_URL", database_url.to_owned()),
        ("JHF_WARP_TOKENS", tokens()),
        ("JHF_WARP_REPLICA_ID", id.to_owned()),
        ("JHF_WARP_RECONCILER_LEASE_SECS", lease_secs.to_string()),
        ("JHF_WARP_RECONCILE_INTERVAL_SECS", "1".to_owned()),
        ("JHF_WARP_OBSERVE_INTERVAL", "3600".to_owned()),
    ];
    let (child, addr) = start_binary_with(&data_dir, &env);
    let replica = Replica { child, addr };
    let ready = format!("http://{}/ready", replica.addr);
    eventually("the replica to be ready", async || {
        (reqwest::get(&ready).await.map(|r| r.status().as_u16()).unwrap_or(0) == 200).then_some(())
    })
    .await;
    replica
}

/// The bar: two `jhf-warp` processes on one database; SIGKILL the leader; the other takes over
/// once the lease expires (at most one lease duration after the kill, plus one follower tick)
/// and no cycle runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_process_hands_reconcile_over_without_running_a_cycle_twice() {
    const LEASE_SECS: u64 = 3;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let a = start_replica(dir.path(), &url, "a", LEASE_SECS).await;
    let b = start_replica(dir.path(), &url, "b", LEASE_SECS).await;
    let (mut client_a, client_b) = (control_at(&a.addr).await, control_at(&b.addr).await);
    let leader = eventually("a leader with two scheduled cycles", async || {
        let leader = status(&mut client_a).await.leader;
        (!leader.is_empty() && scheduled_runs(&mut client_a).await.len() >= 2).then_some(leader)
    })
    .await;
    let (victim, survivor, mut survivor_client, survivor_id) = if leader == "a" {
        (a, b, client_b, "b")
    } else {
        drop(client_b);
        (b, a, client_a.clone(), "a")
    };
    let before = scheduled_runs(&mut survivor_client).await;
    let killed_wall = std::time::SystemTime::now();
    drop(victim); // SIGKILL: no release, the lease must expire
    let killed = Instant::now();
    eventually("the survivor to take the lease", async || {
        (status(&mut survivor_client).await.leader == survivor_id).then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    let survivor_actor = format!("jhf-warp/{survivor_id}");
    // The survivor may have led before (the runtime can move when the second replica joins),
    // so the wait is for a finished cycle of its own that started after the kill.
    let killed_at = killed_wall.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = |r: &pb::SchedulerRun| {
        r.start_time.as_ref().map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
    };
    let runs = eventually("a cycle run by the survivor after the kill", async || {
        let runs = scheduled_runs(&mut survivor_client).await;
        let done_since_kill = |r: &pb::SchedulerRun| {
            r.actor == survivor_actor && r.state != "RUNNING" && started(r) > killed_at
        };
        runs.iter().any(done_since_kill).then_some(runs)
    })
    .await;
    println!(
        "reconcile take-over: {} scheduled cycles before the kill, leader {leader} killed, {survivor_id} took over after {:.2} s (lease {LEASE_SECS} s)",
        before.len(),
        takeover.as_secs_f64()
    );
    assert!(
        takeover <= Duration::from_secs(LEASE_SECS) + Duration::from_secs(2),
        "take-over took {takeover:?}"
    );
    let ids: BTreeSet<&str> = runs.iter().map(|r| r.cycle_id.as_str()).collect();
    assert_eq!(ids.len(), runs.len(), "no cycle ran twice");
    // Every cycle that started after the kill is the survivor's (the runtime may have moved
    // between the two replicas before, when the second one joined and the fleet rebalanced).
    let since_kill: Vec<&pb::SchedulerRun> = runs.iter().filter(|r| started(r) > killed_at).collect();
    assert!(!since_kill.is_empty());
    assert!(
        since_kill.iter().all(|r| r.actor == survivor_actor),
        "after the take-over only the survivor runs cycles: {since_kill:?}"
    );
    assert!(
        runs.iter().all(|r| r.state != "RUNNING" || r.actor == survivor_actor),
        "no orphaned RUNNING cycle"
    );
    drop(survivor);
}

/// The bar: two `jhf-warp` processes on one database, 16 contenders, ≥ 5 000 lease operations.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contention_across_two_processes_never_overlaps_and_refuses_every_stale_token() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let a = start_replica(dir.path(), &url, "a", 15).await;
    let b = start_replica(dir.path(), &url, "b", 15).await;
    crate::leases::contend([a.addr.clone(), b.addr.clone()], "two jhf-warp processes").await;
}

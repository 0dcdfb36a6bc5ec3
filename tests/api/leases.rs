//! Leases with fencing tokens, judged by the database clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jhf_warp::pb::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{
    AGENT_TOKEN, AppOptions, OPERATOR_TOKEN, READER_TOKEN, TestApp, agent_token, reason, spawn_app,
    spawn_app_with, with_token,
};

async fn acquire(app: &TestApp, name: &str, holder: &str, seconds: i64) -> Result<pb::Lease, tonic::Status> {
    let request = pb::AcquireLeaseRequest {
        name: name.to_owned(),
        holder: holder.to_owned(),
        duration_seconds: seconds,
    };
    app.control()
        .await
        .acquire_lease(with_token(request, &agent_token(holder)))
        .await
        .map(|r| r.into_inner().lease.unwrap())
}

async fn renew(
    app: &TestApp,
    name: &str,
    holder: &str,
    token: i64,
    seconds: i64,
) -> Result<pb::Lease, tonic::Status> {
    let request = pb::RenewLeaseRequest {
        name: name.to_owned(),
        holder: holder.to_owned(),
        fencing_token: token,
        duration_seconds: seconds,
    };
    app.control()
        .await
        .renew_lease(with_token(request, &agent_token(holder)))
        .await
        .map(|r| r.into_inner().lease.unwrap())
}

async fn release(app: &TestApp, name: &str, holder: &str, token: i64) -> Result<pb::Lease, tonic::Status> {
    let request =
        pb::ReleaseLeaseRequest { name: name.to_owned(), holder: holder.to_owned(), fencing_token: token };
    app.control()
        .await
        .release_lease(with_token(request, &agent_token(holder)))
        .await
        .map(|r| r.into_inner().lease.unwrap())
}

#[tokio::test]
async fn leases_are_granted_renewed_and_released_with_ever_increasing_tokens() {
    let app = spawn_app().await;
    let first = acquire(&app, "job/lead", "a", 30).await.unwrap();
    assert_eq!((first.holder.as_str(), first.fencing_token, first.held), ("a", 1, true));

    let busy = acquire(&app, "job/lead", "b", 30).await.unwrap_err();
    assert_eq!((busy.code(), reason(&busy).as_str()), (Code::FailedPrecondition, "LEASE_HELD"));
    let violation = busy.get_error_details().precondition_failure().cloned().unwrap().violations.remove(0);
    assert_eq!(violation.subject, "job/lead");
    assert!(violation.description.contains("held by a"), "{}", violation.description);

    assert_eq!(acquire(&app, "job/lead", "a", 30).await.unwrap().fencing_token, 1, "re-acquiring renews");
    renew(&app, "job/lead", "a", 1, 30).await.unwrap();
    let stale = renew(&app, "job/lead", "a", 0, 30).await.unwrap_err();
    assert_eq!(reason(&stale), "LEASE_STALE_TOKEN");

    app.advance_db_clock(31);
    let taken = acquire(&app, "job/lead", "b", 30).await.unwrap();
    assert_eq!((taken.fencing_token, taken.transitions), (2, 2), "expiry is judged by the database clock");
    // The former holder may no longer touch it: the lease is b's now.
    assert_eq!(reason(&renew(&app, "job/lead", "a", 1, 30).await.unwrap_err()), "NOT_LEASE_HOLDER");
    let released = release(&app, "job/lead", "b", 2).await.unwrap();
    assert!(!released.held && released.holder.is_empty());
    assert_eq!(acquire(&app, "job/lead", "a", 30).await.unwrap().fencing_token, 3, "tokens are never reused");
    app.stop().await;
}

#[tokio::test]
async fn leases_can_be_read_and_listed_and_bad_requests_are_typed() {
    let app = spawn_app().await;
    for name in ["job/research", "job/lead", "job/zeta"] {
        acquire(&app, name, "x", 10).await.unwrap();
    }
    let get = with_token(pb::GetLeaseRequest { name: "job/lead".to_owned() }, READER_TOKEN);
    let lease = app.control().await.get_lease(get).await.unwrap().into_inner().lease.unwrap();
    assert!(lease.held && lease.observe_time.is_some());
    let list = with_token(pb::ListLeasesRequest { page_size: 2, page_token: String::new() }, READER_TOKEN);
    let page = app.control().await.list_leases(list).await.unwrap().into_inner();
    let names: Vec<&str> = page.leases.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["job/lead", "job/research"]);
    let list =
        with_token(pb::ListLeasesRequest { page_size: 2, page_token: page.next_page_token }, READER_TOKEN);
    assert_eq!(app.control().await.list_leases(list).await.unwrap().into_inner().leases[0].name, "job/zeta");

    let missing = with_token(pb::GetLeaseRequest { name: "job/ghost".to_owned() }, READER_TOKEN);
    assert_eq!(app.control().await.get_lease(missing).await.unwrap_err().code(), Code::NotFound);
    let err = acquire(&app, "Bad Name", "x", 10).await.unwrap_err();
    assert_eq!(err.get_error_details().bad_request().unwrap().field_violations[0].field, "name");
    let err = acquire(&app, "job/lead", "x", 0).await.unwrap_err();
    assert_eq!(err.get_error_details().bad_request().unwrap().field_violations[0].field, "duration_seconds");
    app.stop().await;
}

/// One grant as the holder saw it: from acquisition to release or last known expiry.
#[derive(Debug, Clone)]
struct Grant {
    holder: String,
    token: i64,
    start: (i64, i32),
    end: (i64, i32),
}

fn time(ts: &Option<pbjson_types::Timestamp>) -> (i64, i32) {
    ts.as_ref().map(|t| (t.seconds, t.nanos)).unwrap_or_default()
}

/// Two replicas on one database, 16 contenders, ≥ 5 000 lease operations: no two holders
/// overlap by the database clock, tokens increase with every new holder, and every stale-token
/// write is refused. Prints the counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contention_across_two_replicas_never_overlaps_and_refuses_every_stale_token() {
    let first = spawn_app().await;
    let second = spawn_app_with(AppOptions {
        reuse: Some((first.data_dir.clone(), first.database_url.clone())),
        ..AppOptions::default()
    })
    .await;
    contend([first.addr.to_string(), second.addr.to_string()], "two in-process replicas").await;
    second.stop().await;
    first.stop().await;
}

/// Runs 16 contenders (alternating between the two replicas at `addrs`) until ≥ 5 000 lease
/// operations were made, then checks and prints: overlapping holders, accepted stale tokens.
pub async fn contend(addrs: [String; 2], label: &str) {
    use jhf_warp::pb::v1::control_service_client::ControlServiceClient;
    let operations = Arc::new(AtomicU64::new(0));
    let stale_attempts = Arc::new(AtomicU64::new(0));
    let stale_accepted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for contender in 0..16usize {
        let (operations, stale_attempts, stale_accepted) =
            (operations.clone(), stale_attempts.clone(), stale_accepted.clone());
        let addr = addrs[contender % 2].clone();
        tasks.push(tokio::spawn(async move {
            let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut client = ControlServiceClient::new(channel);
            let name = "job/contended".to_owned();
            let holder = format!("contender-{contender}");
            let token = agent_token(&holder);
            let mut grants = Vec::new();
            while operations.load(Ordering::Relaxed) < 5_200 {
                operations.fetch_add(1, Ordering::Relaxed);
                let acquire = pb::AcquireLeaseRequest {
                    name: name.clone(),
                    holder: holder.clone(),
                    duration_seconds: 5,
                };
                let Ok(lease) = client.acquire_lease(with_token(acquire, &token)).await else {
                    continue;
                };
                let lease = lease.into_inner().lease.unwrap();
                let mut grant = Grant {
                    holder: holder.clone(),
                    token: lease.fencing_token,
                    start: time(&lease.renew_time),
                    end: time(&lease.expire_time),
                };
                let renew = |token| pb::RenewLeaseRequest {
                    name: name.clone(),
                    holder: holder.clone(),
                    fencing_token: token,
                    duration_seconds: 5,
                };
                if grant.token > 1 {
                    stale_attempts.fetch_add(1, Ordering::Relaxed);
                    operations.fetch_add(1, Ordering::Relaxed);
                    if client.renew_lease(with_token(renew(grant.token - 1), &token)).await.is_ok() {
                        stale_accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                operations.fetch_add(1, Ordering::Relaxed);
                if let Ok(renewed) = client.renew_lease(with_token(renew(grant.token), &token)).await {
                    grant.end = time(&renewed.into_inner().lease.unwrap().expire_time);
                }
                operations.fetch_add(1, Ordering::Relaxed);
                let release = pb::ReleaseLeaseRequest {
                    name: name.clone(),
                    holder: holder.clone(),
                    fencing_token: grant.token,
                };
                if let Ok(released) = client.release_lease(with_token(release, &token)).await {
                    grant.end = time(&released.into_inner().lease.unwrap().expire_time);
                }
                grants.push(grant);
            }
            grants
        }));
    }
    let mut grants = Vec::new();
    for task in tasks {
        grants.extend(task.await.unwrap());
    }
    // A holder re-acquiring its own live lease renews it (same token): merge those.
    let mut by_token: BTreeMap<i64, Grant> = BTreeMap::new();
    for grant in grants {
        let entry = by_token.entry(grant.token).or_insert_with(|| grant.clone());
        assert_eq!(entry.holder, grant.holder, "token {} was issued to two holders", grant.token);
        entry.start = entry.start.min(grant.start);
        entry.end = entry.end.max(grant.end);
    }
    let ordered: Vec<&Grant> = by_token.values().collect();
    let overlaps = ordered.windows(2).filter(|pair| pair[1].start < pair[0].end).count();
    let ops = operations.load(Ordering::Relaxed);
    println!(
        "lease contention ({label}): {ops} operations, {} grants, {} overlapping holders, {} stale-token writes accepted of {} tried",
        ordered.len(),
        overlaps,
        stale_accepted.load(Ordering::Relaxed),
        stale_attempts.load(Ordering::Relaxed)
    );
    assert!(ops >= 5_000);
    assert!(ordered.len() > 16, "the lease changed hands");
    assert_eq!(overlaps, 0, "two holders held the lease at once");
    assert_eq!(stale_accepted.load(Ordering::Relaxed), 0);
    let tokens: Vec<i64> = by_token.keys().copied().collect();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]));
}

async fn report(
    app: &TestApp,
    holder: &str,
    token: i64,
    cycle_id: &str,
) -> Result<pb::CycleReport, tonic::Status> {
    let request = pb::ReportCycleResultRequest {
        lease_name: "job/lead".into(),
        holder: holder.into(),
        fencing_token: token,
        cycle_id: cycle_id.into(),
        outcome: pb::CycleOutcome::Succeeded.into(),
        summary: "dispatched one work item".into(),
    };
    app.control()
        .await
        .report_cycle_result(with_token(request, &agent_token(holder)))
        .await
        .map(|r| r.into_inner().report.unwrap())
}

#[tokio::test]
async fn cycle_reports_are_accepted_only_with_the_live_holders_token() {
    let app = spawn_app().await;
    let lease = acquire(&app, "job/lead", "agent-a", 30).await.unwrap();
    let first = report(&app, "agent-a", lease.fencing_token, "cycle-1").await.unwrap();
    assert_eq!((first.fencing_token, first.outcome), (1, pb::CycleOutcome::Succeeded as i32));
    let again = report(&app, "agent-a", lease.fencing_token, "cycle-1").await.unwrap();
    assert_eq!(again.report_time, first.report_time, "a repeated cycle id returns the first report");

    let wrong_holder = report(&app, "agent-b", lease.fencing_token, "cycle-2").await.unwrap_err();
    assert_eq!(reason(&wrong_holder), "LEASE_STALE_TOKEN");
    app.advance_db_clock(31);
    let next = acquire(&app, "job/lead", "agent-b", 30).await.unwrap();
    let stale = report(&app, "agent-a", lease.fencing_token, "cycle-3").await.unwrap_err();
    assert_eq!((stale.code(), reason(&stale).as_str()), (Code::FailedPrecondition, "LEASE_STALE_TOKEN"));
    assert!(stale.message().contains("agent-b"), "names the current holder: {}", stale.message());
    report(&app, "agent-b", next.fencing_token, "cycle-3").await.unwrap();

    let unset = pb::ReportCycleResultRequest {
        lease_name: "job/lead".into(),
        holder: "agent-b".into(),
        fencing_token: next.fencing_token,
        cycle_id: "cycle-4".into(),
        outcome: 0,
        summary: String::new(),
    };
    let err = app
        .control()
        .await
        .report_cycle_result(with_token(unset, &agent_token("agent-b")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let refused_for_readers =
        pb::ReportCycleResultRequest { cycle_id: "cycle-5".into(), ..Default::default() };
    let err = app
        .control()
        .await
        .report_cycle_result(with_token(refused_for_readers, READER_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    app.stop().await;
}

async fn acquire_as(
    app: &TestApp,
    name: &str,
    holder: &str,
    token: &str,
) -> Result<pb::Lease, tonic::Status> {
    let request = pb::AcquireLeaseRequest { name: name.into(), holder: holder.into(), duration_seconds: 30 };
    app.control().await.acquire_lease(with_token(request, token)).await.map(|r| r.into_inner().lease.unwrap())
}

#[tokio::test]
async fn a_lease_belongs_to_the_calling_principal_and_replica_names_are_reserved() {
    let app = spawn_app().await;
    // The holder is the caller: naming someone else is refused, naming nobody means oneself.
    let other = acquire_as(&app, "job/nightly", "someone-else", AGENT_TOKEN).await.unwrap_err();
    assert_eq!((other.code(), reason(&other).as_str()), (Code::PermissionDenied, "HOLDER_NOT_CALLER"));
    let held = acquire_as(&app, "job/nightly", "", AGENT_TOKEN).await.unwrap();
    assert_eq!(held.holder, "agent");

    // Another principal can neither renew nor release it, even with the right token.
    let renew = pb::RenewLeaseRequest {
        name: "job/nightly".into(),
        holder: "a".into(),
        fencing_token: held.fencing_token,
        duration_seconds: 30,
    };
    let denied = app.control().await.renew_lease(with_token(renew, &agent_token("a"))).await.unwrap_err();
    assert_eq!((denied.code(), reason(&denied).as_str()), (Code::PermissionDenied, "NOT_LEASE_HOLDER"));
    let release = pb::ReleaseLeaseRequest {
        name: "job/nightly".into(),
        holder: String::new(),
        fencing_token: held.fencing_token,
    };
    let denied = app.control().await.release_lease(with_token(release, OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(reason(&denied), "NOT_LEASE_HOLDER", "not even an operator");

    // Names under warp/ and runtime/ belong to the replicas.
    for name in ["warp/reconciler", "runtime/fixture-trio"] {
        for token in [AGENT_TOKEN, OPERATOR_TOKEN] {
            let reserved = acquire_as(&app, name, "", token).await.unwrap_err();
            assert_eq!(reason(&reserved), "LEASE_NAME_RESERVED", "{name}");
        }
    }

    // A control agent holds agent/<id> as that agent, or with an active delegation from it.
    assert_eq!(
        reason(&acquire_as(&app, "agent/lead", "", &agent_token("research")).await.unwrap_err()),
        "NO_STANDING"
    );
    acquire_as(&app, "agent/research", "", &agent_token("research")).await.unwrap();
    let grant = pb::GrantDelegationRequest {
        runtime: String::new(),
        grantor_agent_id: "lead".into(),
        delegate_agent_id: "research".into(),
        rights: vec!["dispatch".into()],
        trust: pb::TrustLevel::Restricted as i32,
        parent_id: String::new(),
        request_id: "grant-1".into(),
        validate_only: false,
    };
    app.control().await.grant_delegation(with_token(grant, OPERATOR_TOKEN)).await.unwrap();
    let delegated = acquire_as(&app, "agent/lead", "", &agent_token("research")).await.unwrap();
    assert_eq!(delegated.holder, "research");
    acquire_as(&app, "agent/writer", "", OPERATOR_TOKEN).await.expect("operators may hold any agent lease");

    // Readers see who holds a lease and until when, not the token that acts in its name.
    let get = with_token(pb::GetLeaseRequest { name: "agent/lead".into() }, READER_TOKEN);
    let seen = app.control().await.get_lease(get).await.unwrap().into_inner().lease.unwrap();
    assert_eq!((seen.holder.as_str(), seen.fencing_token, seen.held), ("research", 0, true));
    let list = with_token(pb::ListLeasesRequest::default(), &agent_token("research"));
    let leases = app.control().await.list_leases(list).await.unwrap().into_inner().leases;
    for lease in &leases {
        assert_eq!(lease.fencing_token != 0, lease.holder == "research", "{lease:?}");
    }
    app.stop().await;
}

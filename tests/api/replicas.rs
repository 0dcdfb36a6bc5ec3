//! Several replicas on one database and one runtime: rollouts run once, under the runtime
//! lease, and are resumed by another replica only once the first let go of the runtime.

use std::time::Duration;

use chrono::Utc;
use jhf_warp::control::failpoints::STOP_AFTER_APPLY;
use jhf_warp::domain::audit::NewAuditEvent;
use jhf_warp::domain::idempotency::IdempotencyKey;
use jhf_warp::domain::lease;
use jhf_warp::domain::rollout::{Rollout, RolloutState as State};
use jhf_warp::pb::v1::{self as pb, RolloutState};
use jhf_warp::store::{Fence, SaveRollout, Store, StoreOptions};

use crate::helpers::{
    AppOptions, TestApp, consistently, eventually, fresh_database_url, spawn_app, spawn_app_with,
};
use crate::rollout::{config_text, desired_trio_change, follow, get, plan, start};

/// A second replica on `first`'s database and runtime files.
async fn second_replica(first: &TestApp) -> TestApp {
    spawn_app_with(AppOptions {
        reuse: Some((first.data_dir.clone(), first.database_url.clone())),
        ..AppOptions::default()
    })
    .await
}

fn final_steps(rollout: &pb::Rollout) -> usize {
    let finals =
        [RolloutState::Succeeded as i32, RolloutState::Failed as i32, RolloutState::RolledBack as i32];
    rollout.steps.iter().filter(|step| finals.contains(&step.state)).count()
}

#[tokio::test]
async fn a_rollout_accepted_by_one_replica_runs_once_and_every_replica_sees_it_finish() {
    let first = spawn_app().await;
    let second = second_replica(&first).await;
    desired_trio_change(&first).await;
    let patch = plan(&first, pb::PlanKind::Apply).await.unwrap();
    let accepted = start(&first, &patch.id, false, "rollout-1").await.unwrap();
    let seen_elsewhere = follow(&second, &accepted.id).await;
    assert_eq!(seen_elsewhere.state, RolloutState::Succeeded as i32, "{seen_elsewhere:?}");
    assert_eq!(final_steps(&seen_elsewhere), 1, "one final state: {:?}", seen_elsewhere.steps);
    assert!(config_text(&first, "trio").contains("\"qa\""));
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn an_unfinished_rollout_is_resumed_only_after_its_replica_let_go_of_the_runtime() {
    let first =
        spawn_app_with(AppOptions { failpoints: vec![STOP_AFTER_APPLY], ..AppOptions::default() }).await;
    desired_trio_change(&first).await;
    let patch = plan(&first, pb::PlanKind::Apply).await.unwrap();
    let rollout = start(&first, &patch.id, false, "rollout-1").await.unwrap();
    eventually("the first replica to write and stop there", async || {
        (get(&first, &rollout.id).await.state == RolloutState::Applying as i32
            && config_text(&first, "trio").contains("\"qa\""))
        .then_some(())
    })
    .await;

    // The first replica is alive and holds the runtime lease: the second leaves the rollout be.
    let second = second_replica(&first).await;
    consistently("the rollout to stay with its live replica", Duration::from_millis(2500), async || {
        get(&second, &rollout.id).await.state == RolloutState::Applying as i32
    })
    .await;

    let temp = first.stop().await;
    let done = follow(&second, &rollout.id).await;
    assert_eq!(done.state, RolloutState::Succeeded as i32, "{done:?}");
    assert!(done.steps.iter().any(|s| s.message.contains("takeover")), "{:?}", done.steps);
    assert_eq!(final_steps(&done), 1);
    second.stop().await;
    drop(temp);
}

#[tokio::test]
async fn a_rollout_write_from_a_lost_lease_or_a_stale_version_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&fresh_database_url(dir.path()).await, StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    let take = async |holder: &str| {
        store
            .change_lease(
                "warp/runtime/x",
                |current, now| lease::acquire(current, holder, 30, now),
                |_, _| None,
            )
            .await
            .unwrap()
            .unwrap()
    };
    let held = take("replica-a").await;
    let fence = Fence { lease: held.name.clone(), holder: "replica-a".into(), token: held.token };
    let now = Utc::now();
    let pending = Rollout {
        id: "ro-1".into(),
        runtime: "x".into(),
        plan_id: "plan".into(),
        state: State::Pending,
        dry_run: false,
        actor: "op".into(),
        base_hash: "base".into(),
        target_hash: None,
        pre_image: None,
        error: None,
        steps: Vec::new(),
        created_at: now,
        updated_at: now,
        version: 0,
    };
    let key = IdempotencyKey { scope: "test".into(), request_id: "r".into(), fingerprint: "f".into() };
    let audit = NewAuditEvent {
        actor: "op".into(),
        method: "test".into(),
        resource: "rollout/ro-1".into(),
        request_id: "r".into(),
        outcome: "OK".into(),
        summary: "created".into(),
    };
    store.create_rollout(&pending, &key, &audit).await.unwrap();

    let mut failed = pending.clone();
    failed.advance(State::Failed, "nothing was written", now).unwrap();
    assert_eq!(store.save_rollout_fenced(&failed, &fence, None).await.unwrap(), SaveRollout::Saved);
    // Another writer still holding version 0 cannot flip the outcome.
    let mut succeeded = pending.clone();
    succeeded.advance(State::Succeeded, "verified", now).unwrap();
    assert_eq!(store.save_rollout_fenced(&succeeded, &fence, None).await.unwrap(), SaveRollout::Stale);
    assert_eq!(store.rollout("ro-1").await.unwrap().unwrap().state, State::Failed);

    // Once the lease moved, the old holder writes nothing, whatever the version.
    store
        .change_lease(
            "warp/runtime/x",
            |current, now| lease::release(current, "replica-a", held.token, now),
            |_, _| None,
        )
        .await
        .unwrap()
        .unwrap();
    take("replica-b").await;
    let mut stored = store.rollout("ro-1").await.unwrap().unwrap();
    stored.note("late", now);
    assert!(matches!(
        store.save_rollout_fenced(&stored, &fence, None).await.unwrap(),
        SaveRollout::Fenced(_)
    ));
    assert_eq!(store.rollout("ro-1").await.unwrap().unwrap().steps.len(), failed.steps.len());
}

async fn observer_holder(app: &TestApp) -> String {
    let request = crate::helpers::with_token(
        pb::GetLeaseRequest {
            name: jhf_warp::control::ownership::runtime_lease_name(
                jhf_warp::control::ownership::OBSERVER_LEASE_PREFIX,
                "default",
            ),
        },
        crate::helpers::READER_TOKEN,
    );
    match app.control().await.get_lease(request).await {
        Ok(answer) => answer.into_inner().lease.map(|l| l.holder).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test]
async fn one_replica_observes_the_runtime_and_another_takes_over_when_it_stops() {
    let options =
        |replica| AppOptions { observe_interval_secs: 1, replica_id: Some(replica), ..AppOptions::default() };
    let first = spawn_app_with(options("replica-1")).await;
    let second = spawn_app_with(AppOptions {
        reuse: Some((first.data_dir.clone(), first.database_url.clone())),
        ..options("replica-2")
    })
    .await;
    let holder = eventually("a replica to take the observer lease", async || {
        Some(observer_holder(&first).await).filter(|h| !h.is_empty())
    })
    .await;
    consistently("one observer while both run", Duration::from_millis(2500), async || {
        observer_holder(&second).await == holder
    })
    .await;
    let (stopped, running, other) =
        if holder == "replica-1" { (first, second, "replica-2") } else { (second, first, "replica-1") };
    let temp = stopped.stop().await;
    eventually("the other replica to take over observing", async || {
        (observer_holder(&running).await == other).then_some(())
    })
    .await;
    running.stop().await;
    drop(temp);
}

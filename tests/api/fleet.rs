//! A fleet of runtimes: the registry (RPCs and the runtimes file), runtime-scoped calls and
//! their isolation, fleet views, and fleet rollouts in waves — on fixture runtimes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jhf_warp::pb::v1::{self as pb, RolloutState, RuntimeHealth};
use tonic::Code;

use crate::helpers::{
    AppOptions, OPERATOR_TOKEN, READER_TOKEN, TestApp, consistently, eventually, eventually_within, reason,
    spawn_app, spawn_app_with, with_token,
};
use crate::rollout::trio_minus_writer_plus_qa;

pub(crate) fn spec(name: &str, address: &str, labels: &[(&str, &str)]) -> pb::RuntimeSpec {
    pb::RuntimeSpec {
        name: name.to_owned(),
        address: address.to_owned(),
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    }
}

pub(crate) async fn register(
    app: &TestApp,
    spec: pb::RuntimeSpec,
    request_id: &str,
) -> Result<pb::Runtime, tonic::Status> {
    let request = pb::RegisterRuntimeRequest {
        runtime: Some(spec),
        request_id: request_id.to_owned(),
        validate_only: false,
    };
    app.control()
        .await
        .register_runtime(with_token(request, OPERATOR_TOKEN))
        .await
        .map(|r| r.into_inner().runtime.unwrap())
}

pub(crate) async fn runtimes(app: &TestApp, selector: &str) -> Vec<pb::Runtime> {
    let request = pb::ListRuntimesRequest { selector: selector.to_owned(), ..Default::default() };
    app.control().await.list_runtimes(with_token(request, READER_TOKEN)).await.unwrap().into_inner().runtimes
}

pub(crate) fn names(list: &[pb::Runtime]) -> Vec<String> {
    list.iter().map(|r| r.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default()).collect()
}

/// The field a refusal names, with its code.
pub(crate) fn refused_field(status: &tonic::Status) -> (Code, String) {
    use tonic_types::StatusExt;
    let field = status
        .get_error_details()
        .bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default();
    (status.code(), field)
}

/// The observed topology of one runtime.
pub(crate) async fn observed_in(app: &TestApp, runtime: &str) -> pb::Topology {
    let request =
        pb::GetTopologyRequest { runtime: runtime.to_owned(), read_mode: pb::ReadMode::Fresh.into() };
    app.topology()
        .await
        .get_topology(with_token(request, READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .topology
        .unwrap()
}

/// The team of the trio change, for the whole fleet: workspaces left to each runtime (a path is
/// one host's; every fleet runtime has its own state dir).
pub(crate) async fn fleet_team(app: &TestApp, runtime: &str) -> pb::Topology {
    let mut team = trio_minus_writer_plus_qa(&observed_in(app, runtime).await);
    for node in &mut team.nodes {
        node.workspace.clear();
    }
    team
}

/// A fleet runtime's fixture copy (`runtimes/<name>/` under the data dir).
pub(crate) fn config_of(app: &TestApp, runtime: &str) -> String {
    let dir = app.data_dir.join("runtimes").join(runtime).join("runtime/trio/state/openclaw.json");
    std::fs::read_to_string(dir).unwrap()
}

#[tokio::test]
async fn runtimes_are_registered_listed_and_bad_definitions_refused_with_the_field_named() {
    let app = spawn_app().await;
    assert_eq!(names(&runtimes(&app, "").await), ["default"]);
    let blue =
        register(&app, spec("blue", "fixture:trio", &[("env", "staging"), ("team", "editorial")]), "r-blue")
            .await
            .unwrap();
    assert_eq!(blue.source, pb::RuntimeSource::Api as i32);
    assert!(!blue.etag.is_empty());
    let replay =
        register(&app, spec("blue", "fixture:trio", &[("env", "staging"), ("team", "editorial")]), "r-blue")
            .await
            .unwrap();
    assert_eq!(replay.etag, blue.etag, "a retried registration answers the first");
    register(&app, spec("green", "fixture:studio12", &[("env", "prod")]), "r-green").await.unwrap();
    assert_eq!(names(&runtimes(&app, "").await), ["blue", "default", "green"]);
    assert_eq!(names(&runtimes(&app, "env=prod").await), ["green"]);
    assert_eq!(names(&runtimes(&app, "env!=prod,team").await), ["blue"]);

    // Every runtime is observed by its owner and shows up healthy, owned and described.
    let healthy = eventually("every runtime observed", async || {
        let all = runtimes(&app, "").await;
        all.iter().all(|r| r.health == RuntimeHealth::Healthy as i32 && !r.owner.is_empty()).then_some(all)
    })
    .await;
    assert!(healthy.iter().all(|r| r.agents > 0 && !r.config_hash.is_empty()), "{healthy:?}");

    // Bad definitions name the field and change nothing.
    let token_dir = tempfile::tempdir().unwrap();
    let open_token = token_dir.path().join("open");
    std::fs::write(&open_token, "secret").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open_token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let gateway = |token_file: &Path| pb::RuntimeSpec {
        token_file: token_file.display().to_string(),
        ..spec("gw", "gateway:ws://127.0.0.1:1", &[])
    };
    for (bad, field) in [
        (spec("Blue", "fixture:trio", &[]), "runtime.name"),
        (spec("blue", "fixture:trio", &[]), "runtime.name"),
        (spec("x", "ftp://somewhere", &[]), "runtime.address"),
        (spec("gw", "gateway:ws://127.0.0.1:1", &[]), "runtime.token_file"),
        (gateway(&token_dir.path().join("missing")), "runtime.token_file"),
        (gateway(&open_token), "runtime.token_file"),
        (spec("x", "fixture:trio", &[("Env", "prod")]), "runtime.labels"),
    ] {
        let refused = register(&app, bad.clone(), &format!("bad-{}-{field}", bad.name)).await.unwrap_err();
        assert_eq!(
            refused_field(&refused),
            (Code::InvalidArgument, field.to_owned()),
            "{bad:?}: {refused:?}"
        );
        assert!(!refused.message().contains("secret"), "{refused:?}");
    }
    assert_eq!(names(&runtimes(&app, "").await), ["blue", "default", "green"], "nothing was registered");

    // Naming runtimes: unknown is NOT_FOUND, none of several is INVALID_ARGUMENT naming them.
    let get = |name: &str| pb::GetRuntimeRequest { name: name.to_owned() };
    let unknown = app.control().await.get_runtime(with_token(get("nope"), READER_TOKEN)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let summary = pb::GetDriftSummaryRequest { runtime: String::new() };
    let ambiguous = app.drift().await.get_drift_summary(with_token(summary, READER_TOKEN)).await.unwrap_err();
    assert_eq!(refused_field(&ambiguous), (Code::InvalidArgument, "runtime".to_owned()));
    assert!(ambiguous.message().contains("blue, default, green"), "{ambiguous:?}");
    let elsewhere = pb::GetDriftSummaryRequest { runtime: "nope".to_owned() };
    assert_eq!(
        app.drift().await.get_drift_summary(with_token(elsewhere, READER_TOKEN)).await.unwrap_err().code(),
        Code::NotFound
    );

    // Updates go under the etag; the runtime of --runtime belongs to its flag.
    let stale = pb::UpdateRuntimeRequest {
        runtime: Some(spec("blue", "fixture:trio", &[("env", "prod")])),
        etag: "\"blue-0\"".to_owned(),
        request_id: "u-1".to_owned(),
        validate_only: false,
    };
    let refused = app.control().await.update_runtime(with_token(stale, OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let paused = pb::RuntimeSpec { paused: true, ..spec("blue", "fixture:trio", &[("env", "prod")]) };
    let update = pb::UpdateRuntimeRequest {
        runtime: Some(paused),
        etag: blue.etag.clone(),
        request_id: "u-2".to_owned(),
        validate_only: false,
    };
    let updated =
        app.control().await.update_runtime(with_token(update, OPERATOR_TOKEN)).await.unwrap().into_inner();
    assert_eq!(updated.runtime.unwrap().health, RuntimeHealth::Paused as i32);
    assert_eq!(names(&runtimes(&app, "env=prod").await), ["blue", "green"]);
    let default = pb::UpdateRuntimeRequest {
        runtime: Some(spec("default", "fixture:trio", &[])),
        etag: String::new(),
        request_id: "u-3".to_owned(),
        validate_only: false,
    };
    let refused = app.control().await.update_runtime(with_token(default, OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::FailedPrecondition, "RUNTIME_FROM_FILE"));

    // The summary counts by health and label.
    let summary = app
        .control()
        .await
        .get_fleet_summary(with_token(pb::GetFleetSummaryRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    let total = summary.total.unwrap();
    assert_eq!(total.runtimes, 3);
    let count = |health: RuntimeHealth| {
        total.by_health.iter().find(|h| h.health == health as i32).map_or(0, |h| h.runtimes)
    };
    assert_eq!((count(RuntimeHealth::Healthy), count(RuntimeHealth::Paused)), (2, 1));
    assert!(
        summary
            .by_label
            .iter()
            .any(|l| l.key == "env" && l.value == "prod" && l.counts.as_ref().unwrap().runtimes == 2)
    );

    // Deregistering removes the runtime from every replica's fleet.
    let gone = pb::DeregisterRuntimeRequest {
        name: "green".to_owned(),
        request_id: "d-1".to_owned(),
        validate_only: false,
    };
    app.control().await.deregister_runtime(with_token(gone, OPERATOR_TOKEN)).await.unwrap();
    assert_eq!(names(&runtimes(&app, "").await), ["blue", "default"]);
    assert_eq!(
        app.control().await.get_runtime(with_token(get("green"), READER_TOKEN)).await.unwrap_err().code(),
        Code::NotFound
    );
    app.stop().await;
}

#[tokio::test]
async fn desired_drift_and_rollouts_of_one_runtime_leave_the_others_alone() {
    let app = spawn_app().await;
    register(&app, spec("blue", "fixture:trio", &[]), "r-blue").await.unwrap();
    let team = trio_minus_writer_plus_qa(&observed_in(&app, "blue").await);
    let stored = crate::desired::put_in(&app, "blue", team, "", "p-1").await.unwrap();
    assert_eq!(stored.desired.unwrap().runtime, "blue");
    let none = pb::GetDesiredTopologyRequest { runtime: "default".to_owned(), generation: 0 };
    assert_eq!(
        app.topology().await.get_desired_topology(with_token(none, READER_TOKEN)).await.unwrap_err().code(),
        Code::NotFound
    );

    let plan = |runtime: &str| pb::PlanPatchRequest {
        runtime: runtime.to_owned(),
        kind: pb::PlanKind::Apply.into(),
    };
    let refused = app.drift().await.plan_patch(with_token(plan("default"), READER_TOKEN)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "default has no desired topology");
    let planned = app
        .drift()
        .await
        .plan_patch(with_token(plan("blue"), READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert_eq!(planned.runtime, "blue");
    // A plan is its runtime's: naming another runtime finds nothing.
    let create = |runtime: &str, request_id: &str| pb::CreateRolloutRequest {
        runtime: runtime.to_owned(),
        plan_id: planned.id.clone(),
        dry_run: false,
        request_id: request_id.to_owned(),
        validate_only: false,
    };
    let elsewhere = app
        .drift()
        .await
        .create_rollout(with_token(create("default", "c-0"), OPERATOR_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), Code::NotFound);
    let rollout = app
        .drift()
        .await
        .create_rollout(with_token(create("", "c-1"), OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .rollout
        .unwrap();
    assert_eq!(rollout.runtime, "blue");
    let done = eventually("the rollout to end", async || {
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
        [RolloutState::Succeeded as i32, RolloutState::Failed as i32, RolloutState::RolledBack as i32]
            .contains(&got.state)
            .then_some(got)
    })
    .await;
    assert_eq!(done.state, RolloutState::Succeeded as i32, "{done:?}");
    assert!(config_of(&app, "blue").contains("\"qa\""));
    assert!(
        !app.runtime_state_dir("trio").join("openclaw.json").exists()
            || !crate::rollout::config_text(&app, "trio").contains("\"qa\"")
    );
    let list = |runtime: &str| pb::ListRolloutsRequest { runtime: runtime.to_owned(), ..Default::default() };
    assert!(
        app.drift()
            .await
            .list_rollouts(with_token(list("default"), READER_TOKEN))
            .await
            .unwrap()
            .into_inner()
            .rollouts
            .is_empty()
    );
    assert_eq!(
        app.drift()
            .await
            .list_rollouts(with_token(list("blue"), READER_TOKEN))
            .await
            .unwrap()
            .into_inner()
            .rollouts
            .len(),
        1
    );
    let wrong = pb::GetRolloutRequest { runtime: "default".to_owned(), rollout_id: rollout.id.clone() };
    assert_eq!(
        app.drift().await.get_rollout(with_token(wrong, READER_TOKEN)).await.unwrap_err().code(),
        Code::NotFound
    );
    app.stop().await;
}

/// Writes a runtimes file of fixture runtimes, each `(name, labels)`.
pub(crate) fn runtimes_file(dir: &Path, runtimes: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("runtimes.yaml");
    let mut text = String::from("runtimes:\n");
    for (name, labels) in runtimes {
        text.push_str(&format!("  - name: {name}\n    address: fixture:trio\n    labels: {{ {labels} }}\n"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn the_runtimes_file_is_reread_and_a_bad_one_keeps_the_set_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let file = runtimes_file(dir.path(), &[("one", "env: prod")]);
    let app = spawn_app_with(AppOptions { runtimes_file: Some(file.clone()), ..AppOptions::default() }).await;
    assert_eq!(names(&runtimes(&app, "").await), ["one"]);
    runtimes_file(dir.path(), &[("one", "env: prod"), ("two", "env: staging")]);
    eventually("the new runtime to appear", async || {
        (names(&runtimes(&app, "").await) == ["one", "two"]).then_some(())
    })
    .await;
    std::fs::write(&file, "runtimes:\n  - name: Three\n    address: fixture:trio\n").unwrap();
    consistently("a bad file to change nothing", Duration::from_secs(3), async || {
        names(&runtimes(&app, "").await) == ["one", "two"]
    })
    .await;
    // A runtime of the file cannot be deregistered by RPC: the file owns it.
    let gone = pb::DeregisterRuntimeRequest {
        name: "one".to_owned(),
        request_id: "d-1".to_owned(),
        validate_only: false,
    };
    let refused = app.control().await.deregister_runtime(with_token(gone, OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(reason(&refused), "RUNTIME_FROM_FILE");
    runtimes_file(dir.path(), &[("two", "env: staging")]);
    eventually("a runtime left the file", async || {
        (names(&runtimes(&app, "").await) == ["two"]).then_some(())
    })
    .await;
    app.stop().await;
}

/// A database of the single-runtime days, migrated: its rows belong to the runtime `default`,
/// which `--runtime` now names, and the service reads them as before.
#[tokio::test]
async fn an_existing_single_runtime_database_becomes_the_runtime_default() {
    use chrono::Utc;
    use jhf_warp::domain::reconcile::ReconcileMode;
    use jhf_warp::domain::rollout::{Rollout, RolloutState as State};
    use jhf_warp::domain::schedule::Schedule;
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{ConnectionTrait, Statement};

    let dir = tempfile::tempdir().unwrap();
    let url = crate::helpers::fresh_database_url(dir.path()).await;
    let db = sea_orm::Database::connect(&url).await.unwrap();
    // The schema as it was before fleets (the first sixteen migrations).
    Migrator::up(&db, Some(16)).await.unwrap();
    let backend = db.get_database_backend();
    let exec = async |sql: String, values: Vec<sea_orm::Value>| {
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await.unwrap();
    };
    let p = |n: usize| {
        if backend == sea_orm::DatabaseBackend::Postgres { format!("${n}") } else { "?".to_owned() }
    };
    let now = Utc::now();
    let team = jhf_warp::domain::Topology::new(Vec::new(), Vec::new(), Vec::new());
    for generation in [1i64, 2] {
        exec(
            format!(
                "INSERT INTO desired_topologies (generation, etag, revision, author, created_at, topology_json) VALUES ({}, {}, {}, {}, {}, {})",
                p(1), p(2), p(3), p(4), p(5), p(6)
            ),
            vec![
                generation.into(),
                format!("\"{generation}-{}\"", team.revision).into(),
                team.revision.clone().into(),
                "op".into(),
                now.into(),
                serde_json::to_string(&team).unwrap().into(),
            ],
        )
        .await;
    }
    let schedule = Schedule {
        interval_secs: 120,
        mode: ReconcileMode::Observe,
        paused: true,
        generation: 3,
        updated_at: Some(now),
        updated_by: "op".into(),
    };
    exec(
        format!("INSERT INTO reconcile_schedules (runtime, generation, schedule_json, updated_at) VALUES ({}, {}, {}, {})", p(1), p(2), p(3), p(4)),
        vec!["fixture:trio".into(), 3i64.into(), serde_json::to_string(&schedule).unwrap().into(), now.into()],
    )
    .await;
    let rollout = Rollout {
        id: "ro-old".into(),
        runtime: "fixture:trio".into(),
        plan_id: "plan-old".into(),
        state: State::Succeeded,
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
    exec(
        format!(
            "INSERT INTO rollouts (id, runtime, plan_id, state, created_at, updated_at, rollout_json, version) VALUES ({}, {}, {}, {}, {}, {}, {}, {})",
            p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8)
        ),
        vec![
            "ro-old".into(),
            "fixture:trio".into(),
            "plan-old".into(),
            "SUCCEEDED".into(),
            now.into(),
            now.into(),
            serde_json::to_string(&rollout).unwrap().into(),
            0i64.into(),
        ],
    )
    .await;
    db.close().await.unwrap();

    // The service migrates at start and serves the old rows as the runtime `default`.
    let app = spawn_app_with(AppOptions {
        reuse: Some((dir.path().to_path_buf(), url.clone())),
        ..AppOptions::default()
    })
    .await;
    let desired = pb::GetDesiredTopologyRequest { runtime: String::new(), generation: 0 };
    let desired = app
        .topology()
        .await
        .get_desired_topology(with_token(desired, READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    let desired = desired.desired.unwrap();
    assert_eq!((desired.generation, desired.runtime.as_str()), (2, "default"));
    let got = pb::GetScheduleRequest { runtime: "default".to_owned() };
    let got = app.control().await.get_schedule(with_token(got, READER_TOKEN)).await.unwrap().into_inner();
    assert_eq!(got.schedule.unwrap().interval_seconds, 120);
    let old = pb::GetRolloutRequest { runtime: String::new(), rollout_id: "ro-old".to_owned() };
    let old = app
        .drift()
        .await
        .get_rollout(with_token(old, READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .rollout
        .unwrap();
    assert_eq!(old.runtime, "default");
    // The next desired revision continues the runtime's numbering.
    let team = crate::desired::observed(&app).await;
    let stored =
        crate::desired::put_in(&app, "default", team, &desired.etag, "after-migration").await.unwrap();
    assert_eq!(stored.desired.unwrap().generation, 3);
    app.stop().await;
}

/// A Gateway that accepts connections and never answers (a black hole, the slowest failure):
/// the runtime is reported UNREACHABLE on its own, and a fresh read of another runtime answers
/// while one of it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_runtime_is_reported_on_its_own_and_never_holds_the_others() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap(); // never accepts
    let token_dir = tempfile::tempdir().unwrap();
    let token = token_dir.path().join("away.token");
    std::fs::write(&token, "a-gateway-token-0123456789").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let away = pb::RuntimeSpec {
        token_file: token.display().to_string(),
        ..spec("away", &format!("gateway:ws://{}", hole.local_addr().unwrap()), &[])
    };
    register(&app, away, "r-away").await.unwrap();
    register(&app, spec("blue", "fixture:trio", &[]), "r-blue").await.unwrap();
    // A read waits at most the runtime timeout (10 s) and the watchdog, which records the
    // failure for every replica to see, looks every 30 s.
    let window = Duration::from_secs(90);
    let seen = eventually_within("away unreachable, the others healthy", window, async || {
        let all = runtimes(&app, "").await;
        let health: BTreeMap<String, i32> =
            all.iter().map(|r| (r.spec.as_ref().unwrap().name.clone(), r.health)).collect();
        (health.get("away") == Some(&(RuntimeHealth::Unreachable as i32))
            && health.get("blue") == Some(&(RuntimeHealth::Healthy as i32))
            && health.get("default") == Some(&(RuntimeHealth::Healthy as i32)))
        .then_some(all)
    })
    .await;
    let away = seen.iter().find(|r| r.spec.as_ref().unwrap().name == "away").unwrap();
    assert!(!away.health_detail.is_empty(), "says why: {away:?}");
    assert!(!away.health_detail.contains("a-gateway-token"), "no secret in the detail");

    // A fresh read of `away` hangs on the black hole; one of `blue` meanwhile answers.
    let client = app.topology().await;
    let fresh = |runtime: &str| pb::GetTopologyRequest {
        runtime: runtime.to_owned(),
        read_mode: pb::ReadMode::Fresh.into(),
    };
    let mut stuck = client.clone();
    let hanging = tokio::spawn({
        let request = fresh("away");
        async move { stuck.get_topology(with_token(request, READER_TOKEN)).await }
    });
    let blue = client.clone().get_topology(with_token(fresh("blue"), READER_TOKEN)).await.unwrap();
    assert!(!blue.into_inner().topology.unwrap().nodes.is_empty());
    // The read of away either still waits on the black hole or was refused at once as
    // unavailable; it never answers with a topology.
    if hanging.is_finished() {
        let refused = hanging.await.unwrap().unwrap_err();
        assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    } else {
        hanging.abort();
    }
    drop(hole);
    app.stop().await;
}

/// `ctl --runtime` scopes every runtime command: the pictures and tables of one runtime, and
/// without it a fleet of several is refused with the choices named.
#[tokio::test]
async fn ctl_reads_the_runtime_it_is_given() {
    use crate::ctl::{ctl, text};
    let dir = tempfile::tempdir().unwrap();
    let file = runtimes_file(dir.path(), &[("blue", "env: prod"), ("green", "env: staging")]);
    let app = spawn_app_with(AppOptions { runtimes_file: Some(file), ..AppOptions::default() }).await;
    eventually("both observed", async || {
        let all = runtimes(&app, "").await;
        all.iter().all(|r| r.health == RuntimeHealth::Healthy as i32).then_some(())
    })
    .await;
    for args in [
        &["topology", "show", "--format", "json"][..],
        &["topology", "show", "--format", "mermaid"][..],
        &["drift", "list"][..],
        &["status"][..],
    ] {
        let scoped: Vec<&str> = ["--runtime", "green"].iter().chain(args).copied().collect();
        let answered = ctl(&app, READER_TOKEN, &scoped).await;
        assert!(answered.status.success(), "{args:?}: {}", text(&answered));
        let refused = ctl(&app, READER_TOKEN, args).await;
        assert_eq!(refused.status.code(), Some(1), "{args:?}: {}", text(&refused));
        assert!(text(&refused).contains("blue, green"), "{args:?}: {}", text(&refused));
    }
    app.stop().await;
}

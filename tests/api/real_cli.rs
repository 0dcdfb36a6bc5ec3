//! Against the real `openclaw` CLI (npm `openclaw@2026.9.6`, Node 24), locally and over SSH.
//! Needs `JHF_WARP_TEST_OPENCLAW_BIN` (the CLI) — and for SSH `JHF_WARP_TEST_SSH` as
//! `user@host:port` plus `JHF_WARP_TEST_SSH_IDENTITY` and `JHF_WARP_TEST_SSH_KNOWN_HOSTS`.
//! `.ci/run` installs and starts all of it; without them these tests say so and return.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use jhf_warp::pb::v1::{self as pb, RolloutState};
use tonic::Code;

use crate::desired::{observed, put};
use crate::helpers::{
    AppOptions, OPERATOR_TOKEN, READER_TOKEN, TestApp, eventually_within, spawn_app_with, with_token,
};
use crate::rollout::{plan, start, trio_minus_writer_plus_qa};

/// Agent deletion alone takes ~12 s in the real CLI on a 2-core machine.
const ROLLOUT_WAIT: Duration = Duration::from_secs(240);

pub fn openclaw_bin() -> Option<String> {
    let bin = std::env::var("JHF_WARP_TEST_OPENCLAW_BIN").ok().filter(|b| !b.is_empty());
    if bin.is_none() {
        crate::helpers::left_out("real-CLI test (set JHF_WARP_TEST_OPENCLAW_BIN; .ci/run does)");
    }
    bin
}

/// A scratch state dir holding a copy of a fixture's state tree.
fn scratch_state(fixture: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    copy_tree(&crate::helpers::fixtures_dir().join(fixture).join("state"), &state);
    (dir, state)
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs the real CLI against `state` and returns its first JSON document.
pub fn cli_json(bin: &str, state: &Path, args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(args)
        .env("OPENCLAW_STATE_DIR", state)
        .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let start = text.find(['{', '[']).unwrap_or_else(|| panic!("no JSON from openclaw {args:?}: {text}"));
    serde_json::Deserializer::from_str(&text[start..]).into_iter().next().unwrap().unwrap()
}

pub async fn follow_slowly(app: &TestApp, rollout_id: &str) -> pb::Rollout {
    eventually_within("the rollout to end", ROLLOUT_WAIT, async || {
        let request = with_token(
            pb::GetRolloutRequest { runtime: String::new(), rollout_id: rollout_id.to_owned() },
            READER_TOKEN,
        );
        let rollout = app.drift().await.get_rollout(request).await.unwrap().into_inner().rollout.unwrap();
        [RolloutState::Succeeded, RolloutState::Failed, RolloutState::RolledBack]
            .iter()
            .any(|s| *s as i32 == rollout.state)
            .then_some(rollout)
    })
    .await
}

/// The bar's scenario on any CLI runtime: trio minus writer plus qa is planned, rolled out,
/// verified, and the CLI agrees afterwards; drift ends in sync.
async fn roll_out_trio_change(app: &TestApp, bin: &str, state: &Path) {
    put(app, trio_minus_writer_plus_qa(&observed(app).await), "", "desired-1").await.unwrap();
    let plan = plan(app, pb::PlanKind::Apply).await.unwrap();
    let rollout = start(app, &plan.id, false, "rollout-1").await.unwrap();
    let done = follow_slowly(app, &rollout.id).await;
    assert_eq!(done.state, RolloutState::Succeeded as i32, "{done:#?}");

    let validate = cli_json(bin, state, &["config", "validate", "--json"], None);
    assert_eq!(validate["valid"], true, "{validate}");
    let agents = cli_json(bin, state, &["agents", "list", "--json"], None);
    let mut ids: Vec<&str> = agents.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["lead", "qa", "research"]);
    for id in ["after-1", "after-2"] {
        let request =
            pb::ObserveNowRequest { runtime: String::new(), request_id: id.to_owned(), validate_only: false };
        let answer =
            app.drift().await.observe_now(with_token(request, OPERATOR_TOKEN)).await.unwrap().into_inner();
        if id == "after-2" {
            let summary = answer.summary.unwrap();
            assert!(summary.in_sync, "{summary:#?}");
        }
    }
}

#[tokio::test]
async fn a_local_runtime_is_changed_through_the_real_cli_and_verified() {
    let Some(bin) = openclaw_bin() else { return };
    let (_dir, state) = scratch_state("trio");
    let runtime = format!("local:{}", state.display());
    let app = spawn_app_with(AppOptions {
        runtime: Some(runtime),
        openclaw_bin: Some(bin.clone()),
        ..AppOptions::default()
    })
    .await;
    let request = with_token(pb::GetInventoryRequest::default(), READER_TOKEN);
    let inventory =
        app.topology().await.get_inventory(request).await.unwrap().into_inner().inventory.unwrap();
    assert_eq!(inventory.openclaw_version, "2026.9.6");
    assert!(inventory.config_valid, "the CLI validates the fixture: {:?}", inventory.config_issues);
    roll_out_trio_change(&app, &bin, &state).await;
    app.stop().await;
}

#[tokio::test]
async fn a_hand_edit_before_a_local_rollout_is_refused_and_left_byte_identical() {
    let Some(bin) = openclaw_bin() else { return };
    let (_dir, state) = scratch_state("trio");
    let runtime = format!("local:{}", state.display());
    let app = spawn_app_with(AppOptions {
        runtime: Some(runtime),
        openclaw_bin: Some(bin),
        ..AppOptions::default()
    })
    .await;
    put(&app, trio_minus_writer_plus_qa(&observed(&app).await), "", "desired-1").await.unwrap();
    let plan = plan(&app, pb::PlanKind::Apply).await.unwrap();
    let config = state.join("openclaw.json");
    let edited =
        std::fs::read_to_string(&config).unwrap().replace(r#"name: "Research""#, r#"name: "Research Desk""#);
    std::fs::write(&config, &edited).unwrap();
    let err = start(&app, &plan.id, false, "rollout-1").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
    app.stop().await;
}

#[tokio::test]
async fn a_drifted_local_runtime_refuses_apply_plans() {
    let Some(bin) = openclaw_bin() else { return };
    let (_dir, state) = scratch_state("drifted");
    let runtime = format!("local:{}", state.display());
    let app = spawn_app_with(AppOptions {
        runtime: Some(runtime),
        openclaw_bin: Some(bin),
        ..AppOptions::default()
    })
    .await;
    let request = with_token(pb::GetInventoryRequest::default(), READER_TOKEN);
    let inventory =
        app.topology().await.get_inventory(request).await.unwrap().into_inner().inventory.unwrap();
    let paths: Vec<&str> = inventory.config_issues.iter().map(|i| i.path.as_str()).collect();
    assert!(
        paths.contains(&"<root>") && paths.contains(&"agents.entries.QA Team"),
        "the CLI's own issues: {paths:?}"
    );
    assert!(
        inventory.findings.iter().any(|f| f.kind == pb::FindingKind::BindingUnknownAgent as i32),
        "semantic findings are jhf-warp's own, also when the CLI stops at schema errors"
    );
    put(&app, observed(&app).await, "", "desired-1").await.unwrap();
    let err = plan(&app, pb::PlanKind::Apply).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("retired_key/agent"), "{}", err.message());
    app.stop().await;
}

#[test]
fn the_real_cli_accepts_every_apply_patch_the_planner_produces_for_the_fixtures() {
    let Some(bin) = openclaw_bin() else { return };
    let goldens = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/plans");
    for (golden, fixture) in
        [("trio-minus-writer-plus-qa", "trio"), ("studio12-docs-sends-support-retired", "studio12")]
    {
        let (_dir, state) = scratch_state(fixture);
        let plan: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(goldens.join(format!("{golden}.json"))).unwrap())
                .unwrap();
        let report = cli_json(
            &bin,
            &state,
            &["config", "patch", "--stdin", "--dry-run", "--json"],
            Some(&plan["merge_patch"].to_string()),
        );
        assert_eq!(report["ok"], true, "{golden}: {report}");
    }
}

fn ssh_target() -> Option<(String, PathBuf, PathBuf)> {
    let target = std::env::var("JHF_WARP_TEST_SSH").ok().filter(|t| !t.is_empty());
    let identity = std::env::var("JHF_WARP_TEST_SSH_IDENTITY").ok().map(PathBuf::from);
    let known_hosts = std::env::var("JHF_WARP_TEST_SSH_KNOWN_HOSTS").ok().map(PathBuf::from);
    match (target, identity, known_hosts) {
        (Some(target), Some(identity), Some(known_hosts)) => Some((target, identity, known_hosts)),
        _ => {
            crate::helpers::left_out(
                "ssh test (set JHF_WARP_TEST_SSH, _IDENTITY, _KNOWN_HOSTS; .ci/run starts an sshd)",
            );
            None
        }
    }
}

#[tokio::test]
async fn an_ssh_runtime_is_changed_through_the_real_cli_and_verified() {
    let Some(bin) = openclaw_bin() else { return };
    let Some((target, identity, known_hosts)) = ssh_target() else { return };
    let (_dir, state) = scratch_state("trio");
    let runtime = format!("ssh://{target}{}", state.display());
    let options = AppOptions {
        runtime: Some(runtime),
        openclaw_bin: Some(bin.clone()),
        ssh_files: Some((identity, known_hosts)),
        ..AppOptions::default()
    };
    let app = spawn_app_with(options).await;
    roll_out_trio_change(&app, &bin, &state).await;
    app.stop().await;
}

/// The orchestration bar: ApplySetup{rollout: true} on a real installation adds the team's
/// agents, writes their bootstrap files, and the CLI still says the config is valid.
#[tokio::test]
async fn apply_setup_with_rollout_adds_agents_and_bootstrap_files_through_the_real_cli() {
    let Some(bin) = openclaw_bin() else { return };
    let (_dir, state) = scratch_state("trio");
    let runtime = format!("local:{}", state.display());
    let app = spawn_app_with(AppOptions {
        runtime: Some(runtime),
        openclaw_bin: Some(bin.clone()),
        ..AppOptions::default()
    })
    .await;
    let applied = apply_incident_setup(&app).await;
    assert_eq!(applied.files.len(), 6);
    let validate = cli_json(&bin, &state, &["config", "validate", "--json"], None);
    assert_eq!(validate["valid"], true, "{validate}");
    let agents = cli_json(&bin, &state, &["agents", "list", "--json"], None);
    let mut ids: Vec<&str> = agents.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["implementer", "lead", "research", "reviewer", "writer"]);
    app.stop().await;
}

/// ApplySetup of the incident team with a rollout, on any runtime: the rollout succeeds and
/// every bootstrap file is created carrying the managed-file marker.
pub async fn apply_incident_setup(app: &TestApp) -> pb::ApplySetupResponse {
    let current = put(app, observed(app).await, "", "desired-1").await.unwrap().desired.unwrap();
    let mut client =
        jhf_warp::pb::v1::orchestration_service_client::OrchestrationServiceClient::new(app.channel().await);
    let preview = client
        .preview_setup(with_token(crate::orchestration::incident_setup(true), READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .preview
        .unwrap();
    let request = pb::ApplySetupRequest {
        runtime: String::new(),
        preview_id: preview.id.clone(),
        etag: current.etag,
        request_id: "apply-1".into(),
        validate_only: false,
        rollout: true,
    };
    let applied = crate::orchestration::apply_setup(app, request).await.unwrap();
    let rollout = applied.rollout.clone().unwrap();
    assert_eq!(rollout.state, RolloutState::Succeeded as i32, "{rollout:#?}");
    assert!(!applied.files.is_empty());
    for file in &applied.files {
        assert_eq!(file.action, pb::FileWriteAction::Created as i32, "{file:?}");
        let text = std::fs::read_to_string(&file.path).unwrap();
        assert!(text.starts_with("<!-- jhf-warp:managed v1 sha256="), "{}", file.path);
    }
    applied
}

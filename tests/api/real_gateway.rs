//! Against a real OpenClaw Gateway (npm `openclaw@2026.9.6`), started by each test on a free
//! port with `HOME` and the state dir in scratch directories. Needs `JHF_WARP_TEST_OPENCLAW_BIN`
//! (`.ci/run` sets it); without it these tests say so and return.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jhf_warp::pb::v1::{self as pb, RolloutState};
use tonic::Code;

use crate::desired::{observed, put};
use crate::helpers::{
    AppOptions, OPERATOR_TOKEN, READER_TOKEN, TestApp, eventually_within, spawn_app_unready, with_token,
};
use crate::real_cli::{cli_json, follow_slowly, openclaw_bin};
use crate::rollout::{plan, start, trio_minus_writer_plus_qa};

pub const GATEWAY_TOKEN: &str = "gateway-test-token-0123456789";
/// A literal secret in the config (the Gateway redacts it in `config.get`).
const LITERAL_SECRET: &str = "123456:LITERAL-bot-token-value";

/// A Gateway process group, killed when dropped.
pub struct Gateway {
    child: Child,
    pub port: u16,
    pub state: PathBuf,
    home: PathBuf,
    bin: String,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // The launcher forks `openclaw-gateway`: stop the whole group.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Starts a Gateway on a copy of the trio's config (with a literal bot token for the lead)
    /// and waits until it answers.
    pub async fn start(bin: &str) -> Self {
        Self::start_in(bin, |state| {
            let fixture = crate::helpers::fixtures_dir().join("trio/state");
            // The config and the workspaces; the fixture's agent dirs hold placeholder databases
            // a Gateway refuses to migrate.
            for entry in std::fs::read_dir(&fixture).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name();
                if name.to_string_lossy().starts_with("workspace-") {
                    crate::real_cli::copy_tree(&entry.path(), &state.join(&name));
                }
            }
            let config = std::fs::read_to_string(fixture.join("openclaw.json"))
                .unwrap()
                .replace(r#"botToken: "${TG_LEAD}""#, &format!(r#"botToken: "{LITERAL_SECRET}""#));
            std::fs::write(state.join("openclaw.json"), config).unwrap();
        })
        .await
    }

    /// Starts a Gateway on a state dir `prepare` fills (offline: no update checks, no model
    /// catalog refresh) and waits until it listens.
    pub async fn start_in(bin: &str, prepare: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (state, home) = (dir.path().join("state"), dir.path().join("home"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        prepare(&state);
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
        let child = Command::new(bin)
            .args([
                "gateway",
                "--allow-unconfigured",
                "--port",
                &port.to_string(),
                "--auth",
                "token",
                "--token",
                GATEWAY_TOKEN,
            ])
            .env("HOME", &home)
            .env("OPENCLAW_STATE_DIR", &state)
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .env("TG_RESEARCH", "222:research")
            .env("TG_WRITER", "333:writer")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let gateway = Self { child, port, state, home, bin: bin.to_owned(), _dir: dir };
        let started = Instant::now();
        eventually_within("the gateway to listen", Duration::from_secs(120), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
        })
        .await;
        eprintln!("gateway listening after {:.1} s", started.elapsed().as_secs_f64());
        gateway
    }

    fn config_path(&self) -> PathBuf {
        self.state.join("openclaw.json")
    }

    /// Another client of the same Gateway (the CLI's `gateway call`).
    pub fn call(&self, method: &str, params: &serde_json::Value) -> serde_json::Value {
        let output = Command::new(&self.bin)
            .args([
                "gateway",
                "call",
                method,
                "--url",
                &format!("ws://127.0.0.1:{}", self.port),
                "--token",
                GATEWAY_TOKEN,
                "--json",
                "--params",
                &params.to_string(),
            ])
            .env("HOME", &self.home)
            .env("OPENCLAW_STATE_DIR", &self.state)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let start = text.find('{').unwrap_or_else(|| panic!("no JSON from gateway call {method}: {text}"));
        serde_json::Deserializer::from_str(&text[start..]).into_iter().next().unwrap().unwrap()
    }

    /// A second client renames the researcher through `config.patch` with its own base hash.
    fn edit_through_another_client(&self, name: &str) {
        let hash = self.call("config.get", &serde_json::json!({}))["hash"].as_str().unwrap().to_owned();
        let patch = serde_json::json!({"agents": {"entries": {"research": {"name": name}}}});
        let answer =
            self.call("config.patch", &serde_json::json!({"raw": patch.to_string(), "baseHash": hash}));
        assert_eq!(answer["ok"], true, "{answer}");
    }

    pub async fn app(&self) -> TestApp {
        let app = spawn_app_unready(
            AppOptions {
                runtime: Some(format!("gateway:ws://127.0.0.1:{}", self.port)),
                gateway_token: Some(GATEWAY_TOKEN.to_owned()),
                ..AppOptions::default()
            },
            |_| {},
        )
        .await;
        let started = Instant::now();
        eventually_within("the gateway runtime to be observed", Duration::from_secs(120), async || {
            let ready = reqwest::get(app.http_url("/ready")).await.ok()?;
            ready.status().is_success().then_some(())
        })
        .await;
        eprintln!("jhf-warp observed the gateway after {:.1} s", started.elapsed().as_secs_f64());
        app
    }
}

async fn fresh_inventory(app: &TestApp) -> pb::Inventory {
    let request = pb::GetInventoryRequest { runtime: String::new(), read_mode: pb::ReadMode::Fresh.into() };
    app.topology()
        .await
        .get_inventory(with_token(request, READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .inventory
        .unwrap()
}

async fn drift_keys(app: &TestApp) -> Vec<String> {
    let request = pb::ListDriftItemsRequest::default();
    let items = app
        .drift()
        .await
        .list_drift_items(with_token(request, READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .items;
    items.into_iter().map(|item| item.key).collect()
}

pub fn agent_ids(bin: &str, state: &Path) -> Vec<String> {
    let agents = cli_json(bin, state, &["agents", "list", "--json"], None);
    let mut ids: Vec<String> =
        agents.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_gateway_runtime_is_observed_changed_race_free_and_pushes_its_edits() {
    let Some(bin) = openclaw_bin() else { return };
    let gateway = Gateway::start(&bin).await;
    let app = gateway.app().await;

    // Observe the trio through config.get / agents.list / sessions.list.
    let started = Instant::now();
    let inventory = fresh_inventory(&app).await;
    eprintln!("fresh read through the gateway: {:.0} ms", started.elapsed().as_secs_f64() * 1000.0);
    assert_eq!(inventory.openclaw_version, "2026.9.6");
    assert!(inventory.config_valid, "{:?}", inventory.config_issues);
    let mut ids: Vec<&str> = inventory.agents.iter().map(|a| a.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["lead", "research", "writer"]);
    assert!(!format!("{inventory:?}").contains(LITERAL_SECRET), "no secret in an inventory");

    // A second client edits the config between plan and apply: refused, nothing written.
    put(&app, trio_minus_writer_plus_qa(&observed(&app).await), "", "desired-1").await.unwrap();
    let stale = plan(&app, pb::PlanKind::Apply).await.unwrap();
    gateway.edit_through_another_client("Research Desk");
    let edited = std::fs::read(gateway.config_path()).unwrap();
    let err = start(&app, &stale.id, false, "rollout-stale").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(std::fs::read(gateway.config_path()).unwrap(), edited, "the refused rollout wrote nothing");

    // Planned again on the current config: rolled out through config.patch + agents.delete.
    let fresh = plan(&app, pb::PlanKind::Apply).await.unwrap();
    let rollout = start(&app, &fresh.id, false, "rollout-1").await.unwrap();
    let done = follow_slowly(&app, &rollout.id).await;
    assert_eq!(done.state, RolloutState::Succeeded as i32, "{done:#?}");
    let validate = cli_json(&bin, &gateway.state, &["config", "validate", "--json"], None);
    assert_eq!(validate["valid"], true, "{validate}");
    assert_eq!(agent_ids(&bin, &gateway.state), ["lead", "qa", "research"]);
    let text = std::fs::read_to_string(gateway.config_path()).unwrap();
    assert!(text.contains(LITERAL_SECRET), "the literal bot token survives the write");
    assert!(text.contains("Research Desk"), "the other client's edit is kept");
    assert!(gateway.state.join("workspace-writer").is_dir(), "agents.delete kept the writer's files");

    // A hand edit shows up as drift without waiting for the loop (its interval is an hour).
    let before = drift_keys(&app).await;
    let started = Instant::now();
    gateway.edit_through_another_client("Research Desk");
    let hash = gateway.call("config.get", &serde_json::json!({}))["hash"].as_str().unwrap().to_owned();
    let patch =
        serde_json::json!({"tools": {"agentToAgent": {"allow": ["lead", "research", "qa", "intruder"]}}});
    let answer =
        gateway.call("config.patch", &serde_json::json!({"raw": patch.to_string(), "baseHash": hash}));
    assert_eq!(answer["ok"], true, "{answer}");
    let edited_at = started.elapsed();
    let keys =
        eventually_within("a drift item from the pushed change", Duration::from_secs(30), async || {
            let keys = drift_keys(&app).await;
            (keys.len() > before.len()).then_some(keys)
        })
        .await;
    eprintln!(
        "hand edit -> drift item visible: {:.0} ms after the edit was acknowledged ({keys:?})",
        (started.elapsed() - edited_at).as_secs_f64() * 1000.0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_gateway_rollback_restores_the_exact_secret_and_bootstrap_files_land_with_the_marker() {
    let Some(bin) = openclaw_bin() else { return };
    let gateway = Gateway::start(&bin).await;
    let app = gateway.app().await;
    let pre_image = std::fs::read_to_string(gateway.config_path()).unwrap();

    // ApplySetup adds agents through a rollout and writes bootstrap files with agents.files.set.
    let rollout = crate::real_cli::apply_incident_setup(&app).await.rollout.unwrap();
    assert_eq!(agent_ids(&bin, &gateway.state), ["implementer", "lead", "research", "reviewer", "writer"]);

    // The rollback goes through the same guarded path and never writes a redacted placeholder.
    let undo = pb::RollbackRolloutRequest {
        runtime: String::new(),
        rollout_id: rollout.id.clone(),
        request_id: "undo-1".to_owned(),
        validate_only: false,
    };
    let undone =
        app.drift().await.rollback_rollout(with_token(undo, OPERATOR_TOKEN)).await.unwrap().into_inner();
    assert_eq!(undone.rollout.unwrap().state, RolloutState::RolledBack as i32);
    let after = std::fs::read_to_string(gateway.config_path()).unwrap();
    assert!(after.contains(LITERAL_SECRET), "the exact secret is back in place");
    assert!(!after.contains("__OPENCLAW_REDACTED__"), "no placeholder was written");
    assert_eq!(agent_ids(&bin, &gateway.state), ["lead", "research", "writer"]);
    let semantic = |text: &str| {
        let mut value: serde_json::Value = json5::from_str(text).unwrap();
        if let Some(root) = value.as_object_mut() {
            root.remove("meta");
        }
        value.sort_all_objects();
        value
    };
    assert_eq!(semantic(&after), semantic(&pre_image), "the config is the pre-image again");
    let validate = cli_json(&bin, &gateway.state, &["config", "validate", "--json"], None);
    assert_eq!(validate["valid"], true, "{validate}");
    app.stop().await;
}

//! `gateway:ws://HOST:PORT` (or `wss://`): a running OpenClaw Gateway, reached through its
//! WebSocket RPC — no CLI, no shell.
//!
//! # Guarantees
//! - Writes are race-free: `config.patch` carries the Gateway's own `baseHash`, taken from the
//!   same `config.get` whose text jhf-warp checked against the plan; a hand edit in between is
//!   refused by the Gateway, atomically, and nothing is written.
//! - Removed agents go through `agents.delete` (`deleteFiles: false`) after the guarded patch,
//!   so a refused patch removes nothing.
//! - `config.get` redacts literal secrets; a rollback is the difference between the current
//!   and the pre-image text (both redacted alike), so a placeholder is never written back (one
//!   that would be is refused, see [`crate::domain::patch::gateway`]).
//! - Bootstrap files are read and written with `agents.files.get`/`agents.files.set`.
//! - `config.changed` events are counted for the observer, which observes at once.
//!
//! # Caveats
//! - Workspaces of agents the Gateway lists count as existing: the Gateway creates them when an
//!   agent first needs one, and exposes no directory check.
//! - The config hash jhf-warp records is the sha256 of the redacted text: a change of a secret
//!   value alone is not a config change to jhf-warp (the Gateway's hash still guards writes).

mod client;
mod device;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

pub use client::{CallError, GatewayClient, LinkState};
pub use device::{DEVICE_KEY_FILE, DeviceKey};

use super::files::structural_dry_run;
use super::{
    BOOTSTRAP_FILE_CAP, ConfigText, DryRunReport, PatchRequest, RuntimeAdapter, RuntimeError, RuntimeLimits,
    RuntimeMode, WorkspaceFile,
};
use crate::domain::Inventory;
use crate::domain::inventory::{
    RuntimeFacts, SessionActivity, SessionStore, StateLayout, build_inventory, config_hash,
};
use crate::domain::openclaw::ConfigIssue;
use crate::domain::patch::PatchShape;
use crate::domain::patch::gateway::{restore_change, without_roster_deletions};
use crate::domain::permissions::{CronJob, ToolCatalog};

/// Pages of `sessions.list` read per observation (500 rows each).
const SESSION_PAGES: usize = 20;
const SESSION_PAGE_ROWS: u64 = 500;
/// Pages of `cron.list` read per observation (200 jobs each).
const CRON_PAGES: usize = 10;
const CRON_PAGE_ROWS: u64 = 200;
/// How long a write may take (agent deletion moves files; ~4 s on a small machine).
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// An OpenClaw Gateway as a runtime.
pub struct GatewayRuntime {
    address: String,
    client: GatewayClient,
    limits: RuntimeLimits,
    timeout: Duration,
    layout: Mutex<StateLayout>,
    /// The Gateway's `tools.catalog`, with the config hash it was read at (it changes with
    /// the config's plugins, so a new config hash reads it again).
    catalog: Mutex<Option<(String, ToolCatalog)>>,
}

impl std::fmt::Debug for GatewayRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayRuntime").field("address", &self.address).finish_non_exhaustive()
    }
}

/// What `config.get` said.
struct Snapshot {
    raw: String,
    gateway_hash: String,
    path: String,
    valid: bool,
    issues: Vec<ConfigIssue>,
}

impl GatewayRuntime {
    /// Starts the connection (in the background: a Gateway that is down or waiting for
    /// pairing makes reads fail with the reason, and readiness says so).
    pub fn start(
        address: String,
        url: String,
        token: String,
        data_dir: &Path,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
        limits: RuntimeLimits,
        timeout: Duration,
    ) -> Result<Self, RuntimeError> {
        let device = DeviceKey::load_or_create(data_dir)?;
        tracing::info!(runtime = %address, device_id = %device.id(), "gateway device identity");
        Ok(Self {
            address,
            client: GatewayClient::start(url, token, device, tls),
            limits,
            timeout,
            layout: Mutex::new(StateLayout::default()),
            catalog: Mutex::new(None),
        })
    }

    async fn call(&self, method: &str, params: Value, timeout: Duration) -> Result<Value, RuntimeError> {
        self.client.call(method, params, timeout).await.map_err(|error| match error {
            CallError::Timeout => RuntimeError::Timeout { after: timeout },
            CallError::Unreachable(detail) => RuntimeError::Unreachable { detail },
            CallError::Gateway { code, detail_code, message, retry_after } => {
                let retry = retry_after
                    .map(|after| format!(" (retry after {} ms)", after.as_millis()))
                    .unwrap_or_default();
                RuntimeError::CommandFailed {
                    exit_code: None,
                    stderr_tail: format!(
                        "{method}: {code}{}: {message}{retry}",
                        detail_code.map(|d| format!("/{d}")).unwrap_or_default()
                    ),
                }
            }
        })
    }

    async fn snapshot(&self) -> Result<Snapshot, RuntimeError> {
        let answer = self.call("config.get", json!({}), self.timeout).await?;
        let text = |key: &str| answer.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        let raw = text("raw");
        if raw.len() as u64 > self.limits.config_max_bytes {
            return Err(RuntimeError::Refused {
                detail: format!("the config is larger than {} bytes", self.limits.config_max_bytes),
            });
        }
        let path = text("path");
        if let Some(dir) = Path::new(&path).parent().and_then(Path::to_str).filter(|d| !d.is_empty()) {
            let mut layout = self.layout.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            layout.state_dir = dir.to_owned();
        }
        let issues = answer
            .get("issues")
            .and_then(Value::as_array)
            .map(|issues| {
                issues
                    .iter()
                    .take(200)
                    .map(|issue| ConfigIssue {
                        path: issue
                            .get("path")
                            .and_then(Value::as_str)
                            .unwrap_or("<root>")
                            .chars()
                            .take(200)
                            .collect(),
                        message: issue
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("invalid")
                            .chars()
                            .take(300)
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Snapshot {
            gateway_hash: text("hash"),
            valid: answer.get("valid").and_then(Value::as_bool).unwrap_or(false),
            raw,
            path,
            issues,
        })
    }

    /// Reads the config and checks it is still the text `expected` hashes; returns the snapshot
    /// whose Gateway hash then guards the write.
    async fn check_base(&self, expected: &str) -> Result<Snapshot, RuntimeError> {
        let snapshot = self.snapshot().await?;
        let actual = config_hash(&snapshot.raw);
        if actual != expected {
            return Err(RuntimeError::BaseHashMismatch { expected: expected.to_owned(), actual });
        }
        Ok(snapshot)
    }

    /// `config.patch` guarded by `base` (the Gateway's hash); a refusal because the config
    /// changed is a base-hash mismatch.
    async fn patch(
        &self,
        base: &Snapshot,
        merge_patch: &Value,
        replace_paths: &[String],
    ) -> Result<(), RuntimeError> {
        if merge_patch.as_object().is_some_and(serde_json::Map::is_empty) {
            return Ok(());
        }
        let mut params =
            json!({"raw": merge_patch.to_string(), "baseHash": base.gateway_hash, "note": "jhf-warp"});
        if !replace_paths.is_empty() {
            params["replacePaths"] = json!(replace_paths);
        }
        match self.call("config.patch", params, WRITE_TIMEOUT).await {
            Err(RuntimeError::CommandFailed { stderr_tail, .. })
                if stderr_tail.contains("changed since last load") =>
            {
                Err(RuntimeError::BaseHashMismatch {
                    expected: config_hash(&base.raw),
                    actual: "changed on the gateway".to_owned(),
                })
            }
            other => other.map(drop),
        }
    }

    async fn delete_agents(&self, agents: &[String]) -> Result<(), RuntimeError> {
        for agent in agents {
            self.call("agents.delete", json!({"agentId": agent, "deleteFiles": false}), WRITE_TIMEOUT)
                .await?;
        }
        Ok(())
    }

    /// Workspace directory by agent id, as the Gateway resolves them.
    async fn workspaces(&self) -> Result<BTreeMap<String, String>, RuntimeError> {
        let answer = self.call("agents.list", json!({}), self.timeout).await?;
        Ok(answer
            .get("agents")
            .and_then(Value::as_array)
            .map(|agents| {
                agents
                    .iter()
                    .filter_map(|a| {
                        Some((a.get("id")?.as_str()?.to_owned(), a.get("workspace")?.as_str()?.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The Gateway's own tool catalog (ids, sections, default profiles), read once per config
    /// hash; `None` when it cannot say (the version table is used then).
    async fn tool_catalog(&self, hash: &str, version: Option<&str>) -> Option<ToolCatalog> {
        let cached = self.catalog.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((_, catalog)) = cached.filter(|(at, _)| at == hash) {
            return Some(catalog);
        }
        match self.call("tools.catalog", json!({}), self.timeout).await {
            Ok(answer) => {
                let catalog = ToolCatalog::from_gateway(&answer, version)?;
                *self.catalog.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((hash.to_owned(), catalog.clone()));
                Some(catalog)
            }
            Err(error) => {
                tracing::warn!(runtime = %self.address, error = %error, "tools.catalog failed; using the version table");
                None
            }
        }
    }

    /// Cron jobs from `cron.list` (bounded pages, disabled ones included); `None` when the
    /// Gateway cannot say.
    async fn cron_jobs(&self) -> Option<Vec<CronJob>> {
        let mut jobs = Vec::new();
        let mut offset = 0u64;
        for _ in 0..CRON_PAGES {
            let params = json!({"includeDisabled": true, "limit": CRON_PAGE_ROWS, "offset": offset});
            let page = match self.call("cron.list", params, self.timeout).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(runtime = %self.address, error = %error, "cron.list failed");
                    return None;
                }
            };
            let rows = page.get("jobs").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            jobs.extend(rows.iter().filter_map(CronJob::from_json));
            match page.get("nextOffset").and_then(Value::as_u64) {
                Some(next) if page.get("hasMore").and_then(Value::as_bool) == Some(true) && next > offset => {
                    offset = next
                }
                _ => break,
            }
        }
        Some(jobs)
    }

    /// Session activity per agent from `sessions.list` (bounded pages).
    async fn sessions(&self) -> Result<BTreeMap<String, SessionActivity>, RuntimeError> {
        let mut activity: BTreeMap<String, SessionActivity> = BTreeMap::new();
        let mut offset = 0u64;
        for _ in 0..SESSION_PAGES {
            let page = self
                .call("sessions.list", json!({"limit": SESSION_PAGE_ROWS, "offset": offset}), self.timeout)
                .await?;
            let rows = page.get("sessions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            count_sessions(&mut activity, rows);
            match page.get("nextOffset").and_then(Value::as_u64) {
                Some(next) if page.get("hasMore").and_then(Value::as_bool) == Some(true) && next > offset => {
                    offset = next
                }
                _ => break,
            }
        }
        Ok(activity)
    }

    /// The agent whose workspace holds `path`, and the file's name.
    async fn agent_file(&self, path: &str) -> Result<Option<(String, String)>, RuntimeError> {
        let path = Path::new(path);
        let (Some(dir), Some(name)) =
            (path.parent().and_then(Path::to_str), path.file_name().and_then(|n| n.to_str()))
        else {
            return Ok(None);
        };
        let dir = dir.trim_end_matches('/');
        Ok(self
            .workspaces()
            .await?
            .into_iter()
            .find(|(_, ws)| ws.trim_end_matches('/') == dir)
            .map(|(id, _)| (id, name.to_owned())))
    }

    /// Counts `config.changed` events (the observer reads at once when it moves).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.client.changes()
    }
}

/// Adds `sessions.list` rows to the activity per agent: the agent from `agentId` (or a key
/// `agent:<id>:…`), the latest of the row's activity, interaction and update times.
fn count_sessions(activity: &mut BTreeMap<String, SessionActivity>, rows: &[Value]) {
    for row in rows {
        let agent = row.get("agentId").and_then(Value::as_str).map(str::to_owned).or_else(|| {
            let key = row.get("key").and_then(Value::as_str)?;
            key.strip_prefix("agent:").and_then(|rest| rest.split(':').next()).map(str::to_owned)
        });
        let Some(agent) = agent.filter(|a| !a.is_empty()) else { continue };
        let at = ["lastActivityAt", "lastInteractionAt", "updatedAt"]
            .iter()
            .filter_map(|k| row.get(*k).and_then(Value::as_i64))
            .max();
        let entry = activity.entry(agent).or_insert(SessionActivity {
            store: SessionStore::Current,
            session_count: Some(0),
            last_active_ms: None,
        });
        entry.session_count = entry.session_count.map(|c| c + 1);
        entry.last_active_ms = entry.last_active_ms.max(at);
    }
}

#[async_trait]
impl RuntimeAdapter for GatewayRuntime {
    fn address(&self) -> &str {
        &self.address
    }

    fn mode(&self) -> RuntimeMode {
        RuntimeMode::Gateway
    }

    fn change_notices(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.changes())
    }

    async fn observe(&self) -> Result<Inventory, RuntimeError> {
        let (snapshot, refused) = match self.snapshot().await {
            Ok(snapshot) => (snapshot, None),
            Err(RuntimeError::Refused { detail }) => (
                Snapshot {
                    raw: String::new(),
                    gateway_hash: String::new(),
                    path: String::new(),
                    valid: false,
                    issues: Vec::new(),
                },
                Some(detail),
            ),
            Err(other) => return Err(other),
        };
        let layout = self.layout();
        let version = match self.client.state() {
            LinkState::Ready { server_version } => server_version,
            _ => None,
        };
        let mut facts = RuntimeFacts {
            config_path: if snapshot.path.is_empty() {
                format!("{}/openclaw.json", layout.state_dir)
            } else {
                snapshot.path.clone()
            },
            layout,
            openclaw_version: version,
            ..RuntimeFacts::default()
        };
        if let Some(reason) = refused {
            facts.config_refused = Some(reason);
            return Ok(build_inventory("", &facts));
        }
        if snapshot.valid {
            facts.cli_issues = Some(Vec::new());
            facts.existing_workspaces = self.workspaces().await?.into_values().collect();
            facts.session_stores = self.sessions().await?;
            let version = facts.openclaw_version.clone();
            facts.tool_catalog = self.tool_catalog(&config_hash(&snapshot.raw), version.as_deref()).await;
            facts.cron_jobs = self.cron_jobs().await;
        } else {
            // The Gateway lists nothing useful while its config is invalid; its issues are
            // the runtime's own word on the text.
            facts.cli_issues = Some(if snapshot.issues.is_empty() {
                vec![ConfigIssue {
                    path: "<root>".to_owned(),
                    message: "the gateway reports the config invalid".to_owned(),
                }]
            } else {
                snapshot.issues
            });
        }
        Ok(build_inventory(&snapshot.raw, &facts))
    }

    fn patch_shape(&self) -> PatchShape {
        PatchShape::Entries
    }

    async fn read_config(&self) -> Result<ConfigText, RuntimeError> {
        let snapshot = self.snapshot().await?;
        Ok(ConfigText { hash: config_hash(&snapshot.raw), raw: snapshot.raw })
    }

    async fn dry_run(&self, patch: &PatchRequest<'_>) -> Result<DryRunReport, RuntimeError> {
        // The Gateway has no dry run; jhf-warp's structural check of the patched text stands in
        // (the Gateway validates again, atomically, when it writes).
        structural_dry_run(&self.read_config().await?, patch)
    }

    async fn apply(&self, patch: &PatchRequest<'_>) -> Result<String, RuntimeError> {
        let base = self.check_base(patch.base_hash).await?;
        let merge_patch = without_roster_deletions(patch.merge_patch, patch.remove_agents);
        self.patch(&base, &merge_patch, patch.replace_paths).await?;
        self.delete_agents(patch.remove_agents).await?;
        Ok(self.read_config().await?.hash)
    }

    async fn restore(&self, pre_image: &str, expected_hash: &str) -> Result<String, RuntimeError> {
        let base = self.check_base(expected_hash).await?;
        let change = restore_change(pre_image, &base.raw)
            .map_err(|e| RuntimeError::Refused { detail: e.to_string() })?;
        self.patch(&base, &change.merge_patch, &change.replace_paths).await?;
        self.delete_agents(&change.delete_agents).await?;
        Ok(self.read_config().await?.hash)
    }

    async fn read_workspace_file(&self, path: &str) -> Result<WorkspaceFile, RuntimeError> {
        let Some((agent, name)) = self.agent_file(path).await? else {
            return Ok(WorkspaceFile::Refused(format!(
                "no agent of the gateway has the workspace of {path}"
            )));
        };
        let answer = match self
            .call("agents.files.get", json!({"agentId": agent, "name": name}), self.timeout)
            .await
        {
            Ok(answer) => answer,
            Err(RuntimeError::CommandFailed { stderr_tail, .. }) => {
                return Ok(WorkspaceFile::Refused(stderr_tail));
            }
            Err(other) => return Err(other),
        };
        let file = answer.get("file").cloned().unwrap_or_default();
        if file.get("missing").and_then(Value::as_bool) == Some(true) {
            return Ok(WorkspaceFile::Absent);
        }
        if file.get("size").and_then(Value::as_u64).unwrap_or(0) > BOOTSTRAP_FILE_CAP {
            return Ok(WorkspaceFile::Refused(format!("is larger than {BOOTSTRAP_FILE_CAP} bytes")));
        }
        match file.get("content").and_then(Value::as_str) {
            Some(text) if text.len() as u64 <= BOOTSTRAP_FILE_CAP => Ok(WorkspaceFile::Text(text.to_owned())),
            Some(_) => Ok(WorkspaceFile::Refused(format!("is larger than {BOOTSTRAP_FILE_CAP} bytes"))),
            None => Ok(WorkspaceFile::Refused("the gateway returned no text for it".to_owned())),
        }
    }

    async fn write_workspace_file(&self, path: &str, text: &str) -> Result<(), RuntimeError> {
        let Some((agent, name)) = self.agent_file(path).await? else {
            return Err(RuntimeError::Refused {
                detail: format!("no agent of the gateway has the workspace of {path}"),
            });
        };
        match self
            .call("agents.files.set", json!({"agentId": agent, "name": name, "content": text}), WRITE_TIMEOUT)
            .await
        {
            Err(RuntimeError::CommandFailed { stderr_tail, .. }) => {
                Err(RuntimeError::Refused { detail: stderr_tail })
            }
            other => other.map(drop),
        }
    }

    fn layout(&self) -> StateLayout {
        self.layout.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn workspace_roots(&self) -> Vec<std::path::PathBuf> {
        self.limits.workspace_roots.clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sessions_count_per_agent_with_their_latest_activity() {
        let rows = [
            json!({"key": "agent:lead:main", "agentId": "lead", "updatedAt": 100, "lastActivityAt": 250}),
            json!({"key": "agent:lead:telegram:42", "updatedAt": 300}),
            json!({"key": "agent:research:main", "lastInteractionAt": 50}),
            json!({"key": "global", "updatedAt": 999}),
        ];
        let mut activity = BTreeMap::new();
        count_sessions(&mut activity, &rows);
        assert_eq!(activity.len(), 2);
        assert_eq!(activity["lead"].session_count, Some(2));
        assert_eq!(activity["lead"].last_active_ms, Some(300));
        assert_eq!(activity["research"].last_active_ms, Some(50));
        assert_eq!(activity["research"].store, SessionStore::Current);
    }
}

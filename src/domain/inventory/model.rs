//! What an inventory is: the normalised facts of one read of an OpenClaw installation.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::findings::Finding;
use crate::domain::model::{RosterShape, SandboxMode, TrustLevel};
use crate::domain::openclaw::ConfigIssue;
use crate::domain::permissions::{AgentAccess, CatalogSource, CronJob, ToolCatalog};

/// Everything the runtime adapter learned besides the config text.
#[derive(Debug, Clone, Default)]
pub struct RuntimeFacts {
    /// Absolute config path on the runtime host.
    pub config_path: String,
    /// Where the installation lives on the runtime host.
    pub layout: StateLayout,
    /// `openclaw --version`, when known.
    pub openclaw_version: Option<String>,
    /// Which of the workspace paths (from [`resolve_agents`]) exist.
    pub existing_workspaces: BTreeSet<String>,
    /// Session store facts by agent id.
    pub session_stores: BTreeMap<String, SessionActivity>,
    /// File names of rejected writes (`openclaw.json.rejected.<ts>`) next to the config.
    pub rejected_writes: Vec<String>,
    /// Issues from the real CLI's `config validate`; `None` means "use jhf-warp's own".
    pub cli_issues: Option<Vec<ConfigIssue>>,
    /// Why the adapter did not read the config (larger than its cap, not a regular file): the
    /// inventory then reports it unreadable instead of parsing anything.
    pub config_refused: Option<String>,
    /// The runtime's own tool catalog (a Gateway's `tools.catalog`); `None` means "use the
    /// table for the runtime's version".
    pub tool_catalog: Option<ToolCatalog>,
    /// Cron jobs as the runtime lists them; `None` when it could not say.
    pub cron_jobs: Option<Vec<CronJob>>,
}

/// Where an installation's files live on its host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateLayout {
    /// Absolute state directory (`~/.openclaw` by default).
    pub state_dir: String,
    /// Home directory of the runtime user, for `~/` expansion.
    pub home_dir: Option<String>,
}

impl StateLayout {
    /// Resolves a path from the config to an absolute path on the runtime host.
    pub fn resolve(&self, path: &str) -> String {
        if let (Some(rest), Some(home)) = (path.strip_prefix("~/"), &self.home_dir) {
            return join(home, rest);
        }
        if path.starts_with('/') {
            return path.to_owned();
        }
        join(&self.state_dir, path)
    }
}

pub(super) fn join(base: &str, rest: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), rest.trim_start_matches("./"))
}

/// Which session store an agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SessionStore {
    #[default]
    None,
    Current,
    Legacy,
}

/// Session activity of one agent, where the runtime exposes it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionActivity {
    pub store: SessionStore,
    /// Number of sessions; `None` when the store does not reveal it.
    pub session_count: Option<i64>,
    /// Most recent session update, milliseconds since the Unix epoch.
    pub last_active_ms: Option<i64>,
}

impl SessionActivity {
    /// The activity a legacy `sessions.json` shows: a JSON object keyed by session, each with
    /// an `updatedAt` in milliseconds. Text that is not such an object counts as no sessions.
    pub fn from_legacy_store(text: &str) -> Self {
        let sessions: BTreeMap<String, serde_json::Value> = serde_json::from_str(text).unwrap_or_default();
        Self {
            store: SessionStore::Legacy,
            session_count: Some(sessions.len() as i64),
            last_active_ms: sessions.values().filter_map(|s| s.get("updatedAt")?.as_i64()).max(),
        }
    }

    /// The activity of the current SQLite store: detected, not read (its schema is OpenClaw's).
    pub fn current_store() -> Self {
        Self { store: SessionStore::Current, session_count: None, last_active_ms: None }
    }
}

/// An agent's effective tool settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ToolPolicy {
    pub profile: Option<String>,
    pub allow: Vec<String>,
    /// Effective deny list: global, defaults and the agent's own, in that order, deduplicated.
    pub deny: Vec<String>,
    pub also_allow: Vec<String>,
}

/// `identity` of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentIdentity {
    pub name: Option<String>,
    pub emoji: Option<String>,
    pub theme: Option<String>,
    pub avatar: Option<String>,
}

/// One configured agent with its effective settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryAgent {
    pub id: String,
    pub name: Option<String>,
    pub workspace: String,
    pub workspace_exists: bool,
    pub agent_dir: String,
    pub model: Option<String>,
    pub model_fallbacks: Vec<String>,
    pub tools: ToolPolicy,
    pub skills: Vec<String>,
    pub sandbox_mode: SandboxMode,
    pub elevated: bool,
    /// Effective `subagents.allowAgents`, lower-cased; `*` means any agent.
    pub allow_agents: Vec<String>,
    pub identity: AgentIdentity,
    pub session_activity: SessionActivity,
    pub is_default: bool,
    pub effective_trust: TrustLevel,
    /// What the agent may do and who reaches it, resolved as OpenClaw resolves it.
    #[serde(default)]
    pub access: AgentAccess,
}

/// The match of a binding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct RouteMatch {
    pub channel: String,
    pub account_id: Option<String>,
    pub peer_kind: Option<String>,
    pub peer_id: Option<String>,
    pub guild_id: Option<String>,
    pub team_id: Option<String>,
    pub roles: Vec<String>,
}

impl RouteMatch {
    /// Returns a stable, human-readable key of the match, e.g.
    /// `telegram account=lead peer=group:-100` (used in finding keys and route identity).
    pub fn key(&self) -> String {
        let mut key = self.channel.clone();
        let parts = [
            ("account", self.account_id.clone()),
            (
                "peer",
                self.peer_kind
                    .as_ref()
                    .map(|kind| format!("{kind}:{}", self.peer_id.as_deref().unwrap_or(""))),
            ),
            ("guild", self.guild_id.clone()),
            ("team", self.team_id.clone()),
            ("roles", (!self.roles.is_empty()).then(|| self.roles.join(","))),
        ];
        for (name, value) in parts {
            if let Some(value) = value {
                key.push_str(&format!(" {name}={value}"));
            }
        }
        key
    }
}

/// One entry of `bindings[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub index: usize,
    /// Target agent id, lower-cased.
    pub agent_id: String,
    /// `route` (default) or `acp`.
    pub kind: String,
    pub route: RouteMatch,
    pub comment: Option<String>,
}

/// Agent-to-agent messaging settings, with OpenClaw's defaults filled in (enabled, `all`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentToAgent {
    pub enabled: bool,
    /// `tools.agentToAgent.allow` as written; empty matches every agent.
    pub allow: Vec<String>,
    pub sessions_visibility: String,
}

/// Runtime-wide sub-agent limits with OpenClaw's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubagentLimits {
    pub max_spawn_depth: i64,
    pub max_children_per_agent: i64,
    pub max_concurrent: i64,
}

/// One normalised read of an OpenClaw installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub openclaw_version: Option<String>,
    pub roster_shape: RosterShape,
    pub config_path: String,
    pub config_hash: String,
    pub config_valid: bool,
    pub config_issues: Vec<ConfigIssue>,
    /// Agents with valid ids, sorted by id.
    pub agents: Vec<InventoryAgent>,
    /// Bindings in file order.
    pub bindings: Vec<Binding>,
    pub agent_to_agent: AgentToAgent,
    pub subagent_limits: SubagentLimits,
    /// Sorted by key.
    pub findings: Vec<Finding>,
    pub default_agent_id: Option<String>,
    /// Where the tool catalog the permissions were resolved with came from.
    #[serde(default)]
    pub tool_catalog: Option<CatalogSource>,
}

impl Inventory {
    /// Returns the agent with the given id.
    pub fn agent(&self, id: &str) -> Option<&InventoryAgent> {
        self.agents.iter().find(|agent| agent.id == id)
    }
}

/// Returns the sha256 hex of the raw config text (OpenClaw's `baseHash` uses the same).
pub fn config_hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

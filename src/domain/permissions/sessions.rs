//! Session visibility and the agent-to-agent policy: who may send to whom.
//!
//! Mirrors `resolveSessionToolsVisibility`, `resolveEffectiveSessionToolsVisibility` and
//! `createAgentToAgentPolicy` in OpenClaw 2026.9.6's `dist/session-visibility-*.mjs`, and the
//! cross-agent branch of `createSessionVisibilityDecisionChecker` in the same file:
//! - `tools.sessions.visibility` is `self`, `tree`, `agent` or `all` (lower-cased); anything
//!   else, or nothing, is `all`;
//! - a sandboxed requester is clamped to `tree` while
//!   `agents.defaults.sandbox.sessionToolsVisibility` is `spawned` (its default) — whatever the
//!   setting was, `self` included;
//! - cross-agent access needs the requester's visibility to be `all`, then
//!   `tools.agentToAgent.enabled` not `false` (default on), then both agents matching `allow`;
//! - an `allow` entry is trimmed: blank (or not a string) matches nobody, `*` everybody, an
//!   entry without `*` the agent id exactly (case-sensitive), any other a case-insensitive
//!   glob with `*` only; an omitted, non-array or empty `allow` matches everybody. So removing
//!   the last id from a list opens it to every pair (`gateway/config-tools` docs say so) while
//!   `[""]` closes it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::tools::glob_parts_match;

/// `tools.sessions.visibility`, resolved.
pub fn visibility_setting(root: &Map<String, Value>) -> String {
    let raw = crate::domain::openclaw::str_at(root, &["tools", "sessions", "visibility"]);
    match raw.map(|v| v.trim().to_lowercase()).as_deref() {
        Some(value @ ("self" | "tree" | "agent" | "all")) => value.to_owned(),
        _ => "all".to_owned(),
    }
}

/// The visibility a requester's session tools work with.
pub fn effective_visibility(root: &Map<String, Value>, sandboxed: bool) -> String {
    let setting = visibility_setting(root);
    if !sandboxed {
        return setting;
    }
    let clamp =
        crate::domain::openclaw::value_at(root, &["agents", "defaults", "sandbox", "sessionToolsVisibility"])
            .filter(|v| !v.is_null())
            .is_none_or(|v| v.as_str() == Some("spawned"));
    if clamp && setting != "tree" { "tree".to_owned() } else { setting }
}

/// One compiled `tools.agentToAgent.allow` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum AllowEntry {
    Nobody,
    Everybody,
    Exact(String),
    Glob(Vec<String>),
}

/// The agent-to-agent policy of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentToAgentPolicy {
    pub enabled: bool,
    entries: Vec<AllowEntry>,
}

impl AgentToAgentPolicy {
    /// Reads `tools.agentToAgent`.
    pub fn read(root: &Map<String, Value>) -> Self {
        let a2a = crate::domain::openclaw::value_at(root, &["tools", "agentToAgent"]);
        let enabled = a2a.and_then(|a| a.get("enabled")) != Some(&Value::Bool(false));
        let entries = a2a
            .and_then(|a| a.get("allow"))
            .and_then(Value::as_array)
            .map(|items| items.iter().map(|item| compile(item.as_str().unwrap_or(""))).collect())
            .unwrap_or_default();
        Self { enabled, entries }
    }

    /// Whether an agent id matches `allow`.
    pub fn matches(&self, agent: &str) -> bool {
        self.entries.is_empty()
            || self.entries.iter().any(|entry| match entry {
                AllowEntry::Nobody => false,
                AllowEntry::Everybody => true,
                AllowEntry::Exact(id) => id == agent,
                AllowEntry::Glob(parts) => glob_parts_match(parts, &agent.to_lowercase()),
            })
    }

    /// Whether a session of `from` may reach a session of `to` under this policy alone.
    pub fn allows(&self, from: &str, to: &str) -> bool {
        from == to || (self.enabled && self.matches(from) && self.matches(to))
    }

    /// Whether every pair of agents is allowed (enabled with no effective restriction).
    pub fn open_to_all(&self) -> bool {
        self.enabled && self.matches_everyone()
    }

    fn matches_everyone(&self) -> bool {
        self.entries.is_empty() || self.entries.contains(&AllowEntry::Everybody)
    }
}

fn compile(raw: &str) -> AllowEntry {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        AllowEntry::Nobody
    } else if trimmed == "*" {
        AllowEntry::Everybody
    } else if !trimmed.contains('*') {
        AllowEntry::Exact(trimmed.to_owned())
    } else {
        AllowEntry::Glob(trimmed.to_lowercase().split('*').map(str::to_owned).collect())
    }
}

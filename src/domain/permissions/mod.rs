//! Who can do what, resolved exactly as OpenClaw 2026.9.6 resolves it: the one place SEND and
//! SPAWN edges, effective tools, sandbox, exec, elevated access and wake-ups come from.
//!
//! Every rule below cites where it was read in the installed package (`dist/…`) or its docs
//! (`docs/…`), and `.ci/run` holds the whole module against a live Gateway 2026.9.6
//! (`tests/api/real_permissions.rs`: `tools.effective` per agent and `tools.invoke` of
//! `sessions_send` / `sessions_spawn` for every ordered pair).
//!
//! # Rules (for one agent A, about its main session `agent:A:main`)
//! - **Sandboxed.** A's sandbox mode is `agents.entries.A.sandbox.mode`, else
//!   `agents.defaults.sandbox.mode`, else `off` (`resolveSandboxConfigForAgent`,
//!   `dist/config-*.mjs`). The main session is sandboxed only in mode `all`; `non-main`
//!   sandboxes every other session (`shouldSandboxSession`, `dist/runtime-status-*.mjs`).
//!   `workspaceAccess` defaults to `none`, `scope` to `agent`.
//! - **Effective tools** — see [`tools`]: the catalog's tools OpenClaw builds, filtered by the
//!   profile, `byProvider`, global and agent `allow`/`alsoAllow`/`deny`, and the sandbox tool
//!   policy when sandboxed. A roster agent's policy is its own `tools` (not
//!   `agents.defaults.tools`, which only the implicit agent of a roster-less config uses:
//!   `resolveEffectiveToolPolicy`, `dist/agent-tools.policy-*.mjs`). The Gateway's
//!   `tools.effective` leaves the sandbox layer out (it builds the inventory without a sandbox
//!   context) while `tools.invoke` applies it, so for a sandboxed agent jhf-warp reports what
//!   the session can really call: the `tools.invoke` answer.
//! - **SEND A→B** (A ≠ B): `sessions_send` among A's effective tools, A's session visibility
//!   `all` and the agent-to-agent policy allowing the pair — see [`sessions`].
//! - **SPAWN A→B** (A ≠ B): `sessions_spawn` among A's effective tools; B among A's allowed
//!   targets: `agents.entries.A.subagents.allowAgents`, else
//!   `agents.defaults.subagents.allowAgents` (unset = A itself only; `*` = every configured
//!   agent; ids trimmed, lower-cased, kept only when configured: `resolveSubagentTargetPolicy`,
//!   `dist/subagent-spawn-ownership-*.mjs`); a sandboxed requester only targets agents whose
//!   child sessions are sandboxed (mode `all` or `non-main`); the main session's depth 0 is
//!   below `maxSpawnDepth` (default 5, `dist/sessions-spawn-tool-*.mjs`). `requireAgentId`
//!   only refuses spawns that name no target, so it changes no edge.
//! - **Exec.** Host `agents.entries.A.tools.exec.host`, else `tools.exec.host`, else `auto`
//!   (`sandbox` when the session is sandboxed, else `gateway`); `mode` / `security` / `ask`
//!   layered global then agent (`applyExecPolicyLayer`, `dist/exec-policy-*.mjs`; modes from
//!   `docs/tools/exec.md`), default `full` / `off` (no approval on the gateway host).
//! - **Elevated** (`resolveElevatedPermissions`, `dist/get-reply-*.mjs`; `openclaw sandbox
//!   explain`): enabled unless `tools.elevated.enabled` or the agent's is `false`; a sender
//!   must be in `tools.elevated.allowFrom.<channel>` *and*, when the agent sets `allowFrom`,
//!   in the agent's list for that channel. It only affects `exec`, so it is usable at all when
//!   enabled, `exec` is an effective tool and some channel lets a sender through.
//! - **Wake-ups.** Heartbeat owners (`resolveHeartbeatAgentIds`,
//!   `dist/heartbeat-config-*.mjs`): agents whose entry has `heartbeat`, else
//!   `agents.defaults.heartbeat.agentId`, else every agent when `agents.defaults.heartbeat`
//!   exists, else the system agent or the only agent; cadence `every` (default `30m`; `0m` =
//!   none). Cron jobs come from the runtime (`cron.list`). Hook ingress
//!   (`docs/gateway/config-hooks.md`): `hooks.enabled` with `allowedAgentIds` omitted or
//!   holding `*` or the agent.
//! - **Inbound reach** (`docs/gateway/config-channels/shared-policies.md`): each configured
//!   channel account reaches the agent of the first binding for it (an omitted `accountId`
//!   binds the default account, `*` every account) or else the default agent; its DM policy is
//!   the account's `dmPolicy`, else the channel's, else `pairing`; its group policy the
//!   account's, the channel's, `channels.defaults.groupPolicy`, else `allowlist`.

mod catalog;
mod reach;
mod sessions;
#[cfg(test)]
mod tests;
pub mod tools;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use catalog::{Availability, CatalogSource, CatalogTool, TABLE_VERSION, ToolCatalog};
pub use reach::{CronJob, InboundRoute, Wakeup, WakeupKind};
pub use sessions::{AgentToAgentPolicy, effective_visibility, visibility_setting};

use super::model::TrustLevel;
use super::openclaw::value_at;
use tools::{ToolContext, model_ref};

/// One agent of the roster, as the resolution needs it.
#[derive(Debug, Clone, Copy)]
pub struct RosterAgent<'a> {
    /// Lower-cased, valid id.
    pub id: &'a str,
    /// The entry's settings (empty for the implicit agent of a roster-less config).
    pub settings: &'a Map<String, Value>,
}

/// Everything the resolution reads.
pub struct Input<'a> {
    pub root: &'a Map<String, Value>,
    pub roster: &'a [RosterAgent<'a>],
    /// Whether the config has a roster (`agents.entries` or `agents.list`).
    pub has_roster: bool,
    pub default_agent: Option<&'a str>,
    pub catalog: &'a ToolCatalog,
    /// Cron jobs as the runtime lists them; `None` when it could not say.
    pub cron_jobs: Option<&'a [CronJob]>,
}

/// Sandbox settings of one agent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SandboxAccess {
    /// `off`, `non-main`, `all` (or what the config says, when invalid).
    pub mode: String,
    /// `agent`, `session` or `shared`.
    pub scope: String,
    /// `none`, `ro` or `rw`.
    pub workspace_access: String,
    /// Whether the main session runs sandboxed (mode `all`).
    pub main_sandboxed: bool,
}

/// How `exec` runs for one agent's main session.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExecAccess {
    /// Whether `exec` is an effective tool.
    pub available: bool,
    /// Where commands run: `sandbox`, `gateway` or `node`.
    pub host: String,
    /// `deny`, `allowlist` or `full`.
    pub security: String,
    /// `off`, `on-miss` or `always`.
    pub ask: String,
}

impl ExecAccess {
    /// Whether commands run on a real host (the gateway's or a node's) and may run at all.
    pub fn on_host(&self) -> bool {
        self.available && self.host != "sandbox" && self.security != "deny"
    }
}

/// Elevated exec for one agent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ElevatedAccess {
    /// Neither the global nor the agent's `tools.elevated.enabled` is `false`.
    pub enabled: bool,
    /// Enabled, `exec` available and some sender allowed.
    pub usable: bool,
    /// Senders that pass both gates, as `<channel>:<sender>` (`*` = anyone on that channel).
    pub allow_from: Vec<String>,
}

/// What one agent's main session may do and who reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentAccess {
    /// Tool ids the main session can call, sorted.
    pub effective_tools: Vec<String>,
    /// The session tools' visibility after the sandbox clamp.
    pub session_visibility: String,
    pub sandbox: SandboxAccess,
    pub exec: ExecAccess,
    pub elevated: ElevatedAccess,
    /// Agents it may send to, sorted.
    pub may_send_to: Vec<String>,
    /// Agents it may spawn, sorted.
    pub may_spawn: Vec<String>,
    /// Channel accounts whose messages reach it.
    pub inbound: Vec<InboundRoute>,
    /// What wakes it without a person: heartbeats, cron jobs, hooks.
    pub wakeups: Vec<Wakeup>,
    /// The trust level the grants amount to (see [`trust_of`]).
    pub trust: TrustLevel,
}

/// The runtime-wide part of a resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub agent_to_agent: AgentToAgentPolicy,
    /// `tools.sessions.visibility` as configured (before any sandbox clamp).
    pub visibility_setting: String,
    pub max_spawn_depth: i64,
    /// Per agent, in roster order.
    pub agents: Vec<(String, AgentAccess)>,
}

fn object(value: Option<&Value>) -> Option<&Map<String, Value>> {
    value.and_then(Value::as_object)
}

fn text<'a>(scope: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    scope.and_then(|s| s.get(key)).and_then(Value::as_str)
}

/// Resolves every agent's access.
pub fn resolve(input: &Input<'_>) -> Resolution {
    let root = input.root;
    let a2a = AgentToAgentPolicy::read(root);
    let defaults = object(value_at(root, &["agents", "defaults"]));
    let max_spawn_depth = value_at(root, &["agents", "defaults", "subagents", "maxSpawnDepth"])
        .and_then(Value::as_i64)
        .unwrap_or(5);
    let ids: Vec<&str> = input.roster.iter().map(|a| a.id).collect();
    let sandbox_of = |agent: &RosterAgent<'_>| sandbox_access(agent.settings, defaults);
    let sandboxes: Vec<SandboxAccess> = input.roster.iter().map(sandbox_of).collect();
    let inbound = reach::inbound_routes(root, &ids, input.default_agent);
    let wakeups = reach::wakeups(root, input.roster, input.default_agent, input.cron_jobs);

    let mut agents = Vec::with_capacity(input.roster.len());
    for (index, agent) in input.roster.iter().enumerate() {
        let sandbox = sandboxes[index].clone();
        let agent_tools = if input.has_roster {
            object(agent.settings.get("tools"))
        } else {
            object(defaults.and_then(|d| d.get("tools")))
        };
        let model = model_of(agent.settings, defaults);
        let context = ToolContext {
            catalog: input.catalog,
            root,
            agent_tools,
            sandboxed: sandbox.main_sandboxed,
            model: model_ref(model.as_deref()),
        };
        let effective_tools = context.effective_tools();
        let has = |tool: &str| effective_tools.iter().any(|t| t == tool);
        let session_visibility = effective_visibility(root, sandbox.main_sandboxed);
        let may_send_to = if has("sessions_send") && session_visibility == "all" {
            let mut targets: Vec<String> = ids
                .iter()
                .filter(|to| **to != agent.id && a2a.allows(agent.id, to))
                .map(|s| (*s).to_owned())
                .collect();
            targets.sort();
            targets
        } else {
            Vec::new()
        };
        let may_spawn = if has("sessions_spawn") && max_spawn_depth > 0 {
            spawn_targets(agent.settings, defaults, agent.id, &ids)
                .into_iter()
                .filter(|to| {
                    let target = ids.iter().position(|id| id == to).map(|i| &sandboxes[i]);
                    !sandbox.main_sandboxed || target.is_some_and(|t| t.mode != "off")
                })
                .collect()
        } else {
            Vec::new()
        };
        let exec = exec_access(root, agent_tools_own(agent, input.has_roster), &sandbox, has("exec"));
        let elevated = elevated_access(root, agent_tools_own(agent, input.has_roster), exec.available);
        let mut access = AgentAccess {
            effective_tools: effective_tools.clone(),
            session_visibility,
            sandbox,
            exec,
            elevated,
            may_send_to,
            may_spawn,
            inbound: inbound.iter().filter(|r| r.agent_id == agent.id).cloned().collect(),
            wakeups: wakeups.iter().filter(|w| w.agent_id == agent.id).cloned().collect(),
            trust: TrustLevel::Restricted,
        };
        access.trust = trust_of(&access);
        agents.push((agent.id.to_owned(), access));
    }
    Resolution { agent_to_agent: a2a, visibility_setting: visibility_setting(root), max_spawn_depth, agents }
}

/// The agent's own `tools` object (exec and elevated settings are always the entry's own;
/// without a roster there is none).
fn agent_tools_own<'a>(agent: &RosterAgent<'a>, has_roster: bool) -> Option<&'a Map<String, Value>> {
    if has_roster { object(agent.settings.get("tools")) } else { None }
}

fn model_of(settings: &Map<String, Value>, defaults: Option<&Map<String, Value>>) -> Option<String> {
    let read = |value: Option<&Value>| match value {
        Some(Value::String(model)) => Some(model.clone()),
        Some(Value::Object(model)) => model.get("primary").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    read(settings.get("model")).or_else(|| read(defaults.and_then(|d| d.get("model"))))
}

fn sandbox_access(settings: &Map<String, Value>, defaults: Option<&Map<String, Value>>) -> SandboxAccess {
    let own = object(settings.get("sandbox"));
    let shared = object(defaults.and_then(|d| d.get("sandbox")));
    let pick = |key: &str| text(own, key).or_else(|| text(shared, key)).map(str::to_owned);
    let mode = pick("mode").unwrap_or_else(|| "off".to_owned());
    let scope = pick("scope").unwrap_or_else(|| {
        let per_session =
            own.and_then(|o| o.get("perSession")).or_else(|| shared.and_then(|s| s.get("perSession")));
        match per_session.and_then(Value::as_bool) {
            Some(true) => "session".to_owned(),
            Some(false) => "shared".to_owned(),
            None => "agent".to_owned(),
        }
    });
    SandboxAccess {
        main_sandboxed: mode == "all",
        mode,
        scope,
        workspace_access: pick("workspaceAccess").unwrap_or_else(|| "none".to_owned()),
    }
}

/// The agents `id`'s `subagents.allowAgents` (else the defaults') lets it spawn, other than
/// itself, sorted — before tools and sandboxes are considered.
pub fn spawn_list(root: &Map<String, Value>, id: &str, configured: &[String]) -> Vec<String> {
    let empty = Map::new();
    let settings = agent_settings(root, id).unwrap_or(&empty);
    let defaults = object(value_at(root, &["agents", "defaults"]));
    let configured: Vec<&str> = configured.iter().map(String::as_str).collect();
    spawn_targets(settings, defaults, id, &configured)
}

/// The settings of agent `id` in either roster shape.
fn agent_settings<'a>(root: &'a Map<String, Value>, id: &str) -> Option<&'a Map<String, Value>> {
    let agents = object(root.get("agents"))?;
    if let Some(entries) = object(agents.get("entries")) {
        return entries.iter().find(|(key, _)| key.eq_ignore_ascii_case(id)).and_then(|(_, v)| v.as_object());
    }
    agents.get("list")?.as_array()?.iter().find_map(|item| {
        let matches = item.get("id").and_then(Value::as_str).is_some_and(|i| i.eq_ignore_ascii_case(id));
        if matches { item.as_object() } else { None }
    })
}

/// The agent's allowed spawn targets other than itself, sorted.
fn spawn_targets(
    settings: &Map<String, Value>,
    defaults: Option<&Map<String, Value>>,
    requester: &str,
    configured: &[&str],
) -> Vec<String> {
    let own = object(settings.get("subagents")).and_then(|s| s.get("allowAgents")).filter(|v| !v.is_null());
    let shared = value_at_map(defaults, &["subagents", "allowAgents"]).filter(|v| !v.is_null());
    let Some(list) = own.or(shared).and_then(Value::as_array) else { return Vec::new() };
    let entries: Vec<&str> = list.iter().filter_map(Value::as_str).map(str::trim).collect();
    let targets: BTreeSet<String> = if entries.contains(&"*") {
        configured.iter().map(|id| (*id).to_owned()).collect()
    } else {
        entries
            .iter()
            .filter(|entry| !entry.is_empty())
            .map(|entry| normalise_agent_id(entry))
            .filter(|id| configured.contains(&id.as_str()))
            .collect()
    };
    targets.into_iter().filter(|id| id != requester).collect()
}

fn value_at_map<'a>(scope: Option<&'a Map<String, Value>>, path: &[&str]) -> Option<&'a Value> {
    scope.and_then(|s| value_at(s, path))
}

/// `normalizeAgentIdStrict`: lower-cased, characters outside `[a-z0-9_-]` become `-`,
/// leading and trailing dashes dropped, at most 64 characters.
pub fn normalise_agent_id(raw: &str) -> String {
    let lower = raw.trim().to_lowercase();
    if crate::domain::openclaw::is_valid_agent_id(&lower) {
        return lower;
    }
    let mut replaced = String::with_capacity(lower.len());
    let mut last_dash = false;
    for c in lower.chars() {
        let keep = c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if keep {
            replaced.push(c);
            last_dash = c == '-';
        } else if !last_dash {
            replaced.push('-');
            last_dash = true;
        }
    }
    replaced.trim_matches('-').chars().take(64).collect()
}

fn exec_access(
    root: &Map<String, Value>,
    agent_tools: Option<&Map<String, Value>>,
    sandbox: &SandboxAccess,
    available: bool,
) -> ExecAccess {
    let global = object(value_at(root, &["tools", "exec"]));
    let own = object(agent_tools.and_then(|t| t.get("exec")));
    let host = text(own, "host").or_else(|| text(global, "host")).unwrap_or("auto");
    let host = match host {
        "auto" if sandbox.main_sandboxed => "sandbox",
        "auto" => "gateway",
        other => other,
    };
    let (mut security, mut ask) = ("full".to_owned(), "off".to_owned());
    for layer in [global, own].into_iter().flatten() {
        if let Some(mode) = text(Some(layer), "mode") {
            let (s, a) = match mode {
                "deny" => ("deny", "off"),
                "allowlist" => ("allowlist", "off"),
                "ask" | "auto" => ("allowlist", "on-miss"),
                _ => ("full", "off"),
            };
            (security, ask) = (s.to_owned(), a.to_owned());
        } else {
            if let Some(value) = text(Some(layer), "security") {
                security = value.to_owned();
            }
            if let Some(value) = text(Some(layer), "ask") {
                ask = value.to_owned();
            }
        }
    }
    ExecAccess { available, host: host.to_owned(), security, ask }
}

fn elevated_access(
    root: &Map<String, Value>,
    agent_tools: Option<&Map<String, Value>>,
    exec: bool,
) -> ElevatedAccess {
    let global = object(value_at(root, &["tools", "elevated"]));
    let own = object(agent_tools.and_then(|t| t.get("elevated")));
    let enabled_in = |scope: Option<&Map<String, Value>>| {
        scope.and_then(|s| s.get("enabled")) != Some(&Value::Bool(false))
    };
    let enabled = enabled_in(global) && enabled_in(own);
    let tokens = |scope: Option<&Map<String, Value>>, channel: &str| -> Vec<String> {
        let list =
            scope.and_then(|s| s.get("allowFrom")).and_then(|a| a.get(channel)).and_then(Value::as_array);
        list.into_iter()
            .flatten()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.trim().to_owned()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
            .collect()
    };
    let own_sets_allow_from = own.and_then(|o| o.get("allowFrom")).is_some_and(|v| !v.is_null());
    let mut allow_from = Vec::new();
    let channels = global.and_then(|g| g.get("allowFrom")).and_then(Value::as_object);
    for channel in channels.into_iter().flat_map(|c| c.keys()) {
        let global_tokens = tokens(global, channel);
        let senders: Vec<String> = if !own_sets_allow_from {
            global_tokens
        } else {
            let own_tokens = tokens(own, channel);
            if global_tokens.iter().any(|t| t == "*") {
                own_tokens
            } else if own_tokens.iter().any(|t| t == "*") {
                global_tokens
            } else {
                global_tokens.into_iter().filter(|t| own_tokens.contains(t)).collect()
            }
        };
        allow_from.extend(senders.into_iter().map(|sender| format!("{channel}:{sender}")));
    }
    allow_from.sort();
    allow_from.dedup();
    ElevatedAccess { enabled, usable: enabled && exec && !allow_from.is_empty(), allow_from }
}

/// Tools that drive the host or a paired device directly.
const HOST_CONTROL_TOOLS: &[&str] = &["terminal", "computer", "nodes"];
/// Tools that act on the operator's browser or phone.
const DEVICE_TOOLS: &[&str] = &["browser", "mobile_ui"];
/// Tools that write files.
const WRITE_TOOLS: &[&str] = &["write", "edit", "apply_patch"];

/// The trust level an agent's effective grants amount to (the lowest level that bounds them):
///
/// | level | when the main session… |
/// |---|---|
/// | ELEVATED | runs commands on a real host (`exec` with host `gateway`/`node`, security not `deny`), writes files unsandboxed (`write`/`edit`/`apply_patch`), drives the host or a paired device (`terminal`, `computer`, `nodes`), or may use elevated exec |
/// | STANDARD | otherwise reaches beyond a throw-away sandbox: writes or runs commands in a sandbox with `workspaceAccess: rw` (changes land in the real workspace), or uses the operator's browser or phone (`browser`, `mobile_ui`) |
/// | RESTRICTED | everything else: only contained sandbox work, messaging and session tools |
///
/// Cross-agent SEND and SPAWN are edges of their own (drift compares them edge by edge), so
/// they do not raise the level.
pub fn trust_of(access: &AgentAccess) -> TrustLevel {
    let has = |tool: &str| access.effective_tools.iter().any(|t| t == tool);
    let writes = WRITE_TOOLS.iter().any(|t| has(t));
    let host = access.exec.on_host()
        || (writes && !access.sandbox.main_sandboxed)
        || HOST_CONTROL_TOOLS.iter().any(|t| has(t))
        || access.elevated.usable;
    if host {
        return TrustLevel::Elevated;
    }
    let sandbox_rw = access.sandbox.main_sandboxed
        && access.sandbox.workspace_access == "rw"
        && (writes || (access.exec.available && access.exec.security != "deny"));
    if sandbox_rw || DEVICE_TOOLS.iter().any(|t| has(t)) {
        return TrustLevel::Standard;
    }
    TrustLevel::Restricted
}

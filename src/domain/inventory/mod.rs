//! Normalisation of one read of an OpenClaw installation into an [`Inventory`].
//!
//! # Assumptions
//! - Paths in the config are resolved the way OpenClaw resolves them: `~/` against the
//!   runtime user's home, absolute paths as written, and (inferred) relative paths against the
//!   state directory. The runtime host is POSIX, so paths join with `/`.
//! - The default agent works in `<state>/workspace`, every other agent in
//!   `<state>/workspace-<id>`, unless `workspace` is set.

mod detect;
mod model;

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::model::{RosterShape, SandboxMode};
use super::openclaw::{self, ConfigIssue, ConfigParseError, ParsedConfig, string_list, value_at};
use super::permissions::{self, AgentAccess, Resolution, RosterAgent, ToolCatalog};
use model::join;

pub use model::*;

/// An agent's identity and paths, resolved before the adapter probes the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAgent {
    pub id: String,
    pub workspace: String,
    pub agent_dir: String,
    pub is_default: bool,
}

/// The implicit agent of a config without roster.
pub const IMPLICIT_AGENT_ID: &str = "main";

/// Resolves every valid agent's workspace and agent dir (first valid entry wins a duplicate id).
///
/// Workspace defaults follow the real CLI (2026.9.6): in an explicit multi-agent roster every
/// agent works in `<state>/workspace-<id>`; otherwise (legacy list, a single keyed agent, no
/// roster) the default agent works in `<state>/workspace` (or `agents.defaults.workspace`).
pub fn resolve_agents(parsed: &ParsedConfig, layout: &StateLayout) -> Vec<ResolvedAgent> {
    let default_id = default_agent_id(parsed);
    let defaults_workspace = openclaw::str_at(&parsed.root, &["agents", "defaults", "workspace"]);
    let explicit = openclaw::str_at(&parsed.root, &["agents", "ownership"]) == Some("explicit");
    let shared_default_workspace = parsed.shape != RosterShape::Entries || !explicit;
    let mut seen = BTreeSet::new();
    let mut settings_by_id: Vec<(String, Map<String, Value>)> = parsed
        .entries
        .iter()
        .filter(|entry| entry.id_valid && seen.insert(entry.id.clone()))
        .map(|entry| (entry.id.clone(), entry.settings.clone()))
        .collect();
    if parsed.shape == RosterShape::None {
        settings_by_id.push((IMPLICIT_AGENT_ID.to_owned(), Map::new()));
    }
    settings_by_id
        .into_iter()
        .map(|(id, settings)| {
            let is_default = default_id.as_deref() == Some(id.as_str());
            let owns_default_workspace = is_default && shared_default_workspace;
            let own_workspace = settings.get("workspace").and_then(Value::as_str);
            let workspace =
                match (own_workspace, owns_default_workspace.then_some(defaults_workspace).flatten()) {
                    (Some(path), _) | (None, Some(path)) => layout.resolve(path),
                    (None, None) if owns_default_workspace => join(&layout.state_dir, "workspace"),
                    (None, None) => join(&layout.state_dir, &format!("workspace-{id}")),
                };
            let agent_dir = match settings.get("agentDir").and_then(Value::as_str) {
                Some(path) => layout.resolve(path),
                None => join(&layout.state_dir, &format!("agents/{id}/agent")),
            };
            ResolvedAgent { id, workspace, agent_dir, is_default }
        })
        .collect()
}

/// Returns the default agent's id, as the real CLI reports it: the legacy `default: true`
/// marker (else the first legacy entry); in the keyed shape the agent named by
/// `agents.defaults.{systemAgent,heartbeat,authInheritance}.agentId`, else the only agent of a
/// single-agent roster (an explicit multi-agent roster without a marker has none); `main`
/// without a roster.
pub fn default_agent_id(parsed: &ParsedConfig) -> Option<String> {
    let valid: Vec<&str> = parsed.entries.iter().filter(|e| e.id_valid).map(|e| e.id.as_str()).collect();
    match parsed.shape {
        RosterShape::None => Some(IMPLICIT_AGENT_ID.to_owned()),
        RosterShape::List => parsed
            .entries
            .iter()
            .find(|e| e.id_valid && e.legacy_default)
            .map(|e| e.id.clone())
            .or_else(|| valid.first().map(|id| (*id).to_owned())),
        RosterShape::Entries => {
            let marker = ["systemAgent", "heartbeat", "authInheritance"].iter().find_map(|key| {
                openclaw::str_at(&parsed.root, &["agents", "defaults", key, "agentId"])
                    .map(str::to_ascii_lowercase)
                    .filter(|id| valid.contains(&id.as_str()))
            });
            marker.or_else(|| (valid.len() == 1).then(|| valid[0].to_owned()))
        }
    }
}

/// Builds the inventory from the raw config text and the adapter's facts.
pub fn build_inventory(raw: &str, facts: &RuntimeFacts) -> Inventory {
    let hash = config_hash(raw);
    if let Some(reason) = &facts.config_refused {
        return unreadable_inventory(hash, facts, &ConfigParseError::Refused { reason: reason.clone() });
    }
    let parsed = match openclaw::parse_config(raw) {
        Ok(parsed) => parsed,
        Err(err) => return unreadable_inventory(hash, facts, &err),
    };
    let issues = facts.cli_issues.clone().unwrap_or_else(|| openclaw::validate(&parsed));
    let empty = Map::new();
    let defaults =
        value_at(&parsed.root, &["agents", "defaults"]).and_then(Value::as_object).unwrap_or(&empty);
    let global_tools = parsed.root.get("tools").and_then(Value::as_object).unwrap_or(&empty);

    let settings_of = |id: &str| -> Map<String, Value> {
        parsed
            .entries
            .iter()
            .find(|entry| entry.id_valid && entry.id == id)
            .map(|entry| entry.settings.clone())
            .unwrap_or_default()
    };
    let resolved_agents = resolve_agents(&parsed, &facts.layout);
    let settings: Vec<Map<String, Value>> = resolved_agents.iter().map(|a| settings_of(&a.id)).collect();
    let catalog = facts
        .tool_catalog
        .clone()
        .unwrap_or_else(|| ToolCatalog::for_version(facts.openclaw_version.as_deref()));
    let resolution = resolve_permissions(&parsed, &resolved_agents, &settings, &catalog, facts);
    let mut agents: Vec<InventoryAgent> = resolved_agents
        .into_iter()
        .zip(settings.iter())
        .zip(resolution.agents.iter().map(|(_, access)| access.clone()))
        .map(|((resolved, settings), access)| {
            let workspace_exists = facts.existing_workspaces.contains(&resolved.workspace);
            let session_activity = facts.session_stores.get(&resolved.id).cloned().unwrap_or_default();
            agent_from_settings(
                resolved,
                settings,
                defaults,
                global_tools,
                workspace_exists,
                session_activity,
                access,
            )
        })
        .collect();
    agents.sort_by(|a, b| a.id.cmp(&b.id));

    let bindings = read_bindings(&parsed.root);
    let agent_to_agent = read_agent_to_agent(global_tools, &resolution);
    let subagent_limits = read_subagent_limits(defaults);
    let findings = detect::detect(&detect::FindingInputs {
        parsed: &parsed,
        issues: &issues,
        agents: &agents,
        bindings: &bindings,
        agent_to_agent: &agent_to_agent,
        facts,
        catalog: &catalog,
    });
    Inventory {
        openclaw_version: facts.openclaw_version.clone(),
        roster_shape: parsed.shape,
        config_path: facts.config_path.clone(),
        config_hash: hash,
        config_valid: issues.is_empty(),
        config_issues: issues,
        default_agent_id: agents.iter().find(|a| a.is_default).map(|a| a.id.clone()),
        agents,
        bindings,
        agent_to_agent,
        subagent_limits,
        findings,
        tool_catalog: Some(catalog.source.clone()),
    }
}

/// Runs the permission resolution over the valid roster.
fn resolve_permissions(
    parsed: &ParsedConfig,
    agents: &[ResolvedAgent],
    settings: &[Map<String, Value>],
    catalog: &ToolCatalog,
    facts: &RuntimeFacts,
) -> Resolution {
    let roster: Vec<RosterAgent<'_>> = agents
        .iter()
        .zip(settings)
        .map(|(agent, settings)| RosterAgent { id: &agent.id, settings })
        .collect();
    let default_agent = agents.iter().find(|a| a.is_default).map(|a| a.id.as_str());
    permissions::resolve(&permissions::Input {
        root: &parsed.root,
        roster: &roster,
        has_roster: parsed.shape != RosterShape::None,
        default_agent,
        catalog,
        cron_jobs: facts.cron_jobs.as_deref(),
    })
}

fn unreadable_inventory(hash: String, facts: &RuntimeFacts, err: &ConfigParseError) -> Inventory {
    let issue = ConfigIssue { path: "<root>".to_owned(), message: err.to_string() };
    Inventory {
        openclaw_version: facts.openclaw_version.clone(),
        roster_shape: RosterShape::None,
        config_path: facts.config_path.clone(),
        config_hash: hash,
        config_valid: false,
        findings: vec![detect::unreadable(&facts.config_path, err)],
        config_issues: vec![issue],
        agents: Vec::new(),
        bindings: Vec::new(),
        agent_to_agent: AgentToAgent::default(),
        subagent_limits: read_subagent_limits(&Map::new()),
        default_agent_id: None,
        tool_catalog: None,
    }
}

fn agent_from_settings(
    resolved: ResolvedAgent,
    settings: &Map<String, Value>,
    defaults: &Map<String, Value>,
    global_tools: &Map<String, Value>,
    workspace_exists: bool,
    session_activity: SessionActivity,
    access: AgentAccess,
) -> InventoryAgent {
    let own_or_default = |key: &str| settings.get(key).or_else(|| defaults.get(key));
    let (model, model_fallbacks) = read_model(own_or_default("model"));
    let own_tools = settings.get("tools").and_then(Value::as_object);
    let own_list = |key: &str| string_list(own_tools.and_then(|t| t.get(key)));
    let tools = ToolPolicy {
        profile: own_tools
            .and_then(|t| t.get("profile"))
            .or_else(|| global_tools.get("profile"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        allow: own_list("allow"),
        deny: own_list("deny"),
        also_allow: own_list("alsoAllow"),
    };
    let sandbox_mode = own_or_default("sandbox")
        .and_then(|s| s.get("mode"))
        .map(|mode| SandboxMode::parse(mode.as_str().unwrap_or("")))
        .unwrap_or(SandboxMode::Off);
    let allow_agents = settings
        .get("subagents")
        .and_then(|s| s.get("allowAgents"))
        .filter(|v| !v.is_null())
        .or_else(|| defaults.get("subagents").and_then(|s| s.get("allowAgents")));
    let identity = settings.get("identity").and_then(Value::as_object);
    let identity_field =
        |key: &str| identity.and_then(|i| i.get(key)).and_then(Value::as_str).map(str::to_owned);
    InventoryAgent {
        name: settings.get("name").and_then(Value::as_str).map(str::to_owned),
        workspace_exists,
        model,
        model_fallbacks,
        skills: string_list(settings.get("skills")),
        effective_trust: access.trust,
        sandbox_mode,
        elevated: access.elevated.usable,
        allow_agents: string_list(allow_agents).into_iter().map(|id| id.to_ascii_lowercase()).collect(),
        identity: AgentIdentity {
            name: identity_field("name"),
            emoji: identity_field("emoji"),
            theme: identity_field("theme"),
            avatar: identity_field("avatar"),
        },
        session_activity,
        tools,
        id: resolved.id,
        workspace: resolved.workspace,
        agent_dir: resolved.agent_dir,
        is_default: resolved.is_default,
        access,
    }
}

fn read_model(value: Option<&Value>) -> (Option<String>, Vec<String>) {
    match value {
        Some(Value::String(primary)) => (Some(primary.clone()), Vec::new()),
        Some(Value::Object(model)) => (
            model.get("primary").and_then(Value::as_str).map(str::to_owned),
            string_list(model.get("fallbacks")),
        ),
        _ => (None, Vec::new()),
    }
}

fn read_bindings(root: &Map<String, Value>) -> Vec<Binding> {
    let Some(items) = root.get("bindings").and_then(Value::as_array) else { return Vec::new() };
    items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| {
            let item = item.as_object()?;
            let matcher = item.get("match").and_then(Value::as_object);
            let text =
                |key: &str| matcher.and_then(|m| m.get(key)).and_then(Value::as_str).map(str::to_owned);
            let peer = matcher.and_then(|m| m.get("peer"));
            let peer_text =
                |key: &str| peer.and_then(|p| p.get(key)).and_then(Value::as_str).map(str::to_owned);
            Some(Binding {
                index,
                agent_id: item.get("agentId").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase(),
                kind: item.get("type").and_then(Value::as_str).unwrap_or("route").to_owned(),
                comment: item.get("comment").and_then(Value::as_str).map(str::to_owned),
                route: RouteMatch {
                    channel: text("channel").unwrap_or_default(),
                    account_id: text("accountId"),
                    peer_kind: peer_text("kind"),
                    peer_id: peer_text("id"),
                    guild_id: text("guildId"),
                    team_id: text("teamId"),
                    roles: string_list(matcher.and_then(|m| m.get("roles"))),
                },
            })
        })
        .collect()
}

fn read_agent_to_agent(tools: &Map<String, Value>, resolution: &Resolution) -> AgentToAgent {
    AgentToAgent {
        enabled: resolution.agent_to_agent.enabled,
        allow: string_list(tools.get("agentToAgent").and_then(|a| a.get("allow"))),
        sessions_visibility: resolution.visibility_setting.clone(),
    }
}

fn read_subagent_limits(defaults: &Map<String, Value>) -> SubagentLimits {
    let subagents = defaults.get("subagents");
    let limit = |key: &str, fallback: i64| {
        subagents.and_then(|s| s.get(key)).and_then(Value::as_i64).unwrap_or(fallback)
    };
    // Defaults from OpenClaw 2026.9.6 (`sessions-spawn-tool-*.mjs`, docs/tools/subagents).
    SubagentLimits {
        max_spawn_depth: limit("maxSpawnDepth", 5),
        max_children_per_agent: limit("maxChildrenPerAgent", 5),
        max_concurrent: limit("maxConcurrent", 8),
    }
}

#[cfg(test)]
mod tests;

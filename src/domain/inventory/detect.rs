//! Detecting findings while an inventory is built.
//!
//! The CLI reports schema problems only, and stops at the first layer of them; the semantic
//! problems (stale ids, unknown binding targets, missing workspaces, legacy stores, rejected
//! writes) are jhf-warp's own value, so they are detected here directly from the config and
//! facts, whatever the validator said.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::model::{AgentToAgent, Binding, InventoryAgent, RuntimeFacts, SessionStore};
use crate::domain::findings::{Finding, FindingKind};
use crate::domain::model::SandboxMode;
use crate::domain::openclaw::{
    ConfigIssue, ConfigParseError, ParsedConfig, RETIRED_ROOT_KEYS, string_list, value_at,
};
use crate::domain::permissions::{CatalogSource, ToolCatalog};

/// What finding detection looks at.
pub struct FindingInputs<'a> {
    pub parsed: &'a ParsedConfig,
    pub issues: &'a [ConfigIssue],
    pub agents: &'a [InventoryAgent],
    pub bindings: &'a [Binding],
    pub agent_to_agent: &'a AgentToAgent,
    pub facts: &'a RuntimeFacts,
    pub catalog: &'a ToolCatalog,
}

/// Returns the single finding of a config that could not be parsed.
pub fn unreadable(config_path: &str, err: &ConfigParseError) -> Finding {
    Finding::new(FindingKind::ConfigUnreadable, "openclaw.json", config_path, err.to_string())
}

/// Returns every finding, sorted by key and deduplicated.
pub fn detect(inputs: &FindingInputs<'_>) -> Vec<Finding> {
    let mut found = Vec::new();
    let known: BTreeSet<&str> = inputs.agents.iter().map(|a| a.id.as_str()).collect();
    if !inputs.issues.is_empty() {
        let paths: Vec<&str> = inputs.issues.iter().map(|i| i.path.as_str()).collect();
        found.push(Finding::new(
            FindingKind::ConfigInvalid,
            "openclaw.json",
            &inputs.facts.config_path,
            format!("config fails validation with {} problem(s) at: {}", paths.len(), paths.join(", ")),
        ));
    }
    roster_findings(inputs.parsed, &mut found);
    scope_findings(inputs.parsed, &known, &mut found);
    for agent in inputs.agents {
        if !agent.workspace_exists {
            found.push(Finding::new(
                FindingKind::WorkspaceMissing,
                &agent.id,
                &agent.workspace,
                format!("workspace directory of agent \"{}\" does not exist", agent.id),
            ));
        }
        if agent.session_activity.store == SessionStore::Legacy {
            found.push(Finding::new(
                FindingKind::LegacySessionStore,
                &agent.id,
                format!("{}/agents/{}/sessions/sessions.json", inputs.facts.layout.state_dir, agent.id),
                format!("agent \"{}\" still keeps sessions in the legacy JSON store", agent.id),
            ));
        }
    }
    for binding in inputs.bindings {
        if !known.contains(binding.agent_id.as_str()) {
            found.push(Finding::new(
                FindingKind::BindingUnknownAgent,
                format!("{} {}", binding.agent_id, binding.route.key()),
                format!("bindings.{}.agentId", binding.index),
                format!(
                    "binding {} routes {} to unknown agent \"{}\"; messages would be misrouted",
                    binding.index,
                    binding.route.key(),
                    binding.agent_id
                ),
            ));
        }
    }
    permission_findings(inputs, &mut found);
    for name in &inputs.agent_to_agent.allow {
        let name = name.trim();
        if !name.is_empty() && !name.contains('*') && !known.contains(name.to_ascii_lowercase().as_str()) {
            found.push(Finding::new(
                FindingKind::StaleAgentToAgentAllow,
                name.to_ascii_lowercase(),
                "tools.agentToAgent.allow",
                format!("tools.agentToAgent.allow names \"{name}\", which is not a configured agent"),
            ));
        }
    }
    for file in &inputs.facts.rejected_writes {
        found.push(Finding::new(
            FindingKind::RejectedWritePresent,
            file,
            file,
            format!("OpenClaw rejected a config write ({file} is present next to the config)"),
        ));
    }
    found.sort();
    found.dedup_by(|a, b| a.key == b.key);
    found
}

/// Findings about what agents may do: a tool table that does not fit the runtime's version,
/// privileged agents anyone can message.
fn permission_findings(inputs: &FindingInputs<'_>, found: &mut Vec<Finding>) {
    if let CatalogSource::NearestTable { runtime_version, table_version } = &inputs.catalog.source {
        let runtime = runtime_version.as_deref().unwrap_or("unknown");
        found.push(Finding::new(
            FindingKind::ToolTableMissing,
            format!("{runtime}->{table_version}"),
            "openclaw --version",
            format!(
                "jhf-warp has no tool table for OpenClaw {runtime}; effective tools, SEND and SPAWN were resolved \
                 with the table of {table_version}"
            ),
        ));
    }
    for agent in inputs.agents {
        let access = &agent.access;
        let privileged = access.exec.on_host() || access.elevated.usable;
        for route in access.inbound.iter().filter(|r| r.open_dm()) {
            if privileged {
                found.push(Finding::new(
                    FindingKind::OpenDmToPrivilegedAgent,
                    format!("{}:{}/{}", agent.id, route.channel, route.account),
                    format!("channels.{}", route.channel),
                    format!(
                        "anyone may message agent \"{}\" through {} account {} (dmPolicy open), and it {}",
                        agent.id,
                        route.channel,
                        route.account,
                        if access.exec.on_host() {
                            "runs commands on the host"
                        } else {
                            "may use elevated exec"
                        }
                    ),
                ));
            }
        }
    }
}

fn roster_findings(parsed: &ParsedConfig, found: &mut Vec<Finding>) {
    for key in RETIRED_ROOT_KEYS {
        if parsed.root.contains_key(*key) {
            found.push(Finding::new(
                FindingKind::RetiredKey,
                *key,
                "<root>",
                format!("retired root key \"{key}\" is present; OpenClaw refuses the config"),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for entry in &parsed.entries {
        if !entry.id_valid {
            found.push(Finding::new(
                FindingKind::InvalidAgentId,
                &entry.raw_id,
                &entry.path,
                format!("\"{}\" is not a valid agent id (^[a-z0-9][a-z0-9_-]{{0,63}}$)", entry.raw_id),
            ));
        } else if !seen.insert(entry.id.as_str()) {
            found.push(Finding::new(
                FindingKind::DuplicateAgentId,
                &entry.id,
                &entry.path,
                format!("agent id \"{}\" appears more than once", entry.id),
            ));
        }
    }
    let explicit =
        value_at(&parsed.root, &["agents", "ownership"]).and_then(Value::as_str) == Some("explicit");
    let legacy_defaults = parsed.entries.iter().filter(|e| e.legacy_default).count();
    if parsed.entries.len() > 1 && !explicit && legacy_defaults != 1 {
        found.push(Finding::new(
            FindingKind::OwnershipMissing,
            "agents.ownership",
            "agents.ownership",
            "a multi-agent roster needs agents.ownership=\"explicit\" or one legacy default marker",
        ));
    }
}

/// Checks every settings scope (global tools, agent defaults, each entry) for conflicts,
/// invalid sandbox modes and stale `allowAgents` ids.
fn scope_findings(parsed: &ParsedConfig, known: &BTreeSet<&str>, found: &mut Vec<Finding>) {
    let empty = Map::new();
    let mut scopes: Vec<(String, String, &Map<String, Value>)> = Vec::new();
    if let Some(defaults) = value_at(&parsed.root, &["agents", "defaults"]).and_then(Value::as_object) {
        scopes.push(("defaults".to_owned(), "agents.defaults".to_owned(), defaults));
    }
    for entry in parsed.entries.iter().filter(|e| e.id_valid) {
        scopes.push((entry.id.clone(), entry.path.clone(), &entry.settings));
    }
    if let Some(tools) = parsed.root.get("tools").and_then(Value::as_object) {
        push_tools_conflict(tools, "global", "tools", found);
    }
    for (subject, path, settings) in scopes {
        let tools = settings.get("tools").and_then(Value::as_object).unwrap_or(&empty);
        push_tools_conflict(tools, &subject, &format!("{path}.tools"), found);
        let mode = settings.get("sandbox").and_then(|s| s.get("mode"));
        if let Some(SandboxMode::Invalid(value)) = mode.map(|m| SandboxMode::parse(m.as_str().unwrap_or("")))
        {
            found.push(Finding::new(
                FindingKind::InvalidSandboxMode,
                &subject,
                format!("{path}.sandbox.mode"),
                format!("sandbox mode \"{value}\" of {subject} is not one of off, non-main, all"),
            ));
        }
        let allow_agents = string_list(settings.get("subagents").and_then(|s| s.get("allowAgents")));
        for id in allow_agents {
            let lowered = id.to_ascii_lowercase();
            if lowered != "*" && !known.contains(lowered.as_str()) {
                found.push(Finding::new(
                    FindingKind::StaleAllowAgents,
                    format!("{subject}:{lowered}"),
                    format!("{path}.subagents.allowAgents"),
                    format!(
                        "subagents.allowAgents of {subject} names \"{id}\", which is not a configured agent"
                    ),
                ));
            }
        }
    }
}

fn push_tools_conflict(tools: &Map<String, Value>, subject: &str, path: &str, found: &mut Vec<Finding>) {
    if tools.contains_key("allow") && tools.contains_key("alsoAllow") {
        found.push(Finding::new(
            FindingKind::ToolsAllowConflict,
            subject,
            path,
            format!("tools of {subject} set both allow and alsoAllow; OpenClaw refuses the config"),
        ));
    }
}

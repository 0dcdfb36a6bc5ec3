//! jhf-warp's own structural validation of an OpenClaw config, used where the real CLI is not
//! available (fixture mode). It reports problems in the CLI's form (dotted path + message) and
//! covers what warp relies on; it is not a full copy of OpenClaw's schema.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{ParsedConfig, RETIRED_ROOT_KEYS, value_at};
use crate::domain::model::RosterShape;

/// One validation problem at a config path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ConfigIssue {
    /// Dotted config path, or `<root>`.
    pub path: String,
    /// What is wrong (never a secret value).
    pub message: String,
}

impl ConfigIssue {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

const SANDBOX_MODES: &[&str] = &["off", "non-main", "all"];
const SESSION_VISIBILITIES: &[&str] = &["self", "tree", "agent", "all"];

/// Returns every structural problem of the config, sorted by path.
pub fn validate(parsed: &ParsedConfig) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    for key in RETIRED_ROOT_KEYS {
        if parsed.root.contains_key(*key) {
            issues.push(ConfigIssue::new("<root>", format!("Unrecognized key: \"{key}\"")));
        }
    }
    check_ownership(parsed, &mut issues);
    check_tools_scope(parsed.root.get("tools"), "tools", &mut issues);
    if let Some(defaults) = value_at(&parsed.root, &["agents", "defaults"]) {
        // The real schema has no tools key under agents.defaults (tools live at the root or
        // per agent).
        if defaults.get("tools").is_some() {
            issues.push(ConfigIssue::new("agents.defaults", "Unrecognized key: \"tools\""));
        }
        check_agent_scope(defaults.as_object(), "agents.defaults", &mut issues);
        check_subagent_limits(defaults, &mut issues);
    }
    let mut seen_ids = BTreeSet::new();
    for entry in &parsed.entries {
        if !entry.id_valid {
            let (path, message) = match parsed.shape {
                RosterShape::List => (format!("{}.id", entry.path), "Invalid agent id"),
                _ => (entry.path.clone(), "Invalid key in record"),
            };
            issues.push(ConfigIssue::new(path, message));
        } else if !seen_ids.insert(entry.id.clone()) {
            issues.push(ConfigIssue::new(entry.path.clone(), "Duplicate agent id"));
        }
        check_agent_scope(Some(&entry.settings), &entry.path, &mut issues);
    }
    check_bindings(parsed, &seen_ids, &mut issues);
    if let Some(visibility) = value_at(&parsed.root, &["tools", "sessions", "visibility"]) {
        let known = visibility.as_str().is_some_and(|v| SESSION_VISIBILITIES.contains(&v));
        if !known {
            issues.push(ConfigIssue::new(
                "tools.sessions.visibility",
                "Invalid option: expected one of \"self\"|\"tree\"|\"agent\"|\"all\"",
            ));
        }
    }
    issues.sort();
    issues.dedup();
    issues
}

fn check_ownership(parsed: &ParsedConfig, issues: &mut Vec<ConfigIssue>) {
    if parsed.entries.len() < 2 {
        return;
    }
    let explicit =
        value_at(&parsed.root, &["agents", "ownership"]).and_then(Value::as_str) == Some("explicit");
    let legacy_defaults = parsed.entries.iter().filter(|e| e.legacy_default).count();
    let legacy_ok = parsed.shape == RosterShape::List && legacy_defaults == 1;
    if !explicit && !legacy_ok {
        issues.push(ConfigIssue::new(
            "agents.ownership",
            "multi-agent rosters require agents.ownership=\"explicit\" or one legacy default=true marker",
        ));
    }
}

fn check_agent_scope(settings: Option<&Map<String, Value>>, path: &str, issues: &mut Vec<ConfigIssue>) {
    let Some(settings) = settings else { return };
    check_tools_scope(settings.get("tools"), &format!("{path}.tools"), issues);
    let mode = settings.get("sandbox").and_then(Value::as_object).and_then(|s| s.get("mode"));
    if mode.is_some_and(|m| !m.as_str().is_some_and(|m| SANDBOX_MODES.contains(&m))) {
        issues.push(ConfigIssue::new(
            format!("{path}.sandbox.mode"),
            "Invalid option: expected one of \"off\"|\"non-main\"|\"all\"",
        ));
    }
}

fn check_tools_scope(tools: Option<&Value>, path: &str, issues: &mut Vec<ConfigIssue>) {
    let Some(tools) = tools.and_then(Value::as_object) else { return };
    if tools.contains_key("allow") && tools.contains_key("alsoAllow") {
        issues
            .push(ConfigIssue::new(path, "tools.allow and tools.alsoAllow cannot be set in the same scope"));
    }
}

fn check_subagent_limits(defaults: &Value, issues: &mut Vec<ConfigIssue>) {
    let Some(subagents) = defaults.get("subagents").and_then(Value::as_object) else { return };
    let limits: [(&str, i64, i64); 3] =
        [("maxSpawnDepth", 1, 5), ("maxChildrenPerAgent", 1, 20), ("maxConcurrent", 1, 1000)];
    for (key, min, max) in limits {
        let Some(value) = subagents.get(key) else { continue };
        if !value.as_i64().is_some_and(|v| (min..=max).contains(&v)) {
            issues.push(ConfigIssue::new(
                format!("agents.defaults.subagents.{key}"),
                format!("Expected an integer from {min} to {max}"),
            ));
        }
    }
}

fn check_bindings(parsed: &ParsedConfig, known_ids: &BTreeSet<String>, issues: &mut Vec<ConfigIssue>) {
    let Some(bindings) = parsed.root.get("bindings") else { return };
    let Some(bindings) = bindings.as_array() else {
        issues.push(ConfigIssue::new("bindings", "Expected array"));
        return;
    };
    for (index, binding) in bindings.iter().enumerate() {
        let agent_id = binding.get("agentId").and_then(Value::as_str);
        match agent_id {
            None => issues.push(ConfigIssue::new(format!("bindings.{index}.agentId"), "Required")),
            Some(id) if !known_ids.contains(&id.to_ascii_lowercase()) => {
                issues.push(ConfigIssue::new(
                    format!("bindings.{index}.agentId"),
                    format!("Unknown agent id \"{id}\" (not in agents.entries)."),
                ));
            }
            Some(_) => {}
        }
        let has_channel =
            binding.get("match").and_then(|m| m.get("channel")).and_then(Value::as_str).is_some();
        if !has_channel {
            issues.push(ConfigIssue::new(format!("bindings.{index}.match.channel"), "Required"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_config;
    use super::*;

    fn issues_of(raw: &str) -> Vec<ConfigIssue> {
        validate(&parse_config(raw).unwrap())
    }

    fn paths(issues: &[ConfigIssue]) -> Vec<&str> {
        issues.iter().map(|i| i.path.as_str()).collect()
    }

    #[test]
    fn a_clean_multi_agent_config_has_no_issues() {
        let raw = r#"{ agents: { ownership: "explicit", entries: { a: {}, b: {} } },
                       bindings: [ { agentId: "a", match: { channel: "telegram" } } ] }"#;
        assert!(issues_of(raw).is_empty());
    }

    #[test]
    fn multi_agent_roster_without_ownership_is_invalid() {
        let issues = issues_of(r#"{ agents: { entries: { a: {}, b: {} } } }"#);
        assert_eq!(paths(&issues), ["agents.ownership"]);
    }

    #[test]
    fn legacy_list_with_one_default_marker_needs_no_ownership() {
        let raw = r#"{ agents: { list: [ { id: "a", default: true }, { id: "b" } ] } }"#;
        assert!(issues_of(raw).is_empty());
    }

    #[test]
    fn retired_root_key_is_reported_at_root() {
        let issues = issues_of(r#"{ agent: { model: "x" } }"#);
        assert_eq!(issues, [ConfigIssue::new("<root>", "Unrecognized key: \"agent\"")]);
    }

    #[test]
    fn schema_problems_are_reported_at_their_paths() {
        let raw = r#"{ agents: { ownership: "explicit", entries: {
            ops: { tools: { allow: ["read"], alsoAllow: ["write"] } },
            qa: { sandbox: { mode: "sometimes" } },
            "QA Team": {},
        } } }"#;
        let issues = issues_of(raw);
        assert_eq!(
            paths(&issues),
            ["agents.entries.QA Team", "agents.entries.ops.tools", "agents.entries.qa.sandbox.mode"]
        );
    }

    #[test]
    fn tools_under_agent_defaults_is_an_unrecognized_key() {
        let issues = issues_of(r#"{ agents: { defaults: { tools: { profile: "coding" } } } }"#);
        assert_eq!(issues, [ConfigIssue::new("agents.defaults", "Unrecognized key: \"tools\"")]);
    }

    #[test]
    fn binding_to_an_unknown_agent_is_invalid() {
        let raw = r#"{ agents: { entries: { a: {} } },
                       bindings: [ { agentId: "a", match: { channel: "x" } }, { agentId: "zeta", match: { channel: "x" } } ] }"#;
        let issues = issues_of(raw);
        assert_eq!(paths(&issues), ["bindings.1.agentId"]);
        assert!(issues[0].message.contains("\"zeta\""));
    }

    #[test]
    fn subagent_limits_outside_openclaw_ranges_are_invalid() {
        let raw = r#"{ agents: { defaults: { subagents: { maxSpawnDepth: 9, maxChildrenPerAgent: 3 } } } }"#;
        assert_eq!(paths(&issues_of(raw)), ["agents.defaults.subagents.maxSpawnDepth"]);
    }
}

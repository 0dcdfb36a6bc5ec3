//! Patches in the shape the OpenClaw Gateway's `config.patch` accepts, and the exact inverse a
//! rollback sends through it.
//!
//! Two facts of the Gateway shape this (checked against 2026.9.6):
//! - `config.patch` refuses a patch that drops roster entries (`agents.entries.<id>: null`):
//!   agents are removed with `agents.delete`, which also cleans their bindings and allow lists.
//! - `config.get` redacts literal secrets to [`REDACTED`]. A rollback computed from such text
//!   must never write the placeholder back; it is therefore the merge-patch difference between
//!   the current (redacted) config and the pre-image (redacted the same way): a secret neither
//!   side changed is equal on both and never appears in it.

use serde_json::{Map, Value};

use super::merge;
use crate::domain::openclaw::parse_config;

/// The placeholder `config.get` shows instead of a literal secret.
pub const REDACTED: &str = "__OPENCLAW_REDACTED__";

/// A change as the Gateway takes it: one guarded `config.patch`, then agent deletions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayChange {
    pub merge_patch: Value,
    pub replace_paths: Vec<String>,
    /// Agents to remove with `agents.delete` after the patch (files kept).
    pub delete_agents: Vec<String>,
}

/// Returns `merge_patch` without the roster deletions of `remove_agents` (they go through
/// `agents.delete`); an `agents.entries` or `agents` object left empty is dropped too.
pub fn without_roster_deletions(merge_patch: &Value, remove_agents: &[String]) -> Value {
    let mut patch = merge_patch.clone();
    let Some(agents) = patch.get_mut("agents").and_then(Value::as_object_mut) else { return patch };
    if let Some(entries) = agents.get_mut("entries").and_then(Value::as_object_mut) {
        for id in remove_agents {
            if entries.get(id).is_some_and(Value::is_null) {
                entries.remove(id);
            }
        }
        if entries.is_empty() {
            agents.remove("entries");
        }
    }
    if agents.is_empty()
        && let Some(root) = patch.as_object_mut()
    {
        root.remove("agents");
    }
    patch
}

/// Why a rollback cannot be expressed as a Gateway change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("the {which} config cannot be parsed: {detail}")]
    Unparsable { which: &'static str, detail: String },
    #[error("restoring would write a redacted secret back at {path}; restore it by hand")]
    RedactedSecret { path: String },
    #[error("the pre-image keeps its roster as a list; the Gateway rewrote it keyed, restore by hand")]
    LegacyRoster,
}

/// The change that turns `current` back into `pre_image` (both as `config.get` shows them).
pub fn restore_change(pre_image: &str, current: &str) -> Result<GatewayChange, RestoreError> {
    let parse = |which, raw: &str| {
        parse_config(raw)
            .map(|parsed| Value::Object(parsed.root))
            .map_err(|e| RestoreError::Unparsable { which, detail: e.to_string() })
    };
    let before = parse("pre-image", pre_image)?;
    let now = parse("current", current)?;
    if before.pointer("/agents/list").is_some() {
        return Err(RestoreError::LegacyRoster);
    }
    let mut patch = merge::diff(&now, &before).unwrap_or_else(|| Value::Object(Map::new()));
    if let Some(path) = redacted_path(&patch, &mut Vec::new()) {
        return Err(RestoreError::RedactedSecret { path });
    }
    let added =
        roster_ids(&now).into_iter().filter(|id| !roster_ids(&before).contains(id)).collect::<Vec<_>>();
    patch = without_roster_deletions(&patch, &added);
    Ok(GatewayChange {
        replace_paths: merge::shrinking_arrays(&now, &before),
        merge_patch: patch,
        delete_agents: added,
    })
}

fn roster_ids(config: &Value) -> Vec<String> {
    config
        .pointer("/agents/entries")
        .and_then(Value::as_object)
        .map(|e| e.keys().cloned().collect())
        .unwrap_or_default()
}

/// The dotted path of the first redacted placeholder in `value`, if any.
fn redacted_path(value: &Value, at: &mut Vec<String>) -> Option<String> {
    match value {
        Value::String(text) if text.contains(REDACTED) => {
            Some(if at.is_empty() { "<root>".to_owned() } else { at.join(".") })
        }
        Value::Object(map) => map.iter().find_map(|(key, child)| {
            at.push(key.clone());
            let found = redacted_path(child, at);
            at.pop();
            found
        }),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, child)| {
            at.push(index.to_string());
            let found = redacted_path(child, at);
            at.pop();
            found
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PRE: &str = r#"{
      agents: { entries: { lead: { subagents: { allowAgents: ["writer"] } }, writer: { name: "W" } } },
      tools: { agentToAgent: { allow: ["lead", "writer"] } },
      channels: { telegram: { accounts: { lead: { botToken: "__OPENCLAW_REDACTED__" } } } },
      bindings: [{ agentId: "writer", match: { channel: "telegram", accountId: "lead" } }],
    }"#;

    #[test]
    fn roster_deletions_leave_the_patch_for_agents_delete() {
        let patch = json!({"agents": {"entries": {"writer": null, "lead": {"name": "L"}}}, "bindings": []});
        let out = without_roster_deletions(&patch, &["writer".to_owned()]);
        assert_eq!(out, json!({"agents": {"entries": {"lead": {"name": "L"}}}, "bindings": []}));
        let only = json!({"agents": {"entries": {"writer": null}}});
        assert_eq!(without_roster_deletions(&only, &["writer".to_owned()]), json!({}));
    }

    #[test]
    fn a_rollback_restores_what_changed_and_never_the_placeholder() {
        // The rollout removed the writer (agents.delete cleaned its references) and added qa.
        let current = r#"{
          agents: { entries: { lead: { subagents: { allowAgents: [] } }, qa: { name: "QA" } } },
          tools: { agentToAgent: { allow: ["lead", "qa"] } },
          channels: { telegram: { accounts: { lead: { botToken: "__OPENCLAW_REDACTED__" } } } },
          bindings: [],
        }"#;
        let change = restore_change(PRE, current).unwrap();
        assert_eq!(change.delete_agents, vec!["qa".to_owned()]);
        assert_eq!(change.merge_patch.pointer("/agents/entries/writer"), Some(&json!({"name": "W"})));
        assert_eq!(change.merge_patch.pointer("/agents/entries/qa"), None, "qa goes through agents.delete");
        assert_eq!(change.merge_patch.pointer("/tools/agentToAgent/allow"), Some(&json!(["lead", "writer"])));
        assert!(
            change.merge_patch.get("channels").is_none(),
            "the secret is untouched: {}",
            change.merge_patch
        );
        let mut patched = parse_config(current).map(|p| Value::Object(p.root)).unwrap();
        merge::apply(&mut patched, &change.merge_patch);
        let mut expected = parse_config(PRE).map(|p| Value::Object(p.root)).unwrap();
        if let Some(entries) = patched.pointer_mut("/agents/entries").and_then(Value::as_object_mut) {
            entries.remove("qa");
        }
        expected.sort_all_objects();
        patched.sort_all_objects();
        assert_eq!(patched, expected);
    }

    #[test]
    fn a_changed_secret_is_refused_rather_than_written_as_a_placeholder() {
        let current = PRE.replace(r#"botToken: "__OPENCLAW_REDACTED__""#, r#"botToken: "${TG_LEAD}""#);
        let error = restore_change(PRE, &current).unwrap_err();
        assert_eq!(
            error,
            RestoreError::RedactedSecret { path: "channels.telegram.accounts.lead.botToken".to_owned() }
        );
    }
}

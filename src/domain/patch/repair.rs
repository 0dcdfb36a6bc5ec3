//! Repair plans: the smallest safe change that makes a config OpenClaw refuses acceptable
//! again, always choosing the narrower option (drop `alsoAllow`, sandbox `all`, remove stale
//! ids and bindings to unknown agents). Backups and rejected-write files are never restored or
//! removed; problems a config patch cannot fix are reported as warnings.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::apply::object_at;
use super::{PatchPlan, PlanContext, PlanError, PlanKind, finish, merge};
use crate::domain::findings::FindingKind;
use crate::domain::inventory::SessionStore;
use crate::domain::model::{RosterShape, SandboxMode};
use crate::domain::openclaw::{RETIRED_ROOT_KEYS, parse_config, string_list};

/// What a repair does (`ops`) and what it cannot do or drops on the way (`warnings`).
#[derive(Default)]
struct Notes {
    ops: Vec<String>,
    warnings: Vec<String>,
}

/// Plans a repair of a broken (or merely untidy) config.
pub fn plan_repair(ctx: &PlanContext<'_>) -> Result<PatchPlan, PlanError> {
    if ctx.inventory.findings.iter().any(|f| f.kind == FindingKind::ConfigUnreadable) {
        return Err(PlanError::ConfigUnreadable);
    }
    let parsed = parse_config(ctx.raw_config).map_err(|_| PlanError::ConfigUnreadable)?;
    let mut root = parsed.root.clone();
    let mut notes = Notes::default();
    let valid: BTreeSet<String> =
        parsed.entries.iter().filter(|e| e.id_valid).map(|e| e.id.clone()).collect();

    drop_retired_keys(&mut root, &mut notes);
    repair_roster(object_at(&mut root, "agents"), parsed.shape, &valid, &mut notes);
    repair_tools(object_at(&mut root, "tools"), &valid, &mut notes.ops);
    if root.get("tools").is_some_and(|t| t.as_object().is_some_and(Map::is_empty))
        && !parsed.root.contains_key("tools")
    {
        root.remove("tools");
    }
    drop_unknown_bindings(&mut root, &valid, &mut notes.ops);
    let mut workspaces: Vec<String> =
        ctx.inventory.agents.iter().filter(|a| !a.workspace_exists).map(|a| a.workspace.clone()).collect();
    workspaces.sort();
    for workspace in &workspaces {
        notes.ops.push(format!("create missing workspace directory {workspace}"));
    }
    warn_beyond_a_patch(ctx, &mut notes.warnings);

    let original = Value::Object(parsed.root.clone());
    let target = Value::Object(root);
    let merge_patch = merge::diff(&original, &target).unwrap_or_else(|| json!({}));
    let replace_paths = merge::shrinking_arrays(&original, &target);
    let predicted = ctx.predict(&target, &workspaces);
    for issue in &predicted.config_issues {
        notes.warnings.push(format!("still invalid after the repair: {}: {}", issue.path, issue.message));
    }
    let after: BTreeSet<&str> = predicted.findings.iter().map(|f| f.key.as_str()).collect();
    let expected_resolved = ctx
        .inventory
        .findings
        .iter()
        .filter(|f| !after.contains(f.key.as_str()))
        .map(|f| format!("RUNTIME_FINDING/{}", f.key))
        .collect();
    Ok(finish(PatchPlan {
        id: String::new(),
        kind: PlanKind::Repair,
        base_hash: ctx.inventory.config_hash.clone(),
        desired_generation: 0,
        merge_patch,
        replace_paths,
        operations: notes.ops,
        guards: Vec::new(),
        warnings: notes.warnings,
        create_workspaces: workspaces,
        expected_resolved,
        needs_restart: false,
        removed_agents: Vec::new(),
    }))
}

fn drop_retired_keys(root: &mut Map<String, Value>, notes: &mut Notes) {
    for key in RETIRED_ROOT_KEYS {
        if let Some(old) = root.remove(*key) {
            let dropped: Vec<String> =
                old.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
            notes.ops.push(format!("remove retired root key `{key}`"));
            notes.warnings.push(format!(
                "retired `{key}` settings are dropped ({}); move what is still needed to agents.defaults by hand",
                dropped.join(", ")
            ));
        }
    }
}

/// Drops roster entries with invalid ids, repairs every agent's settings and the defaults, and
/// makes a multi-agent `entries` roster explicit.
fn repair_roster(
    agents: &mut Map<String, Value>,
    shape: RosterShape,
    valid: &BTreeSet<String>,
    notes: &mut Notes,
) {
    let ops = &mut notes.ops;
    match shape {
        RosterShape::Entries => {
            let entries = object_at(agents, "entries");
            let invalid: Vec<String> =
                entries.keys().filter(|k| !crate::domain::openclaw::is_valid_agent_id(k)).cloned().collect();
            for key in invalid {
                entries.remove(&key);
                ops.push(format!("remove roster entry with invalid id \"{key}\""));
            }
            for (id, settings) in entries.iter_mut() {
                if let Value::Object(settings) = settings {
                    repair_scope(&id.to_ascii_lowercase(), settings, valid, ops);
                }
            }
            if entries.len() > 1 && agents.get("ownership").and_then(Value::as_str) != Some("explicit") {
                agents.insert("ownership".to_owned(), json!("explicit"));
                ops.push("set agents.ownership to explicit (required for a multi-agent roster)".to_owned());
            }
        }
        RosterShape::List => {
            if let Some(Value::Array(list)) = agents.get_mut("list") {
                let before = list.len();
                list.retain(|item| {
                    item.get("id")
                        .and_then(Value::as_str)
                        .is_some_and(crate::domain::openclaw::is_valid_agent_id)
                });
                if list.len() != before {
                    ops.push(format!("remove {} roster entries with invalid ids", before - list.len()));
                }
                for item in list.iter_mut() {
                    let id = item.get("id").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
                    if let Value::Object(settings) = item {
                        repair_scope(&id, settings, valid, ops);
                    }
                }
            }
        }
        RosterShape::None => {}
    }
    if let Some(Value::Object(defaults)) = agents.get_mut("defaults") {
        if defaults.remove("tools").is_some() {
            notes.ops.push("remove agents.defaults.tools (not a valid key)".to_owned());
            notes.warnings.push(
                "agents.defaults.tools was dropped; set tool policy under tools or per agent".to_owned(),
            );
        }
        repair_scope("defaults", defaults, valid, &mut notes.ops);
    }
}

/// The global tool policy: `allow` wins over `alsoAllow`; unknown agents leave the
/// agent-to-agent allow list, and a list emptied that way closes instead (empty means every
/// pair to OpenClaw).
fn repair_tools(tools: &mut Map<String, Value>, valid: &BTreeSet<String>, ops: &mut Vec<String>) {
    if tools.contains_key("allow") && tools.remove("alsoAllow").is_some() {
        ops.push(
            "drop tools.alsoAllow (allow and alsoAllow cannot both be set; the narrower allow list stays)"
                .to_owned(),
        );
    }
    let Some(Value::Object(a2a)) = tools.get_mut("agentToAgent") else { return };
    let allow = string_list(a2a.get("allow"));
    let kept: Vec<String> = allow
        .iter()
        .filter(|name| name.contains('*') || valid.contains(&name.trim().to_ascii_lowercase()))
        .cloned()
        .collect();
    if kept.len() != allow.len() {
        ops.push("remove unknown agents from tools.agentToAgent.allow".to_owned());
        if kept.is_empty() {
            a2a.insert("enabled".to_owned(), json!(false));
            ops.push(
                "disable agent-to-agent messaging (its allow list named only unknown agents)".to_owned(),
            );
        }
        a2a.insert("allow".to_owned(), json!(kept));
    }
}

fn drop_unknown_bindings(root: &mut Map<String, Value>, valid: &BTreeSet<String>, ops: &mut Vec<String>) {
    let Some(Value::Array(bindings)) = root.get_mut("bindings") else { return };
    let before = bindings.len();
    bindings.retain(|binding| {
        binding
            .get("agentId")
            .and_then(Value::as_str)
            .is_some_and(|id| valid.contains(&id.to_ascii_lowercase()))
    });
    if bindings.len() != before {
        ops.push(format!("remove {} binding(s) to unknown agents", before - bindings.len()));
    }
}

/// What a config patch cannot fix, said as warnings.
fn warn_beyond_a_patch(ctx: &PlanContext<'_>, warnings: &mut Vec<String>) {
    for agent in ctx.inventory.agents.iter().filter(|a| a.session_activity.store == SessionStore::Legacy) {
        warnings.push(format!(
            "agent {} keeps a legacy session store; a config patch cannot migrate it (openclaw doctor can)",
            agent.id
        ));
    }
    for finding in ctx.inventory.findings.iter() {
        match finding.kind {
            FindingKind::RejectedWritePresent => warnings.push(format!(
                "{} is left in place: jhf-warp never restores or deletes backups and rejected writes",
                finding.subject
            )),
            FindingKind::DuplicateAgentId => {
                warnings.push(format!(
                    "duplicate agent id {}: decide by hand which entry stays",
                    finding.subject
                ));
            }
            _ => {}
        }
    }
}

/// Repairs one settings scope (an agent or `agents.defaults`).
fn repair_scope(
    subject: &str,
    settings: &mut Map<String, Value>,
    valid: &BTreeSet<String>,
    ops: &mut Vec<String>,
) {
    if let Some(Value::Object(tools)) = settings.get_mut("tools")
        && tools.contains_key("allow")
        && tools.remove("alsoAllow").is_some()
    {
        ops.push(format!(
            "drop tools.alsoAllow of {subject} (allow and alsoAllow cannot both be set; the narrower allow list stays)"
        ));
    }
    if let Some(Value::Object(sandbox)) = settings.get_mut("sandbox") {
        let mode = sandbox.get("mode").map(|m| SandboxMode::parse(m.as_str().unwrap_or("")));
        if let Some(SandboxMode::Invalid(value)) = mode {
            sandbox.insert("mode".to_owned(), json!("all"));
            ops.push(format!(
                "set sandbox mode of {subject} to all (\"{value}\" is not valid; all is the safe choice)"
            ));
        }
    }
    if let Some(Value::Object(subagents)) = settings.get_mut("subagents") {
        let allow = string_list(subagents.get("allowAgents"));
        let kept: Vec<String> = allow
            .iter()
            .filter(|id| *id == "*" || valid.contains(&id.to_ascii_lowercase()))
            .cloned()
            .collect();
        if kept.len() != allow.len() {
            subagents.insert("allowAgents".to_owned(), json!(kept));
            ops.push(format!("remove unknown agents from subagents.allowAgents of {subject}"));
        }
    }
}

//! Planning the change that brings a runtime to a desired topology.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{PatchPlan, PatchShape, PlanContext, PlanError, PlanKind, finish, merge};
use crate::domain::drift::diff_topologies;
use crate::domain::expressibility::express;
use crate::domain::findings::FindingKind;
use crate::domain::glob;
use crate::domain::inventory::{InventoryAgent, RouteMatch, StateLayout};
use crate::domain::model::{RosterShape, SandboxMode, TrustLevel};
use crate::domain::openclaw::{ParsedConfig, parse_config, string_list};
use crate::domain::topology::{
    EdgeKind, Route, Topology, TopologyNode, denies_sessions_send, derive_topology,
};

/// An agent's part in the SEND clique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendRole {
    Outside,
    Initiator,
    ReceiverOnly,
}

/// Returns the object at `key`, creating (or replacing a non-object with) an empty one.
pub(super) fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    if !map.get(key).is_some_and(Value::is_object) {
        map.insert(key.to_owned(), Value::Object(Map::new()));
    }
    match map.get_mut(key) {
        Some(Value::Object(inner)) => inner,
        _ => unreachable!("an object was inserted above"),
    }
}

/// Plans the change from the observed runtime to `desired`.
pub fn plan_apply(
    ctx: &PlanContext<'_>,
    desired_generation: i64,
    desired: &Topology,
) -> Result<PatchPlan, PlanError> {
    let inventory = ctx.inventory;
    if inventory.findings.iter().any(|f| f.kind == FindingKind::ConfigUnreadable) {
        return Err(PlanError::ConfigUnreadable);
    }
    if !inventory.config_valid {
        return Err(PlanError::ConfigInvalid {
            findings: inventory.findings.iter().map(|f| f.key.clone()).collect(),
        });
    }
    let parsed = parse_config(ctx.raw_config).map_err(|_| PlanError::ConfigUnreadable)?;
    let list_shape = match (ctx.shape, parsed.shape) {
        (PatchShape::Entries, RosterShape::List) => {
            return Err(PlanError::Unsupported(
                "the config uses the legacy agents.list roster, which the OpenClaw CLI rewrites on its first write; \
                 migrate it first (e.g. `openclaw doctor --fix`), then plan again"
                    .to_owned(),
            ));
        }
        (_, shape) => shape == RosterShape::List,
    };
    let sends: BTreeSet<(String, String)> = desired
        .edges
        .iter()
        .filter(|e| e.kind == EdgeKind::Send)
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect();
    let policy = express(&sends).ok_or_else(|| {
        PlanError::Unsupported("the desired SEND set is not expressible in OpenClaw".to_owned())
    })?;
    let global_deny = globally_denied(&parsed);
    if !policy.initiators.is_empty() && global_deny {
        return Err(PlanError::Unsupported(
            "tools.deny (global or agents.defaults) takes sessions_send away from every agent; granting SEND would \
             mean widening other tools too — change that deny list by hand first"
                .to_owned(),
        ));
    }

    let layout = ctx.layout();
    let mut planner = Planner { ops: Vec::new(), warnings: Vec::new(), workspaces: Vec::new() };
    let mut root = parsed.root.clone();
    let desired_nodes: BTreeMap<&str, &TopologyNode> =
        desired.nodes.iter().map(|n| (n.agent_id.as_str(), n)).collect();
    let current_ids: Vec<&str> = inventory.agents.iter().map(|a| a.id.as_str()).collect();
    let removed: BTreeSet<&str> =
        current_ids.iter().copied().filter(|id| !desired_nodes.contains_key(id)).collect();
    let added: Vec<&str> = desired_nodes.keys().copied().filter(|id| !current_ids.contains(id)).collect();
    for id in &removed {
        let default = inventory.default_agent_id.as_deref() == Some(*id);
        planner.ops.push(format!("remove agent {id}{}", if default { " (the default agent)" } else { "" }));
        if default {
            planner
                .warnings
                .push(format!("the default agent {id} is removed; OpenClaw picks another default"));
        }
    }

    let defaults = root
        .get("agents")
        .and_then(|a| a.get("defaults"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let global_tools = root.get("tools").and_then(Value::as_object).cloned().unwrap_or_default();
    let spawn_targets = |id: &str| -> Vec<String> {
        let targets: BTreeSet<String> = desired
            .edges
            .iter()
            .filter(|e| e.kind == EdgeKind::Spawn && e.from == id)
            .map(|e| e.to.clone())
            .collect();
        targets.into_iter().collect()
    };
    let final_ids: Vec<String> = desired_nodes.keys().map(|id| (*id).to_owned()).collect();

    let mut roster: Vec<(String, Map<String, Value>)> = Vec::new();
    let mut seen = BTreeSet::new();
    for entry in parsed.entries.iter().filter(|e| e.id_valid && desired_nodes.contains_key(e.id.as_str())) {
        if seen.insert(entry.id.clone()) {
            roster.push((entry.id.clone(), entry.settings.clone()));
        }
    }
    for id in &added {
        let node = desired_nodes[id];
        let mut settings = Map::new();
        if list_shape {
            settings.insert("id".to_owned(), json!(id));
        }
        if !node.role.is_empty() {
            settings.insert("name".to_owned(), json!(node.role));
        }
        planner.ops.push(format!("add agent {id}"));
        let workspace = if node.workspace.is_empty() {
            layout.resolve(&format!("workspace-{id}"))
        } else {
            layout.resolve(&node.workspace)
        };
        planner.workspaces.push(workspace);
        roster.push(((*id).to_owned(), settings));
    }
    for (id, settings) in roster.iter_mut() {
        let node = desired_nodes[id.as_str()];
        let role = match (policy.clique.contains(id.as_str()), policy.initiators.contains(id.as_str())) {
            (true, true) => SendRole::Initiator,
            (true, false) => SendRole::ReceiverOnly,
            _ => SendRole::Outside,
        };
        let context = AgentContext {
            observed: inventory.agent(id),
            defaults: &defaults,
            global_tools: &global_tools,
            layout: &layout,
            final_ids: &final_ids,
        };
        planner.shape_agent(id, settings, node, &context, spawn_targets(id), role)?;
    }

    write_roster(&mut root, roster, list_shape);
    clean_default_allow_agents(&mut root, &removed, &mut planner);
    planner.plan_agent_to_agent(&mut root, &policy.clique, &removed);
    planner.plan_bindings(&mut root, ctx, desired, &removed);

    let original = Value::Object(parsed.root.clone());
    let target = Value::Object(root);
    let merge_patch = merge::diff(&original, &target).unwrap_or_else(|| json!({}));
    let replace_paths = merge::shrinking_arrays(&original, &target);
    planner.workspaces.sort();
    let predicted = ctx.predict(&target, &planner.workspaces);
    if !predicted.config_valid {
        let issues: Vec<String> =
            predicted.config_issues.iter().map(|i| format!("{}: {}", i.path, i.message)).collect();
        return Err(PlanError::Unsupported(format!(
            "the planned config would be invalid ({})",
            issues.join("; ")
        )));
    }
    let before: BTreeSet<String> =
        diff_topologies(desired, &derive_topology(inventory)).into_iter().map(|d| d.key).collect();
    let remaining = diff_topologies(desired, &derive_topology(&predicted));
    for item in &remaining {
        planner.warnings.push(format!("after this patch {} still differs: {}", item.key, item.explanation));
    }
    let remaining: BTreeSet<String> = remaining.into_iter().map(|d| d.key).collect();
    Ok(finish(PatchPlan {
        id: String::new(),
        kind: PlanKind::Apply,
        base_hash: inventory.config_hash.clone(),
        desired_generation,
        merge_patch,
        replace_paths,
        operations: planner.ops,
        guards: Vec::new(),
        warnings: planner.warnings,
        create_workspaces: planner.workspaces,
        expected_resolved: before.difference(&remaining).cloned().collect(),
        needs_restart: false,
        removed_agents: removed.iter().map(|id| (*id).to_owned()).collect(),
    }))
}

/// True when a global or defaults deny list takes `sessions_send` away.
fn globally_denied(parsed: &ParsedConfig) -> bool {
    let global = string_list(parsed.root.get("tools").and_then(|t| t.get("deny")));
    let defaults = string_list(
        parsed
            .root
            .get("agents")
            .and_then(|a| a.get("defaults"))
            .and_then(|d| d.get("tools"))
            .and_then(|t| t.get("deny")),
    );
    denies_sessions_send(&global) || denies_sessions_send(&defaults)
}

struct AgentContext<'a> {
    observed: Option<&'a InventoryAgent>,
    defaults: &'a Map<String, Value>,
    global_tools: &'a Map<String, Value>,
    layout: &'a StateLayout,
    final_ids: &'a [String],
}

struct Planner {
    ops: Vec<String>,
    warnings: Vec<String>,
    workspaces: Vec<String>,
}

impl Planner {
    /// Brings one agent's settings to its desired node: model, profile, workspace, trust
    /// bounds, spawn targets and its SEND role.
    fn shape_agent(
        &mut self,
        id: &str,
        settings: &mut Map<String, Value>,
        node: &TopologyNode,
        context: &AgentContext<'_>,
        targets: Vec<String>,
        role: SendRole,
    ) -> Result<(), PlanError> {
        let defaults_tools = context.defaults.get("tools");
        let observed = context.observed;
        if let Some(model) = &node.model {
            let current = observed
                .and_then(|a| a.model.clone())
                .or_else(|| observed.is_none().then(|| default_model(context.defaults)).flatten());
            if current.as_deref() != Some(model.as_str()) {
                match settings.get_mut("model") {
                    Some(Value::Object(object)) => {
                        object.insert("primary".to_owned(), json!(model));
                    }
                    _ => {
                        settings.insert("model".to_owned(), json!(model));
                    }
                }
                self.ops.push(format!("set model of {id} to {model}"));
            }
        }
        if let Some(profile) = &node.tools_profile {
            let current = observed.and_then(|a| a.tools.profile.clone()).or_else(|| {
                observed.is_none().then(|| {
                    defaults_tools
                        .and_then(|t| t.get("profile"))
                        .or_else(|| context.global_tools.get("profile"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })?
            });
            if current.as_deref() != Some(profile.as_str()) {
                object_at(settings, "tools").insert("profile".to_owned(), json!(profile));
                self.ops.push(format!("set tools profile of {id} to {profile}"));
            }
        }
        if !node.workspace.is_empty() {
            let wanted = context.layout.resolve(&node.workspace);
            if observed.is_some_and(|a| a.workspace != wanted) {
                settings.insert("workspace".to_owned(), json!(node.workspace));
                self.ops.push(format!("set workspace of {id} to {}", node.workspace));
                self.workspaces.push(wanted);
            }
        }
        self.bound_trust(id, settings, node.trust, context);
        self.set_spawn_targets(id, settings, targets, context);
        self.set_send_role(id, settings, role, context)
    }

    /// Tightens sandbox and elevated tools to the desired trust; never loosens them.
    fn bound_trust(
        &mut self,
        id: &str,
        settings: &mut Map<String, Value>,
        trust: TrustLevel,
        context: &AgentContext<'_>,
    ) {
        let sandbox = match context.observed {
            Some(agent) => agent.sandbox_mode.clone(),
            None => context
                .defaults
                .get("sandbox")
                .and_then(|s| s.get("mode"))
                .and_then(Value::as_str)
                .map(SandboxMode::parse)
                .unwrap_or(SandboxMode::Off),
        };
        let elevated = match context.observed {
            Some(agent) => agent.elevated,
            None => [context.defaults.get("tools"), Some(&Value::Object(context.global_tools.clone()))]
                .into_iter()
                .flatten()
                .find_map(|tools| {
                    tools.get("elevated").and_then(|e| e.get("enabled")).and_then(Value::as_bool)
                })
                .unwrap_or(false),
        };
        let wanted_mode = match (trust, &sandbox) {
            (TrustLevel::Restricted, SandboxMode::All) => None,
            (TrustLevel::Restricted, _) => Some("all"),
            (TrustLevel::Standard, SandboxMode::All | SandboxMode::NonMain) => None,
            (TrustLevel::Standard, _) => Some("non-main"),
            (TrustLevel::Elevated, _) => None,
        };
        if let Some(mode) = wanted_mode {
            object_at(settings, "sandbox").insert("mode".to_owned(), json!(mode));
            self.ops.push(format!("set sandbox mode of {id} to {mode} (trust {})", trust.as_str()));
        }
        if trust < TrustLevel::Elevated && elevated {
            object_at(object_at(settings, "tools"), "elevated").insert("enabled".to_owned(), json!(false));
            self.ops.push(format!("turn elevated tools off for {id} (trust {})", trust.as_str()));
        }
    }

    fn set_spawn_targets(
        &mut self,
        id: &str,
        settings: &mut Map<String, Value>,
        targets: Vec<String>,
        context: &AgentContext<'_>,
    ) {
        let effective: Vec<String> = match context.observed {
            Some(agent) => agent.allow_agents.clone(),
            None => string_list(context.defaults.get("subagents").and_then(|s| s.get("allowAgents"))),
        };
        let resolved: BTreeSet<String> = if effective.iter().any(|a| a == "*") {
            context.final_ids.iter().filter(|other| *other != id).cloned().collect()
        } else {
            effective.into_iter().map(|a| a.to_ascii_lowercase()).filter(|a| a != id).collect()
        };
        let wanted: BTreeSet<String> = targets.iter().cloned().collect();
        if resolved != wanted {
            object_at(settings, "subagents").insert("allowAgents".to_owned(), json!(targets));
            self.ops.push(format!("set subagents.allowAgents of {id} to [{}]", targets.join(", ")));
        }
    }

    fn set_send_role(
        &mut self,
        id: &str,
        settings: &mut Map<String, Value>,
        role: SendRole,
        context: &AgentContext<'_>,
    ) -> Result<(), PlanError> {
        let own: Vec<String> = string_list(settings.get("tools").and_then(|t| t.get("deny")));
        match role {
            SendRole::Outside => Ok(()),
            SendRole::ReceiverOnly => {
                let effective = context.observed.map(|a| a.tools.deny.clone()).unwrap_or_default();
                if !denies_sessions_send(&effective) && !denies_sessions_send(&own) {
                    let mut deny = own;
                    deny.push("sessions_send".to_owned());
                    object_at(settings, "tools").insert("deny".to_owned(), json!(deny));
                    self.ops.push(format!(
                        "deny sessions_send to {id} (it may be reached but not start conversations)"
                    ));
                }
                Ok(())
            }
            SendRole::Initiator => {
                if own.iter().any(|entry| {
                    entry != "sessions_send"
                        && (entry == "group:sessions" || glob::matches(entry, "sessions_send"))
                }) {
                    return Err(PlanError::Unsupported(format!(
                        "the deny list of {id} takes sessions_send away through a group or pattern; granting SEND would \
                         widen other tools too — change it by hand first"
                    )));
                }
                if own.iter().any(|entry| entry == "sessions_send") {
                    let deny: Vec<String> =
                        own.into_iter().filter(|entry| entry != "sessions_send").collect();
                    object_at(settings, "tools").insert("deny".to_owned(), json!(deny));
                    self.ops.push(format!(
                        "allow {id} to start conversations (remove sessions_send from its deny list)"
                    ));
                }
                Ok(())
            }
        }
    }

    /// Sets the agent-to-agent clique (and visibility) to express the desired SEND set.
    fn plan_agent_to_agent(
        &mut self,
        root: &mut Map<String, Value>,
        clique: &BTreeSet<String>,
        removed: &BTreeSet<&str>,
    ) {
        let tools = object_at(root, "tools");
        let enabled = tools
            .get("agentToAgent")
            .and_then(|a| a.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let allow = string_list(tools.get("agentToAgent").and_then(|a| a.get("allow")));
        if clique.is_empty() {
            if enabled {
                object_at(tools, "agentToAgent").insert("enabled".to_owned(), json!(false));
                self.ops.push("disable agent-to-agent messaging (no SEND edges desired)".to_owned());
            }
            let kept: Vec<String> = allow
                .iter()
                .filter(|name| !removed.contains(name.to_ascii_lowercase().as_str()))
                .cloned()
                .collect();
            if kept.len() != allow.len() {
                object_at(tools, "agentToAgent").insert("allow".to_owned(), json!(kept));
                self.ops.push("remove deleted agents from tools.agentToAgent.allow".to_owned());
            }
            return;
        }
        let visibility = tools.get("sessions").and_then(|s| s.get("visibility")).and_then(Value::as_str);
        if visibility != Some("all") {
            object_at(tools, "sessions").insert("visibility".to_owned(), json!("all"));
            self.ops.push(
                "set tools.sessions.visibility to all (needed for agent-to-agent messaging)".to_owned(),
            );
        }
        if !enabled {
            object_at(tools, "agentToAgent").insert("enabled".to_owned(), json!(true));
            self.ops.push("enable agent-to-agent messaging".to_owned());
        }
        let wanted: Vec<String> = clique.iter().cloned().collect();
        let exact = allow.iter().map(|a| a.to_ascii_lowercase()).collect::<BTreeSet<_>>() == *clique;
        if !exact {
            object_at(tools, "agentToAgent").insert("allow".to_owned(), json!(wanted));
            self.ops.push(format!("set tools.agentToAgent.allow to [{}]", wanted.join(", ")));
        }
    }

    /// Keeps bindings the desired routes contain (in their order), drops the others and
    /// appends missing routes.
    fn plan_bindings(
        &mut self,
        root: &mut Map<String, Value>,
        ctx: &PlanContext<'_>,
        desired: &Topology,
        removed: &BTreeSet<&str>,
    ) {
        let route_id = |route: &RouteMatch, agent: &str| format!("{}->{agent}", route.key());
        let wanted: BTreeMap<String, &Route> =
            desired.routes.iter().map(|r| (route_id(&r.route, &r.agent_id), r)).collect();
        let parsed: BTreeMap<usize, &crate::domain::inventory::Binding> =
            ctx.inventory.bindings.iter().map(|b| (b.index, b)).collect();
        let raw = root.get("bindings").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut kept = Vec::new();
        let mut present = BTreeSet::new();
        for (index, value) in raw.iter().enumerate() {
            let Some(binding) = parsed.get(&index) else {
                kept.push(value.clone());
                continue;
            };
            let keep = if binding.kind == "route" {
                let id = route_id(&binding.route, &binding.agent_id);
                let keep = wanted.contains_key(&id) && present.insert(id);
                if !keep {
                    self.ops.push(format!("remove binding {} → {}", binding.route.key(), binding.agent_id));
                }
                keep
            } else {
                let keep = !removed.contains(binding.agent_id.as_str());
                if !keep {
                    self.ops.push(format!(
                        "remove {} binding of removed agent {}",
                        binding.kind, binding.agent_id
                    ));
                }
                keep
            };
            if keep {
                kept.push(value.clone());
            }
        }
        for (id, route) in &wanted {
            if !present.contains(id) {
                self.ops.push(format!("add binding {} → {}", route.route.key(), route.agent_id));
                kept.push(binding_json(route));
            }
        }
        if kept != raw {
            root.insert("bindings".to_owned(), Value::Array(kept));
        }
    }
}

fn default_model(defaults: &Map<String, Value>) -> Option<String> {
    match defaults.get("model") {
        Some(Value::String(model)) => Some(model.clone()),
        Some(Value::Object(model)) => model.get("primary").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn binding_json(route: &Route) -> Value {
    let mut matcher = Map::new();
    matcher.insert("channel".to_owned(), json!(route.route.channel));
    if let Some(account) = &route.route.account_id {
        matcher.insert("accountId".to_owned(), json!(account));
    }
    if let (Some(kind), Some(id)) = (&route.route.peer_kind, &route.route.peer_id) {
        matcher.insert("peer".to_owned(), json!({ "kind": kind, "id": id }));
    }
    if let Some(guild) = &route.route.guild_id {
        matcher.insert("guildId".to_owned(), json!(guild));
    }
    if let Some(team) = &route.route.team_id {
        matcher.insert("teamId".to_owned(), json!(team));
    }
    if !route.route.roles.is_empty() {
        matcher.insert("roles".to_owned(), json!(route.route.roles));
    }
    json!({ "agentId": route.agent_id, "match": matcher })
}

fn write_roster(root: &mut Map<String, Value>, roster: Vec<(String, Map<String, Value>)>, list_shape: bool) {
    let count = roster.len();
    let agents = object_at(root, "agents");
    if list_shape {
        agents.insert(
            "list".to_owned(),
            Value::Array(roster.into_iter().map(|(_, s)| Value::Object(s)).collect()),
        );
        return;
    }
    let entries: Map<String, Value> =
        roster.into_iter().map(|(id, settings)| (id, Value::Object(settings))).collect();
    agents.insert("entries".to_owned(), Value::Object(entries));
    if count > 1 {
        agents.insert("ownership".to_owned(), json!("explicit"));
    }
}

fn clean_default_allow_agents(
    root: &mut Map<String, Value>,
    removed: &BTreeSet<&str>,
    planner: &mut Planner,
) {
    let Some(subagents) = root
        .get_mut("agents")
        .and_then(|a| a.get_mut("defaults"))
        .and_then(|d| d.get_mut("subagents"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let current = string_list(subagents.get("allowAgents"));
    let kept: Vec<String> =
        current.iter().filter(|id| !removed.contains(id.to_ascii_lowercase().as_str())).cloned().collect();
    if kept.len() != current.len() {
        subagents.insert("allowAgents".to_owned(), json!(kept));
        planner.ops.push("remove deleted agents from agents.defaults.subagents.allowAgents".to_owned());
    }
}

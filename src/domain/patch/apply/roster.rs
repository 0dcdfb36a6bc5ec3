//! Step 1 of an apply plan: which agents exist, their plain settings, and the bindings.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::Draft;
use super::settings::object_at;
use crate::domain::inventory::{Binding, RouteMatch};
use crate::domain::openclaw::string_list;
use crate::domain::topology::{Route, TopologyNode};

impl Draft<'_> {
    /// Removes agents the desired team does not have, adds the new ones, and brings every
    /// agent's model, tools profile and workspace to its node.
    pub(super) fn reshape_roster(&mut self) {
        let inventory = self.ctx.inventory;
        let current: Vec<&str> = inventory.agents.iter().map(|a| a.id.as_str()).collect();
        self.removed =
            current.iter().filter(|id| !self.nodes.contains_key(*id)).map(|id| (*id).to_owned()).collect();
        for id in self.removed.clone() {
            let default = inventory.default_agent_id.as_deref() == Some(id.as_str());
            self.ops.push(format!("remove agent {id}{}", if default { " (the default agent)" } else { "" }));
            if default {
                self.warnings
                    .push(format!("the default agent {id} is removed; OpenClaw picks another default"));
            }
        }
        let mut roster: Vec<(String, Map<String, Value>)> = Vec::new();
        let mut seen = BTreeSet::new();
        for entry in
            self.parsed.entries.iter().filter(|e| e.id_valid && self.nodes.contains_key(e.id.as_str()))
        {
            if seen.insert(entry.id.clone()) {
                roster.push((entry.id.clone(), entry.settings.clone()));
            }
        }
        let added: Vec<&str> = self.nodes.keys().copied().filter(|id| !current.contains(id)).collect();
        for id in added {
            roster.push((id.to_owned(), self.new_agent(id)));
        }
        for (id, settings) in roster.iter_mut() {
            let node = self.nodes[id.as_str()];
            self.shape_plain_settings(id, settings, node);
        }
        self.write_roster(roster);
        self.clean_default_allow_agents();
    }

    fn new_agent(&mut self, id: &str) -> Map<String, Value> {
        let node = self.nodes[id];
        let mut settings = Map::new();
        if self.list_shape {
            settings.insert("id".to_owned(), json!(id));
        }
        if !node.role.is_empty() {
            settings.insert("name".to_owned(), json!(node.role));
        }
        self.ops.push(format!("add agent {id}"));
        let layout = self.ctx.layout();
        let workspace = if node.workspace.is_empty() {
            layout.resolve(&format!("workspace-{id}"))
        } else {
            layout.resolve(&node.workspace)
        };
        self.workspaces.push(workspace);
        settings
    }

    /// Model, tools profile and workspace of one agent.
    fn shape_plain_settings(&mut self, id: &str, settings: &mut Map<String, Value>, node: &TopologyNode) {
        let observed = self.ctx.inventory.agent(id);
        if let Some(model) = &node.model {
            let current = observed
                .and_then(|a| a.model.clone())
                .or_else(|| observed.is_none().then(|| self.default_model()).flatten());
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
                    crate::domain::openclaw::str_at(&self.root, &["tools", "profile"]).map(str::to_owned)
                })?
            });
            self.repoliced.insert(id.to_owned());
            if current.as_deref() != Some(profile.as_str()) {
                object_at(settings, "tools").insert("profile".to_owned(), json!(profile));
                self.ops.push(format!("set tools profile of {id} to {profile}"));
            }
        }
        if !node.workspace.is_empty() {
            let wanted = self.ctx.layout().resolve(&node.workspace);
            if observed.is_some_and(|a| a.workspace != wanted) {
                settings.insert("workspace".to_owned(), json!(node.workspace));
                self.ops.push(format!("set workspace of {id} to {}", node.workspace));
                self.workspaces.push(wanted);
            }
        }
        self.pin_permissions(id, settings, node);
    }

    fn default_model(&self) -> Option<String> {
        match crate::domain::openclaw::value_at(&self.root, &["agents", "defaults", "model"]) {
            Some(Value::String(model)) => Some(model.clone()),
            Some(Value::Object(model)) => model.get("primary").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        }
    }

    fn write_roster(&mut self, roster: Vec<(String, Map<String, Value>)>) {
        let count = roster.len();
        let agents = object_at(&mut self.root, "agents");
        if self.list_shape {
            agents.insert(
                "list".to_owned(),
                Value::Array(roster.into_iter().map(|(_, s)| Value::Object(s)).collect()),
            );
            return;
        }
        let entries: Map<String, Value> = roster.into_iter().map(|(id, s)| (id, Value::Object(s))).collect();
        agents.insert("entries".to_owned(), Value::Object(entries));
        if count > 1 {
            agents.insert("ownership".to_owned(), json!("explicit"));
        }
    }

    fn clean_default_allow_agents(&mut self) {
        let removed = self.removed.clone();
        let Some(subagents) = self
            .root
            .get_mut("agents")
            .and_then(|a| a.get_mut("defaults"))
            .and_then(|d| d.get_mut("subagents"))
            .and_then(Value::as_object_mut)
        else {
            return;
        };
        let current = string_list(subagents.get("allowAgents"));
        let kept: Vec<String> =
            current.iter().filter(|id| !removed.contains(&id.to_ascii_lowercase())).cloned().collect();
        if kept.len() != current.len() {
            subagents.insert("allowAgents".to_owned(), json!(kept));
            self.ops.push("remove deleted agents from agents.defaults.subagents.allowAgents".to_owned());
        }
    }

    /// Keeps bindings the desired routes contain (in their order), drops the others and
    /// appends missing routes.
    pub(super) fn plan_bindings(&mut self) {
        let route_id = |route: &RouteMatch, agent: &str| format!("{}->{agent}", route.key());
        let wanted: BTreeMap<String, &Route> =
            self.desired.routes.iter().map(|r| (route_id(&r.route, &r.agent_id), r)).collect();
        let parsed: BTreeMap<usize, &Binding> =
            self.ctx.inventory.bindings.iter().map(|b| (b.index, b)).collect();
        let raw = self.root.get("bindings").and_then(Value::as_array).cloned().unwrap_or_default();
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
                let keep = !self.removed.contains(&binding.agent_id);
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
            self.root.insert("bindings".to_owned(), Value::Array(kept));
        }
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

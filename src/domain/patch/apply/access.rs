//! Steps 2 and 3 of an apply plan: trust bounds, pinned permissions, the SEND clique and the
//! SPAWN lists — each decided on what OpenClaw resolves for the document as it stands.

use serde_json::{Map, Value, json};

use super::Draft;
use super::settings::{Grant, agent_mut, deny_tool, grant, grant_route, object_at, tools_of};
use crate::domain::expressibility::SendPolicy;
use crate::domain::model::TrustLevel;
use crate::domain::openclaw::{string_list, value_at};
use crate::domain::patch::PlanError;
use crate::domain::permissions::AgentAccess;
use crate::domain::topology::{EdgeKind, TopologyNode};

/// Tools that drive the host or a paired device (ELEVATED in the trust table).
const HOST_TOOLS: &[&str] = &["terminal", "computer", "nodes"];
/// Tools that act on the operator's browser or phone (STANDARD).
const DEVICE_TOOLS: &[&str] = &["browser", "mobile_ui"];

impl Draft<'_> {
    /// Writes the permissions the desired node pins into the agent's own settings.
    pub(super) fn pin_permissions(
        &mut self,
        id: &str,
        settings: &mut Map<String, Value>,
        node: &TopologyNode,
    ) {
        let pins = &node.pins;
        if let Some(allow) = &pins.tools_allow {
            self.repoliced.insert(id.to_owned());
            let tools = tools_of(settings);
            if string_list(tools.get("allow")) != *allow {
                tools.insert("allow".to_owned(), json!(allow));
                self.ops.push(format!("set tools.allow of {id} to [{}]", allow.join(", ")));
            }
            if tools.remove("alsoAllow").is_some() {
                self.ops.push(format!("drop tools.alsoAllow of {id} (its allow list is pinned)"));
            }
        }
        if let Some(deny) = &pins.tools_deny {
            for tool in deny {
                if deny_tool(settings, tool) {
                    self.ops.push(format!("deny {tool} to {id} (pinned)"));
                }
            }
        }
        for (key, pin) in [("mode", &pins.sandbox_mode), ("workspaceAccess", &pins.workspace_access)] {
            let Some(value) = pin else { continue };
            let sandbox = object_at(settings, "sandbox");
            if sandbox.get(key).and_then(Value::as_str) != Some(value.as_str()) {
                sandbox.insert(key.to_owned(), json!(value));
                self.ops.push(format!("set sandbox.{key} of {id} to {value} (pinned)"));
            }
        }
        if let Some(elevated) = &pins.elevated {
            let mut wanted = Map::new();
            wanted.insert("enabled".to_owned(), json!(elevated.enabled));
            if elevated.enabled {
                let mut by_channel: Map<String, Value> = Map::new();
                for entry in &elevated.allow_from {
                    let (channel, sender) = entry.split_once(':').unwrap_or((entry.as_str(), "*"));
                    let list = by_channel.entry(channel.to_owned()).or_insert_with(|| json!([]));
                    if let Value::Array(items) = list {
                        items.push(json!(sender));
                    }
                }
                wanted.insert("allowFrom".to_owned(), Value::Object(by_channel));
            }
            let tools = tools_of(settings);
            if tools.get("elevated") != Some(&Value::Object(wanted.clone())) {
                tools.insert("elevated".to_owned(), Value::Object(wanted));
                self.ops.push(format!(
                    "set elevated exec of {id} to {} (pinned)",
                    if elevated.enabled { "on for the pinned senders" } else { "off" }
                ));
            }
        }
    }

    /// Narrows each agent until its resolved trust is within its desired trust: sandbox the
    /// main session, keep `exec` off the host, switch elevated exec off, read-only workspace
    /// access, deny host and device tools. Never loosens anything.
    pub(super) fn bound_trust(&mut self) {
        // Each round narrows one step per agent and re-resolves (sandboxing alone may be enough).
        for _ in 0..5 {
            let predicted = self.predict();
            let mut changed = false;
            for (id, node) in self.nodes.clone() {
                let Some(agent) = predicted.agent(id) else { continue };
                if agent.access.trust > node.trust {
                    changed |= self.narrow(id, node.trust, &agent.access);
                }
            }
            if !changed {
                break;
            }
        }
    }

    fn narrow(&mut self, id: &str, bound: TrustLevel, access: &AgentAccess) -> bool {
        let mut ops = Vec::new();
        let Some(settings) = agent_mut(&mut self.root, id) else { return false };
        let has = |tool: &str| access.effective_tools.iter().any(|t| t == tool);
        let works = has("exec") || ["write", "edit", "apply_patch"].iter().any(|t| has(t));
        if !access.sandbox.main_sandboxed && works {
            object_at(settings, "sandbox").insert("mode".to_owned(), json!("all"));
            self.ops.push(format!("set sandbox mode of {id} to all (trust {})", bound.as_str()));
            return true;
        }
        if access.exec.on_host() {
            object_at(tools_of(settings), "exec").insert("host".to_owned(), json!("sandbox"));
            ops.push(format!("run exec of {id} in its sandbox (trust {})", bound.as_str()));
        }
        if access.elevated.usable {
            object_at(tools_of(settings), "elevated").insert("enabled".to_owned(), json!(false));
            ops.push(format!("turn elevated tools off for {id} (trust {})", bound.as_str()));
        }
        if bound == TrustLevel::Restricted && access.sandbox.workspace_access == "rw" {
            object_at(settings, "sandbox").insert("workspaceAccess".to_owned(), json!("ro"));
            ops.push(format!("make the sandbox workspace of {id} read-only (trust RESTRICTED)"));
        }
        let denied: Vec<&str> = HOST_TOOLS
            .iter()
            .chain(if bound == TrustLevel::Restricted { DEVICE_TOOLS } else { &[] })
            .copied()
            .filter(|tool| has(tool))
            .collect();
        for tool in denied {
            if deny_tool(settings, tool) {
                ops.push(format!("deny {tool} to {id} (trust {})", bound.as_str()));
            }
        }
        let changed = !ops.is_empty();
        self.ops.extend(ops);
        changed
    }

    /// Expresses the SEND set: the clique in `tools.agentToAgent` (an explicit list, or
    /// `enabled: false` for none), visibility `all` for initiators, `sessions_send` granted to
    /// initiators and denied to receivers only.
    pub(super) fn express_sends(&mut self, policy: &SendPolicy) -> Result<(), PlanError> {
        self.set_agent_to_agent(policy);
        if policy.initiators.is_empty() {
            return Ok(());
        }
        if crate::domain::permissions::visibility_setting(&self.root) != "all" {
            object_at(object_at(&mut self.root, "tools"), "sessions")
                .insert("visibility".to_owned(), json!("all"));
            self.ops.push(
                "set tools.sessions.visibility to all (needed for agent-to-agent messaging)".to_owned(),
            );
        }
        let predicted = self.predict();
        for id in &policy.initiators {
            let Some(agent) = predicted.agent(id) else { continue };
            if !agent.access.effective_tools.iter().any(|t| t == "sessions_send") {
                self.grant_tool(id, "sessions_send", "start conversations")?;
            }
            if agent.access.sandbox.main_sandboxed && agent.access.session_visibility != "all" {
                let defaults = object_at(object_at(&mut self.root, "agents"), "defaults");
                object_at(defaults, "sandbox").insert("sessionToolsVisibility".to_owned(), json!("all"));
                self.ops.push(format!(
                    "let sandboxed sessions reach other agents (agents.defaults.sandbox.sessionToolsVisibility = all; {id} is sandboxed)"
                ));
            }
        }
        let predicted = self.predict();
        for id in policy.clique.difference(&policy.initiators) {
            let Some(agent) = predicted.agent(id) else { continue };
            if !agent.access.may_send_to.is_empty() {
                if let Some(settings) = agent_mut(&mut self.root, id) {
                    deny_tool(settings, "sessions_send");
                }
                self.ops.push(format!(
                    "deny sessions_send to {id} (it may be reached but not start conversations)"
                ));
            }
        }
        Ok(())
    }

    fn set_agent_to_agent(&mut self, policy: &SendPolicy) {
        let current = value_at(&self.root, &["tools", "agentToAgent"]).cloned();
        let enabled = current.as_ref().and_then(|a| a.get("enabled")) != Some(&Value::Bool(false));
        let allow = current.as_ref().map(|a| string_list(a.get("allow"))).unwrap_or_default();
        let a2a = object_at(object_at(&mut self.root, "tools"), "agentToAgent");
        if policy.initiators.is_empty() {
            if enabled {
                a2a.insert("enabled".to_owned(), json!(false));
                self.ops.push("disable agent-to-agent messaging (no SEND edges desired)".to_owned());
            }
            return;
        }
        if !enabled {
            a2a.insert("enabled".to_owned(), json!(true));
            self.ops.push("enable agent-to-agent messaging".to_owned());
        }
        let wanted: Vec<String> = policy.clique.iter().cloned().collect();
        let exact = allow.iter().cloned().collect::<std::collections::BTreeSet<_>>() == policy.clique;
        if !exact {
            a2a.insert("allow".to_owned(), json!(wanted));
            self.ops.push(format!("set tools.agentToAgent.allow to [{}]", wanted.join(", ")));
        }
    }

    /// Grants a tool through the agent's own settings — dropping an exact deny entry, then, if
    /// the profile or an allow list still filters it out, adding it there — and refuses when
    /// only a group or pattern deny stands in the way (lifting it would grant more than asked).
    fn grant_tool(&mut self, id: &str, tool: &str, why: &str) -> Result<(), PlanError> {
        let global_also = string_list(value_at(&self.root, &["tools", "alsoAllow"]));
        for _ in 0..2 {
            let Some(settings) = agent_mut(&mut self.root, id) else { return Ok(()) };
            let route = grant_route(settings, tool);
            if let Grant::DeniedByPattern(entry) = &route {
                return Err(PlanError::Unsupported(format!(
                    "the deny list of {id} takes {tool} away through \"{entry}\"; granting it would widen other \
                     tools too — change it by hand first"
                )));
            }
            grant(settings, tool, &route, &global_also);
            self.ops.push(match route {
                Grant::DropDeny => format!("allow {id} to {why} (remove {tool} from its deny list)"),
                _ => format!("grant {tool} to {id} (to {why})"),
            });
            self.note_grant(id, tool);
            let has =
                self.predict().agent(id).is_some_and(|a| a.access.effective_tools.iter().any(|t| t == tool));
            if has || !matches!(route, Grant::DropDeny) {
                break;
            }
        }
        Ok(())
    }

    /// Writes each agent's `subagents.allowAgents` when what it resolves to differs from the
    /// desired SPAWN targets, and grants `sessions_spawn` to agents that need it.
    pub(super) fn express_spawns(&mut self) -> Result<(), PlanError> {
        let predicted = self.predict();
        for id in self.nodes.keys().copied().collect::<Vec<_>>() {
            let targets: Vec<String> = self
                .desired
                .edges_of(EdgeKind::Spawn)
                .filter(|e| e.from == id)
                .map(|e| e.to.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let Some(agent) = predicted.agent(id) else { continue };
            let listed = crate::domain::permissions::spawn_list(&self.root, id, &self.node_ids());
            if listed != targets {
                if let Some(settings) = agent_mut(&mut self.root, id) {
                    object_at(settings, "subagents").insert("allowAgents".to_owned(), json!(targets));
                }
                self.ops.push(format!("set subagents.allowAgents of {id} to [{}]", targets.join(", ")));
            }
            if !targets.is_empty() && !agent.access.effective_tools.iter().any(|t| t == "sessions_spawn") {
                self.grant_tool(id, "sessions_spawn", "spawn sub-agents")?;
            }
        }
        Ok(())
    }

    fn node_ids(&self) -> Vec<String> {
        self.nodes.keys().map(|id| (*id).to_owned()).collect()
    }
}

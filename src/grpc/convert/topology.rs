//! `TopologyService`: inventories, topologies, desired revisions, the agent catalog.

use chrono::DateTime;

use super::{count, some_text, text, timestamp};
use crate::domain::catalog::AgentCatalog;
use crate::domain::desired::{DesiredInput, DesiredRevision, FieldViolation, NodeInput, check_counts};
use crate::domain::findings::{Finding, FindingKind};
use crate::domain::inventory::{Binding, Inventory, InventoryAgent, RouteMatch, SessionStore};
use crate::domain::observation::ObservationRecord;
use crate::domain::topology::{
    EdgeKind, ElevatedPin, PermissionPins, Route, TeamPins, Topology, TopologyEdge,
};
use crate::domain::{RosterShape, SandboxMode, TrustLevel};
use crate::pb::v1 as pb;

impl From<RosterShape> for pb::RosterShape {
    fn from(value: RosterShape) -> Self {
        match value {
            RosterShape::Entries => Self::Entries,
            RosterShape::List => Self::List,
            RosterShape::None => Self::None,
        }
    }
}

impl From<&SandboxMode> for pb::SandboxMode {
    fn from(value: &SandboxMode) -> Self {
        match value {
            SandboxMode::Off => Self::Off,
            SandboxMode::NonMain => Self::NonMain,
            SandboxMode::All => Self::All,
            SandboxMode::Invalid(_) => Self::Invalid,
        }
    }
}

impl From<SessionStore> for pb::SessionStore {
    fn from(value: SessionStore) -> Self {
        match value {
            SessionStore::None => Self::None,
            SessionStore::Current => Self::Current,
            SessionStore::Legacy => Self::Legacy,
        }
    }
}

impl From<FindingKind> for pb::FindingKind {
    fn from(value: FindingKind) -> Self {
        match value {
            FindingKind::ConfigInvalid => Self::ConfigInvalid,
            FindingKind::ConfigUnreadable => Self::ConfigUnreadable,
            FindingKind::RetiredKey => Self::RetiredKey,
            FindingKind::ToolsAllowConflict => Self::ToolsAllowConflict,
            FindingKind::InvalidSandboxMode => Self::InvalidSandboxMode,
            FindingKind::WorkspaceMissing => Self::WorkspaceMissing,
            FindingKind::StaleAllowAgents => Self::StaleAllowAgents,
            FindingKind::InvalidAgentId => Self::InvalidAgentId,
            FindingKind::BindingUnknownAgent => Self::BindingUnknownAgent,
            FindingKind::StaleAgentToAgentAllow => Self::StaleAgentToAgentAllow,
            FindingKind::LegacySessionStore => Self::LegacySessionStore,
            FindingKind::RejectedWritePresent => Self::RejectedWritePresent,
            FindingKind::OwnershipMissing => Self::OwnershipMissing,
            FindingKind::DuplicateAgentId => Self::DuplicateAgentId,
            FindingKind::ToolTableMissing => Self::ToolTableMissing,
            FindingKind::OpenDmToPrivilegedAgent => Self::OpenDmToPrivilegedAgent,
        }
    }
}

impl From<EdgeKind> for pb::EdgeKind {
    fn from(value: EdgeKind) -> Self {
        match value {
            EdgeKind::Send => Self::Send,
            EdgeKind::Spawn => Self::Spawn,
        }
    }
}

impl From<&ObservationRecord> for pb::ObservationInfo {
    fn from(record: &ObservationRecord) -> Self {
        Self {
            id: record.id,
            observed_time: Some(timestamp(record.observed_at)),
            last_seen_time: Some(timestamp(record.last_seen_at)),
            seen_count: record.seen_count,
            config_hash: record.config_hash.clone(),
            revision: record.revision.clone(),
            runtime: record.runtime.clone(),
            finding_count: record.finding_count,
            config_valid: record.config_valid,
        }
    }
}

impl From<&Finding> for pb::Finding {
    fn from(value: &Finding) -> Self {
        Self {
            key: value.key.clone(),
            kind: pb::FindingKind::from(value.kind).into(),
            severity: pb::Severity::from(value.severity).into(),
            subject: value.subject.clone(),
            path: value.path.clone(),
            message: value.message.clone(),
        }
    }
}

impl From<&RouteMatch> for pb::RouteMatch {
    fn from(value: &RouteMatch) -> Self {
        Self {
            channel: value.channel.clone(),
            account_id: text(&value.account_id),
            peer_kind: text(&value.peer_kind),
            peer_id: text(&value.peer_id),
            guild_id: text(&value.guild_id),
            team_id: text(&value.team_id),
            roles: value.roles.clone(),
        }
    }
}

impl From<&pb::RouteMatch> for RouteMatch {
    fn from(value: &pb::RouteMatch) -> Self {
        Self {
            channel: value.channel.clone(),
            account_id: some_text(&value.account_id),
            peer_kind: some_text(&value.peer_kind),
            peer_id: some_text(&value.peer_id),
            guild_id: some_text(&value.guild_id),
            team_id: some_text(&value.team_id),
            roles: value.roles.clone(),
        }
    }
}

impl From<&Binding> for pb::Binding {
    fn from(value: &Binding) -> Self {
        Self {
            index: count(value.index),
            agent_id: value.agent_id.clone(),
            r#type: value.kind.clone(),
            r#match: Some((&value.route).into()),
            comment: text(&value.comment),
        }
    }
}

impl From<&InventoryAgent> for pb::InventoryAgent {
    fn from(value: &InventoryAgent) -> Self {
        let activity = &value.session_activity;
        Self {
            id: value.id.clone(),
            name: text(&value.name),
            workspace: value.workspace.clone(),
            workspace_exists: value.workspace_exists,
            agent_dir: value.agent_dir.clone(),
            model: text(&value.model),
            model_fallbacks: value.model_fallbacks.clone(),
            tools: Some(pb::ToolPolicy {
                profile: text(&value.tools.profile),
                allow: value.tools.allow.clone(),
                deny: value.tools.deny.clone(),
                also_allow: value.tools.also_allow.clone(),
            }),
            skills: value.skills.clone(),
            sandbox_mode: pb::SandboxMode::from(&value.sandbox_mode).into(),
            elevated: value.elevated,
            allow_agents: value.allow_agents.clone(),
            identity: Some(pb::AgentIdentity {
                name: text(&value.identity.name),
                emoji: text(&value.identity.emoji),
                theme: text(&value.identity.theme),
                avatar: text(&value.identity.avatar),
            }),
            session_activity: Some(pb::SessionActivity {
                store: pb::SessionStore::from(activity.store).into(),
                session_count: activity.session_count.unwrap_or(-1),
                last_active_time: activity
                    .last_active_ms
                    .and_then(DateTime::from_timestamp_millis)
                    .map(timestamp),
            }),
            is_default: value.is_default,
            effective_trust: pb::TrustLevel::from(value.effective_trust).into(),
        }
    }
}

impl From<&Inventory> for pb::Inventory {
    fn from(value: &Inventory) -> Self {
        let limits = &value.subagent_limits;
        let clamp = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
        Self {
            openclaw_version: text(&value.openclaw_version),
            roster_shape: pb::RosterShape::from(value.roster_shape).into(),
            config_path: value.config_path.clone(),
            config_hash: value.config_hash.clone(),
            config_valid: value.config_valid,
            config_issues: value
                .config_issues
                .iter()
                .map(|issue| pb::ConfigIssue { path: issue.path.clone(), message: issue.message.clone() })
                .collect(),
            agents: value.agents.iter().map(Into::into).collect(),
            bindings: value.bindings.iter().map(Into::into).collect(),
            agent_to_agent: Some(pb::AgentToAgent {
                enabled: value.agent_to_agent.enabled,
                allow: value.agent_to_agent.allow.clone(),
                sessions_visibility: value.agent_to_agent.sessions_visibility.clone(),
            }),
            subagent_limits: Some(pb::SubagentLimits {
                max_spawn_depth: clamp(limits.max_spawn_depth),
                max_children_per_agent: clamp(limits.max_children_per_agent),
                max_concurrent: clamp(limits.max_concurrent),
            }),
            findings: value.findings.iter().map(Into::into).collect(),
            default_agent_id: text(&value.default_agent_id),
        }
    }
}

impl From<&TopologyEdge> for pb::TopologyEdge {
    fn from(value: &TopologyEdge) -> Self {
        Self {
            from_agent_id: value.from.clone(),
            to_agent_id: value.to.clone(),
            kind: pb::EdgeKind::from(value.kind).into(),
        }
    }
}

impl From<&Topology> for pb::Topology {
    fn from(value: &Topology) -> Self {
        Self {
            nodes: value
                .nodes
                .iter()
                .map(|node| pb::TopologyNode {
                    agent_id: node.agent_id.clone(),
                    role: node.role.clone(),
                    trust: pb::TrustLevel::from(node.trust).into(),
                    model: text(&node.model),
                    tools_profile: text(&node.tools_profile),
                    workspace: node.workspace.clone(),
                    pins: (!node.pins.is_empty()).then(|| pins_to_pb(&node.pins)),
                })
                .collect(),
            edges: value.edges.iter().map(Into::into).collect(),
            routes: value
                .routes
                .iter()
                .map(|route| pb::Route {
                    r#match: Some((&route.route).into()),
                    agent_id: route.agent_id.clone(),
                })
                .collect(),
            revision: value.revision.clone(),
            team: (!value.team.is_empty()).then(|| pb::TeamPins {
                closed_agent_to_agent: value.team.closed_agent_to_agent,
                sessions_visibility: text(&value.team.sessions_visibility),
            }),
        }
    }
}

fn pins_to_pb(pins: &PermissionPins) -> pb::PermissionPins {
    let list =
        |tools: &Option<Vec<String>>| tools.as_ref().map(|tools| pb::ToolList { tools: tools.clone() });
    pb::PermissionPins {
        tools_allow: list(&pins.tools_allow),
        tools_deny: list(&pins.tools_deny),
        sandbox_mode: text(&pins.sandbox_mode),
        workspace_access: text(&pins.workspace_access),
        elevated: pins
            .elevated
            .as_ref()
            .map(|e| pb::ElevatedPin { enabled: e.enabled, allow_from: e.allow_from.clone() }),
    }
}

fn pins_from_pb(pins: Option<&pb::PermissionPins>) -> PermissionPins {
    let Some(pins) = pins else { return PermissionPins::default() };
    let optional = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    PermissionPins {
        tools_allow: pins.tools_allow.as_ref().map(|l| l.tools.clone()),
        tools_deny: pins.tools_deny.as_ref().map(|l| l.tools.clone()),
        sandbox_mode: optional(&pins.sandbox_mode),
        workspace_access: optional(&pins.workspace_access),
        elevated: pins
            .elevated
            .as_ref()
            .map(|e| ElevatedPin { enabled: e.enabled, allow_from: e.allow_from.clone() }),
    }
}

impl From<&DesiredRevision> for pb::DesiredTopologyRevision {
    fn from(value: &DesiredRevision) -> Self {
        Self {
            runtime: String::new(),
            generation: value.generation,
            etag: value.etag.clone(),
            author: value.author.clone(),
            create_time: Some(timestamp(value.created_at)),
            topology: Some((&value.topology).into()),
        }
    }
}

impl From<&AgentCatalog> for pb::GetAgentCatalogResponse {
    fn from(value: &AgentCatalog) -> Self {
        Self {
            runtime: String::new(),
            desired_generation: value.desired_generation,
            desired_revision: value.desired_revision.clone(),
            observed_revision: value.observed_revision.clone(),
            agents: value
                .agents
                .iter()
                .map(|agent| pb::CatalogAgent {
                    agent_id: agent.agent_id.clone(),
                    role: agent.role.clone(),
                    trust: pb::TrustLevel::from(agent.trust).into(),
                    model: text(&agent.model),
                    tools_profile: text(&agent.tools_profile),
                    desired: agent.desired,
                    observed: agent.observed,
                    may_send_to: agent.may_send_to.clone(),
                    may_spawn: agent.may_spawn.clone(),
                    routes: agent.routes.clone(),
                    desired_trust: agent.desired_trust.map(pb::TrustLevel::from).unwrap_or_default().into(),
                    observed_trust: agent.observed_trust.map(pb::TrustLevel::from).unwrap_or_default().into(),
                    trust_widened: agent.trust_widened,
                    effective_tools: agent.access.effective_tools.clone(),
                    session_visibility: agent.access.session_visibility.clone(),
                    sandbox_mode: agent.access.sandbox_mode.clone(),
                    workspace_access: agent.access.workspace_access.clone(),
                    elevated: agent.access.elevated,
                    elevated_allow_from: agent.access.elevated_allow_from.clone(),
                    exec_host: agent.access.exec_host.clone(),
                    woken_by: agent.access.woken_by.clone(),
                    inbound: agent
                        .access
                        .inbound
                        .iter()
                        .map(|route| pb::InboundReach {
                            channel: route.channel.clone(),
                            account: route.account.clone(),
                            dm_policy: route.dm_policy.clone(),
                            group_policy: route.group_policy.clone(),
                            bound: route.bound,
                        })
                        .collect(),
                })
                .collect(),
            digest: value.digest.clone(),
        }
    }
}

/// Decodes a requested desired topology; enum values the API does not define are violations.
impl TryFrom<&pb::Topology> for DesiredInput {
    type Error = Vec<FieldViolation>;

    fn try_from(value: &pb::Topology) -> Result<Self, Self::Error> {
        check_counts(value.nodes.len(), value.edges.len(), value.routes.len())?;
        let mut violations = Vec::new();
        let mut input = DesiredInput::default();
        for (i, node) in value.nodes.iter().enumerate() {
            let trust = match pb::TrustLevel::try_from(node.trust) {
                Ok(pb::TrustLevel::Unspecified) => None,
                Ok(pb::TrustLevel::Restricted) => Some(TrustLevel::Restricted),
                Ok(pb::TrustLevel::Standard) => Some(TrustLevel::Standard),
                Ok(pb::TrustLevel::Elevated) => Some(TrustLevel::Elevated),
                Err(_) => {
                    violations.push(FieldViolation::new(
                        format!("topology.nodes[{i}].trust"),
                        "unknown trust level",
                    ));
                    None
                }
            };
            input.nodes.push(NodeInput {
                agent_id: node.agent_id.clone(),
                role: node.role.clone(),
                trust,
                model: node.model.clone(),
                tools_profile: node.tools_profile.clone(),
                workspace: node.workspace.clone(),
                pins: pins_from_pb(node.pins.as_ref()),
            });
        }
        for (i, edge) in value.edges.iter().enumerate() {
            let kind = match pb::EdgeKind::try_from(edge.kind) {
                Ok(pb::EdgeKind::Send) => EdgeKind::Send,
                Ok(pb::EdgeKind::Spawn) => EdgeKind::Spawn,
                _ => {
                    violations.push(FieldViolation::new(
                        format!("topology.edges[{i}].kind"),
                        "must be EDGE_KIND_SEND or EDGE_KIND_SPAWN",
                    ));
                    continue;
                }
            };
            input.edges.push(TopologyEdge {
                from: edge.from_agent_id.clone(),
                to: edge.to_agent_id.clone(),
                kind,
            });
        }
        for (i, route) in value.routes.iter().enumerate() {
            let Some(matcher) = &route.r#match else {
                violations.push(FieldViolation::new(format!("topology.routes[{i}].match"), "required"));
                continue;
            };
            input.routes.push(Route { route: matcher.into(), agent_id: route.agent_id.clone() });
        }
        if let Some(team) = &value.team {
            input.team = TeamPins {
                closed_agent_to_agent: team.closed_agent_to_agent,
                sessions_visibility: (!team.sessions_visibility.is_empty())
                    .then(|| team.sessions_visibility.clone()),
            };
        }
        if violations.is_empty() { Ok(input) } else { Err(violations) }
    }
}

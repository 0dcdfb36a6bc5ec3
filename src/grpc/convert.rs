//! Domain → proto conversions for the gRPC and HTTP transports.

use chrono::{DateTime, Utc};

use crate::control::{AppError, ObserveNowResult};
use crate::domain::catalog::AgentCatalog;
use crate::domain::classify::{RiskLevel, TaskInput, TaskProfile};
use crate::domain::desired::{DesiredInput, DesiredRevision, FieldViolation, NodeInput};
use crate::domain::drift::summary::DriftSummary;
use crate::domain::drift::tracker::{DriftState, TrackedItem};
use crate::domain::drift::{DriftDifference, DriftKind};
use crate::domain::findings::{Finding, FindingKind};
use crate::domain::inventory::{self, Binding, Inventory, InventoryAgent, RouteMatch, SessionStore};
use crate::domain::observation::ObservationRecord;
use crate::domain::patch::{PatchPlan, PlanKind};
use crate::domain::rollout::{Rollout, RolloutState};
use crate::domain::topology::{EdgeKind, Route, Topology, TopologyEdge};
use crate::domain::{RosterShape, SandboxMode, Severity, TrustLevel};
use crate::pb::v1 as pb;

/// Converts a UTC time to a protobuf timestamp.
pub fn timestamp(time: DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}

fn timestamp_from_ms(ms: i64) -> Option<pbjson_types::Timestamp> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(timestamp)
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

pub fn severity(value: Severity) -> pb::Severity {
    match value {
        Severity::Info => pb::Severity::Info,
        Severity::Warning => pb::Severity::Warning,
        Severity::Error => pb::Severity::Error,
        Severity::Critical => pb::Severity::Critical,
    }
}

pub fn trust(value: TrustLevel) -> pb::TrustLevel {
    match value {
        TrustLevel::Restricted => pb::TrustLevel::Restricted,
        TrustLevel::Standard => pb::TrustLevel::Standard,
        TrustLevel::Elevated => pb::TrustLevel::Elevated,
    }
}

fn roster_shape(value: RosterShape) -> pb::RosterShape {
    match value {
        RosterShape::Entries => pb::RosterShape::Entries,
        RosterShape::List => pb::RosterShape::List,
        RosterShape::None => pb::RosterShape::None,
    }
}

fn sandbox_mode(value: &SandboxMode) -> pb::SandboxMode {
    match value {
        SandboxMode::Off => pb::SandboxMode::Off,
        SandboxMode::NonMain => pb::SandboxMode::NonMain,
        SandboxMode::All => pb::SandboxMode::All,
        SandboxMode::Invalid(_) => pb::SandboxMode::Invalid,
    }
}

fn session_store(value: SessionStore) -> pb::SessionStore {
    match value {
        SessionStore::None => pb::SessionStore::None,
        SessionStore::Current => pb::SessionStore::Current,
        SessionStore::Legacy => pb::SessionStore::Legacy,
    }
}

fn finding_kind(value: FindingKind) -> pb::FindingKind {
    match value {
        FindingKind::ConfigInvalid => pb::FindingKind::ConfigInvalid,
        FindingKind::ConfigUnreadable => pb::FindingKind::ConfigUnreadable,
        FindingKind::RetiredKey => pb::FindingKind::RetiredKey,
        FindingKind::ToolsAllowConflict => pb::FindingKind::ToolsAllowConflict,
        FindingKind::InvalidSandboxMode => pb::FindingKind::InvalidSandboxMode,
        FindingKind::WorkspaceMissing => pb::FindingKind::WorkspaceMissing,
        FindingKind::StaleAllowAgents => pb::FindingKind::StaleAllowAgents,
        FindingKind::InvalidAgentId => pb::FindingKind::InvalidAgentId,
        FindingKind::BindingUnknownAgent => pb::FindingKind::BindingUnknownAgent,
        FindingKind::StaleAgentToAgentAllow => pb::FindingKind::StaleAgentToAgentAllow,
        FindingKind::LegacySessionStore => pb::FindingKind::LegacySessionStore,
        FindingKind::RejectedWritePresent => pb::FindingKind::RejectedWritePresent,
        FindingKind::OwnershipMissing => pb::FindingKind::OwnershipMissing,
        FindingKind::DuplicateAgentId => pb::FindingKind::DuplicateAgentId,
    }
}

fn edge_kind(value: EdgeKind) -> pb::EdgeKind {
    match value {
        EdgeKind::Send => pb::EdgeKind::Send,
        EdgeKind::Spawn => pb::EdgeKind::Spawn,
    }
}

pub fn observation_info(record: &ObservationRecord) -> pb::ObservationInfo {
    pb::ObservationInfo {
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

pub fn finding(value: &Finding) -> pb::Finding {
    pb::Finding {
        key: value.key.clone(),
        kind: finding_kind(value.kind).into(),
        severity: severity(value.severity).into(),
        subject: value.subject.clone(),
        path: value.path.clone(),
        message: value.message.clone(),
    }
}

fn route_match(value: &RouteMatch) -> pb::RouteMatch {
    pb::RouteMatch {
        channel: value.channel.clone(),
        account_id: text(&value.account_id),
        peer_kind: text(&value.peer_kind),
        peer_id: text(&value.peer_id),
        guild_id: text(&value.guild_id),
        team_id: text(&value.team_id),
        roles: value.roles.clone(),
    }
}

fn binding(value: &Binding) -> pb::Binding {
    pb::Binding {
        index: i32::try_from(value.index).unwrap_or(i32::MAX),
        agent_id: value.agent_id.clone(),
        r#type: value.kind.clone(),
        r#match: Some(route_match(&value.route)),
        comment: text(&value.comment),
    }
}

fn agent(value: &InventoryAgent) -> pb::InventoryAgent {
    let activity = &value.session_activity;
    pb::InventoryAgent {
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
        sandbox_mode: sandbox_mode(&value.sandbox_mode).into(),
        elevated: value.elevated,
        allow_agents: value.allow_agents.clone(),
        identity: Some(pb::AgentIdentity {
            name: text(&value.identity.name),
            emoji: text(&value.identity.emoji),
            theme: text(&value.identity.theme),
            avatar: text(&value.identity.avatar),
        }),
        session_activity: Some(pb::SessionActivity {
            store: session_store(activity.store).into(),
            session_count: activity.session_count.unwrap_or(-1),
            last_active_time: activity.last_active_ms.and_then(timestamp_from_ms),
        }),
        is_default: value.is_default,
        effective_trust: trust(value.effective_trust).into(),
    }
}

pub fn inventory(value: &Inventory) -> pb::Inventory {
    let limits: &inventory::SubagentLimits = &value.subagent_limits;
    let clamp = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    pb::Inventory {
        openclaw_version: text(&value.openclaw_version),
        roster_shape: roster_shape(value.roster_shape).into(),
        config_path: value.config_path.clone(),
        config_hash: value.config_hash.clone(),
        config_valid: value.config_valid,
        config_issues: value
            .config_issues
            .iter()
            .map(|issue| pb::ConfigIssue { path: issue.path.clone(), message: issue.message.clone() })
            .collect(),
        agents: value.agents.iter().map(agent).collect(),
        bindings: value.bindings.iter().map(binding).collect(),
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
        findings: value.findings.iter().map(finding).collect(),
        default_agent_id: text(&value.default_agent_id),
    }
}

pub fn topology(value: &Topology) -> pb::Topology {
    pb::Topology {
        nodes: value
            .nodes
            .iter()
            .map(|node| pb::TopologyNode {
                agent_id: node.agent_id.clone(),
                role: node.role.clone(),
                trust: trust(node.trust).into(),
                model: text(&node.model),
                tools_profile: text(&node.tools_profile),
                workspace: node.workspace.clone(),
            })
            .collect(),
        edges: value.edges.iter().map(edge).collect(),
        routes: value
            .routes
            .iter()
            .map(|route| pb::Route {
                r#match: Some(route_match(&route.route)),
                agent_id: route.agent_id.clone(),
            })
            .collect(),
        revision: value.revision.clone(),
    }
}

pub fn edge(value: &TopologyEdge) -> pb::TopologyEdge {
    pb::TopologyEdge {
        from_agent_id: value.from.clone(),
        to_agent_id: value.to.clone(),
        kind: edge_kind(value.kind).into(),
    }
}

pub fn desired_revision(value: &DesiredRevision) -> pb::DesiredTopologyRevision {
    pb::DesiredTopologyRevision {
        generation: value.generation,
        etag: value.etag.clone(),
        author: value.author.clone(),
        create_time: Some(timestamp(value.created_at)),
        topology: Some(topology(&value.topology)),
    }
}

fn drift_kind(value: DriftKind) -> pb::DriftKind {
    match value {
        DriftKind::AgentMissing => pb::DriftKind::AgentMissing,
        DriftKind::AgentUnexpected => pb::DriftKind::AgentUnexpected,
        DriftKind::AgentChanged => pb::DriftKind::AgentChanged,
        DriftKind::EdgeMissing => pb::DriftKind::EdgeMissing,
        DriftKind::EdgeUnexpected => pb::DriftKind::EdgeUnexpected,
        DriftKind::RouteMissing => pb::DriftKind::RouteMissing,
        DriftKind::RouteUnexpected => pb::DriftKind::RouteUnexpected,
        DriftKind::TrustWidened => pb::DriftKind::TrustWidened,
        DriftKind::RuntimeFinding => pb::DriftKind::RuntimeFinding,
    }
}

pub fn drift_state(value: DriftState) -> pb::DriftState {
    match value {
        DriftState::Pending => pb::DriftState::Pending,
        DriftState::Confirmed => pb::DriftState::Confirmed,
        DriftState::Resolved => pb::DriftState::Resolved,
        DriftState::Flapping => pb::DriftState::Flapping,
    }
}

pub fn difference(value: &DriftDifference) -> pb::TopologyDifference {
    pb::TopologyDifference {
        key: value.key.clone(),
        kind: drift_kind(value.kind).into(),
        severity: severity(value.severity).into(),
        subject: value.subject.clone(),
        explanation: value.explanation.clone(),
        fields: value.fields.clone(),
    }
}

pub fn drift_item(value: &TrackedItem) -> pb::DriftItem {
    let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    pb::DriftItem {
        key: value.key().to_owned(),
        difference: Some(difference(&value.difference)),
        state: drift_state(value.state).into(),
        first_seen_time: Some(timestamp(value.first_seen_at)),
        last_seen_time: Some(timestamp(value.last_seen_at)),
        state_change_time: Some(timestamp(value.state_changed_at)),
        consecutive_present: clamp(value.consecutive_present),
        consecutive_absent: clamp(value.consecutive_absent),
        recent_reopenings: i32::try_from(value.reopenings.len()).unwrap_or(i32::MAX),
        acknowledged: value.acknowledged_by.is_some(),
        acknowledged_by: value.acknowledged_by.clone().unwrap_or_default(),
    }
}

pub fn drift_summary(value: &DriftSummary) -> pb::GetDriftSummaryResponse {
    let count = |name: &str, count: i32| pb::DriftCount { name: name.to_owned(), count };
    pb::GetDriftSummaryResponse {
        in_sync: value.in_sync,
        needs_attention: value.needs_attention,
        by_state: value.by_state.iter().map(|(s, n)| count(drift_state(*s).as_str_name(), *n)).collect(),
        by_severity: value.by_severity.iter().map(|(s, n)| count(severity(*s).as_str_name(), *n)).collect(),
        by_kind: value.by_kind.iter().map(|(k, n)| count(drift_kind(*k).as_str_name(), *n)).collect(),
        last_observation_time: value.last_observation_at.map(timestamp),
        desired_generation: value.desired_generation,
        desired_revision: value.desired_revision.clone(),
        observed_revision: value.observed_revision.clone(),
        config_hash: value.config_hash.clone(),
    }
}

pub fn observe_now(value: &ObserveNowResult) -> pb::ObserveNowResponse {
    pb::ObserveNowResponse {
        summary: Some(drift_summary(&value.summary)),
        transitioned: value.transitioned.iter().map(drift_item).collect(),
    }
}

pub fn catalog(value: &AgentCatalog) -> pb::GetAgentCatalogResponse {
    pb::GetAgentCatalogResponse {
        desired_generation: value.desired_generation,
        desired_revision: value.desired_revision.clone(),
        observed_revision: value.observed_revision.clone(),
        agents: value
            .agents
            .iter()
            .map(|agent| pb::CatalogAgent {
                agent_id: agent.agent_id.clone(),
                role: agent.role.clone(),
                trust: trust(agent.trust).into(),
                model: text(&agent.model),
                tools_profile: text(&agent.tools_profile),
                desired: agent.desired,
                observed: agent.observed,
                may_send_to: agent.may_send_to.clone(),
                may_spawn: agent.may_spawn.clone(),
                routes: agent.routes.clone(),
            })
            .collect(),
        digest: value.digest.clone(),
    }
}

fn some_text(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// Decodes a requested desired topology; enum values the API does not define are violations.
pub fn desired_input(value: Option<&pb::Topology>) -> Result<DesiredInput, Vec<FieldViolation>> {
    let Some(value) = value else {
        return Err(vec![FieldViolation::new("topology", "required")]);
    };
    let mut violations = Vec::new();
    let mut input = DesiredInput::default();
    for (i, node) in value.nodes.iter().enumerate() {
        let trust = match pb::TrustLevel::try_from(node.trust) {
            Ok(pb::TrustLevel::Unspecified) => None,
            Ok(pb::TrustLevel::Restricted) => Some(TrustLevel::Restricted),
            Ok(pb::TrustLevel::Standard) => Some(TrustLevel::Standard),
            Ok(pb::TrustLevel::Elevated) => Some(TrustLevel::Elevated),
            Err(_) => {
                violations
                    .push(FieldViolation::new(format!("topology.nodes[{i}].trust"), "unknown trust level"));
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
        input.routes.push(Route {
            route: RouteMatch {
                channel: matcher.channel.clone(),
                account_id: some_text(&matcher.account_id),
                peer_kind: some_text(&matcher.peer_kind),
                peer_id: some_text(&matcher.peer_id),
                guild_id: some_text(&matcher.guild_id),
                team_id: some_text(&matcher.team_id),
                roles: matcher.roles.clone(),
            },
            agent_id: route.agent_id.clone(),
        });
    }
    if violations.is_empty() { Ok(input) } else { Err(violations) }
}

pub fn plan_kind(value: PlanKind) -> pb::PlanKind {
    match value {
        PlanKind::Apply => pb::PlanKind::Apply,
        PlanKind::Repair => pb::PlanKind::Repair,
    }
}

pub fn patch_plan(value: &PatchPlan, created_at: DateTime<Utc>) -> pb::PatchPlan {
    pb::PatchPlan {
        id: value.id.clone(),
        kind: plan_kind(value.kind).into(),
        base_hash: value.base_hash.clone(),
        desired_generation: value.desired_generation,
        merge_patch_json: value.merge_patch.to_string(),
        replace_paths: value.replace_paths.clone(),
        operations: value.operations.clone(),
        guards: value.guards.clone(),
        warnings: value.warnings.clone(),
        create_workspaces: value.create_workspaces.clone(),
        expected_resolved: value.expected_resolved.clone(),
        removed_agents: value.removed_agents.clone(),
        create_time: Some(timestamp(created_at)),
    }
}

pub fn rollout_state(value: RolloutState) -> pb::RolloutState {
    match value {
        RolloutState::Pending => pb::RolloutState::Pending,
        RolloutState::Applying => pb::RolloutState::Applying,
        RolloutState::Verifying => pb::RolloutState::Verifying,
        RolloutState::Succeeded => pb::RolloutState::Succeeded,
        RolloutState::Failed => pb::RolloutState::Failed,
        RolloutState::RollingBack => pb::RolloutState::RollingBack,
        RolloutState::RolledBack => pb::RolloutState::RolledBack,
    }
}

/// The rollout as clients see it (the pre-image stays on the server: it may hold secrets).
pub fn rollout(value: &Rollout) -> pb::Rollout {
    pb::Rollout {
        id: value.id.clone(),
        plan_id: value.plan_id.clone(),
        state: rollout_state(value.state).into(),
        dry_run: value.dry_run,
        actor: value.actor.clone(),
        base_hash: value.base_hash.clone(),
        target_hash: value.target_hash.clone().unwrap_or_default(),
        error: value.error.clone().unwrap_or_default(),
        steps: value
            .steps
            .iter()
            .map(|step| pb::RolloutStep {
                time: Some(timestamp(step.at)),
                state: rollout_state(step.state).into(),
                message: step.message.clone(),
            })
            .collect(),
        create_time: Some(timestamp(value.created_at)),
        update_time: Some(timestamp(value.updated_at)),
    }
}

pub fn task_input(value: pb::TaskInput) -> TaskInput {
    TaskInput {
        title: value.title,
        description: value.description,
        labels: value.labels,
        domain_hint: value.domain_hint,
    }
}

pub fn risk(value: RiskLevel) -> pb::RiskLevel {
    match value {
        RiskLevel::Low => pb::RiskLevel::Low,
        RiskLevel::Medium => pb::RiskLevel::Medium,
        RiskLevel::High => pb::RiskLevel::High,
        RiskLevel::Critical => pb::RiskLevel::Critical,
    }
}

/// Decodes an optional risk level (UNSPECIFIED → `None`).
pub fn risk_of(value: i32, field: &str) -> Result<Option<RiskLevel>, AppError> {
    match pb::RiskLevel::try_from(value) {
        Ok(pb::RiskLevel::Unspecified) => Ok(None),
        Ok(pb::RiskLevel::Low) => Ok(Some(RiskLevel::Low)),
        Ok(pb::RiskLevel::Medium) => Ok(Some(RiskLevel::Medium)),
        Ok(pb::RiskLevel::High) => Ok(Some(RiskLevel::High)),
        Ok(pb::RiskLevel::Critical) => Ok(Some(RiskLevel::Critical)),
        Err(_) => Err(AppError::invalid(field.to_owned(), "unknown risk level")),
    }
}

pub fn task_profile(value: &TaskProfile) -> pb::TaskProfile {
    pb::TaskProfile {
        category: value.category.clone(),
        category_name: value.category_name.clone(),
        domain: value.domain.clone(),
        risk: risk(value.risk).into(),
        hints: value.hints.clone(),
        confidence: value.confidence,
        alternatives: value
            .alternatives
            .iter()
            .map(|a| pb::CategoryAlternative {
                category: a.category.clone(),
                score: a.score,
                confidence: a.confidence,
            })
            .collect(),
        matched_rules: value
            .matched
            .iter()
            .map(|m| pb::RuleMatch {
                rule_id: m.rule_id.clone(),
                kind: m.kind.clone(),
                target: m.target.clone(),
                field: m.field.as_str().to_owned(),
                evidence: m.evidence.clone(),
                score: m.score,
            })
            .collect(),
        rules_version: value.rules_version.clone(),
    }
}

/// Decodes a caller-supplied profile (only what setup needs: category, risk, hints).
pub fn task_profile_of(value: pb::TaskProfile) -> Result<TaskProfile, AppError> {
    let risk = risk_of(value.risk, "profile.risk")?
        .ok_or_else(|| AppError::invalid("profile.risk", "required when a profile is given"))?;
    Ok(TaskProfile {
        category_name: value.category_name,
        domain: value.domain,
        risk,
        hints: value.hints,
        confidence: value.confidence,
        alternatives: Vec::new(),
        matched: Vec::new(),
        rules_version: value.rules_version,
        category: value.category,
    })
}

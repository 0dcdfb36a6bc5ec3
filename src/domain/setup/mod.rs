//! Setup preview: from a task profile to a proposed team — a desired topology with roles,
//! model tiers, tool profiles, trust, SEND/SPAWN edges and bounded sub-agents — plus a
//! bootstrap bundle per agent.
//!
//! # Guarantees
//! - Pure and deterministic: the same profile, task, base and limits give the same preview.
//! - Every preview passes `validate_desired` (so its SEND set is expressible by OpenClaw), keeps
//!   spawn depth and children per agent within the limits, and keeps every bootstrap file and
//!   each agent's total within the budgets (task context is shortened to fit, never a rule).
//! - Higher risk means tighter defaults: lower trust (so sandboxing), and from HIGH risk an
//!   independent reviewer that the lead cannot spawn.
//! - Extending a base never changes an existing agent's settings (trust, model, tools) or
//!   removes an edge; the STABILIZATION pass only adds reviewer/QA roles at RESTRICTED trust
//!   and gives nobody new SPAWN rights (existing members of the SEND clique can reach the new
//!   ones: a clique cannot grow otherwise).

pub mod bootstrap;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use super::classify::{RiskLevel, TaskInput, TaskProfile};
use super::desired::{DesiredInput, FieldViolation, NodeInput, validate_desired};
use super::expressibility::express;
use super::model::{SandboxMode, TrustLevel};
use super::topology::{EdgeKind, Topology, TopologyEdge, TopologyNode};
use bootstrap::{BootstrapFile, Budgets, render_bundle};

/// Largest team a preview may propose.
pub const MAX_TEAM: usize = 20;
/// Team size when the caller gives no budget.
pub const DEFAULT_TEAM: usize = 5;

/// Which pass a preview is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SetupPass {
    /// A first team for the task.
    Initial,
    /// Add reviewer/QA roles to a finished first pass (the current desired topology).
    Stabilization,
}

/// Bounds of a proposed team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetupLimits {
    pub max_agents: usize,
    /// OpenClaw `subagents.maxSpawnDepth` bound the team stays within.
    pub max_spawn_depth: usize,
    /// OpenClaw `subagents.maxChildrenPerAgent` bound the team stays within.
    pub max_children: usize,
    pub budgets: Budgets,
}

impl Default for SetupLimits {
    fn default() -> Self {
        Self { max_agents: DEFAULT_TEAM, max_spawn_depth: 2, max_children: 5, budgets: Budgets::default() }
    }
}

/// What a preview is computed from.
pub struct SetupInput<'a> {
    pub task: &'a TaskInput,
    pub profile: &'a TaskProfile,
    /// Roles dispatch prefers for this category (from the rules), most preferred first.
    pub category_roles: &'a [String],
    pub pass: SetupPass,
    /// The desired topology to extend (required for STABILIZATION).
    pub base: Option<&'a Topology>,
    pub limits: SetupLimits,
    /// Model per tier (`premium`, `standard`, `economy`); a tier without one inherits the
    /// runtime's default model.
    pub models: &'a BTreeMap<String, String>,
}

/// One agent of the proposed team.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProposedAgent {
    pub agent_id: String,
    pub role: String,
    pub model_tier: String,
    pub model: Option<String>,
    pub tools_profile: String,
    pub trust: TrustLevel,
    /// The sandbox mode the trust bound implies.
    pub sandbox: String,
    pub may_initiate: bool,
    /// False for an agent of the base that the team reuses.
    pub new_agent: bool,
    /// Whether ApplySetup writes this agent's files: new agents, and the agent of an approved
    /// learning proposal.
    #[serde(default)]
    pub write_files: bool,
    pub files: Vec<BootstrapFile>,
}

impl ProposedAgent {
    /// Characters of all bootstrap files.
    pub fn total_chars(&self) -> usize {
        self.files.iter().map(|f| f.chars).sum()
    }
}

/// A proposed team.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetupPlan {
    pub topology: Topology,
    pub agents: Vec<ProposedAgent>,
    pub warnings: Vec<String>,
}

struct RoleSpec {
    tier: &'static str,
    tools_profile: &'static str,
    purpose: &'static str,
}

fn spec(role: &str) -> RoleSpec {
    let (tier, tools_profile, purpose) = match role {
        "lead" => (
            "premium",
            "messaging",
            "Plan the work, split it, hand parts to the team, integrate the results and report.",
        ),
        "reviewer" => (
            "premium",
            "coding",
            "Review every change independently before it counts as done; say no when in doubt.",
        ),
        "qa" => (
            "standard",
            "coding",
            "Test the result end to end and report every defect with steps to reproduce.",
        ),
        "implementer" => {
            ("standard", "coding", "Make the change in small, tested steps and explain what you changed.")
        }
        "researcher" | "research" => {
            ("standard", "minimal", "Find, read and compare sources; report findings with references.")
        }
        "writer" => ("standard", "minimal", "Write clear, accurate text in the requested tone and length."),
        "analyst" => {
            ("standard", "coding", "Analyse the data reproducibly and state how confident each finding is.")
        }
        "operator" => (
            "standard",
            "coding",
            "Change infrastructure carefully: plan, dry-run, apply, verify, and keep a way back.",
        ),
        "auditor" => ("premium", "coding", "Audit for security problems and rate each finding by severity."),
        "support" => (
            "standard",
            "messaging",
            "Answer the customer accurately and kindly; escalate what you cannot resolve.",
        ),
        _ => ("standard", "minimal", "Do the assigned part of the task and report back to the lead."),
    };
    RoleSpec { tier, tools_profile, purpose }
}

/// Returns the model tier and tools profile of a role.
pub fn role_defaults(role: &str) -> (&'static str, &'static str) {
    let spec = spec(role);
    (spec.tier, spec.tools_profile)
}

/// Returns the purpose line of a role (used by the bootstrap templates).
pub fn role_purpose(role: &str) -> &'static str {
    spec(role).purpose
}

/// The worker role of a category: its first dispatch role that is not `lead`; `auditor` when
/// that role is the reviewer (the independent reviewer is a separate agent).
fn worker_role(category_roles: &[String]) -> String {
    match category_roles.iter().find(|r| r.as_str() != "lead").map(String::as_str) {
        None => "assistant".to_owned(),
        Some("reviewer") => "auditor".to_owned(),
        Some("research") => "researcher".to_owned(),
        Some(other) => other.to_owned(),
    }
}

fn trust_for(role: &str, risk: RiskLevel) -> TrustLevel {
    match role {
        "reviewer" | "qa" => TrustLevel::Restricted,
        "lead" if risk <= RiskLevel::High => TrustLevel::Standard,
        _ if risk <= RiskLevel::Medium => TrustLevel::Standard,
        _ => TrustLevel::Restricted,
    }
}

/// The sandbox mode a trust bound implies.
pub fn sandbox_for(trust: TrustLevel) -> SandboxMode {
    match trust {
        TrustLevel::Restricted => SandboxMode::All,
        TrustLevel::Standard => SandboxMode::NonMain,
        TrustLevel::Elevated => SandboxMode::Off,
    }
}

fn unique_id(wanted: &str, taken: &BTreeSet<String>) -> String {
    if !taken.contains(wanted) {
        return wanted.to_owned();
    }
    (2..).map(|n| format!("{wanted}-{n}")).find(|id| !taken.contains(id)).unwrap_or_else(|| wanted.to_owned())
}

struct Member {
    id: String,
    role: String,
    initiates: bool,
    new_agent: bool,
}

fn violation(field: &str, description: String) -> Vec<FieldViolation> {
    vec![FieldViolation::new(field, description)]
}

/// Checks the caller's limits.
pub fn validate_limits(limits: &SetupLimits) -> Result<(), Vec<FieldViolation>> {
    let mut violations = Vec::new();
    if !(1..=MAX_TEAM).contains(&limits.max_agents) {
        violations.push(FieldViolation::new(
            "max_agents",
            format!("must be 1..{MAX_TEAM} (0 means {DEFAULT_TEAM})"),
        ));
    }
    violations.extend(limits.budgets.validate());
    if violations.is_empty() { Ok(()) } else { Err(violations) }
}

/// Proposes the team for a task.
pub fn plan_setup(input: &SetupInput<'_>) -> Result<SetupPlan, Vec<FieldViolation>> {
    validate_limits(&input.limits)?;
    let risk = input.profile.risk;
    let needs_review = input.profile.hints.iter().any(|h| h == super::classify::HINT_REVIEW);
    let base_nodes: Vec<TopologyNode> = input.base.map(|b| b.nodes.clone()).unwrap_or_default();
    let mut taken: BTreeSet<String> = base_nodes.iter().map(|n| n.agent_id.clone()).collect();
    let mut warnings = Vec::new();
    let mut members: Vec<Member> = Vec::new();
    let add = |role: &str, initiates: bool, members: &mut Vec<Member>, taken: &mut BTreeSet<String>| {
        // A base agent fills a role when it has that role or is named after it (observed
        // topologies carry the agent's display name as role).
        let fits = |n: &TopologyNode| n.role.eq_ignore_ascii_case(role) || n.agent_id == role;
        if let Some(node) = base_nodes.iter().find(|n| fits(n) && !members.iter().any(|m| m.id == n.agent_id))
        {
            members.push(Member {
                id: node.agent_id.clone(),
                role: role.to_owned(),
                initiates,
                new_agent: false,
            });
        } else {
            let id = unique_id(role, taken);
            taken.insert(id.clone());
            members.push(Member { id, role: role.to_owned(), initiates, new_agent: true });
        }
    };

    match input.pass {
        SetupPass::Initial => {
            let worker = worker_role(input.category_roles);
            let required = 1 + usize::from(needs_review);
            if input.limits.max_agents < required {
                return Err(violation(
                    "max_agents",
                    format!(
                        "{} risk needs at least {required} agents (lead and an independent reviewer); the budget is {}",
                        risk.as_str(),
                        input.limits.max_agents
                    ),
                ));
            }
            add("lead", true, &mut members, &mut taken);
            if input.limits.max_agents > required {
                add(&worker, false, &mut members, &mut taken);
            } else {
                warnings.push(format!(
                    "the budget of {} leaves no room for a {worker}: the lead does that work",
                    input.limits.max_agents
                ));
            }
            if needs_review {
                add("reviewer", true, &mut members, &mut taken);
            }
            if input.profile.hints.iter().any(|h| h == "parallelisable") {
                for _ in 0..2 {
                    if members.len() >= input.limits.max_agents {
                        warnings.push("parallel workers were limited by the team budget".to_owned());
                        break;
                    }
                    // A second and third worker of the same role get fresh ids.
                    let id = unique_id(&worker, &taken);
                    taken.insert(id.clone());
                    members.push(Member { id, role: worker.clone(), initiates: false, new_agent: true });
                }
            }
        }
        SetupPass::Stabilization => {
            if input.base.is_none() {
                return Err(violation(
                    "base",
                    "the STABILIZATION pass extends the current desired topology; there is none".to_owned(),
                ));
            }
            for (role, initiates) in [("reviewer", true), ("qa", false)] {
                if base_nodes.iter().any(|n| n.role == role) {
                    continue;
                }
                if members.len() >= input.limits.max_agents {
                    warnings.push(format!(
                        "no room for a {role} within the budget of {}",
                        input.limits.max_agents
                    ));
                    continue;
                }
                let id = unique_id(role, &taken);
                taken.insert(id.clone());
                members.push(Member { id, role: role.to_owned(), initiates, new_agent: true });
            }
            if members.is_empty() {
                warnings.push("the team already has a reviewer and QA; nothing to add".to_owned());
            }
        }
    }

    let topology = build_topology(input, &members)?;
    let mut agents = Vec::new();
    for member in &members {
        let node = topology.nodes.iter().find(|n| n.agent_id == member.id);
        let Some(node) = node else { continue };
        let role_spec = spec(&member.role);
        let tier = role_spec.tier.to_owned();
        agents.push(ProposedAgent {
            agent_id: member.id.clone(),
            role: member.role.clone(),
            model: input.models.get(&tier).cloned(),
            model_tier: tier,
            tools_profile: node.tools_profile.clone().unwrap_or_else(|| role_spec.tools_profile.to_owned()),
            trust: node.trust,
            sandbox: sandbox_for(node.trust).to_string(),
            may_initiate: member.initiates,
            new_agent: member.new_agent,
            write_files: member.new_agent,
            files: Vec::new(),
        });
    }
    let roster: Vec<(String, String, bool)> =
        agents.iter().map(|a| (a.agent_id.clone(), a.role.clone(), a.may_initiate)).collect();
    for agent in &mut agents {
        let spawns: Vec<String> = topology
            .edges_of(EdgeKind::Spawn)
            .filter(|e| e.from == agent.agent_id)
            .map(|e| e.to.clone())
            .collect();
        agent.files =
            render_bundle(input.task, input.profile, agent, &roster, &spawns, &[], &input.limits.budgets);
    }
    Ok(SetupPlan { topology, agents, warnings })
}

fn build_topology(input: &SetupInput<'_>, members: &[Member]) -> Result<Topology, Vec<FieldViolation>> {
    let risk = input.profile.risk;
    let base = input.base;
    let mut nodes: Vec<NodeInput> =
        base.map(|b| b.nodes.iter().map(NodeInput::from).collect()).unwrap_or_default();
    for member in members.iter().filter(|m| m.new_agent) {
        let role_spec = spec(&member.role);
        nodes.push(NodeInput {
            agent_id: member.id.clone(),
            role: member.role.clone(),
            trust: Some(trust_for(&member.role, risk)),
            model: input.models.get(role_spec.tier).cloned().unwrap_or_default(),
            tools_profile: role_spec.tools_profile.to_owned(),
            workspace: String::new(),
            pins: Default::default(),
        });
    }
    let mut edges: Vec<TopologyEdge> = base.map(|b| b.edges.clone()).unwrap_or_default();

    // SEND: the base's policy widened by the team — the team joins the clique, and the lead and
    // reviewer may start conversations. The union of two policies is a policy, so the result
    // stays expressible.
    let base_sends: BTreeSet<(String, String)> =
        edges.iter().filter(|e| e.kind == EdgeKind::Send).map(|e| (e.from.clone(), e.to.clone())).collect();
    let mut policy = express(&base_sends).unwrap_or_default();
    if input.pass == SetupPass::Stabilization
        && let Some(lead) = base.and_then(|b| b.nodes.iter().find(|n| n.role == "lead"))
        && !members.is_empty()
    {
        // The reviewer must be able to reach the lead; the lead's own rights do not change.
        policy.clique.insert(lead.agent_id.clone());
    }
    if members.len() + policy.clique.len() > 1 {
        policy.clique.extend(members.iter().map(|m| m.id.clone()));
        policy.initiators.extend(members.iter().filter(|m| m.initiates).map(|m| m.id.clone()));
    }
    edges.retain(|e| e.kind != EdgeKind::Send);
    edges.extend(policy.edges().into_iter().map(|(from, to)| TopologyEdge {
        from,
        to,
        kind: EdgeKind::Send,
    }));

    // SPAWN (initial pass only): the lead spawns the workers, never the reviewer (the review
    // must stay independent), bounded by children per agent; depth stays 1.
    if input.pass == SetupPass::Initial
        && let Some(lead) = members.iter().find(|m| m.role == "lead")
    {
        let existing = edges.iter().filter(|e| e.kind == EdgeKind::Spawn && e.from == lead.id).count();
        let room = input.limits.max_children.saturating_sub(existing);
        let workers: Vec<&Member> =
            members.iter().filter(|m| m.role != "lead" && m.role != "reviewer").collect();
        for worker in workers.iter().take(room) {
            let edge = TopologyEdge { from: lead.id.clone(), to: worker.id.clone(), kind: EdgeKind::Spawn };
            if !edges.contains(&edge) {
                edges.push(edge);
            }
        }
    }
    let routes = base.map(|b| b.routes.clone()).unwrap_or_default();
    let team = base.map(|b| b.team.clone()).unwrap_or_default();
    let topology = validate_desired(&DesiredInput { nodes, edges, routes, team })?;
    let depth = spawn_depth(&topology);
    if depth > input.limits.max_spawn_depth {
        return Err(violation(
            "base",
            format!(
                "the base already spawns {depth} levels deep, over the limit of {}",
                input.limits.max_spawn_depth
            ),
        ));
    }
    Ok(topology)
}

/// Longest SPAWN chain (in edges), ignoring cycles.
pub fn spawn_depth(topology: &Topology) -> usize {
    let children: BTreeMap<&str, Vec<&str>> =
        topology.edges_of(EdgeKind::Spawn).fold(BTreeMap::new(), |mut map, e| {
            map.entry(e.from.as_str()).or_default().push(e.to.as_str());
            map
        });
    fn walk<'a>(node: &'a str, children: &BTreeMap<&'a str, Vec<&'a str>>, path: &mut Vec<&'a str>) -> usize {
        if path.contains(&node) {
            return 0;
        }
        path.push(node);
        let deepest = children
            .get(node)
            .map(|kids| kids.iter().map(|k| 1 + walk(k, children, path)).max().unwrap_or(0))
            .unwrap_or(0);
        path.pop();
        deepest
    }
    topology.nodes.iter().map(|n| walk(&n.agent_id, &children, &mut Vec::new())).max().unwrap_or(0)
}

/// Most SPAWN children of one agent.
pub fn max_children(topology: &Topology) -> usize {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for edge in topology.edges_of(EdgeKind::Spawn) {
        *counts.entry(edge.from.as_str()).or_default() += 1;
    }
    counts.into_values().max().unwrap_or(0)
}

/// How a proposed topology differs from the current desired one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetupDiff {
    pub added_agents: Vec<String>,
    pub removed_agents: Vec<String>,
    pub changed_agents: Vec<String>,
    pub added_edges: Vec<TopologyEdge>,
    pub removed_edges: Vec<TopologyEdge>,
}

/// Compares the proposal with the current desired topology (`None`: nothing desired yet).
pub fn diff_setup(current: Option<&Topology>, proposed: &Topology) -> SetupDiff {
    let empty = Topology::new(vec![], vec![], vec![]);
    let current = current.unwrap_or(&empty);
    let by_id = |t: &Topology| -> BTreeMap<String, TopologyNode> {
        t.nodes.iter().map(|n| (n.agent_id.clone(), n.clone())).collect()
    };
    let (old, new) = (by_id(current), by_id(proposed));
    let old_edges: BTreeSet<&TopologyEdge> = current.edges.iter().collect();
    let new_edges: BTreeSet<&TopologyEdge> = proposed.edges.iter().collect();
    SetupDiff {
        added_agents: new.keys().filter(|id| !old.contains_key(*id)).cloned().collect(),
        removed_agents: old.keys().filter(|id| !new.contains_key(*id)).cloned().collect(),
        changed_agents: new
            .iter()
            .filter(|(id, n)| old.get(*id).is_some_and(|o| o != *n))
            .map(|(id, _)| id.clone())
            .collect(),
        added_edges: new_edges.difference(&old_edges).map(|e| (*e).clone()).collect(),
        removed_edges: old_edges.difference(&new_edges).map(|e| (*e).clone()).collect(),
    }
}

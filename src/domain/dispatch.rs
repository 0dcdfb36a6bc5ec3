//! Dispatch preview: which agent would take a work item, under which lease, and every reason
//! it could not right now.
//!
//! # Guarantees
//! - Pure: facts in, preview out; previewing changes nothing.
//! - Every blocking reason is listed, not only the first.
//! - Target choice is deterministic: the category's roles in order, matched against the
//!   desired topology (or, without one, against observed agent ids); else the default agent.

use chrono::{DateTime, Utc};

use super::Inventory;
use super::classify::{Category, RiskLevel};
use super::lease::Lease;
use super::model::{Severity, TrustLevel};
use super::topology::Topology;
use super::watchdog::WatchdogObservation;

/// Why a dispatch could not happen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BlockCode {
    /// No agent could be chosen at all.
    NoAgent,
    /// Someone else holds the agent's lease.
    LeaseBusy,
    /// An open ERROR/CRITICAL watchdog observation concerns the runtime or the agent.
    CriticalObservation,
    /// The agent is not in the observed runtime (or nothing was observed yet).
    AgentMissing,
    /// The agent's trust is below what the work's risk needs.
    TrustTooLow,
    /// The calling control agent may not dispatch to the agent: it is not that agent and
    /// holds no active delegation from it with the `dispatch` right.
    NoStanding,
}

impl BlockCode {
    /// Returns the UPPER_SNAKE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoAgent => "NO_AGENT",
            Self::LeaseBusy => "LEASE_BUSY",
            Self::CriticalObservation => "CRITICAL_OBSERVATION",
            Self::AgentMissing => "AGENT_MISSING",
            Self::TrustTooLow => "TRUST_TOO_LOW",
            Self::NoStanding => "NO_STANDING",
        }
    }
}

/// One blocking reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub code: BlockCode,
    pub message: String,
}

/// What dispatching would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchPreview {
    pub target_agent_id: Option<String>,
    pub target_role: String,
    /// Why this agent was chosen.
    pub selection: String,
    pub lease_name: Option<String>,
    /// The live holder of that lease, if any (judged by the database clock).
    pub lease_holder: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub required_trust: TrustLevel,
    pub agent_trust: Option<TrustLevel>,
    pub blockers: Vec<Blocker>,
}

impl DispatchPreview {
    /// True when nothing blocks the dispatch.
    pub fn allowed(&self) -> bool {
        self.blockers.is_empty()
    }
}

/// The facts a preview is judged on.
pub struct DispatchFacts<'a> {
    pub category: &'a Category,
    pub risk: RiskLevel,
    pub required_trust: TrustLevel,
    pub runtime: &'a str,
    pub desired: Option<&'a Topology>,
    pub inventory: Option<&'a Inventory>,
    /// Leases by name, as stored.
    pub leases: &'a [Lease],
    pub db_now: DateTime<Utc>,
    /// Watchdog observations (open and cleared).
    pub observations: &'a [WatchdogObservation],
}

/// Returns the dispatch lease of an agent.
pub fn agent_lease(agent_id: &str) -> String {
    format!("agent/{agent_id}")
}

fn choose(facts: &DispatchFacts<'_>) -> Option<(String, String, String, Option<TrustLevel>)> {
    let roles = &facts.category.roles;
    if let Some(desired) = facts.desired {
        for role in roles {
            if let Some(node) = desired.nodes.iter().find(|n| n.role.eq_ignore_ascii_case(role)) {
                let why =
                    format!("first desired agent with role \"{role}\" (category {})", facts.category.id);
                return Some((node.agent_id.clone(), node.role.clone(), why, Some(node.trust)));
            }
        }
        for role in roles {
            if let Some(node) = desired.nodes.iter().find(|n| n.agent_id == *role) {
                let why = format!("desired agent named like role \"{role}\"");
                return Some((node.agent_id.clone(), node.role.clone(), why, Some(node.trust)));
            }
        }
    }
    let inventory = facts.inventory?;
    for role in roles {
        if let Some(agent) = inventory.agents.iter().find(|a| a.id == *role) {
            let why = format!("observed agent named like role \"{role}\" (no desired role matched)");
            return Some((agent.id.clone(), role.clone(), why, Some(agent.effective_trust)));
        }
    }
    let default = inventory.agents.iter().find(|a| a.is_default).or_else(|| inventory.agents.first())?;
    let trust = facts
        .desired
        .and_then(|d| d.nodes.iter().find(|n| n.agent_id == default.id))
        .map(|n| n.trust)
        .unwrap_or(default.effective_trust);
    Some((
        default.id.clone(),
        String::new(),
        "the runtime's default agent (no role matched)".to_owned(),
        Some(trust),
    ))
}

/// Previews dispatching work of this category and risk.
pub fn preview_dispatch(facts: &DispatchFacts<'_>) -> DispatchPreview {
    let mut blockers = Vec::new();
    let Some((agent_id, role, selection, agent_trust)) = choose(facts) else {
        return DispatchPreview {
            target_agent_id: None,
            target_role: String::new(),
            selection: "no desired topology and no observed agent".to_owned(),
            lease_name: None,
            lease_holder: None,
            lease_expires_at: None,
            required_trust: facts.required_trust,
            agent_trust: None,
            blockers: vec![Blocker {
                code: BlockCode::NoAgent,
                message: format!("no agent can take {} work: nothing desired or observed", facts.category.id),
            }],
        };
    };
    let lease_name = agent_lease(&agent_id);
    let live = facts
        .leases
        .iter()
        .find(|l| l.name == lease_name)
        .and_then(|l| l.live_holder(facts.db_now).map(|holder| (holder.to_owned(), l.expires_at)));
    if let Some((holder, expires)) = &live {
        blockers.push(Blocker {
            code: BlockCode::LeaseBusy,
            message: format!(
                "lease {lease_name} is held by {holder} until {}",
                expires.map(|e| e.to_rfc3339()).unwrap_or_default()
            ),
        });
    }
    for observation in facts.observations.iter().filter(|o| o.cleared_at.is_none()) {
        let finding = &observation.finding;
        let concerns =
            finding.subject == facts.runtime || finding.subject == agent_id || finding.subject == lease_name;
        if concerns && finding.severity >= Severity::Error {
            blockers.push(Blocker {
                code: BlockCode::CriticalObservation,
                message: format!("open watchdog observation {}: {}", finding.key, finding.message),
            });
        }
    }
    match facts.inventory {
        None => blockers.push(Blocker {
            code: BlockCode::AgentMissing,
            message: format!(
                "{} has not been observed yet, so {agent_id} cannot be confirmed",
                facts.runtime
            ),
        }),
        Some(inventory) if !inventory.agents.iter().any(|a| a.id == agent_id) => blockers.push(Blocker {
            code: BlockCode::AgentMissing,
            message: format!("agent {agent_id} is not in the observed runtime {}", facts.runtime),
        }),
        Some(_) => {}
    }
    if let Some(trust) = agent_trust
        && trust < facts.required_trust
    {
        blockers.push(Blocker {
            code: BlockCode::TrustTooLow,
            message: format!(
                "{} risk needs trust {} or higher; {agent_id} has {}",
                facts.risk.as_str(),
                facts.required_trust.as_str(),
                trust.as_str()
            ),
        });
    }
    let (lease_holder, lease_expires_at) = match live {
        Some((holder, expires)) => (Some(holder), expires),
        None => (None, None),
    };
    DispatchPreview {
        target_agent_id: Some(agent_id),
        target_role: role,
        selection,
        lease_name: Some(lease_name),
        lease_holder,
        lease_expires_at,
        required_trust: facts.required_trust,
        agent_trust,
        blockers,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::classify::Rules;
    use crate::domain::lease::acquire;
    use crate::domain::topology::TopologyNode;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn node(id: &str, role: &str, trust: TrustLevel) -> TopologyNode {
        TopologyNode {
            agent_id: id.into(),
            role: role.into(),
            trust,
            model: None,
            tools_profile: None,
            workspace: format!("workspace-{id}"),
            pins: Default::default(),
        }
    }

    fn desired(nodes: Vec<TopologyNode>) -> Topology {
        Topology { nodes, edges: vec![], routes: vec![], team: Default::default(), revision: "r".into() }
    }

    fn facts<'a>(
        rules: &'a Rules,
        category: &str,
        risk: RiskLevel,
        desired: Option<&'a Topology>,
        leases: &'a [Lease],
    ) -> DispatchFacts<'a> {
        DispatchFacts {
            category: rules.category(category).unwrap(),
            risk,
            required_trust: rules.required_trust(risk),
            runtime: "fixture:trio",
            desired,
            inventory: None,
            leases,
            db_now: t(0),
            observations: &[],
        }
    }

    #[test]
    fn the_first_role_of_the_category_picks_the_agent() {
        let rules = Rules::default_rules();
        let team = desired(vec![
            node("lead", "lead", TrustLevel::Standard),
            node("dev", "implementer", TrustLevel::Standard),
        ]);
        let preview = preview_dispatch(&facts(&rules, "bug_fix", RiskLevel::Medium, Some(&team), &[]));
        assert_eq!(preview.target_agent_id.as_deref(), Some("dev"));
        assert_eq!(preview.lease_name.as_deref(), Some("agent/dev"));
        let research = preview_dispatch(&facts(&rules, "research", RiskLevel::Low, Some(&team), &[]));
        assert_eq!(research.target_agent_id.as_deref(), Some("lead"), "falls back to the lead role");
    }

    #[test]
    fn every_blocking_reason_is_listed() {
        let rules = Rules::default_rules();
        let team = desired(vec![node("dev", "implementer", TrustLevel::Restricted)]);
        let leases = [acquire(&Lease::vacant("agent/dev"), "other-agent", 60, t(-10)).unwrap()];
        let preview = preview_dispatch(&facts(&rules, "bug_fix", RiskLevel::Critical, Some(&team), &leases));
        let codes: Vec<BlockCode> = preview.blockers.iter().map(|b| b.code).collect();
        assert_eq!(codes, [BlockCode::LeaseBusy, BlockCode::AgentMissing, BlockCode::TrustTooLow]);
        assert_eq!(preview.lease_holder.as_deref(), Some("other-agent"));
        assert!(!preview.allowed());
    }

    #[test]
    fn an_expired_lease_does_not_block() {
        let rules = Rules::default_rules();
        let team = desired(vec![node("dev", "implementer", TrustLevel::Elevated)]);
        let leases = [acquire(&Lease::vacant("agent/dev"), "other-agent", 5, t(-10)).unwrap()];
        let preview = preview_dispatch(&facts(&rules, "bug_fix", RiskLevel::Low, Some(&team), &leases));
        assert!(preview.blockers.iter().all(|b| b.code != BlockCode::LeaseBusy));
        assert_eq!(preview.lease_holder, None);
    }

    #[test]
    fn nothing_to_dispatch_to_is_a_blocker() {
        let rules = Rules::default_rules();
        let preview = preview_dispatch(&facts(&rules, "writing", RiskLevel::Low, None, &[]));
        assert_eq!(preview.blockers[0].code, BlockCode::NoAgent);
        assert_eq!(preview.target_agent_id, None);
    }
}

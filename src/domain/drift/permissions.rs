//! Drift of pinned permissions: what a desired team pins (per agent and team-wide) against
//! what the runtime resolves to. A runtime that grants more than the pin is
//! `PERMISSION_WIDENED` (critical); one that differs otherwise (narrower, or just another
//! value) is `PERMISSION_CHANGED`.
//!
//! Keys: `PERMISSION_WIDENED/<agent>:<what>`, `PERMISSION_CHANGED/<agent>:<what>`, with
//! `<what>` one of `tools_allow`, `tools_deny`, `sandbox_mode`, `workspace_access`,
//! `elevated`; team pins use `team:agent_to_agent` and `team:sessions_visibility`.

use super::{DriftDifference, DriftKind};
use crate::domain::inventory::{Inventory, InventoryAgent};
use crate::domain::model::Severity;
use crate::domain::permissions::tools::{list_grants, normalise};
use crate::domain::topology::{PermissionPins, TeamPins, Topology};

fn widened(subject: String, explanation: String) -> DriftDifference {
    DriftDifference::new(DriftKind::PermissionWidened, Severity::Critical, subject, explanation)
}

fn changed(subject: String, explanation: String) -> DriftDifference {
    DriftDifference::new(DriftKind::PermissionChanged, Severity::Warning, subject, explanation)
}

/// Rank of a setting from narrowest to widest; unknown values rank widest.
fn rank(order: &[&str], value: &str) -> usize {
    order.iter().position(|v| *v == value).unwrap_or(order.len())
}

/// Returns the permission differences of `inventory` against the pins of `desired`.
pub fn permission_items(desired: &Topology, inventory: &Inventory) -> Vec<DriftDifference> {
    let mut out = Vec::new();
    for node in desired.nodes.iter().filter(|n| !n.pins.is_empty()) {
        if let Some(agent) = inventory.agent(&node.agent_id) {
            agent_items(&node.pins, agent, &mut out);
        }
    }
    team_items(&desired.team, inventory, &mut out);
    out
}

fn agent_items(pins: &PermissionPins, agent: &InventoryAgent, out: &mut Vec<DriftDifference>) {
    let id = &agent.id;
    let access = &agent.access;
    if let Some(allow) = &pins.tools_allow {
        let outside: Vec<&String> =
            access.effective_tools.iter().filter(|t| !list_grants(allow, t)).collect();
        let own: std::collections::BTreeSet<String> =
            agent.tools.allow.iter().map(|e| normalise(e)).collect();
        let pinned: std::collections::BTreeSet<String> = allow.iter().map(|e| normalise(e)).collect();
        if !outside.is_empty() {
            let names: Vec<&str> = outside.iter().map(|s| s.as_str()).collect();
            out.push(widened(
                format!("{id}:tools_allow"),
                format!("agent \"{id}\" can use {} outside its pinned allow list", names.join(", ")),
            ));
        } else if own != pinned {
            out.push(changed(
                format!("{id}:tools_allow"),
                format!("agent \"{id}\" has another tools.allow than pinned"),
            ));
        }
    }
    if let Some(deny) = &pins.tools_deny {
        let own: Vec<String> = agent.tools.deny.iter().map(|e| normalise(e)).collect();
        let missing: Vec<&String> = deny.iter().filter(|entry| !own.contains(&normalise(entry))).collect();
        let reopened: Vec<&String> = access
            .effective_tools
            .iter()
            .filter(|tool| deny.iter().any(|entry| list_grants(std::slice::from_ref(entry), tool)))
            .collect();
        if !reopened.is_empty() {
            let names: Vec<&str> = reopened.iter().map(|s| s.as_str()).collect();
            out.push(widened(
                format!("{id}:tools_deny"),
                format!("agent \"{id}\" can use {}, which its pins deny", names.join(", ")),
            ));
        } else if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            out.push(changed(
                format!("{id}:tools_deny"),
                format!("agent \"{id}\"'s own deny list lacks {} (denied elsewhere)", names.join(", ")),
            ));
        }
    }
    // Sandbox modes from the least contained to the most; workspace access the other way.
    setting_item(
        id,
        "sandbox_mode",
        &pins.sandbox_mode,
        &access.sandbox.mode,
        &["all", "non-main", "off"],
        out,
    );
    setting_item(
        id,
        "workspace_access",
        &pins.workspace_access,
        &access.sandbox.workspace_access,
        &["none", "ro", "rw"],
        out,
    );
    if let Some(pin) = &pins.elevated {
        let wider = if pin.enabled {
            access.elevated.allow_from.iter().any(|sender| !pin.allow_from.contains(sender))
        } else {
            access.elevated.usable
        };
        let differs =
            if pin.enabled { access.elevated.allow_from != pin.allow_from } else { access.elevated.enabled };
        let subject = format!("{id}:elevated");
        if wider {
            out.push(widened(subject, format!("agent \"{id}\" may use elevated exec beyond its pin")));
        } else if differs {
            out.push(changed(subject, format!("agent \"{id}\"'s elevated exec differs from its pin")));
        }
    }
}

/// A pinned setting ordered from narrowest to widest: wider than pinned is a widening.
fn setting_item(
    id: &str,
    what: &str,
    pin: &Option<String>,
    actual: &str,
    order: &[&str],
    out: &mut Vec<DriftDifference>,
) {
    let Some(pin) = pin else { return };
    if actual == pin {
        return;
    }
    let subject = format!("{id}:{what}");
    let explanation = format!("agent \"{id}\" has {what} \"{actual}\", pinned \"{pin}\"");
    if rank(order, actual) > rank(order, pin) {
        out.push(widened(subject, explanation));
    } else {
        out.push(changed(subject, explanation));
    }
}

fn team_items(team: &TeamPins, inventory: &Inventory, out: &mut Vec<DriftDifference>) {
    let a2a = &inventory.agent_to_agent;
    let open = a2a.enabled && (a2a.allow.is_empty() || a2a.allow.iter().any(|e| e.trim() == "*"));
    if team.closed_agent_to_agent && open && inventory.agents.len() > 1 {
        out.push(widened(
            "team:agent_to_agent".to_owned(),
            "tools.agentToAgent lets every agent reach every other (no explicit allow list): an agent added \
             later joins the clique on its own"
                .to_owned(),
        ));
    }
    if let Some(pin) = &team.sessions_visibility {
        let order = ["self", "tree", "agent", "all"];
        let actual = &a2a.sessions_visibility;
        if actual != pin {
            let subject = "team:sessions_visibility".to_owned();
            let explanation = format!("tools.sessions.visibility is \"{actual}\", pinned \"{pin}\"");
            if rank(&order, actual) > rank(&order, pin) {
                out.push(widened(subject, explanation));
            } else {
                out.push(changed(subject, explanation));
            }
        }
    }
}

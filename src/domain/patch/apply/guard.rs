//! Step 4 of an apply plan: never widen by accident.
//!
//! The document the plan writes is resolved exactly as observation resolves the runtime, and
//! the plan is refused when that result
//! - grants a SEND or SPAWN pair the desired team does not have;
//! - puts an agent above its desired trust when it was within it before (or above where it
//!   was);
//! - gives an agent a tool it did not have, unless the plan granted it on purpose (a
//!   `sessions_send` / `sessions_spawn` a desired edge needs) or the desired team sets that
//!   agent's tool policy (profile or pinned lists) — a new agent's tools are its profile's;
//! - widens a pinned permission that was not already wider before the change.

use std::collections::BTreeSet;

use super::Draft;
use crate::domain::drift::{DriftKind, permission_items};
use crate::domain::inventory::Inventory;
use crate::domain::patch::PlanError;
use crate::domain::topology::derive_topology;

pub(super) fn never_widens(draft: &Draft<'_>, predicted: &Inventory) -> Result<(), PlanError> {
    let observed = draft.ctx.inventory;
    let wanted: BTreeSet<_> = draft.desired.edges.iter().collect();
    let after = derive_topology(predicted);
    let extra: Vec<String> = after
        .edges
        .iter()
        .filter(|e| !wanted.contains(e))
        .map(|e| format!("{} {} → {}", e.kind.as_str(), e.from, e.to))
        .collect();
    if !extra.is_empty() {
        return Err(refusal(format!("grant {}, which the desired team does not have", extra.join(", "))));
    }
    for agent in &predicted.agents {
        let Some(node) = draft.nodes.get(agent.id.as_str()) else { continue };
        let before = observed.agent(&agent.id);
        let was = before.map(|a| a.access.trust);
        if agent.access.trust > node.trust
            && was.is_none_or(|was| agent.access.trust > was || was <= node.trust)
        {
            return Err(refusal(format!(
                "leave agent {} at trust {} (desired {})",
                agent.id,
                agent.access.trust.as_str(),
                node.trust.as_str()
            )));
        }
        let Some(before) = before else { continue };
        if draft.repoliced.contains(&agent.id) {
            continue;
        }
        let granted = draft.granted.get(&agent.id);
        let new_tools: Vec<&String> = agent
            .access
            .effective_tools
            .iter()
            .filter(|t| !before.access.effective_tools.contains(t) && granted.is_none_or(|g| !g.contains(*t)))
            .collect();
        if !new_tools.is_empty() {
            let names: Vec<&str> = new_tools.iter().map(|s| s.as_str()).collect();
            return Err(refusal(format!("give agent {} {} it did not have", agent.id, names.join(", "))));
        }
    }
    let widened_before: BTreeSet<String> = permission_items(draft.desired, observed)
        .into_iter()
        .filter(|d| d.kind == DriftKind::PermissionWidened)
        .map(|d| d.key)
        .collect();
    if let Some(item) = permission_items(draft.desired, predicted)
        .into_iter()
        .find(|d| d.kind == DriftKind::PermissionWidened && !widened_before.contains(&d.key))
    {
        return Err(refusal(format!("widen a pinned permission ({})", item.explanation)));
    }
    Ok(())
}

fn refusal(what: String) -> PlanError {
    PlanError::Unsupported(format!("refused: after this patch OpenClaw would {what} (jhf-warp never widens)"))
}

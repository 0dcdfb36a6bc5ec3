//! Planning the change that brings a runtime to a desired topology.
//!
//! A plan is built in steps on a copy of the config, and every step that depends on what
//! OpenClaw will make of the result asks [`crate::domain::permissions`] about the document as
//! it stands (the same resolution observation uses):
//! 1. the roster and each agent's plain settings (model, profile, workspace, pinned
//!    permissions), bindings;
//! 2. trust bounds, by narrowing only (sandbox, exec host, elevated, workspace access, host
//!    tools), until each agent's resolved trust is within its desired trust;
//! 3. the SEND clique (`tools.agentToAgent`, visibility, `sessions_send` grants and denies) and
//!    the SPAWN lists;
//! 4. the guard: the resolved result after the change must grant no SEND or SPAWN pair, no
//!    trust level and no tool beyond what the desired team asks for or the runtime already
//!    had. A plan that would is refused, saying what it would have granted — so, e.g.,
//!    removing the last agent of an `allow` list writes `enabled: false` instead of leaving an
//!    empty list that OpenClaw reads as "every pair".

mod access;
mod guard;
mod roster;
mod settings;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{PatchPlan, PatchShape, PlanContext, PlanError, PlanKind, finish, merge};
use crate::domain::drift::{DriftDifference, diff_topologies, permission_items};
use crate::domain::expressibility::express;
use crate::domain::findings::FindingKind;
use crate::domain::inventory::Inventory;
use crate::domain::model::RosterShape;
use crate::domain::openclaw::{ParsedConfig, parse_config};
use crate::domain::topology::{EdgeKind, Topology, TopologyNode, derive_topology};

pub(super) use settings::object_at;

/// A plan in the making: the target document and what was done to it.
struct Draft<'a> {
    ctx: &'a PlanContext<'a>,
    desired: &'a Topology,
    nodes: BTreeMap<&'a str, &'a TopologyNode>,
    parsed: ParsedConfig,
    root: Map<String, Value>,
    list_shape: bool,
    removed: BTreeSet<String>,
    ops: Vec<String>,
    warnings: Vec<String>,
    workspaces: Vec<String>,
    /// Tools the plan grants on purpose, per agent (the guard accepts them).
    granted: BTreeMap<String, BTreeSet<String>>,
    /// Agents whose tool policy the desired team sets (profile or pinned lists): the guard
    /// holds them to that policy instead of to what they had.
    repoliced: BTreeSet<String>,
}

impl<'a> Draft<'a> {
    /// Re-derives the inventory the document as it stands would produce.
    fn predict(&self) -> Inventory {
        self.ctx.predict(&Value::Object(self.root.clone()), &self.workspaces)
    }

    fn note_grant(&mut self, agent: &str, tool: &str) {
        self.granted.entry(agent.to_owned()).or_default().insert(tool.to_owned());
    }
}

/// Plans the change from the observed runtime to `desired`.
pub fn plan_apply(
    ctx: &PlanContext<'_>,
    desired_generation: i64,
    desired: &Topology,
) -> Result<PatchPlan, PlanError> {
    let parsed = plannable(ctx)?;
    let list_shape = roster_shape(ctx, &parsed)?;
    let sends: BTreeSet<(String, String)> =
        desired.edges_of(EdgeKind::Send).map(|e| (e.from.clone(), e.to.clone())).collect();
    let policy = express(&sends).ok_or_else(|| {
        PlanError::Unsupported("the desired SEND set is not expressible in OpenClaw".to_owned())
    })?;
    let mut draft = Draft {
        ctx,
        desired,
        nodes: desired.nodes.iter().map(|n| (n.agent_id.as_str(), n)).collect(),
        root: parsed.root.clone(),
        parsed,
        list_shape,
        removed: BTreeSet::new(),
        ops: Vec::new(),
        warnings: Vec::new(),
        workspaces: Vec::new(),
        granted: BTreeMap::new(),
        repoliced: BTreeSet::new(),
    };
    draft.reshape_roster();
    draft.plan_bindings();
    draft.bound_trust();
    draft.express_sends(&policy)?;
    draft.express_spawns()?;
    draft.finish(desired_generation)
}

/// The drift of an inventory against a desired topology: graph and pinned permissions.
fn desired_drift(desired: &Topology, inventory: &Inventory) -> Vec<DriftDifference> {
    let mut items = diff_topologies(desired, &derive_topology(inventory));
    items.extend(permission_items(desired, inventory));
    items
}

/// Refuses configs no apply plan may touch.
fn plannable(ctx: &PlanContext<'_>) -> Result<ParsedConfig, PlanError> {
    let inventory = ctx.inventory;
    if inventory.findings.iter().any(|f| f.kind == FindingKind::ConfigUnreadable) {
        return Err(PlanError::ConfigUnreadable);
    }
    if !inventory.config_valid {
        return Err(PlanError::ConfigInvalid {
            findings: inventory.findings.iter().map(|f| f.key.clone()).collect(),
        });
    }
    parse_config(ctx.raw_config).map_err(|_| PlanError::ConfigUnreadable)
}

/// Whether the plan writes the legacy list shape (only jhf-warp's own writes keep it).
fn roster_shape(ctx: &PlanContext<'_>, parsed: &ParsedConfig) -> Result<bool, PlanError> {
    match (ctx.shape, parsed.shape) {
        (PatchShape::Entries, RosterShape::List) => Err(PlanError::Unsupported(
            "the config uses the legacy agents.list roster, which the OpenClaw CLI rewrites on its first write; \
             migrate it first (e.g. `openclaw doctor --fix`), then plan again"
                .to_owned(),
        )),
        (_, shape) => Ok(shape == RosterShape::List),
    }
}

impl Draft<'_> {
    /// Predicts the result, holds it to the guard and assembles the plan.
    fn finish(mut self, desired_generation: i64) -> Result<PatchPlan, PlanError> {
        let original = Value::Object(self.parsed.root.clone());
        let target = Value::Object(self.root.clone());
        let merge_patch = merge::diff(&original, &target).unwrap_or_else(|| json!({}));
        let replace_paths = merge::shrinking_arrays(&original, &target);
        self.workspaces.sort();
        let predicted = self.predict();
        if !predicted.config_valid {
            let issues: Vec<String> =
                predicted.config_issues.iter().map(|i| format!("{}: {}", i.path, i.message)).collect();
            return Err(PlanError::Unsupported(format!(
                "the planned config would be invalid ({})",
                issues.join("; ")
            )));
        }
        guard::never_widens(&self, &predicted)?;
        let inventory = self.ctx.inventory;
        let before: BTreeSet<String> =
            desired_drift(self.desired, inventory).into_iter().map(|d| d.key).collect();
        let remaining = desired_drift(self.desired, &predicted);
        for item in &remaining {
            self.warnings.push(format!("after this patch {} still differs: {}", item.key, item.explanation));
        }
        let remaining: BTreeSet<String> = remaining.into_iter().map(|d| d.key).collect();
        Ok(finish(PatchPlan {
            id: String::new(),
            kind: PlanKind::Apply,
            base_hash: inventory.config_hash.clone(),
            desired_generation,
            merge_patch,
            replace_paths,
            operations: self.ops,
            guards: Vec::new(),
            warnings: self.warnings,
            create_workspaces: self.workspaces,
            expected_resolved: before.difference(&remaining).cloned().collect(),
            needs_restart: false,
            removed_agents: self.removed.into_iter().collect(),
        }))
    }
}

//! Patch planning: from a desired topology (or, for a broken config, a repair) to a guarded
//! OpenClaw change — a JSON merge patch plus everything needed to apply it safely.
//!
//! # Guarantees
//! - Pure and deterministic: the same config, inventory and desired revision give the same plan
//!   (and the same plan id).
//! - Narrowing only where the request is silent: trust bounds are enforced by tightening the
//!   sandbox and switching elevated tools off, never by loosening anything the desired topology
//!   did not ask for.
//! - Apply plans are refused while the config is invalid; only a repair plan is allowed then,
//!   and a repair never restores a `.bak` file.
//! - Each plan predicts its own outcome (the patch is applied in memory and re-derived), so it
//!   knows which drift items it resolves and warns about those it cannot.

mod apply;
pub mod gateway;
pub mod merge;
mod repair;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::inventory::{Inventory, RuntimeFacts, StateLayout, build_inventory};

pub use apply::plan_apply;
pub use repair::plan_repair;

/// What a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanKind {
    /// Bring the runtime to a desired revision.
    Apply,
    /// Fix a broken config (allowed while it is invalid).
    Repair,
}

/// How the patch addresses the roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchShape {
    /// The file's own shape (fixture mode: jhf-warp writes the file itself).
    FileShape,
    /// Keyed `agents.entries` (the real CLI always writes this shape).
    Entries,
}

/// A guarded change to an OpenClaw config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchPlan {
    /// sha256 of the plan's content; equal inputs give equal ids.
    pub id: String,
    pub kind: PlanKind,
    /// `config_hash` the patch was computed against; applying needs it unchanged.
    pub base_hash: String,
    /// Desired generation the plan implements (0 for a repair).
    pub desired_generation: i64,
    /// The JSON merge patch (`{}` when nothing needs to change).
    pub merge_patch: Value,
    /// Arrays the patch shrinks (the gateway needs them named to accept it).
    pub replace_paths: Vec<String>,
    /// Human-readable operations, in order.
    pub operations: Vec<String>,
    /// Conditions checked before writing.
    pub guards: Vec<String>,
    pub warnings: Vec<String>,
    /// Workspace directories to create after the config is written.
    pub create_workspaces: Vec<String>,
    /// Drift item keys that must be gone after the patch (verification).
    pub expected_resolved: Vec<String>,
    /// True when the patch touches keys that need a gateway restart (`gateway.*`).
    pub needs_restart: bool,
    /// Agents the plan removes (CLI runtimes delete them with `openclaw agents delete`).
    #[serde(default)]
    pub removed_agents: Vec<String>,
}

impl PatchPlan {
    /// Returns true when the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.merge_patch.as_object().is_some_and(|patch| patch.is_empty())
            && self.create_workspaces.is_empty()
    }
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the runtime config is invalid; only a repair plan is allowed (findings: {})", .findings.join(", "))]
    ConfigInvalid { findings: Vec<String> },
    #[error(
        "the runtime config cannot be parsed; fix it by hand (jhf-warp never restores backups on its own)"
    )]
    ConfigUnreadable,
    #[error("{0}")]
    Unsupported(String),
}

/// What planning reads.
pub struct PlanContext<'a> {
    /// The raw config text the inventory was built from.
    pub raw_config: &'a str,
    pub inventory: &'a Inventory,
    pub shape: PatchShape,
}

impl PlanContext<'_> {
    fn layout(&self) -> StateLayout {
        let state_dir =
            self.inventory.config_path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("").to_owned();
        StateLayout { state_dir, home_dir: None }
    }

    /// Re-derives the inventory the target document would produce, assuming the plan's
    /// workspaces get created and every other fact stays as observed.
    fn predict(&self, target: &Value, created: &[String]) -> Inventory {
        let text = serde_json::to_string_pretty(target).unwrap_or_default();
        let mut facts = RuntimeFacts {
            config_path: self.inventory.config_path.clone(),
            layout: self.layout(),
            openclaw_version: self.inventory.openclaw_version.clone(),
            ..RuntimeFacts::default()
        };
        for agent in &self.inventory.agents {
            if agent.workspace_exists {
                facts.existing_workspaces.insert(agent.workspace.clone());
            }
            facts.session_stores.insert(agent.id.clone(), agent.session_activity.clone());
        }
        facts.existing_workspaces.extend(created.iter().cloned());
        facts.rejected_writes = self
            .inventory
            .findings
            .iter()
            .filter(|f| f.kind == super::findings::FindingKind::RejectedWritePresent)
            .map(|f| f.subject.clone())
            .collect();
        build_inventory(&text, &facts)
    }
}

/// Fills in the plan id from its content.
fn finish(mut plan: PatchPlan) -> PatchPlan {
    plan.replace_paths.sort();
    let content = serde_json::json!([
        plan.kind,
        plan.base_hash,
        plan.desired_generation,
        plan.merge_patch,
        plan.replace_paths,
        plan.create_workspaces,
    ]);
    plan.id = hex::encode(&Sha256::digest(content.to_string().as_bytes())[..16]);
    plan.needs_restart = plan.merge_patch.get("gateway").is_some();
    plan.guards = vec![
        format!("runtime config hash is still {}", plan.base_hash),
        match plan.kind {
            PlanKind::Apply => "runtime config is valid".to_owned(),
            PlanKind::Repair => "repair plan: allowed on an invalid config".to_owned(),
        },
        "dry run accepted by the runtime".to_owned(),
        "at most 30 config writes per minute per runtime".to_owned(),
    ];
    if plan.needs_restart {
        plan.warnings.push("the patch touches gateway settings: the gateway needs a restart".to_owned());
    }
    plan
}

#[cfg(test)]
mod tests;

mod progress;
pub use progress::{WriteProgress, write_progress};

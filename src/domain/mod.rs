//! The model and all decision logic, as pure functions: no tonic, no sea-orm, no IO.
//!
//! Everything here is unit-tested next to the code. Adapters (`runtime/`) gather facts from the
//! outside world and hand them in; callers (`control/`) persist and serve the results.

pub mod access;
pub mod audit;
pub mod catalog;
pub mod classify;
pub mod delegation;
pub mod desired;
pub mod dispatch;
pub mod drift;
pub mod expressibility;
pub mod findings;
pub mod fleet;
pub mod glob;
pub mod idempotency;
pub mod inventory;
pub mod lease;
pub mod model;
pub mod observation;
pub mod openclaw;
pub mod outbound;
pub mod page_token;
pub mod patch;
pub mod permissions;
pub mod persistent;
pub mod picture;
pub mod reconcile;
pub mod rollout;
pub mod schedule;
pub mod setup;
pub mod topology;
pub mod watchdog;
pub mod workspace;

pub use findings::{Finding, FindingKind};
pub use inventory::{Inventory, InventoryAgent, RuntimeFacts, build_inventory};
pub use model::{RosterShape, SandboxMode, Severity, TrustLevel};
pub use topology::{EdgeKind, Topology, derive_topology};

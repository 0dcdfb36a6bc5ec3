//! The application context: what every service shares (kube-rs calls it `Context`). Services
//! take one `Ctx` instead of five to eight cloned handles, so adding a shared handle touches
//! this file and the builder, not every constructor.

use std::sync::Arc;

use super::Readiness;
use super::clock::Clock;
use super::events::EventBus;
use super::failpoints::Failpoints;
use super::snapshot::Snapshot;
use crate::domain::page_token::PageTokenCodec;
use crate::runtime::RuntimeAdapter;
use crate::store::Store;

/// Shared handles of the application services. Cloning is cheap (every field is a handle).
#[derive(Clone)]
pub struct Ctx {
    /// The database.
    pub store: Store,
    /// Where the application reads time (a manual clock in tests).
    pub clock: Arc<dyn Clock>,
    /// In-process change notifications (watch streams, snapshots).
    pub events: EventBus,
    /// Signs and checks page tokens with the cluster's shared secret.
    pub page_tokens: PageTokenCodec,
    /// Readiness per component, published to health, `/ready` and `GetReadiness`.
    pub readiness: Readiness,
    /// The OpenClaw runtime this replica manages.
    pub runtime: Arc<dyn RuntimeAdapter>,
    /// Test failpoints (none enabled in production).
    pub failpoints: Failpoints,
    /// The in-memory view of hot state the read RPCs answer from.
    pub snapshot: Snapshot,
    /// Process metrics (RPCs, runtime operations, rollouts).
    pub telemetry: crate::telemetry::Telemetry,
}

impl Ctx {
    /// Returns the configured runtime address, e.g. `fixture:trio`.
    pub fn runtime_address(&self) -> &str {
        self.runtime.address()
    }
}

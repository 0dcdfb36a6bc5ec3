//! The application context: what every service shares (kube-rs calls it `Context`). Services
//! take one `Ctx` instead of five to eight cloned handles, so adding a shared handle touches
//! this file and the builder, not every constructor.

use std::sync::Arc;

use super::Readiness;
use super::clock::Clock;
use super::events::EventBus;
use super::failpoints::Failpoints;
use super::lease_cache::LeaseCache;
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
    /// The runtime these services manage (deployment-wide services get
    /// [`crate::runtime::NoRuntime`] and never touch it).
    pub runtime: Arc<dyn RuntimeAdapter>,
    /// The runtime's name: the key of its rows, leases and events.
    pub runtime_name: Arc<str>,
    /// The leases as this replica last saw them, shared by every runtime.
    pub leases: LeaseCache,
    /// Test failpoints (none enabled in production).
    pub failpoints: Failpoints,
    /// The in-memory view of hot state the read RPCs answer from.
    pub snapshot: Snapshot,
    /// Process metrics (RPCs, runtime operations, rollouts).
    pub telemetry: crate::telemetry::Telemetry,
}

impl Ctx {
    /// The runtime's name, e.g. `default`.
    pub fn runtime_name(&self) -> &str {
        &self.runtime_name
    }

    /// The same context for another runtime: its adapter, name, snapshot and event bus (the
    /// store, clock, caches and settings stay shared).
    pub fn for_runtime(&self, name: &str, runtime: Arc<dyn RuntimeAdapter>) -> Self {
        Self {
            runtime,
            runtime_name: Arc::from(name),
            snapshot: Snapshot::new(name),
            events: EventBus::default(),
            ..self.clone()
        }
    }
}

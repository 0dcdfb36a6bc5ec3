//! The fleet: every runtime this deployment manages, each with its own services (a *cell*),
//! built on every replica from the runtime registry in the store.
//!
//! Every replica holds a cell per registered runtime and answers reads and writes for any of
//! them (reads from the cell's snapshot, writes through the store); the *background work* of a
//! runtime — periodic observation, the rollout worker, the watchdog, the reconcile loop — runs
//! only on the replica that owns it ([`balance`]: a fenced owner lease per runtime, runtimes
//! shared out fairly). Cells follow the registry: a runtime registered on one replica appears
//! on the others through the change feed (or the periodic re-check on SQLite).
//!
//! # Guarantees
//! - A request names its runtime; an empty name means the only runtime when exactly one
//!   exists. An unknown name is NOT_FOUND, an ambiguous empty one INVALID_ARGUMENT naming the
//!   choices.
//! - A runtime whose adapter cannot start (an unreachable SSH host, a missing token file) gets
//!   a cell whose every read fails with the reason — reported UNREACHABLE on its own — and the
//!   adapter is tried again every [`ADAPTER_RETRY`]; no other runtime waits for it.

pub mod balance;
mod follow;
pub mod registry;
pub mod rollouts;
pub mod views;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::services::{Globals, RuntimeSettings, Services};
use super::{AppError, Ctx};
use crate::domain::desired::FieldViolation;
use crate::domain::fleet::{RegisteredRuntime, RuntimeSpec, is_valid_runtime_name};
use crate::runtime::{RuntimeAdapter, RuntimeMode, UnavailableRuntime};

pub use follow::follow;

/// How often a runtime whose adapter could not start is tried again.
pub const ADAPTER_RETRY: Duration = Duration::from_secs(30);
/// Most runtime names an error message lists.
const NAMES_LISTED: usize = 20;

/// Builds a runtime's adapter from its definition (the application knows how: the CLI path,
/// the SSH identity, the data dir, where tokens are read from).
#[async_trait]
pub trait RuntimeFactory: Send + Sync + 'static {
    /// The adapter, or why it cannot start (safe to show: never the credential).
    async fn build(&self, spec: &RuntimeSpec) -> Result<Arc<dyn RuntimeAdapter>, String>;

    /// Whether the definition's credential can be read on this host: a token file that exists,
    /// is a regular file readable by its owner only and not empty, or a token variable that is
    /// set. The answer names the problem, never the secret.
    fn check_credential(&self, spec: &RuntimeSpec) -> Result<(), String>;
}

/// One runtime of the fleet on this replica.
pub struct Cell {
    pub runtime: RegisteredRuntime,
    pub services: Services,
    /// Why the adapter is a stand-in that fails every call, when it is.
    pub adapter_error: Option<String>,
    /// When the adapter was built (a stand-in is rebuilt after [`ADAPTER_RETRY`]).
    built_at: tokio::time::Instant,
}

impl Cell {
    pub fn name(&self) -> &str {
        &self.runtime.spec.name
    }
}

/// A record addressed by id, whose runtime a request may leave out.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    Rollout(&'a str),
    Plan(&'a str),
}

/// What changed in the fleet, for the fleet watch stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetChange {
    /// A runtime was registered or its definition changed.
    Upserted(String),
    Removed(String),
}

struct Inner {
    globals: Globals,
    settings: RuntimeSettings,
    factory: Arc<dyn RuntimeFactory>,
    cells: RwLock<BTreeMap<String, Arc<Cell>>>,
    changes: broadcast::Sender<FleetChange>,
    /// Serialises cell (re)builds: two syncs never build the same runtime's adapter twice.
    building: tokio::sync::Mutex<()>,
}

/// The runtimes of the deployment, as cells. Cheap to clone.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

impl Fleet {
    /// An empty fleet; [`Fleet::sync`] fills it from the registry.
    pub fn new(globals: Globals, settings: RuntimeSettings, factory: Arc<dyn RuntimeFactory>) -> Self {
        Self {
            inner: Arc::new(Inner {
                globals,
                settings,
                factory,
                cells: RwLock::default(),
                changes: broadcast::channel(1024).0,
                building: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The deployment-wide services.
    pub fn globals(&self) -> &Globals {
        &self.inner.globals
    }

    /// The deployment-wide context.
    pub fn ctx(&self) -> &Ctx {
        &self.inner.globals.ctx
    }

    /// Every cell, by name.
    pub fn cells(&self) -> Vec<Arc<Cell>> {
        self.inner.cells.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// One cell by name.
    pub fn cell(&self, name: &str) -> Option<Arc<Cell>> {
        self.inner.cells.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// How many runtimes the fleet has.
    pub fn len(&self) -> usize {
        self.inner.cells.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Subscribes to registrations and removals.
    pub fn changes(&self) -> broadcast::Receiver<FleetChange> {
        self.inner.changes.subscribe()
    }

    /// The runtime a request names (`field`: the request field, for errors): empty is the only
    /// runtime when exactly one exists.
    pub fn resolve_field(&self, field: &str, name: &str) -> Result<Arc<Cell>, AppError> {
        if name.is_empty() {
            let cells = self.inner.cells.read().unwrap_or_else(|p| p.into_inner());
            return match cells.len() {
                1 => Ok(cells.values().next().cloned().ok_or_else(|| AppError::bug("one cell vanished"))?),
                0 => Err(AppError::FailedPrecondition {
                    reason: "NO_RUNTIME",
                    subject: "runtimes".to_owned(),
                    description:
                        "no runtime is registered: register one (RegisterRuntime) or start with --runtime"
                            .to_owned(),
                }),
                n => {
                    let names: Vec<&str> = cells.keys().map(String::as_str).take(NAMES_LISTED).collect();
                    let more = if n > NAMES_LISTED {
                        format!(" and {} more", n - NAMES_LISTED)
                    } else {
                        String::new()
                    };
                    Err(AppError::InvalidArgument {
                        violations: vec![FieldViolation::new(
                            field,
                            format!("{n} runtimes are registered: name one of {}{more}", names.join(", ")),
                        )],
                    })
                }
            };
        }
        if !is_valid_runtime_name(name) {
            return Err(AppError::InvalidArgument {
                violations: vec![FieldViolation::new(
                    field,
                    format!("{:?} is not a runtime name", name.chars().take(64).collect::<String>()),
                )],
            });
        }
        self.cell(name).ok_or_else(|| AppError::NotFound { resource: format!("runtime {name}") })
    }

    /// [`Fleet::resolve_field`] for the usual field name `runtime`.
    pub fn resolve(&self, name: &str) -> Result<Arc<Cell>, AppError> {
        self.resolve_field("runtime", name)
    }

    /// Makes the cells exactly the registry's runtimes: new ones built (their snapshots
    /// loaded), changed ones rebuilt, removed ones dropped, and stand-ins whose retry time came
    /// rebuilt. Returns the names added or rebuilt and removed.
    pub async fn sync(&self) -> Result<(Vec<String>, Vec<String>), AppError> {
        let registry = self.ctx().store.list_runtimes().await?;
        self.sync_with(registry).await
    }

    /// [`Fleet::sync`] with the registry already read.
    pub async fn sync_with(
        &self,
        registry: Vec<RegisteredRuntime>,
    ) -> Result<(Vec<String>, Vec<String>), AppError> {
        let _building = self.inner.building.lock().await;
        let wanted: BTreeMap<String, RegisteredRuntime> =
            registry.into_iter().map(|r| (r.spec.name.clone(), r)).collect();
        let mut built = Vec::new();
        for (name, runtime) in &wanted {
            let stale = match self.cell(name) {
                None => true,
                Some(cell) => {
                    cell.runtime.version != runtime.version
                        || cell.runtime.spec != runtime.spec
                        || (cell.adapter_error.is_some() && cell.built_at.elapsed() >= ADAPTER_RETRY)
                }
            };
            if !stale {
                continue;
            }
            let cell = Arc::new(self.build_cell(runtime.clone()).await?);
            self.inner.cells.write().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), cell);
            built.push(name.clone());
        }
        let removed: Vec<String> = {
            let mut cells = self.inner.cells.write().unwrap_or_else(|p| p.into_inner());
            let gone: Vec<String> =
                cells.keys().filter(|name| !wanted.contains_key(*name)).cloned().collect();
            for name in &gone {
                cells.remove(name);
            }
            gone
        };
        if !built.is_empty() || !removed.is_empty() {
            let names: Vec<String> = wanted.keys().cloned().collect();
            self.ctx().readiness.set_runtimes(names.iter().map(String::as_str));
            for name in &built {
                let _ = self.inner.changes.send(FleetChange::Upserted(name.clone()));
            }
            for name in &removed {
                let _ = self.inner.changes.send(FleetChange::Removed(name.clone()));
            }
            tracing::info!(built = ?built, removed = ?removed, runtimes = wanted.len(), "fleet changed");
        }
        Ok((built, removed))
    }

    /// Builds a cell: its adapter (or a stand-in saying why not), its services, its snapshot.
    async fn build_cell(&self, runtime: RegisteredRuntime) -> Result<Cell, AppError> {
        let spec = &runtime.spec;
        let (adapter, adapter_error) = match self.inner.factory.build(spec).await {
            Ok(adapter) => (adapter, None),
            Err(reason) => {
                tracing::warn!(runtime = %spec.name, %reason, "runtime adapter could not start; retrying later");
                let mode = match spec.parsed_address() {
                    Ok(crate::runtime::RuntimeAddress::Gateway { .. }) => RuntimeMode::Gateway,
                    Ok(crate::runtime::RuntimeAddress::Ssh { .. }) => RuntimeMode::Ssh,
                    Ok(crate::runtime::RuntimeAddress::Local { .. }) => RuntimeMode::Local,
                    _ => RuntimeMode::Fixture,
                };
                let stand_in: Arc<dyn RuntimeAdapter> =
                    Arc::new(UnavailableRuntime::new(spec.address.clone(), mode, reason.clone()));
                (stand_in, Some(reason))
            }
        };
        let ctx = self.ctx().for_runtime(&spec.name, adapter);
        let services = Services::new(&ctx, self.inner.settings.clone(), &self.inner.globals);
        ctx.snapshot.reload(&ctx.store, &ctx.events).await?;
        let cell = Cell { runtime, services, adapter_error, built_at: tokio::time::Instant::now() };
        self.note_observed(&cell);
        Ok(cell)
    }

    /// Tells readiness a runtime has answered once its snapshot holds an observation, whichever
    /// replica made it (only the owner reads the runtime periodically).
    pub fn note_observed(&self, cell: &Cell) {
        if let Some(observation) = cell.services.ctx.snapshot.observation() {
            self.ctx().readiness.record_runtime_read(
                cell.name(),
                true,
                format!(
                    "observed {} ({} agents) at {}",
                    cell.runtime.spec.address,
                    observation.inventory.agents.len(),
                    observation.record.last_seen_at.to_rfc3339()
                ),
            );
        }
    }

    /// The runtime a rollout or plan belongs to, when the request names none (`named`: the
    /// request's runtime field; given, it must be the record's).
    pub async fn resolve_for(&self, named: &str, record: Record<'_>) -> Result<Arc<Cell>, AppError> {
        let store = &self.ctx().store;
        let (owner, what, id) = match record {
            Record::Rollout(id) => (store.rollout(id).await?.map(|r| r.runtime), "rollout", id),
            Record::Plan(id) => (store.plan_runtime(id).await?, "patch plan", id),
        };
        if id.is_empty() {
            return Err(AppError::invalid(
                if what == "rollout" { "rollout_id" } else { "plan_id" },
                "required",
            ));
        }
        match owner {
            Some(owner) if named.is_empty() || named == owner => self.resolve(&owner),
            _ => Err(AppError::NotFound { resource: format!("{what} {id}") }),
        }
    }

    /// The runtime settings every cell is built with.
    pub fn settings(&self) -> &RuntimeSettings {
        &self.inner.settings
    }
}

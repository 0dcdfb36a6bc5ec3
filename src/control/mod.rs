//! Application services: one struct per use-case area. They own transactions and call the
//! domain, the store and the runtime adapter; transports (`grpc/`, `http/`) call them.

mod audit;
mod context;
mod delegations;
pub mod desired;
mod dispatch;
mod documents;
mod drift;
mod error;
pub mod fleet;
pub mod idempotency;
mod infra;
mod learning;
mod leases;
pub mod metrics;
mod observer;
pub mod outbound;
pub mod ownership;
mod persistent;
mod readiness;
mod reconcile;
pub mod retention;
mod revocation;
mod rollout;
mod scheduler;
mod services;
mod setup;
mod watchdog;

// The replica's machinery the use cases share (clock, ids, paging, failpoints, the periodic
// loop, the event bus and the in-memory snapshot) lives in `infra/`, apart from the use cases.
use infra::ids;
pub(crate) use infra::paging;
pub use infra::{clock, events, every, failpoints, lease_cache, snapshot, supervise};

pub use audit::{AuditContext, AuditService, ChainCheck};
pub use context::Ctx;
pub use delegations::{DelegationService, DelegationView, GrantRequest};
pub use desired::{DesiredTopologyService, PutRequest, PutResult, TopologySelector};
pub use dispatch::{Classifier, DispatchAnswer, DispatchService, WorkItem};
pub use documents::{Mutation, Versioned};
pub use drift::{DriftMonitor, ObserveNowResult};
pub use error::{AppError, ErrorCode};
pub use idempotency::Calls;
pub use learning::{LearningService, list_learning_proposals};
pub use leases::{LeaseService, LeaseUse};
pub use metrics::{MetricsService, MetricsSnapshot, severity_label};
pub use observer::{ObservationService, Observed, ObserverSettings};
pub use outbound::{OutboundService, OutboundSettings};
pub use persistent::PersistentService;
pub use readiness::{ComponentState, Readiness, ReadinessSnapshot, watch_store};
pub use reconcile::{CycleOutcome, CycleRequest, ReconcileService};
pub use revocation::{RevocationOutcome, RevocationPreview, RevocationService};
pub use rollout::{CreateRolloutRequest, HealPlan, RolloutService};
pub use scheduler::{LeaderSettings, ReconcileLeader, ScheduleService, UpdateScheduleRequest};
pub use services::{GlobalSettings, Globals, RuntimeSettings, Services};
pub use setup::{
    ApplyOutcome, ApplyRequest, FileOutcome, FileResult, PreviewRequest, SetupService, StoredPreview,
};
pub use watchdog::WatchdogService;

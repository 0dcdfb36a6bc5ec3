//! gRPC transport: thin tonic handlers (validate → call an app service → convert), the auth
//! layer driven by the descriptor's auth classes, the per-call span, log line and metrics,
//! health and reflection.

pub mod auth;
mod call;
mod control;
mod convert;
pub mod descriptor;
mod drift;
pub mod health;
mod meta;
pub mod observe;
mod orchestration;
pub mod panics;
pub mod shed;
pub mod status;
mod topology;
mod watch;

mod fleet;

pub use control::ControlServiceImpl;
pub use drift::DriftServiceImpl;
pub use health::spawn_health_publisher;
pub use meta::MetaServiceImpl;
pub use orchestration::OrchestrationServiceImpl;
pub use topology::TopologyServiceImpl;

/// What every transport serves: the fleet (each runtime's services and the deployment-wide
/// ones), the runtime registry, and fleet rollouts. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    pub fleet: crate::control::fleet::Fleet,
    pub registry: crate::control::fleet::registry::RegistryService,
    pub fleet_rollouts: crate::control::fleet::rollouts::FleetRollouts,
}

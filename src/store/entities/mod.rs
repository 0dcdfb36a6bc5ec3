//! sea-orm entities, one file per table.

pub mod audit_chain_head;
pub mod audit_event;
pub mod audit_pending;
pub mod cycle_report;
pub mod delegation;
pub mod desired_topology;
pub mod document;
pub mod drift_item;
pub mod fleet_rollout;
pub mod heal_attempt;
pub mod idempotency_record;
pub mod lease;
pub mod observation;
pub mod outbound_delivery;
pub mod outbound_event;
pub mod outbound_head;
pub mod outbound_sink;
pub mod patch_plan;
pub mod reconcile_schedule;
pub mod rollout;
pub mod runtime;
pub mod runtime_state;
pub mod scheduler_run;
pub mod server_key;
pub mod setup_preview;
pub mod watchdog_observation;

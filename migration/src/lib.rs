//! Database migrations of jhf-warp. They run at start-up and with `jhf-warp migrate`; every
//! `up` has a `down`. Files are named `mYYYYMMDD_HHMMSS_<what>.rs` and never edited once
//! released: a schema change is a new migration.

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_create_observations;
mod m20261127_000002_create_server_keys;
mod m20261127_000003_create_desired_and_drift;
mod m20261127_000004_create_plans_and_rollouts;
mod m20261127_000005_create_leases;
mod m20261127_000006_create_audit_log;
mod m20261127_000007_create_delegations;
mod m20261127_000008_create_cycle_reports;
mod m20261127_000009_create_watchdog;
mod m20261127_000010_create_scheduler_runs;
mod m20261127_000011_create_reconcile_schedules;
mod m20261127_000012_create_setup_previews;
mod m20261127_000013_create_documents;
mod m20261201_000014_create_audit_pending;
mod m20261202_000015_replicas;
mod m20261202_000016_create_outbox;
mod m20261208_000017_fleet;

/// All migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_observations::Migration),
            Box::new(m20261127_000002_create_server_keys::Migration),
            Box::new(m20261127_000003_create_desired_and_drift::Migration),
            Box::new(m20261127_000004_create_plans_and_rollouts::Migration),
            Box::new(m20261127_000005_create_leases::Migration),
            Box::new(m20261127_000006_create_audit_log::Migration),
            Box::new(m20261127_000007_create_delegations::Migration),
            Box::new(m20261127_000008_create_cycle_reports::Migration),
            Box::new(m20261127_000009_create_watchdog::Migration),
            Box::new(m20261127_000010_create_scheduler_runs::Migration),
            Box::new(m20261127_000011_create_reconcile_schedules::Migration),
            Box::new(m20261127_000012_create_setup_previews::Migration),
            Box::new(m20261127_000013_create_documents::Migration),
            Box::new(m20261201_000014_create_audit_pending::Migration),
            Box::new(m20261202_000015_replicas::Migration),
            Box::new(m20261202_000016_create_outbox::Migration),
            Box::new(m20261208_000017_fleet::Migration),
        ]
    }
}

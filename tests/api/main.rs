//! End-to-end tests: the real server on an ephemeral port, a fresh database per test
//! (SQLite, or Postgres with `JHF_WARP_TEST_DATABASE_URL`), fixture runtimes, generated
//! clients and plain HTTP. Logs are silent unless `TEST_LOG=1`.

mod audit;
mod auth;
mod ctl;
mod delegations;
mod desired;
mod drift;
mod fleet;
mod fleet_gateways;
mod fleet_rollouts;
mod health;
mod helpers;
mod history;
mod idempotency;
mod leases;
mod orchestration;
mod outbound;
mod persistent;
mod process;
mod real_cli;
mod real_gateway;
mod real_permissions;
mod reconcile;
mod reflection;
mod replicas;
mod rollout;
mod schedule;
mod serving;
mod shim;
mod tls;
mod topology;
mod transport;
mod watchdog;

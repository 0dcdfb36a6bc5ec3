//! Reading (and, later, patching) the real OpenClaw runtime.
//!
//! An adapter gathers the raw config text and the filesystem facts the domain needs, then
//! hands them to [`crate::domain::build_inventory`]; all interpretation lives in the domain.
//! Modes (see `shared/OPENCLAW.md` §5): `fixture:<name>` is implemented here; `local` and
//! `ssh://` come with guarded patching.

mod address;
mod fixture;
mod state_dir;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Inventory;

pub use address::{RuntimeAddress, RuntimeAddressError};
pub use fixture::FixtureRuntime;

/// Why the runtime could not be read. Messages never carry config content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("runtime is unreachable: {detail}")]
    Unreachable { detail: String },
    #[error("runtime did not answer within {after:?}")]
    Timeout { after: Duration },
    #[error("runtime command failed with exit code {exit_code:?}: {stderr_tail}")]
    CommandFailed { exit_code: Option<i32>, stderr_tail: String },
    #[error("runtime returned invalid output: {detail}")]
    InvalidOutput { detail: String },
    #[error("runtime setup failed: {detail}")]
    Setup { detail: String },
}

/// The kind of access an adapter has to the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeMode {
    /// A copy of a fixture tree in the data dir; no CLI.
    Fixture,
}

/// Reads an OpenClaw installation.
#[async_trait]
pub trait RuntimeAdapter: Send + Sync + 'static {
    /// Returns the address this adapter was configured with, e.g. `fixture:trio`.
    fn address(&self) -> &str;

    /// Returns how the adapter reaches the runtime.
    fn mode(&self) -> RuntimeMode;

    /// Reads the installation once and returns its normalised inventory.
    async fn observe(&self) -> Result<Inventory, RuntimeError>;
}

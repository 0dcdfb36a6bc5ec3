//! An adapter for a runtime jhf-warp cannot reach yet (its adapter failed to start: an SSH host
//! that does not answer, a token file that went missing) or for no runtime at all (the
//! deployment-wide services, which never touch one). Every call fails with the reason, so the
//! runtime is reported UNREACHABLE on its own while the rest of the fleet carries on; the fleet
//! tries to build the real adapter again later.

use async_trait::async_trait;

use super::{
    ConfigText, DryRunReport, PatchRequest, RuntimeAdapter, RuntimeError, RuntimeMode, WorkspaceFile,
};
use crate::domain::Inventory;
use crate::domain::inventory::StateLayout;
use crate::domain::patch::PatchShape;

/// A runtime that cannot be reached, and why.
#[derive(Debug, Clone)]
pub struct UnavailableRuntime {
    address: String,
    mode: RuntimeMode,
    reason: String,
}

impl UnavailableRuntime {
    pub fn new(address: impl Into<String>, mode: RuntimeMode, reason: impl Into<String>) -> Self {
        Self { address: address.into(), mode, reason: reason.into() }
    }

    /// The stand-in of the deployment-wide services (they never use a runtime).
    pub fn none() -> Self {
        Self::new("", RuntimeMode::Fixture, "no runtime: a deployment-wide service")
    }

    fn error(&self) -> RuntimeError {
        RuntimeError::Unreachable { detail: self.reason.clone() }
    }
}

#[async_trait]
impl RuntimeAdapter for UnavailableRuntime {
    fn address(&self) -> &str {
        &self.address
    }

    fn mode(&self) -> RuntimeMode {
        self.mode
    }

    fn read_only_reason(&self) -> Option<String> {
        Some(self.reason.clone())
    }

    async fn observe(&self) -> Result<Inventory, RuntimeError> {
        Err(self.error())
    }

    fn patch_shape(&self) -> PatchShape {
        PatchShape::Entries
    }

    async fn read_config(&self) -> Result<ConfigText, RuntimeError> {
        Err(self.error())
    }

    async fn dry_run(&self, _: &PatchRequest<'_>) -> Result<DryRunReport, RuntimeError> {
        Err(self.error())
    }

    async fn apply(&self, _: &PatchRequest<'_>) -> Result<String, RuntimeError> {
        Err(self.error())
    }

    async fn restore(&self, _: &str, _: &str) -> Result<String, RuntimeError> {
        Err(self.error())
    }

    async fn read_workspace_file(&self, _: &str) -> Result<WorkspaceFile, RuntimeError> {
        Err(self.error())
    }

    async fn write_workspace_file(&self, _: &str, _: &str) -> Result<(), RuntimeError> {
        Err(self.error())
    }

    fn layout(&self) -> StateLayout {
        StateLayout::default()
    }

    fn workspace_roots(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
}

//! A runtime adapter that counts and times every operation of the one it wraps.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{
    ConfigText, DryRunReport, PatchRequest, RuntimeAdapter, RuntimeError, RuntimeMode, WorkspaceFile,
};
use crate::domain::Inventory;
use crate::domain::inventory::StateLayout;
use crate::domain::patch::PatchShape;
use crate::telemetry::Telemetry;

/// `inner`, measured.
pub struct MeasuredRuntime {
    inner: Arc<dyn RuntimeAdapter>,
    /// The runtime's name in the fleet (the metrics' `runtime` label).
    runtime: String,
    telemetry: Telemetry,
}

impl MeasuredRuntime {
    /// Wraps `inner`, the adapter of the fleet's runtime `runtime`.
    pub fn new(inner: Arc<dyn RuntimeAdapter>, runtime: &str, telemetry: Telemetry) -> Self {
        Self { inner, runtime: runtime.to_owned(), telemetry }
    }

    async fn measure<T>(
        &self,
        operation: &'static str,
        run: impl Future<Output = Result<T, RuntimeError>>,
    ) -> Result<T, RuntimeError> {
        let started = Instant::now();
        let result = run.await;
        self.telemetry.runtime_operation(&self.runtime, operation, result.is_ok(), started.elapsed());
        result
    }
}

#[async_trait]
impl RuntimeAdapter for MeasuredRuntime {
    fn address(&self) -> &str {
        self.inner.address()
    }

    fn mode(&self) -> RuntimeMode {
        self.inner.mode()
    }

    fn read_only_reason(&self) -> Option<String> {
        self.inner.read_only_reason()
    }

    fn change_notices(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.change_notices()
    }

    async fn observe(&self) -> Result<Inventory, RuntimeError> {
        self.measure("observe", self.inner.observe()).await
    }

    fn patch_shape(&self) -> PatchShape {
        self.inner.patch_shape()
    }

    async fn read_config(&self) -> Result<ConfigText, RuntimeError> {
        self.measure("read_config", self.inner.read_config()).await
    }

    async fn dry_run(&self, patch: &PatchRequest<'_>) -> Result<DryRunReport, RuntimeError> {
        self.measure("dry_run", self.inner.dry_run(patch)).await
    }

    async fn apply(&self, patch: &PatchRequest<'_>) -> Result<String, RuntimeError> {
        self.measure("apply", self.inner.apply(patch)).await
    }

    async fn restore(&self, pre_image: &str, expected_hash: &str) -> Result<String, RuntimeError> {
        self.measure("restore", self.inner.restore(pre_image, expected_hash)).await
    }

    async fn read_workspace_file(&self, path: &str) -> Result<WorkspaceFile, RuntimeError> {
        self.measure("read_workspace_file", self.inner.read_workspace_file(path)).await
    }

    async fn write_workspace_file(&self, path: &str, text: &str) -> Result<(), RuntimeError> {
        self.measure("write_workspace_file", self.inner.write_workspace_file(path, text)).await
    }

    fn layout(&self) -> StateLayout {
        self.inner.layout()
    }

    fn workspace_roots(&self) -> Vec<std::path::PathBuf> {
        self.inner.workspace_roots()
    }

    fn workspace_policy(&self) -> crate::domain::workspace::WorkspacePolicy {
        self.inner.workspace_policy()
    }
}

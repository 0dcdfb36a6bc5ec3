//! `fixture:<name>`: a reference state tree from `fixtures/openclaw/<name>/`, copied into the
//! data dir on first start and read from there, so tests and demos can edit it freely.
//!
//! # Guarantees
//! - The copy is made once: a restart keeps whatever was changed in the copy.
//! - The copy appears atomically (built beside, then renamed), so a crash mid-copy never
//!   leaves a half tree that later starts would mistake for a complete one.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::files::{
    blocking, create_dirs_confined, patched_text, read_capped, read_confined, structural_dry_run,
    write_config_confined, write_confined,
};
use super::state_dir::read_state_dir;
use super::{
    BOOTSTRAP_FILE_CAP, ConfigText, DryRunReport, PatchRequest, RuntimeAdapter, RuntimeError, RuntimeLimits,
    RuntimeMode, WorkspaceFile,
};
use crate::domain::inventory::StateLayout;
use crate::domain::inventory::config_hash;
use crate::domain::patch::PatchShape;
use crate::domain::{Inventory, build_inventory};

/// A fixture runtime living in the data dir.
#[derive(Debug)]
pub struct FixtureRuntime {
    address: String,
    root: PathBuf,
    limits: RuntimeLimits,
}

impl FixtureRuntime {
    /// Copies `<fixtures_dir>/<name>` to `<data_dir>/runtime/<name>` unless it exists, and
    /// returns an adapter over the copy.
    pub async fn prepare(
        fixtures_dir: &Path,
        name: &str,
        data_dir: &Path,
        limits: RuntimeLimits,
    ) -> Result<Self, RuntimeError> {
        let source = fixtures_dir.join(name);
        let root = data_dir.join("runtime").join(name);
        if !tokio::fs::try_exists(&root).await.unwrap_or(false) {
            if !tokio::fs::try_exists(source.join("state/openclaw.json")).await.unwrap_or(false) {
                return Err(RuntimeError::Setup {
                    detail: format!("fixture {name:?} not found under {}", fixtures_dir.display()),
                });
            }
            let staging = data_dir.join("runtime").join(format!(".{name}.partial"));
            let (src, stage) = (source.clone(), staging.clone());
            tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_dir_all(&stage);
                copy_tree(&src, &stage)
            })
            .await
            .map_err(|err| RuntimeError::Setup { detail: format!("copy task failed: {err}") })?
            .map_err(|err| RuntimeError::Setup { detail: format!("copying fixture {name:?}: {err}") })?;
            tokio::fs::rename(&staging, &root).await.map_err(|err| RuntimeError::Setup {
                detail: format!("installing fixture {name:?}: {err}"),
            })?;
        }
        Ok(Self { address: format!("fixture:{name}"), root, limits })
    }

    /// Returns the state dir of the copy (`<data_dir>/runtime/<name>/state`).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    fn config_path(&self) -> PathBuf {
        self.state_dir().join("openclaw.json")
    }

    /// Writes the config safely (previous text kept as `.bak`).
    async fn write_config(&self, text: String) -> Result<String, RuntimeError> {
        let (path, roots, cap) = (self.config_path(), self.roots(), self.limits.config_max_bytes);
        blocking(move || write_config_confined(&path, &text, &roots, cap)).await
    }

    /// Where jhf-warp may write: the state dir and the configured workspace roots.
    fn roots(&self) -> Vec<PathBuf> {
        let mut roots = vec![self.state_dir()];
        roots.extend(self.limits.workspace_roots.iter().cloned());
        roots
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

#[async_trait]
impl RuntimeAdapter for FixtureRuntime {
    fn address(&self) -> &str {
        &self.address
    }

    fn mode(&self) -> RuntimeMode {
        RuntimeMode::Fixture
    }

    async fn observe(&self) -> Result<Inventory, RuntimeError> {
        let mut read =
            read_state_dir(&self.state_dir(), Some(&self.root), self.limits.config_max_bytes).await?;
        read.facts.openclaw_version = tokio::fs::read_to_string(self.root.join("cli/version.txt"))
            .await
            .ok()
            .and_then(|text| parse_version(&text));
        Ok(build_inventory(&read.raw_config, &read.facts))
    }

    fn patch_shape(&self) -> PatchShape {
        // jhf-warp writes the fixture copy itself, so the file keeps its own roster shape.
        PatchShape::FileShape
    }

    async fn read_config(&self) -> Result<ConfigText, RuntimeError> {
        let (path, cap) = (self.config_path(), self.limits.config_max_bytes);
        match blocking(move || read_capped(&path, cap)).await? {
            WorkspaceFile::Text(raw) => Ok(ConfigText { hash: config_hash(&raw), raw }),
            WorkspaceFile::Absent => Err(RuntimeError::Unreachable {
                detail: format!(
                    "cannot read {}: {}",
                    self.config_path().display(),
                    std::io::ErrorKind::NotFound
                ),
            }),
            WorkspaceFile::Refused(why) => {
                Err(RuntimeError::Refused { detail: format!("{}: {why}", self.config_path().display()) })
            }
        }
    }

    async fn dry_run(&self, patch: &PatchRequest<'_>) -> Result<DryRunReport, RuntimeError> {
        structural_dry_run(&self.read_config().await?, patch)
    }

    async fn apply(&self, patch: &PatchRequest<'_>) -> Result<String, RuntimeError> {
        let current = self.read_config().await?;
        if current.hash != patch.base_hash {
            return Err(RuntimeError::BaseHashMismatch {
                expected: patch.base_hash.to_owned(),
                actual: current.hash,
            });
        }
        let text = patched_text(&current.raw, patch.merge_patch)?;
        let hash = self.write_config(text).await?;
        let (dirs, roots) = (patch.create_workspaces.to_vec(), self.roots());
        blocking(move || create_dirs_confined(&dirs, &roots)).await?;
        Ok(hash)
    }

    async fn restore(&self, pre_image: &str, expected_hash: &str) -> Result<String, RuntimeError> {
        let current = self.read_config().await?;
        if current.hash != expected_hash {
            return Err(RuntimeError::BaseHashMismatch {
                expected: expected_hash.to_owned(),
                actual: current.hash,
            });
        }
        self.write_config(pre_image.to_owned()).await
    }

    async fn read_workspace_file(&self, path: &str) -> Result<WorkspaceFile, RuntimeError> {
        let (path, roots) = (PathBuf::from(path), self.roots());
        blocking(move || read_confined(&path, BOOTSTRAP_FILE_CAP, &roots)).await
    }

    async fn write_workspace_file(&self, path: &str, text: &str) -> Result<(), RuntimeError> {
        let (path, bytes, roots) = (PathBuf::from(path), text.as_bytes().to_vec(), self.roots());
        blocking(move || write_confined(&path, &bytes, &roots)).await
    }

    fn workspace_roots(&self) -> Vec<PathBuf> {
        self.limits.workspace_roots.clone()
    }

    fn layout(&self) -> StateLayout {
        StateLayout {
            state_dir: self.state_dir().display().to_string(),
            home_dir: Some(self.root.display().to_string()),
        }
    }
}

/// Extracts `2026.9.6` from `OpenClaw 2026.9.6 (eb377ac)`.
fn parse_version(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|word| word.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_taken_from_the_cli_banner() {
        assert_eq!(parse_version("OpenClaw 2026.9.6 (eb377ac)\n").as_deref(), Some("2026.9.6"));
        assert_eq!(parse_version("garbage"), None);
    }
}

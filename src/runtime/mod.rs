//! Reading and changing the real OpenClaw runtime.
//!
//! An adapter gathers the raw config text and the filesystem facts the domain needs, then
//! hands them to [`crate::domain::build_inventory`]; all interpretation lives in the domain.
//! Modes (see `shared/OPENCLAW.md` §5): `fixture:<name>` (a copy in the data dir, written by
//! jhf-warp itself), `local[:<state-dir>]` and `ssh://…` (through the `openclaw` CLI), and
//! `gateway:ws://…` (a running Gateway, through its WebSocket RPC).

mod cli;
mod files;
mod fixture;
mod gateway;
mod measured;
mod shell;
mod state_dir;
mod unavailable;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::domain::Inventory;
use crate::domain::patch::PatchShape;

pub use crate::domain::fleet::{RuntimeAddress, RuntimeAddressError};
pub use cli::CliRuntime;
pub use fixture::FixtureRuntime;
pub use gateway::{DEVICE_KEY_FILE, DeviceKey, GatewayClient, GatewayRuntime};
pub use measured::MeasuredRuntime;
pub use shell::{HostShell, LocalShell, SshShell};
pub use unavailable::UnavailableRuntime;

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
    #[error("runtime config changed: expected hash {expected}, found {actual}")]
    BaseHashMismatch { expected: String, actual: String },
    #[error("runtime is read-only: {reason}")]
    ReadOnly { reason: String },
    /// A file jhf-warp would read or write is not what it may touch (a symlink, a path that
    /// resolves outside the allowed directories, not a regular file, over its size cap).
    #[error("refused: {detail}")]
    Refused { detail: String },
}

/// A file in an agent workspace, as a read found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceFile {
    Absent,
    Text(String),
    /// There is something, but jhf-warp will not read it (and will not overwrite it).
    Refused(String),
}

/// Largest bootstrap file jhf-warp reads from a workspace (OpenClaw injects at most 20 000
/// characters of one; anything far larger is not a bootstrap file).
pub const BOOTSTRAP_FILE_CAP: u64 = 1 << 20;

/// What an adapter may read and write.
#[derive(Debug, Clone)]
pub struct RuntimeLimits {
    /// Largest config text read (a larger file is a CONFIG_UNREADABLE finding).
    pub config_max_bytes: u64,
    /// Directories (besides the state dir) workspaces may live in; jhf-warp writes nowhere else.
    pub workspace_roots: Vec<std::path::PathBuf>,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        Self { config_max_bytes: 4 << 20, workspace_roots: Vec::new() }
    }
}

/// The config file as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigText {
    pub raw: String,
    /// sha256 hex of `raw`.
    pub hash: String,
}

/// A change to write, guarded by the hash it was planned against.
#[derive(Debug, Clone, Copy)]
pub struct PatchRequest<'a> {
    pub merge_patch: &'a Value,
    pub replace_paths: &'a [String],
    pub base_hash: &'a str,
    /// Agents to delete first (CLI runtimes refuse to drop roster entries through a patch).
    pub remove_agents: &'a [String],
    /// Workspace directories to create after the write.
    pub create_workspaces: &'a [String],
    /// Repair plans are written on configs the runtime itself refuses to load.
    pub repair: bool,
}

/// What a dry run said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DryRunReport {
    pub ok: bool,
    pub errors: Vec<String>,
}

/// The kind of access an adapter has to the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeMode {
    /// A copy of a fixture tree in the data dir; no CLI.
    Fixture,
    /// This host's installation, through the `openclaw` CLI.
    Local,
    /// A remote installation, through `ssh` and the remote `openclaw` CLI.
    Ssh,
    /// A running Gateway, through its WebSocket RPC.
    Gateway,
}

/// Reads an OpenClaw installation.
#[async_trait]
pub trait RuntimeAdapter: Send + Sync + 'static {
    /// Returns the address this adapter was configured with, e.g. `fixture:trio`.
    fn address(&self) -> &str;

    /// Returns how the adapter reaches the runtime.
    fn mode(&self) -> RuntimeMode;

    /// Returns why the adapter cannot write, when it cannot (e.g. no CLI).
    fn read_only_reason(&self) -> Option<String> {
        None
    }

    /// A counter that moves whenever the runtime announces a config change (push
    /// observation); `None` when the runtime announces nothing and only polling sees changes.
    fn change_notices(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Reads the installation once and returns its normalised inventory.
    async fn observe(&self) -> Result<Inventory, RuntimeError>;

    /// Returns how patches must address the roster on this runtime.
    fn patch_shape(&self) -> PatchShape;

    /// Reads the config file text.
    async fn read_config(&self) -> Result<ConfigText, RuntimeError>;

    /// Checks a patch without writing anything.
    async fn dry_run(&self, patch: &PatchRequest<'_>) -> Result<DryRunReport, RuntimeError>;

    /// Applies a patch if the config still has `base_hash` (checked immediately before the
    /// write), then creates the requested workspaces. Returns the new config hash.
    async fn apply(&self, patch: &PatchRequest<'_>) -> Result<String, RuntimeError>;

    /// Writes `pre_image` back if the config hash is still `expected_hash`. Returns the new hash.
    async fn restore(&self, pre_image: &str, expected_hash: &str) -> Result<String, RuntimeError>;

    /// Reads a file in an agent workspace on the runtime host without following a symlink,
    /// at most [`BOOTSTRAP_FILE_CAP`] bytes. `path` is absolute, built by jhf-warp from an
    /// observed workspace and a fixed file name.
    async fn read_workspace_file(&self, path: &str) -> Result<WorkspaceFile, RuntimeError>;

    /// Writes a file in an agent workspace (creating the directory) through an exclusive random
    /// temporary file and a rename; refuses a symlinked target or a directory that resolves
    /// outside the allowed roots.
    async fn write_workspace_file(&self, path: &str, text: &str) -> Result<(), RuntimeError>;

    /// Returns where the installation lives on its host (state dir, home).
    fn layout(&self) -> crate::domain::inventory::StateLayout;

    /// Returns the directories jhf-warp may write besides the state dir.
    fn workspace_roots(&self) -> Vec<std::path::PathBuf>;

    /// Returns where desired workspaces may live on the runtime host.
    fn workspace_policy(&self) -> crate::domain::workspace::WorkspacePolicy {
        let layout = self.layout();
        crate::domain::workspace::WorkspacePolicy {
            state_dir: layout.state_dir.into(),
            home_dir: layout.home_dir.map(Into::into),
            roots: self.workspace_roots(),
        }
    }
}

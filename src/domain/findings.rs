//! Findings: every problem jhf-warp sees in a runtime, with a stable key. Detection lives with
//! the inventory it is part of (`inventory/detect.rs`); this file holds what a finding is.

use serde::{Deserialize, Serialize};

use super::model::Severity;

/// What kind of problem a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FindingKind {
    ConfigInvalid,
    ConfigUnreadable,
    RetiredKey,
    ToolsAllowConflict,
    InvalidSandboxMode,
    WorkspaceMissing,
    StaleAllowAgents,
    InvalidAgentId,
    BindingUnknownAgent,
    StaleAgentToAgentAllow,
    LegacySessionStore,
    RejectedWritePresent,
    OwnershipMissing,
    DuplicateAgentId,
    ToolTableMissing,
    OpenDmToPrivilegedAgent,
}

impl FindingKind {
    /// Returns the lower-snake name used as the first part of a finding key.
    pub fn slug(self) -> &'static str {
        match self {
            Self::ConfigInvalid => "config_invalid",
            Self::ConfigUnreadable => "config_unreadable",
            Self::RetiredKey => "retired_key",
            Self::ToolsAllowConflict => "tools_allow_conflict",
            Self::InvalidSandboxMode => "invalid_sandbox_mode",
            Self::WorkspaceMissing => "workspace_missing",
            Self::StaleAllowAgents => "stale_allow_agents",
            Self::InvalidAgentId => "invalid_agent_id",
            Self::BindingUnknownAgent => "binding_unknown_agent",
            Self::StaleAgentToAgentAllow => "stale_agent_to_agent_allow",
            Self::LegacySessionStore => "legacy_session_store",
            Self::RejectedWritePresent => "rejected_write_present",
            Self::OwnershipMissing => "ownership_missing",
            Self::DuplicateAgentId => "duplicate_agent_id",
            Self::ToolTableMissing => "tool_table_missing",
            Self::OpenDmToPrivilegedAgent => "open_dm_to_privileged_agent",
        }
    }

    /// Returns how urgent this kind of problem is.
    pub fn severity(self) -> Severity {
        match self {
            Self::ConfigInvalid
            | Self::ConfigUnreadable
            | Self::RetiredKey
            | Self::ToolsAllowConflict
            | Self::InvalidSandboxMode
            | Self::InvalidAgentId
            | Self::OwnershipMissing
            | Self::DuplicateAgentId
            | Self::BindingUnknownAgent => Severity::Error,
            Self::WorkspaceMissing
            | Self::StaleAllowAgents
            | Self::StaleAgentToAgentAllow
            | Self::RejectedWritePresent
            | Self::ToolTableMissing => Severity::Warning,
            Self::OpenDmToPrivilegedAgent => Severity::Critical,
            Self::LegacySessionStore => Severity::Info,
        }
    }
}

/// One problem in the runtime. Never carries a secret value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    /// `<kind slug>/<subject>`: stable across observations of the same problem.
    pub key: String,
    pub kind: FindingKind,
    pub severity: Severity,
    pub subject: String,
    pub path: String,
    pub message: String,
}

impl Finding {
    /// Creates a finding with its key and the kind's severity.
    pub fn new(
        kind: FindingKind,
        subject: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let subject = subject.into();
        Self {
            key: format!("{}/{subject}", kind.slug()),
            kind,
            severity: kind.severity(),
            subject,
            path: path.into(),
            message: message.into(),
        }
    }
}

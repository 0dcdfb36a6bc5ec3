//! Small value types shared by the inventory, findings and topology.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How urgently an operator should look at something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

/// The bound on what the runtime may grant an agent. Ordered from least to most privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum TrustLevel {
    #[default]
    Restricted,
    Standard,
    Elevated,
}

impl TrustLevel {
    /// Returns the lowest trust level whose bound covers the given effective grants.
    ///
    /// RESTRICTED allows sandbox `all` without elevated tools; STANDARD also allows `non-main`;
    /// anything else (no sandbox, an unknown mode, elevated tools) needs ELEVATED.
    pub fn covering(sandbox: &SandboxMode, elevated: bool) -> Self {
        match (sandbox, elevated) {
            (SandboxMode::All, false) => Self::Restricted,
            (SandboxMode::NonMain, false) => Self::Standard,
            _ => Self::Elevated,
        }
    }

    /// Returns the upper-case name used in canonical encodings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restricted => "RESTRICTED",
            Self::Standard => "STANDARD",
            Self::Elevated => "ELEVATED",
        }
    }
}

/// OpenClaw's `sandbox.mode`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SandboxMode {
    Off,
    NonMain,
    All,
    /// A value OpenClaw does not accept; kept so it can be reported.
    Invalid(String),
}

impl SandboxMode {
    /// Parses the config value; `None` when the key is absent.
    pub fn parse(value: &str) -> Self {
        match value {
            "off" => Self::Off,
            "non-main" => Self::NonMain,
            "all" => Self::All,
            other => Self::Invalid(other.to_owned()),
        }
    }
}

impl fmt::Display for SandboxMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::NonMain => f.write_str("non-main"),
            Self::All => f.write_str("all"),
            Self::Invalid(value) => write!(f, "invalid({value})"),
        }
    }
}

/// How the config file lists its agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RosterShape {
    /// `agents.entries: { <id>: { … } }`.
    Entries,
    /// Legacy `agents.list: [ { id, … } ]`.
    List,
    /// No roster: one implicit default agent.
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_covering_follows_the_documented_bounds() {
        assert_eq!(TrustLevel::covering(&SandboxMode::All, false), TrustLevel::Restricted);
        assert_eq!(TrustLevel::covering(&SandboxMode::NonMain, false), TrustLevel::Standard);
        assert_eq!(TrustLevel::covering(&SandboxMode::Off, false), TrustLevel::Elevated);
        assert_eq!(TrustLevel::covering(&SandboxMode::All, true), TrustLevel::Elevated);
        let invalid = SandboxMode::parse("sometimes");
        assert_eq!(TrustLevel::covering(&invalid, false), TrustLevel::Elevated);
    }

    #[test]
    fn trust_levels_are_ordered_by_privilege() {
        assert!(TrustLevel::Restricted < TrustLevel::Standard);
        assert!(TrustLevel::Standard < TrustLevel::Elevated);
    }
}

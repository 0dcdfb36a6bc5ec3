//! Who may call what: auth classes of methods and roles of tokens.

use std::fmt;

/// The access class of an RPC (mirrors `jhf.warp.v1.AuthClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthClass {
    Open,
    Read,
    Operate,
    ControlAgent,
}

/// The role a bearer token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Reader,
    Operator,
    ControlAgent,
}

impl Role {
    /// Returns whether a token of this role may call a method of `class`.
    ///
    /// Operators may do everything; control agents read and report; readers only read.
    pub fn permits(self, class: AuthClass) -> bool {
        matches!(
            (self, class),
            (_, AuthClass::Open)
                | (Self::Operator, _)
                | (Self::Reader | Self::ControlAgent, AuthClass::Read)
                | (Self::ControlAgent, AuthClass::ControlAgent)
        )
    }

    /// Returns the configuration name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Operator => "operator",
            Self::ControlAgent => "control-agent",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "reader" => Ok(Self::Reader),
            "operator" => Ok(Self::Operator),
            "control-agent" => Ok(Self::ControlAgent),
            other => Err(format!("unknown role {other:?} (expected reader, operator or control-agent)")),
        }
    }
}

impl fmt::Display for AuthClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "OPEN",
            Self::Read => "READ",
            Self::Operate => "OPERATE",
            Self::ControlAgent => "CONTROL_AGENT",
        })
    }
}

/// The authenticated caller; its name is the audit actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_permit_their_classes_and_nothing_more() {
        use AuthClass::*;
        let table = [
            (Role::Reader, [true, true, false, false]),
            (Role::ControlAgent, [true, true, false, true]),
            (Role::Operator, [true, true, true, true]),
        ];
        for (role, expected) in table {
            let got = [Open, Read, Operate, ControlAgent].map(|class| role.permits(class));
            assert_eq!(got, expected, "{role:?}");
        }
    }

    #[test]
    fn roles_parse_from_their_configuration_names() {
        for role in [Role::Reader, Role::Operator, Role::ControlAgent] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("admin".parse::<Role>().is_err());
    }
}

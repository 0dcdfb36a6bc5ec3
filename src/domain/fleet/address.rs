//! Parsing of runtime addresses (`--runtime`, and every runtime of a fleet).

use std::fmt;

/// Where the runtime is, as configured with `--runtime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeAddress {
    /// `fixture:<name>`: a tree under the fixtures dir, copied into the data dir.
    Fixture { name: String },
    /// `local[:<state-dir>]`: this host's installation.
    Local { state_dir: Option<String> },
    /// `ssh://[user@]host[:port][/state-dir]`.
    Ssh { user: Option<String>, host: String, port: Option<u16>, state_dir: Option<String> },
    /// `gateway:ws://host:port[/path]` or `gateway:wss://…`: a running OpenClaw Gateway.
    Gateway { url: String },
}

impl RuntimeAddress {
    /// True for `gateway:wss://…`.
    pub fn gateway_tls(&self) -> bool {
        matches!(self, Self::Gateway { url } if url.starts_with("wss://"))
    }
}

/// Why a `--runtime` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeAddressError {
    #[error("fixture name {0:?} must match [a-z0-9][a-z0-9_-]*")]
    BadFixtureName(String),
    #[error("local state dir {0:?} must be an absolute path")]
    RelativeStateDir(String),
    #[error("ssh address {0:?} must look like ssh://[user@]host[:port][/state-dir]")]
    BadSsh(String),
    #[error("gateway address {0:?} must look like gateway:ws://host:port or gateway:wss://host:port")]
    BadGateway(String),
    #[error(
        "runtime address {0:?} is not one of fixture:<name>, local[:<state-dir>], ssh://…, gateway:ws://…"
    )]
    Unknown(String),
}

impl std::str::FromStr for RuntimeAddress {
    type Err = RuntimeAddressError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if let Some(name) = value.strip_prefix("fixture:") {
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            return if valid {
                Ok(Self::Fixture { name: name.to_owned() })
            } else {
                Err(RuntimeAddressError::BadFixtureName(name.to_owned()))
            };
        }
        if value == "local" {
            return Ok(Self::Local { state_dir: None });
        }
        if let Some(dir) = value.strip_prefix("local:") {
            if !dir.starts_with('/') {
                return Err(RuntimeAddressError::RelativeStateDir(dir.to_owned()));
            }
            return Ok(Self::Local { state_dir: Some(dir.to_owned()) });
        }
        if let Some(url) = value.strip_prefix("gateway:") {
            return parse_gateway(url).ok_or_else(|| RuntimeAddressError::BadGateway(value.to_owned()));
        }
        if let Some(rest) = value.strip_prefix("ssh://") {
            return parse_ssh(rest).ok_or_else(|| RuntimeAddressError::BadSsh(value.to_owned()));
        }
        Err(RuntimeAddressError::Unknown(value.to_owned()))
    }
}

/// `ws://host[:port][/path]` or `wss://…`, host and path in a conservative character set (no
/// credentials in the URL: the token comes from a file or the environment).
fn parse_gateway(url: &str) -> Option<RuntimeAddress> {
    let rest = url.strip_prefix("ws://").or_else(|| url.strip_prefix("wss://"))?;
    let (authority, path) = match rest.find('/') {
        Some(index) => (&rest[..index], &rest[index..]),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') => (host, Some(port.parse::<u16>().ok()?)),
        _ => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
        && !host.starts_with('-');
    let path_ok = path.len() <= 256 && path.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
    (host_ok && path_ok && port != Some(0)).then(|| RuntimeAddress::Gateway { url: url.to_owned() })
}

fn parse_ssh(rest: &str) -> Option<RuntimeAddress> {
    let (authority, path) = match rest.find('/') {
        Some(index) => (&rest[..index], Some(&rest[index..])),
        None => (rest, None),
    };
    let (user, host_port) = match authority.split_once('@') {
        Some((user, host_port)) => (Some(user.to_owned()).filter(|u| !u.is_empty()), host_port),
        None => (None, authority),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, Some(port.parse::<u16>().ok()?)),
        None => (host_port, None),
    };
    // Never let a host or user start with '-': ssh would read it as an option.
    let safe = |text: &str| {
        !text.is_empty()
            && !text.starts_with('-')
            && text.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    if !safe(host) || user.as_deref().is_some_and(|u| !safe(u)) {
        return None;
    }
    let state_dir = path.filter(|p| *p != "/").map(|p| p.trim_end_matches('/').to_owned());
    Some(RuntimeAddress::Ssh { user, host: host.to_owned(), port, state_dir })
}

impl fmt::Display for RuntimeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixture { name } => write!(f, "fixture:{name}"),
            Self::Local { state_dir: None } => f.write_str("local"),
            Self::Local { state_dir: Some(dir) } => write!(f, "local:{dir}"),
            Self::Ssh { user, host, port, state_dir } => {
                f.write_str("ssh://")?;
                if let Some(user) = user {
                    write!(f, "{user}@")?;
                }
                f.write_str(host)?;
                if let Some(port) = port {
                    write!(f, ":{port}")?;
                }
                f.write_str(state_dir.as_deref().unwrap_or(""))
            }
            Self::Gateway { url } => write!(f, "gateway:{url}"),
        }
    }
}

#[cfg(test)]
mod tests;

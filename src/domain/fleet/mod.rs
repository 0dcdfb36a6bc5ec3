//! A fleet: the OpenClaw runtimes one jhf-warp deployment manages. OpenClaw's answer to more
//! than one trust boundary is more Gateways (one per tenant, team or environment), so a
//! deployment manages many; each is a named resource with an address, a credential *by
//! reference*, labels, an observe interval and a paused flag.
//!
//! Everything here is pure: the names and their rules, the runtimes file, label selectors,
//! who owns which runtime ([`balance`]), fleet rollouts and their waves ([`rollout`]), and a
//! runtime's health as the fleet views report it.

mod address;
pub mod balance;
mod file;
pub mod rollout;
mod selector;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use address::{RuntimeAddress, RuntimeAddressError};
pub use file::{MAX_FILE_BYTES, RuntimesFileError, parse_runtimes_file};
pub use selector::{Selector, SelectorError};

use super::desired::FieldViolation;

/// The name of the runtime `--runtime` configures (a fleet of one).
pub const DEFAULT_RUNTIME: &str = "default";
/// Most runtimes one deployment manages.
pub const MAX_RUNTIMES: usize = 2_000;
/// Most labels on one runtime.
pub const MAX_LABELS: usize = 32;
/// Shortest and longest observe interval a runtime may ask for.
pub const OBSERVE_INTERVAL_SECS: std::ops::RangeInclusive<u32> = 5..=86_400;

/// OpenClaw's tenant-id rule (`openclaw fleet`): `^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$`.
pub fn is_valid_runtime_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match bytes {
        [] => false,
        [one] => inner(one),
        [first, middle @ .., last] => {
            bytes.len() <= 40 && inner(first) && inner(last) && middle.iter().all(|b| inner(b) || *b == b'-')
        }
    }
}

/// A label key: `[a-z0-9]`, then up to 61 of `[a-z0-9._-]`, ending in `[a-z0-9]`.
pub fn is_valid_label_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let end = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match bytes {
        [] => false,
        [one] => end(one),
        [first, middle @ .., last] => {
            bytes.len() <= 63
                && end(first)
                && end(last)
                && middle.iter().all(|b| end(b) || b".-_".contains(b))
        }
    }
}

/// A label value: empty, or up to 63 of `[A-Za-z0-9._-]` starting and ending alphanumeric.
pub fn is_valid_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    match bytes {
        [] => true,
        [one] => one.is_ascii_alphanumeric(),
        [first, middle @ .., last] => {
            bytes.len() <= 63
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && middle.iter().all(|b| b.is_ascii_alphanumeric() || b".-_".contains(b))
        }
    }
}

/// Where a runtime's credential is found. The secret itself is never stored or returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// No credential (fixture, local and SSH runtimes; SSH authenticates with its identity).
    #[default]
    None,
    /// An owner-only file holding the token.
    File(String),
    /// An environment variable of the jhf-warp process holding the token.
    Env(String),
}

/// One runtime as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeSpec {
    pub name: String,
    /// `gateway:ws[s]://…`, `local[:<dir>]`, `ssh://…` or `fixture:<name>`.
    pub address: String,
    #[serde(default)]
    pub credential: Credential,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `None`: the deployment's `--observe-interval-secs`.
    #[serde(default)]
    pub observe_interval_secs: Option<u32>,
    /// A paused runtime is not observed, healed or rolled out to by the background loops.
    #[serde(default)]
    pub paused: bool,
}

impl RuntimeSpec {
    /// A runtime with this name and address and nothing else set.
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            credential: Credential::None,
            labels: BTreeMap::new(),
            observe_interval_secs: None,
            paused: false,
        }
    }

    /// The parsed address (valid specs only parse).
    pub fn parsed_address(&self) -> Result<RuntimeAddress, RuntimeAddressError> {
        self.address.parse()
    }
}

/// Where a runtime's definition came from: the runtimes file owns its entries (an RPC cannot
/// change or remove them, the next read of the file would undo it), RPCs own theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuntimeSource {
    /// `--runtimes-file` (or `--runtime`, the fleet of one).
    File,
    /// `RegisterRuntime`.
    Api,
}

impl RuntimeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "FILE",
            Self::Api => "API",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "FILE" => Some(Self::File),
            "API" => Some(Self::Api),
            _ => None,
        }
    }
}

/// A runtime as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredRuntime {
    pub spec: RuntimeSpec,
    pub source: RuntimeSource,
    /// Grows by one with every change; the etag is derived from it.
    pub version: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl RegisteredRuntime {
    /// The etag an `UpdateRuntime` must name.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.spec.name, self.version)
    }
}

/// The checks of one runtime definition that need no IO. `field` prefixes the violations'
/// field paths (`runtime`, `runtimes[3]`). Whether a token file exists and is owner-only is
/// checked by the caller.
pub fn validate_spec(spec: &RuntimeSpec, field: &str) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    if !is_valid_runtime_name(&spec.name) {
        out.push(FieldViolation::new(
            format!("{field}.name"),
            format!(
                "{:?} is not a runtime name (1–40 of a-z, 0-9 and '-', starting and ending with a letter or digit)",
                truncate(&spec.name)
            ),
        ));
    }
    let address = spec.parsed_address();
    if let Err(error) = &address {
        out.push(FieldViolation::new(format!("{field}.address"), truncate(&error.to_string())));
    }
    let is_gateway = matches!(address, Ok(RuntimeAddress::Gateway { .. }));
    match &spec.credential {
        Credential::None if is_gateway => out.push(FieldViolation::new(
            format!("{field}.token_file"),
            "a gateway runtime needs its token: token_file or token_env",
        )),
        Credential::None => {}
        Credential::File(_) | Credential::Env(_) if !is_gateway && address.is_ok() => {
            out.push(FieldViolation::new(
                format!("{field}.token_file"),
                "only gateway runtimes take a token (SSH uses --ssh-identity)",
            ))
        }
        Credential::File(path) if !path.starts_with('/') || path.len() > 4096 || path.contains('\0') => {
            out.push(FieldViolation::new(format!("{field}.token_file"), "must be an absolute path"))
        }
        Credential::Env(name) if !is_env_name(name) => out.push(FieldViolation::new(
            format!("{field}.token_env"),
            format!("{:?} is not an environment variable name ([A-Z_][A-Z0-9_]*)", truncate(name)),
        )),
        Credential::File(_) | Credential::Env(_) => {}
    }
    if spec.labels.len() > MAX_LABELS {
        out.push(FieldViolation::new(
            format!("{field}.labels"),
            format!("at most {MAX_LABELS} labels, got {}", spec.labels.len()),
        ));
    }
    for (key, value) in spec.labels.iter().take(MAX_LABELS + 1) {
        if !is_valid_label_key(key) {
            out.push(FieldViolation::new(
                format!("{field}.labels"),
                format!("{:?} is not a label key (1–63 of a-z, 0-9, '.', '-', '_')", truncate(key)),
            ));
        }
        if !is_valid_label_value(value) {
            out.push(FieldViolation::new(
                format!("{field}.labels[{}]", truncate(key)),
                format!("{:?} is not a label value (0–63 of A-Z, a-z, 0-9, '.', '-', '_')", truncate(value)),
            ));
        }
    }
    if let Some(secs) = spec.observe_interval_secs
        && !OBSERVE_INTERVAL_SECS.contains(&secs)
    {
        out.push(FieldViolation::new(
            format!("{field}.observe_interval_seconds"),
            format!(
                "must be between {} and {} seconds, got {secs}",
                OBSERVE_INTERVAL_SECS.start(),
                OBSERVE_INTERVAL_SECS.end()
            ),
        ));
    }
    out
}

fn is_env_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_uppercase() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
}

/// At most 80 characters of caller input in an error.
fn truncate(text: &str) -> String {
    if text.chars().count() <= 80 {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(80).collect::<String>())
    }
}

/// How a runtime is doing, as the fleet views report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuntimeHealth {
    /// Observed within its interval (twice over), config valid.
    Healthy,
    /// Observed, but the config is invalid or the last observation is overdue.
    Degraded,
    /// The last read failed.
    Unreachable,
    /// Never observed yet.
    Unknown,
    /// Paused: not observed on purpose.
    Paused,
}

impl RuntimeHealth {
    pub const ALL: [Self; 5] =
        [Self::Healthy, Self::Degraded, Self::Unreachable, Self::Unknown, Self::Paused];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "HEALTHY",
            Self::Degraded => "DEGRADED",
            Self::Unreachable => "UNREACHABLE",
            Self::Unknown => "UNKNOWN",
            Self::Paused => "PAUSED",
        }
    }
}

/// What a runtime's health is judged from.
#[derive(Debug, Clone, Copy)]
pub struct HealthFacts {
    pub paused: bool,
    /// Whether the last read failed.
    pub read_failed: bool,
    /// When the newest observation was last confirmed, if ever.
    pub last_seen: Option<chrono::DateTime<chrono::Utc>>,
    pub config_valid: bool,
    pub interval: chrono::TimeDelta,
    pub now: chrono::DateTime<chrono::Utc>,
}

/// A runtime's health: paused first, then a failed read, then what the observation says.
pub fn health(facts: HealthFacts) -> RuntimeHealth {
    if facts.paused {
        return RuntimeHealth::Paused;
    }
    if facts.read_failed {
        return RuntimeHealth::Unreachable;
    }
    match facts.last_seen {
        None => RuntimeHealth::Unknown,
        // Twice the interval plus a little: one slow read is not yet a problem.
        Some(seen) if facts.now - seen > facts.interval * 2 + chrono::TimeDelta::seconds(5) => {
            RuntimeHealth::Degraded
        }
        Some(_) if !facts.config_valid => RuntimeHealth::Degraded,
        Some(_) => RuntimeHealth::Healthy,
    }
}

#[cfg(test)]
mod tests;

//! Label selectors, as Kubernetes writes them: comma-separated requirements, all of which must
//! hold. `env=prod` (or `env==prod`), `env!=prod` (a runtime without `env` matches too),
//! `team` (has the label), `!team` (has not). The empty selector matches every runtime.

use std::collections::BTreeMap;
use std::fmt;

use super::{is_valid_label_key, is_valid_label_value};

/// Longest selector text accepted.
pub const MAX_SELECTOR_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

/// A parsed selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// Why a selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("selector {selector:?}: {reason}")]
pub struct SelectorError {
    pub selector: String,
    pub reason: String,
}

impl Selector {
    /// Parses `text`; empty (or blank) selects everything.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let fail = |reason: String| SelectorError { selector: text.chars().take(80).collect(), reason };
        if text.len() > MAX_SELECTOR_BYTES {
            return Err(fail(format!("longer than {MAX_SELECTOR_BYTES} bytes")));
        }
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim) {
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(fail("an empty requirement between commas".to_owned()));
            }
            let requirement = if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some(key) = part.strip_prefix('!') {
                Requirement::Absent(key.trim().to_owned())
            } else {
                Requirement::Exists(part.to_owned())
            };
            let (key, value) = match &requirement {
                Requirement::Equals(key, value) | Requirement::NotEquals(key, value) => (key, Some(value)),
                Requirement::Exists(key) | Requirement::Absent(key) => (key, None),
            };
            if !is_valid_label_key(key) {
                return Err(fail(format!("{key:?} is not a label key")));
            }
            if let Some(value) = value
                && !is_valid_label_value(value)
            {
                return Err(fail(format!("{value:?} is not a label value")));
            }
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    /// Whether a runtime with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|requirement| match requirement {
            Requirement::Equals(key, value) => labels.get(key) == Some(value),
            Requirement::NotEquals(key, value) => labels.get(key) != Some(value),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::Absent(key) => !labels.contains_key(key),
        })
    }

    /// Whether this selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for Selector {
    /// The canonical text (parses back to the same selector).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|requirement| match requirement {
                Requirement::Equals(key, value) => format!("{key}={value}"),
                Requirement::NotEquals(key, value) => format!("{key}!={value}"),
                Requirement::Exists(key) => key.clone(),
                Requirement::Absent(key) => format!("!{key}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

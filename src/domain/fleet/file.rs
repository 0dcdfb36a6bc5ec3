//! The runtimes file (`--runtimes-file`): the declarative list of a fleet's runtimes.
//!
//! ```yaml
//! runtimes:
//!   - name: editorial-staging
//!     address: "gateway:ws://10.0.0.7:19125"
//!     token_file: /etc/jhf-warp/tokens/editorial-staging   # or token_env: VAR_NAME
//!     labels: { env: staging, team: editorial }
//!     observe_interval_seconds: 30                          # optional
//!     paused: false                                         # optional
//! ```
//!
//! A file that does not parse, names a field it does not know, repeats a name or breaks a rule
//! is refused as a whole, with the line of each problem; the caller keeps the set it had.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::{Credential, MAX_RUNTIMES, RuntimeSpec, validate_spec};

/// Largest runtimes file read.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Why a runtimes file was refused: every problem, each with its line where known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", problems.join("; "))]
pub struct RuntimesFileError {
    pub problems: Vec<String>,
}

impl RuntimesFileError {
    fn one(problem: impl Into<String>) -> Self {
        Self { problems: vec![problem.into()] }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    runtimes: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    address: String,
    #[serde(default)]
    token_file: Option<String>,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    observe_interval_seconds: Option<u32>,
    #[serde(default)]
    paused: bool,
}

/// Parses and checks a runtimes file.
pub fn parse_runtimes_file(text: &str) -> Result<Vec<RuntimeSpec>, RuntimesFileError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(RuntimesFileError::one(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let file: File = serde_yaml_ng::from_str(text).map_err(|error| {
        RuntimesFileError::one(match error.location() {
            Some(at) => format!("line {}: {}", at.line(), strip_location(&error.to_string())),
            None => error.to_string(),
        })
    })?;
    if file.runtimes.len() > MAX_RUNTIMES {
        return Err(RuntimesFileError::one(format!(
            "{} runtimes; at most {MAX_RUNTIMES} are allowed",
            file.runtimes.len()
        )));
    }
    let lines = entry_lines(text);
    let place = |index: usize| match lines.get(index) {
        Some(line) => format!("line {line} (runtimes[{index}])"),
        None => format!("runtimes[{index}]"),
    };
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    let mut specs = Vec::with_capacity(file.runtimes.len());
    for (index, entry) in file.runtimes.into_iter().enumerate() {
        let credential = match (entry.token_file, entry.token_env) {
            (Some(_), Some(_)) => {
                problems.push(format!("{}: token_file and token_env are exclusive", place(index)));
                Credential::None
            }
            (Some(path), None) => Credential::File(path),
            (None, Some(var)) => Credential::Env(var),
            (None, None) => Credential::None,
        };
        let spec = RuntimeSpec {
            name: entry.name,
            address: entry.address,
            credential,
            labels: entry.labels,
            observe_interval_secs: entry.observe_interval_seconds,
            paused: entry.paused,
        };
        for violation in validate_spec(&spec, "runtime") {
            problems.push(format!("{}: {}: {}", place(index), violation.field, violation.description));
        }
        if !names.insert(spec.name.clone()) {
            problems.push(format!("{}: duplicate runtime name {:?}", place(index), spec.name));
        }
        specs.push(spec);
    }
    if problems.is_empty() { Ok(specs) } else { Err(RuntimesFileError { problems }) }
}

/// serde_yaml_ng appends "at line L column C" to its message; the caller says the line first.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// The 1-based line on which each entry of the `runtimes:` block list starts (block style;
/// a flow-style list yields none and problems are named by index only).
fn entry_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let mut indent: Option<usize> = None;
    let mut inside = false;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let depth = line.len() - trimmed.len();
        let item = trimmed.starts_with("- ") || trimmed == "-";
        // YAML lets a block list sit at its key's own indentation.
        if depth == 0 && !item {
            inside = trimmed.starts_with("runtimes:");
            indent = None;
            continue;
        }
        if !inside || !item {
            continue;
        }
        match indent {
            None => {
                indent = Some(depth);
                lines.push(number + 1);
            }
            Some(first) if first == depth => lines.push(number + 1),
            Some(_) => {}
        }
    }
    lines
}

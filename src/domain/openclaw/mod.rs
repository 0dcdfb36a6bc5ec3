//! Reading OpenClaw's JSON5 config into a form the rest of the domain can reason about.
//!
//! # Guarantees
//! - Both roster shapes are read: keyed `agents.entries` and legacy `agents.list`.
//! - Key order of the file is kept (serde_json `preserve_order`), so "first agent" and
//!   binding order mean what they mean in the file.
//! - Parse errors report a position only, never the text around it: the file holds secrets.

mod validate;

use serde_json::{Map, Value};

use super::model::RosterShape;

pub use validate::{ConfigIssue, validate};

/// The root keys OpenClaw has retired; their presence makes the config invalid.
pub const RETIRED_ROOT_KEYS: &[&str] = &["agent"];

/// A config file that parsed as a JSON5 object.
#[derive(Debug, Clone)]
pub struct ParsedConfig {
    /// The whole document.
    pub root: Map<String, Value>,
    /// How the roster is written.
    pub shape: RosterShape,
    /// The roster entries, in file order.
    pub entries: Vec<RosterEntry>,
}

/// One agent as written in the roster.
#[derive(Debug, Clone)]
pub struct RosterEntry {
    /// The id as written (`agents.entries` key or `agents.list[].id`).
    pub raw_id: String,
    /// The id lower-cased, as OpenClaw addresses the agent.
    pub id: String,
    /// Whether the id is a valid OpenClaw agent id.
    pub id_valid: bool,
    /// Dotted config path of the entry, e.g. `agents.entries.lead` or `agents.list.0`.
    pub path: String,
    /// The entry's settings (empty when the entry is not an object).
    pub settings: Map<String, Value>,
    /// Legacy `default: true` marker.
    pub legacy_default: bool,
}

/// Deepest nesting of arrays and objects jhf-warp parses. OpenClaw's schema needs fewer than
/// ten levels; a recursive parser fed thousands would exhaust the stack and abort the process.
pub const MAX_CONFIG_DEPTH: usize = 64;
/// Largest config text jhf-warp parses at all (adapters read at most their configured cap,
/// which is at most this).
pub const MAX_CONFIG_BYTES: usize = 64 << 20;

/// Checks size and nesting before any parser runs. Nesting is counted over the brackets
/// outside strings and comments (JSON5 syntax), in one linear pass.
pub fn check_bounds(raw: &str, max_bytes: usize) -> Result<(), ConfigParseError> {
    if raw.len() > max_bytes {
        return Err(ConfigParseError::TooLarge { bytes: raw.len(), cap: max_bytes });
    }
    let bytes = raw.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_CONFIG_DEPTH {
                    return Err(ConfigParseError::TooDeep { max: MAX_CONFIG_DEPTH });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Parses JSON5 text into a value after [`check_bounds`].
pub fn parse_json5_bounded(raw: &str) -> Result<Value, ConfigParseError> {
    check_bounds(raw, MAX_CONFIG_BYTES)?;
    json5::from_str(raw).map_err(|err| ConfigParseError::Syntax {
        // Only the code and position: the error's custom text could echo file content.
        detail: match (err.code(), err.position()) {
            (Some(code), Some(pos)) => {
                format!("{code} at line {} column {}", pos.line + 1, pos.column + 1)
            }
            (None, Some(pos)) => format!("at line {} column {}", pos.line + 1, pos.column + 1),
            (Some(code), None) => code.to_string(),
            (None, None) => "unknown position".to_owned(),
        },
    })
}

/// Why a config file could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigParseError {
    #[error("config is {bytes} bytes, more than the {cap} jhf-warp reads")]
    TooLarge { bytes: usize, cap: usize },
    #[error("config nests deeper than {max} levels")]
    TooDeep { max: usize },
    #[error("config could not be read: {reason}")]
    Refused { reason: String },
    #[error("config is not valid JSON5 ({detail})")]
    Syntax { detail: String },
    #[error("config root is not an object")]
    NotAnObject,
}

/// Parses the raw config text.
pub fn parse_config(raw: &str) -> Result<ParsedConfig, ConfigParseError> {
    let value = parse_json5_bounded(raw)?;
    let Value::Object(root) = value else {
        return Err(ConfigParseError::NotAnObject);
    };
    let (shape, entries) = read_roster(&root);
    Ok(ParsedConfig { root, shape, entries })
}

fn read_roster(root: &Map<String, Value>) -> (RosterShape, Vec<RosterEntry>) {
    let agents = root.get("agents").and_then(Value::as_object);
    if let Some(entries) = agents.and_then(|a| a.get("entries")).and_then(Value::as_object) {
        let roster = entries
            .iter()
            .map(|(key, settings)| RosterEntry {
                raw_id: key.clone(),
                id: key.to_ascii_lowercase(),
                id_valid: is_valid_agent_id(key),
                path: format!("agents.entries.{key}"),
                settings: settings.as_object().cloned().unwrap_or_default(),
                legacy_default: false,
            })
            .collect();
        return (RosterShape::Entries, roster);
    }
    if let Some(list) = agents.and_then(|a| a.get("list")).and_then(Value::as_array) {
        let roster = list
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let settings = item.as_object().cloned().unwrap_or_default();
                let raw_id = settings.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
                RosterEntry {
                    id: raw_id.to_ascii_lowercase(),
                    id_valid: is_valid_agent_id(&raw_id),
                    raw_id,
                    path: format!("agents.list.{index}"),
                    legacy_default: settings.get("default").and_then(Value::as_bool) == Some(true),
                    settings,
                }
            })
            .collect();
        return (RosterShape::List, roster);
    }
    (RosterShape::None, Vec::new())
}

/// Returns true when `id` is a valid OpenClaw agent id: `^[a-z0-9][a-z0-9_-]{0,63}$`,
/// case-insensitive.
pub fn is_valid_agent_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    let Some((first, rest)) = bytes.split_first() else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && rest.len() <= 63
        && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// Returns the value at a dotted path of object keys.
pub fn value_at<'a>(root: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(root.get(*first)?, |value, key| value.as_object()?.get(*key))
}

/// Returns the string at a dotted path, if it is a string.
pub fn str_at<'a>(root: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    value_at(root, path).and_then(Value::as_str)
}

/// Returns the strings of a JSON array (non-strings are skipped); empty when absent.
pub fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_roster_is_read_in_file_order_with_lower_cased_ids() {
        let parsed = parse_config(
            r#"{
              // comments and trailing commas are JSON5
              agents: { ownership: "explicit", entries: { Zed: {}, alpha: { name: "A" }, } },
            }"#,
        )
        .unwrap();
        assert_eq!(parsed.shape, RosterShape::Entries);
        let ids: Vec<_> = parsed.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["zed", "alpha"]);
        assert_eq!(parsed.entries[0].raw_id, "Zed");
        assert_eq!(parsed.entries[1].path, "agents.entries.alpha");
    }

    #[test]
    fn legacy_list_roster_is_read_with_its_default_marker() {
        let parsed =
            parse_config(r#"{ agents: { list: [ { id: "lead", default: true }, { id: "writer" } ] } }"#)
                .unwrap();
        assert_eq!(parsed.shape, RosterShape::List);
        assert!(parsed.entries[0].legacy_default);
        assert!(!parsed.entries[1].legacy_default);
        assert_eq!(parsed.entries[1].path, "agents.list.1");
    }

    #[test]
    fn a_config_without_roster_has_shape_none() {
        let parsed = parse_config("{}").unwrap();
        assert_eq!(parsed.shape, RosterShape::None);
        assert!(parsed.entries.is_empty());
    }

    #[test]
    fn syntax_errors_report_a_position_but_no_file_content() {
        let err = parse_config("{ token: \"sk-SECRET\" ").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 1"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
        assert_eq!(parse_config("[1, 2]").unwrap_err(), ConfigParseError::NotAnObject);
    }

    #[test]
    fn agent_id_rule_matches_openclaw() {
        assert!(is_valid_agent_id("lead"));
        assert!(is_valid_agent_id("QA"));
        assert!(is_valid_agent_id("a_b-c9"));
        assert!(!is_valid_agent_id("QA Team"));
        assert!(!is_valid_agent_id("-lead"));
        assert!(!is_valid_agent_id(""));
        assert!(is_valid_agent_id(&"a".repeat(64)));
        assert!(!is_valid_agent_id(&"a".repeat(65)));
    }
}

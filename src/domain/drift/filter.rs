//! The `filter` of `ListDriftItems`: a subset of AIP-160 — `field = VALUE` terms joined by
//! `AND`, fields `state`, `severity`, `kind`; values are enum names with or without their
//! prefix (`CONFIRMED` or `DRIFT_STATE_CONFIRMED`), case-insensitive.

use super::DriftKind;
use super::tracker::{DriftState, TrackedItem};
use crate::domain::model::Severity;

/// One `field = VALUE` term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterTerm {
    State(DriftState),
    Severity(Severity),
    Kind(DriftKind),
}

/// A parsed filter: every term must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftFilter {
    pub terms: Vec<FilterTerm>,
}

impl DriftFilter {
    /// Returns true when the item matches every term.
    pub fn matches(&self, item: &TrackedItem) -> bool {
        self.terms.iter().all(|term| match term {
            FilterTerm::State(state) => item.state == *state,
            FilterTerm::Severity(severity) => item.difference.severity == *severity,
            FilterTerm::Kind(kind) => item.difference.kind == *kind,
        })
    }
}

/// Returns the UPPER_SNAKE name of a severity.
pub fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "INFO",
        Severity::Warning => "WARNING",
        Severity::Error => "ERROR",
        Severity::Critical => "CRITICAL",
    }
}

const SEVERITIES: [Severity; 4] = [Severity::Info, Severity::Warning, Severity::Error, Severity::Critical];

fn lookup<T: Copy>(value: &str, prefix: &str, all: &[T], name: impl Fn(T) -> &'static str) -> Option<T> {
    let upper = value.to_ascii_uppercase();
    let bare = upper.strip_prefix(prefix).unwrap_or(&upper);
    all.iter().copied().find(|candidate| name(*candidate) == bare)
}

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 1024;

/// Returns at most 40 characters of caller input, for echoing it in an error.
fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Parses a filter; the error says what is wrong, for a `BadRequest` field violation (echoing
/// caller input only truncated).
pub fn parse(text: &str) -> Result<DriftFilter, String> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(format!("longer than {MAX_FILTER_BYTES} bytes"));
    }
    let spaced = text.replace('=', " = ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut terms = Vec::new();
    for (index, chunk) in tokens.split(|token| *token == "AND").enumerate() {
        if tokens.is_empty() {
            break;
        }
        let [field, "=", value] = chunk else {
            return Err(format!(
                "term {} must look like `field = VALUE` (terms are joined by AND)",
                index + 1
            ));
        };
        let term = match field.to_ascii_lowercase().as_str() {
            "state" => {
                lookup(value, "DRIFT_STATE_", &DriftState::ALL, DriftState::as_str).map(FilterTerm::State)
            }
            "severity" => lookup(value, "SEVERITY_", &SEVERITIES, severity_name).map(FilterTerm::Severity),
            "kind" => lookup(value, "DRIFT_KIND_", &DriftKind::ALL, DriftKind::as_str).map(FilterTerm::Kind),
            other => {
                return Err(format!("unknown field `{}` (expected state, severity or kind)", shown(other)));
            }
        };
        terms.push(term.ok_or_else(|| format!("unknown {} value `{}`", shown(field), shown(value)))?);
    }
    Ok(DriftFilter { terms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_filter_has_no_terms() {
        assert_eq!(parse("").unwrap(), DriftFilter::default());
        assert_eq!(parse("   ").unwrap(), DriftFilter::default());
    }

    #[test]
    fn terms_accept_bare_and_prefixed_names_in_any_case() {
        let filter =
            parse("state = CONFIRMED AND severity=severity_critical AND kind = DRIFT_KIND_EDGE_UNEXPECTED")
                .unwrap();
        assert_eq!(
            filter.terms,
            [
                FilterTerm::State(DriftState::Confirmed),
                FilterTerm::Severity(Severity::Critical),
                FilterTerm::Kind(DriftKind::EdgeUnexpected)
            ]
        );
    }

    #[test]
    fn malformed_filters_say_what_is_wrong() {
        assert!(parse("colour = RED").unwrap_err().contains("unknown field"));
        assert!(parse("state = SOMETIMES").unwrap_err().contains("unknown state value"));
        assert!(parse("state CONFIRMED").unwrap_err().contains("field = VALUE"));
        assert!(parse("state = CONFIRMED OR state = PENDING").is_err());
    }
}

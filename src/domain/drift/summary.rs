//! The drift summary: counts, attention and the state that was compared.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DriftKind;
use super::tracker::{DriftState, TrackedItem};
use crate::domain::model::Severity;
use crate::domain::observation::ObservationRecord;

/// What `GetDriftSummary` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftSummary {
    /// A desired topology exists and no item is open.
    pub in_sync: bool,
    /// Confirmed or flapping items nobody acknowledged.
    pub needs_attention: i32,
    /// Every state with its count (zeros included).
    pub by_state: Vec<(DriftState, i32)>,
    /// Every severity with its count of open items.
    pub by_severity: Vec<(Severity, i32)>,
    /// Kinds present among open items, with counts.
    pub by_kind: Vec<(DriftKind, i32)>,
    pub last_observation_at: Option<DateTime<Utc>>,
    pub desired_generation: i64,
    pub desired_revision: String,
    pub observed_revision: String,
    pub config_hash: String,
}

const SEVERITIES: [Severity; 4] = [Severity::Info, Severity::Warning, Severity::Error, Severity::Critical];

/// Summarises tracked items against the compared desired revision and observation.
pub fn summarize(
    items: &BTreeMap<String, TrackedItem>,
    desired: Option<(i64, &str)>,
    observation: Option<&ObservationRecord>,
) -> DriftSummary {
    let open: Vec<&TrackedItem> = items.values().filter(|item| item.state.is_open()).collect();
    let by_state = DriftState::ALL
        .iter()
        .map(|state| (*state, items.values().filter(|item| item.state == *state).count() as i32))
        .collect();
    let by_severity = SEVERITIES
        .iter()
        .map(|severity| {
            (*severity, open.iter().filter(|item| item.difference.severity == *severity).count() as i32)
        })
        .collect();
    let mut kinds: BTreeMap<DriftKind, i32> = BTreeMap::new();
    for item in &open {
        *kinds.entry(item.difference.kind).or_default() += 1;
    }
    DriftSummary {
        in_sync: desired.is_some() && open.is_empty(),
        needs_attention: open.iter().filter(|item| item.needs_attention()).count() as i32,
        by_state,
        by_severity,
        by_kind: kinds.into_iter().collect(),
        last_observation_at: observation.map(|record| record.last_seen_at),
        desired_generation: desired.map(|(generation, _)| generation).unwrap_or(0),
        desired_revision: desired.map(|(_, revision)| revision.to_owned()).unwrap_or_default(),
        observed_revision: observation.map(|record| record.revision.clone()).unwrap_or_default(),
        config_hash: observation.map(|record| record.config_hash.clone()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::drift::tracker::{TrackerConfig, observe};
    use crate::domain::drift::{DriftDifference, DriftKind};

    #[test]
    fn no_open_items_with_a_desired_topology_is_in_sync() {
        let summary = summarize(&BTreeMap::new(), Some((1, "rev")), None);
        assert!(summary.in_sync);
        assert_eq!(summary.by_state.len(), 4);
        assert!(
            !summarize(&BTreeMap::new(), None, None).in_sync,
            "no desired topology, nothing to be in sync with"
        );
    }

    #[test]
    fn open_items_are_counted_by_state_severity_and_kind() {
        let mut items = BTreeMap::new();
        let difference = DriftDifference {
            key: "EDGE_UNEXPECTED/a->b:SEND".into(),
            kind: DriftKind::EdgeUnexpected,
            severity: Severity::Critical,
            subject: "a->b:SEND".into(),
            explanation: String::new(),
            fields: vec![],
        };
        observe(&mut items, &[difference], Utc::now(), &TrackerConfig::default());
        let summary = summarize(&items, Some((1, "rev")), None);
        assert!(!summary.in_sync);
        assert!(summary.by_state.contains(&(DriftState::Pending, 1)));
        assert!(summary.by_severity.contains(&(Severity::Critical, 1)));
        assert_eq!(summary.by_kind, [(DriftKind::EdgeUnexpected, 1)]);
        assert_eq!(summary.needs_attention, 0, "pending items do not page");
    }
}

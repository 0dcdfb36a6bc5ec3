use chrono::TimeZone;

use super::*;
use crate::domain::drift::DriftKind;
use crate::domain::model::Severity;

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn item(key: &str) -> DriftDifference {
    DriftDifference {
        key: key.to_owned(),
        kind: DriftKind::AgentMissing,
        severity: Severity::Error,
        subject: key.to_owned(),
        explanation: "missing".to_owned(),
        fields: Vec::new(),
    }
}

struct Tracker {
    items: BTreeMap<String, TrackedItem>,
    config: TrackerConfig,
}

impl Tracker {
    fn new() -> Self {
        Self { items: BTreeMap::new(), config: TrackerConfig::default() }
    }

    fn see(&mut self, at: i64, keys: &[&str]) -> ObserveOutcome {
        let current: Vec<_> = keys.iter().map(|k| item(k)).collect();
        observe(&mut self.items, &current, t(at), &self.config)
    }

    fn state(&self, key: &str) -> DriftState {
        self.items[key].state
    }
}

#[test]
fn a_new_item_is_pending() {
    let mut tracker = Tracker::new();
    let outcome = tracker.see(0, &["A/x"]);
    assert_eq!(tracker.state("A/x"), DriftState::Pending);
    assert_eq!(outcome.transitions, [Transition { key: "A/x".into(), from: None, to: DriftState::Pending }]);
}

#[test]
fn two_sightings_inside_the_span_stay_pending() {
    let mut tracker = Tracker::new();
    tracker.see(0, &["A/x"]);
    tracker.see(30, &["A/x"]);
    tracker.see(59, &["A/x"]);
    assert_eq!(tracker.state("A/x"), DriftState::Pending);
}

#[test]
fn two_sightings_spanning_the_window_confirm() {
    let mut tracker = Tracker::new();
    tracker.see(0, &["A/x"]);
    let outcome = tracker.see(60, &["A/x"]);
    assert_eq!(tracker.state("A/x"), DriftState::Confirmed);
    assert_eq!(outcome.transitions[0].from, Some(DriftState::Pending));
}

#[test]
fn one_sighting_never_confirms_however_old() {
    let mut tracker = Tracker::new();
    tracker.see(0, &["A/x"]);
    tracker.see(100, &[]);
    tracker.see(200, &["A/x"]);
    assert_eq!(tracker.state("A/x"), DriftState::Pending, "an absence breaks the consecutive run");
    tracker.see(201, &["A/x"]);
    assert_eq!(tracker.state("A/x"), DriftState::Pending, "the span is measured on the new run");
    tracker.see(260, &["A/x"]);
    assert_eq!(tracker.state("A/x"), DriftState::Confirmed);
}

#[test]
fn two_absences_resolve_and_one_does_not() {
    let mut tracker = Tracker::new();
    tracker.see(0, &["A/x"]);
    tracker.see(60, &["A/x"]);
    tracker.see(90, &[]);
    assert_eq!(tracker.state("A/x"), DriftState::Confirmed);
    let outcome = tracker.see(120, &[]);
    assert_eq!(tracker.state("A/x"), DriftState::Resolved);
    assert_eq!(outcome.transitions[0].from, Some(DriftState::Confirmed));
}

#[test]
fn three_reopenings_inside_the_window_flap_instead_of_confirming() {
    let mut tracker = Tracker::new();
    let mut now = 0;
    tracker.see(now, &["A/x"]);
    for _ in 0..3 {
        now += 10;
        tracker.see(now, &[]);
        now += 10;
        tracker.see(now, &[]);
        assert_eq!(tracker.state("A/x"), DriftState::Resolved);
        now += 10;
        tracker.see(now, &["A/x"]);
    }
    assert_eq!(tracker.state("A/x"), DriftState::Flapping);
    // Stable presence does not confirm while the window still holds three reopenings.
    tracker.see(now + 120, &["A/x"]);
    assert_eq!(tracker.state("A/x"), DriftState::Flapping);
    // Nor do absences resolve it.
    tracker.see(now + 130, &[]);
    tracker.see(now + 140, &[]);
    assert_eq!(tracker.state("A/x"), DriftState::Flapping);
}

#[test]
fn reopenings_outside_the_window_do_not_flap() {
    let mut tracker = Tracker::new();
    let mut now = 0;
    tracker.see(now, &["A/x"]);
    for _ in 0..3 {
        now += 1000; // reopenings 1000 s apart: never three inside 30 minutes
        tracker.see(now, &[]);
        tracker.see(now + 1, &[]);
        tracker.see(now + 2, &["A/x"]);
    }
    assert_eq!(tracker.state("A/x"), DriftState::Pending);
}

#[test]
fn flapping_ends_once_the_window_drains() {
    let mut tracker = Tracker::new();
    let mut now = 0;
    tracker.see(now, &["A/x"]);
    for _ in 0..3 {
        tracker.see(now + 1, &[]);
        tracker.see(now + 2, &[]);
        now += 3;
        tracker.see(now, &["A/x"]);
    }
    assert_eq!(tracker.state("A/x"), DriftState::Flapping);
    tracker.see(now + 1801, &["A/x"]);
    tracker.see(now + 1900, &["A/x"]);
    assert_eq!(tracker.state("A/x"), DriftState::Confirmed);
}

#[test]
fn acknowledgement_lasts_until_the_item_changes() {
    let mut tracker = Tracker::new();
    tracker.see(0, &["A/x"]);
    tracker.see(60, &["A/x"]);
    assert!(tracker.items["A/x"].needs_attention());
    assert!(acknowledge(tracker.items.get_mut("A/x").unwrap(), "op"));
    tracker.see(90, &["A/x"]);
    assert!(!tracker.items["A/x"].needs_attention(), "same details: still quiet");
    let mut changed = item("A/x");
    changed.explanation = "missing, and more".to_owned();
    observe(&mut tracker.items, &[changed], t(120), &tracker.config);
    assert!(tracker.items["A/x"].needs_attention(), "new details: loud again");
}

#[test]
fn tracker_state_survives_a_round_trip_through_storage() {
    let mut tracker = Tracker::new();
    tracker.see(0, &["A/x"]);
    let stored = serde_json::to_string(&tracker.items).unwrap();
    let mut restored: BTreeMap<String, TrackedItem> = serde_json::from_str(&stored).unwrap();
    observe(&mut restored, &[item("A/x")], t(60), &tracker.config);
    assert_eq!(restored["A/x"].state, DriftState::Confirmed, "confirmation continues after a restart");
}

#[test]
fn old_resolved_items_are_forgotten() {
    let mut tracker = Tracker::new();
    tracker.see(0, &["A/x"]);
    tracker.see(1, &[]);
    tracker.see(2, &[]);
    let outcome = tracker.see(2 + 1800, &[]);
    assert!(outcome.forgotten.contains("A/x"));
    assert!(tracker.items.is_empty());
}

#[test]
fn thresholds_are_configurable() {
    let mut tracker = Tracker::new();
    tracker.config.confirm_observations = 1;
    tracker.config.confirm_span = TimeDelta::zero();
    tracker.see(0, &["A/x"]);
    assert_eq!(tracker.state("A/x"), DriftState::Confirmed);
}

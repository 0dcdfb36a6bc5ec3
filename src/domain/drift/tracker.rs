//! The anti-flap tracker: follows each drift item across observations so that only stable
//! drift is acted upon and flapping drift does not page anyone.
//!
//! # Guarantees
//! - Pure and clock-free: the caller passes `now`, so tests drive time explicitly.
//! - PENDING → CONFIRMED after `confirm_observations` consecutive sightings spanning at least
//!   `confirm_span`; open → RESOLVED after `resolve_absences` consecutive absences; an item
//!   reopening (RESOLVED → open) `flap_reopenings` times within `flap_window` is FLAPPING.
//! - FLAPPING is sticky while the window still holds that many reopenings: a flapping item
//!   neither confirms nor resolves (both would be noise) until the window drains.
//! - An acknowledgement lasts until the item changes again (new details or a reopening).
//! - Resolved items without recent reopenings are forgotten after `flap_window`, which bounds
//!   the tracked set.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::DriftDifference;

/// Thresholds of the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerConfig {
    pub confirm_observations: u32,
    pub confirm_span: TimeDelta,
    pub resolve_absences: u32,
    pub flap_reopenings: u32,
    pub flap_window: TimeDelta,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            confirm_observations: 2,
            confirm_span: TimeDelta::seconds(60),
            resolve_absences: 2,
            flap_reopenings: 3,
            flap_window: TimeDelta::minutes(30),
        }
    }
}

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DriftState {
    Pending,
    Confirmed,
    Resolved,
    Flapping,
}

impl DriftState {
    /// Every state, in declaration order.
    pub const ALL: [Self; 4] = [Self::Pending, Self::Confirmed, Self::Resolved, Self::Flapping];

    /// Returns true for PENDING, CONFIRMED and FLAPPING.
    pub fn is_open(self) -> bool {
        self != Self::Resolved
    }

    /// Returns the UPPER_SNAKE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Resolved => "RESOLVED",
            Self::Flapping => "FLAPPING",
        }
    }
}

/// One drift item with its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedItem {
    pub difference: DriftDifference,
    pub state: DriftState,
    /// Start of the current open episode.
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Start of the current run of consecutive sightings (the confirm span is measured on it).
    pub present_since: DateTime<Utc>,
    pub state_changed_at: DateTime<Utc>,
    pub consecutive_present: u32,
    pub consecutive_absent: u32,
    /// Times of RESOLVED → open reopenings still inside the flap window.
    pub reopenings: Vec<DateTime<Utc>>,
    /// Who acknowledged the item since it last changed.
    pub acknowledged_by: Option<String>,
}

impl TrackedItem {
    /// Returns the item key.
    pub fn key(&self) -> &str {
        &self.difference.key
    }

    /// Returns true when the item is confirmed or flapping and nobody acknowledged it.
    pub fn needs_attention(&self) -> bool {
        matches!(self.state, DriftState::Confirmed | DriftState::Flapping) && self.acknowledged_by.is_none()
    }
}

/// A state change of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub key: String,
    /// `None` for a new item.
    pub from: Option<DriftState>,
    pub to: DriftState,
}

/// What one observation did to the tracked set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObserveOutcome {
    /// State changes, in key order.
    pub transitions: Vec<Transition>,
    /// Items that changed in any way and must be persisted.
    pub changed: BTreeSet<String>,
    /// Items that were forgotten and must be deleted.
    pub forgotten: BTreeSet<String>,
}

/// Feeds one observation (`current` differences at `now`) into the tracked items.
pub fn observe(
    items: &mut BTreeMap<String, TrackedItem>,
    current: &[DriftDifference],
    now: DateTime<Utc>,
    config: &TrackerConfig,
) -> ObserveOutcome {
    let mut outcome = ObserveOutcome::default();
    let present: BTreeSet<&str> = current.iter().map(|d| d.key.as_str()).collect();
    for difference in current {
        let key = difference.key.clone();
        let is_new = !items.contains_key(&key);
        let item = items.entry(key.clone()).or_insert_with(|| TrackedItem {
            difference: difference.clone(),
            state: DriftState::Pending,
            first_seen_at: now,
            last_seen_at: now,
            present_since: now,
            state_changed_at: now,
            consecutive_present: 0,
            consecutive_absent: 0,
            reopenings: Vec::new(),
            acknowledged_by: None,
        });
        let previous = if is_new { None } else { Some(item.state) };
        if item.difference != *difference {
            item.difference = difference.clone();
            item.acknowledged_by = None;
        }
        prune(item, now, config);
        if item.consecutive_present == 0 {
            item.present_since = now;
        }
        item.last_seen_at = now;
        item.consecutive_absent = 0;
        if item.state == DriftState::Resolved {
            item.reopenings.push(now);
            item.first_seen_at = now;
            item.consecutive_present = 1;
            item.acknowledged_by = None;
            let flapping = item.reopenings.len() as u32 >= config.flap_reopenings;
            item.state = if flapping { DriftState::Flapping } else { DriftState::Pending };
        } else {
            item.consecutive_present += 1;
        }
        let confirmable = item.consecutive_present >= config.confirm_observations
            && now - item.present_since >= config.confirm_span;
        let window_full = item.reopenings.len() as u32 >= config.flap_reopenings;
        if confirmable
            && (item.state == DriftState::Pending || (item.state == DriftState::Flapping && !window_full))
        {
            item.state = DriftState::Confirmed;
        }
        record(&mut outcome, item, previous, now);
    }
    for (key, item) in items.iter_mut() {
        if present.contains(key.as_str()) || !item.state.is_open() {
            continue;
        }
        let previous = Some(item.state);
        prune(item, now, config);
        item.consecutive_present = 0;
        item.consecutive_absent += 1;
        let window_full = item.reopenings.len() as u32 >= config.flap_reopenings;
        let sticky_flap = item.state == DriftState::Flapping && window_full;
        if item.consecutive_absent >= config.resolve_absences && !sticky_flap {
            item.state = DriftState::Resolved;
        }
        record(&mut outcome, item, previous, now);
    }
    let stale: Vec<String> = items
        .iter()
        .filter(|(_, item)| {
            item.state == DriftState::Resolved
                && now - item.state_changed_at >= config.flap_window
                && item.reopenings.iter().all(|t| now - *t >= config.flap_window)
        })
        .map(|(key, _)| key.clone())
        .collect();
    for key in stale {
        items.remove(&key);
        outcome.changed.remove(&key);
        outcome.forgotten.insert(key);
    }
    outcome.transitions.sort_by(|a, b| a.key.cmp(&b.key));
    outcome
}

fn prune(item: &mut TrackedItem, now: DateTime<Utc>, config: &TrackerConfig) {
    item.reopenings.retain(|t| now - *t < config.flap_window);
}

fn record(
    outcome: &mut ObserveOutcome,
    item: &mut TrackedItem,
    previous: Option<DriftState>,
    now: DateTime<Utc>,
) {
    outcome.changed.insert(item.key().to_owned());
    if previous != Some(item.state) {
        item.state_changed_at = now;
        outcome.transitions.push(Transition { key: item.key().to_owned(), from: previous, to: item.state });
    }
}

/// Marks an item acknowledged by `by`; returns false when it already was.
pub fn acknowledge(item: &mut TrackedItem, by: &str) -> bool {
    if item.acknowledged_by.is_some() {
        return false;
    }
    item.acknowledged_by = Some(by.to_owned());
    true
}

#[cfg(test)]
mod tests;

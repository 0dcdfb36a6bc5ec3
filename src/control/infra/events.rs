//! In-process change notifications for watch streams. Best effort by design: a subscriber
//! that falls behind is told so (`Lagged`) and re-synchronises from the store, which is the
//! source of truth.

use tokio::sync::broadcast;

use crate::domain::Topology;
use crate::domain::desired::DesiredRevision;
use crate::domain::drift::tracker::{DriftState, TrackedItem};
use crate::domain::rollout::Rollout;

/// Buffered events per channel before slow subscribers lag.
const CAPACITY: usize = 256;

/// A topology change.
#[derive(Debug, Clone)]
pub enum TopologyEvent {
    Desired(DesiredRevision),
    Observed(Topology),
}

/// A drift item state transition.
#[derive(Debug, Clone)]
pub struct DriftEvent {
    pub item: TrackedItem,
    pub previous: Option<DriftState>,
}

/// The event channels of the application.
#[derive(Debug, Clone)]
pub struct EventBus {
    topology: broadcast::Sender<TopologyEvent>,
    drift: broadcast::Sender<DriftEvent>,
    rollouts: broadcast::Sender<Rollout>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            topology: broadcast::channel(CAPACITY).0,
            drift: broadcast::channel(CAPACITY).0,
            rollouts: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    /// Publishes a topology change (nobody listening is fine).
    pub fn publish_topology(&self, event: TopologyEvent) {
        let _ = self.topology.send(event);
    }

    /// Publishes a drift transition (nobody listening is fine).
    pub fn publish_drift(&self, event: DriftEvent) {
        let _ = self.drift.send(event);
    }

    /// Publishes a rollout after a change (nobody listening is fine).
    pub fn publish_rollout(&self, rollout: Rollout) {
        let _ = self.rollouts.send(rollout);
    }

    /// Subscribes to rollout changes.
    pub fn rollouts(&self) -> broadcast::Receiver<Rollout> {
        self.rollouts.subscribe()
    }

    /// Subscribes to topology changes.
    pub fn topology(&self) -> broadcast::Receiver<TopologyEvent> {
        self.topology.subscribe()
    }

    /// Subscribes to drift transitions.
    pub fn drift(&self) -> broadcast::Receiver<DriftEvent> {
        self.drift.subscribe()
    }
}

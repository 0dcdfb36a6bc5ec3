//! A stored observation of the runtime.

use chrono::{DateTime, Utc};

use super::{Inventory, Topology};

/// The metadata of one stored observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationRecord {
    pub id: i64,
    pub runtime: String,
    pub observed_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// How many consecutive identical reads this record stands for.
    pub seen_count: i64,
    pub config_hash: String,
    pub revision: String,
    pub config_valid: bool,
    pub finding_count: i32,
}

/// An observation with its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObservation {
    pub record: ObservationRecord,
    pub inventory: Inventory,
    pub topology: Topology,
}

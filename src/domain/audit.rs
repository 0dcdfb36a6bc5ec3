//! The tamper-evident audit log: every mutation appends one event whose hash covers the
//! previous event's hash, so editing, deleting or reordering any stored event breaks the chain
//! from that point on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event to append (the store assigns sequence, time and hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    /// Token name of the caller (or `jhf-warp` for the service itself).
    pub actor: String,
    /// gRPC method, e.g. `jhf.warp.v1.TopologyService/PutDesiredTopology`.
    pub method: String,
    /// What was changed, e.g. `desired-topology/3` or `lease/agent/lead`.
    pub resource: String,
    pub request_id: String,
    /// `OK` for an applied change.
    pub outcome: String,
    /// One line saying what changed (never a secret).
    pub summary: String,
}

/// Filters of `ListAuditEvents` (all optional, combined with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub method: Option<String>,
    pub resource: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub event: NewAuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// Returns the hash of an event: `sha256(prev_hash ‖ canonical event)`.
pub fn event_hash(prev_hash: &str, seq: i64, at: DateTime<Utc>, event: &NewAuditEvent) -> String {
    // A JSON array has one unambiguous encoding for these fields (no maps, fixed order).
    let canonical = serde_json::json!([
        seq,
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        event.actor,
        event.method,
        event.resource,
        event.request_id,
        event.outcome,
        event.summary,
    ]);
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

/// The first place the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

/// Checks a run of consecutive events that should follow `prev` (sequence and hash).
pub fn verify(events: &[AuditEvent], prev: (i64, &str)) -> Result<(), BrokenLink> {
    let (mut last_seq, mut last_hash) = (prev.0, prev.1.to_owned());
    for event in events {
        if event.seq != last_seq + 1 {
            return Err(BrokenLink {
                seq: last_seq + 1,
                reason: format!("event {} is missing", last_seq + 1),
            });
        }
        if event.prev_hash != last_hash {
            return Err(BrokenLink {
                seq: event.seq,
                reason: "prev_hash does not match the previous event".to_owned(),
            });
        }
        if event_hash(&event.prev_hash, event.seq, event.at, &event.event) != event.hash {
            return Err(BrokenLink {
                seq: event.seq,
                reason: "the event's content does not match its hash".to_owned(),
            });
        }
        last_seq = event.seq;
        last_hash = event.hash.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn chain(count: i64) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=count)
            .map(|seq| {
                let at = Utc.timestamp_opt(1_800_000_000 + seq, 0).unwrap();
                let event = NewAuditEvent {
                    actor: "op".into(),
                    method: "m".into(),
                    resource: format!("r/{seq}"),
                    request_id: format!("req-{seq}"),
                    outcome: "OK".into(),
                    summary: "s".into(),
                };
                let hash = event_hash(&prev, seq, at, &event);
                let stored = AuditEvent { seq, at, event, prev_hash: prev.clone(), hash: hash.clone() };
                prev = hash;
                stored
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5), (0, GENESIS_HASH)), Ok(()));
    }

    #[test]
    fn an_edited_event_is_the_first_broken_link() {
        let mut events = chain(5);
        events[2].event.summary = "rewritten".into();
        assert_eq!(verify(&events, (0, GENESIS_HASH)).unwrap_err().seq, 3);
    }

    #[test]
    fn a_deleted_event_breaks_the_chain_where_it_was() {
        let mut events = chain(5);
        events.remove(1);
        let broken = verify(&events, (0, GENESIS_HASH)).unwrap_err();
        assert_eq!(broken.seq, 2);
        assert!(broken.reason.contains("missing"));
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_next_link() {
        let mut events = chain(5);
        events[1].event.summary = "rewritten".into();
        events[1].hash = event_hash(&events[1].prev_hash, 2, events[1].at, &events[1].event);
        assert_eq!(verify(&events, (0, GENESIS_HASH)).unwrap_err().seq, 3);
    }
}

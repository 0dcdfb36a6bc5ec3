//! Outbound events: what jhf-warp tells other systems, as CloudEvents 1.0 in the structured JSON
//! mode, and the rules of their delivery (sinks and their filters, signatures, backoff).
//!
//! Pure: the store writes events in the transaction of their cause (the transactional outbox)
//! and the delivery worker sends them; both decide with the functions here.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// The CloudEvents `source` of every event.
pub const SOURCE: &str = "/jhf-warp";
/// Content type of a structured-mode CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";
/// The header carrying `sha256=<hex HMAC-SHA256 of the body>` under the sink's secret.
pub const SIGNATURE_HEADER: &str = "x-jhf-warp-signature";

/// What happened. The CloudEvents `type` is `dev.jhf.warp.<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A desired topology revision was stored.
    DesiredStored,
    /// A drift item became CONFIRMED.
    DriftConfirmed,
    /// A drift item became RESOLVED.
    DriftResolved,
    /// A drift item became FLAPPING.
    DriftFlapping,
    /// A rollout reached a final state (SUCCEEDED, FAILED, ROLLED_BACK).
    RolloutFinished,
    /// A watchdog observation opened.
    WatchdogRaised,
    /// A delegation was revoked (with its cascade).
    DelegationRevoked,
    /// ApplySetup wrote bootstrap files.
    SetupApplied,
    /// A fleet rollout ended (SUCCEEDED, FAILED, CANCELLED).
    FleetRolloutFinished,
}

impl EventType {
    /// Every type.
    pub const ALL: [Self; 9] = [
        Self::DesiredStored,
        Self::DriftConfirmed,
        Self::DriftResolved,
        Self::DriftFlapping,
        Self::RolloutFinished,
        Self::WatchdogRaised,
        Self::DelegationRevoked,
        Self::SetupApplied,
        Self::FleetRolloutFinished,
    ];

    /// The CloudEvents `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DesiredStored => "dev.jhf.warp.desired.stored",
            Self::DriftConfirmed => "dev.jhf.warp.drift.confirmed",
            Self::DriftResolved => "dev.jhf.warp.drift.resolved",
            Self::DriftFlapping => "dev.jhf.warp.drift.flapping",
            Self::RolloutFinished => "dev.jhf.warp.rollout.finished",
            Self::WatchdogRaised => "dev.jhf.warp.watchdog.raised",
            Self::DelegationRevoked => "dev.jhf.warp.delegation.revoked",
            Self::SetupApplied => "dev.jhf.warp.setup.applied",
            Self::FleetRolloutFinished => "dev.jhf.warp.fleet_rollout.finished",
        }
    }

    /// Parses a CloudEvents `type`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// An event to write into the outbox with its cause.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: EventType,
    /// The CloudEvents `subject`: the resource it is about, e.g. `desired/3`.
    pub subject: String,
    /// The event's `data` (JSON object).
    pub data: serde_json::Value,
}

impl NewEvent {
    /// Creates an event.
    pub fn new(event_type: EventType, subject: impl Into<String>, data: serde_json::Value) -> Self {
        Self { event_type, subject: subject.into(), data }
    }
}

/// An event as stored in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Position in the outbox: gap-free and in commit order.
    pub seq: i64,
    /// The CloudEvents `id` (a UUID); the same on every delivery attempt.
    pub ce_id: String,
    pub event_type: String,
    pub subject: String,
    /// The database time of the transaction that wrote it.
    pub time: DateTime<Utc>,
    /// The `data` as JSON text.
    pub data: String,
}

/// `desired.stored`: a desired revision was stored.
pub fn desired_stored(runtime: &str, revision: &super::desired::DesiredRevision) -> NewEvent {
    let topology = &revision.topology;
    NewEvent::new(
        EventType::DesiredStored,
        format!("desired/{runtime}/{}", revision.generation),
        serde_json::json!({
            "runtime": runtime,
            "generation": revision.generation,
            "etag": revision.etag,
            "revision": topology.revision,
            "author": revision.author,
            "agents": topology.nodes.len(),
            "edges": topology.edges.len(),
            "routes": topology.routes.len(),
        }),
    )
}

/// `drift.confirmed|resolved|flapping`: a drift item reached one of those states; `None` for
/// the states nobody is told about (PENDING).
pub fn drift_transition(
    runtime: &str,
    item: &super::drift::tracker::TrackedItem,
    from: Option<super::drift::tracker::DriftState>,
) -> Option<NewEvent> {
    use super::drift::tracker::DriftState;
    let event_type = match item.state {
        DriftState::Confirmed => EventType::DriftConfirmed,
        DriftState::Resolved => EventType::DriftResolved,
        DriftState::Flapping => EventType::DriftFlapping,
        DriftState::Pending => return None,
    };
    let difference = &item.difference;
    Some(NewEvent::new(
        event_type,
        format!("drift/{runtime}/{}", difference.key),
        serde_json::json!({
            "runtime": runtime,
            "key": difference.key,
            "kind": difference.kind.as_str(),
            "severity": difference.severity,
            "subject": difference.subject,
            "explanation": difference.explanation,
            "from": from.map(|state| state.as_str()),
            "to": item.state.as_str(),
            "first_seen_at": item.first_seen_at,
        }),
    ))
}

/// `rollout.finished`: a rollout reached a final state.
pub fn rollout_finished(rollout: &super::rollout::Rollout) -> NewEvent {
    NewEvent::new(
        EventType::RolloutFinished,
        format!("rollouts/{}", rollout.id),
        serde_json::json!({
            "id": rollout.id,
            "runtime": rollout.runtime,
            "plan_id": rollout.plan_id,
            "state": rollout.state.as_str(),
            "dry_run": rollout.dry_run,
            "actor": rollout.actor,
            "error": rollout.error,
            "created_at": rollout.created_at,
        }),
    )
}

/// `watchdog.raised`: a watchdog observation opened.
pub fn watchdog_raised(runtime: &str, observation: &super::watchdog::WatchdogObservation) -> NewEvent {
    let finding = &observation.finding;
    NewEvent::new(
        EventType::WatchdogRaised,
        format!("watchdog/{runtime}/{}", finding.key),
        serde_json::json!({
            "runtime": runtime,
            "key": finding.key,
            "kind": finding.kind,
            "severity": finding.severity,
            "subject": finding.subject,
            "message": finding.message,
            "first_seen_at": observation.first_seen_at,
        }),
    )
}

/// `delegation.revoked`: a grant and its cascade were revoked; `falling_edges` are the desired
/// relations the revocation removes (`from -KIND-> to`).
pub fn delegation_revoked(
    runtime: &str,
    id: &str,
    cascade: &[&str],
    reason: &str,
    actor: &str,
    falling_edges: &[String],
) -> NewEvent {
    NewEvent::new(
        EventType::DelegationRevoked,
        format!("delegations/{id}"),
        serde_json::json!({
            "runtime": runtime,
            "id": id,
            "cascade": cascade,
            "reason": reason,
            "actor": actor,
            "falling_edges": falling_edges,
        }),
    )
}

/// `setup.applied`: ApplySetup wrote the bootstrap files of a preview.
pub fn setup_applied(
    runtime: &str,
    preview_id: &str,
    written: usize,
    conflicts: usize,
    actor: &str,
) -> NewEvent {
    NewEvent::new(
        EventType::SetupApplied,
        format!("setup-previews/{preview_id}"),
        serde_json::json!({
            "runtime": runtime,
            "preview_id": preview_id,
            "files_written": written,
            "conflicts": conflicts,
            "actor": actor,
        }),
    )
}

/// `fleet_rollout.finished`: a fleet rollout ended.
pub fn fleet_rollout_finished(rollout: &super::fleet::rollout::FleetRollout) -> NewEvent {
    let by_state = |state: super::fleet::rollout::TargetState| {
        rollout.targets.iter().filter(|t| t.state == state).map(|t| t.runtime.as_str()).collect::<Vec<_>>()
    };
    use super::fleet::rollout::TargetState;
    NewEvent::new(
        EventType::FleetRolloutFinished,
        format!("fleet-rollouts/{}", rollout.id),
        serde_json::json!({
            "id": rollout.id,
            "state": rollout.state.as_str(),
            "selector": rollout.selector,
            "waves": rollout.waves,
            "succeeded": by_state(TargetState::Succeeded),
            "unchanged": by_state(TargetState::Unchanged),
            "failed": by_state(TargetState::Failed),
            "skipped": by_state(TargetState::Skipped),
            "error": rollout.error,
            "actor": rollout.actor,
        }),
    )
}

/// Formats 16 random bytes as a version-4 UUID.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// The structured-mode body of `event`: the same bytes on every attempt, so signatures and
/// receivers' de-duplication by `id` agree. `sequence` (the CloudEvents sequence extension)
/// is the outbox position as a decimal string: receivers can check per-sink order with it.
pub fn envelope(event: &StoredEvent) -> Vec<u8> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        specversion: &'static str,
        id: &'a str,
        source: &'static str,
        #[serde(rename = "type")]
        event_type: &'a str,
        subject: &'a str,
        time: String,
        datacontenttype: &'static str,
        sequence: String,
        data: &'a serde_json::value::RawValue,
    }
    let null = serde_json::value::RawValue::NULL;
    let data: Box<serde_json::value::RawValue> =
        serde_json::value::RawValue::from_string(event.data.clone()).unwrap_or_else(|_| null.to_owned());
    let body = Envelope {
        specversion: "1.0",
        id: &event.ce_id,
        source: SOURCE,
        event_type: &event.event_type,
        subject: &event.subject,
        time: event.time.to_rfc3339_opts(SecondsFormat::Millis, true),
        datacontenttype: "application/json",
        sequence: event.seq.to_string(),
        data: &data,
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The signature header's value for `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(super::page_token::hmac_sha256(secret, &[body])))
}

/// Which event types a sink receives: exact types or `prefix.*` patterns; empty = all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeFilter {
    patterns: Vec<String>,
}

/// Most patterns per sink (a config file is not a place for thousands).
pub const MAX_PATTERNS: usize = 32;

impl TypeFilter {
    /// Validates patterns: each names a known type or ends in `.*` / is `*`.
    pub fn new(patterns: Vec<String>) -> Result<Self, String> {
        if patterns.len() > MAX_PATTERNS {
            return Err(format!("at most {MAX_PATTERNS} type patterns"));
        }
        for pattern in &patterns {
            let known = EventType::parse(pattern).is_some()
                || pattern == "*"
                || pattern.strip_suffix('*').is_some_and(|prefix| {
                    prefix.ends_with('.') && EventType::ALL.iter().any(|t| t.as_str().starts_with(prefix))
                });
            if !known {
                return Err(format!(
                    "type pattern {pattern:?} matches no event type (known: {})",
                    EventType::ALL.map(EventType::as_str).join(", ")
                ));
            }
        }
        Ok(Self { patterns })
    }

    /// True when a sink with this filter receives `event_type`.
    pub fn accepts(&self, event_type: &str) -> bool {
        self.patterns.is_empty()
            || self.patterns.iter().any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => pattern == event_type,
            })
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not delivered yet: being tried (or waiting for its next attempt).
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up after the last attempt; `RedeliverEvent` tries again.
    Dead,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Pending, Self::Delivered, Self::Dead];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
            Self::Dead => "DEAD",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One event's delivery to one sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub sink: String,
    pub event: StoredEvent,
    pub state: DeliveryState,
    /// Attempts made since the delivery was created or last redelivered.
    pub attempts: u32,
    /// Why the last attempt failed (empty after a success).
    pub last_error: String,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// How a failed delivery is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before the delivery is dead-lettered.
    pub max_attempts: u32,
    /// Delay after the first failure (before jitter).
    pub initial: Duration,
    /// Longest delay between attempts.
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay before the next attempt after `attempts` failed ones: exponential from
    /// `initial` up to `max`, with "equal jitter" (half fixed, half random from `unit`, a value
    /// in [0, 1)), so a sink that comes back is not hit by every sender at once. A `Retry-After`
    /// the sink asked for is honoured up to `max`.
    pub fn delay(&self, attempts: u32, unit: f64, retry_after: Option<Duration>) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1u32 << doublings).min(self.max);
        let jittered = base / 2 + base.mul_f64(unit.clamp(0.0, 1.0) / 2.0);
        match retry_after {
            Some(asked) => jittered.max(asked.min(self.max)),
            None => jittered,
        }
    }
}

/// The result of one delivery attempt, as the store records it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; try again at `next_at`.
    Retry {
        error: String,
        next_at: DateTime<Utc>,
    },
    /// Failed for the last allowed time.
    Dead {
        error: String,
    },
}

/// Decides what a failed attempt leads to: retry after a delay or dead-letter.
pub fn after_failure(
    policy: &RetryPolicy,
    attempts_so_far: u32,
    error: String,
    now: DateTime<Utc>,
    unit: f64,
    retry_after: Option<Duration>,
) -> AttemptOutcome {
    let attempts = attempts_so_far + 1;
    if attempts >= policy.max_attempts {
        return AttemptOutcome::Dead { error };
    }
    let delay = policy.delay(attempts, unit, retry_after);
    let next_at = now + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::seconds(3600));
    AttemptOutcome::Retry { error, next_at }
}

/// A sink name: `[a-z0-9_-]`, 1..=64 chars (it is a metric label and a key).
pub fn valid_sink_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> StoredEvent {
        StoredEvent {
            seq: 7,
            ce_id: "0d6f0a52-3c1e-4a57-9d2b-8b1f3e6a7c90".to_owned(),
            event_type: EventType::DriftConfirmed.as_str().to_owned(),
            subject: "drift/fixture:trio/agent/qa".to_owned(),
            time: DateTime::parse_from_rfc3339("2026-12-02T10:00:00.123Z").unwrap().to_utc(),
            data: r#"{"key":"agent/qa","to":"CONFIRMED"}"#.to_owned(),
        }
    }

    #[test]
    fn the_envelope_is_a_structured_cloudevent() {
        let body: serde_json::Value = serde_json::from_slice(&envelope(&event())).unwrap();
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["id"], "0d6f0a52-3c1e-4a57-9d2b-8b1f3e6a7c90");
        assert_eq!(body["source"], "/jhf-warp");
        assert_eq!(body["type"], "dev.jhf.warp.drift.confirmed");
        assert_eq!(body["subject"], "drift/fixture:trio/agent/qa");
        assert_eq!(body["time"], "2026-12-02T10:00:00.123Z");
        assert_eq!(body["datacontenttype"], "application/json");
        assert_eq!(body["sequence"], "7");
        assert_eq!(body["data"]["to"], "CONFIRMED");
        assert_eq!(envelope(&event()), envelope(&event()), "the same bytes on every attempt");
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn uuids_are_version_4() {
        let id = uuid_v4([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn filters_take_exact_types_and_prefixes() {
        let all = TypeFilter::new(Vec::new()).unwrap();
        assert!(all.accepts("dev.jhf.warp.desired.stored"));
        let drift =
            TypeFilter::new(vec!["dev.jhf.warp.drift.*".into(), "dev.jhf.warp.rollout.finished".into()])
                .unwrap();
        assert!(drift.accepts("dev.jhf.warp.drift.resolved"));
        assert!(drift.accepts("dev.jhf.warp.rollout.finished"));
        assert!(!drift.accepts("dev.jhf.warp.desired.stored"));
        assert!(TypeFilter::new(vec!["dev.jhf.warp.drfit.*".into()]).is_err(), "a typo is refused");
        assert!(TypeFilter::new(vec!["dev.jhf.warp.drift.confirm".into()]).is_err());
        assert!(TypeFilter::new(vec!["dev.jhf*".into()]).is_err(), "a prefix ends at a dot");
        assert!(TypeFilter::new(vec!["*".into()]).unwrap().accepts("dev.jhf.warp.setup.applied"));
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let policy =
            RetryPolicy { max_attempts: 5, initial: Duration::from_millis(100), max: Duration::from_secs(1) };
        assert_eq!(policy.delay(1, 0.0, None), Duration::from_millis(50));
        assert_eq!(policy.delay(1, 1.0, None), Duration::from_millis(100));
        assert_eq!(policy.delay(3, 0.0, None), Duration::from_millis(200));
        assert_eq!(policy.delay(30, 0.999_999, None).as_millis(), 999);
        assert_eq!(policy.delay(1, 0.0, Some(Duration::from_millis(700))), Duration::from_millis(700));
        assert_eq!(policy.delay(1, 0.0, Some(Duration::from_secs(3600))), Duration::from_secs(1));
    }

    #[test]
    fn the_last_attempt_dead_letters() {
        let policy =
            RetryPolicy { max_attempts: 3, initial: Duration::from_secs(1), max: Duration::from_secs(8) };
        let now = Utc::now();
        assert!(matches!(
            after_failure(&policy, 0, "503".into(), now, 0.5, None),
            AttemptOutcome::Retry { .. }
        ));
        assert!(matches!(
            after_failure(&policy, 1, "503".into(), now, 0.5, None),
            AttemptOutcome::Retry { .. }
        ));
        assert_eq!(
            after_failure(&policy, 2, "503".into(), now, 0.5, None),
            AttemptOutcome::Dead { error: "503".into() }
        );
    }

    #[test]
    fn sink_names_are_label_safe() {
        assert!(valid_sink_name("fabric-hooks_2"));
        assert!(!valid_sink_name(""));
        assert!(!valid_sink_name("Fabric"));
        assert!(!valid_sink_name("a b"));
        assert!(!valid_sink_name(&"a".repeat(65)));
    }
}

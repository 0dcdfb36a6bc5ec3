//! The watchdog: non-destructive observations of trouble — expired but unreleased leases,
//! rollouts stuck mid-way, an overdue observation loop, an unreachable runtime, an invalid
//! config, agents whose sessions went quiet. It only looks; it never changes the runtime.
//!
//! # Guarantees
//! - Pure: the caller passes `now` and the facts.
//! - Keys are stable (`<kind>/<subject>`), so repeated evaluations deduplicate.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::Inventory;
use super::lease::Lease;
use super::model::Severity;
use super::observation::ObservationRecord;
use super::rollout::Rollout;
use super::schedule::{Schedule, reconcile_overdue};

/// What the watchdog noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WatchdogKind {
    StaleAgentActivity,
    ExpiredLease,
    StuckRollout,
    ObservationOverdue,
    RuntimeUnreachable,
    ConfigInvalid,
    ReconcileOverdue,
}

impl WatchdogKind {
    /// Returns the lower-snake name used in keys.
    pub fn slug(self) -> &'static str {
        match self {
            Self::StaleAgentActivity => "stale_agent_activity",
            Self::ExpiredLease => "expired_lease",
            Self::StuckRollout => "stuck_rollout",
            Self::ObservationOverdue => "observation_overdue",
            Self::RuntimeUnreachable => "runtime_unreachable",
            Self::ConfigInvalid => "config_invalid",
            Self::ReconcileOverdue => "reconcile_overdue",
        }
    }
}

/// One thing the watchdog saw, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchdogFinding {
    pub key: String,
    pub kind: WatchdogKind,
    pub severity: Severity,
    pub subject: String,
    pub message: String,
    pub evidence: BTreeMap<String, String>,
}

fn finding(
    kind: WatchdogKind,
    severity: Severity,
    subject: &str,
    message: String,
    evidence: &[(&str, String)],
) -> WatchdogFinding {
    WatchdogFinding {
        key: format!("{}/{subject}", kind.slug()),
        kind,
        severity,
        subject: subject.to_owned(),
        message,
        evidence: evidence.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
    }
}

/// A watchdog observation as tracked over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchdogObservation {
    pub finding: WatchdogFinding,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// When it stopped being seen; `None` while open.
    pub cleared_at: Option<DateTime<Utc>>,
    /// Who acknowledged it since it last changed.
    pub acknowledged_by: Option<String>,
}

/// Merges one evaluation into the tracked observations: new findings open, changed ones lose
/// their acknowledgement, vanished ones clear. Returns the keys that changed.
pub fn merge(
    tracked: &mut BTreeMap<String, WatchdogObservation>,
    findings: Vec<WatchdogFinding>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut changed = Vec::new();
    let seen: Vec<String> = findings.iter().map(|f| f.key.clone()).collect();
    for finding in findings {
        let key = finding.key.clone();
        match tracked.get_mut(&key) {
            Some(existing) if existing.cleared_at.is_none() => {
                if existing.finding != finding {
                    existing.finding = finding;
                    existing.acknowledged_by = None;
                }
                existing.last_seen_at = now;
            }
            _ => {
                tracked.insert(
                    key.clone(),
                    WatchdogObservation {
                        finding,
                        first_seen_at: now,
                        last_seen_at: now,
                        cleared_at: None,
                        acknowledged_by: None,
                    },
                );
            }
        }
        changed.push(key);
    }
    for (key, observation) in tracked.iter_mut() {
        if observation.cleared_at.is_none() && !seen.contains(key) {
            observation.cleared_at = Some(now);
            changed.push(key.clone());
        }
    }
    changed
}

/// How long things may take before the watchdog speaks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogThresholds {
    pub stale_activity: TimeDelta,
    pub stuck_rollout: TimeDelta,
    pub observation_overdue: TimeDelta,
}

impl Default for WatchdogThresholds {
    fn default() -> Self {
        Self {
            stale_activity: TimeDelta::hours(24),
            stuck_rollout: TimeDelta::minutes(10),
            observation_overdue: TimeDelta::seconds(90),
        }
    }
}

/// What the watchdog looks at.
pub struct WatchdogInputs<'a> {
    pub now: DateTime<Utc>,
    /// The database clock, by which lease expiry is judged.
    pub db_now: DateTime<Utc>,
    pub runtime: &'a str,
    pub leases: &'a [Lease],
    pub unfinished_rollouts: &'a [Rollout],
    pub latest: Option<(&'a ObservationRecord, &'a Inventory)>,
    /// The last runtime read's error, when it failed.
    pub runtime_error: Option<&'a str>,
    pub thresholds: WatchdogThresholds,
    /// The periodic reconcile loop, when this service runs one.
    pub reconcile: Option<ReconcileFacts<'a>>,
}

/// What the watchdog needs to judge the periodic reconcile loop.
pub struct ReconcileFacts<'a> {
    pub schedule: &'a Schedule,
    pub last_scheduled_start: Option<DateTime<Utc>>,
    /// When this replica started watching (a fresh service is not overdue at once).
    pub watching_since: DateTime<Utc>,
    pub lease_secs: i64,
}

/// Returns how late the periodic reconcile loop is, if it is overdue.
pub fn reconcile_lateness(inputs: &WatchdogInputs<'_>) -> Option<TimeDelta> {
    let facts = inputs.reconcile.as_ref()?;
    reconcile_overdue(
        facts.schedule,
        facts.last_scheduled_start,
        facts.watching_since,
        facts.lease_secs,
        inputs.now,
    )
}

/// Returns everything worth an operator's attention now, sorted by key.
pub fn evaluate(inputs: &WatchdogInputs<'_>) -> Vec<WatchdogFinding> {
    let mut out = Vec::new();
    expired_leases(inputs, &mut out);
    stuck_rollouts(inputs, &mut out);
    if let Some(error) = inputs.runtime_error {
        out.push(finding(
            WatchdogKind::RuntimeUnreachable,
            Severity::Error,
            inputs.runtime,
            format!("the last read of {} failed", inputs.runtime),
            &[("error", error.to_owned())],
        ));
    }
    if let Some((record, inventory)) = inputs.latest {
        observation_findings(inputs, record, inventory, &mut out);
    }
    reconcile_overdue_finding(inputs, &mut out);
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Leases past their expiry (by the database clock) that nobody released.
fn expired_leases(inputs: &WatchdogInputs<'_>, out: &mut Vec<WatchdogFinding>) {
    for lease in inputs.leases {
        if let (Some(holder), Some(expires)) = (&lease.holder, lease.expires_at)
            && expires <= inputs.db_now
        {
            out.push(finding(
                WatchdogKind::ExpiredLease,
                Severity::Warning,
                &lease.name,
                format!("lease {} expired while still held by {holder}; it was never released", lease.name),
                &[
                    ("holder", holder.clone()),
                    ("expired_at", expires.to_rfc3339()),
                    ("fencing_token", lease.token.to_string()),
                ],
            ));
        }
    }
}

fn stuck_rollouts(inputs: &WatchdogInputs<'_>, out: &mut Vec<WatchdogFinding>) {
    for rollout in inputs.unfinished_rollouts {
        if inputs.now - rollout.updated_at >= inputs.thresholds.stuck_rollout {
            out.push(finding(
                WatchdogKind::StuckRollout,
                Severity::Error,
                &rollout.id,
                format!(
                    "rollout {} has been {} since {}",
                    rollout.id,
                    rollout.state.as_str(),
                    rollout.updated_at.to_rfc3339()
                ),
                &[("state", rollout.state.as_str().to_owned()), ("plan_id", rollout.plan_id.clone())],
            ));
        }
    }
}

/// What the newest observation shows: it is overdue, the config is invalid, agents are idle.
fn observation_findings(
    inputs: &WatchdogInputs<'_>,
    record: &ObservationRecord,
    inventory: &Inventory,
    out: &mut Vec<WatchdogFinding>,
) {
    let now = inputs.now;
    if now - record.last_seen_at >= inputs.thresholds.observation_overdue {
        out.push(finding(
            WatchdogKind::ObservationOverdue,
            Severity::Warning,
            inputs.runtime,
            format!("{} was last observed at {}", inputs.runtime, record.last_seen_at.to_rfc3339()),
            &[("last_seen_at", record.last_seen_at.to_rfc3339())],
        ));
    }
    if !inventory.config_valid {
        let paths: Vec<&str> = inventory.config_issues.iter().map(|i| i.path.as_str()).collect();
        out.push(finding(
            WatchdogKind::ConfigInvalid,
            Severity::Error,
            inputs.runtime,
            format!("the runtime config of {} is invalid", inputs.runtime),
            &[("issues", paths.join(", ")), ("config_hash", record.config_hash.clone())],
        ));
    }
    for agent in &inventory.agents {
        let Some(last) =
            agent.session_activity.last_active_ms.and_then(DateTime::<Utc>::from_timestamp_millis)
        else {
            continue;
        };
        if now - last >= inputs.thresholds.stale_activity {
            out.push(finding(
                WatchdogKind::StaleAgentActivity,
                Severity::Info,
                &agent.id,
                format!("agent {} has had no session activity since {}", agent.id, last.to_rfc3339()),
                &[("last_active_at", last.to_rfc3339())],
            ));
        }
    }
}

fn reconcile_overdue_finding(inputs: &WatchdogInputs<'_>, out: &mut Vec<WatchdogFinding>) {
    let (Some(late), Some(facts)) = (reconcile_lateness(inputs), &inputs.reconcile) else { return };
    let last = facts.last_scheduled_start.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".to_owned());
    out.push(finding(
        WatchdogKind::ReconcileOverdue,
        Severity::Error,
        inputs.runtime,
        format!(
            "no scheduled reconcile cycle of {} started for {} s past its due time (every {} s; last {last})",
            inputs.runtime,
            late.num_seconds(),
            facts.schedule.interval_secs
        ),
        &[
            ("last_scheduled_start", last.clone()),
            ("interval_seconds", facts.schedule.interval_secs.to_string()),
            ("mode", facts.schedule.mode.as_str().to_owned()),
        ],
    ));
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::lease::{Lease, acquire};

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn inputs<'a>(now: DateTime<Utc>, leases: &'a [Lease]) -> WatchdogInputs<'a> {
        WatchdogInputs {
            now,
            db_now: now,
            runtime: "fixture:trio",
            leases,
            unfinished_rollouts: &[],
            latest: None,
            runtime_error: None,
            thresholds: WatchdogThresholds::default(),
            reconcile: None,
        }
    }

    #[test]
    fn an_expired_but_unreleased_lease_is_reported_with_evidence() {
        let leases = [acquire(&Lease::vacant("agent/lead"), "a", 10, t(0)).unwrap()];
        assert!(evaluate(&inputs(t(5), &leases)).is_empty());
        let seen = evaluate(&inputs(t(10), &leases));
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].key, "expired_lease/agent/lead");
        assert_eq!(seen[0].evidence["holder"], "a");
    }

    #[test]
    fn repeated_evaluations_deduplicate_and_vanished_findings_clear() {
        let leases = [acquire(&Lease::vacant("agent/lead"), "a", 10, t(0)).unwrap()];
        let mut tracked = BTreeMap::new();
        merge(&mut tracked, evaluate(&inputs(t(10), &leases)), t(10));
        merge(&mut tracked, evaluate(&inputs(t(20), &leases)), t(20));
        assert_eq!(tracked.len(), 1);
        let observation = &tracked["expired_lease/agent/lead"];
        assert_eq!((observation.first_seen_at, observation.last_seen_at), (t(10), t(20)));
        merge(&mut tracked, Vec::new(), t(30));
        assert_eq!(tracked["expired_lease/agent/lead"].cleared_at, Some(t(30)));
    }

    #[test]
    fn a_stalled_reconcile_loop_is_reported_unless_paused() {
        let schedule = crate::domain::schedule::Schedule {
            interval_secs: 60,
            mode: crate::domain::reconcile::ReconcileMode::Observe,
            paused: false,
            generation: 0,
            updated_at: None,
            updated_by: String::new(),
        };
        let facts = |schedule| ReconcileFacts {
            schedule,
            last_scheduled_start: Some(t(0)),
            watching_since: t(0),
            lease_secs: 15,
        };
        let mut input = inputs(t(100), &[]);
        input.reconcile = Some(facts(&schedule));
        assert!(evaluate(&input).is_empty());
        input.now = t(200);
        let seen = evaluate(&input);
        assert_eq!(seen[0].key, "reconcile_overdue/fixture:trio");
        assert_eq!(seen[0].evidence["interval_seconds"], "60");
        let paused_schedule = crate::domain::schedule::Schedule { paused: true, ..schedule.clone() };
        let mut paused = inputs(t(200), &[]);
        paused.reconcile = Some(facts(&paused_schedule));
        assert!(evaluate(&paused).is_empty());
    }

    #[test]
    fn an_unreachable_runtime_is_reported() {
        let mut input = inputs(t(0), &[]);
        input.runtime_error = Some("cannot read openclaw.json");
        let seen = evaluate(&input);
        assert_eq!(seen[0].key, "runtime_unreachable/fixture:trio");
        assert_eq!(seen[0].severity, Severity::Error);
    }
}

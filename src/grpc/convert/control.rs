//! `ControlService`: leases, schedules and cycles, the watchdog, delegations, the audit log.

use chrono::{DateTime, Utc};

use super::{risk_from_pb, some_text, timestamp, unknown};
use crate::control::{AppError, ChainCheck, DelegationView, DispatchAnswer, WorkItem};
use crate::domain::TrustLevel;
use crate::domain::audit::{AuditEvent, AuditFilter, BrokenLink};
use crate::domain::delegation::{DelegationSource, Standing};
use crate::domain::lease::{CycleReport, Lease};
use crate::domain::outbound::{Delivery, DeliveryState};
use crate::domain::reconcile::{ReconcileMode, SchedulerRun};
use crate::domain::schedule::Schedule;
use crate::domain::watchdog::WatchdogObservation;
use crate::pb::v1 as pb;

impl From<DeliveryState> for pb::DeliveryState {
    fn from(value: DeliveryState) -> Self {
        match value {
            DeliveryState::Pending => Self::Pending,
            DeliveryState::Delivered => Self::Delivered,
            DeliveryState::Dead => Self::Dead,
        }
    }
}

/// Decodes a delivery-state filter (UNSPECIFIED → every state).
pub fn delivery_state_from_pb(value: i32, field: &str) -> Result<Option<DeliveryState>, AppError> {
    match pb::DeliveryState::try_from(value) {
        Ok(pb::DeliveryState::Unspecified) => Ok(None),
        Ok(pb::DeliveryState::Pending) => Ok(Some(DeliveryState::Pending)),
        Ok(pb::DeliveryState::Delivered) => Ok(Some(DeliveryState::Delivered)),
        Ok(pb::DeliveryState::Dead) => Ok(Some(DeliveryState::Dead)),
        Err(_) => Err(unknown(field, "delivery state")),
    }
}

impl From<&Delivery> for pb::Delivery {
    fn from(value: &Delivery) -> Self {
        let event = &value.event;
        Self {
            sink: value.sink.clone(),
            event_id: event.ce_id.clone(),
            event_type: event.event_type.clone(),
            subject: event.subject.clone(),
            sequence: event.seq,
            event_time: Some(timestamp(event.time)),
            state: pb::DeliveryState::from(value.state).into(),
            attempts: value.attempts,
            last_error: value.last_error.clone(),
            next_attempt_time: (value.state == DeliveryState::Pending)
                .then(|| timestamp(value.next_attempt_at)),
            delivered_time: value.delivered_at.map(timestamp),
        }
    }
}

impl From<ReconcileMode> for pb::ReconcileMode {
    fn from(value: ReconcileMode) -> Self {
        match value {
            ReconcileMode::Observe => Self::Observe,
            ReconcileMode::Plan => Self::Plan,
            ReconcileMode::Heal => Self::Heal,
        }
    }
}

/// Decodes a reconcile mode; `default` stands in for UNSPECIFIED (`None`: it is refused).
pub fn reconcile_mode_from_pb(
    value: i32,
    field: &str,
    default: Option<ReconcileMode>,
) -> Result<ReconcileMode, AppError> {
    match pb::ReconcileMode::try_from(value) {
        Ok(pb::ReconcileMode::Observe) => Ok(ReconcileMode::Observe),
        Ok(pb::ReconcileMode::Plan) => Ok(ReconcileMode::Plan),
        Ok(pb::ReconcileMode::Heal) => Ok(ReconcileMode::Heal),
        Ok(pb::ReconcileMode::Unspecified) => {
            default.ok_or_else(|| AppError::invalid(field.to_owned(), "must be OBSERVE, PLAN or HEAL"))
        }
        Err(_) => Err(unknown(field, "reconcile mode")),
    }
}

/// Decodes an optional trust level (UNSPECIFIED → `None`).
pub fn trust_from_pb(value: i32, field: &str) -> Result<Option<TrustLevel>, AppError> {
    match pb::TrustLevel::try_from(value) {
        Ok(pb::TrustLevel::Unspecified) => Ok(None),
        Ok(pb::TrustLevel::Restricted) => Ok(Some(TrustLevel::Restricted)),
        Ok(pb::TrustLevel::Standard) => Ok(Some(TrustLevel::Standard)),
        Ok(pb::TrustLevel::Elevated) => Ok(Some(TrustLevel::Elevated)),
        Err(_) => Err(unknown(field, "trust level")),
    }
}

/// Decodes an optional timestamp.
pub fn time_from_pb(
    value: Option<&pbjson_types::Timestamp>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, AppError> {
    value
        .map(|t| {
            u32::try_from(t.nanos)
                .ok()
                .and_then(|nanos| DateTime::<Utc>::from_timestamp(t.seconds, nanos))
                .ok_or_else(|| AppError::invalid(field.to_owned(), "not a valid timestamp"))
        })
        .transpose()
}

impl From<&Schedule> for pb::Schedule {
    fn from(value: &Schedule) -> Self {
        Self {
            runtime: String::new(),
            interval_seconds: value.interval_secs,
            mode: pb::ReconcileMode::from(value.mode).into(),
            paused: value.paused,
            etag: value.etag(),
            update_time: value.updated_at.map(timestamp),
            updated_by: value.updated_by.clone(),
        }
    }
}

impl From<&SchedulerRun> for pb::SchedulerRun {
    fn from(value: &SchedulerRun) -> Self {
        Self {
            runtime: String::new(),
            cycle_id: value.cycle_id.clone(),
            mode: pb::ReconcileMode::from(value.mode).into(),
            trigger: value.trigger.clone(),
            state: value.state.as_str().to_owned(),
            actor: value.actor.clone(),
            start_time: Some(timestamp(value.started_at)),
            finish_time: value.finished_at.map(timestamp),
            desired_generation: value.desired_generation,
            config_hash: value.config_hash.clone(),
            open_items: value.open_items,
            actionable_items: value.actionable_items,
            plan_id: value.plan_id.clone().unwrap_or_default(),
            rollout_id: value.rollout_id.clone().unwrap_or_default(),
            message: value.message.clone(),
        }
    }
}

impl From<&WatchdogObservation> for pb::WatchdogObservation {
    fn from(value: &WatchdogObservation) -> Self {
        let finding = &value.finding;
        Self {
            runtime: String::new(),
            key: finding.key.clone(),
            kind: finding.kind.slug().to_owned(),
            severity: pb::Severity::from(finding.severity).into(),
            subject: finding.subject.clone(),
            message: finding.message.clone(),
            evidence: finding.evidence.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            first_seen_time: Some(timestamp(value.first_seen_at)),
            last_seen_time: Some(timestamp(value.last_seen_at)),
            clear_time: value.cleared_at.map(timestamp),
            acknowledged_by: value.acknowledged_by.clone().unwrap_or_default(),
        }
    }
}

impl From<&DelegationView> for pb::Delegation {
    fn from(value: &DelegationView) -> Self {
        let (standing, reason) = match &value.standing {
            Standing::Active => (pb::DelegationStanding::Active, String::new()),
            Standing::Revoked(why) => (pb::DelegationStanding::Revoked, why.clone()),
            Standing::Invalid(why) => (pb::DelegationStanding::Invalid, why.clone()),
        };
        let grant = &value.grant;
        Self {
            runtime: String::new(),
            id: grant.id.clone(),
            parent_id: grant.parent_id.clone().unwrap_or_default(),
            grantor_agent_id: grant.grantor.clone(),
            delegate_agent_id: grant.delegate.clone(),
            rights: grant.rights.clone(),
            trust: pb::TrustLevel::from(grant.trust).into(),
            source: match grant.source {
                DelegationSource::Manual => pb::DelegationSource::Manual,
                DelegationSource::Backfill => pb::DelegationSource::Backfill,
            }
            .into(),
            standing: standing.into(),
            standing_reason: reason,
            create_time: Some(timestamp(grant.created_at)),
            revoke_time: grant.revoked_at.map(timestamp),
        }
    }
}

impl From<&AuditEvent> for pb::AuditEvent {
    fn from(value: &AuditEvent) -> Self {
        Self {
            seq: value.seq,
            time: Some(timestamp(value.at)),
            actor: value.event.actor.clone(),
            method: value.event.method.clone(),
            resource: value.event.resource.clone(),
            request_id: value.event.request_id.clone(),
            outcome: value.event.outcome.clone(),
            summary: value.event.summary.clone(),
            prev_hash: value.prev_hash.clone(),
            hash: value.hash.clone(),
        }
    }
}

impl TryFrom<&pb::ListAuditEventsRequest> for AuditFilter {
    type Error = AppError;

    fn try_from(request: &pb::ListAuditEventsRequest) -> Result<Self, AppError> {
        Ok(Self {
            actor: some_text(&request.actor),
            method: some_text(&request.method),
            resource: some_text(&request.resource),
            since: time_from_pb(request.since_time.as_ref(), "since_time")?,
            until: time_from_pb(request.until_time.as_ref(), "until_time")?,
        })
    }
}

/// The result of verifying the chain: events checked (the sealed watermark), or the first
/// broken link.
impl From<ChainCheck> for pb::VerifyAuditChainResponse {
    fn from(check: ChainCheck) -> Self {
        let unsealed_events = i64::try_from(check.unsealed).unwrap_or(i64::MAX);
        match check.result {
            Ok(checked) => Self {
                intact: true,
                events_checked: checked,
                first_broken_seq: 0,
                reason: String::new(),
                sealed_seq: checked,
                unsealed_events,
            },
            Err(BrokenLink { seq, reason }) => Self {
                intact: false,
                events_checked: (seq - 1).max(0),
                first_broken_seq: seq,
                reason,
                sealed_seq: (seq - 1).max(0),
                unsealed_events,
            },
        }
    }
}

/// A lease as read at the database time `now` (which says whether it is held).
pub fn lease_at(value: &Lease, now: DateTime<Utc>) -> pb::Lease {
    pb::Lease {
        name: value.name.clone(),
        holder: value.holder.clone().unwrap_or_default(),
        fencing_token: value.token,
        duration_seconds: value.duration_secs,
        acquire_time: value.acquired_at.map(timestamp),
        renew_time: value.renewed_at.map(timestamp),
        expire_time: value.expires_at.map(timestamp),
        transitions: value.transitions,
        held: value.live_holder(now).is_some(),
        observe_time: Some(timestamp(now)),
    }
}

impl TryFrom<pb::ReportCycleResultRequest> for CycleReport {
    type Error = AppError;

    fn try_from(request: pb::ReportCycleResultRequest) -> Result<Self, AppError> {
        let outcome = match pb::CycleOutcome::try_from(request.outcome) {
            Ok(pb::CycleOutcome::Succeeded) => "SUCCEEDED",
            Ok(pb::CycleOutcome::Failed) => "FAILED",
            Ok(pb::CycleOutcome::Skipped) => "SKIPPED",
            _ => return Err(AppError::invalid("outcome", "must be SUCCEEDED, FAILED or SKIPPED")),
        };
        Ok(Self {
            cycle_id: request.cycle_id,
            lease_name: request.lease_name,
            holder: request.holder,
            fencing_token: request.fencing_token,
            outcome: outcome.to_owned(),
            summary: request.summary,
            // The store stamps the database time; this placeholder is never persisted.
            reported_at: DateTime::<Utc>::UNIX_EPOCH,
        })
    }
}

impl From<&CycleReport> for pb::CycleReport {
    fn from(stored: &CycleReport) -> Self {
        let outcome = match stored.outcome.as_str() {
            "SUCCEEDED" => pb::CycleOutcome::Succeeded,
            "FAILED" => pb::CycleOutcome::Failed,
            _ => pb::CycleOutcome::Skipped,
        };
        Self {
            cycle_id: stored.cycle_id.clone(),
            lease_name: stored.lease_name.clone(),
            holder: stored.holder.clone(),
            fencing_token: stored.fencing_token,
            outcome: outcome.into(),
            summary: stored.summary.clone(),
            report_time: Some(timestamp(stored.reported_at)),
        }
    }
}

impl TryFrom<pb::PreviewDispatchRequest> for WorkItem {
    type Error = AppError;

    fn try_from(request: pb::PreviewDispatchRequest) -> Result<Self, AppError> {
        match request.work {
            Some(pb::preview_dispatch_request::Work::Task(task)) => Ok(WorkItem::Task(task.into())),
            Some(pb::preview_dispatch_request::Work::Category(id)) => {
                Ok(WorkItem::Category { id, risk: risk_from_pb(request.risk, "risk")? })
            }
            None => Err(AppError::invalid("work", "a task or a category is required")),
        }
    }
}

impl From<&DispatchAnswer> for pb::PreviewDispatchResponse {
    fn from(answer: &DispatchAnswer) -> Self {
        let preview = &answer.preview;
        Self {
            runtime: String::new(),
            allowed: preview.allowed(),
            target_agent_id: preview.target_agent_id.clone().unwrap_or_default(),
            target_role: preview.target_role.clone(),
            selection: preview.selection.clone(),
            lease_name: preview.lease_name.clone().unwrap_or_default(),
            lease_holder: preview.lease_holder.clone().unwrap_or_default(),
            lease_expire_time: preview.lease_expires_at.map(timestamp),
            category: answer.category.clone(),
            risk: pb::RiskLevel::from(answer.risk).into(),
            required_trust: pb::TrustLevel::from(preview.required_trust).into(),
            agent_trust: preview.agent_trust.map(pb::TrustLevel::from).unwrap_or_default().into(),
            blocking_reasons: preview
                .blockers
                .iter()
                .map(|b| pb::DispatchBlock { code: b.code.as_str().to_owned(), message: b.message.clone() })
                .collect(),
            profile: answer.profile.as_ref().map(Into::into),
        }
    }
}

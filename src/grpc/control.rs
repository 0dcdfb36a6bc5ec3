//! `jhf.warp.v1.ControlService`.

use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::idempotency;
use super::watch::caller;
use crate::control::{
    AppError, AuditService, DelegationService, DelegationView, DispatchService, GrantRequest, LeaseService,
    ReconcileService, ScheduleService, Services, UpdateScheduleRequest, WatchdogService, WorkItem,
};
use crate::domain::TrustLevel;
use crate::domain::audit::AuditEvent;
use crate::domain::delegation::{DelegationSource, Standing};
use crate::domain::lease::CycleReport;
use crate::domain::lease::Lease;
use crate::domain::reconcile::{ReconcileMode, SchedulerRun};
use crate::domain::schedule::Schedule;
use crate::domain::watchdog::WatchdogObservation;
use crate::pb::v1::{self as pb, control_service_server::ControlService};
use crate::store::AuditFilter;

pub struct ControlServiceImpl {
    leases: LeaseService,
    audit: AuditService,
    delegations: DelegationService,
    watchdog: WatchdogService,
    reconcile: ReconcileService,
    schedules: ScheduleService,
    dispatch: DispatchService,
}

impl ControlServiceImpl {
    pub fn new(services: &Services) -> Self {
        Self {
            leases: services.leases.clone(),
            audit: services.audit.clone(),
            delegations: services.delegations.clone(),
            watchdog: services.watchdog.clone(),
            reconcile: services.reconcile.clone(),
            schedules: services.schedules.clone(),
            dispatch: services.dispatch.clone(),
        }
    }
}

fn mode_pb(value: ReconcileMode) -> pb::ReconcileMode {
    match value {
        ReconcileMode::Observe => pb::ReconcileMode::Observe,
        ReconcileMode::Plan => pb::ReconcileMode::Plan,
        ReconcileMode::Heal => pb::ReconcileMode::Heal,
    }
}

fn schedule(value: &Schedule) -> pb::Schedule {
    pb::Schedule {
        interval_seconds: value.interval_secs,
        mode: mode_pb(value.mode).into(),
        paused: value.paused,
        etag: value.etag(),
        update_time: value.updated_at.map(timestamp),
        updated_by: value.updated_by.clone(),
    }
}

fn scheduler_run(value: &SchedulerRun) -> pb::SchedulerRun {
    pb::SchedulerRun {
        cycle_id: value.cycle_id.clone(),
        mode: mode_pb(value.mode).into(),
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

fn watchdog_observation(value: &WatchdogObservation) -> pb::WatchdogObservation {
    let finding = &value.finding;
    pb::WatchdogObservation {
        key: finding.key.clone(),
        kind: finding.kind.slug().to_owned(),
        severity: super::convert::severity(finding.severity).into(),
        subject: finding.subject.clone(),
        message: finding.message.clone(),
        evidence: finding.evidence.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        first_seen_time: Some(timestamp(value.first_seen_at)),
        last_seen_time: Some(timestamp(value.last_seen_at)),
        clear_time: value.cleared_at.map(timestamp),
        acknowledged_by: value.acknowledged_by.clone().unwrap_or_default(),
    }
}

fn delegation(value: &DelegationView) -> pb::Delegation {
    let (standing, reason) = match &value.standing {
        Standing::Active => (pb::DelegationStanding::Active, String::new()),
        Standing::Revoked(why) => (pb::DelegationStanding::Revoked, why.clone()),
        Standing::Invalid(why) => (pb::DelegationStanding::Invalid, why.clone()),
    };
    let grant = &value.grant;
    pb::Delegation {
        id: grant.id.clone(),
        parent_id: grant.parent_id.clone().unwrap_or_default(),
        grantor_agent_id: grant.grantor.clone(),
        delegate_agent_id: grant.delegate.clone(),
        rights: grant.rights.clone(),
        trust: super::convert::trust(grant.trust).into(),
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

fn trust_of(value: i32) -> Result<Option<TrustLevel>, AppError> {
    match pb::TrustLevel::try_from(value) {
        Ok(pb::TrustLevel::Unspecified) => Ok(None),
        Ok(pb::TrustLevel::Restricted) => Ok(Some(TrustLevel::Restricted)),
        Ok(pb::TrustLevel::Standard) => Ok(Some(TrustLevel::Standard)),
        Ok(pb::TrustLevel::Elevated) => Ok(Some(TrustLevel::Elevated)),
        Err(_) => Err(AppError::invalid("trust", "unknown trust level")),
    }
}

fn audit_event(value: &AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
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

fn time_of(value: Option<&pbjson_types::Timestamp>, field: &str) -> Result<Option<DateTime<Utc>>, AppError> {
    value
        .map(|t| {
            DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
                .ok_or_else(|| AppError::invalid(field.to_owned(), "not a valid timestamp"))
        })
        .transpose()
}

fn some_text(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn lease(value: &Lease, now: DateTime<Utc>) -> pb::Lease {
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

#[tonic::async_trait]
impl ControlService for ControlServiceImpl {
    async fn acquire_lease(
        &self,
        request: Request<pb::AcquireLeaseRequest>,
    ) -> Result<Response<pb::AcquireLeaseResponse>, Status> {
        let who = caller(&request, "ControlService/AcquireLease", "")?;
        let request = request.into_inner();
        let (value, now) =
            self.leases.acquire(&request.name, &request.holder, request.duration_seconds, &who).await?;
        Ok(Response::new(pb::AcquireLeaseResponse { lease: Some(lease(&value, now)) }))
    }

    async fn renew_lease(
        &self,
        request: Request<pb::RenewLeaseRequest>,
    ) -> Result<Response<pb::RenewLeaseResponse>, Status> {
        let who = caller(&request, "ControlService/RenewLease", "")?;
        let request = request.into_inner();
        let (value, now) = self
            .leases
            .renew(&request.name, &request.holder, request.fencing_token, request.duration_seconds, &who)
            .await?;
        Ok(Response::new(pb::RenewLeaseResponse { lease: Some(lease(&value, now)) }))
    }

    async fn release_lease(
        &self,
        request: Request<pb::ReleaseLeaseRequest>,
    ) -> Result<Response<pb::ReleaseLeaseResponse>, Status> {
        let who = caller(&request, "ControlService/ReleaseLease", "")?;
        let request = request.into_inner();
        let (value, now) =
            self.leases.release(&request.name, &request.holder, request.fencing_token, &who).await?;
        Ok(Response::new(pb::ReleaseLeaseResponse { lease: Some(lease(&value, now)) }))
    }

    async fn get_lease(
        &self,
        request: Request<pb::GetLeaseRequest>,
    ) -> Result<Response<pb::GetLeaseResponse>, Status> {
        let (value, now) = self.leases.get(&request.into_inner().name).await?;
        Ok(Response::new(pb::GetLeaseResponse { lease: Some(lease(&value, now)) }))
    }

    async fn list_leases(
        &self,
        request: Request<pb::ListLeasesRequest>,
    ) -> Result<Response<pb::ListLeasesResponse>, Status> {
        let request = request.into_inner();
        let (values, next_page_token, now) = self.leases.list(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListLeasesResponse {
            leases: values.iter().map(|v| lease(v, now)).collect(),
            next_page_token,
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let request = request.into_inner();
        let filter = AuditFilter {
            actor: some_text(request.actor),
            method: some_text(request.method),
            resource: some_text(request.resource),
            since: time_of(request.since_time.as_ref(), "since_time")?,
            until: time_of(request.until_time.as_ref(), "until_time")?,
        };
        let (events, next_page_token) =
            self.audit.list(filter, request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.iter().map(audit_event).collect(),
            next_page_token,
        }))
    }

    async fn verify_audit_chain(
        &self,
        _: Request<pb::VerifyAuditChainRequest>,
    ) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
        let answer = match self.audit.verify().await? {
            Ok(checked) => pb::VerifyAuditChainResponse {
                intact: true,
                events_checked: checked,
                first_broken_seq: 0,
                reason: String::new(),
            },
            Err(broken) => pb::VerifyAuditChainResponse {
                intact: false,
                events_checked: (broken.seq - 1).max(0),
                first_broken_seq: broken.seq,
                reason: broken.reason,
            },
        };
        Ok(Response::new(answer))
    }

    async fn grant_delegation(
        &self,
        request: Request<pb::GrantDelegationRequest>,
    ) -> Result<Response<pb::GrantDelegationResponse>, Status> {
        let who = caller(&request, "ControlService/GrantDelegation", &request.get_ref().request_id)?;
        let request = request.into_inner();
        let without_id = pb::GrantDelegationRequest { request_id: String::new(), ..request.clone() };
        let key = idempotency::key_of("GrantDelegation", &request.request_id, &without_id)?;
        let grant = GrantRequest {
            grantor: request.grantor_agent_id,
            delegate: request.delegate_agent_id,
            rights: request.rights,
            trust: trust_of(request.trust)?,
            parent_id: (!request.parent_id.is_empty()).then_some(request.parent_id),
            idempotency: key,
            validate_only: request.validate_only,
        };
        let granted = self.delegations.grant(grant, &who).await?;
        Ok(Response::new(pb::GrantDelegationResponse { delegation: Some(delegation(&granted)) }))
    }

    async fn revoke_delegation(
        &self,
        request: Request<pb::RevokeDelegationRequest>,
    ) -> Result<Response<pb::RevokeDelegationResponse>, Status> {
        let who = caller(&request, "ControlService/RevokeDelegation", &request.get_ref().request_id)?;
        let request = request.into_inner();
        let without_id = pb::RevokeDelegationRequest { request_id: String::new(), ..request.clone() };
        let key = idempotency::key_of("RevokeDelegation", &request.request_id, &without_id)?;
        let affected =
            self.delegations.revoke(&request.id, &request.reason, &key, request.validate_only, &who).await?;
        Ok(Response::new(pb::RevokeDelegationResponse {
            affected: affected.iter().map(delegation).collect(),
        }))
    }

    async fn list_delegations(
        &self,
        request: Request<pb::ListDelegationsRequest>,
    ) -> Result<Response<pb::ListDelegationsResponse>, Status> {
        let request = request.into_inner();
        let (views, next_page_token) =
            self.delegations.list(request.page_size, &request.page_token, &request.agent_id).await?;
        Ok(Response::new(pb::ListDelegationsResponse {
            delegations: views.iter().map(delegation).collect(),
            next_page_token,
        }))
    }

    async fn get_delegation_state(
        &self,
        request: Request<pb::GetDelegationStateRequest>,
    ) -> Result<Response<pb::GetDelegationStateResponse>, Status> {
        let view = self.delegations.get(&request.into_inner().id).await?;
        Ok(Response::new(pb::GetDelegationStateResponse {
            delegation: Some(delegation(&view)),
            chain: view.chain.clone(),
        }))
    }

    async fn backfill_delegations(
        &self,
        request: Request<pb::BackfillDelegationsRequest>,
    ) -> Result<Response<pb::BackfillDelegationsResponse>, Status> {
        let who = caller(&request, "ControlService/BackfillDelegations", &request.get_ref().request_id)?;
        let request = request.into_inner();
        let without_id = pb::BackfillDelegationsRequest { request_id: String::new(), ..request.clone() };
        let key = idempotency::key_of("BackfillDelegations", &request.request_id, &without_id)?;
        let created = self.delegations.backfill(&key, request.validate_only, &who).await?;
        Ok(Response::new(pb::BackfillDelegationsResponse {
            created: created.iter().map(delegation).collect(),
        }))
    }

    async fn report_cycle_result(
        &self,
        request: Request<pb::ReportCycleResultRequest>,
    ) -> Result<Response<pb::ReportCycleResultResponse>, Status> {
        let who = caller(&request, "ControlService/ReportCycleResult", &request.get_ref().cycle_id)?;
        let request = request.into_inner();
        let outcome = match pb::CycleOutcome::try_from(request.outcome) {
            Ok(pb::CycleOutcome::Succeeded) => "SUCCEEDED",
            Ok(pb::CycleOutcome::Failed) => "FAILED",
            Ok(pb::CycleOutcome::Skipped) => "SKIPPED",
            _ => return Err(AppError::invalid("outcome", "must be SUCCEEDED, FAILED or SKIPPED").into()),
        };
        let report = CycleReport {
            cycle_id: request.cycle_id,
            lease_name: request.lease_name,
            holder: request.holder,
            fencing_token: request.fencing_token,
            outcome: outcome.to_owned(),
            summary: request.summary,
            reported_at: Utc::now(),
        };
        let (stored, _) = self.leases.report(report, &who).await?;
        let outcome = match stored.outcome.as_str() {
            "SUCCEEDED" => pb::CycleOutcome::Succeeded,
            "FAILED" => pb::CycleOutcome::Failed,
            _ => pb::CycleOutcome::Skipped,
        };
        Ok(Response::new(pb::ReportCycleResultResponse {
            report: Some(pb::CycleReport {
                cycle_id: stored.cycle_id,
                lease_name: stored.lease_name,
                holder: stored.holder,
                fencing_token: stored.fencing_token,
                outcome: outcome.into(),
                summary: stored.summary,
                report_time: Some(timestamp(stored.reported_at)),
            }),
        }))
    }

    async fn list_watchdog_observations(
        &self,
        request: Request<pb::ListWatchdogObservationsRequest>,
    ) -> Result<Response<pb::ListWatchdogObservationsResponse>, Status> {
        let include_cleared = request.into_inner().include_cleared;
        let all = self.watchdog.evaluate_now().await?;
        let observations = all
            .iter()
            .filter(|o| include_cleared || o.cleared_at.is_none())
            .map(watchdog_observation)
            .collect();
        Ok(Response::new(pb::ListWatchdogObservationsResponse { observations }))
    }

    async fn acknowledge_observation(
        &self,
        request: Request<pb::AcknowledgeObservationRequest>,
    ) -> Result<Response<pb::AcknowledgeObservationResponse>, Status> {
        let who = caller(&request, "ControlService/AcknowledgeObservation", &request.get_ref().request_id)?;
        let request = request.into_inner();
        crate::domain::idempotency::validate_request_id(&request.request_id).map_err(AppError::from)?;
        let observation = self.watchdog.acknowledge(&request.key, &who, request.validate_only).await?;
        Ok(Response::new(pb::AcknowledgeObservationResponse {
            observation: Some(watchdog_observation(&observation)),
        }))
    }

    async fn reconcile(
        &self,
        request: Request<pb::ReconcileRequest>,
    ) -> Result<Response<pb::ReconcileResponse>, Status> {
        let who = caller(&request, "ControlService/Reconcile", &request.get_ref().cycle_id)?;
        let request = request.into_inner();
        let mode = match pb::ReconcileMode::try_from(request.mode) {
            Ok(pb::ReconcileMode::Unspecified | pb::ReconcileMode::Observe) => ReconcileMode::Observe,
            Ok(pb::ReconcileMode::Plan) => ReconcileMode::Plan,
            Ok(pb::ReconcileMode::Heal) => ReconcileMode::Heal,
            Err(_) => return Err(AppError::invalid("mode", "unknown reconcile mode").into()),
        };
        let cycle_id = (!request.cycle_id.is_empty()).then_some(request.cycle_id);
        let (run, replayed) = self.reconcile.reconcile(mode, cycle_id, &who).await?;
        Ok(Response::new(pb::ReconcileResponse { run: Some(scheduler_run(&run)), replayed }))
    }

    async fn list_scheduler_runs(
        &self,
        request: Request<pb::ListSchedulerRunsRequest>,
    ) -> Result<Response<pb::ListSchedulerRunsResponse>, Status> {
        let request = request.into_inner();
        let (runs, next_page_token) = self.reconcile.list(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListSchedulerRunsResponse {
            runs: runs.iter().map(scheduler_run).collect(),
            next_page_token,
        }))
    }

    async fn get_schedule(
        &self,
        _request: Request<pb::GetScheduleRequest>,
    ) -> Result<Response<pb::GetScheduleResponse>, Status> {
        let (value, leader, last) = self.schedules.status().await?;
        Ok(Response::new(pb::GetScheduleResponse {
            schedule: Some(schedule(&value)),
            leader: leader.unwrap_or_default(),
            last_scheduled_start_time: last.map(timestamp),
        }))
    }

    async fn update_schedule(
        &self,
        request: Request<pb::UpdateScheduleRequest>,
    ) -> Result<Response<pb::UpdateScheduleResponse>, Status> {
        let who = caller(&request, "ControlService/UpdateSchedule", &request.get_ref().request_id)?;
        let request = request.into_inner();
        let idempotency = idempotency::key_of(
            "UpdateSchedule",
            &request.request_id,
            &pb::UpdateScheduleRequest { request_id: String::new(), ..request.clone() },
        )?;
        let wanted = request.schedule.ok_or_else(|| AppError::invalid("schedule", "required"))?;
        let mode = match pb::ReconcileMode::try_from(wanted.mode) {
            Ok(pb::ReconcileMode::Observe) => ReconcileMode::Observe,
            Ok(pb::ReconcileMode::Plan) => ReconcileMode::Plan,
            Ok(pb::ReconcileMode::Heal) => ReconcileMode::Heal,
            _ => return Err(AppError::invalid("schedule.mode", "must be OBSERVE, PLAN or HEAL").into()),
        };
        let stored = self
            .schedules
            .update(
                UpdateScheduleRequest {
                    interval_secs: wanted.interval_seconds,
                    mode,
                    paused: wanted.paused,
                    etag: request.etag,
                    idempotency,
                    validate_only: request.validate_only,
                },
                &who,
            )
            .await?;
        Ok(Response::new(pb::UpdateScheduleResponse { schedule: Some(schedule(&stored)) }))
    }

    async fn preview_dispatch(
        &self,
        request: Request<pb::PreviewDispatchRequest>,
    ) -> Result<Response<pb::PreviewDispatchResponse>, Status> {
        let request = request.into_inner();
        let item = match request.work {
            Some(pb::preview_dispatch_request::Work::Task(task)) => {
                WorkItem::Task(super::convert::task_input(task))
            }
            Some(pb::preview_dispatch_request::Work::Category(id)) => {
                WorkItem::Category { id, risk: super::convert::risk_of(request.risk, "risk")? }
            }
            None => return Err(AppError::invalid("work", "a task or a category is required").into()),
        };
        let answer = self.dispatch.preview(item).await?;
        let preview = &answer.preview;
        Ok(Response::new(pb::PreviewDispatchResponse {
            allowed: preview.allowed(),
            target_agent_id: preview.target_agent_id.clone().unwrap_or_default(),
            target_role: preview.target_role.clone(),
            selection: preview.selection.clone(),
            lease_name: preview.lease_name.clone().unwrap_or_default(),
            lease_holder: preview.lease_holder.clone().unwrap_or_default(),
            lease_expire_time: preview.lease_expires_at.map(timestamp),
            category: answer.category.clone(),
            risk: super::convert::risk(answer.risk).into(),
            required_trust: super::convert::trust(preview.required_trust).into(),
            agent_trust: preview.agent_trust.map(super::convert::trust).unwrap_or_default().into(),
            blocking_reasons: preview
                .blockers
                .iter()
                .map(|b| pb::DispatchBlock { code: b.code.as_str().to_owned(), message: b.message.clone() })
                .collect(),
            profile: answer.profile.as_ref().map(super::convert::task_profile),
        }))
    }
}

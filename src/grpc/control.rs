//! `jhf.warp.v1.ControlService`.

use tonic::{Request, Response, Status};

use super::call::{caller, caller_with_id, mutation};
use super::convert;
use super::convert::{delivery_state_from_pb, reconcile_mode_from_pb, trust_from_pb};
use crate::control::{
    AppError, AuditService, Calls, DelegationService, DispatchService, GrantRequest, LeaseService,
    OutboundService, ReconcileService, RevocationService, ScheduleService, Services, UpdateScheduleRequest,
    WatchdogService, WorkItem,
};
use crate::domain::audit::AuditFilter;
use crate::domain::lease::CycleReport;
use crate::domain::reconcile::ReconcileMode;
use crate::pb::v1::{self as pb, control_service_server::ControlService};

pub struct ControlServiceImpl {
    calls: Calls,
    leases: LeaseService,
    audit: AuditService,
    delegations: DelegationService,
    revocations: RevocationService,
    watchdog: WatchdogService,
    reconcile: ReconcileService,
    schedules: ScheduleService,
    dispatch: DispatchService,
    outbound: OutboundService,
}

impl ControlServiceImpl {
    pub fn new(services: &Services) -> Self {
        Self {
            calls: services.calls.clone(),
            revocations: services.revocations.clone(),
            leases: services.leases.clone(),
            audit: services.audit.clone(),
            delegations: services.delegations.clone(),
            watchdog: services.watchdog.clone(),
            reconcile: services.reconcile.clone(),
            schedules: services.schedules.clone(),
            dispatch: services.dispatch.clone(),
            outbound: services.outbound.clone(),
        }
    }
}

#[tonic::async_trait]
impl ControlService for ControlServiceImpl {
    async fn acquire_lease(
        &self,
        request: Request<pb::AcquireLeaseRequest>,
    ) -> Result<Response<pb::AcquireLeaseResponse>, Status> {
        let who = caller(&request)?;
        let request = request.into_inner();
        let (value, now) =
            self.leases.acquire(&request.name, &request.holder, request.duration_seconds, &who).await?;
        Ok(Response::new(pb::AcquireLeaseResponse { lease: Some(convert::lease_at(&value, now)) }))
    }

    async fn renew_lease(
        &self,
        request: Request<pb::RenewLeaseRequest>,
    ) -> Result<Response<pb::RenewLeaseResponse>, Status> {
        let who = caller(&request)?;
        let request = request.into_inner();
        let (value, now) = self
            .leases
            .renew(&request.name, &request.holder, request.fencing_token, request.duration_seconds, &who)
            .await?;
        Ok(Response::new(pb::RenewLeaseResponse { lease: Some(convert::lease_at(&value, now)) }))
    }

    async fn release_lease(
        &self,
        request: Request<pb::ReleaseLeaseRequest>,
    ) -> Result<Response<pb::ReleaseLeaseResponse>, Status> {
        let who = caller(&request)?;
        let request = request.into_inner();
        let (value, now) =
            self.leases.release(&request.name, &request.holder, request.fencing_token, &who).await?;
        Ok(Response::new(pb::ReleaseLeaseResponse { lease: Some(convert::lease_at(&value, now)) }))
    }

    async fn get_lease(
        &self,
        request: Request<pb::GetLeaseRequest>,
    ) -> Result<Response<pb::GetLeaseResponse>, Status> {
        let who = caller(&request)?;
        let (value, now) = self.leases.get(&request.into_inner().name, &who).await?;
        Ok(Response::new(pb::GetLeaseResponse { lease: Some(convert::lease_at(&value, now)) }))
    }

    async fn list_leases(
        &self,
        request: Request<pb::ListLeasesRequest>,
    ) -> Result<Response<pb::ListLeasesResponse>, Status> {
        let who = caller(&request)?;
        let request = request.into_inner();
        let (values, next_page_token, now) =
            self.leases.list(request.page_size, &request.page_token, &who).await?;
        Ok(Response::new(pb::ListLeasesResponse {
            leases: values.iter().map(|v| convert::lease_at(v, now)).collect(),
            next_page_token,
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let request = request.into_inner();
        let filter = AuditFilter::try_from(&request)?;
        let (events, next_page_token) =
            self.audit.list(filter, request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn verify_audit_chain(
        &self,
        _: Request<pb::VerifyAuditChainRequest>,
    ) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
        Ok(Response::new(self.audit.verify().await?.into()))
    }

    async fn grant_delegation(
        &self,
        request: Request<pb::GrantDelegationRequest>,
    ) -> Result<Response<pb::GrantDelegationResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let grant = GrantRequest {
            grantor: request.grantor_agent_id,
            delegate: request.delegate_agent_id,
            rights: request.rights,
            trust: trust_from_pb(request.trust, "trust")?,
            parent_id: (!request.parent_id.is_empty()).then_some(request.parent_id),
            idempotency: key.clone(),
            validate_only: request.validate_only,
        };
        let granted =
            self.calls.once(&key, request.validate_only, self.delegations.grant(grant, &who)).await?;
        Ok(Response::new(pb::GrantDelegationResponse { delegation: Some((&granted).into()) }))
    }

    async fn revoke_delegation(
        &self,
        request: Request<pb::RevokeDelegationRequest>,
    ) -> Result<Response<pb::RevokeDelegationResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let revoke = self.revocations.revoke(&request.id, &request.reason, &key, request.validate_only, &who);
        let outcome = self.calls.once(&key, request.validate_only, revoke).await?;
        Ok(Response::new(pb::RevokeDelegationResponse {
            affected: outcome.affected.iter().map(Into::into).collect(),
            desired_generation: outcome.desired_generation,
            removed_edges: outcome.effects.removed_edges.iter().map(Into::into).collect(),
            rollout_id: outcome.rollout_id.unwrap_or_default(),
            rollout_note: outcome.rollout_note.unwrap_or_default(),
        }))
    }

    async fn preview_revocation(
        &self,
        request: Request<pb::PreviewRevocationRequest>,
    ) -> Result<Response<pb::PreviewRevocationResponse>, Status> {
        let preview = self.revocations.preview(&request.into_inner().id).await?;
        Ok(Response::new(pb::PreviewRevocationResponse {
            falling: preview.falling.iter().map(Into::into).collect(),
            removed_edges: preview.effects.removed_edges.iter().map(Into::into).collect(),
            affected_agents: preview.effects.affected_agents,
            desired_generation: preview.desired_generation,
            rollout_follows: preview.rollout_follows,
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
            delegations: views.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn get_delegation_state(
        &self,
        request: Request<pb::GetDelegationStateRequest>,
    ) -> Result<Response<pb::GetDelegationStateResponse>, Status> {
        let view = self.delegations.get(&request.into_inner().id).await?;
        Ok(Response::new(pb::GetDelegationStateResponse {
            delegation: Some((&view).into()),
            chain: view.chain.clone(),
        }))
    }

    async fn backfill_delegations(
        &self,
        request: Request<pb::BackfillDelegationsRequest>,
    ) -> Result<Response<pb::BackfillDelegationsResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let validate_only = request.get_ref().validate_only;
        let created = self
            .calls
            .once(&key, validate_only, self.delegations.backfill(&key, validate_only, &who))
            .await?;
        Ok(Response::new(pb::BackfillDelegationsResponse {
            created: created.iter().map(Into::into).collect(),
        }))
    }

    async fn report_cycle_result(
        &self,
        request: Request<pb::ReportCycleResultRequest>,
    ) -> Result<Response<pb::ReportCycleResultResponse>, Status> {
        let who = caller_with_id(&request, &request.get_ref().cycle_id)?;
        let report = CycleReport::try_from(request.into_inner())?;
        let (stored, _) = self.leases.report(report, &who).await?;
        Ok(Response::new(pb::ReportCycleResultResponse { report: Some((&stored).into()) }))
    }

    async fn list_watchdog_observations(
        &self,
        request: Request<pb::ListWatchdogObservationsRequest>,
    ) -> Result<Response<pb::ListWatchdogObservationsResponse>, Status> {
        let include_cleared = request.into_inner().include_cleared;
        let all = self.watchdog.evaluate_now().await?;
        let observations =
            all.iter().filter(|o| include_cleared || o.cleared_at.is_none()).map(Into::into).collect();
        Ok(Response::new(pb::ListWatchdogObservationsResponse { observations }))
    }

    async fn acknowledge_observation(
        &self,
        request: Request<pb::AcknowledgeObservationRequest>,
    ) -> Result<Response<pb::AcknowledgeObservationResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let acknowledge = self.watchdog.acknowledge(&request.key, &who, &key, request.validate_only);
        let observation = self.calls.once(&key, request.validate_only, acknowledge).await?;
        Ok(Response::new(pb::AcknowledgeObservationResponse { observation: Some((&observation).into()) }))
    }

    async fn reconcile(
        &self,
        request: Request<pb::ReconcileRequest>,
    ) -> Result<Response<pb::ReconcileResponse>, Status> {
        let who = caller_with_id(&request, &request.get_ref().cycle_id)?;
        let request = request.into_inner();
        let mode = reconcile_mode_from_pb(request.mode, "mode", Some(ReconcileMode::Observe))?;
        let cycle_id = (!request.cycle_id.is_empty()).then_some(request.cycle_id);
        let (run, replayed) = self.reconcile.reconcile(mode, cycle_id, &who).await?;
        Ok(Response::new(pb::ReconcileResponse { run: Some((&run).into()), replayed }))
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let request = request.into_inner();
        let state = delivery_state_from_pb(request.state, "state")?;
        let (deliveries, next_page_token) =
            self.outbound.list(&request.sink, state, request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries: deliveries.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn redeliver_event(
        &self,
        request: Request<pb::RedeliverEventRequest>,
    ) -> Result<Response<pb::RedeliverEventResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let redeliver =
            self.outbound.redeliver(&request.sink, &request.event_id, &who, &key, request.validate_only);
        let delivery = self.calls.once(&key, request.validate_only, redeliver).await?;
        Ok(Response::new(pb::RedeliverEventResponse { delivery: Some((&delivery).into()) }))
    }

    async fn list_scheduler_runs(
        &self,
        request: Request<pb::ListSchedulerRunsRequest>,
    ) -> Result<Response<pb::ListSchedulerRunsResponse>, Status> {
        let request = request.into_inner();
        let (runs, next_page_token) = self.reconcile.list(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListSchedulerRunsResponse {
            runs: runs.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn get_schedule(
        &self,
        _request: Request<pb::GetScheduleRequest>,
    ) -> Result<Response<pb::GetScheduleResponse>, Status> {
        let (value, leader, last) = self.schedules.status().await?;
        Ok(Response::new(pb::GetScheduleResponse {
            schedule: Some((&value).into()),
            leader: leader.unwrap_or_default(),
            last_scheduled_start_time: last.map(super::convert::timestamp),
        }))
    }

    async fn update_schedule(
        &self,
        request: Request<pb::UpdateScheduleRequest>,
    ) -> Result<Response<pb::UpdateScheduleResponse>, Status> {
        let (who, idempotency) = mutation(&request)?;
        let request = request.into_inner();
        let wanted = request.schedule.ok_or_else(|| AppError::invalid("schedule", "required"))?;
        let mode = reconcile_mode_from_pb(wanted.mode, "schedule.mode", None)?;
        let update = UpdateScheduleRequest {
            interval_secs: wanted.interval_seconds,
            mode,
            paused: wanted.paused,
            etag: request.etag,
            idempotency: idempotency.clone(),
            validate_only: request.validate_only,
        };
        let stored =
            self.calls.once(&idempotency, request.validate_only, self.schedules.update(update, &who)).await?;
        Ok(Response::new(pb::UpdateScheduleResponse { schedule: Some((&stored).into()) }))
    }

    async fn preview_dispatch(
        &self,
        request: Request<pb::PreviewDispatchRequest>,
    ) -> Result<Response<pb::PreviewDispatchResponse>, Status> {
        let caller = super::call::principal(&request)?;
        let acting = (caller.role == crate::domain::access::Role::ControlAgent).then_some(caller.name);
        let item = WorkItem::try_from(request.into_inner())?;
        let answer = self.dispatch.preview(item, acting.as_deref()).await?;
        Ok(Response::new((&answer).into()))
    }
}

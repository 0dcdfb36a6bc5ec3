//! `jhf.warp.v1.ControlService`.

use tonic::{Request, Response, Status};

use super::call::{caller, caller_with_id, mutation};
use super::convert;
use super::convert::{delivery_state_from_pb, reconcile_mode_from_pb, trust_from_pb};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Api;
use super::convert::InRuntime;
use crate::control::fleet::Cell;
use crate::control::{AppError, Globals, GrantRequest, UpdateScheduleRequest, WorkItem};
use crate::domain::audit::AuditFilter;
use crate::domain::lease::CycleReport;
use crate::domain::reconcile::ReconcileMode;
use crate::pb::v1::{self as pb, control_service_server::ControlService};

#[derive(Clone)]
pub struct ControlServiceImpl {
    api: Api,
    stop: CancellationToken,
}

impl ControlServiceImpl {
    pub fn new(api: &Api, stop: CancellationToken) -> Self {
        Self { api: api.clone(), stop }
    }

    fn globals(&self) -> &Globals {
        self.api.fleet.globals()
    }

    /// The services of the runtime a request names.
    fn runtime(&self, name: &str) -> Result<Arc<Cell>, Status> {
        Ok(self.api.fleet.resolve(name)?)
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
        let (value, now) = self
            .globals()
            .leases
            .acquire(&request.name, &request.holder, request.duration_seconds, &who)
            .await?;
        Ok(Response::new(pb::AcquireLeaseResponse { lease: Some(convert::lease_at(&value, now)) }))
    }

    async fn renew_lease(
        &self,
        request: Request<pb::RenewLeaseRequest>,
    ) -> Result<Response<pb::RenewLeaseResponse>, Status> {
        let who = caller(&request)?;
        let request = request.into_inner();
        let (value, now) = self
            .globals()
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
        let (value, now) = self
            .globals()
            .leases
            .release(&request.name, &request.holder, request.fencing_token, &who)
            .await?;
        Ok(Response::new(pb::ReleaseLeaseResponse { lease: Some(convert::lease_at(&value, now)) }))
    }

    async fn get_lease(
        &self,
        request: Request<pb::GetLeaseRequest>,
    ) -> Result<Response<pb::GetLeaseResponse>, Status> {
        let who = caller(&request)?;
        let (value, now) = self.globals().leases.get(&request.into_inner().name, &who).await?;
        Ok(Response::new(pb::GetLeaseResponse { lease: Some(convert::lease_at(&value, now)) }))
    }

    async fn list_leases(
        &self,
        request: Request<pb::ListLeasesRequest>,
    ) -> Result<Response<pb::ListLeasesResponse>, Status> {
        let who = caller(&request)?;
        let request = request.into_inner();
        let (values, next_page_token, now) =
            self.globals().leases.list(request.page_size, &request.page_token, &who).await?;
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
            self.globals().audit.list(filter, request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn verify_audit_chain(
        &self,
        _: Request<pb::VerifyAuditChainRequest>,
    ) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
        Ok(Response::new(self.globals().audit.verify().await?.into()))
    }

    async fn grant_delegation(
        &self,
        request: Request<pb::GrantDelegationRequest>,
    ) -> Result<Response<pb::GrantDelegationResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let grant = GrantRequest {
            grantor: request.grantor_agent_id,
            delegate: request.delegate_agent_id,
            rights: request.rights,
            trust: trust_from_pb(request.trust, "trust")?,
            parent_id: (!request.parent_id.is_empty()).then_some(request.parent_id),
            idempotency: key.clone(),
            validate_only: request.validate_only,
        };
        let granted = self
            .globals()
            .calls
            .once(&key, request.validate_only, cell.services.delegations.grant(grant, &who))
            .await?;
        Ok(Response::new(pb::GrantDelegationResponse {
            delegation: Some(pb::Delegation::from(&granted).in_runtime(cell.name())),
        }))
    }

    async fn revoke_delegation(
        &self,
        request: Request<pb::RevokeDelegationRequest>,
    ) -> Result<Response<pb::RevokeDelegationResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let revoke =
            cell.services.revocations.revoke(&request.id, &request.reason, &key, request.validate_only, &who);
        let outcome = self.globals().calls.once(&key, request.validate_only, revoke).await?;
        Ok(Response::new(pb::RevokeDelegationResponse {
            affected: outcome
                .affected
                .iter()
                .map(|d| pb::Delegation::from(d).in_runtime(cell.name()))
                .collect(),
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
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let preview = cell.services.revocations.preview(&request.id).await?;
        Ok(Response::new(pb::PreviewRevocationResponse {
            falling: preview
                .falling
                .iter()
                .map(|d| pb::Delegation::from(d).in_runtime(cell.name()))
                .collect(),
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
        let cell = self.runtime(&request.runtime)?;
        let (views, next_page_token) =
            cell.services.delegations.list(request.page_size, &request.page_token, &request.agent_id).await?;
        Ok(Response::new(pb::ListDelegationsResponse {
            delegations: views.iter().map(|d| pb::Delegation::from(d).in_runtime(cell.name())).collect(),
            next_page_token,
        }))
    }

    async fn get_delegation_state(
        &self,
        request: Request<pb::GetDelegationStateRequest>,
    ) -> Result<Response<pb::GetDelegationStateResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let view = cell.services.delegations.get(&request.id).await?;
        Ok(Response::new(pb::GetDelegationStateResponse {
            delegation: Some(pb::Delegation::from(&view).in_runtime(cell.name())),
            chain: view.chain.clone(),
        }))
    }

    async fn backfill_delegations(
        &self,
        request: Request<pb::BackfillDelegationsRequest>,
    ) -> Result<Response<pb::BackfillDelegationsResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let validate_only = request.get_ref().validate_only;
        let cell = self.runtime(&request.get_ref().runtime)?;
        let created = self
            .globals()
            .calls
            .once(&key, validate_only, cell.services.delegations.backfill(&key, validate_only, &who))
            .await?;
        Ok(Response::new(pb::BackfillDelegationsResponse {
            created: created.iter().map(|d| pb::Delegation::from(d).in_runtime(cell.name())).collect(),
        }))
    }

    async fn report_cycle_result(
        &self,
        request: Request<pb::ReportCycleResultRequest>,
    ) -> Result<Response<pb::ReportCycleResultResponse>, Status> {
        let who = caller_with_id(&request, &request.get_ref().cycle_id)?;
        let report = CycleReport::try_from(request.into_inner())?;
        let (stored, _) = self.globals().leases.report(report, &who).await?;
        Ok(Response::new(pb::ReportCycleResultResponse { report: Some((&stored).into()) }))
    }

    async fn list_watchdog_observations(
        &self,
        request: Request<pb::ListWatchdogObservationsRequest>,
    ) -> Result<Response<pb::ListWatchdogObservationsResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let all = cell.services.watchdog.evaluate_now().await?;
        let observations = all
            .iter()
            .filter(|o| request.include_cleared || o.cleared_at.is_none())
            .map(|o| pb::WatchdogObservation::from(o).in_runtime(cell.name()))
            .collect();
        Ok(Response::new(pb::ListWatchdogObservationsResponse { observations }))
    }

    async fn acknowledge_observation(
        &self,
        request: Request<pb::AcknowledgeObservationRequest>,
    ) -> Result<Response<pb::AcknowledgeObservationResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let acknowledge = cell.services.watchdog.acknowledge(&request.key, &who, &key, request.validate_only);
        let observation = self.globals().calls.once(&key, request.validate_only, acknowledge).await?;
        Ok(Response::new(pb::AcknowledgeObservationResponse {
            observation: Some(pb::WatchdogObservation::from(&observation).in_runtime(cell.name())),
        }))
    }

    async fn reconcile(
        &self,
        request: Request<pb::ReconcileRequest>,
    ) -> Result<Response<pb::ReconcileResponse>, Status> {
        let who = caller_with_id(&request, &request.get_ref().cycle_id)?;
        let request = request.into_inner();
        let mode = reconcile_mode_from_pb(request.mode, "mode", Some(ReconcileMode::Observe))?;
        let cell = self.runtime(&request.runtime)?;
        let cycle_id = (!request.cycle_id.is_empty()).then_some(request.cycle_id);
        let (run, replayed) = cell.services.reconcile.reconcile(mode, cycle_id, &who).await?;
        Ok(Response::new(pb::ReconcileResponse {
            run: Some(pb::SchedulerRun::from(&run).in_runtime(cell.name())),
            replayed,
        }))
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let request = request.into_inner();
        let state = delivery_state_from_pb(request.state, "state")?;
        let (deliveries, next_page_token) = self
            .globals()
            .outbound
            .list(&request.sink, state, request.page_size, &request.page_token)
            .await?;
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
        let redeliver = self.globals().outbound.redeliver(
            &request.sink,
            &request.event_id,
            &who,
            &key,
            request.validate_only,
        );
        let delivery = self.globals().calls.once(&key, request.validate_only, redeliver).await?;
        Ok(Response::new(pb::RedeliverEventResponse { delivery: Some((&delivery).into()) }))
    }

    async fn list_scheduler_runs(
        &self,
        request: Request<pb::ListSchedulerRunsRequest>,
    ) -> Result<Response<pb::ListSchedulerRunsResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let (runs, next_page_token) =
            cell.services.reconcile.list(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListSchedulerRunsResponse {
            runs: runs.iter().map(|r| pb::SchedulerRun::from(r).in_runtime(cell.name())).collect(),
            next_page_token,
        }))
    }

    async fn get_schedule(
        &self,
        request: Request<pb::GetScheduleRequest>,
    ) -> Result<Response<pb::GetScheduleResponse>, Status> {
        let cell = self.runtime(&request.get_ref().runtime)?;
        let (value, leader, last) = cell.services.schedules.status().await?;
        Ok(Response::new(pb::GetScheduleResponse {
            schedule: Some(pb::Schedule::from(&value).in_runtime(cell.name())),
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
        let cell = self.runtime(&request.runtime)?;
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
        let stored = self
            .globals()
            .calls
            .once(&idempotency, request.validate_only, cell.services.schedules.update(update, &who))
            .await?;
        Ok(Response::new(pb::UpdateScheduleResponse {
            schedule: Some(pb::Schedule::from(&stored).in_runtime(cell.name())),
        }))
    }

    async fn preview_dispatch(
        &self,
        request: Request<pb::PreviewDispatchRequest>,
    ) -> Result<Response<pb::PreviewDispatchResponse>, Status> {
        let caller = super::call::principal(&request)?;
        let acting = (caller.role == crate::domain::access::Role::ControlAgent).then_some(caller.name);
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let item = WorkItem::try_from(request)?;
        let answer = cell.services.dispatch.preview(item, acting.as_deref()).await?;
        Ok(Response::new(pb::PreviewDispatchResponse::from(&answer).in_runtime(cell.name())))
    }

    async fn list_runtimes(
        &self,
        request: Request<pb::ListRuntimesRequest>,
    ) -> Result<Response<pb::ListRuntimesResponse>, Status> {
        Ok(Response::new(super::fleet::list_runtimes(&self.api, request.into_inner()).await?))
    }

    async fn get_runtime(
        &self,
        request: Request<pb::GetRuntimeRequest>,
    ) -> Result<Response<pb::GetRuntimeResponse>, Status> {
        let view = self.api.fleet.view(&request.into_inner().name).await?;
        Ok(Response::new(pb::GetRuntimeResponse { runtime: Some((&view).into()) }))
    }

    async fn register_runtime(
        &self,
        request: Request<pb::RegisterRuntimeRequest>,
    ) -> Result<Response<pb::RegisterRuntimeResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let runtime = super::fleet::register(&self.api, request, &who, &key).await?;
        Ok(Response::new(pb::RegisterRuntimeResponse { runtime: Some(runtime) }))
    }

    async fn update_runtime(
        &self,
        request: Request<pb::UpdateRuntimeRequest>,
    ) -> Result<Response<pb::UpdateRuntimeResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let runtime = super::fleet::update(&self.api, request, &who, &key).await?;
        Ok(Response::new(pb::UpdateRuntimeResponse { runtime: Some(runtime) }))
    }

    async fn deregister_runtime(
        &self,
        request: Request<pb::DeregisterRuntimeRequest>,
    ) -> Result<Response<pb::DeregisterRuntimeResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let request = request.into_inner();
        let runtime = super::fleet::deregister(&self.api, request, &who, &key).await?;
        Ok(Response::new(pb::DeregisterRuntimeResponse { runtime: Some(runtime) }))
    }

    async fn get_fleet_summary(
        &self,
        request: Request<pb::GetFleetSummaryRequest>,
    ) -> Result<Response<pb::GetFleetSummaryResponse>, Status> {
        let selector = super::fleet::selector(&request.get_ref().selector)?;
        let summary = self.api.fleet.summary(&selector).await?;
        Ok(Response::new((&summary).into()))
    }

    type WatchFleetStream = super::watch::EventStream<pb::WatchFleetResponse>;

    async fn watch_fleet(
        &self,
        request: Request<pb::WatchFleetRequest>,
    ) -> Result<Response<Self::WatchFleetStream>, Status> {
        let selector = super::fleet::selector(&request.get_ref().selector)?;
        Ok(Response::new(super::fleet::watch_fleet(&self.api, selector, self.stop.clone())?))
    }
}

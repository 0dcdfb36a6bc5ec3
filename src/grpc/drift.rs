//! `jhf.warp.v1.DriftService`.

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::call::mutation;
use super::convert;
use super::convert::plan_kind_from_pb;
use super::watch::{EventStream, WatchSource, spawn_watch};
use crate::control::events::DriftEvent;
use std::sync::Arc;

use super::Api;
use super::convert::InRuntime;
use crate::control::fleet::{Cell, Record};
use crate::control::{AppError, Calls, CreateRolloutRequest, DriftMonitor, RolloutService};
use crate::domain::drift::tracker::TrackedItem;
use crate::domain::rollout::Rollout;
use crate::pb::v1::{self as pb, drift_service_server::DriftService};

#[derive(Clone)]
pub struct DriftServiceImpl {
    api: Api,
    stop: CancellationToken,
}

impl DriftServiceImpl {
    pub fn new(api: &Api, stop: CancellationToken) -> Self {
        Self { api: api.clone(), stop }
    }

    fn calls(&self) -> &Calls {
        &self.api.fleet.globals().calls
    }

    fn runtime(&self, name: &str) -> Result<Arc<Cell>, Status> {
        Ok(self.api.fleet.resolve(name)?)
    }
}

/// WatchRollout: the rollout as it is, then after every change, until it is final.
struct RolloutWatch {
    rollouts: RolloutService,
    id: String,
}

impl WatchSource for RolloutWatch {
    type Event = Rollout;
    type Message = pb::WatchRolloutResponse;

    async fn snapshot(&mut self) -> Result<Vec<Self::Message>, AppError> {
        let rollout = self.rollouts.get(&self.id).await?;
        Ok(vec![pb::WatchRolloutResponse { rollout: Some((&rollout).into()) }])
    }

    fn map(&mut self, event: Rollout) -> Option<Self::Message> {
        (event.id == self.id).then(|| pb::WatchRolloutResponse { rollout: Some((&event).into()) })
    }

    fn is_last(&self, message: &Self::Message) -> bool {
        let state = message.rollout.as_ref().map(|r| r.state).unwrap_or_default();
        [pb::RolloutState::Succeeded, pb::RolloutState::Failed, pb::RolloutState::RolledBack]
            .iter()
            .any(|last| *last as i32 == state)
    }
}

/// WatchDrift: the open items first, then every transition.
struct DriftWatch {
    drift: DriftMonitor,
    runtime: String,
}

impl WatchSource for DriftWatch {
    type Event = DriftEvent;
    type Message = pb::WatchDriftResponse;

    async fn snapshot(&mut self) -> Result<Vec<Self::Message>, AppError> {
        let open = self.drift.open_items();
        Ok(open.iter().map(|item| initial_event(item).in_runtime(&self.runtime)).collect())
    }

    fn map(&mut self, event: DriftEvent) -> Option<Self::Message> {
        Some(
            pb::WatchDriftResponse {
                item: Some(pb::DriftItem::from(&event.item).in_runtime(&self.runtime)),
                previous_state: event.previous.map(|s| pb::DriftState::from(s).into()).unwrap_or_default(),
                initial: false,
                runtime: String::new(),
            }
            .in_runtime(&self.runtime),
        )
    }
}

fn initial_event(item: &TrackedItem) -> pb::WatchDriftResponse {
    pb::WatchDriftResponse {
        item: Some(item.into()),
        previous_state: 0,
        initial: true,
        runtime: String::new(),
    }
}

#[tonic::async_trait]
impl DriftService for DriftServiceImpl {
    async fn get_drift_summary(
        &self,
        request: Request<pb::GetDriftSummaryRequest>,
    ) -> Result<Response<pb::GetDriftSummaryResponse>, Status> {
        let cell = self.runtime(&request.get_ref().runtime)?;
        let summary = cell.services.drift.summary();
        Ok(Response::new(pb::GetDriftSummaryResponse::from(summary.as_ref()).in_runtime(cell.name())))
    }

    async fn list_drift_items(
        &self,
        request: Request<pb::ListDriftItemsRequest>,
    ) -> Result<Response<pb::ListDriftItemsResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let (items, next_page_token) =
            cell.services.drift.list(request.page_size, &request.page_token, &request.filter).await?;
        Ok(Response::new(pb::ListDriftItemsResponse {
            items: items.iter().map(|i| pb::DriftItem::from(i).in_runtime(cell.name())).collect(),
            next_page_token,
        }))
    }

    async fn get_drift_item(
        &self,
        request: Request<pb::GetDriftItemRequest>,
    ) -> Result<Response<pb::GetDriftItemResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let item = cell.services.drift.get(&request.key).await?;
        Ok(Response::new(pb::GetDriftItemResponse {
            item: Some(pb::DriftItem::from(&item).in_runtime(cell.name())),
        }))
    }

    async fn acknowledge_drift_item(
        &self,
        request: Request<pb::AcknowledgeDriftItemRequest>,
    ) -> Result<Response<pb::AcknowledgeDriftItemResponse>, Status> {
        let (by, key) = mutation(&request)?;
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let acknowledge = cell.services.drift.acknowledge(&request.key, &by, &key, request.validate_only);
        let item = self.calls().once(&key, request.validate_only, acknowledge).await?;
        Ok(Response::new(pb::AcknowledgeDriftItemResponse {
            item: Some(pb::DriftItem::from(&item).in_runtime(cell.name())),
        }))
    }

    async fn observe_now(
        &self,
        request: Request<pb::ObserveNowRequest>,
    ) -> Result<Response<pb::ObserveNowResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let validate_only = request.get_ref().validate_only;
        let cell = self.runtime(&request.get_ref().runtime)?;
        let result = self
            .calls()
            .once(&key, validate_only, cell.services.drift.observe_now(&key, validate_only, &who))
            .await?;
        let mut answer = pb::ObserveNowResponse::from(&result);
        if let Some(summary) = answer.summary.take() {
            answer.summary = Some(summary.in_runtime(cell.name()));
        }
        Ok(Response::new(answer))
    }

    type WatchDriftStream = EventStream<pb::WatchDriftResponse>;

    async fn watch_drift(
        &self,
        request: Request<pb::WatchDriftRequest>,
    ) -> Result<Response<Self::WatchDriftStream>, Status> {
        let cell = self.runtime(&request.get_ref().runtime)?;
        let events = cell.services.drift.subscribe();
        let mut source = DriftWatch { drift: cell.services.drift.clone(), runtime: cell.name().to_owned() };
        let initial = source.snapshot().await?;
        let span = tracing::info_span!("watch_drift", runtime = %cell.name());
        let stream = spawn_watch(source, initial, events, self.stop.clone(), span)?;
        Ok(Response::new(stream))
    }

    async fn plan_patch(
        &self,
        request: Request<pb::PlanPatchRequest>,
    ) -> Result<Response<pb::PlanPatchResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let kind = plan_kind_from_pb(request.kind)?;
        let (plan, created_at) = cell.services.rollouts.plan(kind).await?;
        Ok(Response::new(pb::PlanPatchResponse {
            plan: Some(convert::plan_created(&plan, created_at).in_runtime(cell.name())),
        }))
    }

    async fn get_patch_plan(
        &self,
        request: Request<pb::GetPatchPlanRequest>,
    ) -> Result<Response<pb::GetPatchPlanResponse>, Status> {
        let request = request.into_inner();
        let cell = self.api.fleet.resolve_for(&request.runtime, Record::Plan(&request.plan_id)).await?;
        let (plan, created_at) = cell.services.rollouts.get_plan(&request.plan_id).await?;
        Ok(Response::new(pb::GetPatchPlanResponse {
            plan: Some(convert::plan_created(&plan, created_at).in_runtime(cell.name())),
        }))
    }

    async fn create_rollout(
        &self,
        request: Request<pb::CreateRolloutRequest>,
    ) -> Result<Response<pb::CreateRolloutResponse>, Status> {
        let (actor, idempotency) = mutation(&request)?;
        let request = request.into_inner();
        let cell = self.api.fleet.resolve_for(&request.runtime, Record::Plan(&request.plan_id)).await?;
        let create = CreateRolloutRequest {
            plan_id: request.plan_id,
            dry_run: request.dry_run,
            idempotency: idempotency.clone(),
            validate_only: request.validate_only,
        };
        let rollout = self
            .calls()
            .once(&idempotency, request.validate_only, cell.services.rollouts.create(create, &actor))
            .await?;
        Ok(Response::new(pb::CreateRolloutResponse { rollout: Some((&rollout).into()) }))
    }

    async fn get_rollout(
        &self,
        request: Request<pb::GetRolloutRequest>,
    ) -> Result<Response<pb::GetRolloutResponse>, Status> {
        let request = request.into_inner();
        let cell = self.api.fleet.resolve_for(&request.runtime, Record::Rollout(&request.rollout_id)).await?;
        let rollout = cell.services.rollouts.get(&request.rollout_id).await?;
        Ok(Response::new(pb::GetRolloutResponse { rollout: Some((&rollout).into()) }))
    }

    async fn list_rollouts(
        &self,
        request: Request<pb::ListRolloutsRequest>,
    ) -> Result<Response<pb::ListRolloutsResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let (rollouts, next_page_token) =
            cell.services.rollouts.list(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListRolloutsResponse {
            rollouts: rollouts.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn rollback_rollout(
        &self,
        request: Request<pb::RollbackRolloutRequest>,
    ) -> Result<Response<pb::RollbackRolloutResponse>, Status> {
        let (actor, key) = mutation(&request)?;
        let request = request.into_inner();
        let cell = self.api.fleet.resolve_for(&request.runtime, Record::Rollout(&request.rollout_id)).await?;
        let rollback =
            cell.services.rollouts.rollback(&request.rollout_id, &actor, &key, request.validate_only);
        let rollout = self.calls().once(&key, request.validate_only, rollback).await?;
        Ok(Response::new(pb::RollbackRolloutResponse { rollout: Some((&rollout).into()) }))
    }

    type WatchRolloutStream = EventStream<pb::WatchRolloutResponse>;

    async fn watch_rollout(
        &self,
        request: Request<pb::WatchRolloutRequest>,
    ) -> Result<Response<Self::WatchRolloutStream>, Status> {
        let request = request.into_inner();
        let cell = self.api.fleet.resolve_for(&request.runtime, Record::Rollout(&request.rollout_id)).await?;
        let events = cell.services.rollouts.subscribe();
        let mut source = RolloutWatch { rollouts: cell.services.rollouts.clone(), id: request.rollout_id };
        let initial = source.snapshot().await?;
        let stream =
            spawn_watch(source, initial, events, self.stop.clone(), tracing::info_span!("watch_rollout"))?;
        Ok(Response::new(stream))
    }

    async fn create_fleet_rollout(
        &self,
        request: Request<pb::CreateFleetRolloutRequest>,
    ) -> Result<Response<pb::CreateFleetRolloutResponse>, Status> {
        let (actor, key) = mutation(&request)?;
        let request = request.into_inner();
        let validate_only = request.validate_only;
        let create = super::fleet::create_request(request, key.clone())?;
        let rollout =
            self.calls().once(&key, validate_only, self.api.fleet_rollouts.create(create, &actor)).await?;
        Ok(Response::new(pb::CreateFleetRolloutResponse { fleet_rollout: Some((&rollout).into()) }))
    }

    async fn get_fleet_rollout(
        &self,
        request: Request<pb::GetFleetRolloutRequest>,
    ) -> Result<Response<pb::GetFleetRolloutResponse>, Status> {
        let rollout = self.api.fleet_rollouts.get(&request.into_inner().fleet_rollout_id).await?;
        Ok(Response::new(pb::GetFleetRolloutResponse { fleet_rollout: Some((&rollout).into()) }))
    }

    async fn list_fleet_rollouts(
        &self,
        request: Request<pb::ListFleetRolloutsRequest>,
    ) -> Result<Response<pb::ListFleetRolloutsResponse>, Status> {
        let request = request.into_inner();
        let (rollouts, next_page_token) =
            self.api.fleet_rollouts.list(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListFleetRolloutsResponse {
            fleet_rollouts: rollouts.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn pause_fleet_rollout(
        &self,
        request: Request<pb::PauseFleetRolloutRequest>,
    ) -> Result<Response<pb::PauseFleetRolloutResponse>, Status> {
        let (actor, key) = mutation(&request)?;
        let id = request.into_inner().fleet_rollout_id;
        let pause = self.api.fleet_rollouts.transition(&id, "paused", |r, now| r.pause(now), &actor);
        let rollout = self.calls().once(&key, false, pause).await?;
        Ok(Response::new(pb::PauseFleetRolloutResponse { fleet_rollout: Some((&rollout).into()) }))
    }

    async fn resume_fleet_rollout(
        &self,
        request: Request<pb::ResumeFleetRolloutRequest>,
    ) -> Result<Response<pb::ResumeFleetRolloutResponse>, Status> {
        let (actor, key) = mutation(&request)?;
        let id = request.into_inner().fleet_rollout_id;
        let resume = self.api.fleet_rollouts.transition(&id, "resumed", |r, now| r.resume(now), &actor);
        let rollout = self.calls().once(&key, false, resume).await?;
        Ok(Response::new(pb::ResumeFleetRolloutResponse { fleet_rollout: Some((&rollout).into()) }))
    }

    async fn cancel_fleet_rollout(
        &self,
        request: Request<pb::CancelFleetRolloutRequest>,
    ) -> Result<Response<pb::CancelFleetRolloutResponse>, Status> {
        let (actor, key) = mutation(&request)?;
        let id = request.into_inner().fleet_rollout_id;
        let cancel = self.api.fleet_rollouts.transition(&id, "cancelled", |r, now| r.cancel(now), &actor);
        let rollout = self.calls().once(&key, false, cancel).await?;
        Ok(Response::new(pb::CancelFleetRolloutResponse { fleet_rollout: Some((&rollout).into()) }))
    }

    type WatchFleetRolloutStream = EventStream<pb::WatchFleetRolloutResponse>;

    async fn watch_fleet_rollout(
        &self,
        request: Request<pb::WatchFleetRolloutRequest>,
    ) -> Result<Response<Self::WatchFleetRolloutStream>, Status> {
        let id = request.into_inner().fleet_rollout_id;
        Ok(Response::new(super::fleet::watch_fleet_rollout(&self.api, id, self.stop.clone()).await?))
    }
}

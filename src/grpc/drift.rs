//! `jhf.warp.v1.DriftService`.

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::call::mutation;
use super::convert;
use super::convert::plan_kind_from_pb;
use super::watch::{EventStream, WatchSource, spawn_watch};
use crate::control::events::DriftEvent;
use crate::control::{AppError, Calls, CreateRolloutRequest, DriftMonitor, RolloutService, Services};
use crate::domain::drift::tracker::TrackedItem;
use crate::domain::rollout::Rollout;
use crate::pb::v1::{self as pb, drift_service_server::DriftService};

#[derive(Clone)]
pub struct DriftServiceImpl {
    calls: Calls,
    drift: DriftMonitor,
    rollouts: RolloutService,
    stop: CancellationToken,
}

impl DriftServiceImpl {
    pub fn new(services: &Services, stop: CancellationToken) -> Self {
        Self {
            calls: services.calls.clone(),
            drift: services.drift.clone(),
            rollouts: services.rollouts.clone(),
            stop,
        }
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
}

impl WatchSource for DriftWatch {
    type Event = DriftEvent;
    type Message = pb::WatchDriftResponse;

    async fn snapshot(&mut self) -> Result<Vec<Self::Message>, AppError> {
        let open = self.drift.open_items();
        Ok(open.iter().map(initial_event).collect())
    }

    fn map(&mut self, event: DriftEvent) -> Option<Self::Message> {
        Some(pb::WatchDriftResponse {
            item: Some((&event.item).into()),
            previous_state: event.previous.map(|s| pb::DriftState::from(s).into()).unwrap_or_default(),
            initial: false,
        })
    }
}

fn initial_event(item: &TrackedItem) -> pb::WatchDriftResponse {
    pb::WatchDriftResponse { item: Some(item.into()), previous_state: 0, initial: true }
}

#[tonic::async_trait]
impl DriftService for DriftServiceImpl {
    async fn get_drift_summary(
        &self,
        _: Request<pb::GetDriftSummaryRequest>,
    ) -> Result<Response<pb::GetDriftSummaryResponse>, Status> {
        let summary = self.drift.summary();
        Ok(Response::new(summary.as_ref().into()))
    }

    async fn list_drift_items(
        &self,
        request: Request<pb::ListDriftItemsRequest>,
    ) -> Result<Response<pb::ListDriftItemsResponse>, Status> {
        let request = request.into_inner();
        let (items, next_page_token) =
            self.drift.list(request.page_size, &request.page_token, &request.filter).await?;
        Ok(Response::new(pb::ListDriftItemsResponse {
            items: items.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn get_drift_item(
        &self,
        request: Request<pb::GetDriftItemRequest>,
    ) -> Result<Response<pb::GetDriftItemResponse>, Status> {
        let item = self.drift.get(&request.into_inner().key).await?;
        Ok(Response::new(pb::GetDriftItemResponse { item: Some((&item).into()) }))
    }

    async fn acknowledge_drift_item(
        &self,
        request: Request<pb::AcknowledgeDriftItemRequest>,
    ) -> Result<Response<pb::AcknowledgeDriftItemResponse>, Status> {
        let (by, key) = mutation(&request)?;
        let request = request.into_inner();
        let acknowledge = self.drift.acknowledge(&request.key, &by, &key, request.validate_only);
        let item = self.calls.once(&key, request.validate_only, acknowledge).await?;
        Ok(Response::new(pb::AcknowledgeDriftItemResponse { item: Some((&item).into()) }))
    }

    async fn observe_now(
        &self,
        request: Request<pb::ObserveNowRequest>,
    ) -> Result<Response<pb::ObserveNowResponse>, Status> {
        let (who, key) = mutation(&request)?;
        let validate_only = request.get_ref().validate_only;
        let result =
            self.calls.once(&key, validate_only, self.drift.observe_now(&key, validate_only, &who)).await?;
        Ok(Response::new((&result).into()))
    }

    type WatchDriftStream = EventStream<pb::WatchDriftResponse>;

    async fn watch_drift(
        &self,
        _: Request<pb::WatchDriftRequest>,
    ) -> Result<Response<Self::WatchDriftStream>, Status> {
        let events = self.drift.subscribe();
        let mut source = DriftWatch { drift: self.drift.clone() };
        let initial = source.snapshot().await?;
        let stream =
            spawn_watch(source, initial, events, self.stop.clone(), tracing::info_span!("watch_drift"))?;
        Ok(Response::new(stream))
    }

    async fn plan_patch(
        &self,
        request: Request<pb::PlanPatchRequest>,
    ) -> Result<Response<pb::PlanPatchResponse>, Status> {
        let kind = plan_kind_from_pb(request.into_inner().kind)?;
        let (plan, created_at) = self.rollouts.plan(kind).await?;
        Ok(Response::new(pb::PlanPatchResponse { plan: Some(convert::plan_created(&plan, created_at)) }))
    }

    async fn get_patch_plan(
        &self,
        request: Request<pb::GetPatchPlanRequest>,
    ) -> Result<Response<pb::GetPatchPlanResponse>, Status> {
        let (plan, created_at) = self.rollouts.get_plan(&request.into_inner().plan_id).await?;
        Ok(Response::new(pb::GetPatchPlanResponse { plan: Some(convert::plan_created(&plan, created_at)) }))
    }

    async fn create_rollout(
        &self,
        request: Request<pb::CreateRolloutRequest>,
    ) -> Result<Response<pb::CreateRolloutResponse>, Status> {
        let (actor, idempotency) = mutation(&request)?;
        let request = request.into_inner();
        let create = CreateRolloutRequest {
            plan_id: request.plan_id,
            dry_run: request.dry_run,
            idempotency: idempotency.clone(),
            validate_only: request.validate_only,
        };
        let rollout = self
            .calls
            .once(&idempotency, request.validate_only, self.rollouts.create(create, &actor))
            .await?;
        Ok(Response::new(pb::CreateRolloutResponse { rollout: Some((&rollout).into()) }))
    }

    async fn get_rollout(
        &self,
        request: Request<pb::GetRolloutRequest>,
    ) -> Result<Response<pb::GetRolloutResponse>, Status> {
        let rollout = self.rollouts.get(&request.into_inner().rollout_id).await?;
        Ok(Response::new(pb::GetRolloutResponse { rollout: Some((&rollout).into()) }))
    }

    async fn list_rollouts(
        &self,
        request: Request<pb::ListRolloutsRequest>,
    ) -> Result<Response<pb::ListRolloutsResponse>, Status> {
        let request = request.into_inner();
        let (rollouts, next_page_token) = self.rollouts.list(request.page_size, &request.page_token).await?;
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
        let rollback = self.rollouts.rollback(&request.rollout_id, &actor, &key, request.validate_only);
        let rollout = self.calls.once(&key, request.validate_only, rollback).await?;
        Ok(Response::new(pb::RollbackRolloutResponse { rollout: Some((&rollout).into()) }))
    }

    type WatchRolloutStream = EventStream<pb::WatchRolloutResponse>;

    async fn watch_rollout(
        &self,
        request: Request<pb::WatchRolloutRequest>,
    ) -> Result<Response<Self::WatchRolloutStream>, Status> {
        let events = self.rollouts.subscribe();
        let mut source =
            RolloutWatch { rollouts: self.rollouts.clone(), id: request.into_inner().rollout_id };
        let initial = source.snapshot().await?;
        let stream =
            spawn_watch(source, initial, events, self.stop.clone(), tracing::info_span!("watch_rollout"))?;
        Ok(Response::new(stream))
    }
}

//! `jhf.warp.v1.DriftService`.

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::watch::{EventStream, WatchSource, principal, spawn_watch};
use super::{convert, idempotency};
use crate::control::events::DriftEvent;
use crate::control::{AppError, DriftMonitor};
use crate::domain::drift::tracker::TrackedItem;
use crate::pb::v1::{self as pb, drift_service_server::DriftService};

pub struct DriftServiceImpl {
    drift: DriftMonitor,
    stop: CancellationToken,
}

impl DriftServiceImpl {
    pub fn new(drift: DriftMonitor, stop: CancellationToken) -> Self {
        Self { drift, stop }
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
        let open = self.drift.open_items().await?;
        Ok(open.iter().map(initial_event).collect())
    }

    fn map(&mut self, event: DriftEvent) -> Option<Self::Message> {
        Some(pb::WatchDriftResponse {
            item: Some(convert::drift_item(&event.item)),
            previous_state: event.previous.map(|s| convert::drift_state(s).into()).unwrap_or_default(),
            initial: false,
        })
    }
}

fn initial_event(item: &TrackedItem) -> pb::WatchDriftResponse {
    pb::WatchDriftResponse { item: Some(convert::drift_item(item)), previous_state: 0, initial: true }
}

#[tonic::async_trait]
impl DriftService for DriftServiceImpl {
    async fn get_drift_summary(
        &self,
        _: Request<pb::GetDriftSummaryRequest>,
    ) -> Result<Response<pb::GetDriftSummaryResponse>, Status> {
        let summary = self.drift.summary().await?;
        Ok(Response::new(convert::drift_summary(&summary)))
    }

    async fn list_drift_items(
        &self,
        request: Request<pb::ListDriftItemsRequest>,
    ) -> Result<Response<pb::ListDriftItemsResponse>, Status> {
        let request = request.into_inner();
        let (items, next_page_token) =
            self.drift.list(request.page_size, &request.page_token, &request.filter).await?;
        Ok(Response::new(pb::ListDriftItemsResponse {
            items: items.iter().map(convert::drift_item).collect(),
            next_page_token,
        }))
    }

    async fn get_drift_item(
        &self,
        request: Request<pb::GetDriftItemRequest>,
    ) -> Result<Response<pb::GetDriftItemResponse>, Status> {
        let item = self.drift.get(&request.into_inner().key).await?;
        Ok(Response::new(pb::GetDriftItemResponse { item: Some(convert::drift_item(&item)) }))
    }

    async fn acknowledge_drift_item(
        &self,
        request: Request<pb::AcknowledgeDriftItemRequest>,
    ) -> Result<Response<pb::AcknowledgeDriftItemResponse>, Status> {
        let by = principal(&request)?;
        let request = request.into_inner();
        let without_id = pb::AcknowledgeDriftItemRequest { request_id: String::new(), ..request.clone() };
        let key = idempotency::key_of("AcknowledgeDriftItem", &request.request_id, &without_id)?;
        let item = self.drift.acknowledge(&request.key, &by, &key, request.validate_only).await?;
        Ok(Response::new(pb::AcknowledgeDriftItemResponse { item: Some(convert::drift_item(&item)) }))
    }

    async fn observe_now(
        &self,
        request: Request<pb::ObserveNowRequest>,
    ) -> Result<Response<pb::ObserveNowResponse>, Status> {
        let request = request.into_inner();
        let without_id = pb::ObserveNowRequest { request_id: String::new(), ..request.clone() };
        let key = idempotency::key_of("ObserveNow", &request.request_id, &without_id)?;
        let result = self.drift.observe_now(&key, request.validate_only).await?;
        Ok(Response::new(convert::observe_now(&result)))
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
            spawn_watch(source, initial, events, self.stop.clone(), tracing::info_span!("watch_drift"));
        Ok(Response::new(stream))
    }
}

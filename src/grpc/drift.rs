//! `jhf.warp.v1.DriftService`.

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::watch::{EventStream, channel, principal};
use super::{convert, idempotency};
use crate::control::DriftMonitor;
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
        // Subscribe before reading the open items, so no transition falls in between.
        let mut events = self.drift.subscribe();
        let open = self.drift.open_items().await?;
        let (sender, stream) = channel();
        let (drift, stop) = (self.drift.clone(), self.stop.clone());
        let task = async move {
            let mut snapshot = open;
            'resync: loop {
                for item in &snapshot {
                    if sender.send(Ok(initial_event(item))).await.is_err() {
                        return;
                    }
                }
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        () = sender.closed() => return,
                        event = events.recv() => match event {
                            Ok(event) => pb::WatchDriftResponse {
                                item: Some(convert::drift_item(&event.item)),
                                previous_state: event.previous.map(|s| convert::drift_state(s).into()).unwrap_or_default(),
                                initial: false,
                            },
                            Err(RecvError::Lagged(missed)) => {
                                tracing::debug!(missed, "drift watcher lagged; re-synchronising");
                                match drift.open_items().await {
                                    Ok(items) => {
                                        snapshot = items;
                                        continue 'resync;
                                    }
                                    Err(error) => {
                                        let _ = sender.send(Err(error.into())).await;
                                        return;
                                    }
                                }
                            }
                            Err(RecvError::Closed) => return,
                        },
                    };
                    if sender.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
            }
        };
        tokio::spawn(task.instrument(tracing::info_span!("watch_drift")));
        Ok(Response::new(stream))
    }
}

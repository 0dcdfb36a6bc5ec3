//! `jhf.warp.v1.TopologyService`.

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::watch::{EventStream, channel, principal};
use super::{convert, idempotency};
use crate::control::events::TopologyEvent;
use crate::control::{AppError, DesiredTopologyService, ObservationService, PutRequest, TopologySelector};
use crate::domain::Topology;
use crate::domain::desired::DesiredRevision;
use crate::domain::observation::StoredObservation;
use crate::pb::v1::{self as pb, topology_service_server::TopologyService};

pub struct TopologyServiceImpl {
    observations: ObservationService,
    desired: DesiredTopologyService,
    stop: CancellationToken,
}

impl TopologyServiceImpl {
    pub fn new(
        observations: ObservationService,
        desired: DesiredTopologyService,
        stop: CancellationToken,
    ) -> Self {
        Self { observations, desired, stop }
    }

    async fn observation(&self, read_mode: i32) -> Result<StoredObservation, AppError> {
        match pb::ReadMode::try_from(read_mode) {
            Ok(pb::ReadMode::Unspecified | pb::ReadMode::Fresh) => self.observations.observe_now().await,
            Ok(pb::ReadMode::Stored) => self.observations.latest_stored().await,
            Err(_) => Err(AppError::invalid("read_mode", format!("unknown read mode {read_mode}"))),
        }
    }
}

fn selector(reference: Option<&pb::TopologyRef>, field: &'static str) -> Result<TopologySelector, AppError> {
    let reference = reference.ok_or_else(|| AppError::invalid(field, "required"))?;
    match pb::TopologySource::try_from(reference.source) {
        Ok(pb::TopologySource::DesiredGeneration) => {
            Ok(TopologySelector::DesiredGeneration(reference.generation))
        }
        Ok(pb::TopologySource::LatestDesired) => Ok(TopologySelector::LatestDesired),
        Ok(pb::TopologySource::Observed) => Ok(TopologySelector::Observed),
        _ => Err(AppError::invalid(format!("{field}.source"), "must name a topology source")),
    }
}

fn desired_event(revision: &DesiredRevision, initial: bool) -> pb::WatchTopologyResponse {
    pb::WatchTopologyResponse {
        kind: pb::TopologyEventKind::Desired.into(),
        initial,
        desired_generation: revision.generation,
        topology: Some(convert::topology(&revision.topology)),
    }
}

fn observed_event(topology: &Topology, initial: bool) -> pb::WatchTopologyResponse {
    pb::WatchTopologyResponse {
        kind: pb::TopologyEventKind::Observed.into(),
        initial,
        desired_generation: 0,
        topology: Some(convert::topology(topology)),
    }
}

#[tonic::async_trait]
impl TopologyService for TopologyServiceImpl {
    async fn get_inventory(
        &self,
        request: Request<pb::GetInventoryRequest>,
    ) -> Result<Response<pb::GetInventoryResponse>, Status> {
        let observed = self.observation(request.into_inner().read_mode).await?;
        Ok(Response::new(pb::GetInventoryResponse {
            observation: Some(convert::observation_info(&observed.record)),
            inventory: Some(convert::inventory(&observed.inventory)),
        }))
    }

    async fn get_topology(
        &self,
        request: Request<pb::GetTopologyRequest>,
    ) -> Result<Response<pb::GetTopologyResponse>, Status> {
        let observed = self.observation(request.into_inner().read_mode).await?;
        Ok(Response::new(pb::GetTopologyResponse {
            observation: Some(convert::observation_info(&observed.record)),
            topology: Some(convert::topology(&observed.topology)),
        }))
    }

    async fn list_observations(
        &self,
        request: Request<pb::ListObservationsRequest>,
    ) -> Result<Response<pb::ListObservationsResponse>, Status> {
        let request = request.into_inner();
        let (records, next_page_token) =
            self.observations.list(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListObservationsResponse {
            observations: records.iter().map(convert::observation_info).collect(),
            next_page_token,
        }))
    }

    async fn put_desired_topology(
        &self,
        request: Request<pb::PutDesiredTopologyRequest>,
    ) -> Result<Response<pb::PutDesiredTopologyResponse>, Status> {
        let author = principal(&request)?;
        let request = request.into_inner();
        let input = convert::desired_input(request.topology.as_ref())
            .map_err(|violations| AppError::InvalidArgument { violations })?;
        let without_id = pb::PutDesiredTopologyRequest { request_id: String::new(), ..request.clone() };
        let idempotency = idempotency::key_of("PutDesiredTopology", &request.request_id, &without_id)?;
        let put = PutRequest { input, etag: request.etag, idempotency, validate_only: request.validate_only };
        let result = self.desired.put(put, &author).await?;
        Ok(Response::new(pb::PutDesiredTopologyResponse {
            desired: Some(convert::desired_revision(&result.desired)),
            validate_only: result.validate_only,
        }))
    }

    async fn get_desired_topology(
        &self,
        request: Request<pb::GetDesiredTopologyRequest>,
    ) -> Result<Response<pb::GetDesiredTopologyResponse>, Status> {
        let desired = self.desired.get(request.into_inner().generation).await?;
        Ok(Response::new(pb::GetDesiredTopologyResponse {
            desired: Some(convert::desired_revision(&desired)),
        }))
    }

    async fn list_topology_revisions(
        &self,
        request: Request<pb::ListTopologyRevisionsRequest>,
    ) -> Result<Response<pb::ListTopologyRevisionsResponse>, Status> {
        let request = request.into_inner();
        let (revisions, next_page_token) = self.desired.list(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListTopologyRevisionsResponse {
            revisions: revisions.iter().map(convert::desired_revision).collect(),
            next_page_token,
        }))
    }

    async fn diff_topology(
        &self,
        request: Request<pb::DiffTopologyRequest>,
    ) -> Result<Response<pb::DiffTopologyResponse>, Status> {
        let request = request.into_inner();
        let base = selector(request.base.as_ref(), "base")?;
        let target = selector(request.target.as_ref(), "target")?;
        let (base_revision, target_revision, differences) = self.desired.diff(base, target).await?;
        Ok(Response::new(pb::DiffTopologyResponse {
            base_revision,
            target_revision,
            differences: differences.iter().map(convert::difference).collect(),
        }))
    }

    async fn get_agent_catalog(
        &self,
        _: Request<pb::GetAgentCatalogRequest>,
    ) -> Result<Response<pb::GetAgentCatalogResponse>, Status> {
        let catalog = self.desired.catalog().await?;
        Ok(Response::new(convert::catalog(&catalog)))
    }

    type WatchTopologyStream = EventStream<pb::WatchTopologyResponse>;

    async fn watch_topology(
        &self,
        request: Request<pb::WatchTopologyRequest>,
    ) -> Result<Response<Self::WatchTopologyStream>, Status> {
        let request = request.into_inner();
        // Subscribe before reading the current state, so no change falls in between.
        let mut events = self.desired.subscribe();
        let (desired, observed) = self.desired.current().await?;
        let (sender, stream) = channel();
        let (service, stop) = (self.desired.clone(), self.stop.clone());
        let mut known_generation = request.known_desired_generation;
        let mut known_revision = request.known_observed_revision;
        let task = async move {
            let mut current = (desired, observed);
            'resync: loop {
                if let Some(revision) = current.0.as_ref().filter(|d| d.generation != known_generation) {
                    known_generation = revision.generation;
                    if sender.send(Ok(desired_event(revision, true))).await.is_err() {
                        return;
                    }
                }
                if let Some(topology) = current.1.as_ref().filter(|t| t.revision != known_revision) {
                    known_revision = topology.revision.clone();
                    if sender.send(Ok(observed_event(topology, true))).await.is_err() {
                        return;
                    }
                }
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        () = sender.closed() => return,
                        event = events.recv() => match event {
                            Ok(TopologyEvent::Desired(revision)) if revision.generation > known_generation => {
                                known_generation = revision.generation;
                                desired_event(&revision, false)
                            }
                            Ok(TopologyEvent::Observed(topology)) if topology.revision != known_revision => {
                                known_revision = topology.revision.clone();
                                observed_event(&topology, false)
                            }
                            Ok(_) => continue,
                            Err(RecvError::Lagged(missed)) => {
                                tracing::debug!(missed, "topology watcher lagged; re-synchronising");
                                match service.current().await {
                                    Ok(state) => {
                                        current = state;
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
        tokio::spawn(task.instrument(tracing::info_span!("watch_topology")));
        Ok(Response::new(stream))
    }
}

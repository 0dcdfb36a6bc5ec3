//! `jhf.warp.v1.TopologyService`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::call::mutation;
use super::watch::{EventStream, WatchSource, spawn_watch};
use crate::control::events::TopologyEvent;
use crate::control::{
    AppError, Calls, DesiredTopologyService, ObservationService, PutRequest, Services, TopologySelector,
};
use crate::domain::Topology;
use crate::domain::desired::{DesiredInput, DesiredRevision};
use crate::domain::observation::StoredObservation;
use crate::pb::v1::{self as pb, topology_service_server::TopologyService};

#[derive(Clone)]
pub struct TopologyServiceImpl {
    calls: Calls,
    observations: ObservationService,
    desired: DesiredTopologyService,
    stop: CancellationToken,
}

impl TopologyServiceImpl {
    pub fn new(services: &Services, stop: CancellationToken) -> Self {
        Self {
            calls: services.calls.clone(),
            observations: services.observations.clone(),
            desired: services.desired.clone(),
            stop,
        }
    }

    async fn observation(&self, read_mode: i32) -> Result<Arc<StoredObservation>, AppError> {
        match pb::ReadMode::try_from(read_mode) {
            Ok(pb::ReadMode::Unspecified | pb::ReadMode::Fresh) => self.observations.observe_fresh().await,
            Ok(pb::ReadMode::Stored) => self.observations.latest_stored(),
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
        topology: Some((&revision.topology).into()),
    }
}

fn observed_event(topology: &Topology, initial: bool) -> pb::WatchTopologyResponse {
    pb::WatchTopologyResponse {
        kind: pb::TopologyEventKind::Observed.into(),
        initial,
        desired_generation: 0,
        topology: Some(topology.into()),
    }
}

/// WatchTopology: the current desired and observed topologies the caller does not have yet,
/// then every newer one.
struct TopologyWatch {
    desired: DesiredTopologyService,
    known_generation: i64,
    known_revision: String,
}

impl WatchSource for TopologyWatch {
    type Event = TopologyEvent;
    type Message = pb::WatchTopologyResponse;

    async fn snapshot(&mut self) -> Result<Vec<Self::Message>, AppError> {
        let (desired, observed) = self.desired.current();
        let mut messages = Vec::new();
        if let Some(revision) = desired.filter(|d| d.generation != self.known_generation) {
            self.known_generation = revision.generation;
            messages.push(desired_event(&revision, true));
        }
        if let Some(observation) = observed.filter(|o| o.topology.revision != self.known_revision) {
            self.known_revision = observation.topology.revision.clone();
            messages.push(observed_event(&observation.topology, true));
        }
        Ok(messages)
    }

    fn map(&mut self, event: TopologyEvent) -> Option<Self::Message> {
        match event {
            TopologyEvent::Desired(revision) if revision.generation > self.known_generation => {
                self.known_generation = revision.generation;
                Some(desired_event(&revision, false))
            }
            TopologyEvent::Observed(topology) if topology.revision != self.known_revision => {
                self.known_revision = topology.revision.clone();
                Some(observed_event(&topology, false))
            }
            _ => None,
        }
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
            observation: Some((&observed.record).into()),
            inventory: Some((&observed.inventory).into()),
        }))
    }

    async fn get_topology(
        &self,
        request: Request<pb::GetTopologyRequest>,
    ) -> Result<Response<pb::GetTopologyResponse>, Status> {
        let observed = self.observation(request.into_inner().read_mode).await?;
        Ok(Response::new(pb::GetTopologyResponse {
            observation: Some((&observed.record).into()),
            topology: Some((&observed.topology).into()),
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
            observations: records.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn put_desired_topology(
        &self,
        request: Request<pb::PutDesiredTopologyRequest>,
    ) -> Result<Response<pb::PutDesiredTopologyResponse>, Status> {
        let (author, idempotency) = mutation(&request)?;
        let request = request.into_inner();
        let topology = request.topology.as_ref().ok_or_else(|| AppError::invalid("topology", "required"))?;
        let input = DesiredInput::try_from(topology)
            .map_err(|violations| AppError::InvalidArgument { violations })?;
        let put = PutRequest {
            input,
            etag: request.etag,
            idempotency: idempotency.clone(),
            validate_only: request.validate_only,
        };
        let result =
            self.calls.once(&idempotency, request.validate_only, self.desired.put(put, &author)).await?;
        Ok(Response::new(pb::PutDesiredTopologyResponse {
            desired: Some((&result.desired).into()),
            validate_only: result.validate_only,
        }))
    }

    async fn get_desired_topology(
        &self,
        request: Request<pb::GetDesiredTopologyRequest>,
    ) -> Result<Response<pb::GetDesiredTopologyResponse>, Status> {
        let desired = self.desired.get(request.into_inner().generation).await?;
        Ok(Response::new(pb::GetDesiredTopologyResponse { desired: Some((&desired).into()) }))
    }

    async fn list_topology_revisions(
        &self,
        request: Request<pb::ListTopologyRevisionsRequest>,
    ) -> Result<Response<pb::ListTopologyRevisionsResponse>, Status> {
        let request = request.into_inner();
        let (revisions, next_page_token) = self.desired.list(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListTopologyRevisionsResponse {
            revisions: revisions.iter().map(Into::into).collect(),
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
            differences: differences.iter().map(Into::into).collect(),
        }))
    }

    async fn get_agent_catalog(
        &self,
        _: Request<pb::GetAgentCatalogRequest>,
    ) -> Result<Response<pb::GetAgentCatalogResponse>, Status> {
        let catalog = self.desired.catalog();
        Ok(Response::new(catalog.as_ref().into()))
    }

    type WatchTopologyStream = EventStream<pb::WatchTopologyResponse>;

    async fn watch_topology(
        &self,
        request: Request<pb::WatchTopologyRequest>,
    ) -> Result<Response<Self::WatchTopologyStream>, Status> {
        let request = request.into_inner();
        let events = self.desired.subscribe();
        let mut source = TopologyWatch {
            desired: self.desired.clone(),
            known_generation: request.known_desired_generation,
            known_revision: request.known_observed_revision,
        };
        let initial = source.snapshot().await?;
        let stream =
            spawn_watch(source, initial, events, self.stop.clone(), tracing::info_span!("watch_topology"))?;
        Ok(Response::new(stream))
    }
}

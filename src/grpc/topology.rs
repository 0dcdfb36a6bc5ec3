//! `jhf.warp.v1.TopologyService`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::Api;
use super::call::mutation;
use super::convert::InRuntime;
use super::watch::{EventStream, WatchSource, spawn_watch};
use crate::control::events::TopologyEvent;
use crate::control::fleet::Cell;
use crate::control::{AppError, DesiredTopologyService, ObservationService, PutRequest, TopologySelector};
use crate::domain::Topology;
use crate::domain::desired::{DesiredInput, DesiredRevision};
use crate::domain::observation::StoredObservation;
use crate::pb::v1::{self as pb, topology_service_server::TopologyService};

#[derive(Clone)]
pub struct TopologyServiceImpl {
    api: Api,
    stop: CancellationToken,
}

impl TopologyServiceImpl {
    pub fn new(api: &Api, stop: CancellationToken) -> Self {
        Self { api: api.clone(), stop }
    }

    fn runtime(&self, name: &str) -> Result<Arc<Cell>, Status> {
        Ok(self.api.fleet.resolve(name)?)
    }
}

async fn observation(
    observations: &ObservationService,
    read_mode: i32,
) -> Result<Arc<StoredObservation>, AppError> {
    match pb::ReadMode::try_from(read_mode) {
        Ok(pb::ReadMode::Unspecified | pb::ReadMode::Fresh) => observations.observe_fresh().await,
        Ok(pb::ReadMode::Stored) => observations.latest_stored(),
        Err(_) => Err(AppError::invalid("read_mode", format!("unknown read mode {read_mode}"))),
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

fn desired_event(revision: &DesiredRevision, initial: bool, runtime: &str) -> pb::WatchTopologyResponse {
    pb::WatchTopologyResponse {
        kind: pb::TopologyEventKind::Desired.into(),
        initial,
        desired_generation: revision.generation,
        topology: Some((&revision.topology).into()),
        runtime: runtime.to_owned(),
    }
}

fn observed_event(topology: &Topology, initial: bool, runtime: &str) -> pb::WatchTopologyResponse {
    pb::WatchTopologyResponse {
        kind: pb::TopologyEventKind::Observed.into(),
        initial,
        desired_generation: 0,
        topology: Some(topology.into()),
        runtime: runtime.to_owned(),
    }
}

/// WatchTopology: the current desired and observed topologies the caller does not have yet,
/// then every newer one.
struct TopologyWatch {
    desired: DesiredTopologyService,
    runtime: String,
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
            messages.push(desired_event(&revision, true, &self.runtime));
        }
        if let Some(observation) = observed.filter(|o| o.topology.revision != self.known_revision) {
            self.known_revision = observation.topology.revision.clone();
            messages.push(observed_event(&observation.topology, true, &self.runtime));
        }
        Ok(messages)
    }

    fn map(&mut self, event: TopologyEvent) -> Option<Self::Message> {
        match event {
            TopologyEvent::Desired(revision) if revision.generation > self.known_generation => {
                self.known_generation = revision.generation;
                Some(desired_event(&revision, false, &self.runtime))
            }
            TopologyEvent::Observed(topology) if topology.revision != self.known_revision => {
                self.known_revision = topology.revision.clone();
                Some(observed_event(&topology, false, &self.runtime))
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
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let observed = observation(&cell.services.observations, request.read_mode).await?;
        Ok(Response::new(pb::GetInventoryResponse {
            observation: Some(pb::ObservationInfo::from(&observed.record).in_runtime(cell.name())),
            inventory: Some((&observed.inventory).into()),
            runtime: cell.name().to_owned(),
        }))
    }

    async fn get_topology(
        &self,
        request: Request<pb::GetTopologyRequest>,
    ) -> Result<Response<pb::GetTopologyResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let observed = observation(&cell.services.observations, request.read_mode).await?;
        Ok(Response::new(pb::GetTopologyResponse {
            observation: Some(pb::ObservationInfo::from(&observed.record).in_runtime(cell.name())),
            topology: Some((&observed.topology).into()),
            runtime: cell.name().to_owned(),
        }))
    }

    async fn list_observations(
        &self,
        request: Request<pb::ListObservationsRequest>,
    ) -> Result<Response<pb::ListObservationsResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let (records, next_page_token) =
            cell.services.observations.list(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListObservationsResponse {
            observations: records
                .iter()
                .map(|r| pb::ObservationInfo::from(r).in_runtime(cell.name()))
                .collect(),
            next_page_token,
        }))
    }

    async fn put_desired_topology(
        &self,
        request: Request<pb::PutDesiredTopologyRequest>,
    ) -> Result<Response<pb::PutDesiredTopologyResponse>, Status> {
        let (author, idempotency) = mutation(&request)?;
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let topology = request.topology.as_ref().ok_or_else(|| AppError::invalid("topology", "required"))?;
        let input = DesiredInput::try_from(topology)
            .map_err(|violations| AppError::InvalidArgument { violations })?;
        let put = PutRequest {
            input,
            etag: request.etag,
            idempotency: idempotency.clone(),
            validate_only: request.validate_only,
        };
        let calls = &self.api.fleet.globals().calls;
        let result =
            calls.once(&idempotency, request.validate_only, cell.services.desired.put(put, &author)).await?;
        Ok(Response::new(pb::PutDesiredTopologyResponse {
            desired: Some(pb::DesiredTopologyRevision::from(&result.desired).in_runtime(cell.name())),
            validate_only: result.validate_only,
        }))
    }

    async fn get_desired_topology(
        &self,
        request: Request<pb::GetDesiredTopologyRequest>,
    ) -> Result<Response<pb::GetDesiredTopologyResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let desired = cell.services.desired.get(request.generation).await?;
        Ok(Response::new(pb::GetDesiredTopologyResponse {
            desired: Some(pb::DesiredTopologyRevision::from(&desired).in_runtime(cell.name())),
        }))
    }

    async fn list_topology_revisions(
        &self,
        request: Request<pb::ListTopologyRevisionsRequest>,
    ) -> Result<Response<pb::ListTopologyRevisionsResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let (revisions, next_page_token) =
            cell.services.desired.list(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListTopologyRevisionsResponse {
            revisions: revisions
                .iter()
                .map(|r| pb::DesiredTopologyRevision::from(r).in_runtime(cell.name()))
                .collect(),
            next_page_token,
        }))
    }

    async fn diff_topology(
        &self,
        request: Request<pb::DiffTopologyRequest>,
    ) -> Result<Response<pb::DiffTopologyResponse>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let base = selector(request.base.as_ref(), "base")?;
        let target = selector(request.target.as_ref(), "target")?;
        let (base_revision, target_revision, differences) = cell.services.desired.diff(base, target).await?;
        Ok(Response::new(pb::DiffTopologyResponse {
            base_revision,
            target_revision,
            differences: differences.iter().map(Into::into).collect(),
            runtime: cell.name().to_owned(),
        }))
    }

    async fn get_agent_catalog(
        &self,
        request: Request<pb::GetAgentCatalogRequest>,
    ) -> Result<Response<pb::GetAgentCatalogResponse>, Status> {
        let cell = self.runtime(&request.get_ref().runtime)?;
        let catalog = cell.services.desired.catalog();
        Ok(Response::new(pb::GetAgentCatalogResponse::from(catalog.as_ref()).in_runtime(cell.name())))
    }

    type WatchTopologyStream = EventStream<pb::WatchTopologyResponse>;

    async fn watch_topology(
        &self,
        request: Request<pb::WatchTopologyRequest>,
    ) -> Result<Response<Self::WatchTopologyStream>, Status> {
        let request = request.into_inner();
        let cell = self.runtime(&request.runtime)?;
        let events = cell.services.desired.subscribe();
        let mut source = TopologyWatch {
            desired: cell.services.desired.clone(),
            runtime: cell.name().to_owned(),
            known_generation: request.known_desired_generation,
            known_revision: request.known_observed_revision,
        };
        let initial = source.snapshot().await?;
        let span = tracing::info_span!("watch_topology", runtime = %cell.name());
        let stream = spawn_watch(source, initial, events, self.stop.clone(), span)?;
        Ok(Response::new(stream))
    }
}

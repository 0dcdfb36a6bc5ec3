//! `jhf.warp.v1.TopologyService`.

use tonic::{Request, Response, Status};

use super::convert;
use crate::control::{AppError, ObservationService};
use crate::domain::observation::StoredObservation;
use crate::pb::v1::{self as pb, topology_service_server::TopologyService};

pub struct TopologyServiceImpl {
    observations: ObservationService,
}

impl TopologyServiceImpl {
    pub fn new(observations: ObservationService) -> Self {
        Self { observations }
    }

    async fn observation(&self, read_mode: i32) -> Result<StoredObservation, AppError> {
        match pb::ReadMode::try_from(read_mode) {
            Ok(pb::ReadMode::Unspecified | pb::ReadMode::Fresh) => self.observations.observe_now().await,
            Ok(pb::ReadMode::Stored) => self.observations.latest_stored().await,
            Err(_) => Err(AppError::InvalidArgument {
                field: "read_mode",
                description: format!("unknown read mode {read_mode}"),
            }),
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
}

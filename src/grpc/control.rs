//! `jhf.warp.v1.ControlService`.

use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};

use super::convert::timestamp;
use crate::control::LeaseService;
use crate::domain::lease::Lease;
use crate::pb::v1::{self as pb, control_service_server::ControlService};

pub struct ControlServiceImpl {
    leases: LeaseService,
}

impl ControlServiceImpl {
    pub fn new(leases: LeaseService) -> Self {
        Self { leases }
    }
}

fn lease(value: &Lease, now: DateTime<Utc>) -> pb::Lease {
    pb::Lease {
        name: value.name.clone(),
        holder: value.holder.clone().unwrap_or_default(),
        fencing_token: value.token,
        duration_seconds: value.duration_secs,
        acquire_time: value.acquired_at.map(timestamp),
        renew_time: value.renewed_at.map(timestamp),
        expire_time: value.expires_at.map(timestamp),
        transitions: value.transitions,
        held: value.live_holder(now).is_some(),
        observe_time: Some(timestamp(now)),
    }
}

#[tonic::async_trait]
impl ControlService for ControlServiceImpl {
    async fn acquire_lease(
        &self,
        request: Request<pb::AcquireLeaseRequest>,
    ) -> Result<Response<pb::AcquireLeaseResponse>, Status> {
        let request = request.into_inner();
        let (value, now) =
            self.leases.acquire(&request.name, &request.holder, request.duration_seconds).await?;
        Ok(Response::new(pb::AcquireLeaseResponse { lease: Some(lease(&value, now)) }))
    }

    async fn renew_lease(
        &self,
        request: Request<pb::RenewLeaseRequest>,
    ) -> Result<Response<pb::RenewLeaseResponse>, Status> {
        let request = request.into_inner();
        let (value, now) = self
            .leases
            .renew(&request.name, &request.holder, request.fencing_token, request.duration_seconds)
            .await?;
        Ok(Response::new(pb::RenewLeaseResponse { lease: Some(lease(&value, now)) }))
    }

    async fn release_lease(
        &self,
        request: Request<pb::ReleaseLeaseRequest>,
    ) -> Result<Response<pb::ReleaseLeaseResponse>, Status> {
        let request = request.into_inner();
        let (value, now) = self.leases.release(&request.name, &request.holder, request.fencing_token).await?;
        Ok(Response::new(pb::ReleaseLeaseResponse { lease: Some(lease(&value, now)) }))
    }

    async fn get_lease(
        &self,
        request: Request<pb::GetLeaseRequest>,
    ) -> Result<Response<pb::GetLeaseResponse>, Status> {
        let (value, now) = self.leases.get(&request.into_inner().name).await?;
        Ok(Response::new(pb::GetLeaseResponse { lease: Some(lease(&value, now)) }))
    }

    async fn list_leases(
        &self,
        request: Request<pb::ListLeasesRequest>,
    ) -> Result<Response<pb::ListLeasesResponse>, Status> {
        let request = request.into_inner();
        let (values, next_page_token, now) = self.leases.list(request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListLeasesResponse {
            leases: values.iter().map(|v| lease(v, now)).collect(),
            next_page_token,
        }))
    }
}

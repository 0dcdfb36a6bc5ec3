//! `jhf.warp.v1.MetaService`, and the self-description it shares with the HTTP shim.

use tonic::{Request, Response, Status};

use super::descriptor::{ApiMethod, auth_class_to_pb};
use crate::control::Readiness;
use crate::pb::{self, v1::meta_service_server::MetaService};

/// Name of the service in manifests and version answers.
pub const SERVICE_NAME: &str = "jhf-warp";
/// The published static port (`runtime_contract.port_policy`).
pub const PUBLISHED_PORT: u32 = 18086;

/// Self-description of the running service.
#[derive(Clone)]
pub struct MetaServiceImpl {
    readiness: Readiness,
    methods: &'static [ApiMethod],
}

impl MetaServiceImpl {
    pub fn new(readiness: Readiness, methods: &'static [ApiMethod]) -> Self {
        Self { readiness, methods }
    }

    pub fn version(&self) -> pb::v1::GetVersionResponse {
        pb::v1::GetVersionResponse {
            service: SERVICE_NAME.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            git_sha: env!("JHF_WARP_GIT_SHA").to_owned(),
            proto_package: pb::PROTO_PACKAGE.to_owned(),
        }
    }

    pub fn readiness(&self) -> pb::v1::GetReadinessResponse {
        let snapshot = self.readiness.snapshot();
        pb::v1::GetReadinessResponse {
            ready: snapshot.ready(),
            components: snapshot
                .components()
                .into_iter()
                .map(|(name, state)| pb::v1::ComponentReadiness {
                    name: name.to_owned(),
                    ready: state.ready,
                    detail: state.detail,
                })
                .collect(),
            warnings: snapshot.warnings,
        }
    }

    pub fn manifest(&self) -> pb::v1::GetManifestResponse {
        let mut services: Vec<pb::v1::ManifestService> = Vec::new();
        for method in self.methods.iter() {
            let entry = pb::v1::ManifestMethod {
                name: method.name.clone(),
                path: method.path.clone(),
                auth_class: method.auth_class.map(auth_class_to_pb).unwrap_or_default().into(),
                server_streaming: method.server_streaming,
            };
            match services.iter_mut().find(|s| s.name == method.service) {
                Some(service) => service.methods.push(entry),
                None => services
                    .push(pb::v1::ManifestService { name: method.service.clone(), methods: vec![entry] }),
            }
        }
        pb::v1::GetManifestResponse {
            service_name: SERVICE_NAME.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            proto_package: pb::PROTO_PACKAGE.to_owned(),
            services,
            runtime_contract: Some(pb::v1::RuntimeContract {
                port_policy: Some(pb::v1::PortPolicy {
                    name: "jhf-warp-api".to_owned(),
                    port: PUBLISHED_PORT,
                    policy: "static-required".to_owned(),
                }),
            }),
        }
    }
}

#[tonic::async_trait]
impl MetaService for MetaServiceImpl {
    async fn get_version(
        &self,
        _: Request<pb::v1::GetVersionRequest>,
    ) -> Result<Response<pb::v1::GetVersionResponse>, Status> {
        Ok(Response::new(self.version()))
    }

    async fn get_readiness(
        &self,
        _: Request<pb::v1::GetReadinessRequest>,
    ) -> Result<Response<pb::v1::GetReadinessResponse>, Status> {
        Ok(Response::new(self.readiness()))
    }

    async fn get_manifest(
        &self,
        _: Request<pb::v1::GetManifestRequest>,
    ) -> Result<Response<pb::v1::GetManifestResponse>, Status> {
        Ok(Response::new(self.manifest()))
    }
}

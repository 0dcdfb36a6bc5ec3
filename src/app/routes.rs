//! The one router of the port: gRPC services (ours, health, reflection v1 and v1alpha), the
//! HTTP shim and the fallback, all behind the auth layer.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::server::HealthReporter;

use crate::auth::TokenStore;
use crate::grpc::Api;
use crate::grpc::auth::AuthState;
use crate::grpc::descriptor::ApiMethod;
use crate::grpc::shed::{self, InFlight};
use crate::grpc::{
    ControlServiceImpl, DriftServiceImpl, MetaServiceImpl, OrchestrationServiceImpl, TopologyServiceImpl,
};
use crate::pb::{self, v1};

/// Largest request message accepted (a desired topology at its limits fits).
const MAX_REQUEST_BYTES: usize = 16 << 20;
/// Largest answer sent.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Reflection could not be set up from the embedded descriptor sets.
#[derive(Debug, thiserror::Error)]
#[error("reflection setup failed: {0}")]
pub struct ReflectionError(String);

/// What serving needs: the router, and the health reporter shutdown flips.
pub struct Transport {
    pub router: axum::Router,
    pub health: HealthReporter,
}

/// Builds the router of every service over `api`; `stop` ends watch streams;
/// `max_in_flight` bounds the requests admitted at once (probes are never refused).
pub fn build(
    api: &Api,
    methods: &'static [ApiMethod],
    tokens: TokenStore,
    stop: &CancellationToken,
    serving: &crate::config::ServingArgs,
) -> Result<Transport, ReflectionError> {
    let (max_in_flight, log_every_call) = (serving.max_in_flight, serving.log_every_call);
    let readiness = &api.fleet.ctx().readiness;
    let (health, health_service) = tonic_health::server::health_reporter();
    crate::grpc::spawn_health_publisher(readiness, health.clone());
    let auth = AuthState::new(methods, Arc::new(tokens));
    let meta = MetaServiceImpl::new(readiness.clone(), methods);
    // grpcurl 1.8.x speaks only v1alpha; newer clients use v1. Both serve the same files.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc error details, so grpcurl can render ErrorInfo/BadRequest.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(|e| ReflectionError(e.to_string()))?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| ReflectionError(e.to_string()))?;

    // Explicit message sizes: a request is at most a full desired topology (200 000 edges),
    // an answer at most a large observed team's inventory.
    macro_rules! bounded {
        ($server:expr) => {
            $server.max_decoding_message_size(MAX_REQUEST_BYTES).max_encoding_message_size(MAX_RESPONSE_BYTES)
        };
    }
    let mut routes = Routes::builder();
    routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(bounded!(v1::meta_service_server::MetaServiceServer::new(meta.clone())))
        .add_service(bounded!(v1::topology_service_server::TopologyServiceServer::new(
            TopologyServiceImpl::new(api, stop.clone())
        )))
        .add_service(bounded!(v1::drift_service_server::DriftServiceServer::new(DriftServiceImpl::new(
            api,
            stop.clone(),
        ))))
        .add_service(bounded!(v1::control_service_server::ControlServiceServer::new(
            ControlServiceImpl::new(api, stop.clone(),)
        )))
        .add_service(bounded!(v1::orchestration_service_server::OrchestrationServiceServer::new(
            OrchestrationServiceImpl::new(api),
        )));
    let router = routes
        .routes()
        .into_axum_router()
        .merge(crate::http::router(
            meta,
            crate::control::MetricsService::new(api.fleet.clone()),
            crate::http::Views {
                topology: TopologyServiceImpl::new(api, stop.clone()),
                drift: DriftServiceImpl::new(api, stop.clone()),
                control: ControlServiceImpl::new(api, stop.clone()),
                fleet: api.fleet.clone(),
            },
        ))
        .fallback(crate::http::fallback)
        .layer(axum::middleware::from_fn(crate::grpc::panics::contain))
        .layer(axum::middleware::from_fn_with_state(auth, crate::grpc::auth::enforce))
        // Every admitted call gets its span, log line and metrics (auth refusals included).
        .layer(axum::middleware::from_fn_with_state(
            crate::grpc::observe::ObserveState::new(
                api.fleet.ctx().telemetry.clone(),
                methods,
                crate::http::ROUTES,
                log_every_call,
            ),
            crate::grpc::observe::observe,
        ))
        // Outermost: a shed request costs neither authentication nor a handler.
        .layer(axum::middleware::from_fn_with_state(InFlight::new(max_in_flight), shed::admit));
    Ok(Transport { router, health })
}

//! The HTTP/1.1 JSON shim for probes and discovery (grpc-gateway style: each body is the
//! proto3 JSON of the same message the gRPC API returns, with proto field names).

mod metrics;
mod openapi;
mod views;

pub use views::Views;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::control::AppError;
use crate::grpc::MetaServiceImpl;
use crate::pb::v1 as pb;

/// Every route of the shim (metrics label these by name).
pub const ROUTES: &[&str] = &[
    "/health",
    "/ready",
    "/version",
    "/api/v1/version",
    "/fabric-manifest.json",
    "/openapi.json",
    "/metrics",
    "/ui",
    "/v1/topology",
    "/v1/topology.svg",
    "/v1/drift/items",
    "/v1/rollouts",
    "/v1/runtimes",
];

/// The shim's routes: probes, self-description and `/ui` are OPEN; `/metrics` and the data
/// routes `/v1/…` are READ (enforced by the auth layer).
pub fn router(meta: MetaServiceImpl, metrics: crate::control::MetricsService, views: Views) -> axum::Router {
    let metrics = axum::Router::new().route("/metrics", get(metrics::metrics)).with_state(metrics);
    let views = axum::Router::new()
        .route("/ui", get(views::page))
        .route("/v1/topology", get(views::topology))
        .route("/v1/topology.svg", get(views::topology_svg))
        .route("/v1/drift/items", get(views::drift_items))
        .route("/v1/rollouts", get(views::rollouts))
        .route("/v1/runtimes", get(views::runtimes))
        .with_state(views);
    axum::Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/version", get(version))
        .route("/api/v1/version", get(version))
        .route("/fabric-manifest.json", get(manifest))
        .route("/openapi.json", get(openapi))
        .with_state(meta)
        .merge(metrics)
        .merge(views)
}

/// Unknown paths: gRPC callers get UNIMPLEMENTED, HTTP callers a 404 — both from the error table.
pub async fn fallback(request: axum::extract::Request) -> Response {
    let path = request.uri().path().to_owned();
    let error = if crate::grpc::status::is_grpc(&request) {
        AppError::UnknownMethod { path }
    } else {
        AppError::NotFound { resource: format!("route {path}") }
    };
    crate::grpc::status::refusal(&request, error)
}

async fn health() -> Json<pb::LivenessStatus> {
    Json(pb::LivenessStatus { status: "SERVING".to_owned() })
}

async fn ready(State(meta): State<MetaServiceImpl>) -> Response {
    let readiness = meta.readiness();
    let status = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(readiness)).into_response()
}

async fn version(State(meta): State<MetaServiceImpl>) -> Json<pb::GetVersionResponse> {
    Json(meta.version())
}

async fn manifest(State(meta): State<MetaServiceImpl>) -> Json<pb::GetManifestResponse> {
    Json(meta.manifest())
}

async fn openapi() -> Json<serde_json::Value> {
    Json(openapi::document())
}

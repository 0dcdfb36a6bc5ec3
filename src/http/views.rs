//! The read-only web view and the GET routes it reads (grpc-gateway style: each JSON body is
//! the proto3 JSON of the gRPC answer to the same question, produced by calling the gRPC
//! handler itself). `/ui` is OPEN (a static page holding no data); every data route is READ.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tonic::Request;

use crate::control::AppError;
use crate::control::fleet::Fleet;
use crate::domain::picture::{self, Source};
use crate::grpc::{ControlServiceImpl, DriftServiceImpl, TopologyServiceImpl};
use crate::pb::v1 as pb;
use crate::pb::v1::control_service_server::ControlService;
use crate::pb::v1::drift_service_server::DriftService;
use crate::pb::v1::topology_service_server::TopologyService;

/// What the view routes read through.
#[derive(Clone)]
pub struct Views {
    pub topology: TopologyServiceImpl,
    pub drift: DriftServiceImpl,
    pub control: ControlServiceImpl,
    pub fleet: Fleet,
}

/// The page (one file, no external assets: it must work on a host without internet).
const PAGE: &str = include_str!("ui.html");

pub async fn page() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Nothing but this page's own inline script and style, and calls to this origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
        .into_response()
}

/// A handler's refusal as the same `google.rpc.Status` JSON every shim error is.
fn refused(status: tonic::Status) -> Response {
    let code = crate::grpc::status::http_status_of(status.code());
    (code, Json(crate::grpc::status::status_json_of(&status))).into_response()
}

#[derive(serde::Deserialize)]
pub struct SourceQuery {
    #[serde(default)]
    source: String,
    #[serde(default)]
    runtime: String,
}

/// `GET /v1/topology.svg?source=observed|desired|overlay&runtime=…` (default overlay, the only
/// runtime).
pub async fn topology_svg(State(views): State<Views>, Query(query): Query<SourceQuery>) -> Response {
    let cell = match views.fleet.resolve(&query.runtime) {
        Ok(cell) => cell,
        Err(error) => return crate::grpc::status::refusal_for(false, error),
    };
    let source: Source = match query.source.parse() {
        Ok(source) => source,
        Err(message) => {
            let error = AppError::InvalidArgument {
                violations: vec![crate::domain::desired::FieldViolation {
                    field: "source".to_owned(),
                    description: message,
                }],
            };
            return crate::grpc::status::refusal_for(false, error);
        }
    };
    let (desired, observed) = cell.services.desired.current();
    let mut picture =
        picture::build(desired.as_ref().map(|d| &d.topology), observed.as_ref().map(|o| &o.topology), source);
    if source != Source::Desired
        && let Some(observed) = &observed
    {
        picture = picture.with_reach(&picture::reach_of(&observed.inventory));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
        picture::svg(&picture),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
pub struct RuntimeQuery {
    #[serde(default)]
    runtime: String,
}

/// `GET /v1/topology?runtime=…`: the latest stored observation (GetTopology, STORED).
pub async fn topology(State(views): State<Views>, Query(query): Query<RuntimeQuery>) -> Response {
    let request = pb::GetTopologyRequest { read_mode: pb::ReadMode::Stored.into(), runtime: query.runtime };
    match views.topology.get_topology(Request::new(request)).await {
        Ok(answer) => Json(answer.into_inner()).into_response(),
        Err(status) => refused(status),
    }
}

#[derive(serde::Deserialize)]
pub struct DriftQuery {
    #[serde(default)]
    filter: String,
    #[serde(default)]
    page_token: String,
    #[serde(default)]
    runtime: String,
}

/// `GET /v1/drift/items?filter=…&runtime=…`: ListDriftItems.
pub async fn drift_items(State(views): State<Views>, Query(query): Query<DriftQuery>) -> Response {
    let request = pb::ListDriftItemsRequest {
        page_size: 200,
        page_token: query.page_token,
        filter: query.filter,
        runtime: query.runtime,
    };
    match views.drift.list_drift_items(Request::new(request)).await {
        Ok(answer) => Json(answer.into_inner()).into_response(),
        Err(status) => refused(status),
    }
}

/// `GET /v1/rollouts?runtime=…`: the most recent rollouts (ListRollouts).
pub async fn rollouts(State(views): State<Views>, Query(query): Query<RuntimeQuery>) -> Response {
    let request =
        pb::ListRolloutsRequest { page_size: 20, page_token: String::new(), runtime: query.runtime };
    match views.drift.list_rollouts(Request::new(request)).await {
        Ok(answer) => Json(answer.into_inner()).into_response(),
        Err(status) => refused(status),
    }
}

#[derive(serde::Deserialize)]
pub struct FleetQuery {
    #[serde(default)]
    selector: String,
    #[serde(default)]
    page_token: String,
}

/// `GET /v1/runtimes?selector=…`: the fleet's runtimes (ListRuntimes).
pub async fn runtimes(State(views): State<Views>, Query(query): Query<FleetQuery>) -> Response {
    let request =
        pb::ListRuntimesRequest { selector: query.selector, page_size: 1000, page_token: query.page_token };
    match views.control.list_runtimes(Request::new(request)).await {
        Ok(answer) => Json(answer.into_inner()).into_response(),
        Err(status) => refused(status),
    }
}

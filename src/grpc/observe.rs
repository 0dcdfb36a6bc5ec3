//! One span and one structured log line per call, and the RPC metrics — from a layer, for every
//! call the server admits (refusals by the auth layer included), never by hand in handlers.
//!
//! The gRPC code of a successful answer travels in the body's trailers, so the body is wrapped
//! and the call is recorded when the answer ends (or is dropped: `CANCELLED`). Handlers and the
//! auth layer fill the [`CallNote`] they find in the request extensions (principal, request
//! id); the layer reads it when it records.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Frame;
use tracing::Instrument;
use tracing::field::Empty;

use super::descriptor::ApiMethod;
use crate::domain::access::AuthClass;
use crate::telemetry::Telemetry;

/// What the handler learns about a call that the layer reports.
#[derive(Debug, Default)]
pub struct CallNote {
    pub principal: OnceLock<String>,
    pub request_id: OnceLock<String>,
}

/// How loudly a kind of call is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loudness {
    /// Probes, discovery and the shim's routes: DEBUG (they would drown the API's lines).
    Quiet,
    /// READ-class (and OPEN) methods: DEBUG when they succeed, INFO when refused or failed (unless every
    /// call is logged).
    QuietWhenOk,
    /// Everything that changes something: INFO.
    Loud,
}

/// The labels and loudness of one path, resolved once at start-up (no per-call allocation).
#[derive(Debug, Clone)]
struct CallKind {
    service: Arc<str>,
    method: Arc<str>,
    loudness: Loudness,
}

/// The paths the layer labels by name; any other path is `unknown` (bounded labels).
#[derive(Clone)]
pub struct ObserveState {
    telemetry: Telemetry,
    calls: Arc<HashMap<String, CallKind>>,
    unknown: CallKind,
}

impl ObserveState {
    /// The API's methods (labelled by service and method; READ-class ones quiet when they
    /// succeed unless `every_call`) and the shim's routes.
    pub fn new(telemetry: Telemetry, methods: &[ApiMethod], routes: &[&str], every_call: bool) -> Self {
        let mut calls = HashMap::new();
        for method in methods {
            let read = matches!(method.auth_class, Some(AuthClass::Read | AuthClass::Open));
            let loudness = if read && !every_call { Loudness::QuietWhenOk } else { Loudness::Loud };
            let (service, name) = labels(&method.path);
            calls.insert(
                method.path.clone(),
                CallKind { service: service.into(), method: name.into(), loudness },
            );
        }
        for route in routes {
            calls.insert(
                (*route).to_owned(),
                CallKind { service: "http".into(), method: (*route).into(), loudness: Loudness::Quiet },
            );
        }
        let unknown =
            CallKind { service: "unknown".into(), method: "unknown".into(), loudness: Loudness::Quiet };
        Self { telemetry, calls: Arc::new(calls), unknown }
    }

    /// The kind of a path: a known method or route, health and reflection (quiet), or unknown.
    fn kind(&self, path: &str) -> CallKind {
        if let Some(kind) = self.calls.get(path) {
            return kind.clone();
        }
        let infrastructure =
            ["/grpc.health.v1.Health/", "/grpc.reflection."].iter().any(|p| path.starts_with(p));
        if infrastructure && path.matches('/').count() == 2 {
            let (service, method) = labels(path);
            return CallKind { service: service.into(), method: method.into(), loudness: Loudness::Quiet };
        }
        self.unknown.clone()
    }
}

/// `(service, method)` of a gRPC path `/pkg.Service/Method`.
fn labels(path: &str) -> (&str, &str) {
    path.trim_start_matches('/').split_once('/').unwrap_or(("unknown", "unknown"))
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

fn grpc_code(headers: &axum::http::HeaderMap) -> Option<&'static str> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(code_name(tonic::Code::from_i32(value)))
}

/// Everything the record of one call needs.
struct Finish {
    telemetry: Telemetry,
    kind: CallKind,
    started: Instant,
    note: Arc<CallNote>,
    span: tracing::Span,
}

impl Finish {
    fn record(self, code: &str) {
        let took = self.started.elapsed();
        let (service, method) = (&*self.kind.service, &*self.kind.method);
        self.telemetry.rpc(service, method, code, took);
        let loud = match self.kind.loudness {
            Loudness::Quiet => false,
            Loudness::QuietWhenOk => code != "OK",
            Loudness::Loud => true,
        };
        // Skipped before anything is looked up when the level is off (the common case for reads).
        let enabled = if loud {
            tracing::enabled!(target: "jhf_warp::rpc", tracing::Level::INFO)
        } else {
            tracing::enabled!(target: "jhf_warp::rpc", tracing::Level::DEBUG)
        };
        if !enabled {
            return;
        }
        let principal = self.note.principal.get().map(String::as_str).unwrap_or("");
        let request_id = self.note.request_id.get().map(String::as_str).unwrap_or("");
        let latency_ms = took.as_secs_f64() * 1000.0;
        let _entered = self.span.enter();
        if loud {
            tracing::info!(target: "jhf_warp::rpc", service, method, code, latency_ms, principal, request_id, "rpc");
        } else {
            tracing::debug!(target: "jhf_warp::rpc", service, method, code, latency_ms, principal, request_id, "rpc");
        }
    }
}

/// The layer: a span around the handler, and the record when the answer is complete.
pub async fn observe(State(state): State<ObserveState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let grpc = crate::grpc::status::is_grpc(&request);
    let kind = state.kind(request.uri().path());
    let note = Arc::new(CallNote::default());
    request.extensions_mut().insert(note.clone());
    // A span costs a formatted field set per call once its level is on: reads and probes get
    // theirs at DEBUG (their own line, when loud, carries the same fields).
    let span = if kind.loudness == Loudness::Loud {
        tracing::info_span!(
            "rpc",
            rpc.service = &*kind.service,
            rpc.method = &*kind.method,
            principal = Empty,
            request_id = Empty
        )
    } else {
        tracing::debug_span!(
            "rpc",
            rpc.service = &*kind.service,
            rpc.method = &*kind.method,
            principal = Empty,
            request_id = Empty
        )
    };
    let response = next.run(request).instrument(span.clone()).await;
    let finish = Finish { telemetry: state.telemetry, kind, started, note, span };
    if !grpc {
        let status = response.status();
        let code = if status.is_success() { "OK" } else { status.canonical_reason().unwrap_or("ERROR") };
        finish.record(code);
        return response;
    }
    if let Some(code) = grpc_code(response.headers()) {
        finish.record(code);
        return response;
    }
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Body::new(Observed { inner: body, finish: Some(finish) }))
}

/// A gRPC answer body that records the call when its trailers arrive or it ends.
struct Observed {
    inner: Body,
    finish: Option<Finish>,
}

impl http_body::Body for Observed {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_code)
                    && let Some(finish) = self.finish.take()
                {
                    finish.record(code);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(finish) = self.finish.take() {
                    finish.record("UNKNOWN");
                }
            }
            Poll::Ready(None) => {
                if let Some(finish) = self.finish.take() {
                    finish.record("OK");
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        // The caller went away before the answer ended (a cancelled call or watch stream).
        if let Some(finish) = self.finish.take() {
            finish.record("CANCELLED");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(path: &str, class: AuthClass) -> ApiMethod {
        let (service, name) = labels(path);
        ApiMethod {
            service: service.to_owned(),
            name: name.to_owned(),
            path: path.to_owned(),
            auth_class: Some(class),
            server_streaming: false,
        }
    }

    #[test]
    fn labels_come_from_known_paths_only_and_reads_are_quiet_when_they_succeed() {
        let methods = [
            method("/jhf.warp.v1.MetaService/GetVersion", AuthClass::Open),
            method("/jhf.warp.v1.TopologyService/GetTopology", AuthClass::Read),
            method("/jhf.warp.v1.DriftService/ObserveNow", AuthClass::Operate),
        ];
        let state = ObserveState::new(Telemetry::new(), &methods, &["/metrics"], false);
        let kind = |path: &str| {
            let kind = state.kind(path);
            (kind.service.to_string(), kind.method.to_string(), kind.loudness)
        };
        assert_eq!(
            kind("/jhf.warp.v1.MetaService/GetVersion"),
            ("jhf.warp.v1.MetaService".into(), "GetVersion".into(), Loudness::QuietWhenOk)
        );
        assert_eq!(kind("/jhf.warp.v1.TopologyService/GetTopology").2, Loudness::QuietWhenOk);
        assert_eq!(kind("/jhf.warp.v1.DriftService/ObserveNow").2, Loudness::Loud);
        assert_eq!(kind("/metrics"), ("http".into(), "/metrics".into(), Loudness::Quiet));
        assert_eq!(
            kind("/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health".into(), "Check".into(), Loudness::Quiet)
        );
        assert_eq!(kind("/x.Y/Random123"), ("unknown".into(), "unknown".into(), Loudness::Quiet));
        let every = ObserveState::new(Telemetry::new(), &methods, &[], true);
        assert_eq!(every.kind("/jhf.warp.v1.TopologyService/GetTopology").loudness, Loudness::Loud);
    }
}

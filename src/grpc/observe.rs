//! One span and one structured log line per call, and the RPC metrics — from a layer, for every
//! call the server admits (refusals by the auth layer included), never by hand in handlers.
//!
//! The gRPC code of a successful answer travels in the body's trailers, so the body is wrapped
//! and the call is recorded when the answer ends (or is dropped: `CANCELLED`). Handlers and the
//! auth layer fill the [`CallNote`] they find in the request extensions (principal, request
//! id); the layer reads it when it records.

use std::collections::HashSet;
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

use crate::telemetry::Telemetry;

/// What the handler learns about a call that the layer reports.
#[derive(Debug, Default)]
pub struct CallNote {
    pub principal: OnceLock<String>,
    pub request_id: OnceLock<String>,
}

/// The paths the layer labels by name; any other path is `unknown` (bounded labels).
#[derive(Clone)]
pub struct ObserveState {
    telemetry: Telemetry,
    known: Arc<HashSet<String>>,
}

impl ObserveState {
    /// `known` lists the gRPC method paths and the shim's routes.
    pub fn new(telemetry: Telemetry, known: impl IntoIterator<Item = String>) -> Self {
        Self { telemetry, known: Arc::new(known.into_iter().collect()) }
    }
}

/// `(service, method)` labels of a path: `/pkg.Service/Method` → (`pkg.Service`, `Method`),
/// a shim route → (`http`, route), anything unknown → (`unknown`, `unknown`).
fn labels(known: &HashSet<String>, path: &str) -> (String, String) {
    let infrastructure = ["/grpc.health.v1.Health/", "/grpc.reflection."].iter().any(|p| path.starts_with(p));
    if !known.contains(path) && !infrastructure {
        return ("unknown".to_owned(), "unknown".to_owned());
    }
    match path.trim_start_matches('/').split_once('/') {
        Some((service, method))
            if !service.is_empty() && path.matches('/').count() == 2 && !path.starts_with("/api") =>
        {
            (service.to_owned(), method.to_owned())
        }
        _ => ("http".to_owned(), path.to_owned()),
    }
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
    service: String,
    method: String,
    started: Instant,
    note: Arc<CallNote>,
    span: tracing::Span,
    quiet: bool,
}

impl Finish {
    fn record(self, code: &str) {
        let took = self.started.elapsed();
        self.telemetry.rpc(&self.service, &self.method, code, took);
        let principal = self.note.principal.get().map(String::as_str).unwrap_or("");
        let request_id = self.note.request_id.get().map(String::as_str).unwrap_or("");
        let latency_ms = took.as_secs_f64() * 1000.0;
        let _entered = self.span.enter();
        // Probes and discovery would drown the API's lines: they log at debug.
        if self.quiet {
            tracing::debug!(target: "jhf_warp::rpc", service = %self.service, method = %self.method, code, latency_ms, principal, request_id, "rpc");
        } else {
            tracing::info!(target: "jhf_warp::rpc", service = %self.service, method = %self.method, code, latency_ms, principal, request_id, "rpc");
        }
    }
}

/// The layer: a span around the handler, and the record when the answer is complete.
pub async fn observe(State(state): State<ObserveState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = request.uri().path().to_owned();
    let grpc = crate::grpc::status::is_grpc(&request);
    let (service, method) = labels(&state.known, &path);
    let note = Arc::new(CallNote::default());
    request.extensions_mut().insert(note.clone());
    let span = tracing::info_span!("rpc", rpc.service = %service, rpc.method = %method, principal = Empty, request_id = Empty);
    let quiet = service.starts_with("grpc.") || service == "http" || service == "unknown";
    let response = next.run(request).instrument(span.clone()).await;
    let finish = Finish { telemetry: state.telemetry, service, method, started, note, span, quiet };
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

    #[test]
    fn labels_come_from_known_paths_only() {
        let known: HashSet<String> =
            ["/jhf.warp.v1.MetaService/GetVersion".to_owned(), "/metrics".to_owned()].into();
        assert_eq!(
            labels(&known, "/jhf.warp.v1.MetaService/GetVersion"),
            ("jhf.warp.v1.MetaService".into(), "GetVersion".into())
        );
        assert_eq!(labels(&known, "/metrics"), ("http".into(), "/metrics".into()));
        assert_eq!(
            labels(&known, "/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health".into(), "Check".into())
        );
        assert_eq!(labels(&known, "/x.Y/Random123"), ("unknown".into(), "unknown".into()));
    }
}

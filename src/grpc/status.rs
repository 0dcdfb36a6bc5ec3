//! `AppError` → `tonic::Status`: the one place the closed error table meets gRPC codes.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use axum::response::{IntoResponse, Response};

use crate::control::{AppError, ErrorCode};

/// `google.rpc.ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "jhf-warp";
/// Field violations carried in one status: details travel in a trailer, which HTTP/2 peers
/// bound (16 KiB by default), so a request with thousands of bad fields names the first ones.
const MAX_VIOLATIONS: usize = 50;
/// Longest description of one violation in a status.
const MAX_DESCRIPTION: usize = 300;

fn clipped(text: &str) -> String {
    if text.len() <= MAX_DESCRIPTION {
        return text.to_owned();
    }
    let mut end = MAX_DESCRIPTION;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Returns the gRPC code of a table entry.
pub fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::Unauthenticated => Code::Unauthenticated,
        ErrorCode::PermissionDenied => Code::PermissionDenied,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::FailedPrecondition => Code::FailedPrecondition,
        ErrorCode::ResourceExhausted => Code::ResourceExhausted,
        ErrorCode::Unimplemented => Code::Unimplemented,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Internal => Code::Internal,
    }
}

/// The `google.rpc` details of an error: ErrorInfo always, then what the entry carries.
fn error_details(err: &AppError) -> ErrorDetails {
    let mut details = ErrorDetails::with_error_info(err.reason(), ERROR_DOMAIN, HashMap::new());
    match &err {
        AppError::InvalidArgument { violations } => {
            for violation in violations.iter().take(MAX_VIOLATIONS) {
                details.add_bad_request_violation(violation.field.clone(), clipped(&violation.description));
            }
            if violations.len() > MAX_VIOLATIONS {
                let more = violations.len() - MAX_VIOLATIONS;
                details.add_bad_request_violation("…", format!("and {more} more violations"));
            }
        }
        AppError::FailedPrecondition { reason, subject, description } => {
            details.add_precondition_failure_violation(*reason, subject.clone(), description.clone());
        }
        _ => {}
    }
    if let Some(delay) = err.retry_after() {
        details.set_retry_info(Some(delay));
    }
    details
}

impl From<AppError> for Status {
    fn from(err: AppError) -> Self {
        let code = err.code();
        if code == ErrorCode::Internal {
            tracing::error!(error = %err, source = ?err, "request failed with an internal error");
        }
        Status::with_error_details(grpc_code(code), err.public_message(), error_details(&err))
    }
}

/// The error as a `google.rpc.Status` in proto3 JSON (what grpc-gateway answers): the gRPC
/// code number, the public message, and the same details a gRPC caller gets, each with its
/// `@type`.
pub fn status_json(err: &AppError) -> serde_json::Value {
    details_json(grpc_code(err.code()), &err.public_message(), &error_details(err))
}

/// [`status_json`] of a status a handler answered (its details decoded back).
pub fn status_json_of(status: &Status) -> serde_json::Value {
    details_json(status.code(), status.message(), &status.get_error_details())
}

/// The HTTP status the shim answers for a gRPC code.
pub fn http_status_of(code: Code) -> axum::http::StatusCode {
    use axum::http::StatusCode;
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::FailedPrecondition | Code::Aborted | Code::AlreadyExists => StatusCode::PRECONDITION_FAILED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn details_json(code: Code, message: &str, details: &ErrorDetails) -> serde_json::Value {
    use serde_json::json;
    const TYPES: &str = "type.googleapis.com/google.rpc.";
    let mut out = Vec::new();
    if let Some(info) = details.error_info() {
        out.push(json!({"@type": format!("{TYPES}ErrorInfo"), "reason": info.reason, "domain": info.domain, "metadata": info.metadata}));
    }
    if let Some(bad) = details.bad_request() {
        let violations: Vec<_> = bad
            .field_violations
            .iter()
            .map(|v| json!({"field": v.field, "description": v.description}))
            .collect();
        out.push(json!({"@type": format!("{TYPES}BadRequest"), "fieldViolations": violations}));
    }
    if let Some(failure) = details.precondition_failure() {
        let violations: Vec<_> = failure
            .violations
            .iter()
            .map(|v| json!({"type": v.r#type, "subject": v.subject, "description": v.description}))
            .collect();
        out.push(json!({"@type": format!("{TYPES}PreconditionFailure"), "violations": violations}));
    }
    if let Some(retry) = details.retry_info().and_then(|r| r.retry_delay) {
        let delay = format!("{}.{:03}s", retry.as_secs(), retry.subsec_millis());
        out.push(json!({"@type": format!("{TYPES}RetryInfo"), "retryDelay": delay}));
    }
    json!({"code": code as i32, "message": message, "details": out})
}

/// Returns true when a request speaks gRPC (else it is a plain HTTP caller of the shim).
pub fn is_grpc<B>(request: &axum::http::Request<B>) -> bool {
    request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// Returns the HTTP status of a table entry (for the shim's plain HTTP callers).
pub fn http_code(code: ErrorCode) -> axum::http::StatusCode {
    use axum::http::StatusCode;
    match code {
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        ErrorCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Answers a request a layer refused before it reached a handler: a gRPC status for gRPC
/// callers, the same status as `google.rpc.Status` JSON for plain HTTP callers.
pub fn refusal<B>(request: &axum::http::Request<B>, error: AppError) -> Response {
    refusal_for(is_grpc(request), error)
}

/// [`refusal`] for a caller known to speak gRPC (`grpc`) or plain HTTP.
pub fn refusal_for(grpc: bool, error: AppError) -> Response {
    if grpc {
        return Status::from(error).into_http::<axum::body::Body>().into_response();
    }
    let status = http_code(error.code());
    let mut response = (status, axum::Json(status_json(&error))).into_response();
    if let Some(delay) = error.retry_after() {
        let seconds = delay.as_secs().max(1).to_string();
        if let Ok(value) = axum::http::HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
        }
    }
    response
}

//! The application error and the closed table of error codes every transport maps from.
//!
//! The table is voluntarily small: add a code only when a caller must react to it
//! differently from every existing one.

use crate::domain::desired::FieldViolation;
use crate::domain::page_token::{NegativePageSize, PageTokenError};
use crate::runtime::RuntimeError;
use crate::store::StoreError;

/// The closed set of error codes; `grpc/` maps each to a gRPC code, `http/` to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    FailedPrecondition,
    ResourceExhausted,
    Unimplemented,
    Unavailable,
    Internal,
}

/// An error of an application service.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed; every offending field is listed.
    #[error("invalid request: {}", describe(.violations))]
    InvalidArgument { violations: Vec<FieldViolation> },
    /// No valid credentials came with the call.
    #[error("{message}")]
    Unauthenticated { reason: &'static str, message: String },
    /// The caller is known but may not do this.
    #[error("{message}")]
    PermissionDenied { reason: &'static str, message: String },
    /// The addressed resource does not exist.
    #[error("{resource} not found")]
    NotFound { resource: String },
    /// No such gRPC method.
    #[error("unknown method {path}")]
    UnknownMethod { path: String },
    /// The replica is at its bound of work in flight; retry after `retry_after`.
    #[error("the server is at its limit of {limit} requests in flight; retry shortly")]
    Overloaded { limit: u32, retry_after: std::time::Duration },
    /// The request conflicts with current state (stale etag, reused request id, …).
    #[error("{description}")]
    FailedPrecondition { reason: &'static str, subject: String, description: String },
    /// Something this call needs is held elsewhere for now (a duplicate call still running,
    /// the runtime being changed by another replica); the same call may be retried.
    #[error("{description}")]
    Busy { reason: &'static str, description: String, retry_after: std::time::Duration },
    /// The runtime could not be read.
    #[error("runtime unavailable: {0}")]
    Runtime(#[from] RuntimeError),
    /// The store could not be used; details are logged, not returned.
    #[error("store unavailable")]
    Store(#[from] StoreError),
    /// A bug or a broken host (e.g. no OS randomness); details are logged, not returned.
    #[error("internal error: {detail}")]
    Internal { detail: String },
}

fn describe(violations: &[FieldViolation]) -> String {
    let shown: Vec<String> =
        violations.iter().take(5).map(|v| format!("{}: {}", v.field, v.description)).collect();
    let more = violations.len().saturating_sub(5);
    if more > 0 { format!("{} (and {more} more)", shown.join("; ")) } else { shown.join("; ") }
}

impl AppError {
    /// Creates an INVALID_ARGUMENT error for one field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument { violations: vec![FieldViolation::new(field, description)] }
    }

    /// The refusal of a request id used before with another payload.
    pub fn request_id_reused() -> Self {
        Self::invalid("request_id", "this request_id was already used with a different payload")
    }

    /// A bug: a state the code should never reach (details logged, not returned).
    pub fn bug(detail: impl Into<String>) -> Self {
        Self::Internal { detail: detail.into() }
    }

    /// Returns the table entry of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            Self::Unauthenticated { .. } => ErrorCode::Unauthenticated,
            Self::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::Overloaded { .. } => ErrorCode::ResourceExhausted,
            Self::UnknownMethod { .. } => ErrorCode::Unimplemented,
            Self::FailedPrecondition { .. } => ErrorCode::FailedPrecondition,
            Self::Runtime(_) | Self::Busy { .. } => ErrorCode::Unavailable,
            Self::Store(StoreError::Unavailable(_)) => ErrorCode::Unavailable,
            Self::Store(_) | Self::Internal { .. } => ErrorCode::Internal,
        }
    }

    /// Returns the UPPER_SNAKE reason carried in `google.rpc.ErrorInfo`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Self::Unauthenticated { reason, .. } | Self::PermissionDenied { reason, .. } => reason,
            Self::NotFound { .. } => "NOT_FOUND",
            Self::Overloaded { .. } => "OVERLOADED",
            Self::UnknownMethod { .. } => "UNKNOWN_METHOD",
            Self::FailedPrecondition { reason, .. } | Self::Busy { reason, .. } => reason,
            Self::Runtime(RuntimeError::Timeout { .. }) => "RUNTIME_TIMEOUT",
            Self::Runtime(_) => "RUNTIME_UNAVAILABLE",
            Self::Store(StoreError::Unavailable(_)) => "STORE_UNAVAILABLE",
            Self::Store(_) => "STORE_ERROR",
            Self::Internal { .. } => "INTERNAL",
        }
    }

    /// Returns how long a caller should wait before retrying, for errors a retry can cure.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Overloaded { retry_after, .. } | Self::Busy { retry_after, .. } => Some(*retry_after),
            Self::Store(StoreError::Unavailable(_)) | Self::Runtime(_) => {
                Some(std::time::Duration::from_secs(1))
            }
            _ => None,
        }
    }

    /// Returns the message safe to show a client (no SQL, no secrets).
    pub fn public_message(&self) -> String {
        match self {
            Self::Store(StoreError::Unavailable(_)) => "the database is unavailable; retry later".to_owned(),
            Self::Store(_) | Self::Internal { .. } => "internal error".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<NegativePageSize> for AppError {
    fn from(err: NegativePageSize) -> Self {
        Self::invalid("page_size", err.to_string())
    }
}

impl From<PageTokenError> for AppError {
    fn from(err: PageTokenError) -> Self {
        Self::invalid("page_token", err.to_string())
    }
}

impl From<FieldViolation> for AppError {
    fn from(violation: FieldViolation) -> Self {
        Self::InvalidArgument { violations: vec![violation] }
    }
}

//! `AppError` → `tonic::Status`: the one place the closed error table meets gRPC codes.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::control::{AppError, ErrorCode};

/// `google.rpc.ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "jhf-warp";

/// Returns the gRPC code of a table entry.
pub fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::FailedPrecondition => Code::FailedPrecondition,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Internal => Code::Internal,
    }
}

impl From<AppError> for Status {
    fn from(err: AppError) -> Self {
        let code = err.code();
        if code == ErrorCode::Internal {
            tracing::error!(error = %err, source = ?err, "request failed with an internal error");
        }
        let mut details = ErrorDetails::with_error_info(err.reason(), ERROR_DOMAIN, HashMap::new());
        match &err {
            AppError::InvalidArgument { violations } => {
                for violation in violations {
                    details.add_bad_request_violation(violation.field.clone(), violation.description.clone());
                }
            }
            AppError::FailedPrecondition { reason, subject, description } => {
                details.add_precondition_failure_violation(*reason, subject.clone(), description.clone());
            }
            _ => {}
        }
        Status::with_error_details(grpc_code(code), err.public_message(), details)
    }
}

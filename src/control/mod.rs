//! Application services: one struct per use-case area. They own transactions and call the
//! domain, the store and the runtime adapter; transports (`grpc/`, `http/`) call them.

mod error;
mod observer;
mod readiness;

pub use error::{AppError, ErrorCode};
pub use observer::ObservationService;
pub use readiness::{ComponentState, Readiness, ReadinessSnapshot};

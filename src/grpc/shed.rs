//! Load shedding: a bound on requests in flight per replica. Past it a request is refused at
//! once with RESOURCE_EXHAUSTED and a retry delay instead of queueing, so a saturated replica
//! keeps serving what it has admitted at full speed and callers learn at once to back off (or
//! go to another replica). Probes and discovery are never shed: health, readiness and
//! reflection must answer precisely when the replica is busy.
//!
//! # Caveats
//! - A streaming call holds its slot until its handler has returned the stream, not for the
//!   stream's life; open streams are bounded separately.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Semaphore;

use crate::control::AppError;

/// Paths that are never shed.
const NEVER_SHED: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/health",
    "/ready",
];

/// How long a shed caller is told to wait.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// The bound on work in flight.
#[derive(Clone)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    limit: u32,
}

impl InFlight {
    /// Allows `limit` requests in flight.
    pub fn new(limit: u32) -> Self {
        Self { permits: Arc::new(Semaphore::new(limit as usize)), limit }
    }
}

/// Axum middleware admitting a request only while a slot is free.
pub async fn admit(State(bound): State<InFlight>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if NEVER_SHED.iter().any(|prefix| path == *prefix || (prefix.ends_with('/') && path.starts_with(prefix)))
    {
        return next.run(request).await;
    }
    let Ok(_slot) = bound.permits.clone().try_acquire_owned() else {
        let refusal = AppError::Overloaded { limit: bound.limit, retry_after: RETRY_AFTER };
        return super::status::refusal(&request, refusal);
    };
    next.run(request).await
}

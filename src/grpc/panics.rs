//! Containing panics: a handler that panics answers its own call with INTERNAL (the panic is
//! logged); the process, the connection and every other call go on. A panic is a bug, so the
//! answer says nothing about it beyond that.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::control::AppError;
use crate::control::supervise::catch_panic;

/// Axum middleware answering a panicking handler's call with INTERNAL.
pub async fn contain(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let grpc = super::status::is_grpc(&request);
    match catch_panic(next.run(request)).await {
        Ok(response) => response,
        Err(message) => {
            tracing::error!(%path, panic = %message, "a handler panicked; answered INTERNAL");
            let error = AppError::Internal { detail: format!("handler panicked: {message}") };
            super::status::refusal_for(grpc, error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_and_a_value_passes_through() {
        assert_eq!(catch_panic(async { 7 }).await, Ok(7));
        let caught = catch_panic(async { panic!("boom") }).await;
        assert_eq!(caught, Err("boom".to_owned()));
    }
}

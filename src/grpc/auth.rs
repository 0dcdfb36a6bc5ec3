//! The auth layer: every request's method is looked up in the class table read from the
//! descriptor set, and non-OPEN methods need a bearer token of a role that permits the class.
//! The principal and the method (tonic's `GrpcMethod`) are put into the request extensions
//! for handlers: the audit actor and method, and the idempotency scope, come from there.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::descriptor::ApiMethod;
use super::status::refusal;
use crate::auth::TokenStore;
use crate::control::AppError;
use crate::domain::access::AuthClass;

/// Infrastructure services that are always OPEN: probes and discovery.
const OPEN_PREFIXES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// HTTP shim routes anyone may call: probes and self-description.
const HTTP_OPEN_PATHS: &[&str] =
    &["/health", "/ready", "/version", "/api/v1/version", "/fabric-manifest.json", "/openapi.json", "/ui"];
/// HTTP shim routes that need a READ token.
const HTTP_READ_PATHS: &[&str] =
    &["/metrics", "/v1/topology", "/v1/topology.svg", "/v1/drift/items", "/v1/rollouts", "/v1/runtimes"];

/// The state of the auth layer.
#[derive(Clone)]
pub struct AuthState {
    methods: Arc<HashMap<&'static str, &'static ApiMethod>>,
    tokens: Arc<TokenStore>,
}

impl AuthState {
    /// Creates the layer state from the classified API methods and the token store.
    pub fn new(methods: &'static [ApiMethod], tokens: Arc<TokenStore>) -> Self {
        let methods = methods.iter().map(|m| (m.path.as_str(), m)).collect();
        Self { methods: Arc::new(methods), tokens }
    }

    /// Returns the class a request path needs. Only what is listed is open (health,
    /// reflection, the shim's probe and self-description routes); every other path — an
    /// unknown method or route included — fails closed (OPERATE).
    fn class_for(&self, path: &str) -> AuthClass {
        if let Some(class) = self.methods.get(path).and_then(|m| m.auth_class) {
            return class;
        }
        if OPEN_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) || HTTP_OPEN_PATHS.contains(&path) {
            return AuthClass::Open;
        }
        if HTTP_READ_PATHS.contains(&path) {
            return AuthClass::Read;
        }
        AuthClass::Operate
    }
}

/// Axum middleware enforcing the auth class of each request.
pub async fn enforce(State(state): State<AuthState>, mut request: Request, next: Next) -> Response {
    if let Some(method) = state.methods.get(request.uri().path()) {
        request.extensions_mut().insert(tonic::GrpcMethod::new(&method.service, &method.name));
    }
    let class = state.class_for(request.uri().path());
    if class == AuthClass::Open {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
        });
    let Some(presented) = presented else {
        let error = AppError::Unauthenticated {
            reason: "TOKEN_MISSING",
            message: "a bearer token is required".to_owned(),
        };
        return refusal(&request, error);
    };
    let Some(principal) = state.tokens.authenticate(&presented) else {
        let error = AppError::Unauthenticated {
            reason: "TOKEN_INVALID",
            message: "the bearer token is not valid".to_owned(),
        };
        return refusal(&request, error);
    };
    if !principal.role.permits(class) {
        let message = format!("role {} may not call {class} methods", principal.role.as_str());
        return refusal(&request, AppError::PermissionDenied { reason: "ROLE_NOT_PERMITTED", message });
    }
    if let Some(note) = request.extensions().get::<Arc<crate::grpc::observe::CallNote>>() {
        let _ = note.principal.set(principal.name.clone());
        tracing::Span::current().record("principal", principal.name.as_str());
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

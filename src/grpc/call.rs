//! What a handler learns about the call from the request itself: the authenticated principal
//! (set by the auth layer), the method (tonic's `GrpcMethod`, also set by the auth layer, so no
//! handler types its own name), and for a mutation its idempotency key — one fingerprint for
//! every method: the sha256 of the request encoded without its `request_id` (prost encodes
//! these messages deterministically).

use sha2::{Digest, Sha256};
use tonic::{GrpcMethod, Request, Status};

use crate::control::{AppError, AuditContext};
use crate::domain::access::Principal;
use crate::domain::idempotency::{IdempotencyKey, validate_request_id};
use crate::pb::v1 as pb;

/// A mutating request: it carries a `request_id`.
pub trait Idempotent: prost::Message + Clone {
    /// Returns the caller's idempotency key.
    fn request_id(&self) -> &str;
    /// Clears it, so the rest of the request can be fingerprinted.
    fn clear_request_id(&mut self);
}

macro_rules! idempotent {
    ($($message:ty),* $(,)?) => {
        $(impl Idempotent for $message {
            fn request_id(&self) -> &str {
                &self.request_id
            }
            fn clear_request_id(&mut self) {
                self.request_id.clear();
            }
        })*
    };
}

idempotent!(
    pb::PutDesiredTopologyRequest,
    pb::AcknowledgeDriftItemRequest,
    pb::ObserveNowRequest,
    pb::CreateRolloutRequest,
    pb::RollbackRolloutRequest,
    pb::GrantDelegationRequest,
    pb::RevokeDelegationRequest,
    pb::BackfillDelegationsRequest,
    pb::AcknowledgeObservationRequest,
    pb::RedeliverEventRequest,
    pb::UpdateScheduleRequest,
    pb::ApplySetupRequest,
    pb::CreatePersistentAgentRequest,
    pb::UpdatePersistentAgentRequest,
    pb::RetirePersistentAgentRequest,
    pb::UpdateWorkspaceRetentionRequest,
    pb::CreateLearningProposalRequest,
    pb::ReviewLearningProposalRequest,
    pb::RegisterRuntimeRequest,
    pb::UpdateRuntimeRequest,
    pb::DeregisterRuntimeRequest,
    pb::CreateFleetRolloutRequest,
    pb::PauseFleetRolloutRequest,
    pb::ResumeFleetRolloutRequest,
    pb::CancelFleetRolloutRequest,
);

/// Returns the authenticated caller of a request.
pub fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}

/// Returns the method of a request as `(package.Service, Method)`.
fn method<T>(request: &Request<T>) -> Result<(String, String), Status> {
    request
        .extensions()
        .get::<GrpcMethod<'static>>()
        .map(|m| (m.service().to_owned(), m.method().to_owned()))
        .ok_or_else(|| Status::internal("the auth layer did not name the method"))
}

/// Returns the audit context of a call; `request_id` is the caller's key where the method has
/// one under another name (a cycle id), else empty.
pub fn caller_with_id<T>(request: &Request<T>, request_id: &str) -> Result<AuditContext, Status> {
    let (service, name) = method(request)?;
    if !request_id.is_empty()
        && let Some(note) = request.extensions().get::<std::sync::Arc<crate::grpc::observe::CallNote>>()
    {
        // Bounded: a request id is validated (≤ 128 characters) before it gets here or is
        // the server's own cycle id.
        let clipped: String = request_id.chars().take(128).collect();
        tracing::Span::current().record("request_id", clipped.as_str());
        let _ = note.request_id.set(clipped);
    }
    let principal = principal(request)?;
    Ok(AuditContext {
        actor: principal.name,
        method: format!("{service}/{name}"),
        request_id: request_id.to_owned(),
        role: principal.role,
    })
}

/// Returns the audit context of a call without an idempotency key.
pub fn caller<T>(request: &Request<T>) -> Result<AuditContext, Status> {
    caller_with_id(request, "")
}

/// Returns the audit context and the idempotency key of a mutating call.
pub fn mutation<T: Idempotent>(request: &Request<T>) -> Result<(AuditContext, IdempotencyKey), Status> {
    let message = request.get_ref();
    validate_request_id(message.request_id()).map_err(AppError::from)?;
    let caller = caller_with_id(request, message.request_id())?;
    let (_, name) = method(request)?;
    let mut without_id = message.clone();
    without_id.clear_request_id();
    // Scoped to the principal: another caller's request id never collides with this one's.
    let key = IdempotencyKey {
        scope: format!("{name}@{}", caller.actor),
        request_id: message.request_id().to_owned(),
        fingerprint: hex::encode(Sha256::digest(without_id.encode_to_vec())),
    };
    Ok((caller, key))
}

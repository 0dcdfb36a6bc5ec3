//! Building idempotency keys from requests: the fingerprint is the sha256 of the request
//! encoded without its `request_id` (prost encodes deterministically for these messages).

use sha2::{Digest, Sha256};

use crate::control::AppError;
use crate::domain::idempotency::{IdempotencyKey, validate_request_id};

/// Returns the key of a mutating request; `without_id` is the request with `request_id` cleared.
pub fn key_of<M: prost::Message>(
    scope: &str,
    request_id: &str,
    without_id: &M,
) -> Result<IdempotencyKey, AppError> {
    validate_request_id(request_id)?;
    Ok(IdempotencyKey {
        scope: scope.to_owned(),
        request_id: request_id.to_owned(),
        fingerprint: hex::encode(Sha256::digest(without_id.encode_to_vec())),
    })
}

//! Idempotency of mutating requests: a retry with the same `request_id` and payload gets the
//! first response; the same id with another payload is refused.

use super::desired::FieldViolation;

/// Longest accepted `request_id`.
pub const MAX_REQUEST_ID: usize = 128;

/// Identifies one mutating request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The method (and resource) the id is scoped to.
    pub scope: String,
    pub request_id: String,
    /// Digest of the request payload without its `request_id`.
    pub fingerprint: String,
}

impl IdempotencyKey {
    /// Returns the key of a second effect of the same call (e.g. the rollout an ApplySetup
    /// starts after storing its revision), so a retry finds each effect's first answer.
    pub fn derived(&self, effect: &str) -> Self {
        Self { scope: format!("{}/{effect}", self.scope), ..self.clone() }
    }
}

/// What is already known about a request id (`T`: the stored response, raw or decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior<T = String> {
    /// Never seen: execute the request.
    Unseen,
    /// Seen with the same payload: answer with the stored response.
    Replay(T),
    /// Seen with a different payload: refuse.
    Conflict,
}

/// Classifies a stored record against the current request.
pub fn classify(stored: Option<(String, String)>, key: &IdempotencyKey) -> Prior {
    match stored {
        None => Prior::Unseen,
        Some((fingerprint, response)) if fingerprint == key.fingerprint => Prior::Replay(response),
        Some(_) => Prior::Conflict,
    }
}

/// Checks a `request_id`: required, at most 128 printable ASCII characters.
pub fn validate_request_id(request_id: &str) -> Result<(), FieldViolation> {
    if request_id.is_empty() {
        return Err(FieldViolation::new(
            "request_id",
            "required: every mutating request carries an idempotency key",
        ));
    }
    if request_id.len() > MAX_REQUEST_ID || !request_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldViolation::new(
            "request_id",
            format!("must be 1..{MAX_REQUEST_ID} printable ASCII characters without spaces"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fingerprint: &str) -> IdempotencyKey {
        IdempotencyKey { scope: "s".into(), request_id: "r".into(), fingerprint: fingerprint.into() }
    }

    #[test]
    fn same_payload_replays_and_another_payload_conflicts() {
        assert_eq!(classify(None, &key("a")), Prior::Unseen);
        assert_eq!(classify(Some(("a".into(), "resp".into())), &key("a")), Prior::Replay("resp".into()));
        assert_eq!(classify(Some(("a".into(), "resp".into())), &key("b")), Prior::Conflict);
    }

    #[test]
    fn request_ids_are_required_and_bounded() {
        assert!(validate_request_id("req-1").is_ok());
        assert!(validate_request_id("").is_err());
        assert!(validate_request_id("has space").is_err());
        assert!(validate_request_id(&"x".repeat(129)).is_err());
    }
}

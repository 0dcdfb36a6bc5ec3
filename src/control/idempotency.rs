//! Exactly-once mutating calls across replicas. Every mutating RPC claims its `request_id`
//! (scoped to the caller and the method) before its use case runs; a duplicate that arrives
//! while the first still runs — on any replica — waits for the first to finish and then runs
//! the use case as a retry, which answers from the stored response; the same id with another
//! payload is INVALID_ARGUMENT. A call that ends without storing an answer (it failed before
//! its effect, or changed nothing) gives its claim up, so a retry runs again.
//!
//! The claim only orders duplicates. Replaying stays with each use case, which stores its
//! response under the key in the transaction of its effect and answers a retry from it.

use std::future::Future;
use std::time::Duration;

use chrono::TimeDelta;

use super::{AppError, Ctx};
use crate::domain::idempotency::{IdempotencyKey, Prior};
use crate::store::Claim;

/// A claim not completed within this time belongs to a call whose replica died; the next retry
/// takes it over. Longer than any call runs (ApplySetup waits for its rollout).
const CLAIM_STALE_AFTER: TimeDelta = TimeDelta::minutes(10);
/// Longest a duplicate waits for the first call's answer before it is told to retry.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(30);

/// The gate every mutating RPC passes.
#[derive(Clone)]
pub struct Calls {
    ctx: Ctx,
}

impl Calls {
    /// Creates the gate.
    pub fn new(ctx: &Ctx) -> Self {
        Self { ctx: ctx.clone() }
    }

    /// Runs `call` (the use case) once per key: as the first call, or — after the first one
    /// finished — as a retry. A validate-only call changes nothing and is not claimed.
    pub async fn once<T>(
        &self,
        key: &IdempotencyKey,
        validate_only: bool,
        call: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        if validate_only {
            return call.await;
        }
        let fresh = self.claim(key).await?;
        let result = call.await;
        // A claim still open now was not completed by the call: it failed before its effect, or
        // it changed nothing and stored no answer. Either way a retry must run again.
        if fresh && let Err(error) = self.ctx.store.abandon_claim(key).await {
            tracing::warn!(%error, "could not give up an idempotency claim; it expires on its own");
        }
        result
    }

    /// Claims `key`; true when this call is the first. Waits while a duplicate runs.
    async fn claim(&self, key: &IdempotencyKey) -> Result<bool, AppError> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_FIRST;
        let mut pause = Duration::from_millis(10);
        loop {
            match self.ctx.store.claim(key, self.ctx.clock.now(), CLAIM_STALE_AFTER).await? {
                Claim::Fresh => return Ok(true),
                Claim::Replay(_) => return Ok(false),
                Claim::Conflict => return Err(AppError::request_id_reused()),
                Claim::InProgress if tokio::time::Instant::now() >= deadline => {
                    return Err(AppError::Busy {
                        reason: "REQUEST_IN_PROGRESS",
                        description: "a call with this request_id is still running; retry to get its answer"
                            .to_owned(),
                        retry_after: Duration::from_secs(1),
                    });
                }
                Claim::InProgress => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
            }
        }
    }
}

impl Ctx {
    /// The first answer to `key`, when this call is a retry: `Some(answer)` to return it,
    /// `None` for a call never seen; a request id used with another payload is refused.
    pub async fn replayed<T: serde::de::DeserializeOwned>(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<T>, AppError> {
        match self.store.prior_answer(key).await? {
            Prior::Replay(answer) => Ok(Some(answer)),
            Prior::Conflict => Err(AppError::request_id_reused()),
            Prior::Unseen => Ok(None),
        }
    }

    /// The stored text (an id) of the first call of `key`, as [`Ctx::replayed`].
    pub async fn replayed_id(&self, key: &IdempotencyKey) -> Result<Option<String>, AppError> {
        match self.store.idempotency_prior(key).await? {
            Prior::Replay(id) => Ok(Some(id)),
            Prior::Conflict => Err(AppError::request_id_reused()),
            Prior::Unseen => Ok(None),
        }
    }
}

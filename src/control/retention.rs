//! Retention: data the service keeps only for a while.
//! - The pre-image of a finished rollout — a full copy of the runtime config before the write,
//!   which may hold inline secrets — kept so the rollout can be rolled back, then dropped. A
//!   purged rollout keeps its record and steps; rolling it back is refused with
//!   NOT_ROLLBACKABLE.
//! - Idempotency records: a retry within the retention gets the first answer; after it, the
//!   request id is forgotten and a retry runs as a new call.
//! - Outbound events and their finished deliveries: an event stays while a configured sink has
//!   yet to fan it out or a delivery of it is pending or recent.

use std::time::Duration;

use chrono::TimeDelta;
use tokio_util::sync::CancellationToken;

use super::Ctx;

/// How long retained data lives.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Age (since its last change) after which a finished rollout's pre-image is purged.
    pub pre_images: TimeDelta,
    /// Age after which an idempotency record is forgotten.
    pub idempotency: TimeDelta,
    /// Age after which a finished outbound delivery (and an event no sink still needs) goes.
    pub outbound: TimeDelta,
}

/// Purges what has outlived `retention` once now.
pub async fn sweep(ctx: &Ctx, retention: Retention) -> Result<(), super::AppError> {
    let now = ctx.clock.now();
    let purged = ctx.store.purge_pre_images(now - retention.pre_images).await?;
    if purged > 0 {
        tracing::info!(purged, "purged the pre-images of finished rollouts past retention");
    }
    let forgotten = ctx.store.prune_idempotency(now - retention.idempotency).await?;
    if forgotten > 0 {
        tracing::info!(forgotten, "forgot idempotency records past retention");
    }
    let (deliveries, events) = ctx.store.purge_outbound(now - retention.outbound).await?;
    if deliveries + events > 0 {
        tracing::info!(deliveries, events, "dropped outbound deliveries and events past retention");
    }
    Ok(())
}

/// Sweeps every `period` until `stop` (the first sweep right away, so a replica that restarts
/// often still purges).
pub async fn run_loop(ctx: Ctx, retention: Retention, period: Duration, stop: CancellationToken) {
    super::every::every(period, &stop, async || {
        super::every::log_failure("retention sweep", sweep(&ctx, retention).await.map(drop));
    })
    .await;
}

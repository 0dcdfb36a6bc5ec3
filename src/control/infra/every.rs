//! The one periodic loop of the background work: a tick every period (the first at once; a
//! late tick delays the next one instead of bursting), until a stop signal.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// An interval whose missed ticks delay the next one (a slow round never causes a burst).
pub fn ticker(period: Duration) -> Interval {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// Runs `round` on every tick of `period` until `stop`; returns at once when stopped, also
/// while waiting for a round to be due.
pub async fn every<F: Future<Output = ()>>(
    period: Duration,
    stop: &CancellationToken,
    mut round: impl FnMut() -> F,
) {
    let mut ticker = ticker(period);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        round().await;
    }
}

/// Logs a failed round of `what`; the next tick tries again.
pub fn log_failure(what: &str, result: Result<(), impl std::fmt::Display>) {
    if let Err(error) = result {
        tracing::warn!(%error, "{what} failed; will retry");
    }
}

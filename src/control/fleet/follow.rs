//! Keeping this replica's view current: one subscription to the store's change feed for the
//! whole fleet, whose notifications name the runtime (or the lease) that changed, and one
//! periodic re-check that reads every runtime's versions in a handful of queries and re-reads
//! only what differs. The feed carries changes within milliseconds on Postgres; the re-check
//! catches lost notifications and is the only path on SQLite shared by several processes.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Fleet;
use crate::control::AppError;
use crate::control::snapshot::Versions;
use crate::store::{Change, StoredVersions, Topic};

/// Follows the feed and re-checks every `recheck` until `stop`. Registry changes sync the
/// cells; fleet rollout changes wake `fleet_rollouts`.
pub async fn follow(
    fleet: Fleet,
    recheck: Duration,
    fleet_rollouts: super::rollouts::FleetRollouts,
    stop: CancellationToken,
) {
    let store = fleet.ctx().store.clone();
    let mut feed = None;
    let mut ticker = crate::control::every::ticker(recheck);
    loop {
        if feed.is_none() {
            feed = match store.change_feed().await {
                Ok(Some(subscribed)) => {
                    // Anything committed before the subscription is in the store.
                    if let Err(error) = rebuild(&fleet).await {
                        tracing::warn!(%error, "rebuilding the fleet's view failed; will retry");
                    }
                    Some(subscribed)
                }
                Ok(None) => None,
                Err(error) => {
                    tracing::debug!(%error, "change feed unavailable; re-checking periodically");
                    None
                }
            };
        }
        let change = async {
            match feed.as_mut() {
                Some(feed) => Some(feed.next().await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {
                if let Err(error) = recheck_all(&fleet).await {
                    tracing::debug!(%error, "fleet re-check failed; will retry");
                }
                fleet_rollouts.wake();
                if let Err(error) = fleet_rollouts.refresh().await {
                    tracing::debug!(%error, "re-reading fleet rollouts failed; will retry");
                }
            }
            change = change => match change {
                Some(Ok(Change::Changed(topic, key))) => {
                    if topic == Topic::FleetRollout {
                        fleet_rollouts.wake();
                        if let Err(error) = fleet_rollouts.refresh().await {
                            tracing::debug!(%error, "re-reading fleet rollouts failed; the re-check will");
                        }
                    }
                    if let Err(error) = apply(&fleet, topic, key.as_deref()).await {
                        tracing::debug!(%error, ?topic, "applying a change failed; the re-check will");
                    }
                }
                Some(Ok(Change::Lost)) | Some(Err(_)) | None => {
                    tracing::info!("change feed lost; rebuilding the fleet's view");
                    feed = None;
                }
            },
        }
    }
}

/// Applies one notified change.
async fn apply(fleet: &Fleet, topic: Topic, key: Option<&str>) -> Result<(), AppError> {
    let ctx = fleet.ctx();
    match (topic, key) {
        (Topic::Lease, Some(name)) => ctx.leases.reload_one(&ctx.store, name).await,
        (Topic::Lease, None) => ctx.leases.reload(&ctx.store).await,
        (Topic::Runtimes, _) => fleet.sync().await.map(drop),
        (Topic::FleetRollout, _) => Ok(()),
        (topic, Some(runtime)) => match fleet.cell(runtime) {
            Some(cell) => {
                let ctx = &cell.services.ctx;
                ctx.snapshot.apply_change(&ctx.store, &ctx.events, topic).await?;
                if topic == Topic::Observation {
                    fleet.note_observed(&cell);
                }
                Ok(())
            }
            // A runtime this replica does not know yet: the registry change is on its way.
            None => Ok(()),
        },
        (topic, None) => {
            for cell in fleet.cells() {
                let ctx = &cell.services.ctx;
                ctx.snapshot.apply_change(&ctx.store, &ctx.events, topic).await?;
            }
            Ok(())
        }
    }
}

/// Rebuilds everything from the store (at start and after a lost feed).
async fn rebuild(fleet: &Fleet) -> Result<(), AppError> {
    fleet.sync().await?;
    let ctx = fleet.ctx();
    ctx.leases.reload(&ctx.store).await?;
    for cell in fleet.cells() {
        let ctx = &cell.services.ctx;
        ctx.snapshot.reload(&ctx.store, &ctx.events).await?;
    }
    Ok(())
}

/// The periodic re-check: the registry, every lease, and each runtime's parts whose stored
/// version moved, read for the whole fleet at once.
async fn recheck_all(fleet: &Fleet) -> Result<(), AppError> {
    fleet.sync().await?;
    let ctx = fleet.ctx();
    ctx.leases.reload(&ctx.store).await?;
    let stored = ctx.store.fleet_versions().await?;
    let cells = fleet.cells();
    for cell in &cells {
        let ctx = &cell.services.ctx;
        let name = cell.name();
        ctx.snapshot
            .recheck_against(
                &ctx.store,
                &ctx.events,
                &versions_of(&stored, name),
                stored.last_scheduled_start.get(name).copied(),
            )
            .await?;
        fleet.note_observed(cell);
    }
    // Rollouts changed since the oldest point any runtime still looks from, in one query.
    let since = cells.iter().filter_map(|cell| cell.services.ctx.snapshot.rollouts_since()).min();
    if let Some(since) = since {
        let mut by_runtime: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for rollout in ctx.store.rollouts_changed_since_any(since, 2_000).await? {
            by_runtime.entry(rollout.runtime.clone()).or_default().push(rollout);
        }
        for cell in &cells {
            if let Some(changed) = by_runtime.remove(cell.name()) {
                let ctx = &cell.services.ctx;
                ctx.snapshot.take_rollouts(&ctx.events, changed);
            }
        }
    }
    Ok(())
}

fn versions_of(stored: &StoredVersions, runtime: &str) -> Versions {
    Versions {
        observation: stored.observation.get(runtime).copied(),
        desired: stored.desired.get(runtime).copied(),
        drift: stored.drift.get(runtime).copied().unwrap_or((0, None)),
        schedule: stored.schedule.get(runtime).copied(),
    }
}

//! The replica's in-memory view of one runtime's hot state — the latest observation, the latest
//! desired revision, the drift items, the schedule — so the hot read RPCs answer without the
//! database, as the Kubernetes API server answers from its watch cache. (Leases, shared by the
//! whole fleet, are in [`super::lease_cache`].)
//!
//! # Guarantees
//! - Read-your-writes on the replica that wrote: a service puts what it committed into the
//!   snapshot before it answers the call.
//! - Other replicas' commits arrive through the store's change feed (Postgres LISTEN/NOTIFY),
//!   normally within milliseconds; a lost notification, and every change on SQLite shared by
//!   several processes, is caught by the periodic revision check. Staleness bound: the check
//!   interval (`--snapshot-resync-ms`, default 2 s) plus one query.
//! - Rebuilt from the store at start and whenever the feed reports a lost connection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, TimeDelta, Utc};

use super::events::{DriftEvent, EventBus, TopologyEvent};
use crate::control::AppError;
use crate::domain::catalog::{AgentCatalog, build_catalog};
use crate::domain::desired::DesiredRevision;
use crate::domain::drift::summary::{DriftSummary, summarize};
use crate::domain::drift::tracker::TrackedItem;
use crate::domain::observation::StoredObservation;
use crate::domain::schedule::Schedule;
use crate::store::{Store, Topic};

/// Versions of what was loaded (or is stored), compared by the periodic re-check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    pub observation: Option<(i64, i64)>,
    pub desired: Option<i64>,
    pub drift: (i64, Option<DateTime<Utc>>),
    pub schedule: Option<i64>,
}

#[derive(Default)]
struct State {
    observation: Option<Arc<StoredObservation>>,
    desired: Option<Arc<DesiredRevision>>,
    drift: Arc<BTreeMap<String, TrackedItem>>,
    /// `None` while the configured defaults apply.
    schedule: Option<Schedule>,
    last_scheduled_start: Option<DateTime<Utc>>,
    versions: Versions,
    summary: Option<Arc<DriftSummary>>,
    catalog: Option<Arc<AgentCatalog>>,
    rollouts: RolloutsSeen,
}

/// The rollout versions this replica has published to its watchers, so changes written by
/// other replicas are published once each.
#[derive(Default)]
struct RolloutsSeen {
    /// Rollout id → the newest version published (ids sort by creation; the oldest are dropped
    /// past [`ROLLOUTS_REMEMBERED`]).
    versions: BTreeMap<String, i64>,
    /// Changes at or after this time (minus [`CLOCK_SLACK`]) are read on the next change.
    since: Option<DateTime<Utc>>,
}

/// Rollout versions remembered for deduplication.
const ROLLOUTS_REMEMBERED: usize = 1024;
/// Slack for replicas whose clocks differ when reading rollouts changed since a time.
const CLOCK_SLACK: TimeDelta = TimeDelta::seconds(5);

impl State {
    /// Takes a tracker state read from the store unless an older one than the loaded state
    /// (never back in time); returns the state it replaced.
    fn replace_drift(
        &mut self,
        version: (i64, Option<DateTime<Utc>>),
        items: &BTreeMap<String, TrackedItem>,
    ) -> Option<Arc<BTreeMap<String, TrackedItem>>> {
        if version.0 < self.versions.drift.0 {
            return None;
        }
        self.versions.drift = version;
        Some(std::mem::replace(&mut self.drift, Arc::new(items.clone())))
    }
}

impl RolloutsSeen {
    /// Records a version; true when it is newer than any published before.
    fn saw(&mut self, id: &str, version: i64) -> bool {
        if self.versions.get(id).is_some_and(|seen| *seen >= version) {
            return false;
        }
        self.versions.insert(id.to_owned(), version);
        while self.versions.len() > ROLLOUTS_REMEMBERED {
            self.versions.pop_first();
        }
        true
    }
}

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct Snapshot {
    state: Arc<RwLock<State>>,
    /// Bumped on every change: transports memoise what they derive from the snapshot by it.
    version: Arc<AtomicU64>,
    runtime: Arc<str>,
}

impl Snapshot {
    /// An empty snapshot of `runtime`'s state; [`Snapshot::reload`] fills it.
    pub fn new(runtime: &str) -> Self {
        Self { state: Arc::default(), version: Arc::default(), runtime: Arc::from(runtime) }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut state);
        state.summary = None;
        state.catalog = None;
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Returns the version of the snapshot (changes whenever any part changes).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Returns the latest observation.
    pub fn observation(&self) -> Option<Arc<StoredObservation>> {
        self.read().observation.clone()
    }

    /// Returns the latest desired revision.
    pub fn desired(&self) -> Option<Arc<DesiredRevision>> {
        self.read().desired.clone()
    }

    /// Returns the tracked drift items by key.
    pub fn drift_items(&self) -> Arc<BTreeMap<String, TrackedItem>> {
        self.read().drift.clone()
    }

    /// Returns the stored schedule (`None` while the defaults apply) and the newest scheduled
    /// cycle's start.
    pub fn schedule(&self) -> (Option<Schedule>, Option<DateTime<Utc>>) {
        let state = self.read();
        (state.schedule.clone(), state.last_scheduled_start)
    }

    /// Returns the drift summary of the current state (computed once per change).
    pub fn summary(&self) -> Arc<DriftSummary> {
        if let Some(summary) = self.read().summary.clone() {
            return summary;
        }
        let summary = {
            let state = self.read();
            let desired = state.desired.as_ref().map(|d| (d.generation, d.topology.revision.as_str()));
            Arc::new(summarize(&state.drift, desired, state.observation.as_ref().map(|o| &o.record)))
        };
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner()).summary = Some(summary.clone());
        summary
    }

    /// Returns the agent catalog of the current state (computed once per change).
    pub fn catalog(&self) -> Arc<AgentCatalog> {
        if let Some(catalog) = self.read().catalog.clone() {
            return catalog;
        }
        let catalog = {
            let state = self.read();
            Arc::new(build_catalog(
                state.desired.as_ref().map(|d| (d.generation, &d.topology)),
                state.observation.as_ref().map(|o| &o.topology),
                state.observation.as_ref().map(|o| &o.inventory),
            ))
        };
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner()).catalog = Some(catalog.clone());
        catalog
    }

    /// Puts an observation this replica recorded, with the tracker's items after it.
    /// The drift transitions it makes are published here, against the state it replaced: a
    /// re-read from the store that already brought the same change published it, and nothing
    /// is published twice.
    pub fn put_observation(
        &self,
        observation: Arc<StoredObservation>,
        drift: BTreeMap<String, TrackedItem>,
        events: &EventBus,
    ) {
        let drift = Arc::new(drift);
        let mut replaced = None;
        self.write(|state| {
            let newer = state.observation.as_ref().is_none_or(|current| {
                (observation.record.id, observation.record.seen_count)
                    >= (current.record.id, current.record.seen_count)
            });
            if newer {
                state.versions.observation = Some((observation.record.id, observation.record.seen_count));
                state.observation = Some(observation);
                replaced = Some(std::mem::replace(&mut state.drift, drift.clone()));
            }
        });
        if let Some(before) = replaced {
            publish_transitions(events, &before, &drift);
        }
    }

    /// Puts one drift item this replica changed (an acknowledgement).
    pub fn put_drift_item(&self, item: TrackedItem) {
        self.write(|state| {
            Arc::make_mut(&mut state.drift).insert(item.key().to_owned(), item);
        });
    }

    /// Puts a desired revision this replica stored.
    pub fn put_desired(&self, desired: DesiredRevision) {
        self.write(|state| {
            if state.desired.as_ref().is_none_or(|current| desired.generation > current.generation) {
                state.versions.desired = Some(desired.generation);
                state.desired = Some(Arc::new(desired));
            }
        });
    }

    /// Puts a schedule this replica stored.
    pub fn put_schedule(&self, schedule: Schedule) {
        self.write(|state| {
            if state.schedule.as_ref().is_none_or(|current| schedule.generation > current.generation) {
                state.versions.schedule = Some(schedule.generation);
                state.schedule = Some(schedule);
            }
        });
    }

    /// Notes a rollout version this replica wrote and published itself.
    pub fn put_rollout(&self, id: &str, version: i64) {
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner()).rollouts.saw(id, version);
    }

    /// Notes the start of a scheduled cycle this replica began.
    pub fn put_scheduled_start(&self, started_at: DateTime<Utc>) {
        self.write(|state| {
            if state.last_scheduled_start.is_none_or(|last| started_at > last) {
                state.last_scheduled_start = Some(started_at);
            }
        });
    }

    /// Rebuilds every part from the store (at start, and after a lost change feed).
    pub async fn reload(&self, store: &Store, events: &EventBus) -> Result<(), AppError> {
        for topic in Topic::OF_A_RUNTIME {
            self.reload_topic(store, events, topic).await?;
        }
        Ok(())
    }

    /// Applies a notified change: re-reads the part unless its stored version is the one
    /// loaded (this replica's own commits come back through the feed too).
    pub async fn apply_change(&self, store: &Store, events: &EventBus, topic: Topic) -> Result<(), AppError> {
        let loaded = self.read().versions.clone();
        let unchanged = match topic {
            Topic::Observation => {
                store.latest_observation_version(&self.runtime).await? == loaded.observation
            }
            Topic::Drift => store.drift_version(&self.runtime).await? == loaded.drift,
            Topic::Desired => store.latest_desired_generation(&self.runtime).await? == loaded.desired,
            Topic::Schedule | Topic::Run | Topic::Rollout => false,
            // Not a runtime's topics: the fleet routes them elsewhere.
            Topic::Lease | Topic::Runtimes | Topic::FleetRollout => true,
        };
        if unchanged { Ok(()) } else { self.reload_topic(store, events, topic).await }
    }

    /// Re-reads one part from the store, publishing what changed to this replica's watchers.
    async fn reload_topic(&self, store: &Store, events: &EventBus, topic: Topic) -> Result<(), AppError> {
        match topic {
            Topic::Observation => self.reload_observation(store, events).await?,
            Topic::Drift => {
                let items = store.drift_items(&self.runtime).await?;
                let drift_version = store.drift_version(&self.runtime).await?;
                let mut replaced = None;
                self.write(|state| replaced = state.replace_drift(drift_version, &items));
                if let Some(before) = replaced {
                    publish_transitions(events, &before, &items);
                }
            }
            Topic::Desired => self.reload_desired(store, events).await?,
            Topic::Schedule => {
                let schedule = store.schedule(&self.runtime).await?;
                self.write(|state| {
                    state.versions.schedule = schedule.as_ref().map(|s| s.generation);
                    state.schedule = schedule;
                });
            }
            Topic::Lease | Topic::Runtimes | Topic::FleetRollout => {}
            Topic::Run => {
                let last = store.latest_scheduled_run(&self.runtime).await?.map(|run| run.started_at);
                self.write(|state| state.last_scheduled_start = last);
            }
            Topic::Rollout => self.reload_rollouts(store, events).await?,
        }
        Ok(())
    }

    /// The newest observation and the drift tracker's items (an observation changes both).
    async fn reload_observation(&self, store: &Store, events: &EventBus) -> Result<(), AppError> {
        let latest = store.latest_observation(&self.runtime).await?.map(Arc::new);
        let items = store.drift_items(&self.runtime).await?;
        let drift_version = store.drift_version(&self.runtime).await?;
        let changed_topology = latest.as_ref().map(|o| o.topology.revision.clone())
            != self.observation().map(|o| o.topology.revision.clone());
        // The store is read before this write: a newer observation this replica put in
        // meanwhile (its own commit) must not be replaced by the older read. The drift
        // transitions are those of the state actually replaced, so a change this replica
        // already published is not published again.
        let mut applied = false;
        let mut replaced = None;
        self.write(|state| {
            let version = latest.as_ref().map(|o| (o.record.id, o.record.seen_count));
            if version >= state.versions.observation {
                state.versions.observation = version;
                state.observation = latest.clone();
                applied = true;
            }
            replaced = state.replace_drift(drift_version, &items);
        });
        if let Some(before) = replaced {
            publish_transitions(events, &before, &items);
        }
        if applied
            && changed_topology
            && let Some(observation) = latest
        {
            events.publish_topology(TopologyEvent::Observed(observation.topology.clone()));
        }
        Ok(())
    }

    async fn reload_desired(&self, store: &Store, events: &EventBus) -> Result<(), AppError> {
        let latest = store.latest_desired(&self.runtime).await?;
        let newer = match (&latest, self.desired()) {
            (Some(latest), Some(current)) => latest.generation != current.generation,
            (latest, current) => latest.is_some() != current.is_some(),
        };
        let mut applied = false;
        self.write(|state| {
            // Generations only grow: an older read never replaces a newer revision.
            let generation = latest.as_ref().map(|d| d.generation);
            if generation >= state.versions.desired {
                state.versions.desired = generation;
                state.desired = latest.clone().map(Arc::new);
                applied = true;
            }
        });
        if applied
            && newer
            && let Some(revision) = latest
        {
            events.publish_topology(TopologyEvent::Desired(revision));
        }
        Ok(())
    }

    /// Publishes the rollouts changed since the last look (each version once).
    async fn reload_rollouts(&self, store: &Store, events: &EventBus) -> Result<(), AppError> {
        let Some(since) = self.rollouts_since() else {
            // First load: nothing is being watched yet; follow changes from now on.
            let now = store.now().await?;
            self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner()).rollouts.since = Some(now);
            return Ok(());
        };
        let changed = store.rollouts_changed_since(&self.runtime, since, 500).await?;
        self.take_rollouts(events, changed);
        Ok(())
    }

    /// Rollouts changed at or after this time are the ones to read on the next look (`None`:
    /// not loaded yet).
    pub fn rollouts_since(&self) -> Option<DateTime<Utc>> {
        let since = self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner()).rollouts.since;
        since.map(|since| since - CLOCK_SLACK)
    }

    /// Publishes the rollouts among `changed` (this runtime's, changed since
    /// [`Snapshot::rollouts_since`]) whose version this replica has not published yet.
    pub fn take_rollouts(&self, events: &EventBus, changed: Vec<crate::domain::rollout::Rollout>) {
        let mut state = self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        for rollout in changed {
            let seen = &mut state.rollouts;
            seen.since = seen.since.max(Some(rollout.updated_at));
            if seen.saw(&rollout.id, rollout.version) {
                events.publish_rollout(rollout);
            }
        }
    }

    /// Re-reads the parts whose stored version (`stored`, read for the whole fleet at once)
    /// differs from the loaded one, and takes the newest scheduled start (it has no cheap
    /// version: the fleet reads every runtime's at once).
    pub async fn recheck_against(
        &self,
        store: &Store,
        events: &EventBus,
        stored: &Versions,
        last_scheduled_start: Option<DateTime<Utc>>,
    ) -> Result<(), AppError> {
        let loaded = self.read().versions.clone();
        if stored.observation != loaded.observation {
            self.reload_topic(store, events, Topic::Observation).await?;
        } else if stored.drift != loaded.drift {
            self.reload_topic(store, events, Topic::Drift).await?;
        }
        if stored.desired != loaded.desired {
            self.reload_topic(store, events, Topic::Desired).await?;
        }
        if stored.schedule != loaded.schedule {
            self.reload_topic(store, events, Topic::Schedule).await?;
        }
        if last_scheduled_start.is_some() && self.read().last_scheduled_start != last_scheduled_start {
            self.put_scheduled_start_from_store(last_scheduled_start);
        }
        Ok(())
    }

    fn put_scheduled_start_from_store(&self, started_at: Option<DateTime<Utc>>) {
        self.write(|state| {
            if started_at > state.last_scheduled_start {
                state.last_scheduled_start = started_at;
            }
        });
    }
}

/// Publishes the state changes between two versions of the items (another replica's
/// observation or acknowledgement), so watchers on this replica see them too.
fn publish_transitions(
    events: &EventBus,
    before: &BTreeMap<String, TrackedItem>,
    after: &BTreeMap<String, TrackedItem>,
) {
    for (key, item) in after {
        let previous = before.get(key).map(|old| old.state);
        if previous != Some(item.state) {
            events.publish_drift(DriftEvent { item: item.clone(), previous });
        }
    }
}

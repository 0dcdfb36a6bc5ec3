//! Observing the runtime: read it (with a timeout), derive the topology, diff it against the
//! latest desired revision, feed the anti-flap tracker, and record observation and tracker
//! state in one transaction. Observations are serialised, so the tracker never sees two at
//! once on this replica.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::AppError;
use super::Ctx;
use super::events::{DriftEvent, TopologyEvent};
use super::failpoints::HOLD_RUNTIME_READS;
use super::paging::{finish_page, numeric_cursor, page_request};
use crate::domain::audit::NewAuditEvent;
use crate::domain::derive_topology;
use crate::domain::drift::diff;
use crate::domain::drift::summary::{DriftSummary, summarize};
use crate::domain::drift::tracker::{DriftState, TrackedItem, TrackerConfig, observe};
use crate::domain::observation::{ObservationRecord, StoredObservation};
use crate::runtime::{RuntimeAdapter, RuntimeError};
use crate::store::{DriftChanges, NewObservation};

/// Scope of page tokens of `ListObservations`.
const LIST_SCOPE: &str = "ListObservations";

/// What one observation produced.
#[derive(Debug, Clone)]
pub struct Observed {
    pub observation: StoredObservation,
    /// Items whose state changed, with their previous state, in key order.
    pub transitions: Vec<(TrackedItem, Option<DriftState>)>,
    pub summary: DriftSummary,
}

/// Settings of the observation service.
#[derive(Debug, Clone, Copy)]
pub struct ObserverSettings {
    pub history_limit: u64,
    pub runtime_timeout: Duration,
    pub tracker: TrackerConfig,
    /// Shortest time between two runtime reads that READ callers cause (FRESH reads).
    pub fresh_read_min_interval: Duration,
}

/// What one runtime read gave: the observation, or why the runtime could not be read.
type ReadResult = Result<Arc<StoredObservation>, RuntimeError>;

/// The newest runtime read this replica finished, shared by FRESH readers.
#[derive(Default)]
struct FreshReads {
    /// One FRESH read at a time: callers that arrive while one is in flight wait for it.
    turn: Mutex<()>,
    latest: std::sync::Mutex<Option<(Instant, ReadResult)>>,
}

/// Reads the runtime, tracks drift, and serves stored observations.
#[derive(Clone)]
pub struct ObservationService {
    ctx: Ctx,
    settings: ObserverSettings,
    serialize: Arc<Mutex<()>>,
    fresh: Arc<FreshReads>,
}

impl ObservationService {
    /// Creates the service.
    pub fn new(ctx: &Ctx, settings: ObserverSettings) -> Self {
        Self { ctx: ctx.clone(), settings, serialize: Arc::default(), fresh: Arc::default() }
    }

    /// Returns the runtime adapter.
    pub fn runtime(&self) -> Arc<dyn RuntimeAdapter> {
        self.ctx.runtime.clone()
    }

    /// Returns the configured runtime address.
    pub fn runtime_address(&self) -> &str {
        self.ctx.runtime.address()
    }

    /// Reads the runtime now, tracks drift and records everything; returns the observation.
    pub async fn observe_now(&self) -> Result<StoredObservation, AppError> {
        Ok(self.observe(true).await?.observation)
    }

    /// A FRESH read for a READ caller: concurrent callers share one runtime read (single
    /// flight), and within the minimum interval after a read finished they get that read, so
    /// no caller can make the server read the runtime more often than that.
    pub async fn observe_fresh(&self) -> Result<Arc<StoredObservation>, AppError> {
        let asked = Instant::now();
        let _turn = self.fresh.turn.lock().await;
        if let Some(shared) = self.shareable(asked) {
            return shared.map_err(AppError::Runtime);
        }
        match self.observe(true).await {
            Ok(observed) => Ok(Arc::new(observed.observation)),
            Err(AppError::Runtime(error)) => {
                self.remember_fresh(Err(error.clone()));
                Err(AppError::Runtime(error))
            }
            Err(other) => Err(other),
        }
    }

    /// The latest read, if it finished after `asked` or within the minimum interval.
    fn shareable(&self, asked: Instant) -> Option<ReadResult> {
        let latest = self.fresh.latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (finished, result) = latest.as_ref()?;
        (*finished >= asked || finished.elapsed() < self.settings.fresh_read_min_interval)
            .then(|| result.clone())
    }

    fn remember_fresh(&self, result: ReadResult) {
        *self.fresh.latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((Instant::now(), result));
    }

    /// Reads the runtime and feeds the tracker. With `persist == false` nothing is stored or
    /// published: the result shows what the observation would do.
    pub async fn observe(&self, persist: bool) -> Result<Observed, AppError> {
        self.observe_inner(persist, None).await
    }

    /// Observes on a caller's request, recording its audit event with the observation.
    pub async fn observe_audited(&self, audit: &NewAuditEvent) -> Result<Observed, AppError> {
        self.observe_inner(true, Some(audit)).await
    }

    #[tracing::instrument(skip(self, audit), fields(runtime = self.ctx.runtime.address()))]
    async fn observe_inner(
        &self,
        persist: bool,
        audit: Option<&NewAuditEvent>,
    ) -> Result<Observed, AppError> {
        let _one_at_a_time = self.serialize.lock().await;
        self.ctx.failpoints.hold(HOLD_RUNTIME_READS).await;
        let read = tokio::time::timeout(self.settings.runtime_timeout, self.ctx.runtime.observe()).await;
        let inventory = match read {
            Ok(Ok(inventory)) => inventory,
            Ok(Err(err)) => return Err(self.read_failed(err)),
            Err(_) => {
                return Err(self.read_failed(RuntimeError::Timeout { after: self.settings.runtime_timeout }));
            }
        };
        let topology = derive_topology(&inventory);
        let now = self.ctx.clock.now();
        let desired = self.ctx.store.latest_desired().await?;
        let differences = diff(desired.as_ref().map(|d| &d.topology), &topology, &inventory.findings);
        let mut items = self.ctx.store.drift_items(self.ctx.runtime.address()).await?;
        let outcome = observe(&mut items, &differences, now, &self.settings.tracker);
        let desired_ref = desired.as_ref().map(|d| (d.generation, d.topology.revision.as_str()));
        let transitions: Vec<(TrackedItem, Option<DriftState>)> = outcome
            .transitions
            .iter()
            .filter_map(|t| items.get(&t.key).map(|item| (item.clone(), t.from)))
            .collect();

        if !persist {
            let record = ObservationRecord {
                id: 0,
                runtime: self.ctx.runtime.address().to_owned(),
                observed_at: now,
                last_seen_at: now,
                seen_count: 1,
                config_hash: inventory.config_hash.clone(),
                revision: topology.revision.clone(),
                config_valid: inventory.config_valid,
                finding_count: inventory.findings.len() as i32,
            };
            let summary = summarize(&items, desired_ref, Some(&record));
            let observation = StoredObservation { record, inventory, topology };
            return Ok(Observed { observation, transitions, summary });
        }

        let changes = DriftChanges {
            upserts: outcome.changed.iter().filter_map(|key| items.get(key)).collect(),
            deletions: outcome.forgotten.iter().cloned().collect(),
        };
        let new = NewObservation {
            runtime: self.ctx.runtime.address(),
            inventory: &inventory,
            topology: &topology,
            observed_at: now,
        };
        let (record, new_row) =
            self.ctx.store.record_observation(new, self.settings.history_limit, &changes, audit).await?;
        self.ctx.readiness.record_runtime_read(
            true,
            format!("observed {} ({} agents)", self.ctx.runtime.address(), inventory.agents.len()),
        );
        if new_row {
            self.ctx.events.publish_topology(TopologyEvent::Observed(topology.clone()));
        }
        for (item, previous) in &transitions {
            tracing::info!(key = item.key(), from = ?previous, to = item.state.as_str(), "drift item transition");
            self.ctx.events.publish_drift(DriftEvent { item: item.clone(), previous: *previous });
        }
        let summary = summarize(&items, desired_ref, Some(&record));
        tracing::debug!(observation_id = record.id, revision = %record.revision, "runtime observed");
        let observation = StoredObservation { record, inventory, topology };
        let shared = Arc::new(observation.clone());
        self.ctx.snapshot.put_observation(shared.clone(), items);
        self.remember_fresh(Ok(shared));
        Ok(Observed { observation, transitions, summary })
    }

    fn read_failed(&self, err: RuntimeError) -> AppError {
        tracing::warn!(runtime = self.ctx.runtime.address(), error = %err, "runtime read failed");
        self.ctx.readiness.record_runtime_read(false, format!("last read failed: {err}"));
        AppError::Runtime(err)
    }

    /// Returns the most recent stored observation (from the snapshot).
    pub fn latest_stored(&self) -> Result<Arc<StoredObservation>, AppError> {
        self.latest_stored_opt().ok_or_else(|| AppError::NotFound {
            resource: format!("observation of {}", self.ctx.runtime.address()),
        })
    }

    /// Returns the most recent stored observation, if any (from the snapshot).
    pub fn latest_stored_opt(&self) -> Option<Arc<StoredObservation>> {
        self.ctx.snapshot.observation()
    }

    /// Lists stored observations newest first; returns the page and the next page token.
    pub async fn list(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<ObservationRecord>, String), AppError> {
        let scope = format!("{LIST_SCOPE}:{}", self.ctx.runtime.address());
        let page = page_request(&self.ctx.page_tokens, &scope, page_size, page_token)?;
        let before_id = numeric_cursor(page.cursor)?;
        let records =
            self.ctx.store.list_observations(self.ctx.runtime.address(), before_id, page.size + 1).await?;
        Ok(finish_page(&self.ctx.page_tokens, &scope, records, page.size, |r| r.id.to_string()))
    }

    /// Observes until the runtime answers once (backing off 0.5 s → 10 s), then every
    /// `interval`, until stopped. This is the replica's observation loop; leader election
    /// will gate it once several replicas share a database.
    pub async fn run_loop(&self, interval: Duration, stop: tokio_util::sync::CancellationToken) {
        let mut delay = Duration::from_millis(500);
        loop {
            if self.observe(true).await.is_ok() {
                break;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {
                    if let Err(error) = self.observe(true).await {
                        tracing::warn!(%error, "periodic observation failed");
                    }
                }
            }
        }
    }
}

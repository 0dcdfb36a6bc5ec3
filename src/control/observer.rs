//! Observing the runtime: read it (with a timeout), derive the topology, diff it against the
//! latest desired revision, feed the anti-flap tracker, and record observation and tracker
//! state in one transaction (which locks the runtime's coordination row, so replicas never lose
//! each other's tracker updates).
//!
//! # What counts as an observation for the anti-flap tracker
//! - The periodic observer: one per runtime, cluster-wide (the holder of
//!   `warp/observer/<address>`), every `--observe-interval` seconds.
//! - Explicit observations: `ObserveNow` and the observation that opens a reconcile cycle.
//! - At most one other read per observe interval: FRESH topology reads, planning, rollout
//!   verification and ApplySetup read the runtime too, and are recorded, but feed the tracker
//!   only when nothing fed it for an observe interval. A burst of reads therefore cannot
//!   confirm, resolve or flap anything.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::AppError;
use super::Ctx;
use super::LeaseService;
use super::events::TopologyEvent;
use super::failpoints::HOLD_RUNTIME_READS;
use super::ownership::{KeptLease, OBSERVER_LEASE_PREFIX, replica_caller, runtime_lease_name};
use super::paging::{finish_page, numeric_cursor, page_request};
use crate::domain::audit::NewAuditEvent;
use crate::domain::derive_topology;
use crate::domain::drift::diff;
use crate::domain::drift::summary::{DriftSummary, summarize};
use crate::domain::drift::tracker::ObserveOutcome;
use crate::domain::drift::tracker::{DriftState, TrackedItem, TrackerConfig, observe};
use crate::domain::observation::{ObservationRecord, StoredObservation};
use crate::runtime::{RuntimeAdapter, RuntimeError};
use crate::store::{NewObservation, TrackerFeed};
use std::collections::BTreeMap;

/// Scope of page tokens of `ListObservations`.
const LIST_SCOPE: &str = "ListObservations";

/// What one observation produced.
/// How long the observer waits after a pushed change notice before it reads (coalesces a burst).
const PUSH_DEBOUNCE: Duration = Duration::from_millis(250);
#[derive(Debug, Clone)]
pub struct Observed {
    pub observation: StoredObservation,
    /// Items whose state changed, with their previous state, in key order.
    pub transitions: Vec<(TrackedItem, Option<DriftState>)>,
    pub summary: DriftSummary,
}

/// Why the runtime is read; decides whether the read feeds the anti-flap tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadCause {
    /// The periodic observer.
    Loop,
    /// An explicit observation (ObserveNow, a reconcile cycle).
    Requested,
    /// Any other read: feeds the tracker only when nothing fed it for an observe interval.
    Incidental,
}

/// Settings of the observation service.
#[derive(Debug, Clone, Copy)]
pub struct ObserverSettings {
    pub history_limit: u64,
    pub runtime_timeout: Duration,
    pub tracker: TrackerConfig,
    /// Shortest time between two incidental reads that feed the tracker (the observe interval).
    pub tracker_min_gap: chrono::TimeDelta,
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

    /// The name of the runtime observed (the key of its rows).
    pub fn runtime_name(&self) -> &str {
        self.ctx.runtime_name()
    }

    /// Reads the runtime now, tracks drift and records everything; returns the observation.
    pub async fn observe_now(&self) -> Result<StoredObservation, AppError> {
        Ok(self.observe_as(true, ReadCause::Incidental).await?.observation)
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
        match self.observe_as(true, ReadCause::Incidental).await {
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

    /// Reads the runtime incidentally (planning, verification, …). With `persist == false`
    /// nothing is stored or published: the result shows what an observation would do.
    pub async fn observe(&self, persist: bool) -> Result<Observed, AppError> {
        self.observe_inner(persist, None, ReadCause::Incidental).await
    }

    /// Reads the runtime for `cause`.
    pub async fn observe_as(&self, persist: bool, cause: ReadCause) -> Result<Observed, AppError> {
        self.observe_inner(persist, None, cause).await
    }

    /// Observes on a caller's request, recording its audit event with the observation.
    pub async fn observe_audited(&self, audit: &NewAuditEvent) -> Result<Observed, AppError> {
        self.observe_inner(true, Some(audit), ReadCause::Requested).await
    }

    #[tracing::instrument(skip(self, audit), fields(runtime = self.ctx.runtime_name()))]
    async fn observe_inner(
        &self,
        persist: bool,
        audit: Option<&NewAuditEvent>,
        cause: ReadCause,
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
        let desired = self.ctx.store.latest_desired(self.ctx.runtime_name()).await?;
        let differences = diff(desired.as_ref().map(|d| &d.topology), &topology, &inventory);
        let desired_ref = desired.as_ref().map(|d| (d.generation, d.topology.revision.as_str()));
        let transitions_of = |items: &BTreeMap<String, TrackedItem>, outcome: &ObserveOutcome| {
            outcome
                .transitions
                .iter()
                .filter_map(|t| items.get(&t.key).map(|item| (item.clone(), t.from)))
                .collect::<Vec<(TrackedItem, Option<DriftState>)>>()
        };

        if !persist {
            let mut items = self.ctx.store.drift_items(self.ctx.runtime_name()).await?;
            let outcome = observe(&mut items, &differences, now, &self.settings.tracker);
            let transitions = transitions_of(&items, &outcome);
            let record = ObservationRecord {
                id: 0,
                runtime: self.ctx.runtime_name().to_owned(),
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

        let new = NewObservation {
            runtime: self.ctx.runtime_name(),
            inventory: &inventory,
            topology: &topology,
            observed_at: now,
        };
        let tracker = self.settings.tracker;
        let feed = TrackerFeed {
            min_gap: (cause == ReadCause::Incidental).then_some(self.settings.tracker_min_gap),
            apply: Box::new(|items: &mut BTreeMap<String, TrackedItem>| {
                observe(items, &differences, now, &tracker)
            }),
        };
        let recorded =
            self.ctx.store.record_observation(new, self.settings.history_limit, feed, audit).await?;
        let (record, new_row) = (recorded.record, recorded.inserted);
        let (items, transitions) = match recorded.fed {
            Some((items, outcome)) => {
                let transitions = transitions_of(&items, &outcome);
                (items, transitions)
            }
            None => {
                tracing::debug!(?cause, "read within the tracker's minimum gap: recorded, not tracked");
                ((*self.ctx.snapshot.drift_items()).clone(), Vec::new())
            }
        };
        let summary = summarize(&items, desired_ref, Some(&record));
        tracing::debug!(observation_id = record.id, revision = %record.revision, "runtime observed");
        let agents = inventory.agents.len();
        let observation = StoredObservation { record, inventory, topology };
        let shared = Arc::new(observation.clone());
        // The snapshot first, then readiness and the events: whoever learns of this observation
        // (a probe turning ready, a watcher's event) finds it in the snapshot already, so a
        // watch stream opened at that moment sends it as its initial state.
        self.ctx.snapshot.put_observation(shared.clone(), items, &self.ctx.events);
        self.remember_fresh(Ok(shared));
        self.ctx.readiness.record_runtime_read(
            self.ctx.runtime_name(),
            true,
            format!("observed {} ({agents} agents)", self.ctx.runtime_name()),
        );
        if new_row {
            self.ctx.events.publish_topology(TopologyEvent::Observed(observation.topology.clone()));
        }
        for (item, previous) in &transitions {
            tracing::info!(key = item.key(), from = ?previous, to = item.state.as_str(), "drift item transition");
        }
        Ok(Observed { observation, transitions, summary })
    }

    fn read_failed(&self, err: RuntimeError) -> AppError {
        tracing::warn!(runtime = self.ctx.runtime_name(), error = %err, "runtime read failed");
        self.ctx.readiness.record_runtime_read(
            self.ctx.runtime_name(),
            false,
            format!("last read failed: {err}"),
        );
        AppError::Runtime(err)
    }

    /// Returns the most recent stored observation (from the snapshot).
    pub fn latest_stored(&self) -> Result<Arc<StoredObservation>, AppError> {
        self.latest_stored_opt().ok_or_else(|| AppError::NotFound {
            resource: format!("observation of {}", self.ctx.runtime_name()),
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
        let scope = format!("{LIST_SCOPE}:{}", self.ctx.runtime_name());
        let page = page_request(&self.ctx.page_tokens, &scope, page_size, page_token)?;
        let before_id = numeric_cursor(page.cursor)?;
        let records =
            self.ctx.store.list_observations(self.ctx.runtime_name(), before_id, page.size + 1).await?;
        Ok(finish_page(&self.ctx.page_tokens, &scope, records, page.size, |r| r.id.to_string()))
    }

    /// Observes until the runtime answers once (backing off 0.5 s → 10 s; every replica does,
    /// for its readiness), then — while this replica holds the runtime's observer lease
    /// (`warp/observer/<address>`, one holder cluster-wide) — every `interval`, until stopped.
    pub async fn run_loop(
        &self,
        interval: Duration,
        leases: LeaseService,
        replica_id: String,
        stop: tokio_util::sync::CancellationToken,
    ) {
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
        let name = runtime_lease_name(OBSERVER_LEASE_PREFIX, self.ctx.runtime_name());
        let caller = replica_caller(&replica_id, "observer");
        // Long enough to outlast a slow read between two ticks; renewed in the background.
        let lease = (interval * 3).clamp(Duration::from_secs(15), Duration::from_secs(3600));
        let mut held: Option<KeptLease> = None;
        let mut ticker = super::every::ticker(interval);
        ticker.tick().await;
        // Push observation: a runtime that announces config changes is read at once (after a
        // short debounce, so a burst of writes costs one read); the ticker stays the safety net.
        let mut notices = self.ctx.runtime.change_notices();
        loop {
            let pushed = async {
                match notices.as_mut() {
                    Some(notices) => {
                        if notices.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let was_pushed = tokio::select! {
                () = stop.cancelled() => break,
                _ = ticker.tick() => false,
                () = pushed => true,
            };
            if was_pushed {
                tokio::time::sleep(PUSH_DEBOUNCE).await;
                if let Some(notices) = notices.as_mut() {
                    notices.mark_unchanged();
                }
                ticker.reset();
            }
            if held.as_ref().is_none_or(|kept| !kept.is_live()) {
                held = match KeptLease::try_take(&leases, &name, &replica_id, lease, &caller).await {
                    Ok(taken) => taken,
                    Err(error) => {
                        tracing::warn!(%error, "observer lease: will try again");
                        None
                    }
                };
            }
            if held.is_some()
                && let Err(error) = self.observe_as(true, ReadCause::Loop).await
            {
                tracing::warn!(%error, "periodic observation failed");
            }
        }
        if let Some(kept) = held {
            kept.release().await;
        }
    }
}

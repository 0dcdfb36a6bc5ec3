//! Outbound events: the delivery worker and the delivery RPCs (the HTTP side of a sink is
//! `crate::delivery`).
//!
//! # Guarantees
//! - One delivery worker per cluster: the replica holding lease `warp/outbound` runs it; every
//!   attempt's outcome is recorded under that lease's fence.
//! - At-least-once: an event is marked delivered only after its sink answered 2xx; a send whose
//!   outcome was not recorded (crash, lost lease, database down) is sent again, with the same
//!   body and CloudEvents `id`, so receivers de-duplicate by `id`.
//! - Per-sink order: a sink gets its events in outbox (commit) order; the next event waits
//!   until the one before it was delivered or dead-lettered. Sinks do not wait for each other.
//! - Failures back off exponentially with jitter (honouring `Retry-After`); after
//!   `max_attempts` the delivery is dead-lettered and the sink moves on.
//!
//! # Caveats
//! - `RedeliverEvent` puts an older event in front of the sink's queue: it arrives after newer
//!   ones (its `sequence` tells the receiver).
//! - A sink seen for the first time receives the events written from then on, not the history.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::ownership::{KeptLease, replica_caller};
use super::paging::{finish_page, page_request};
use super::{AppError, AuditContext, Ctx, LeaseService};
use crate::delivery::{Answer, Connection, Sink};
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::outbound::{
    AttemptOutcome, Delivery, DeliveryState, RetryPolicy, after_failure, envelope,
};
use crate::store::{Fence, RedeliverOutcome};

/// The lease of the delivery worker.
pub const OUTBOUND_LEASE: &str = "warp/outbound";
/// How long the delivery lease lasts (renewed every third).
const LEASE: Duration = Duration::from_secs(15);
/// How often an idle sink looks for new events (a local write wakes it at once).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Events read per fan-out.
const FAN_OUT_BATCH: u64 = 256;
const LIST_SCOPE: &str = "deliveries";

/// What the outbound worker is configured with.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    pub sinks: Vec<Arc<Sink>>,
    pub retry: RetryPolicy,
    /// Longest time one attempt (connect, send, answer) may take.
    pub attempt_timeout: Duration,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            sinks: Vec::new(),
            retry: RetryPolicy {
                max_attempts: 12,
                initial: Duration::from_millis(500),
                max: Duration::from_secs(300),
            },
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

/// Sinks, deliveries and the delivery worker.
#[derive(Clone)]
pub struct OutboundService {
    ctx: Ctx,
    settings: Arc<OutboundSettings>,
    wake: Arc<Notify>,
}

impl OutboundService {
    /// Creates the service.
    pub fn new(ctx: &Ctx, settings: OutboundSettings) -> Self {
        Self { ctx: ctx.clone(), settings: Arc::new(settings), wake: Arc::new(Notify::new()) }
    }

    fn sink(&self, name: &str) -> Result<&Arc<Sink>, AppError> {
        self.settings
            .sinks
            .iter()
            .find(|sink| sink.name == name)
            .ok_or_else(|| AppError::NotFound { resource: format!("sink {name}") })
    }

    /// Lists deliveries, newest event first, optionally of one sink and one state.
    pub async fn list(
        &self,
        sink: &str,
        state: Option<DeliveryState>,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Delivery>, String), AppError> {
        if sink.len() > 64 {
            return Err(AppError::invalid("sink", "at most 64 bytes"));
        }
        let scope = format!("{LIST_SCOPE}:{sink}:{}", state.map(DeliveryState::as_str).unwrap_or(""));
        let page = page_request(&self.ctx.page_tokens, &scope, page_size, page_token)?;
        let after = page
            .cursor
            .map(|cursor| {
                let (seq, sink) = cursor.split_once(':').unwrap_or((cursor.as_str(), ""));
                seq.parse::<i64>()
                    .map(|seq| (seq, sink.to_owned()))
                    .map_err(|_| AppError::invalid("page_token", "page token is malformed"))
            })
            .transpose()?;
        let sink = (!sink.is_empty()).then_some(sink);
        let rows = self.ctx.store.list_deliveries(sink, state, after, page.size + 1).await?;
        Ok(finish_page(&self.ctx.page_tokens, &scope, rows, page.size, |d| {
            format!("{}:{}", d.event.seq, d.sink)
        }))
    }

    /// Queues event `ce_id` for `sink` again, from its first attempt.
    pub async fn redeliver(
        &self,
        sink: &str,
        ce_id: &str,
        caller: &AuditContext,
        idempotency: &IdempotencyKey,
        validate_only: bool,
    ) -> Result<Delivery, AppError> {
        if ce_id.is_empty() || ce_id.len() > 64 {
            return Err(AppError::invalid("event_id", "1..64 bytes: the CloudEvents id of a retained event"));
        }
        self.sink(sink)?;
        let missing = || AppError::NotFound { resource: format!("event {ce_id}") };
        if validate_only {
            // The event must exist; nothing is written.
            let found = self.ctx.store.event_by_ce_id(ce_id).await?.ok_or_else(missing)?;
            return Ok(Delivery {
                sink: sink.to_owned(),
                state: DeliveryState::Pending,
                attempts: 0,
                last_error: String::new(),
                next_attempt_at: self.ctx.clock.now(),
                delivered_at: None,
                updated_at: self.ctx.clock.now(),
                event: found,
            });
        }
        let audit = caller.event(
            format!("sink/{sink}/event/{ce_id}"),
            format!("queued event {ce_id} for sink {sink} again"),
        );
        let outcome = self.ctx.store.redeliver(sink, ce_id, idempotency, &audit, chrono::Utc::now()).await?;
        match outcome {
            RedeliverOutcome::Queued(delivery) => {
                self.wake.notify_waiters();
                Ok(delivery)
            }
            RedeliverOutcome::Replayed(delivery) => Ok(delivery),
            RedeliverOutcome::NoSuchEvent => Err(missing()),
            RedeliverOutcome::RequestIdReused => Err(AppError::request_id_reused()),
        }
    }

    /// Gives every configured sink its cursor (a new sink starts at the current head). Runs
    /// before the replica serves, so no event written through it can precede its sinks.
    pub async fn register_sinks(&self) -> Result<(), crate::store::StoreError> {
        let names: Vec<String> = self.settings.sinks.iter().map(|s| s.name.clone()).collect();
        self.ctx.store.register_sinks(&names).await
    }

    /// Runs the delivery worker until `stop`: whenever this replica holds `warp/outbound`, it
    /// delivers to every sink (one task per sink).
    pub async fn run_loop(&self, leases: LeaseService, replica_id: String, stop: CancellationToken) {
        if self.settings.sinks.is_empty() {
            return;
        }
        let caller = replica_caller(&replica_id, "outbound");
        loop {
            let kept = match KeptLease::try_take(&leases, OUTBOUND_LEASE, &replica_id, LEASE, &caller).await {
                Ok(kept) => kept,
                Err(error) => {
                    tracing::warn!(%error, "outbound lease: will try again");
                    None
                }
            };
            let Some(kept) = kept else {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            };
            tracing::info!(fencing_token = kept.fence().token, "delivering outbound events");
            let kept = Arc::new(kept);
            let held = stop.child_token();
            let workers: Vec<_> = self
                .settings
                .sinks
                .iter()
                .map(|sink| tokio::spawn(self.clone().deliver_to(sink.clone(), kept.clone(), held.clone())))
                .collect();
            while kept.is_live() && !stop.is_cancelled() {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
            held.cancel();
            for worker in workers {
                let _ = worker.await;
            }
            if let Ok(kept) = Arc::try_unwrap(kept) {
                kept.release().await;
            }
            if stop.is_cancelled() {
                return;
            }
            tracing::warn!("outbound lease lost; delivery stops here");
        }
    }

    /// Delivers `sink`'s events in order until `stop` or the lease is lost.
    async fn deliver_to(self, sink: Arc<Sink>, kept: Arc<KeptLease>, stop: CancellationToken) {
        let mut connection = Connection::default();
        let fence = kept.fence().clone();
        while !stop.is_cancelled() && kept.is_live() {
            let wait = match self.step(&sink, &fence, &mut connection).await {
                Ok(Step::Sent) => continue,
                Ok(Step::Idle) => IDLE_POLL,
                Ok(Step::NotBefore(delay)) => delay.min(IDLE_POLL),
                Ok(Step::Fenced) => return,
                Err(error) => {
                    tracing::warn!(sink = %sink.name, %error, "outbound delivery step failed; will retry");
                    Duration::from_secs(1)
                }
            };
            let woken = self.wake.notified();
            tokio::select! {
                () = stop.cancelled() => return,
                () = woken => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One step of a sink: fan out new events, then try the next delivery if it is due.
    async fn step(&self, sink: &Sink, fence: &Fence, connection: &mut Connection) -> Result<Step, AppError> {
        self.ctx.store.fan_out(&sink.name, |t| sink.filter.accepts(t), FAN_OUT_BATCH).await?;
        let Some(delivery) = self.ctx.store.next_delivery(&sink.name).await? else {
            return Ok(Step::Idle);
        };
        // Backoff is real time between attempts, so it is read from the system clock (not the
        // application clock, which tests may hold still). A first attempt is always due: its
        // time came from the database clock, which may run ahead of this host's.
        let now = chrono::Utc::now();
        if delivery.attempts > 0 && delivery.next_attempt_at > now {
            return Ok(Step::NotBefore((delivery.next_attempt_at - now).to_std().unwrap_or_default()));
        }
        let body = envelope(&delivery.event);
        let started = tokio::time::Instant::now();
        let answer =
            tokio::time::timeout(self.settings.attempt_timeout, connection.post(sink, &delivery, body))
                .await
                .unwrap_or_else(|_| {
                    Err(format!("no answer within {} ms", self.settings.attempt_timeout.as_millis()))
                });
        let outcome = match answer {
            Ok(Answer { status, .. }) if (200..300).contains(&status) => AttemptOutcome::Delivered,
            Ok(Answer { status, retry_after }) => {
                self.failed(&delivery, format!("the sink answered HTTP {status}"), retry_after)
            }
            Err(error) => {
                connection.close();
                self.failed(&delivery, error, None)
            }
        };
        let label = match &outcome {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry { .. } => "failed",
            AttemptOutcome::Dead { .. } => "dead_lettered",
        };
        self.ctx.telemetry.outbound_attempt(&sink.name, label, started.elapsed());
        if let AttemptOutcome::Dead { error } = &outcome {
            tracing::warn!(sink = %sink.name, event = %delivery.event.ce_id, %error, "event dead-lettered");
        }
        match self.ctx.store.record_attempt(fence, &sink.name, delivery.event.seq, &outcome).await? {
            Ok(()) => Ok(Step::Sent),
            Err(refusal) => {
                tracing::warn!(%refusal, "outbound lease moved; this replica stops delivering");
                Ok(Step::Fenced)
            }
        }
    }

    fn failed(&self, delivery: &Delivery, error: String, retry_after: Option<Duration>) -> AttemptOutcome {
        let unit = crate::random::random_bytes::<8>()
            .map(|bytes| (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64)
            .unwrap_or(0.5);
        after_failure(&self.settings.retry, delivery.attempts, error, chrono::Utc::now(), unit, retry_after)
    }
}

enum Step {
    /// An attempt was made and recorded.
    Sent,
    /// Nothing to deliver.
    Idle,
    /// The next delivery is due after this delay.
    NotBefore(Duration),
    /// The lease moved on.
    Fenced,
}

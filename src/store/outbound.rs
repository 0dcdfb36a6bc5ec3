//! The transactional outbox and its deliveries.
//!
//! # Guarantees
//! - An event is written by [`enqueue`] inside the transaction of its cause: it exists if and
//!   only if the cause committed.
//! - Positions (`seq`) are gap-free and in commit order: [`enqueue`] increments the one
//!   `outbound_head` row, whose lock the transaction then holds until it commits, so a later
//!   position can never become visible before an earlier one. A sink's cursor therefore never
//!   skips an event that commits late.
//! - Fan-out ([`Store::fan_out`]) creates one delivery record per event a sink accepts and moves
//!   the sink's cursor, in one transaction; it is idempotent.
//! - Every attempt's outcome is written under the delivery lease's fence, so a replica that lost
//!   the lease records nothing (its send may still have reached the sink: at-least-once).
//!
//! # Caveats
//! - Writers of events queue on the head row for the rest of their transaction; `enqueue` is
//!   called last, just before the commit, so the wait is one commit long and no lock is taken
//!   after it (no lock cycle with the rows the cause locked).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entities::{outbound_delivery, outbound_event, outbound_head, outbound_sink};
use super::{Fence, Store, StoreError, audit, idempotency};
use crate::domain::audit::NewAuditEvent;
use crate::domain::idempotency::{IdempotencyKey, Prior};
use crate::domain::lease::LeaseError;
use crate::domain::outbound::{AttemptOutcome, Delivery, DeliveryState, NewEvent, StoredEvent, uuid_v4};

/// Writes `events` into the outbox inside `conn`'s transaction (call it last before commit).
pub(super) async fn enqueue<C: ConnectionTrait>(
    store: &Store,
    conn: &C,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let count = events.len() as i64;
    outbound_head::Entity::update_many()
        .col_expr(outbound_head::Column::LastSeq, Expr::col(outbound_head::Column::LastSeq).add(count))
        .filter(outbound_head::Column::Id.eq(1))
        .exec(conn)
        .await?;
    let head = outbound_head::Entity::find_by_id(1)
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the outbox head is missing".to_owned()))?;
    let at = store.db_now(conn).await?;
    let first = head.last_seq - count + 1;
    let mut rows = Vec::with_capacity(events.len());
    for (offset, event) in events.iter().enumerate() {
        let random =
            crate::random::random_bytes::<16>().map_err(|e| StoreError::Unavailable(e.to_string()))?;
        rows.push(outbound_event::ActiveModel {
            seq: Set(first + offset as i64),
            ce_id: Set(uuid_v4(random)),
            event_type: Set(event.event_type.as_str().to_owned()),
            subject: Set(event.subject.clone()),
            occurred_at: Set(at),
            data: Set(event.data.to_string()),
        });
    }
    outbound_event::Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(())
}

fn event_of(row: outbound_event::Model) -> StoredEvent {
    StoredEvent {
        seq: row.seq,
        ce_id: row.ce_id,
        event_type: row.event_type,
        subject: row.subject,
        time: row.occurred_at,
        data: row.data,
    }
}

fn delivery_of(row: outbound_delivery::Model, event: StoredEvent) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        state: DeliveryState::parse(&row.state).ok_or_else(|| {
            StoreError::Corrupt(format!("delivery {}/{}: state {:?}", row.sink, row.event_seq, row.state))
        })?,
        sink: row.sink,
        event,
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        last_error: row.last_error,
        next_attempt_at: row.next_attempt_at,
        delivered_at: row.delivered_at,
        updated_at: row.updated_at,
    })
}

/// A delivery of event `seq` to `sink` that is due now and not yet tried.
fn pending_delivery(sink: &str, seq: i64, now: DateTime<Utc>) -> outbound_delivery::ActiveModel {
    outbound_delivery::ActiveModel {
        sink: Set(sink.to_owned()),
        event_seq: Set(seq),
        state: Set(DeliveryState::Pending.as_str().to_owned()),
        attempts: Set(0),
        last_error: Set(String::new()),
        next_attempt_at: Set(now),
        delivered_at: Set(None),
        updated_at: Set(now),
    }
}

/// Turns delivery rows joined with their events into deliveries. The join is one statement, so
/// it sees one snapshot: a purge between two separate reads could leave a delivery read first
/// without the event read second.
fn deliveries_of(
    rows: Vec<(outbound_delivery::Model, Option<outbound_event::Model>)>,
) -> Result<Vec<Delivery>, StoreError> {
    rows.into_iter()
        .map(|(row, event)| {
            let event = event.map(event_of).ok_or_else(|| {
                StoreError::Corrupt(format!("delivery {}/{} has no event", row.sink, row.event_seq))
            })?;
            delivery_of(row, event)
        })
        .collect()
}

/// What a redelivery request found.
#[derive(Debug, Clone, PartialEq)]
pub enum RedeliverOutcome {
    /// The delivery is pending again.
    Queued(Delivery),
    /// The request id was seen with the same payload: the delivery as it is now.
    Replayed(Delivery),
    /// No retained event has that id.
    NoSuchEvent,
    RequestIdReused,
}

/// Deliveries per sink and state (for the metrics gauges).
pub type DeliveryCounts = Vec<(String, DeliveryState, u64)>;

impl Store {
    /// Makes sure every sink in `names` has a cursor. A sink seen for the first time starts at
    /// the current head: it receives the events written from now on, not the history. Known
    /// sinks are marked as configured now (retention keeps what they have yet to fan out).
    pub async fn register_sinks(&self, names: &[String]) -> Result<(), StoreError> {
        if names.is_empty() {
            return Ok(());
        }
        let txn = self.begin_write().await?;
        let head = outbound_head::Entity::find_by_id(1)
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the outbox head is missing".to_owned()))?;
        let now = self.db_now(&txn).await?;
        for name in names {
            outbound_sink::Entity::insert(outbound_sink::ActiveModel {
                name: Set(name.clone()),
                cursor: Set(head.last_seq),
                configured_at: Set(now),
            })
            .on_conflict(
                OnConflict::column(outbound_sink::Column::Name)
                    .update_column(outbound_sink::Column::ConfiguredAt)
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Creates delivery records for up to `limit` events past `sink`'s cursor that `accepts`
    /// takes, and moves the cursor past every event it read. Returns how many events it read.
    pub async fn fan_out(
        &self,
        sink: &str,
        accepts: impl Fn(&str) -> bool,
        limit: u64,
    ) -> Result<u64, StoreError> {
        // Most calls find nothing new: answer those with two reads, without a write transaction.
        let cursor: Option<i64> = outbound_sink::Entity::find_by_id(sink.to_owned())
            .select_only()
            .column(outbound_sink::Column::Cursor)
            .into_tuple()
            .one(&self.db)
            .await?;
        let head: Option<i64> = outbound_head::Entity::find_by_id(1)
            .select_only()
            .column(outbound_head::Column::LastSeq)
            .into_tuple()
            .one(&self.db)
            .await?;
        if let (Some(cursor), Some(head)) = (cursor, head)
            && cursor >= head
        {
            return Ok(0);
        }
        let txn = self.begin_write().await?;
        let Some(row) = outbound_sink::Entity::find_by_id(sink.to_owned()).lock_exclusive().one(&txn).await?
        else {
            txn.rollback().await?;
            return Err(StoreError::Corrupt(format!("sink {sink} has no cursor")));
        };
        let events = outbound_event::Entity::find()
            .filter(outbound_event::Column::Seq.gt(row.cursor))
            .order_by_asc(outbound_event::Column::Seq)
            .limit(limit)
            .all(&txn)
            .await?;
        let Some(last) = events.last().map(|event| event.seq) else {
            txn.rollback().await?;
            return Ok(0);
        };
        let now = self.db_now(&txn).await?;
        let read = events.len() as u64;
        let rows: Vec<outbound_delivery::ActiveModel> = events
            .into_iter()
            .filter(|event| accepts(&event.event_type))
            .map(|event| pending_delivery(sink, event.seq, now))
            .collect();
        if !rows.is_empty() {
            outbound_delivery::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([
                        outbound_delivery::Column::Sink,
                        outbound_delivery::Column::EventSeq,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        outbound_sink::Entity::update_many()
            .col_expr(outbound_sink::Column::Cursor, Expr::value(last))
            .col_expr(outbound_sink::Column::ConfiguredAt, Expr::value(now))
            .filter(outbound_sink::Column::Name.eq(sink))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(read)
    }

    /// The delivery `sink` must make next: its pending delivery of the lowest position (a sink
    /// gets its events in outbox order; a redelivered older event goes first).
    pub async fn next_delivery(&self, sink: &str) -> Result<Option<Delivery>, StoreError> {
        let row = outbound_delivery::Entity::find()
            .filter(outbound_delivery::Column::Sink.eq(sink))
            .filter(outbound_delivery::Column::State.eq(DeliveryState::Pending.as_str()))
            .order_by_asc(outbound_delivery::Column::EventSeq)
            .find_also_related(outbound_event::Entity)
            .one(&self.db)
            .await?;
        Ok(deliveries_of(row.into_iter().collect())?.pop())
    }

    /// Records the outcome of an attempt on a pending delivery, under `fence`. `Ok(Err(_))`:
    /// the fence no longer holds and nothing was written.
    pub async fn record_attempt(
        &self,
        fence: &Fence,
        sink: &str,
        seq: i64,
        outcome: &AttemptOutcome,
    ) -> Result<Result<(), LeaseError>, StoreError> {
        let txn = self.begin_write().await?;
        if let Err(refusal) = self.check_fence_in(&txn, fence).await? {
            txn.rollback().await?;
            return Ok(Err(refusal));
        }
        let now = self.db_now(&txn).await?;
        let attempts = Expr::col(outbound_delivery::Column::Attempts).add(1);
        let mut update = outbound_delivery::Entity::update_many()
            .col_expr(outbound_delivery::Column::Attempts, attempts)
            .col_expr(outbound_delivery::Column::UpdatedAt, Expr::value(now));
        update = match outcome {
            AttemptOutcome::Delivered => update
                .col_expr(outbound_delivery::Column::State, Expr::value(DeliveryState::Delivered.as_str()))
                .col_expr(outbound_delivery::Column::LastError, Expr::value(""))
                .col_expr(outbound_delivery::Column::DeliveredAt, Expr::value(Some(now))),
            AttemptOutcome::Retry { error, next_at } => update
                .col_expr(outbound_delivery::Column::LastError, Expr::value(error.clone()))
                .col_expr(outbound_delivery::Column::NextAttemptAt, Expr::value(*next_at)),
            AttemptOutcome::Dead { error } => update
                .col_expr(outbound_delivery::Column::State, Expr::value(DeliveryState::Dead.as_str()))
                .col_expr(outbound_delivery::Column::LastError, Expr::value(error.clone())),
        };
        update
            .filter(outbound_delivery::Column::Sink.eq(sink))
            .filter(outbound_delivery::Column::EventSeq.eq(seq))
            .filter(outbound_delivery::Column::State.eq(DeliveryState::Pending.as_str()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(Ok(()))
    }

    /// Lists deliveries newest event first (then by sink), after the page position `after`
    /// (`(seq, sink)` of the last row of the previous page).
    pub async fn list_deliveries(
        &self,
        sink: Option<&str>,
        state: Option<DeliveryState>,
        after: Option<(i64, String)>,
        limit: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut query = outbound_delivery::Entity::find();
        if let Some(sink) = sink {
            query = query.filter(outbound_delivery::Column::Sink.eq(sink));
        }
        if let Some(state) = state {
            query = query.filter(outbound_delivery::Column::State.eq(state.as_str()));
        }
        if let Some((seq, sink)) = after {
            query = query.filter(
                Condition::any().add(outbound_delivery::Column::EventSeq.lt(seq)).add(
                    Condition::all()
                        .add(outbound_delivery::Column::EventSeq.eq(seq))
                        .add(outbound_delivery::Column::Sink.gt(sink)),
                ),
            );
        }
        let rows = query
            .order_by_desc(outbound_delivery::Column::EventSeq)
            .order_by_asc(outbound_delivery::Column::Sink)
            .limit(limit)
            .find_also_related(outbound_event::Entity)
            .all(&self.db)
            .await?;
        deliveries_of(rows)
    }

    /// Queues the event `ce_id` for `sink` again (from its first attempt), whatever became of
    /// its earlier delivery, with the caller's audit event and idempotency record.
    pub async fn redeliver(
        &self,
        sink: &str,
        ce_id: &str,
        key: &IdempotencyKey,
        audit_event: &NewAuditEvent,
        now: DateTime<Utc>,
    ) -> Result<RedeliverOutcome, StoreError> {
        let txn = self.begin_write().await?;
        let prior = idempotency::prior(&txn, key).await?;
        if matches!(prior, Prior::Conflict) {
            return Ok(RedeliverOutcome::RequestIdReused);
        }
        let Some(event) = outbound_event::Entity::find()
            .filter(outbound_event::Column::CeId.eq(ce_id))
            .one(&txn)
            .await?
            .map(event_of)
        else {
            return Ok(RedeliverOutcome::NoSuchEvent);
        };
        let replayed = matches!(prior, Prior::Replay(_));
        if !replayed {
            outbound_delivery::Entity::insert(pending_delivery(sink, event.seq, now))
                .on_conflict(
                    OnConflict::columns([
                        outbound_delivery::Column::Sink,
                        outbound_delivery::Column::EventSeq,
                    ])
                    .update_columns([
                        outbound_delivery::Column::State,
                        outbound_delivery::Column::Attempts,
                        outbound_delivery::Column::LastError,
                        outbound_delivery::Column::NextAttemptAt,
                        outbound_delivery::Column::DeliveredAt,
                        outbound_delivery::Column::UpdatedAt,
                    ])
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
            idempotency::remember(&txn, key, ce_id.to_owned(), now).await?;
            audit::append(self, &txn, audit_event).await?;
        }
        let row = outbound_delivery::Entity::find_by_id((sink.to_owned(), event.seq))
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("delivery {sink}/{} vanished", event.seq)))?;
        let delivery = delivery_of(row, event)?;
        txn.commit().await?;
        Ok(if replayed { RedeliverOutcome::Replayed(delivery) } else { RedeliverOutcome::Queued(delivery) })
    }

    /// Appends one audit event and writes outbound events, in one transaction (for effects
    /// outside the database, such as files written to the runtime).
    pub async fn append_audit_with_events(
        &self,
        event: &NewAuditEvent,
        outbound: &[NewEvent],
    ) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        audit::append(self, &txn, event).await?;
        enqueue(self, &txn, outbound).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Returns the retained event with CloudEvents id `ce_id`.
    pub async fn event_by_ce_id(&self, ce_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        Ok(outbound_event::Entity::find()
            .filter(outbound_event::Column::CeId.eq(ce_id))
            .one(&self.db)
            .await?
            .map(event_of))
    }

    /// Counts deliveries per sink and state.
    pub async fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError> {
        let rows: Vec<(String, String, i64)> = outbound_delivery::Entity::find()
            .select_only()
            .column(outbound_delivery::Column::Sink)
            .column(outbound_delivery::Column::State)
            .column_as(outbound_delivery::Column::EventSeq.count(), "count")
            .group_by(outbound_delivery::Column::Sink)
            .group_by(outbound_delivery::Column::State)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(sink, state, count)| {
                DeliveryState::parse(&state).map(|state| (sink, state, u64::try_from(count).unwrap_or(0)))
            })
            .collect())
    }

    /// Drops finished deliveries last changed before `cutoff`, and events written before it
    /// that no sink still needs (every recently configured sink's cursor is past them and no
    /// delivery of them is pending). Returns (deliveries, events) removed.
    pub async fn purge_outbound(&self, cutoff: DateTime<Utc>) -> Result<(u64, u64), StoreError> {
        // One transaction: nobody sees a delivery gone while the event it alone kept is still
        // there (a redelivery in between would bring back a delivery for a purged event).
        let txn = self.begin_write().await?;
        let deliveries = outbound_delivery::Entity::delete_many()
            .filter(outbound_delivery::Column::State.ne(DeliveryState::Pending.as_str()))
            .filter(outbound_delivery::Column::UpdatedAt.lt(cutoff))
            .exec(&txn)
            .await?
            .rows_affected;
        let min_cursor: Option<i64> = outbound_sink::Entity::find()
            .select_only()
            .column_as(outbound_sink::Column::Cursor.min(), "cursor")
            .filter(outbound_sink::Column::ConfiguredAt.gte(cutoff))
            .into_tuple::<Option<i64>>()
            .one(&txn)
            .await?
            .flatten();
        let min_pending: Option<i64> = outbound_delivery::Entity::find()
            .select_only()
            .column_as(outbound_delivery::Column::EventSeq.min(), "seq")
            .filter(outbound_delivery::Column::State.eq(DeliveryState::Pending.as_str()))
            .into_tuple::<Option<i64>>()
            .one(&txn)
            .await?
            .flatten();
        let mut bound = min_cursor.unwrap_or(i64::MAX);
        if let Some(pending) = min_pending {
            bound = Ord::min(bound, pending - 1);
        }
        // Deliveries that are kept (recent, or pending) keep their events too.
        let delivered_seqs = sea_orm::sea_query::Query::select()
            .column(outbound_delivery::Column::EventSeq)
            .from(outbound_delivery::Entity)
            .to_owned();
        let delete = outbound_event::Entity::delete_many()
            .filter(outbound_event::Column::Seq.lte(bound))
            .filter(outbound_event::Column::OccurredAt.lt(cutoff))
            .filter(outbound_event::Column::Seq.not_in_subquery(delivered_seqs));
        let events = delete.exec(&txn).await?.rows_affected;
        txn.commit().await?;
        Ok((deliveries, events))
    }
}

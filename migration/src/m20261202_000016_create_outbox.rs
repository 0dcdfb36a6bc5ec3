//! The transactional outbox: events written in the transaction of their cause, the delivery
//! cursor of every sink, and one delivery record per event and sink.
//!
//! `outbound_head` is one row holding the last event position. A transaction that writes
//! events takes its lock (by incrementing it) just before it commits, so positions are handed
//! out in commit order without gaps: a reader that sees position n has seen every position
//! below it, and a sink's cursor can move past what it read without ever skipping an event
//! committed later.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OutboundHead {
    Table,
    Id,
    LastSeq,
}

#[derive(DeriveIden)]
enum OutboundEvents {
    Table,
    Seq,
    CeId,
    EventType,
    Subject,
    OccurredAt,
    Data,
}

#[derive(DeriveIden)]
enum OutboundSinks {
    Table,
    Name,
    Cursor,
    ConfiguredAt,
}

#[derive(DeriveIden)]
enum OutboundDeliveries {
    Table,
    Sink,
    EventSeq,
    State,
    Attempts,
    LastError,
    NextAttemptAt,
    DeliveredAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OutboundHead::Table)
                    .if_not_exists()
                    .col(integer(OutboundHead::Id).primary_key())
                    .col(big_integer(OutboundHead::LastSeq))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(OutboundHead::Table)
                    .columns([OutboundHead::Id, OutboundHead::LastSeq])
                    .values_panic([1.into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OutboundEvents::Table)
                    .if_not_exists()
                    .col(big_integer(OutboundEvents::Seq).primary_key())
                    .col(string(OutboundEvents::CeId).unique_key())
                    .col(string(OutboundEvents::EventType))
                    .col(string(OutboundEvents::Subject))
                    .col(timestamp_with_time_zone(OutboundEvents::OccurredAt))
                    .col(text(OutboundEvents::Data))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OutboundSinks::Table)
                    .if_not_exists()
                    .col(string(OutboundSinks::Name).primary_key())
                    .col(big_integer(OutboundSinks::Cursor))
                    .col(timestamp_with_time_zone(OutboundSinks::ConfiguredAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OutboundDeliveries::Table)
                    .if_not_exists()
                    .col(string(OutboundDeliveries::Sink))
                    .col(big_integer(OutboundDeliveries::EventSeq))
                    .col(string(OutboundDeliveries::State))
                    .col(integer(OutboundDeliveries::Attempts))
                    .col(text(OutboundDeliveries::LastError))
                    .col(timestamp_with_time_zone(OutboundDeliveries::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(OutboundDeliveries::DeliveredAt))
                    .col(timestamp_with_time_zone(OutboundDeliveries::UpdatedAt))
                    .primary_key(
                        Index::create().col(OutboundDeliveries::Sink).col(OutboundDeliveries::EventSeq),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_outbound_deliveries_sink_state_seq")
                    .table(OutboundDeliveries::Table)
                    .col(OutboundDeliveries::Sink)
                    .col(OutboundDeliveries::State)
                    .col(OutboundDeliveries::EventSeq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OutboundDeliveries::Table.into_iden(),
            OutboundSinks::Table.into_iden(),
            OutboundEvents::Table.into_iden(),
            OutboundHead::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

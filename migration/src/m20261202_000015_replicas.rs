//! Several replicas on one database: idempotency claims (a call in progress is visible to its
//! duplicates), rollout row versions (a transition from a stale version is refused), one row of
//! per-runtime coordination state (drift tracker version, the last observation that fed it, the
//! recent config writes of the write limiter), and the HEAL attempts as exact keys.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyRecords {
    Table,
    Completed,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Rollouts {
    Table,
    Version,
    Runtime,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RuntimeStates {
    Table,
    Runtime,
    TrackerVersion,
    TrackerFedAt,
    RecentWrites,
}

#[derive(DeriveIden)]
enum HealAttempts {
    Table,
    Runtime,
    DesiredGeneration,
    ConfigHash,
    CycleId,
    AttemptedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyRecords::Table)
                    .add_column(boolean(IdempotencyRecords::Completed).default(true))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_idempotency_records_created_at")
                    .table(IdempotencyRecords::Table)
                    .col(IdempotencyRecords::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Rollouts::Table)
                    .add_column(big_integer(Rollouts::Version).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_rollouts_runtime_updated_at")
                    .table(Rollouts::Table)
                    .col(Rollouts::Runtime)
                    .col(Rollouts::UpdatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RuntimeStates::Table)
                    .if_not_exists()
                    .col(string(RuntimeStates::Runtime).primary_key())
                    .col(big_integer(RuntimeStates::TrackerVersion).default(0))
                    .col(timestamp_with_time_zone_null(RuntimeStates::TrackerFedAt))
                    .col(text(RuntimeStates::RecentWrites))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(HealAttempts::Table)
                    .if_not_exists()
                    .col(string(HealAttempts::Runtime))
                    .col(big_integer(HealAttempts::DesiredGeneration))
                    .col(string(HealAttempts::ConfigHash))
                    .col(string(HealAttempts::CycleId))
                    .col(timestamp_with_time_zone(HealAttempts::AttemptedAt))
                    .primary_key(
                        Index::create()
                            .col(HealAttempts::Runtime)
                            .col(HealAttempts::DesiredGeneration)
                            .col(HealAttempts::ConfigHash),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(HealAttempts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(RuntimeStates::Table).to_owned()).await?;
        manager
            .drop_index(
                Index::drop().name("idx_rollouts_runtime_updated_at").table(Rollouts::Table).to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table(Rollouts::Table).drop_column(Rollouts::Version).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_idempotency_records_created_at")
                    .table(IdempotencyRecords::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(IdempotencyRecords::Table)
                    .drop_column(IdempotencyRecords::Completed)
                    .to_owned(),
            )
            .await
    }
}

//! Reconcile cycles (scheduler runs), unique by cycle id.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SchedulerRuns {
    Table,
    Seq,
    CycleId,
    Runtime,
    StartedAt,
    RunJson,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SchedulerRuns::Table)
                    .if_not_exists()
                    .col(big_pk_auto(SchedulerRuns::Seq))
                    .col(string_uniq(SchedulerRuns::CycleId))
                    .col(string(SchedulerRuns::Runtime))
                    .col(timestamp_with_time_zone(SchedulerRuns::StartedAt))
                    .col(text(SchedulerRuns::RunJson))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SchedulerRuns::Table).to_owned()).await
    }
}

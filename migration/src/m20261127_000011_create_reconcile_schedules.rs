//! The periodic reconcile schedule, one row per runtime (absent until first updated: the
//! configured defaults apply).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReconcileSchedules {
    Table,
    Runtime,
    Generation,
    ScheduleJson,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ReconcileSchedules::Table)
                    .if_not_exists()
                    .col(string(ReconcileSchedules::Runtime).primary_key())
                    .col(big_integer(ReconcileSchedules::Generation))
                    .col(text(ReconcileSchedules::ScheduleJson))
                    .col(timestamp_with_time_zone(ReconcileSchedules::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ReconcileSchedules::Table).to_owned()).await
    }
}

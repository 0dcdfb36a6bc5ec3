//! Watchdog observations, deduplicated by key.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WatchdogObservations {
    Table,
    ObservationKey,
    Runtime,
    Open,
    UpdatedAt,
    ObservationJson,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WatchdogObservations::Table)
                    .if_not_exists()
                    .col(string(WatchdogObservations::ObservationKey))
                    .col(string(WatchdogObservations::Runtime))
                    .col(boolean(WatchdogObservations::Open))
                    .col(timestamp_with_time_zone(WatchdogObservations::UpdatedAt))
                    .col(text(WatchdogObservations::ObservationJson))
                    .primary_key(
                        Index::create()
                            .col(WatchdogObservations::Runtime)
                            .col(WatchdogObservations::ObservationKey),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(WatchdogObservations::Table).to_owned()).await
    }
}

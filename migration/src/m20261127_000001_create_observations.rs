//! Observations of the runtime: one row per distinct observation, folded while unchanged.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Observations {
    Table,
    Id,
    Runtime,
    ObservedAt,
    LastSeenAt,
    SeenCount,
    ConfigHash,
    Revision,
    ConfigValid,
    FindingCount,
    InventoryJson,
    TopologyJson,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Observations::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Observations::Id))
                    .col(string(Observations::Runtime))
                    .col(timestamp_with_time_zone(Observations::ObservedAt))
                    .col(timestamp_with_time_zone(Observations::LastSeenAt))
                    .col(big_integer(Observations::SeenCount))
                    .col(string(Observations::ConfigHash))
                    .col(string(Observations::Revision))
                    .col(boolean(Observations::ConfigValid))
                    .col(integer(Observations::FindingCount))
                    .col(text(Observations::InventoryJson))
                    .col(text(Observations::TopologyJson))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_observations_runtime_id")
                    .table(Observations::Table)
                    .col(Observations::Runtime)
                    .col(Observations::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Observations::Table).to_owned()).await
    }
}

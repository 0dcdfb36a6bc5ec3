//! Desired topology revisions, idempotency records of mutating calls, and tracked drift items.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DesiredTopologies {
    Table,
    Generation,
    Etag,
    Revision,
    Author,
    CreatedAt,
    TopologyJson,
}

#[derive(DeriveIden)]
enum IdempotencyRecords {
    Table,
    Scope,
    RequestId,
    Fingerprint,
    ResponseJson,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DriftItems {
    Table,
    Runtime,
    ItemKey,
    State,
    ItemJson,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DesiredTopologies::Table)
                    .if_not_exists()
                    .col(big_integer(DesiredTopologies::Generation).primary_key())
                    .col(string(DesiredTopologies::Etag))
                    .col(string(DesiredTopologies::Revision))
                    .col(string(DesiredTopologies::Author))
                    .col(timestamp_with_time_zone(DesiredTopologies::CreatedAt))
                    .col(text(DesiredTopologies::TopologyJson))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyRecords::Table)
                    .if_not_exists()
                    .col(string(IdempotencyRecords::Scope))
                    .col(string(IdempotencyRecords::RequestId))
                    .col(string(IdempotencyRecords::Fingerprint))
                    .col(text(IdempotencyRecords::ResponseJson))
                    .col(timestamp_with_time_zone(IdempotencyRecords::CreatedAt))
                    .primary_key(
                        Index::create().col(IdempotencyRecords::Scope).col(IdempotencyRecords::RequestId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DriftItems::Table)
                    .if_not_exists()
                    .col(string(DriftItems::Runtime))
                    .col(string(DriftItems::ItemKey))
                    .col(string(DriftItems::State))
                    .col(text(DriftItems::ItemJson))
                    .col(timestamp_with_time_zone(DriftItems::UpdatedAt))
                    .primary_key(Index::create().col(DriftItems::Runtime).col(DriftItems::ItemKey))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(DriftItems::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(IdempotencyRecords::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(DesiredTopologies::Table).to_owned()).await
    }
}

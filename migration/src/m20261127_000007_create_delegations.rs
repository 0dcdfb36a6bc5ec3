//! Delegation grants (never deleted: revocation is a state, kept for the cascade and audit).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Delegations {
    Table,
    Id,
    CreatedAt,
    DelegationJson,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Delegations::Table)
                    .if_not_exists()
                    .col(string(Delegations::Id).primary_key())
                    .col(timestamp_with_time_zone(Delegations::CreatedAt))
                    .col(text(Delegations::DelegationJson))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Delegations::Table).to_owned()).await
    }
}

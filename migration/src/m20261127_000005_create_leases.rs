//! Leases with fencing tokens. Rows are never deleted, so a name's token counter survives
//! releases and tokens are never reused.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Leases {
    Table,
    Name,
    Holder,
    Token,
    DurationSecs,
    AcquiredAt,
    RenewedAt,
    ExpiresAt,
    Transitions,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Leases::Table)
                    .if_not_exists()
                    .col(string(Leases::Name).primary_key())
                    .col(string_null(Leases::Holder))
                    .col(big_integer(Leases::Token))
                    .col(big_integer(Leases::DurationSecs))
                    .col(timestamp_with_time_zone_null(Leases::AcquiredAt))
                    .col(timestamp_with_time_zone_null(Leases::RenewedAt))
                    .col(timestamp_with_time_zone_null(Leases::ExpiresAt))
                    .col(big_integer(Leases::Transitions))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Leases::Table).to_owned()).await
    }
}

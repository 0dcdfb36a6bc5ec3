//! Control agents' fenced cycle reports.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CycleReports {
    Table,
    CycleId,
    LeaseName,
    Holder,
    FencingToken,
    Outcome,
    Summary,
    ReportedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CycleReports::Table)
                    .if_not_exists()
                    .col(string(CycleReports::CycleId).primary_key())
                    .col(string(CycleReports::LeaseName))
                    .col(string(CycleReports::Holder))
                    .col(big_integer(CycleReports::FencingToken))
                    .col(string(CycleReports::Outcome))
                    .col(text(CycleReports::Summary))
                    .col(timestamp_with_time_zone(CycleReports::ReportedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(CycleReports::Table).to_owned()).await
    }
}

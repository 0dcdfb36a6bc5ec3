//! Audit events waiting to be sealed into the hash chain. A mutation's transaction only inserts
//! here (no shared row is touched, so unrelated writers never queue on each other); a sealer
//! moves pending events into `audit_events` in id order, linking each to the chain head.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditPending {
    Table,
    Id,
    At,
    Actor,
    Method,
    Resource,
    RequestId,
    Outcome,
    Summary,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditPending::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditPending::Id))
                    .col(timestamp_with_time_zone(AuditPending::At))
                    .col(string(AuditPending::Actor))
                    .col(string(AuditPending::Method))
                    .col(string(AuditPending::Resource))
                    .col(string(AuditPending::RequestId))
                    .col(string(AuditPending::Outcome))
                    .col(text(AuditPending::Summary))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AuditPending::Table).to_owned()).await
    }
}

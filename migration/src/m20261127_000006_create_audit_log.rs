//! The hash-chained audit log and its chain head (one row, locked by every append so that
//! appends are serialised across replicas).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Seq,
    At,
    Actor,
    Method,
    Resource,
    RequestId,
    Outcome,
    Summary,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditChainHead {
    Table,
    Id,
    LastSeq,
    LastHash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(big_integer(AuditEvents::Seq).primary_key())
                    .col(timestamp_with_time_zone(AuditEvents::At))
                    .col(string(AuditEvents::Actor))
                    .col(string(AuditEvents::Method))
                    .col(string(AuditEvents::Resource))
                    .col(string(AuditEvents::RequestId))
                    .col(string(AuditEvents::Outcome))
                    .col(text(AuditEvents::Summary))
                    .col(string(AuditEvents::PrevHash))
                    .col(string(AuditEvents::Hash))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditChainHead::Table)
                    .if_not_exists()
                    .col(integer(AuditChainHead::Id).primary_key())
                    .col(big_integer(AuditChainHead::LastSeq))
                    .col(string(AuditChainHead::LastHash))
                    .to_owned(),
            )
            .await?;
        let seed = Query::insert()
            .into_table(AuditChainHead::Table)
            .columns([AuditChainHead::Id, AuditChainHead::LastSeq, AuditChainHead::LastHash])
            .values_panic([
                1.into(),
                0i64.into(),
                "0000000000000000000000000000000000000000000000000000000000000000".into(),
            ])
            .to_owned();
        manager.exec_stmt(seed).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AuditChainHead::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(AuditEvents::Table).to_owned()).await
    }
}

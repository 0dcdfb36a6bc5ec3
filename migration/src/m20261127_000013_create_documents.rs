//! Versioned JSON documents of small resource kinds (persistent agents, workspace records,
//! learning proposals): unique by (kind, id), with a generation for etags and a state for
//! filtering. `seq` orders listings by creation.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Documents {
    Table,
    Seq,
    Kind,
    Id,
    Generation,
    State,
    Body,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Documents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Documents::Seq))
                    .col(string(Documents::Kind))
                    .col(string(Documents::Id))
                    .col(big_integer(Documents::Generation))
                    .col(string(Documents::State))
                    .col(text(Documents::Body))
                    .col(timestamp_with_time_zone(Documents::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_documents_kind_id")
                    .table(Documents::Table)
                    .col(Documents::Kind)
                    .col(Documents::Id)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Documents::Table).to_owned()).await
    }
}

//! Setup previews, kept for a bounded time (expired rows are pruned on the next insert).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SetupPreviews {
    Table,
    Id,
    CreatedAt,
    ExpiresAt,
    PreviewJson,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SetupPreviews::Table)
                    .if_not_exists()
                    .col(string(SetupPreviews::Id).primary_key())
                    .col(timestamp_with_time_zone(SetupPreviews::CreatedAt))
                    .col(timestamp_with_time_zone(SetupPreviews::ExpiresAt))
                    .col(text(SetupPreviews::PreviewJson))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_setup_previews_expires_at")
                    .table(SetupPreviews::Table)
                    .col(SetupPreviews::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SetupPreviews::Table).to_owned()).await
    }
}

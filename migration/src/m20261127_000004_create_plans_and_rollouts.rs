//! Patch plans and rollouts.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PatchPlans {
    Table,
    Id,
    Runtime,
    Kind,
    BaseHash,
    CreatedAt,
    PlanJson,
}

#[derive(DeriveIden)]
enum Rollouts {
    Table,
    Id,
    Runtime,
    PlanId,
    State,
    CreatedAt,
    UpdatedAt,
    RolloutJson,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PatchPlans::Table)
                    .if_not_exists()
                    .col(string(PatchPlans::Id).primary_key())
                    .col(string(PatchPlans::Runtime))
                    .col(string(PatchPlans::Kind))
                    .col(string(PatchPlans::BaseHash))
                    .col(timestamp_with_time_zone(PatchPlans::CreatedAt))
                    .col(text(PatchPlans::PlanJson))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Rollouts::Table)
                    .if_not_exists()
                    .col(string(Rollouts::Id).primary_key())
                    .col(string(Rollouts::Runtime))
                    .col(string(Rollouts::PlanId))
                    .col(string(Rollouts::State))
                    .col(timestamp_with_time_zone(Rollouts::CreatedAt))
                    .col(timestamp_with_time_zone(Rollouts::UpdatedAt))
                    .col(text(Rollouts::RolloutJson))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_rollouts_runtime_state")
                    .table(Rollouts::Table)
                    .col(Rollouts::Runtime)
                    .col(Rollouts::State)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Rollouts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(PatchPlans::Table).to_owned()).await
    }
}

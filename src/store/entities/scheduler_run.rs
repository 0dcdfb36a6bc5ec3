//! `scheduler_runs`: reconcile cycles, unique by cycle id.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scheduler_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub cycle_id: String,
    pub runtime: String,
    pub started_at: ChronoDateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub run_json: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

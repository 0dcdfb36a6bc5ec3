//! `reconcile_schedules`: the periodic reconcile schedule per runtime.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reconcile_schedules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub runtime: String,
    pub generation: i64,
    #[sea_orm(column_type = "Text")]
    pub schedule_json: String,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

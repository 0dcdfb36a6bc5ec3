//! `watchdog_observations`: tracked watchdog observations per runtime.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "watchdog_observations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub runtime: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub observation_key: String,
    pub open: bool,
    pub updated_at: ChronoDateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub observation_json: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! `observations`: one row per distinct observation of a runtime.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "observations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub runtime: String,
    pub observed_at: ChronoDateTimeUtc,
    pub last_seen_at: ChronoDateTimeUtc,
    pub seen_count: i64,
    pub config_hash: String,
    pub revision: String,
    pub config_valid: bool,
    pub finding_count: i32,
    #[sea_orm(column_type = "Text")]
    pub inventory_json: String,
    #[sea_orm(column_type = "Text")]
    pub topology_json: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

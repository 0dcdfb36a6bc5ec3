//! `desired_topologies`: one row per desired revision of a runtime.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "desired_topologies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub runtime: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub generation: i64,
    pub etag: String,
    pub revision: String,
    pub author: String,
    pub created_at: ChronoDateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub topology_json: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! `patch_plans`: computed plans, addressable by id.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "patch_plans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub runtime: String,
    pub kind: String,
    pub base_hash: String,
    pub created_at: ChronoDateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub plan_json: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

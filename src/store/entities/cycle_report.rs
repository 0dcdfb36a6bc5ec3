//! `cycle_reports`: control agents' fenced reports, one per cycle id.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cycle_reports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub cycle_id: String,
    pub lease_name: String,
    pub holder: String,
    pub fencing_token: i64,
    pub outcome: String,
    #[sea_orm(column_type = "Text")]
    pub summary: String,
    pub reported_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

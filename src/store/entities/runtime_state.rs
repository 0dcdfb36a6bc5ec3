//! `runtime_states`: one row per runtime, the coordination point of the replicas that share
//! it: locked by every observation that feeds the drift tracker and by every config write.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "runtime_states")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub runtime: String,
    /// Bumped whenever the tracker's items change.
    pub tracker_version: i64,
    /// When an observation last fed the tracker.
    pub tracker_fed_at: Option<ChronoDateTimeUtc>,
    /// JSON array of the config writes of the last minute (the write limiter's window).
    #[sea_orm(column_type = "Text")]
    pub recent_writes: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

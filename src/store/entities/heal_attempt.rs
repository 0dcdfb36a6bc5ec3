//! `heal_attempts`: one row per (runtime, desired generation, config hash) HEAL rolled out
//! for: the guard "once per generation and hash" is this primary key.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "heal_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub runtime: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub desired_generation: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub config_hash: String,
    pub cycle_id: String,
    pub attempted_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

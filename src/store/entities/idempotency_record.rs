//! `idempotency_records`: the first response of each mutating request id.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    pub fingerprint: String,
    #[sea_orm(column_type = "Text")]
    pub response_json: String,
    pub created_at: ChronoDateTimeUtc,
    /// False while the call that claimed the id is still running (`response_json` empty).
    pub completed: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

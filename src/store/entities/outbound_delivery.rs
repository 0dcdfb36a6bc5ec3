//! `outbound_deliveries`: one event's delivery to one sink.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbound_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub sink: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_seq: i64,
    pub state: String,
    pub attempts: i32,
    #[sea_orm(column_type = "Text")]
    pub last_error: String,
    pub next_attempt_at: ChronoDateTimeUtc,
    pub delivered_at: Option<ChronoDateTimeUtc>,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The event delivered. No foreign key in the schema: retention deletes a delivery and the
    /// event it alone kept in one transaction, and readers join the two in one statement.
    #[sea_orm(
        belongs_to = "super::outbound_event::Entity",
        from = "Column::EventSeq",
        to = "super::outbound_event::Column::Seq"
    )]
    Event,
}

impl Related<super::outbound_event::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Event.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

//! Server secrets: created once by whichever replica needs one first, then shared.

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait};

use super::entities::server_key;
use super::{Store, StoreError};

impl Store {
    /// Returns the secret named `name`, creating it from `fresh` when none exists yet.
    /// Concurrent first calls on several replicas agree on one secret (insert-or-ignore).
    pub async fn server_secret(&self, name: &str, fresh: String) -> Result<String, StoreError> {
        let row = server_key::ActiveModel {
            name: Set(name.to_owned()),
            secret: Set(fresh),
            created_at: Set(Utc::now()),
        };
        server_key::Entity::insert(row)
            .on_conflict(OnConflict::column(server_key::Column::Name).do_nothing().to_owned())
            .exec_without_returning(&self.db)
            .await?;
        let stored = server_key::Entity::find_by_id(name.to_owned()).one(&self.db).await?;
        stored.map(|row| row.secret).ok_or_else(|| StoreError::Corrupt(format!("server key {name} vanished")))
    }
}

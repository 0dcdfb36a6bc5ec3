//! Stored setup previews: written once, read by id until they expire.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use super::entities::setup_preview;
use super::{Store, StoreError};

impl Store {
    /// Stores a preview of `runtime` (its JSON) and prunes expired ones.
    pub async fn put_setup_preview(
        &self,
        runtime: &str,
        id: &str,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        preview: &impl serde::Serialize,
    ) -> Result<(), StoreError> {
        let preview_json = serde_json::to_string(preview)
            .map_err(|e| StoreError::Corrupt(format!("setup preview {id}: {e}")))?;
        setup_preview::Entity::delete_many()
            .filter(setup_preview::Column::ExpiresAt.lte(created_at))
            .exec(&self.db)
            .await?;
        setup_preview::ActiveModel {
            id: Set(id.to_owned()),
            runtime: Set(runtime.to_owned()),
            created_at: Set(created_at),
            expires_at: Set(expires_at),
            preview_json: Set(preview_json),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    /// Returns a preview of `runtime`'s JSON unless it expired by `now`.
    pub async fn setup_preview<T: serde::de::DeserializeOwned>(
        &self,
        runtime: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<T>, StoreError> {
        let row = setup_preview::Entity::find_by_id(id.to_owned())
            .filter(setup_preview::Column::Runtime.eq(runtime))
            .one(&self.db)
            .await?;
        row.filter(|row| row.expires_at > now)
            .map(|row| {
                serde_json::from_str(&row.preview_json)
                    .map_err(|e| StoreError::Corrupt(format!("setup preview {id}: {e}")))
            })
            .transpose()
    }
}

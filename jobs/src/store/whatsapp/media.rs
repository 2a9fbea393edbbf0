//! Where a message's media are kept once copied: the `location` of each entry of the
//! `whatsapp_message.media` JSON list (see [`super::messages::Media`]).
//!
//! The inbound handler copies each Twilio media file into the object store, then records the
//! whole list at once with [`set_media_locations`]. The write is conditional on the list's
//! length, so it can only fill in locations of the attachments the message already has, and a
//! repeated run (the job is at-least-once) writes the same locations again.

use super::messages::Media;
use crate::store::error::StoreError;
use crate::store::{Db, now_ms};

/// Records `media` (the message's list with locations filled in) on message `id`. `NotFound`
/// for an unknown id; `Invalid` when the list does not match the stored one entry for entry
/// (same URLs, same order).
pub async fn set_media_locations(db: &Db, id: &str, media: &[Media]) -> Result<(), StoreError> {
    let stored = super::messages::get_message(db, id)
        .await?
        .ok_or(StoreError::NotFound)?;
    let same = stored.media.len() == media.len()
        && stored.media.iter().zip(media).all(|(a, b)| a.url == b.url);
    if !same {
        return Err(StoreError::Invalid(format!(
            "message {id}: the media list does not match the stored one"
        )));
    }
    let json = serde_json::to_string(media)
        .map_err(|e| StoreError::Invalid(format!("media list does not serialise: {e}")))?;
    sqlx::query("UPDATE whatsapp_message SET media = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(json)
        .bind(now_ms())
        .execute(db.pool())
        .await?;
    Ok(())
}

//! Recordings past `RECORDING_RETENTION_DAYS`: the rows `clock.cleanup` deletes the audio of.
//!
//! Only stored copies are considered (`status = 'stored'` with a `media_location`). Once the
//! cleanup task has deleted the file, [`mark_recording_expired`] turns the row into
//! `status = 'expired'` without a location (the row, its transcript and the call's timeline stay;
//! only the audio goes) and appends `recording.expired` to the call once. A row that is no longer
//! `stored` is not touched, so a re-run after a crash between the delete and the mark deletes the
//! (already missing) file again and marks the row then.

use chrono::{DateTime, Utc};

use super::error::StoreError;
use super::{Db, from_ms, returned, to_ms};

/// A stored recording old enough to expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredRecording {
    /// Twilio RecordingSid.
    pub recording_sid: String,
    /// The call it belongs to.
    pub call_sid: String,
    /// Object-store key of the copy.
    pub media_location: String,
    /// When it was stored.
    pub stored_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ExpiredRow {
    recording_sid: String,
    call_sid: String,
    media_location: String,
    stored_at: i64,
}

/// Stored recordings whose copy was stored before `before`, oldest first, at most `limit`.
pub async fn recordings_stored_before(
    db: &Db,
    before: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<ExpiredRecording>, StoreError> {
    let rows = sqlx::query_as::<_, ExpiredRow>(
        "SELECT recording_sid, call_sid, media_location, stored_at FROM recording \
         WHERE status = 'stored' AND media_location IS NOT NULL \
           AND stored_at IS NOT NULL AND stored_at < $1 \
         ORDER BY stored_at, id LIMIT $2",
    )
    .bind(to_ms(before))
    .bind(i64::from(limit.max(1)))
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ExpiredRecording {
            recording_sid: r.recording_sid,
            call_sid: r.call_sid,
            media_location: r.media_location,
            stored_at: from_ms(r.stored_at),
        })
        .collect())
}

/// Marks a stored recording whose audio was deleted: `expired`, no location, and a
/// `recording.expired` event on its call (once). False when the row was not `stored`.
pub async fn mark_recording_expired(
    db: &Db,
    recording_sid: &str,
    retention_days: u32,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let at = to_ms(now);
    let reason = format!("audio deleted after RECORDING_RETENTION_DAYS={retention_days}");
    let call_sid: Vec<String> = sqlx::query_scalar(
        "UPDATE recording SET status = 'expired', media_location = NULL, error = $2, \
                updated_at = $3 \
         WHERE recording_sid = $1 AND status = 'stored' RETURNING call_sid",
    )
    .bind(recording_sid)
    .bind(reason.as_str())
    .bind(at)
    .fetch_all(db.pool())
    .await?;
    let Some(call_sid) = returned(call_sid) else {
        return Ok(false);
    };
    let detail = serde_json::json!({
        "recording_sid": recording_sid,
        "retention_days": retention_days,
    })
    .to_string();
    sqlx::query(
        "INSERT INTO call_event (call_sid, type, status, detail, at, dedupe_key) \
         VALUES ($1, 'recording.expired', NULL, $2, $3, $4) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(call_sid.as_str())
    .bind(detail)
    .bind(at)
    .bind(format!("recording.expired:{recording_sid}"))
    .execute(db.pool())
    .await?;
    Ok(true)
}

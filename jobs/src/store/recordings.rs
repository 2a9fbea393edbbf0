//! Recordings and transcripts of calls: the read side.
//!
//! The voice pipeline (`recording.process`) owns the writes: a `recording` row is unique by
//! RecordingSid (`pending` → `stored` | `failed`), a `transcript` row is unique by RecordingSid,
//! and a transcript is only ever real text from a transcriber — never an error message stored
//! as if it were one (origin defect 3). This module gives [`super::calls::get_call`] and the
//! operator API the shapes to read.
//!
//! Twilio's `RecordingUrl` (`source_url`) is kept in the row but never serialised: it is a
//! credentialed Twilio URL and the operator API serves the stored copy instead.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::StoreError;
use super::{Db, from_ms};

/// A recording of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recording {
    /// Twilio RecordingSid.
    pub recording_sid: String,
    /// The call it belongs to.
    pub call_sid: String,
    /// `pending`, `stored` or `failed`.
    pub status: String,
    /// Twilio's RecordingUrl (not serialised).
    #[serde(skip_serializing)]
    pub source_url: Option<String>,
    /// Object-store key of the stored copy.
    pub media_location: Option<String>,
    /// Content-Type of the stored copy.
    pub content_type: Option<String>,
    /// Size of the stored copy.
    pub size_bytes: Option<i64>,
    /// Length in seconds.
    pub duration_s: Option<i64>,
    /// `pending`, `done`, `not_transcribed` or `failed`.
    pub transcription_status: String,
    /// Why storing or transcribing failed, when it did.
    pub error: Option<String>,
    /// When moked first heard of it.
    pub created_at: DateTime<Utc>,
    /// When the copy became durable.
    pub stored_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct RecordingRow {
    recording_sid: String,
    call_sid: String,
    status: String,
    source_url: Option<String>,
    media_location: Option<String>,
    content_type: Option<String>,
    size_bytes: Option<i64>,
    duration_s: Option<i64>,
    transcription_status: String,
    error: Option<String>,
    created_at: i64,
    stored_at: Option<i64>,
    updated_at: i64,
}

impl From<RecordingRow> for Recording {
    fn from(r: RecordingRow) -> Self {
        Recording {
            recording_sid: r.recording_sid,
            call_sid: r.call_sid,
            status: r.status,
            source_url: r.source_url,
            media_location: r.media_location,
            content_type: r.content_type,
            size_bytes: r.size_bytes,
            duration_s: r.duration_s,
            transcription_status: r.transcription_status,
            error: r.error,
            created_at: from_ms(r.created_at),
            stored_at: r.stored_at.map(from_ms),
            updated_at: from_ms(r.updated_at),
        }
    }
}

const RECORDING_COLUMNS: &str = "recording_sid, call_sid, status, source_url, media_location, \
     content_type, size_bytes, duration_s, transcription_status, error, created_at, stored_at, updated_at";

/// A transcript of one recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transcript {
    /// The recording transcribed.
    pub recording_sid: String,
    /// The call.
    pub call_sid: String,
    /// The text.
    pub text: String,
    /// Language (e.g. `he`).
    pub language: String,
    /// Transcriber (e.g. `openai`).
    pub provider: String,
    /// Model, when the provider names one.
    pub model: Option<String>,
    /// Audio length transcribed.
    pub duration_s: Option<i64>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TranscriptRow {
    recording_sid: String,
    call_sid: String,
    text: String,
    language: String,
    provider: String,
    model: Option<String>,
    duration_s: Option<i64>,
    created_at: i64,
}

impl From<TranscriptRow> for Transcript {
    fn from(r: TranscriptRow) -> Self {
        Transcript {
            recording_sid: r.recording_sid,
            call_sid: r.call_sid,
            text: r.text,
            language: r.language,
            provider: r.provider,
            model: r.model,
            duration_s: r.duration_s,
            created_at: from_ms(r.created_at),
        }
    }
}

const TRANSCRIPT_COLUMNS: &str =
    "recording_sid, call_sid, text, language, provider, model, duration_s, created_at";

/// The recording with this RecordingSid.
pub async fn get_recording(db: &Db, recording_sid: &str) -> Result<Option<Recording>, StoreError> {
    Ok(
        sqlx::query_as::<_, RecordingRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORDING_COLUMNS} FROM recording WHERE recording_sid = $1"
        )))
        .bind(recording_sid)
        .fetch_optional(db.pool())
        .await?
        .map(Recording::from),
    )
}

/// The recordings of a call, oldest first.
pub async fn recordings_for_call(db: &Db, call_sid: &str) -> Result<Vec<Recording>, StoreError> {
    Ok(
        sqlx::query_as::<_, RecordingRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORDING_COLUMNS} FROM recording WHERE call_sid = $1 ORDER BY created_at, id"
        )))
        .bind(call_sid)
        .fetch_all(db.pool())
        .await?
        .into_iter()
        .map(Recording::from)
        .collect(),
    )
}

/// The transcripts of a call, oldest first.
pub async fn transcripts_for_call(db: &Db, call_sid: &str) -> Result<Vec<Transcript>, StoreError> {
    Ok(sqlx::query_as::<_, TranscriptRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {TRANSCRIPT_COLUMNS} FROM transcript WHERE call_sid = $1 ORDER BY created_at, id"
    )))
    .bind(call_sid)
    .fetch_all(db.pool())
    .await?
    .into_iter()
    .map(Transcript::from)
    .collect())
}

//! Recordings and transcripts of calls: the `recording` and `transcript` rows, read, written
//! stage by stage by the voice pipeline (`recording.process`) and expired by `clock.cleanup`.
//!
//! **Reading.** A `recording` row is unique by RecordingSid (`pending` → `stored` | `failed`,
//! later `expired`), a `transcript` row is unique by RecordingSid, and a transcript is only ever
//! real text from a transcriber — never an error message stored as if it were one (origin
//! defect 3). [`get_recording`], [`recordings_for_call`] and [`transcripts_for_call`] give
//! [`super::calls::get_call`] and the operator API the shapes to read. Twilio's `RecordingUrl`
//! (`source_url`) is kept in the row but never serialised: it is a credentialed Twilio URL and
//! the operator API serves the stored copy instead.
//!
//! **Writing: one download and one transcription per RecordingSid.** The queue delivers at least
//! once and an enqueue may slip past the dedupe key (a second webhook after the key expired, an
//! operator retry, two workers racing on a recovered job), so each stage is *claimed* on the
//! recording row before it starts, by one conditional `UPDATE … WHERE` that only one worker can
//! win:
//!
//! ```text
//! status:               pending ──claim──▶ downloading ──stored──▶ stored
//!                          ▲                  │  │
//!                          └── transient ─────┘  └── permanent ──▶ failed (an operator retry re-claims it)
//! transcription_status: pending ──claim──▶ running ──▶ done | not_transcribed | failed | (pending on transient)
//! ```
//!
//! A claim is stamped in `updated_at`; a claim older than the caller's `stale_before` (a worker
//! died mid-download or mid-transcription) may be taken over. Only one stage is in flight per
//! recording at a time (transcription starts after `stored`), so the one timestamp serves both.
//! A job that loses a claim sees the row and either skips the stage (already done) or retries
//! later (someone else is on it).
//!
//! **Events.** Each step is appended to `call_event` with a dedupe key naming the recording
//! (`recording.stored:{RecordingSid}`, …), so a re-run never doubles the timeline. Event details
//! hold ids, sizes and names — never a transcript, a phone number or a Twilio URL.
//!
//! **Expiry.** Recordings past `RECORDING_RETENTION_DAYS` are the rows `clock.cleanup` deletes
//! the audio of ([`recordings_stored_before`]). Only stored copies are considered
//! (`status = 'stored'` with a `media_location`). Once the cleanup task has deleted the file,
//! [`mark_recording_expired`] turns the row into `status = 'expired'` without a location (the
//! row, its transcript and the call's timeline stay; only the audio goes) and appends
//! `recording.expired` to the call once. A row that is no longer `stored` is not touched, so a
//! re-run after a crash between the delete and the mark deletes the (already missing) file
//! again and marks the row then.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::StoreError;
use super::{Db, from_ms, returned, to_ms};

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

/// A transcript of one recording. Serialises as the operator API shows a call's transcript
/// (`TranscriptView`): text, language, provider and model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TranscriptView))]
#[serde(deny_unknown_fields)]
pub struct Transcript {
    /// The recording transcribed.
    #[serde(skip_serializing)]
    pub recording_sid: String,
    /// The call.
    #[serde(skip_serializing)]
    pub call_sid: String,
    /// The text (Hebrew, typically).
    pub text: String,
    /// Language (e.g. `he`).
    pub language: String,
    /// Transcriber (e.g. `openai`).
    pub provider: String,
    /// Model, when the provider names one.
    pub model: Option<String>,
    /// Audio length transcribed.
    #[serde(skip_serializing)]
    pub duration_s: Option<i64>,
    /// When it was stored.
    #[serde(skip_serializing)]
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

// The voice pipeline's writes, stage by stage (see the module doc).

/// A recording the pipeline was told about.
#[derive(Debug, Clone)]
pub struct NewRecording<'a> {
    /// Twilio RecordingSid.
    pub recording_sid: &'a str,
    /// Twilio CallSid.
    pub call_sid: &'a str,
    /// Twilio's RecordingUrl (kept, never logged or served).
    pub source_url: &'a str,
    /// RecordingDuration as Twilio sent it.
    pub duration_s: Option<i64>,
    /// Now, in ms.
    pub at: i64,
}

/// Creates the recording row (`pending`) unless it exists, and returns the row as it is now.
pub async fn ensure_recording(db: &Db, new: &NewRecording<'_>) -> Result<Recording, StoreError> {
    sqlx::query(
        "INSERT INTO recording (recording_sid, call_sid, status, source_url, duration_s, \
                                transcription_status, created_at, updated_at) \
         VALUES ($1, $2, 'pending', $3, $4, 'pending', $5, $5) \
         ON CONFLICT (recording_sid) DO NOTHING",
    )
    .bind(new.recording_sid)
    .bind(new.call_sid)
    .bind(new.source_url)
    .bind(new.duration_s)
    .bind(new.at)
    .execute(db.pool())
    .await?;
    get_recording(db, new.recording_sid)
        .await?
        .ok_or(StoreError::NotFound)
}

/// Claims the download of a recording: `pending`/`failed` (or a `downloading` claim stamped
/// before `stale_before`) → `downloading`. True when this caller won the claim.
pub async fn claim_download(
    db: &Db,
    recording_sid: &str,
    now: i64,
    stale_before: i64,
) -> Result<bool, StoreError> {
    let won = sqlx::query(
        "UPDATE recording SET status = 'downloading', updated_at = $2 \
         WHERE recording_sid = $1 \
           AND (status IN ('pending', 'failed') OR (status = 'downloading' AND updated_at < $3))",
    )
    .bind(recording_sid)
    .bind(now)
    .bind(stale_before)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(won > 0)
}

/// A verified copy in the object store.
#[derive(Debug, Clone)]
pub struct StoredCopy<'a> {
    /// Object-store key.
    pub location: &'a str,
    /// Content-Type Twilio sent.
    pub content_type: &'a str,
    /// Bytes stored (verified).
    pub size_bytes: i64,
    /// Audio length in seconds, when known.
    pub duration_s: Option<i64>,
    /// Now, in ms.
    pub at: i64,
}

/// Marks a claimed download `stored` with its location, size and duration; clears the error.
/// False when the claim was lost in the meantime (the row is not `downloading`).
pub async fn mark_stored(
    db: &Db,
    recording_sid: &str,
    copy: &StoredCopy<'_>,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE recording SET status = 'stored', media_location = $2, content_type = $3, \
                size_bytes = $4, duration_s = COALESCE($5, duration_s), error = NULL, \
                stored_at = $6, updated_at = $6 \
         WHERE recording_sid = $1 AND status = 'downloading'",
    )
    .bind(recording_sid)
    .bind(copy.location)
    .bind(copy.content_type)
    .bind(copy.size_bytes)
    .bind(copy.duration_s)
    .bind(copy.at)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// Gives a download claim back after a failure: `pending` (will be retried) or `failed` (given
/// up), with the reason.
pub async fn release_download(
    db: &Db,
    recording_sid: &str,
    error: &str,
    given_up: bool,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE recording SET status = $2, error = $3, updated_at = $4 \
         WHERE recording_sid = $1 AND status = 'downloading'",
    )
    .bind(recording_sid)
    .bind(if given_up { "failed" } else { "pending" })
    .bind(error)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Claims the transcription of a stored recording: `pending`/`failed` (and `not_transcribed`
/// when `retranscribe`, i.e. a provider is configured now) or a `running` claim stamped before
/// `stale_before` → `running`. True when this caller won.
pub async fn claim_transcription(
    db: &Db,
    recording_sid: &str,
    retranscribe: bool,
    now: i64,
    stale_before: i64,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE recording SET transcription_status = 'running', updated_at = $2 \
         WHERE recording_sid = $1 AND status = 'stored' \
           AND (transcription_status IN ('pending', 'failed') \
                OR (transcription_status = 'not_transcribed' AND $4 = 1) \
                OR (transcription_status = 'running' AND updated_at < $3))",
    )
    .bind(recording_sid)
    .bind(now)
    .bind(stale_before)
    .bind(i64::from(retranscribe))
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// A transcript from a real transcriber.
#[derive(Debug, Clone)]
pub struct NewTranscript<'a> {
    /// The recording.
    pub recording_sid: &'a str,
    /// Its call.
    pub call_sid: &'a str,
    /// The text (may be empty for silence; never an error message).
    pub text: &'a str,
    /// Language code (`he`).
    pub language: &'a str,
    /// `openai` or `whisper`.
    pub provider: &'a str,
    /// Model, when known.
    pub model: Option<&'a str>,
    /// Audio length transcribed, in seconds.
    pub duration_s: Option<i64>,
    /// Now, in ms.
    pub at: i64,
}

/// Stores the transcript (once per recording) and marks the recording `done`. True when this
/// call inserted it.
pub async fn save_transcript(db: &Db, t: &NewTranscript<'_>) -> Result<bool, StoreError> {
    let mut tx = db.write().await?;
    let inserted = sqlx::query(
        "INSERT INTO transcript (recording_sid, call_sid, text, language, provider, model, \
                                 duration_s, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (recording_sid) DO NOTHING",
    )
    .bind(t.recording_sid)
    .bind(t.call_sid)
    .bind(t.text)
    .bind(t.language)
    .bind(t.provider)
    .bind(t.model)
    .bind(t.duration_s)
    .bind(t.at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE recording SET transcription_status = 'done', error = NULL, updated_at = $2 \
         WHERE recording_sid = $1",
    )
    .bind(t.recording_sid)
    .bind(t.at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(inserted > 0)
}

/// Ends a transcription claim without a transcript: `not_transcribed` (no provider), `failed`
/// (given up) or back to `pending` (will be retried), with the reason when there is one.
pub async fn release_transcription(
    db: &Db,
    recording_sid: &str,
    status: TranscriptionEnd,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE recording SET transcription_status = $2, error = $3, updated_at = $4 \
         WHERE recording_sid = $1 AND transcription_status = 'running'",
    )
    .bind(recording_sid)
    .bind(status.as_str())
    .bind(error)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// How a transcription claim ends without a transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptionEnd {
    /// No transcriber is configured (`TRANSCRIBE_PROVIDER=none`).
    NotTranscribed,
    /// Will be tried again.
    Pending,
    /// Given up.
    Failed,
}

impl TranscriptionEnd {
    /// The stored value.
    pub const fn as_str(self) -> &'static str {
        match self {
            TranscriptionEnd::NotTranscribed => "not_transcribed",
            TranscriptionEnd::Pending => "pending",
            TranscriptionEnd::Failed => "failed",
        }
    }
}

/// An event to append to a call's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct NewCallEvent<'a> {
    /// The call.
    pub call_sid: &'a str,
    /// `recording.stored`, `transcript.stored`, `recording.failed`, …
    pub kind: &'a str,
    /// Extra facts as JSON text (ids, sizes, names; never text, numbers or URLs).
    pub detail: Option<&'a str>,
    /// When it happened, in ms.
    pub at: i64,
    /// Makes a re-run idempotent (`{kind}:{RecordingSid}`).
    pub dedupe_key: &'a str,
}

/// Appends an event to a call's timeline once per dedupe key; true when it was new.
pub async fn append_call_event(db: &Db, e: &NewCallEvent<'_>) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "INSERT INTO call_event (call_sid, type, status, detail, at, dedupe_key) \
         VALUES ($1, $2, NULL, $3, $4, $5) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(e.call_sid)
    .bind(e.kind)
    .bind(e.detail)
    .bind(e.at)
    .bind(e.dedupe_key)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(n > 0)
}

// Expiry (`RECORDING_RETENTION_DAYS`).

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

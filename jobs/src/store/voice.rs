//! Recordings and transcripts: the write side, owned by the voice pipeline (`recording.process`),
//! and the call events it appends. The read side is [`super::recordings`].
//!
//! **One download and one transcription per RecordingSid.** The queue delivers at least once and
//! an enqueue may slip past the dedupe key (a second webhook after the key expired, an operator
//! retry, two workers racing on a recovered job), so each stage is *claimed* on the recording
//! row before it starts, by one conditional `UPDATE … WHERE` that only one worker can win:
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

use serde::Serialize;

use super::Db;
use super::error::StoreError;
use super::recordings::{Recording, get_recording};

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

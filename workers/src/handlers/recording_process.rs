//! `recording.process`: download a caller's recording from Twilio, store it, transcribe it, and
//! put every step on the call's timeline.
//!
//! The job comes from `/webhook/handle_recording` (the `<Record action>`) or
//! `/webhook/recording_status` (`RecordingStatus=completed`), one per RecordingSid (dedupe key
//! `recording:{RecordingSid}`). [`run`] is the pipeline, one step per file beside this one; the
//! download and the transcription are stages claimed on the recording row, so duplicate jobs do
//! each once (see [`moked_jobs::store::recordings`]):
//!
//! 1. **Download** ([`download`], skipped once the row is `stored`): `{RecordingUrl}.wav` (or
//!    `.mp3`, `RECORDING_FORMAT`) with Basic auth, from Twilio's API host only; a failed request
//!    is classified (the table below) and the body is streamed chunk by chunk into the upload.
//! 2. **Store** ([`store`]): the upload writes the object store (`RECORDINGS_STORE`, key
//!    `recordings/{business_id}/{yyyy}/{mm}/{RecordingSid}.wav`) and a temporary file for the
//!    transcriber, and checks the byte count before the row says `stored`. Twilio's copy is then
//!    deleted when `DELETE_TWILIO_RECORDING_AFTER_STORE=true` (before transcribing, so a failed
//!    transcription never keeps Twilio's copy; a failed delete is reported at the end of the
//!    job, after transcription).
//! 3. **Transcribe** ([`transcribe`], skipped once `done`): with the configured
//!    [`Transcriber`]; `none` marks the recording `not_transcribed`.
//! 4. **Notify** ([`notify`]): when `NOTIFY_WHATSAPP_TO` is set, one WhatsApp note per recording
//!    (the caller's number and the transcript) through the WhatsApp send API.
//!
//! **Failures.**
//!
//! | what | job |
//! |---|---|
//! | media 404 less than 10 minutes after the webhook (`received_at`) | transient (Twilio publishes media a little after the callback) |
//! | media 404 later | permanent: "still not found … 10 minutes after the webhook" |
//! | 401 / 403 | permanent: "Twilio refused our credentials … check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" |
//! | 429, 5xx, timeouts, a body cut short | transient (`Retry-After` honoured) |
//! | call not yet linked to a business (call.started not processed yet) | transient for 10 minutes, then the default business |
//! | transcriber `Transient` / `Permanent` | transient (`Retry-After` honoured) / permanent |
//!
//! A permanent failure, or a transient one on the last attempt of the schedule, marks the stage
//! `failed` on the row and appends `recording.failed` or `transcript.failed` to the call. Events
//! appended: `recording.stored`, `recording.deleted_at_twilio`, `transcript.stored`,
//! `recording.not_transcribed`, `recording.failed`, `transcript.failed`, `notify.queued`,
//! `notify.failed`. Logs and event details carry ids, sizes and durations only — never the
//! RecordingUrl, a phone number or the text.
//!
//! [`Transcriber`]: crate::clients::transcriber::Transcriber

pub mod download;
pub mod notify;
pub mod store;
pub mod transcribe;

use std::time::Duration;

use chrono::{DateTime, Utc};
use moked_jobs::kinds::RecordingProcess;
use moked_jobs::retry::JobError;
use moked_jobs::runner::Claim;
use moked_jobs::store::now_ms;
use moked_jobs::store::recordings::{self, NewCallEvent, NewRecording, Recording, get_recording};

use super::Ctx;

/// How long after the webhook a media 404 is still "not published yet" (and a call not yet
/// linked to a business is still waited for).
pub const NOT_FOUND_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Handles one job: the steps in order. On the claim's last attempt (the retry schedule allows
/// no further one) a transient failure marks the stage failed.
#[tracing::instrument(skip_all, fields(recording_sid = %job.recording_sid, call_sid = %job.call_sid))]
pub async fn run(ctx: &Ctx, job: RecordingProcess, claim: &Claim) -> Result<(), JobError> {
    check_sid("RecordingSid", &job.recording_sid, "RE")?;
    check_sid("CallSid", &job.call_sid, "CA")?;
    let received = job.received_at;
    let row = recordings::ensure_recording(
        &ctx.db,
        &NewRecording {
            recording_sid: &job.recording_sid,
            call_sid: &job.call_sid,
            source_url: &job.recording_url,
            duration_s: job.duration_s,
            at: now_ms(),
        },
    )
    .await?;
    let (row, local) = if row.status == "stored" {
        (row, None)
    } else {
        match download::stage(ctx, &job, received, claim.is_last_attempt).await? {
            Some((row, local)) => (row, Some(local)),
            None => (stored_row(ctx, &job.recording_sid).await?, None),
        }
    };
    let deleted = store::delete_twilio_copy(ctx, &job).await;
    transcribe::stage(ctx, &job, &row, local, claim.is_last_attempt).await?;
    notify::notify_whatsapp(ctx, &job).await?;
    deleted
}

/// The row after another job stored it.
async fn stored_row(ctx: &Ctx, sid: &str) -> Result<Recording, JobError> {
    get_recording(&ctx.db, sid)
        .await?
        .filter(|r| r.status == "stored")
        .ok_or_else(|| JobError::Transient(format!("recording {sid} is not stored yet")))
}

/// Twilio sids are a two-letter prefix and hex; anything else is not from Twilio and must not
/// become part of an object-store key or a URL.
fn check_sid(name: &str, sid: &str, prefix: &str) -> Result<(), JobError> {
    let ok = sid.len() >= 4
        && sid.len() <= 64
        && sid.starts_with(prefix)
        && sid.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(JobError::Permanent(format!(
            "{name} `{}` is not a Twilio {prefix}… sid",
            sid.chars().take(64).collect::<String>()
        )))
    }
}

/// How long ago the webhook was received.
fn waited(since: DateTime<Utc>) -> Duration {
    (Utc::now() - since).to_std().unwrap_or_default()
}

/// Appends `kind` to the call's timeline once per recording.
async fn event(
    ctx: &Ctx,
    job: &RecordingProcess,
    kind: &str,
    detail: &str,
    at: i64,
) -> Result<(), JobError> {
    let key = format!("{kind}:{}", job.recording_sid);
    recordings::append_call_event(
        &ctx.db,
        &NewCallEvent {
            call_sid: &job.call_sid,
            kind,
            detail: Some(detail),
            at,
            dedupe_key: &key,
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RE: &str = "RE0123456789abcdef0123456789abcdef";

    #[test]
    fn sids_that_are_not_twilios_are_permanent_failures() {
        assert!(check_sid("RecordingSid", RE, "RE").is_ok());
        assert!(matches!(
            check_sid("RecordingSid", "RE../../x", "RE"),
            Err(JobError::Permanent(_))
        ));
        assert!(matches!(
            check_sid("CallSid", "XX1234", "CA"),
            Err(JobError::Permanent(_))
        ));
    }
}

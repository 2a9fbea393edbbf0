//! Step 3 of `recording.process`, **transcribe**: the stored recording to text, claimed on the
//! recording row so duplicate jobs transcribe once (skipped once `done`).
//!
//! With the configured [`Transcriber`] (`TRANSCRIBE_PROVIDER`); `none` marks the recording
//! `not_transcribed` (never a fake transcript). The audio is the local copy the download left,
//! or the stored copy read back (`spool` of [`super::store`]); too-large audio is split
//! ([`transcribe_audio`]). The transcript is saved once per recording and `transcript.stored`
//! appended; a permanent failure, or a transient one on the last attempt, marks the stage
//! `failed` and appends `transcript.failed`. The transcription's audio seconds and duration are
//! counted on `/metrics`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use moked_jobs::kinds::RecordingProcess;
use moked_jobs::retry::JobError;
use moked_jobs::store::now_ms;
use moked_jobs::store::recordings::{
    self, NewTranscript, Recording, TranscriptionEnd, get_recording,
};
use serde_json::json;
use tempfile::NamedTempFile;

use super::store::spool;
use super::{Ctx, event};
use crate::clients::transcriber::{Audio, TranscribeError, Transcriber, transcribe_audio};

/// A transcription claim older than this belongs to a dead worker and may be taken over.
pub const TRANSCRIBE_STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// Claims and runs the transcription.
pub(super) async fn stage(
    ctx: &Ctx,
    job: &RecordingProcess,
    row: &Recording,
    local: Option<NamedTempFile>,
    last_attempt: bool,
) -> Result<(), JobError> {
    let sid = job.recording_sid.as_str();
    let t: &dyn Transcriber = ctx.transcriber.as_ref();
    let now = now_ms();
    let stale = now - TRANSCRIBE_STALE_AFTER.as_millis() as i64;
    if !t.enabled() {
        if recordings::claim_transcription(&ctx.db, sid, false, now, stale).await? {
            recordings::release_transcription(
                &ctx.db,
                sid,
                TranscriptionEnd::NotTranscribed,
                None,
                now,
            )
            .await?;
            let detail = json!({"recording_sid": sid, "provider": t.provider()}).to_string();
            event(ctx, job, "recording.not_transcribed", &detail, now).await?;
            tracing::info!("no transcriber configured; recording marked not transcribed");
        }
        return Ok(());
    }
    if !recordings::claim_transcription(&ctx.db, sid, true, now, stale).await? {
        let current = get_recording(&ctx.db, sid).await?;
        return match current.as_ref().map(|r| r.transcription_status.as_str()) {
            Some("done") => Ok(()),
            _ => Err(JobError::Transient(format!(
                "recording {sid} is being transcribed by another job; trying again later"
            ))),
        };
    }
    let started = Instant::now();
    let result = async {
        let local = match local {
            Some(l) => l,
            None => spool(ctx, row).await?,
        };
        let ext = row
            .media_location
            .as_deref()
            .and_then(|l| l.rsplit('.').next())
            .unwrap_or("wav");
        let audio = Audio {
            path: local.path().to_owned(),
            file_name: format!("{sid}.{ext}"),
            content_type: row
                .content_type
                .clone()
                .unwrap_or_else(|| "audio/x-wav".into()),
        };
        let scratch: PathBuf = std::env::temp_dir();
        transcribe_audio(t, &audio, &scratch)
            .await
            .map_err(|e| transcribe_error(sid, e))
    }
    .await;
    match result {
        Ok(tr) => {
            let at = now_ms();
            recordings::save_transcript(
                &ctx.db,
                &NewTranscript {
                    recording_sid: sid,
                    call_sid: &job.call_sid,
                    text: &tr.text,
                    language: &tr.language,
                    provider: t.provider(),
                    model: tr.model.as_deref(),
                    duration_s: row.duration_s,
                    at,
                },
            )
            .await?;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            // Operator metrics (/metrics): seconds of audio transcribed and the time it took.
            metrics::counter!("moked_transcription_audio_seconds_total", "provider" => t.provider())
                .increment(u64::try_from(row.duration_s.unwrap_or(0)).unwrap_or(0));
            metrics::histogram!("moked_transcription_duration_seconds", "provider" => t.provider())
                .record(started.elapsed().as_secs_f64());
            let detail = json!({
                "recording_sid": sid,
                "provider": t.provider(),
                "model": tr.model,
                "language": tr.language,
                "chars": tr.text.chars().count(),
                "transcribe_ms": elapsed_ms,
            })
            .to_string();
            event(ctx, job, "transcript.stored", &detail, at).await?;
            tracing::info!(
                provider = t.provider(),
                chars = tr.text.chars().count(),
                transcribe_ms = elapsed_ms,
                "transcript stored"
            );
            Ok(())
        }
        Err(e) => {
            let given_up = matches!(e, JobError::Permanent(_)) || last_attempt;
            let end = if given_up {
                TranscriptionEnd::Failed
            } else {
                TranscriptionEnd::Pending
            };
            let msg = e.to_string();
            recordings::release_transcription(&ctx.db, sid, end, Some(&msg), now_ms()).await?;
            if given_up {
                let detail = json!({"recording_sid": sid, "provider": t.provider(), "error": msg})
                    .to_string();
                event(ctx, job, "transcript.failed", &detail, now_ms()).await?;
            }
            Err(e)
        }
    }
}

/// A transcriber's failure as the job's.
fn transcribe_error(sid: &str, e: TranscribeError) -> JobError {
    match e {
        TranscribeError::Transient {
            retry_after: Some(after),
            reason,
        } => JobError::RetryAfter {
            after,
            reason: format!("transcribing recording {sid}: {reason}"),
        },
        TranscribeError::Transient { reason, .. } => {
            JobError::Transient(format!("transcribing recording {sid}: {reason}"))
        }
        TranscribeError::TooLarge(reason) | TranscribeError::Permanent(reason) => {
            JobError::Permanent(format!("transcribing recording {sid}: {reason}"))
        }
    }
}

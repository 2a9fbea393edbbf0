//! `recording.process`: download a caller's recording from Twilio, store it, transcribe it, and
//! put every step on the call's timeline.
//!
//! The job comes from `/webhook/handle_recording` (the `<Record action>`) or
//! `/webhook/recording_status` (`RecordingStatus=completed`), one per RecordingSid (dedupe key
//! `recording:{RecordingSid}`). It runs three stages, each claimed on the recording row so
//! duplicate jobs do each stage once (see [`moked_jobs::store::voice`]):
//!
//! 1. **Download and store** (skipped once the row is `stored`). `{RecordingUrl}.wav` (or
//!    `.mp3`, `RECORDING_FORMAT`) is fetched with Basic auth through [`TwilioApi::get_media`].
//!    The RecordingUrl must be on Twilio's API host (`api.twilio.com`, `api.{region}.twilio.com`)
//!    or on `TWILIO_API_BASE`; its *path* is rebased onto `TWILIO_API_BASE` (so tests and a
//!    regional deployment point it elsewhere) and the client's credential guard still applies.
//!    The body is streamed chunk by chunk into the object store (`RECORDINGS_STORE`, key
//!    `recordings/{business_id}/{yyyy}/{mm}/{RecordingSid}.wav`, year and month of the webhook)
//!    and into a temporary file for the transcriber; at most one 5 MiB store part is buffered
//!    and one in flight. The byte count is checked against `Content-Length` and against the
//!    stored object's size before the row says `stored`.
//! 2. **Transcribe** (skipped once `done`): with the configured [`Transcriber`]; `none` marks
//!    the recording `not_transcribed`. Too-large audio is split ([`transcribe_audio`]).
//! 3. **Delete Twilio's copy** when `DELETE_TWILIO_RECORDING_AFTER_STORE=true`, right after the
//!    verified store (before transcribing, so a failed transcription never keeps Twilio's copy);
//!    a failed delete is reported at the end of the job, after transcription.
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
//! `recording.not_transcribed`, `recording.failed`, `transcript.failed`. Logs and event details
//! carry ids, sizes and durations only — never the RecordingUrl, a phone number or the text.
//!
//! **Follow-up.** When `NOTIFY_WHATSAPP_TO` is set, [`notify_whatsapp`] queues one WhatsApp note
//! per recording (the caller's number and the transcript) through the WhatsApp send API.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Utc};
use futures::StreamExt;
use moked_jobs::kinds::{self, RecordingProcess};
use moked_jobs::retry::JobError;
use moked_jobs::runner::Claim;
use moked_jobs::store::business::default_business;
use moked_jobs::store::calls::get_call_row;
use moked_jobs::store::now_ms;
use moked_jobs::store::recordings::{Recording, get_recording, transcripts_for_call};
use moked_jobs::store::voice::{
    self, NewCallEvent, NewRecording, NewTranscript, StoredCopy, TranscriptionEnd,
};
use object_store::{ObjectStoreExt, WriteMultipart};
use serde_json::json;
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt;

use super::Ctx;
use crate::clients::audio::{parse_wav_header, wav_seconds};
use crate::clients::transcriber::{Audio, TranscribeError, Transcriber, transcribe_audio};
use crate::clients::twilio::TwilioError;
use crate::config::RecordingFormat;

/// How long after the webhook a media 404 is still "not published yet".
pub const NOT_FOUND_WINDOW: Duration = Duration::from_secs(10 * 60);

/// A download claim older than this belongs to a dead worker and may be taken over.
pub const DOWNLOAD_STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// A transcription claim older than this belongs to a dead worker and may be taken over.
pub const TRANSCRIBE_STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// The object-store part size: S3's minimum, and the most audio held in memory at once.
pub const STORE_CHUNK_BYTES: usize = 5 * 1024 * 1024;

/// Recordings larger than this are refused (a runaway body, not a phone message).
pub const MAX_RECORDING_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Handles one job; on the claim's last attempt (the retry schedule allows no further one) a
/// transient failure marks the stage failed.
#[tracing::instrument(skip_all, fields(recording_sid = %job.recording_sid, call_sid = %job.call_sid))]
pub async fn run(ctx: &Ctx, job: RecordingProcess, claim: &Claim) -> Result<(), JobError> {
    check_sid("RecordingSid", &job.recording_sid, "RE")?;
    check_sid("CallSid", &job.call_sid, "CA")?;
    let received = kinds::received_at(&job.received_at);
    let row = voice::ensure_recording(
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
        match download_stage(ctx, &job, received, claim.is_last_attempt).await? {
            Some((row, local)) => (row, Some(local)),
            None => (stored_row(ctx, &job.recording_sid).await?, None),
        }
    };
    let deleted = delete_stage(ctx, &job).await;
    transcribe_stage(ctx, &job, &row, local, claim.is_last_attempt).await?;
    notify_whatsapp(ctx, &job).await?;
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

/// `{TWILIO_API_BASE}{path of RecordingUrl}.{ext}`, when the RecordingUrl is Twilio's (see the
/// module doc). The error never repeats the URL.
pub fn media_url(
    api_base: &str,
    recording_url: &str,
    recording_sid: &str,
    format: RecordingFormat,
) -> Result<String, String> {
    let url = url::Url::parse(recording_url).map_err(|_| "RecordingUrl is not a URL".to_owned())?;
    let base = url::Url::parse(api_base).map_err(|_| "TWILIO_API_BASE is not a URL".to_owned())?;
    let host = url.host_str().unwrap_or_default();
    let twilio = url.scheme() == "https"
        && (host == "api.twilio.com"
            || (host.starts_with("api.") && host.ends_with(".twilio.com")));
    let ours = url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default();
    if !(twilio || ours) {
        return Err(
            "RecordingUrl is not on Twilio's API host; refusing to send credentials".into(),
        );
    }
    let mut path = url.path().to_owned();
    for ext in [".wav", ".mp3", ".json"] {
        if let Some(stripped) = path.strip_suffix(ext) {
            path = stripped.to_owned();
        }
    }
    let mut segments = path.split('/').skip(1);
    let shape = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    );
    let well_formed = matches!(
        shape,
        (Some("2010-04-01"), Some("Accounts"), Some(ac), Some("Recordings"), Some(re), None)
            if ac.starts_with("AC") && re == recording_sid
    );
    if !well_formed {
        return Err(format!(
            "RecordingUrl is not …/2010-04-01/Accounts/AC…/Recordings/{recording_sid}"
        ));
    }
    Ok(format!(
        "{}{path}.{}",
        api_base.trim_end_matches('/'),
        format.extension()
    ))
}

/// The object-store key of a recording.
pub fn object_key(
    business_id: i64,
    at: DateTime<Utc>,
    sid: &str,
    format: RecordingFormat,
) -> String {
    format!(
        "recordings/{business_id}/{:04}/{:02}/{sid}.{}",
        at.year(),
        at.month(),
        format.extension()
    )
}

/// A download that reached the store.
struct Downloaded {
    key: String,
    content_type: String,
    size: u64,
    duration_s: Option<i64>,
    local: NamedTempFile,
}

/// Claims and runs the download; `None` when another job had already stored it.
async fn download_stage(
    ctx: &Ctx,
    job: &RecordingProcess,
    received: DateTime<Utc>,
    last_attempt: bool,
) -> Result<Option<(Recording, NamedTempFile)>, JobError> {
    let sid = job.recording_sid.as_str();
    let now = now_ms();
    let stale = now - DOWNLOAD_STALE_AFTER.as_millis() as i64;
    if !voice::claim_download(&ctx.db, sid, now, stale).await? {
        return match get_recording(&ctx.db, sid).await? {
            Some(r) if r.status == "stored" => Ok(None),
            _ => Err(JobError::Transient(format!(
                "recording {sid} is being downloaded by another job; trying again later"
            ))),
        };
    }
    let started = Instant::now();
    match download(ctx, job, received).await {
        Ok(d) => {
            let at = now_ms();
            let claimed = voice::mark_stored(
                &ctx.db,
                sid,
                &StoredCopy {
                    location: &d.key,
                    content_type: &d.content_type,
                    size_bytes: i64::try_from(d.size).unwrap_or(i64::MAX),
                    duration_s: d.duration_s,
                    at,
                },
            )
            .await?;
            if !claimed {
                // Our claim went stale and another job stored it meanwhile: theirs stands.
                return Ok(None);
            }
            let detail = json!({
                "recording_sid": sid,
                "location": d.key,
                "size_bytes": d.size,
                "duration_s": d.duration_s,
                "content_type": d.content_type,
            })
            .to_string();
            event(ctx, job, "recording.stored", &detail, at).await?;
            tracing::info!(
                size_bytes = d.size,
                duration_s = d.duration_s,
                download_ms = started.elapsed().as_millis() as u64,
                "recording stored"
            );
            let row = stored_row(ctx, sid).await?;
            Ok(Some((row, d.local)))
        }
        Err(e) => {
            let given_up = matches!(e, JobError::Permanent(_)) || last_attempt;
            voice::release_download(&ctx.db, sid, &e.to_string(), given_up, now_ms()).await?;
            if given_up {
                let detail = json!({"recording_sid": sid, "error": e.to_string()}).to_string();
                event(ctx, job, "recording.failed", &detail, now_ms()).await?;
            }
            Err(e)
        }
    }
}

/// The business a recording is filed under: the call's. While the call is not linked yet
/// (its call.started job has not run), wait; after [`NOT_FOUND_WINDOW`], the default business.
async fn business_of(
    ctx: &Ctx,
    job: &RecordingProcess,
    received: DateTime<Utc>,
) -> Result<i64, JobError> {
    if let Some(id) = get_call_row(&ctx.db, &job.call_sid)
        .await?
        .and_then(|c| c.business_id)
    {
        return Ok(id);
    }
    if waited(received) < NOT_FOUND_WINDOW {
        return Err(JobError::Transient(format!(
            "call {} is not linked to a business yet (call.started not processed); trying again later",
            job.call_sid
        )));
    }
    Ok(default_business(&ctx.db).await?.id)
}

fn waited(since: DateTime<Utc>) -> Duration {
    (Utc::now() - since).to_std().unwrap_or_default()
}

/// Classifies a failed media request (messages name the recording, never the URL).
fn media_error(e: &TwilioError, sid: &str, received: DateTime<Utc>) -> JobError {
    let code = e.code().map(|c| format!(", code {c}")).unwrap_or_default();
    match e {
        TwilioError::Status { status: 404, .. } => {
            let waited = waited(received);
            if waited < NOT_FOUND_WINDOW {
                JobError::Transient(format!(
                    "recording {sid} media not published yet (HTTP 404{code}, {}s after the webhook); retrying for up to {} minutes",
                    waited.as_secs(),
                    NOT_FOUND_WINDOW.as_secs() / 60
                ))
            } else {
                JobError::Permanent(format!(
                    "recording {sid} media still not found (HTTP 404{code}) {} minutes after the webhook: Twilio has no audio for it (deleted, absent or never completed)",
                    waited.as_secs() / 60
                ))
            }
        }
        TwilioError::Status {
            status: s @ (401 | 403),
            ..
        } => JobError::Permanent(format!(
            "Twilio refused our credentials for recording {sid} media (HTTP {s}{code}): check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
        )),
        TwilioError::Status {
            status, message, ..
        } => {
            let reason =
                format!("Twilio answered HTTP {status}{code} for recording {sid} media: {message}");
            match e.to_job_error() {
                JobError::RetryAfter { after, .. } => JobError::RetryAfter { after, reason },
                JobError::Transient(_) => JobError::Transient(reason),
                JobError::Permanent(_) => JobError::Permanent(reason),
            }
        }
        TwilioError::Transport { reason, .. } => {
            JobError::Transient(format!("downloading recording {sid} media: {reason}"))
        }
        TwilioError::ForeignUrl(_) => JobError::Permanent(format!(
            "recording {sid}: refusing to send Twilio credentials outside TWILIO_API_BASE and this account"
        )),
        other => JobError::Permanent(format!("recording {sid}: {other}")),
    }
}

/// Downloads the media into the object store and a local temporary file.
async fn download(
    ctx: &Ctx,
    job: &RecordingProcess,
    received: DateTime<Utc>,
) -> Result<Downloaded, JobError> {
    let sid = job.recording_sid.as_str();
    let format = ctx.config.recording_format;
    let url = media_url(&ctx.core.twilio.api_base, &job.recording_url, sid, format)
        .map_err(|e| JobError::Permanent(format!("recording {sid}: {e}")))?;
    let business_id = business_of(ctx, job, received).await?;
    let key = object_key(business_id, received, sid, format);

    let resp = ctx
        .twilio
        .get_media(&url)
        .await
        .map_err(|e| media_error(&e, sid, received))?;
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format.content_type().to_owned());
    let expected = resp.content_length();
    if let Some(n) = expected.filter(|n| *n > MAX_RECORDING_BYTES) {
        return Err(JobError::Permanent(format!(
            "recording {sid} is {n} bytes, over the {MAX_RECORDING_BYTES} byte limit"
        )));
    }

    let store_err = |what: &str, e: object_store::Error| {
        JobError::Transient(format!(
            "recording {sid}: {what} in RECORDINGS_STORE failed: {e}"
        ))
    };
    let local_err = |e: std::io::Error| {
        JobError::Transient(format!(
            "recording {sid}: writing the local copy failed: {e}"
        ))
    };
    let path = object_store::path::Path::from(key.as_str());
    let upload = ctx
        .recordings
        .put_multipart(&path)
        .await
        .map_err(|e| store_err("starting the upload", e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, STORE_CHUNK_BYTES);
    let local = NamedTempFile::new().map_err(local_err)?;
    let mut file = tokio::fs::File::from_std(local.reopen().map_err(local_err)?);

    let mut stream = resp.bytes_stream();
    let mut count: u64 = 0;
    let mut head: Vec<u8> = Vec::with_capacity(4096);
    let failure = loop {
        let chunk = match stream.next().await {
            None => break None,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                break Some(JobError::Transient(format!(
                    "recording {sid}: download broke off after {count} bytes ({})",
                    if e.is_timeout() {
                        "timed out".to_owned()
                    } else {
                        e.without_url().to_string()
                    }
                )));
            }
        };
        count += chunk.len() as u64;
        if count > MAX_RECORDING_BYTES {
            break Some(JobError::Permanent(format!(
                "recording {sid} is over the {MAX_RECORDING_BYTES} byte limit"
            )));
        }
        if head.len() < 4096 {
            let take = (4096 - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        // At most one part in flight while the next one fills.
        if let Err(e) = writer.wait_for_capacity(1).await {
            break Some(store_err("uploading", e));
        }
        writer.put(chunk.clone());
        if let Err(e) = file.write_all(&chunk).await {
            break Some(local_err(e));
        }
    };
    let failure = failure.or_else(|| match expected {
        Some(n) if n != count => Some(JobError::Transient(format!(
            "recording {sid}: short download, {count} of {n} bytes"
        ))),
        _ if count == 0 => Some(media_empty(sid, received)),
        _ => None,
    });
    if let Some(e) = failure {
        if let Err(abort) = writer.abort().await {
            tracing::warn!(error = %abort, "could not abort the partial upload");
        }
        return Err(e);
    }
    file.flush().await.map_err(local_err)?;
    drop(file);
    writer
        .finish()
        .await
        .map_err(|e| store_err("completing the upload", e))?;
    let meta = ctx
        .recordings
        .head(&path)
        .await
        .map_err(|e| store_err("checking the stored copy", e))?;
    if meta.size != count {
        return Err(JobError::Transient(format!(
            "recording {sid}: the stored copy has {} bytes, {count} were downloaded",
            meta.size
        )));
    }
    let duration_s = parse_wav_header(&head)
        .map(|h| wav_seconds(h, count).round() as i64)
        .or(job.duration_s);
    Ok(Downloaded {
        key,
        content_type,
        size: count,
        duration_s,
        local,
    })
}

/// An empty 200 is media not ready yet, like a 404.
fn media_empty(sid: &str, received: DateTime<Utc>) -> JobError {
    if waited(received) < NOT_FOUND_WINDOW {
        JobError::Transient(format!("recording {sid} media is empty so far; retrying"))
    } else {
        JobError::Permanent(format!(
            "recording {sid} media is still empty {} minutes after the webhook",
            waited(received).as_secs() / 60
        ))
    }
}

/// Deletes Twilio's copy when configured (the row is `stored`: our copy is verified).
async fn delete_stage(ctx: &Ctx, job: &RecordingProcess) -> Result<(), JobError> {
    if !ctx.config.delete_twilio_recording_after_store {
        return Ok(());
    }
    let sid = job.recording_sid.as_str();
    match ctx.twilio.delete_recording(sid).await {
        Ok(()) => {
            let detail = json!({"recording_sid": sid}).to_string();
            event(ctx, job, "recording.deleted_at_twilio", &detail, now_ms()).await?;
            tracing::info!("Twilio's copy deleted");
            Ok(())
        }
        Err(e) => {
            let code = e.code().map(|c| format!(", code {c}")).unwrap_or_default();
            let reason = match e.status() {
                Some(s) => {
                    format!("deleting Twilio's copy of recording {sid} failed (HTTP {s}{code})")
                }
                None => format!("deleting Twilio's copy of recording {sid} failed (no answer)"),
            };
            tracing::warn!(error = %reason, "Twilio copy not deleted");
            Err(match e.to_job_error() {
                JobError::RetryAfter { after, .. } => JobError::RetryAfter { after, reason },
                JobError::Transient(_) => JobError::Transient(reason),
                JobError::Permanent(_) => JobError::Permanent(reason),
            })
        }
    }
}

/// Claims and runs the transcription.
async fn transcribe_stage(
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
        if voice::claim_transcription(&ctx.db, sid, false, now, stale).await? {
            voice::release_transcription(&ctx.db, sid, TranscriptionEnd::NotTranscribed, None, now)
                .await?;
            let detail = json!({"recording_sid": sid, "provider": t.provider()}).to_string();
            event(ctx, job, "recording.not_transcribed", &detail, now).await?;
            tracing::info!("no transcriber configured; recording marked not transcribed");
        }
        return Ok(());
    }
    if !voice::claim_transcription(&ctx.db, sid, true, now, stale).await? {
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
            voice::save_transcript(
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
            voice::release_transcription(&ctx.db, sid, end, Some(&msg), now_ms()).await?;
            if given_up {
                let detail = json!({"recording_sid": sid, "provider": t.provider(), "error": msg})
                    .to_string();
                event(ctx, job, "transcript.failed", &detail, now_ms()).await?;
            }
            Err(e)
        }
    }
}

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

/// Copies the stored recording to a local temporary file (a re-run after the download).
async fn spool(ctx: &Ctx, row: &Recording) -> Result<NamedTempFile, JobError> {
    let sid = row.recording_sid.as_str();
    let key = row.media_location.as_deref().ok_or_else(|| {
        JobError::Permanent(format!("recording {sid} is stored without a location"))
    })?;
    let err =
        |e: String| JobError::Transient(format!("recording {sid}: reading the stored copy: {e}"));
    let got = ctx
        .recordings
        .get(&object_store::path::Path::from(key))
        .await
        .map_err(|e| err(e.to_string()))?;
    let local = NamedTempFile::new().map_err(|e| err(e.to_string()))?;
    let mut file = tokio::fs::File::from_std(local.reopen().map_err(|e| err(e.to_string()))?);
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| err(e.to_string()))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| err(e.to_string()))?;
    }
    file.flush().await.map_err(|e| err(e.to_string()))?;
    Ok(local)
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
    voice::append_call_event(
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

/// The WhatsApp note of `NOTIFY_WHATSAPP_TO`: the caller's number and the transcript (or
/// "not transcribed"), through the WhatsApp send API ([`moked_jobs::whatsapp::request_send`],
/// which stores the message and enqueues `whatsapp.send`).
///
/// Once per recording: the idempotency key `notify:{RecordingSid}` makes a re-run return the
/// first message instead of queueing another. Store and queue trouble is retried with the job; a
/// refusal (bad number, the 24-hour window with `WHATSAPP_ENFORCE_WINDOW=true`) does not undo
/// the stored recording and transcript — it is logged and put on the call as `notify.failed`.
pub async fn notify_whatsapp(ctx: &Ctx, job: &RecordingProcess) -> Result<(), JobError> {
    use moked_jobs::whatsapp::{SendError, SendRequest, SendSettings, request_send};
    let Some(to) = ctx.config.notify_whatsapp_to.clone() else {
        return Ok(());
    };
    let sid = job.recording_sid.as_str();
    let caller = get_call_row(&ctx.db, &job.call_sid)
        .await?
        .and_then(|c| c.from)
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let transcript = transcripts_for_call(&ctx.db, &job.call_sid)
        .await?
        .into_iter()
        .find(|t| t.recording_sid == sid);
    let text = match &transcript {
        Some(t) if !t.text.trim().is_empty() => {
            t.text.chars().take(NOTIFY_TEXT_CHARS).collect::<String>()
        }
        Some(_) => "(silence)".to_owned(),
        None => "(not transcribed)".to_owned(),
    };
    let settings = SendSettings::new(&ctx.config.whatsapp, &ctx.core);
    let request = SendRequest {
        to,
        body: Some(format!("New voice message from {caller}:\n{text}")),
        idempotency_key: Some(format!("notify:{sid}")),
        ..SendRequest::default()
    };
    match request_send(&ctx.db, ctx.queue.as_ref(), request, &settings).await {
        Ok(out) => {
            let detail = json!({"recording_sid": sid, "message_id": out.message.id}).to_string();
            event(ctx, job, "notify.queued", &detail, now_ms()).await?;
            tracing::info!(message_id = %out.message.id, created = out.created, "WhatsApp note queued");
            Ok(())
        }
        Err(e @ (SendError::Store(_) | SendError::Queue(_))) => Err(JobError::Transient(format!(
            "queueing the WhatsApp note for recording {sid}: {e}"
        ))),
        Err(refused) => {
            // Logged and stored on the call's timeline: the refusal may quote the number.
            let reason = moked_jobs::phone::mask_in_text(&refused.to_string());
            tracing::warn!(error = %reason, "WhatsApp note refused; recording and transcript kept");
            let detail = json!({"recording_sid": sid, "error": reason}).to_string();
            event(ctx, job, "notify.failed", &detail, now_ms()).await?;
            Ok(())
        }
    }
}

/// The longest transcript quoted in a WhatsApp note (the body limit is 1600 characters).
pub const NOTIFY_TEXT_CHARS: usize = 1400;

#[cfg(test)]
mod tests {
    use super::*;

    const AC: &str = "AC0123456789abcdef0123456789abcdef";
    const RE: &str = "RE0123456789abcdef0123456789abcdef";

    #[test]
    fn twilio_recording_urls_are_rebased_onto_the_api_base_by_path() {
        let twilio = format!("https://api.twilio.com/2010-04-01/Accounts/{AC}/Recordings/{RE}");
        assert_eq!(
            media_url("http://127.0.0.1:4010", &twilio, RE, RecordingFormat::Wav).unwrap(),
            format!("http://127.0.0.1:4010/2010-04-01/Accounts/{AC}/Recordings/{RE}.wav")
        );
        let regional = format!(
            "https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/{AC}/Recordings/{RE}.wav"
        );
        assert_eq!(
            media_url(
                "https://api.twilio.com/",
                &regional,
                RE,
                RecordingFormat::Mp3
            )
            .unwrap(),
            format!("https://api.twilio.com/2010-04-01/Accounts/{AC}/Recordings/{RE}.mp3")
        );
        let local = format!("http://127.0.0.1:4010/2010-04-01/Accounts/{AC}/Recordings/{RE}");
        assert!(media_url("http://127.0.0.1:4010", &local, RE, RecordingFormat::Wav).is_ok());
    }

    #[test]
    fn foreign_hosts_and_odd_paths_are_refused_without_echoing_the_url() {
        let path = format!("/2010-04-01/Accounts/{AC}/Recordings/{RE}");
        for bad in [
            format!("https://evil.example{path}"),
            format!("http://api.twilio.com{path}"),
            format!("https://api.twilio.com.evil.example{path}"),
            format!("https://api.twilio.com/2010-04-01/Accounts/{AC}/Recordings/RE999"),
            format!("https://api.twilio.com/2010-04-01/Accounts/{AC}/Calls/{RE}"),
            "not a url".to_owned(),
        ] {
            let e = media_url("http://127.0.0.1:4010", &bad, RE, RecordingFormat::Wav).unwrap_err();
            assert!(!e.contains("evil") && !e.contains(AC), "{e}");
        }
    }

    #[test]
    fn keys_name_the_business_and_the_month_of_the_webhook() {
        let at = DateTime::parse_from_rfc3339("2026-03-05T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            object_key(7, at, RE, RecordingFormat::Wav),
            format!("recordings/7/2026/03/{RE}.wav")
        );
    }

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

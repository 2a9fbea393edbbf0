//! Step 2 of `recording.process`, **store**: where the audio is kept, and Twilio's copy let go.
//!
//! * **The key**: `recordings/{business_id}/{yyyy}/{mm}/{RecordingSid}.wav` ([`object_key`]),
//!   year and month of the webhook, under the call's business (`business_of`: while the call
//!   is not linked yet, wait; after [`NOT_FOUND_WINDOW`], the default business).
//! * **The upload** (`Upload`): the downloaded chunks go into the object store
//!   (`RECORDINGS_STORE`) in parts of [`STORE_CHUNK_BYTES`] and into a temporary file for the
//!   transcriber; at most one part is buffered and one in flight. The stored object's size is
//!   checked against the bytes downloaded before the row may say `stored`; a failed download
//!   aborts the partial upload.
//! * **Reading it back** (`spool`): a re-run that did not download copies the stored
//!   recording into a temporary file for the transcriber.
//! * **Twilio's copy** (`delete_twilio_copy`) is deleted when
//!   `DELETE_TWILIO_RECORDING_AFTER_STORE=true`, once ours is verified.

use chrono::{DateTime, Datelike, Utc};
use futures::StreamExt;
use moked_jobs::kinds::RecordingProcess;
use moked_jobs::retry::JobError;
use moked_jobs::store::business::default_business;
use moked_jobs::store::calls::get_call_row;
use moked_jobs::store::now_ms;
use moked_jobs::store::recordings::Recording;
use object_store::{ObjectStoreExt, WriteMultipart};
use serde_json::json;
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt;

use super::{Ctx, NOT_FOUND_WINDOW, event, waited};
use crate::config::RecordingFormat;

/// The object-store part size: S3's minimum, and the most audio held in memory at once.
pub const STORE_CHUNK_BYTES: usize = 5 * 1024 * 1024;

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

/// The business a recording is filed under: the call's. While the call is not linked yet
/// (its call.started job has not run), wait; after [`NOT_FOUND_WINDOW`], the default business.
pub(super) async fn business_of(
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

/// One recording on its way into the object store, and into a local temporary file beside it.
pub(super) struct Upload<'a> {
    ctx: &'a Ctx,
    sid: &'a str,
    path: object_store::path::Path,
    writer: WriteMultipart,
    local: NamedTempFile,
    file: tokio::fs::File,
}

impl<'a> Upload<'a> {
    /// Starts the multipart upload of recording `sid` under `key` and creates the local file.
    pub(super) async fn start(ctx: &'a Ctx, key: &str, sid: &'a str) -> Result<Self, JobError> {
        let path = object_store::path::Path::from(key);
        let upload = ctx
            .recordings
            .put_multipart(&path)
            .await
            .map_err(|e| store_error(sid, "starting the upload", e))?;
        let writer = WriteMultipart::new_with_chunk_size(upload, STORE_CHUNK_BYTES);
        let local = NamedTempFile::new().map_err(|e| local_error(sid, e))?;
        let file = tokio::fs::File::from_std(local.reopen().map_err(|e| local_error(sid, e))?);
        Ok(Upload {
            ctx,
            sid,
            path,
            writer,
            local,
            file,
        })
    }

    /// Writes one downloaded chunk to both copies.
    pub(super) async fn write(&mut self, chunk: bytes::Bytes) -> Result<(), JobError> {
        // At most one part in flight while the next one fills.
        self.writer
            .wait_for_capacity(1)
            .await
            .map_err(|e| store_error(self.sid, "uploading", e))?;
        self.writer.put(chunk.clone());
        self.file
            .write_all(&chunk)
            .await
            .map_err(|e| local_error(self.sid, e))
    }

    /// Gives up: the partial upload is aborted, the local file removed.
    pub(super) async fn abort(self) {
        if let Err(abort) = self.writer.abort().await {
            tracing::warn!(error = %abort, "could not abort the partial upload");
        }
    }

    /// Completes both copies and checks that the stored object holds the `count` bytes
    /// downloaded; returns the local copy.
    pub(super) async fn finish(mut self, count: u64) -> Result<NamedTempFile, JobError> {
        let sid = self.sid;
        self.file.flush().await.map_err(|e| local_error(sid, e))?;
        drop(self.file);
        self.writer
            .finish()
            .await
            .map_err(|e| store_error(sid, "completing the upload", e))?;
        let meta = self
            .ctx
            .recordings
            .head(&self.path)
            .await
            .map_err(|e| store_error(sid, "checking the stored copy", e))?;
        if meta.size != count {
            return Err(JobError::Transient(format!(
                "recording {sid}: the stored copy has {} bytes, {count} were downloaded",
                meta.size
            )));
        }
        Ok(self.local)
    }
}

/// A failed object-store request, retried with the job.
fn store_error(sid: &str, what: &str, e: object_store::Error) -> JobError {
    JobError::Transient(format!(
        "recording {sid}: {what} in RECORDINGS_STORE failed: {e}"
    ))
}

/// A failed write of the local copy, retried with the job.
fn local_error(sid: &str, e: std::io::Error) -> JobError {
    JobError::Transient(format!(
        "recording {sid}: writing the local copy failed: {e}"
    ))
}

/// Copies the stored recording to a local temporary file (a re-run after the download).
pub(super) async fn spool(ctx: &Ctx, row: &Recording) -> Result<NamedTempFile, JobError> {
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

/// Deletes Twilio's copy when configured (the row is `stored`: our copy is verified).
pub(super) async fn delete_twilio_copy(ctx: &Ctx, job: &RecordingProcess) -> Result<(), JobError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const RE: &str = "RE0123456789abcdef0123456789abcdef";

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
}

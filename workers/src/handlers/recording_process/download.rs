//! Step 1 of `recording.process`, **download**: the recording's media from Twilio, claimed on
//! the recording row so duplicate jobs download once.
//!
//! `{RecordingUrl}.wav` (or `.mp3`, `RECORDING_FORMAT`) is fetched with Basic auth through
//! [`TwilioApi::get_media`]. The RecordingUrl must be on Twilio's API host (`api.twilio.com`,
//! `api.{region}.twilio.com`) or on `TWILIO_API_BASE`; its *path* is rebased onto
//! `TWILIO_API_BASE` ([`media_url`], so tests and a regional deployment point it elsewhere) and
//! the client's credential guard still applies. The body is streamed chunk by chunk into the
//! upload of the store step ([`super::store`]), at most [`MAX_RECORDING_BYTES`]; the byte count is checked
//! against `Content-Length`. A failed request is classified for the job (the failure table of
//! [`super`]): a 404 or an empty body within [`NOT_FOUND_WINDOW`] of the webhook is "not
//! published yet". Errors name the recording, never the URL.
//!
//! [`TwilioApi::get_media`]: crate::clients::twilio::TwilioApi::get_media

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use moked_jobs::kinds::RecordingProcess;
use moked_jobs::retry::JobError;
use moked_jobs::store::now_ms;
use moked_jobs::store::recordings::{self, Recording, StoredCopy, get_recording};
use serde_json::json;
use tempfile::NamedTempFile;

use super::store::{Upload, business_of, object_key};
use super::{Ctx, NOT_FOUND_WINDOW, event, stored_row, waited};
use crate::clients::audio::{parse_wav_header, wav_seconds};
use crate::clients::twilio::TwilioError;
use crate::config::RecordingFormat;

/// A download claim older than this belongs to a dead worker and may be taken over.
pub const DOWNLOAD_STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// Recordings larger than this are refused (a runaway body, not a phone message).
pub const MAX_RECORDING_BYTES: u64 = 2 * 1024 * 1024 * 1024;

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

/// A download that reached the store.
struct Downloaded {
    key: String,
    content_type: String,
    size: u64,
    duration_s: Option<i64>,
    local: NamedTempFile,
}

/// Claims and runs the download; `None` when another job had already stored it.
pub(super) async fn stage(
    ctx: &Ctx,
    job: &RecordingProcess,
    received: DateTime<Utc>,
    last_attempt: bool,
) -> Result<Option<(Recording, NamedTempFile)>, JobError> {
    let sid = job.recording_sid.as_str();
    let now = now_ms();
    let stale = now - DOWNLOAD_STALE_AFTER.as_millis() as i64;
    if !recordings::claim_download(&ctx.db, sid, now, stale).await? {
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
            let claimed = recordings::mark_stored(
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
            recordings::release_download(&ctx.db, sid, &e.to_string(), given_up, now_ms()).await?;
            if given_up {
                let detail = json!({"recording_sid": sid, "error": e.to_string()}).to_string();
                event(ctx, job, "recording.failed", &detail, now_ms()).await?;
            }
            Err(e)
        }
    }
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

/// Downloads the media into the store step's upload (the object store and a local temporary
/// file).
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

    let mut upload = Upload::start(ctx, &key, sid).await?;
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
        if let Err(e) = upload.write(chunk).await {
            break Some(e);
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
        upload.abort().await;
        return Err(e);
    }
    let local = upload.finish(count).await?;
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
}

//! Copies the media of inbound Twilio WhatsApp messages (`MediaUrl{N}`) into the object store
//! that holds recordings (`RECORDINGS_STORE`), so they outlive Twilio's copy and can be served
//! without Twilio credentials.
//!
//! * **Downloaded with Basic auth** through [`TwilioApi::get_media`], which refuses any URL that
//!   is not under `TWILIO_API_BASE` and this account (credentials never leave for a foreign
//!   host; such a URL is skipped with a warning, never fetched). Twilio answers with a redirect
//!   to its media CDN, which reqwest follows without the `Authorization` header.
//! * **Stored** under `whatsapp/{business}/{yyyy}/{mm}/{message id}/{n}{.ext}` (the extension
//!   from the content type), the same layout recordings use; the key becomes the entry's
//!   `location` ([`moked_jobs::store::whatsapp::media::set_media_locations`]).
//! * **Idempotent**: entries that already have a location are skipped, so a redelivered or
//!   retried `whatsapp.inbound` job copies only what is missing. Locations are saved after
//!   every file, so a retry never downloads a stored file again.
//! * **Failures**: a 404 right after the webhook (the media is not ready yet), 429, 5xx and
//!   broken downloads are retried with the job (the message itself is already stored); a file
//!   over [`MAX_MEDIA_BYTES`] is skipped with a warning.
//!
//! Media URLs are never logged (they name the account and the message); only indexes and types.
//!
//! [`TwilioApi::get_media`]: crate::clients::twilio::TwilioApi::get_media

use chrono::Datelike;
use futures::StreamExt;
use moked_jobs::retry::JobError;
use moked_jobs::store::whatsapp::media::set_media_locations;
use moked_jobs::store::whatsapp::messages::WhatsAppMessage;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tracing::{info, warn};

use moked_jobs::audio_store::AudioStore;
use moked_jobs::store::Db;

use crate::clients::twilio::{TwilioApi, TwilioError};

/// Largest media file copied (WhatsApp's own limit is 16 MB for media, 100 MB for documents).
pub const MAX_MEDIA_BYTES: u64 = 32 * 1024 * 1024;

/// The file extension for a media content type (empty when unknown).
pub fn extension(content_type: Option<&str>) -> &'static str {
    match content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase()) {
        Some(c) => match c.as_str() {
            "image/jpeg" | "image/jpg" => ".jpg",
            "image/png" => ".png",
            "image/webp" => ".webp",
            "image/gif" => ".gif",
            "audio/ogg" => ".ogg",
            "audio/mpeg" => ".mp3",
            "audio/amr" => ".amr",
            "audio/mp4" => ".m4a",
            "video/mp4" => ".mp4",
            "video/3gpp" => ".3gp",
            "application/pdf" => ".pdf",
            "text/vcard" | "text/x-vcard" => ".vcf",
            _ => "",
        },
        None => "",
    }
}

/// The object-store key of attachment `index` of `message`.
pub fn object_key(message: &WhatsAppMessage, index: usize, content_type: Option<&str>) -> String {
    let at = message.created_at;
    format!(
        "whatsapp/{}/{:04}/{:02}/{}/{index}{}",
        message
            .business_id
            .map(|b| b.to_string())
            .unwrap_or_else(|| "none".into()),
        at.year(),
        at.month(),
        message.id,
        extension(content_type)
    )
}

/// What became of one attachment.
enum Fetched {
    /// Its bytes and content type.
    File(Vec<u8>, Option<String>),
    /// Not copied, for good (reason for the log).
    Skipped(&'static str),
}

async fn fetch(twilio: &dyn TwilioApi, url: &str) -> Result<Fetched, JobError> {
    let resp = match twilio.get_media(url).await {
        Ok(resp) => resp,
        Err(TwilioError::ForeignUrl(_)) => {
            return Ok(Fetched::Skipped(
                "not under TWILIO_API_BASE and this account; credentials are not sent there",
            ));
        }
        Err(e) if e.status() == Some(404) => {
            return Err(JobError::Transient(format!(
                "inbound media not available yet: {e}"
            )));
        }
        Err(e) => return Err(e.to_job_error()),
    };
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
        .filter(|v| !v.is_empty());
    if resp.content_length().is_some_and(|n| n > MAX_MEDIA_BYTES) {
        return Ok(Fetched::Skipped("larger than the media size limit"));
    }
    let mut bytes = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            JobError::Transient(format!(
                "inbound media download broke off: {}",
                e.without_url()
            ))
        })?;
        if (bytes.len() + chunk.len()) as u64 > MAX_MEDIA_BYTES {
            return Ok(Fetched::Skipped("larger than the media size limit"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Fetched::File(bytes, content_type))
}

/// Copies the attachments of `message` that have no location yet into `store` (downloading
/// them through `twilio`, saving their locations in `db`); returns how many it copied.
pub async fn copy_media(
    twilio: &dyn TwilioApi,
    store: &AudioStore,
    db: &Db,
    message: &WhatsAppMessage,
) -> Result<usize, JobError> {
    if message.provider != "twilio" || message.media.iter().all(|m| m.location.is_some()) {
        return Ok(0);
    }
    let mut media = message.media.clone();
    let mut copied = 0;
    for index in 0..media.len() {
        if media[index].location.is_some() {
            continue;
        }
        match fetch(twilio, &media[index].url).await? {
            Fetched::Skipped(reason) => {
                warn!(message_id = %message.id, index, reason, "inbound media not copied");
            }
            Fetched::File(bytes, served_type) => {
                let content_type = media[index].content_type.clone().or(served_type);
                let key = object_key(message, index, content_type.as_deref());
                let size = bytes.len();
                store
                    .put(&Path::from(key.as_str()), PutPayload::from(bytes))
                    .await
                    .map_err(|e| {
                        JobError::Transient(format!(
                            "storing inbound media in RECORDINGS_STORE failed: {e}"
                        ))
                    })?;
                media[index].location = Some(key);
                media[index].content_type = content_type;
                set_media_locations(db, &message.id, &media).await?;
                copied += 1;
                info!(message_id = %message.id, index, size_bytes = size, content_type = media[index].content_type.as_deref().unwrap_or("unknown"), "inbound media stored");
            }
        }
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_follow_the_content_type() {
        assert_eq!(extension(Some("image/jpeg")), ".jpg");
        assert_eq!(extension(Some("audio/ogg; codecs=opus")), ".ogg");
        assert_eq!(extension(Some("application/x-unknown")), "");
        assert_eq!(extension(None), "");
    }
}
